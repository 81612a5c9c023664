"""Figures for gradient-variance (barren-plateau) results.

Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.gradient_results import PatchVarianceCurve, VarianceCurve
from qlandscape.plots import axes_or_new, colour, line_style

__all__ = ["plot_variance_curve", "plot_patch_variance"]


def _axes(ax: Axes | None, size: tuple[float, float] = (5.5, 4.2)) -> Axes:
    return axes_or_new(ax, size)


def _error_bars(value: np.ndarray, se: np.ndarray) -> np.ndarray:
    # on a log axis a bar reaching zero or below cannot be drawn: clip the lower bar just above zero
    lower = np.minimum(se, value * (1 - 1e-3))
    return np.vstack([lower, se])


def plot_variance_curve(curve: VarianceCurve, ax: Axes | None = None) -> Figure:
    """Mean gradient variance (log scale) against qubits, one line per layer count, with ±1 SE bars and the
    fitted ``exp(a - b n)`` lines; the fitted rate b and its confidence interval are in the legend."""
    ax = _axes(ax)
    q = np.asarray(curve.qubits, dtype=float)
    fit_q = q[q >= curve.fit_from]
    for i, layers in enumerate(np.asarray(curve.layers)):
        v, se = np.asarray(curve.mean_variance[i]), np.asarray(curve.standard_error[i])
        shown = v > 0
        rate, low, high = curve.rate[i], curve.rate_low[i], curve.rate_high[i]
        label = f"L={int(layers)}"
        if np.isfinite(rate):
            label += f": b={rate:.3f} [{low:.3f}, {high:.3f}]"
        bars = ax.errorbar(
            q[shown],
            v[shown],
            yerr=_error_bars(v[shown], se[shown]),
            marker="o",
            ms=4,
            capsize=3,
            lw=1.2,
            color=colour(i),
            ls=line_style(i),
            label=label,
        )
        if np.isfinite(rate) and fit_q.size:
            grid = np.linspace(fit_q.min(), fit_q.max(), 50)
            ax.plot(grid, np.exp(curve.intercept[i] - rate * grid), ls="--", lw=1, color=bars[0].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("qubits n")
    ax.set_ylabel("mean Var[∂C/∂θ_k]")
    ax.set_xticks(q)
    ax.set_title(f"{curve.ansatz}, {curve.cost} cost, {curve.samples} samples ({curve.init} init)", fontsize=10)
    ax.legend(title=f"Var ~ exp(a - b n), {100 * curve.confidence:.0f}% CI", fontsize=8, title_fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return ax.figure


def plot_patch_variance(result: PatchVarianceCurve, ax: Axes | None = None, *, show_scaled: bool = True) -> Figure:
    """Mean gradient variance of the PatchQNN loss against the number of patches (log-log), ±1 SE bars and the
    fitted power law ``Var ~ N^-c``. ``show_scaled`` adds ``N^2 Var``: the patch-mean readout scales each
    circuit's gradient by 1/N, so this is the variance with that trivial factor removed."""
    ax = _axes(ax)
    n = np.asarray(result.n_patches, dtype=float)
    v, se = np.asarray(result.mean_variance), np.asarray(result.standard_error)
    shown = v > 0
    bars = ax.errorbar(
        n[shown],
        v[shown],
        yerr=_error_bars(v[shown], se[shown]),
        marker="o",
        ms=4,
        capsize=3,
        lw=1.2,
        color=colour(0),
        label="measured",
    )
    if np.isfinite(result.exponent) and shown.sum() >= 2:
        grid = np.geomspace(n.min(), n.max(), 50)
        ax.plot(
            grid,
            np.exp(result.intercept) * grid**-result.exponent,
            ls="--",
            lw=1,
            color=bars[0].get_color(),
            label=f"fit: N^-c, c={result.exponent:.2f} [{result.exponent_low:.2f}, {result.exponent_high:.2f}]",
        )
    if show_scaled:
        ax.errorbar(
            n[shown],
            n[shown] ** 2 * v[shown],
            yerr=n[shown] ** 2 * _error_bars(v[shown], se[shown]),
            marker="s",
            ms=4,
            mfc="none",
            capsize=3,
            lw=1,
            ls=":",
            color="0.4",
            label="N² × measured",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(n)
    ax.set_xticklabels([str(int(k)) for k in n])
    ax.set_xlabel("patches N")
    ax.set_ylabel("mean Var[∂L/∂θ_k] (circuit parameters)")
    ax.set_title(
        f"PatchQNN {result.ansatz}, {result.n_qubits} qubits, L={result.n_layers}, "
        f"{result.aggregation} aggregation, {result.samples} samples",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return ax.figure
