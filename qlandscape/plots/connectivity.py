"""Figures for linear mode connectivity: the loss/error along an interpolation path, with the barrier marked."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.landscape.results import Interpolation
from qlandscape.plots import colour
from qlandscape.plots.landscape import _figure, label_loss_and_error, loss_label

__all__ = ["plot_interpolation"]


def plot_interpolation(result: Interpolation, ax: Axes | None = None) -> Figure:
    """Loss (solid, left axis) and error rate (dashed, right axis) against t for every split; the first split's
    linear baseline (dotted) and its loss barrier (arrow from the baseline up to the curve at the argmax t)."""
    fig, ax = _figure(ax)
    twin = ax.twinx()
    ts = result.ts
    for s, split in enumerate(result.splits):
        ax.plot(ts, result.losses[s], color=colour(s), marker="o", ms=3, label=f"loss ({split})")
        twin.plot(ts, result.errors[s], color=colour(s), ls="--", label=f"error ({split})")
    first = result.losses[0]
    baseline = first[0] + (ts - ts[0]) / (ts[-1] - ts[0]) * (first[-1] - first[0])
    ax.plot(ts, baseline, color="0.4", ls=":", label=f"linear baseline ({result.splits[0]})")
    barrier, t_star = result.loss_barrier, float(result.loss_barrier_ts[0])
    if np.isfinite(barrier):
        i = int(np.argmin(np.abs(ts - t_star)))
        if barrier > 0:
            ax.annotate(
                "",
                xy=(t_star, first[i]),
                xytext=(t_star, baseline[i]),
                arrowprops=dict(arrowstyle="<->", color=colour(1), lw=1.5),
            )
        ax.text(
            0.02,
            0.97,
            f"{result.splits[0]}: loss barrier {barrier:.3g} at t = {t_star:.2f}\n"
            f"error barrier {result.error_barrier:.3g} at t = {float(result.error_barrier_ts[0]):.2f}",
            transform=ax.transAxes,
            va="top",
            fontsize="small",
            bbox=dict(boxstyle="round", facecolor="white", alpha=0.8),
        )
    ax.set_xlabel(
        f"t  (0: {result.label_a}, 1: {result.label_b}; ‖{result.label_b} − {result.label_a}‖ = {result.distance:.3g})"
    )
    label_loss_and_error(ax, twin, result.loss_name)
    splits = ", ".join(result.splits)
    ax.set_title(
        f"Linear interpolation {result.label_a} → {result.label_b}: {loss_label(result.loss_name)} and "
        f"error, {splits} split{'s' if len(result.splits) > 1 else ''}",
        fontsize="medium",
    )
    return fig
