"""Figures for landscape slices: 1-D curves, 2-D contours (loss, and the error beside it), 3-D surfaces,
trajectory overlays, the Fourier spectrum of a full-period scan; and ``save_figure``.

Every function takes a result object (:class:`~qlandscape.metrics.landscape.results.Slice1D` / ``Slice2D`` /
``FourierSpectrum``) and an optional Axes, and returns the Figure. Titles say what was plotted: the quantity, the
data split, the direction kind and its normalisation; axis labels give a QNN slice's grid step in radians, and a
slice whose step is too coarse says so in its title. 2-D grids are (len(betas), len(alphas)): α on the x axis, β on
the y axis.
"""

from __future__ import annotations

from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from qlandscape.core.errors import ConfigError, check_choice
from qlandscape.metrics.landscape.results import FourierSpectrum, Slice1D, Slice2D, split_index
from qlandscape.plots import colour, save_figure

__all__ = [
    "describe_directions",
    "plot_contour",
    "plot_fourier",
    "plot_loss_and_error",
    "plot_slice_1d",
    "plot_surface",
    "plot_trajectory",
    "save_figure",  # the qlandscape 0.1 path of save_figure
]

_NORM_TEXT = {
    "filter": "filter-normalised",
    "patch": "patch-normalised",
    "layer": "layer-normalised",
    "none": "unnormalised",
}
QUANTITIES = ("loss", "error", "accuracy")


def loss_label(loss_name: str) -> str:
    """A readable name for a loss (``cross_entropy`` -> ``cross-entropy loss``)."""
    name = {"cross_entropy": "cross-entropy", "mse": "MSE"}.get(loss_name, loss_name.replace("_", " "))
    return f"{name} loss"


def describe_directions(
    direction_kind: str, normalization: str, *, plural: bool = True, explained_variance_ratio: np.ndarray | None = None
) -> str:
    """E.g. ``random directions, filter-normalised`` or ``PCA plane of the trajectory (PC1 61%, PC2 22% of var.)``."""
    s = "s" if plural else ""
    if direction_kind == "pca":
        text = "PCA plane of the trajectory" if plural else "principal direction of the trajectory"
        evr = np.asarray(explained_variance_ratio if explained_variance_ratio is not None else [np.nan] * 2)
        if np.all(np.isfinite(evr)):
            text += f" (PC1 {100 * evr[0]:.1f}%, PC2 {100 * evr[1]:.1f}% of variance)"
        return text
    if direction_kind == "periodic":
        return f"integer direction{s} over the circuit angles, one full period"
    base = {
        "random": f"random direction{s}",
        "hessian": f"top Hessian eigenvector{s}",
        "custom": f"given direction{s}",
    }.get(direction_kind, f"{direction_kind} direction{s}")
    if direction_kind == "hessian" and normalization == "none":
        return base + " (unit norm)"
    return f"{base}, {_NORM_TEXT.get(normalization, normalization)}"


def _figure(ax: Axes | None, projection: str | None = None) -> tuple[Figure, Axes]:
    if ax is None:
        fig = plt.figure(figsize=(6.4, 5.0), layout=None if projection else "constrained")
        return fig, fig.add_subplot(projection=projection)
    return ax.get_figure(), ax


def _grid_values(result: Slice2D, split: str | None, quantity: str) -> tuple[np.ndarray, str]:
    check_choice("quantity", quantity, QUANTITIES)
    i = split_index(result.splits, split)
    values = {"loss": result.losses, "error": result.errors, "accuracy": result.accuracies}[quantity][i]
    label = loss_label(result.loss_name) if quantity == "loss" else f"{quantity} rate"
    return np.asarray(values, dtype=np.float64), f"{label}, {result.splits[i]} split"


def _step_text(step: float) -> str:
    return f"; {step:.3g} rad/step" if np.isfinite(step) else ""


def _axis_labels(result: Slice2D) -> tuple[str, str]:
    steps = np.asarray(result.radians_per_step, dtype=np.float64)
    if result.direction_kind == "pca":
        evr = result.explained_variance_ratio
        if np.all(np.isfinite(evr)):
            return f"PC1 ({100 * evr[0]:.1f}% of variance)", f"PC2 ({100 * evr[1]:.1f}% of variance)"
        return "PC1", "PC2"
    if result.direction_kind == "periodic":
        return f"α (rad, one period{_step_text(steps[0])})", f"β (rad, one period{_step_text(steps[1])})"
    n1, n2 = result.direction_norms
    return (
        f"α (along d1, ‖d1‖ = {n1:.3g}{_step_text(steps[0])})",
        f"β (along d2, ‖d2‖ = {n2:.3g}{_step_text(steps[1])})",
    )


def _title(result: Slice2D, what: str) -> str:
    desc = describe_directions(
        result.direction_kind, result.normalization, explained_variance_ratio=result.explained_variance_ratio
    )
    steps = np.asarray(result.radians_per_step, dtype=np.float64)
    coarse = ""
    if result.notes and np.any(np.isfinite(steps)):
        coarse = f"\nunder-sampled: grid step up to {np.nanmax(steps):.2g} rad (> 0.3 rad per step)"
    return f"{what} — {desc}{coarse}"


