"""Figures of a sweep report: metrics against model size, power-law fits, landscape and spectral-density grids, NTK
curves. Each function takes result objects of :mod:`qlandscape.metrics.sweeps` and returns the Figure.

Every figure says what its uncertainty is: points are means over seeds with min–max bars and the number of seeds
(``n``); a point of one seed has no bar and the figure says ``n = 1``. Counts (parameters, patches) get integer
ticks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.sweeps import AXIS_LABELS, KernelCurves, ResultGrid, ScalingFit, SweepSeries
from qlandscape.plots import axes_or_new, colour, integer_ticks, line_style
from qlandscape.plots.hessian import density_method
from qlandscape.plots.landscape import describe_directions, loss_label

__all__ = [
    "plot_series",
    "plot_series_panels",
    "plot_scaling",
    "plot_scaling_panels",
    "plot_landscape_grid",
    "plot_density_grid",
    "plot_kernel_curves",
]
COUNT_AXES = ("n_params", "n_patches", "params_per_circuit")  # integer quantities


def _axis_name(axis: str) -> str:
    return AXIS_LABELS.get(axis, axis)


def _wide(values: np.ndarray) -> bool:
    """Whether values are positive and span enough for a log axis to help."""
    values = values[np.isfinite(values)]
    return values.size > 1 and bool(np.all(values > 0)) and values.max() / values.min() >= 4


def seeds_text(n: np.ndarray) -> str:
    """What the points of a figure are: ``mean of 3 seeds, bars min–max``, ``mean of 1–3 seeds (bars min–max)`` or
    ``one seed per point (n = 1, no spread)``."""
    n = np.asarray(n)
    if n.size == 0 or n.max() <= 1:
        return "one seed per point (n = 1, no spread)"
    if n.min() == n.max():
        return f"mean of n = {n.max()} seeds, bars min–max"
    return f"mean of n = {n.min()}–{n.max()} seeds, bars min–max (none for n = 1)"


def _count_ticks(ax: Axes, axis: str, values: np.ndarray) -> None:
    """Ticks of a count axis at the values themselves (when few) or at integers."""
    ticks = np.unique(values[np.isfinite(values)])
    if 0 < ticks.size <= 10:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    elif axis in COUNT_AXES:
        integer_ticks(ax.xaxis)


def plot_series(series: SweepSeries, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Mean over replicates against the x axis, one line per group; error bars span min–max (none for one seed)."""
    ax = axes_or_new(ax, (5.2, 4.0))
    for i, label in enumerate(series.line_labels):
        keep = series.line == i
        x, mean = series.x[keep], series.mean[keep]
        yerr = np.vstack([mean - series.low[keep], series.high[keep] - mean])
        ax.errorbar(
            x,
            mean,
            yerr=None if series.n[keep].max() <= 1 else yerr,
            marker="o",
            ms=4,
            capsize=3,
            lw=1.4,
            color=colour(i),
            ls=line_style(i),
            label=label,
        )
    if _wide(series.x):
        ax.set_xscale("log", base=2 if series.x_axis in AXIS_LABELS else 10)
    if series.x_axis in COUNT_AXES or _wide(series.x):
        _count_ticks(ax, series.x_axis, series.x)
    if series.metric != "test_accuracy" and _wide(np.concatenate([series.low, series.high])):
        ax.set_yscale("log")
    name = series.label
    ax.set_xlabel(_axis_name(series.x_axis))
    ax.set_ylabel(name)
    ax.set_title(title or f"{name} vs {_axis_name(series.x_axis)} ({seeds_text(series.n)})", fontsize="medium")
    ax.grid(alpha=0.3)
    return ax.figure


