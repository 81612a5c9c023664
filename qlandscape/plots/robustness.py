"""Figures for adversarial robustness: accuracy against eps (one curve per attack), the per-sample input-space
curvature, and landscape slices of two models (e.g. standard and adversarially trained) on the same axes and colour
scale.

Accuracies carry binomial standard errors, sqrt(p (1 - p) / n) over the ``n`` evaluated samples; eps is in the
model's input units (radians of angle for the built-in data), with pixel units beside it when the result knows the
conversion.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape.results import Slice1D, Slice2D, split_index
from qlandscape.metrics.robustness.results import InputCurvature, RobustnessCurve
from qlandscape.plots import axes_or_new, colour

__all__ = ["plot_robustness", "plot_input_curvature", "plot_landscape_comparison"]

_NORM_TEXT = {"filter": "filter-normalised", "patch": "per-patch normalised", "layer": "layer-normalised"}


def _standard_error(p: np.ndarray | float, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.sqrt(np.clip(p * (1 - p), 0.0, None) / max(n, 1))


def plot_robustness(curve: RobustnessCurve, ax: Axes | None = None) -> Figure:
    """Accuracy against eps: clean (a horizontal band), FGSM and PGD (one curve each), with standard errors."""
    ax = axes_or_new(ax, (5.5, 4.0))
    fig = ax.get_figure()
    n = curve.n_samples
    clean_se = float(_standard_error(curve.clean_accuracy, n))
    ax.axhline(curve.clean_accuracy, color=colour(0), lw=1.2, label=f"clean ({curve.clean_accuracy:.3f})")
    ax.axhspan(curve.clean_accuracy - clean_se, curve.clean_accuracy + clean_se, color=colour(0), alpha=0.15, lw=0)
    pgd_label = (
        f"PGD ({curve.steps} steps of {curve.alpha_fraction:g}·eps{', random start' if curve.random_start else ''})"
    )
    for i, (name, acc) in enumerate((("FGSM", curve.fgsm_accuracy), (pgd_label, curve.pgd_accuracy)), start=1):
        ax.errorbar(
            curve.eps, acc, yerr=_standard_error(acc, n), color=colour(i), marker="o", ms=4, capsize=2, label=name
        )
    ax.set_ylim(-0.02, 1.02)
    unit = "input units (rad)"
    if np.all(np.isfinite(curve.eps_pixels)) and curve.eps.size and curve.eps[-1] > 0:
        unit += f"; 1 unit = {curve.eps_pixels[-1] / curve.eps[-1]:.3g} pixel levels"
    ax.set_xlabel(f"eps, {curve.norm} ball ({unit})")
    ax.set_ylabel(f"accuracy, {curve.split} split (± binomial s.e., n = {n})")
    bounded = "" if np.all(np.isnan(curve.bounds)) else f", clipped to [{curve.bounds[0]:.3g}, {curve.bounds[1]:.3g}]"
    ax.set_title(f"Accuracy under attack ({curve.norm}{bounded})", fontsize="medium")
    ax.legend(fontsize="small", loc="lower left")
    return fig


def plot_input_curvature(result: InputCurvature, ax: Axes | None = None, *, bins: int = 30) -> Figure:
    """Histogram of the per-sample top eigenvalue of the input Hessian, with its mean marked."""
    ax = axes_or_new(ax)
    fig = ax.get_figure()
    ax.hist(result.top_eigenvalues, bins=bins, color=colour(0), alpha=0.8)
    se = float(np.std(result.top_eigenvalues, ddof=1) / np.sqrt(result.n_samples)) if result.n_samples > 1 else 0.0
    ax.axvline(
        result.mean_top_eigenvalue, color=colour(1), ls="--", label=f"mean {result.mean_top_eigenvalue:.3g} ± {se:.2g}"
    )
    ax.set_xlabel(f"λ_max of ∇²_x ℓ(x_i) (per sample; Lanczos, {result.iterations} of {result.dimension} steps)")
    ax.set_ylabel("samples")
    ax.set_title(
        f"Input-space curvature, {result.split} split (n = {result.n_samples}; mean |∇_x ℓ| = "
        f"{result.mean_gradient_norm:.3g})",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    return fig


def _direction_text(result: Slice1D | Slice2D) -> str:
    return f"{result.direction_kind} directions, {_NORM_TEXT.get(result.normalization, result.normalization)}"


def plot_landscape_comparison(
    first: Slice1D | Slice2D,
    second: Slice1D | Slice2D,
    *,
    labels: Sequence[str] = ("standard", "adversarial"),
    split: str | None = None,
    levels: int = 30,
) -> Figure:
    """Two landscape slices on the same axes and colour scale: 1-D slices as two curves on one axes, 2-D slices as
    two contour panels sharing their axes limits and one colour bar (the levels span both grids)."""
    if len(labels) != 2:
        raise ConfigError("labels", tuple(labels), "expected two labels, one per slice")
    if type(first) is not type(second):
        raise ConfigError("second", type(second).__name__, f"expected a {type(first).__name__}, as the first")
    if isinstance(first, Slice1D):
        fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
        for k, (result, label) in enumerate(zip((first, second), labels, strict=True)):
            i = split_index(result.splits, split)
            ax.plot(result.alphas, result.losses[i], color=colour(k), label=f"{label} ({result.splits[i]})")
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("α (step along the direction, same normalisation for both)")
        ax.set_ylabel(f"{first.loss_name.replace('_', '-')} loss")
        ax.set_title(f"1-D slices — {_direction_text(first)}", fontsize="medium")
        ax.legend(fontsize="small")
        return fig
    assert isinstance(second, Slice2D)
    grids = [np.asarray(r.losses[split_index(r.splits, split)], dtype=np.float64) for r in (first, second)]
    finite = np.concatenate([g[np.isfinite(g)] for g in grids])
    if finite.size == 0:
        raise ConfigError("grid", "all values non-finite", "nothing to plot")
    vmin, vmax = float(finite.min()), float(finite.max())
    vmax = vmax if vmax > vmin else vmin + 1e-6
    bounds = np.linspace(vmin, vmax, levels)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained", sharex=True, sharey=True)
    filled = None
    for ax, result, grid, label in zip(axes, (first, second), grids, labels, strict=True):
        a, b = np.meshgrid(result.alphas, result.betas)
        filled = ax.contourf(a, b, np.ma.masked_invalid(grid), levels=bounds, cmap="viridis")
        ax.contour(a, b, np.ma.masked_invalid(grid), levels=bounds, colors="k", linewidths=0.4, alpha=0.5)
        ax.plot([0.0], [0.0], marker="x", color="w", ms=8, mew=2, ls="none")
        ax.set_title(f"{label} — {_direction_text(result)}", fontsize="medium")
        ax.set_xlabel("α (along d1)")
    axes[0].set_ylabel("β (along d2)")
    i = split_index(first.splits, split)
    fig.colorbar(
        filled, ax=list(axes), label=f"{first.loss_name.replace('_', '-')} loss, {first.splits[i]} split (one scale)"
    )
    return fig
