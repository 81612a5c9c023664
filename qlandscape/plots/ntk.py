"""Figures for the NTK metrics: kernel distance heat map, velocity, distance from init, alignment, kernel machines.

Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure. Times are those
of the recorded trajectory points, in epochs.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.ntk.results import KernelEvolution, KernelMachineCurve
from qlandscape.plots import axes_or_new as _axes
from qlandscape.plots import colour

__all__ = [
    "plot_kernel_distance_matrix",
    "plot_kernel_velocity",
    "plot_kernel_distance_from_init",
    "plot_kernel_alignment",
    "plot_kernel_machine_accuracy",
]


def _edges(t: np.ndarray) -> np.ndarray:
    """Cell edges around possibly unevenly spaced times (midpoints, extended by half a step at the ends)."""
    if t.size == 1:
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mid = (t[:-1] + t[1:]) / 2
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def plot_kernel_distance_matrix(evolution: KernelEvolution, ax: Axes | None = None) -> Figure:
    """Heat map of the kernel distance S(t, t′) over the recorded times used (missing pairs left blank)."""
    ax = _axes(ax, (5.5, 4.5))
    t = evolution.times
    edges = _edges(t)
    mesh = ax.pcolormesh(
        edges, edges, np.ma.masked_invalid(evolution.distance), cmap="viridis", vmin=0.0, shading="flat"
    )
    ax.figure.colorbar(mesh, ax=ax, label="kernel distance S(t, t′)")
    ax.set_xlabel("epoch t′")
    ax.set_ylabel("epoch t")
    ax.set_title(f"NTK distance ({evolution.form} form, n = {evolution.n_inputs})")
    ax.set_aspect("equal")
    return ax.figure


def plot_kernel_velocity(evolution: KernelEvolution, ax: Axes | None = None) -> Figure:
    """Kernel velocity S(t_i, t_{i+1}) / Δt against time, on log axes (non-positive points are not drawable on
    log axes; if none is positive, e.g. a constant kernel, linear axes are used)."""
    ax = _axes(ax)
    t, v = evolution.velocity_times, evolution.velocity
    positive = (t > 0) & (v > 0) & np.isfinite(v)
    if positive.any():
        ax.loglog(t[positive], v[positive], marker="o", markersize=3, color=colour(0))
    else:
        ax.plot(t, v, marker="o", markersize=3, color=colour(0))
        ax.text(0.5, 0.9, "no positive velocity (constant kernel)", transform=ax.transAxes, ha="center")
    ax.set_xlabel("epoch (midpoint of consecutive records)")
    ax.set_ylabel(r"kernel velocity $S(t_i, t_{i+1}) / \Delta t$ (per epoch)")
    ax.set_title("NTK velocity")
    ax.grid(True, which="both", alpha=0.3)
    return ax.figure


def plot_kernel_distance_from_init(evolution: KernelEvolution, ax: Axes | None = None) -> Figure:
    """Kernel distance from the first recorded time used, S(t_0, t), against time."""
    ax = _axes(ax)
    ax.plot(evolution.times, evolution.distance_from_init, marker="o", markersize=3, color=colour(0))
    ax.set_xlabel("epoch t")
    ax.set_ylabel(f"kernel distance $S(t_0, t)$, $t_0$ = {evolution.times[0]:g}")
    ax.set_title("NTK distance from initialisation")
    ax.set_ylim(bottom=0.0)
    ax.grid(True, alpha=0.3)
    return ax.figure


def plot_kernel_alignment(evolution: KernelEvolution, ax: Axes | None = None) -> Figure:
    """Kernel–label alignment against time (blank when no labels were given)."""
    ax = _axes(ax)
    ax.plot(evolution.times, evolution.alignment, marker="o", markersize=3, color=colour(0))
    kind = "centred" if evolution.centered_alignment else "uncentred"
    ax.set_xlabel("epoch t")
    ax.set_ylabel(f"kernel–label alignment ({kind})")
    ax.set_title("NTK alignment with the labels")
    ax.grid(True, alpha=0.3)
    return ax.figure


def plot_kernel_machine_accuracy(curve: KernelMachineCurve, ax: Axes | None = None) -> Figure:
    """Test accuracy of the kernel machine from Θ_t against t, the network at t, and the trained network's
    accuracy as a horizontal line."""
    ax = _axes(ax)
    ax.plot(curve.times, curve.kernel_accuracy, marker="o", ms=3, color=colour(0), label="kernel machine from Θ_t")
    ax.plot(curve.times, curve.network_accuracy, marker="s", ms=3, ls="--", color=colour(1), label="network at epoch t")
    if curve.linearised:
        ax.plot(
            curve.times,
            curve.linearised_accuracy,
            marker="^",
            markersize=3,
            linestyle=":",
            color=colour(2),
            label="linearised at t (NTK regression on residuals)",
        )
    ax.axhline(
        curve.final_network_accuracy, color="black", linewidth=1, label=f"trained network (t = {curve.final_time:g})"
    )
    ax.set_xlabel("epoch t the kernel is taken from")
    ax.set_ylabel("test accuracy")
    ax.set_title("Kernel machines from the NTK at epoch t")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax.figure
