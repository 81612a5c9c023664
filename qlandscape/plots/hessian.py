"""Figures for the Hessian metrics: eigenvalue spectrum, SLQ spectral density, curvature over training.

Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.curvature.results import DenseSpectrum, EigenResult, SpectralDensity, TrajectoryCurvature
from qlandscape.plots import axes_or_new as _axes

__all__ = ["plot_spectrum", "plot_density", "plot_curvature_over_training"]


def _linthresh(values: np.ndarray) -> float:
    """Linear region of a symlog axis: a decade below the smallest clearly non-zero |λ|, so every non-zero
    eigenvalue sits on the logarithmic part (Hessian spectra span decades on both signs)."""
    mags = np.abs(values[np.isfinite(values)])
    top = mags.max() if mags.size else 1.0
    nonzero = mags[mags > 1e-9 * max(top, 1e-300)]
    return float(max(0.1 * nonzero.min() if nonzero.size else 1.0, 1e-6 * max(top, 1e-300)))


def plot_spectrum(result: DenseSpectrum | EigenResult, ax: Axes | None = None) -> Figure:
    """Eigenvalues in ascending order against their rank, on a symlog y axis (negative and positive decades)."""
    ax = _axes(ax)
    vals = np.sort(np.asarray(result.eigenvalues, dtype=np.float64))
    if isinstance(result, DenseSpectrum):
        title = f"Hessian spectrum (dense, all {result.n_params} eigenvalues)"
        index = np.arange(1, vals.size + 1)
        xlabel = "rank (ascending)"
    else:
        title = f"Hessian eigenvalues ({result.method}, which={result.which}, {vals.size} of {result.n_params})"
        index = np.arange(1, vals.size + 1)
        xlabel = "index among computed eigenvalues (ascending)"
    ax.plot(index, vals, marker="o", markersize=3 if vals.size > 50 else 5, linestyle="-" if vals.size > 50 else "")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if vals.size and np.isfinite(vals).any():
        ax.set_yscale("symlog", linthresh=_linthresh(vals))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("eigenvalue λ (symlog)")
    ax.set_title(title)
    return ax.figure


def plot_density(density: SpectralDensity, ax: Axes | None = None, log: bool = True) -> Figure:
    """SLQ spectral density ρ(λ) on its grid (log y by default, since a few outliers sit far from the bulk)."""
    ax = _axes(ax)
    rho = density.density
    if log:
        floor = max(float(rho.max()) * 1e-12, 1e-300)
        ax.semilogy(density.grid, np.maximum(rho, floor))
        ax.set_ylim(bottom=max(floor, float(rho.max()) * 1e-8))
    else:
        ax.plot(density.grid, rho)
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density ρ(λ)" + (" (log)" if log else ""))
    source = (
        f"exact: all {density.n_params} eigenvalues"
        if density.probe == "exact"
        else f"SLQ: {density.n_starts} starts × {density.lanczos_steps} steps"
    )
    ax.set_title(f"Hessian spectral density ({source}, σ = {density.sigma:.2g})", fontsize="medium")
    return ax.figure


def plot_curvature_over_training(curvature: TrajectoryCurvature, ax: Axes | None = None) -> Figure:
    """λ_max and |λ_min| (left axis) and the trace with ±1 standard error (right axis) against training time."""
    ax = _axes(ax, (6.0, 4.0))
    t = curvature.times
    lines = ax.plot(t, curvature.lambda_max, marker="o", markersize=3, label="λ_max")
    lines += ax.plot(t, np.abs(curvature.lambda_min), marker="s", markersize=3, label="|λ_min|")
    ax.set_xlabel("training time")
    ax.set_ylabel("eigenvalue")
    right = ax.twinx()
    lines += right.plot(t, curvature.trace, color="C2", marker="^", markersize=3, label="trace")
    if np.any(curvature.trace_stderr > 0):
        right.fill_between(
            t,
            curvature.trace - curvature.trace_stderr,
            curvature.trace + curvature.trace_stderr,
            color="C2",
            alpha=0.2,
            linewidth=0,
        )
    right.set_ylabel("trace tr(H)" + (" (Hutchinson ± s.e.)" if np.any(curvature.trace_stderr > 0) else ""))
    ax.legend(lines, [line.get_label() for line in lines], loc="best")
    ax.set_title(f"Hessian curvature over training ({curvature.method}, P = {curvature.n_params})")
    return ax.figure