def plot_series_panels(panels: Sequence[SweepSeries], titles: Mapping[str, str] | None = None) -> Figure:
    """Several metrics against the same axes side by side, one shared legend below."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), layout="constrained", squeeze=False)
    for ax, s in zip(axes[0], panels, strict=True):
        plot_series(s, ax, title=(titles or {}).get(s.metric, s.metric))
    handles, labels = axes[0][0].get_legend_handles_labels()
    what = panels[0].line_axis
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(len(labels), 4),
        fontsize="small",
        title=f"one line per {_axis_name(what)}" if what else None,
    )
    n = np.concatenate([s.n for s in panels])
    fig.suptitle(f"Against {_axis_name(panels[0].x_axis)}: {seeds_text(n)}")
    return fig


def plot_scaling(fit: ScalingFit, ax: Axes | None = None) -> Figure:
    """Every run's value against x on log-log axes, with each line's fitted power law and its exponent."""
    ax = axes_or_new(ax, (5.2, 4.2))
    for i, (label, pl) in enumerate(zip(fit.line_labels, fit.fits, strict=True)):
        keep = fit.line == i
        if pl is None:
            text = f"{label} ({fit.reason(i) or 'no fit'})"
        else:
            text = f"{label}: b = {pl.exponent:.2f} [{pl.exponent_low:.2f}, {pl.exponent_high:.2f}], n = {pl.n_points}"
        ax.scatter(fit.x[keep], fit.y[keep], s=18, color=colour(i), alpha=0.8, label=text)
        if pl is not None:
            xs = np.geomspace(fit.x[keep].min(), fit.x[keep].max(), 50)
            ax.plot(xs, pl.prefactor * xs**pl.exponent, color=colour(i), ls=line_style(i), lw=1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _count_ticks(ax, fit.x_axis, fit.x)
    name = fit.label
    ax.set_xlabel(_axis_name(fit.x_axis))
    ax.set_ylabel(f"{name} (log)")
    ax.set_title(
        f"{name} vs {_axis_name(fit.x_axis)}: least-squares fit a·N^b on log-log axes per line\n"
        "(every run a point; 95% CI on b; n: points fitted; a fit needs 3 distinct N)",
        fontsize="medium",
    )
    ax.legend(fontsize="x-small", loc="best")
    ax.grid(alpha=0.3, which="both")
    return ax.figure


def plot_scaling_panels(fits: Sequence[ScalingFit]) -> Figure:
    """Several :func:`plot_scaling` panels side by side."""
    fig, axes = plt.subplots(1, len(fits), figsize=(5.4 * len(fits), 4.4), layout="constrained", squeeze=False)
    for ax, fit in zip(axes[0], fits, strict=True):
        plot_scaling(fit, ax)
    return fig


def _grid_axes(grid: ResultGrid, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    nrows, ncols = len(grid.row_labels), len(grid.col_labels)
    return plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), layout="constrained", squeeze=False)


def plot_landscape_grid(grid: ResultGrid) -> Figure:
    """Loss contours of the first split, one panel per (row, column) cell, each with its own colour bar."""
    fig, axes = _grid_axes(grid, (3.3, 2.8))
    for i, row in enumerate(grid.cells):
        for j, result in enumerate(row):
            ax = axes[i][j]
            if result is None:
                ax.set_axis_off()
                continue
            z = np.ma.masked_invalid(result.losses[0])
            a, b = np.meshgrid(result.alphas, result.betas)
            levels = np.linspace(float(z.min()), max(float(z.max()), float(z.min()) + 1e-9), 20)
            filled = ax.contourf(a, b, z, levels=levels, cmap="viridis")
            ax.contour(a, b, z, levels=levels, colors="k", linewidths=0.3, alpha=0.4)
            fig.colorbar(filled, ax=ax, format="%.3g")
            if result.trajectory.shape[0]:
                ax.plot(result.trajectory[:, 0], result.trajectory[:, 1], color="w", lw=1, marker=".", ms=3)
                ax.plot(*result.trajectory[-1], marker="*", color=colour(1), ms=9, mec="k", ls="none")
            ax.set_title(
                " | ".join(t for t in (grid.col_labels[j], grid.row_labels[i], grid.notes[i][j]) if t),
                fontsize="x-small",
            )
            ax.tick_params(labelsize="x-small")
            if i == len(grid.cells) - 1:
                ax.set_xlabel("α (direction 1)", fontsize="small")
            if j == 0:
                ax.set_ylabel("β (direction 2)", fontsize="small")
    kind = next(r for row in grid.cells for r in row if r is not None)
    fig.suptitle(
        f"{loss_label(kind.loss_name)} ({kind.splits[0]}) on "
        f"{describe_directions(kind.direction_kind, kind.normalization)}\n"
        f"rows: {_axis_name(grid.row_axis) or '-'}, columns: {_axis_name(grid.col_axis) or '-'}; "
        "white: trajectory, star: end point",
        fontsize="medium",
    )
    return fig


def plot_density_grid(grid: ResultGrid) -> Figure:
    """Spectral densities (exact or SLQ, as each was computed; the title says which): one panel per column value,
    one curve per row value (log density)."""
    ncols = len(grid.col_labels)
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.8), layout="constrained", squeeze=False)
    for j in range(ncols):
        ax = axes[0][j]
        for i, row in enumerate(grid.cells):
            density = row[j]
            if density is None:
                continue
            rho = density.density
            floor = max(float(rho.max()) * 1e-6, 1e-300)
            ax.semilogy(
                density.grid,
                np.maximum(rho, floor),
                color=colour(i),
                ls=line_style(i),
                lw=1.2,
                label=f"{grid.row_labels[i] or 'run'} ({grid.notes[i][j]})",
            )
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("eigenvalue λ")
        ax.set_ylabel("density ρ(λ) (log)")
        ax.set_title(grid.col_labels[j] or "spectral density", fontsize="medium")
        ax.legend(fontsize="xx-small", loc="upper right")
    methods = sorted({density_method(d) for row in grid.cells for d in row if d is not None})
    fig.suptitle("Hessian spectral densities: " + " and ".join(methods), fontsize="medium")
    return fig


def plot_kernel_curves(curves: KernelCurves) -> Figure:
    """NTK distance from initialisation, kernel velocity and kernel-machine test accuracy against epochs."""
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.0), layout="constrained")
    labels = list(dict.fromkeys(curves.labels))
    colours = {label: colour(i) for i, label in enumerate(labels)}
    seen: set[str] = set()
    for label, evo, machine in zip(curves.labels, curves.evolutions, curves.machines, strict=True):
        kw = dict(color=colours[label], lw=1.2, alpha=0.85, label=None if label in seen else label)
        seen.add(label)
        axes[0].plot(evo.times, evo.distance_from_init, marker=".", **kw)
        axes[1].plot(evo.velocity_times, evo.velocity, marker=".", **kw)
        if machine is not None:
            axes[2].plot(machine.times, machine.kernel_accuracy, marker=".", **kw)
            axes[2].plot(machine.times, machine.network_accuracy, ls="--", color=colours[label], lw=0.8, alpha=0.6)
    for ax, ylabel, title in zip(
        axes,
        ("kernel distance S(0, t)", "kernel velocity", "test accuracy"),
        ("NTK distance from initialisation", "kernel velocity", "kernel machine (solid) vs network (dashed)"),
        strict=True,
    ):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small")
    fig.suptitle("Neural tangent kernel during training (one curve per run; colour: group)")
    return fig