def label_loss_and_error(ax: Axes, twin: Axes, loss_name: str) -> None:
    """Axis labels and one legend for a loss curve on ``ax`` with error rates on its twin ``twin``."""
    ax.set_ylabel(loss_label(loss_name))
    twin.set_ylabel("error rate")
    twin.set_ylim(bottom=0.0)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    # below the axes: a legend inside would be overdrawn by the twin axis or hide the curves
    twin.legend(
        handles,
        [h.get_label() for h in handles],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=min(3, len(handles)),
        fontsize="small",
        frameon=False,
    )


def plot_slice_1d(result: Slice1D, ax: Axes | None = None) -> Figure:
    """Loss (solid, left axis) and error rate (dashed, right axis) along the direction, one colour per split."""
    fig, ax = _figure(ax)
    twin = ax.twinx()
    for s, split in enumerate(result.splits):
        ax.plot(result.alphas, result.losses[s], color=colour(s), label=f"loss ({split})")
        twin.plot(result.alphas, result.errors[s], color=colour(s), ls="--", label=f"error ({split})")
    ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel(
        f"α (step along the direction, ‖d‖ = {result.direction_norm:.3g}{_step_text(result.radians_per_step)})"
    )
    label_loss_and_error(ax, twin, result.loss_name)
    desc = describe_directions(result.direction_kind, result.normalization, plural=False)
    ax.set_title(
        f"{loss_label(result.loss_name)} and error, {', '.join(result.splits)} "
        f"split{'s' if len(result.splits) > 1 else ''} — {desc}",
        fontsize="medium",
    )
    return fig


def _contour(
    fig: Figure, ax: Axes, result: Slice2D, split: str | None, quantity: str, log_scale: bool, levels: int
) -> str:
    z, label = _grid_values(result, split, quantity)
    z = np.ma.masked_invalid(z)
    if z.count() == 0:
        raise ConfigError("grid", "all values non-finite", "nothing to plot")
    norm = None
    if log_scale:
        positive = z[z > 0]
        if positive.count() == 0:
            raise ConfigError("log_scale", True, f"needs positive values but the {quantity} grid has none")
        vmin, vmax = float(positive.min()), float(positive.max())
        vmax = vmax if vmax > vmin else vmin * 10.0
        z = np.ma.masked_invalid(np.clip(z.filled(np.nan), vmin, vmax))
        norm = LogNorm(vmin=vmin, vmax=vmax)
        bounds = np.geomspace(vmin, vmax, levels)
    else:
        vmin, vmax = float(z.min()), float(z.max())
        vmax = vmax if vmax > vmin else vmin + max(abs(vmin), 1.0) * 1e-6
        bounds = np.linspace(vmin, vmax, levels)
    a, b = np.meshgrid(result.alphas, result.betas)
    filled = ax.contourf(a, b, z, levels=bounds, norm=norm, cmap="viridis", extend="neither")
    ax.contour(a, b, z, levels=bounds, colors="k", linewidths=0.4, alpha=0.5)
    bar = fig.colorbar(filled, ax=ax, label=label + (" (log scale)" if log_scale else ""))
    if log_scale:  # the default log ticks print as 1.2881×10^0 on ranges under a decade
        bar.set_ticks(np.geomspace(bounds[0], bounds[-1], 6))
        bar.minorticks_off()
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    if result.alphas.min() <= 0 <= result.alphas.max() and result.betas.min() <= 0 <= result.betas.max():
        ax.plot([0.0], [0.0], marker="x", color="w", ms=8, mew=2, ls="none", label="centre")
    xlabel, ylabel = _axis_labels(result)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return label


def plot_contour(
    result: Slice2D,
    ax: Axes | None = None,
    *,
    split: str | None = None,
    quantity: Literal["loss", "error", "accuracy"] = "loss",
    log_scale: bool = False,
    levels: int = 30,
) -> Figure:
    """Filled contour plus contour lines of one split's grid (default: the first), colour bar labelled."""
    fig, ax = _figure(ax)
    label = _contour(fig, ax, result, split, quantity, log_scale, levels)
    ax.set_title(_title(result, label), fontsize="medium")
    return fig


def plot_trajectory(
    result: Slice2D,
    ax: Axes | None = None,
    *,
    split: str | None = None,
    quantity: Literal["loss", "error", "accuracy"] = "loss",
    log_scale: bool = False,
    levels: int = 30,
) -> Figure:
    """The contour with the projected trajectory on top (start and end marked)."""
    if not result.has_trajectory:
        raise ConfigError(
            "trajectory", "none", "this slice carries no trajectory; pass trajectory= to slice_2d or use slice_pca"
        )
    fig, ax = _figure(ax)
    label = _contour(fig, ax, result, split, quantity, log_scale, levels)
    path = result.trajectory
    ax.plot(path[:, 0], path[:, 1], color="w", lw=1.5, marker="o", ms=3, label="trajectory")
    ax.plot(path[0, 0], path[0, 1], marker="^", color=colour(2), ms=11, mec="k", ls="none", label="start")
    ax.plot(path[-1, 0], path[-1, 1], marker="*", color=colour(1), ms=14, mec="k", ls="none", label="end")
    ax.legend(loc="best", fontsize="small")
    ax.set_title(_title(result, label) + f"\nwith the trajectory ({len(path)} points)", fontsize="medium")
    return fig


def plot_loss_and_error(
    result: Slice2D, *, split: str | None = None, log_scale: bool = False, levels: int = 30
) -> Figure:
    """Contours of the loss (left) and of the error rate (right) of one split on the same plane, side by side."""
    i = split_index(result.splits, split)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 5.0), layout="constrained")
    _contour(fig, left, result, result.splits[i], "loss", log_scale, levels)
    _contour(fig, right, result, result.splits[i], "error", False, levels)
    left.set_title("loss", fontsize="medium")
    right.set_title("error rate (fraction of misclassified samples)", fontsize="medium")
    fig.suptitle(_title(result, f"{loss_label(result.loss_name)} and error, {result.splits[i]} split"))
    return fig


def plot_fourier(spectrum: FourierSpectrum, ax: Axes | None = None, *, floor: float = 1e-12) -> Figure:
    """log10 of the Fourier power per (k_α, k_β) of a full-period scan, frequencies in cycles per 2π, the constant
    term (0, 0) left out (it is the mean, drawn as a hatched cell); the title gives the share of the variance at
    low frequencies."""
    fig, ax = _figure(ax)
    power = np.array(spectrum.power, dtype=np.float64)
    dc_i = int(np.flatnonzero(spectrum.freq_beta == 0)[0])
    dc_j = int(np.flatnonzero(spectrum.freq_alpha == 0)[0])
    power[dc_i, dc_j] = np.nan
    top = float(np.nanmax(power)) if np.any(np.isfinite(power)) else 0.0
    shown = np.log10(np.maximum(power, max(top, floor) * floor)) if top > 0 else np.full_like(power, np.nan)
    ka, kb = spectrum.freq_alpha, spectrum.freq_beta
    image = ax.pcolormesh(ka, kb, np.ma.masked_invalid(shown), cmap="viridis", shading="nearest")
    fig.colorbar(image, ax=ax, label="log10 power |c|²")
    ax.add_patch(plt.Rectangle((-0.5, -0.5), 1, 1, fill=False, hatch="///", edgecolor="0.5", lw=0, label="mean (0, 0)"))
    cut = spectrum.low_cutoff
    ax.add_patch(
        plt.Rectangle((-cut - 0.5, -cut - 0.5), 2 * cut + 1, 2 * cut + 1, fill=False, edgecolor="w", lw=1.2, ls="--")
    )
    ax.set_xlabel("k_α (cycles per 2π along α)")
    ax.set_ylabel("k_β (cycles per 2π along β)")
    quantity = loss_label(spectrum.loss_name) if spectrum.quantity == "loss" else "error rate"
    share = "n/a (a constant grid)" if not np.isfinite(spectrum.low_fraction) else f"{100 * spectrum.low_fraction:.1f}%"
    ax.set_title(
        f"Fourier power of the {quantity}, {spectrum.split} split (numpy FFT of one period)\n"
        f"{share} of the variance {spectrum.variance:.3g} at max(|k_α|, |k_β|) ≤ {cut} (dashed box)",
        fontsize="medium",
    )
    ax.set_aspect("equal")
    return fig


def plot_surface(
    result: Slice2D,
    ax: Axes | None = None,
    *,
    split: str | None = None,
    quantity: Literal["loss", "error", "accuracy"] = "loss",
    log_scale: bool = False,
) -> Figure:
    """3-D surface of one split's grid; ``log_scale`` plots log10 of the values. ``ax`` must be a 3-D Axes."""
    if ax is not None and getattr(ax, "name", "") != "3d":
        raise ConfigError(
            "ax",
            getattr(ax, "name", type(ax).__name__),
            "plot_surface needs a 3-D Axes (fig.add_subplot(projection='3d'))",
        )
    z, label = _grid_values(result, split, quantity)
    if log_scale:
        if not np.any(z > 0):
            raise ConfigError("log_scale", True, f"needs positive values but the {quantity} grid has none")
        z = np.log10(np.clip(z, z[z > 0].min(), None))
        label = f"log10 {label}"
    fig, ax = _figure(ax, projection="3d")
    a, b = np.meshgrid(result.alphas, result.betas)
    ax.plot_surface(a, b, np.ma.masked_invalid(z), cmap="viridis", linewidth=0, antialiased=True)
    xlabel, ylabel = _axis_labels(result)
    ax.set_xlabel(xlabel, fontsize="small")
    ax.set_ylabel(ylabel, fontsize="small")
    ax.set_zlabel(label, fontsize="small")
    ax.set_title(_title(result, label), fontsize="medium")
    return fig
