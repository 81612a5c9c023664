"""Figures for the Hessian metrics: eigenvalue spectrum, the top-k eigenvalues, the spectral density (exact or SLQ),
the spectra of the Gauss-Newton decomposition H = G + R, and the curvature over training.

Each function takes result objects (and optionally an existing ``Axes``) and returns the Figure. Titles name the
method that produced the numbers (dense eigendecomposition, Lanczos, SLQ) and the uncertainty drawn, if any.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.metrics.curvature.results import (
    DenseSpectrum,
    EigenResult,
    SpectralDensity,
    StructureSummary,
    TrajectoryCurvature,
)
from qlandscape.plots import axes_or_new as _axes
from qlandscape.plots import colour, symlog_ticks

__all__ = ["plot_spectrum", "plot_density", "plot_curvature_over_training", "plot_structure", "plot_top_k"]


def _linthresh(values: np.ndarray) -> float:
    """Linear region of a symlog axis: a decade below the smallest clearly non-zero |λ|, so every non-zero
    eigenvalue sits on the logarithmic part (Hessian spectra span decades on both signs)."""
    mags = np.abs(values[np.isfinite(values)])
    top = mags.max() if mags.size else 1.0
    nonzero = mags[mags > 1e-9 * max(top, 1e-300)]
    return float(max(0.1 * nonzero.min() if nonzero.size else 1.0, 1e-6 * max(top, 1e-300)))


def _symlog_y(ax: Axes, values: np.ndarray) -> None:
    values = values[np.isfinite(values)]
    if values.size:
        linthresh = _linthresh(values)
        ax.set_yscale("symlog", linthresh=linthresh)
        symlog_ticks(ax.yaxis, values, linthresh)


def plot_spectrum(result: DenseSpectrum | EigenResult, ax: Axes | None = None) -> Figure:
    """Eigenvalues in ascending order against their rank, on a symlog y axis (negative and positive decades); for
    Lanczos eigenvalues, error bars of the residual norms ‖Hv − λv‖ (each eigenvalue is within its residual of an
    exact one)."""
    ax = _axes(ax)
    vals = np.sort(np.asarray(result.eigenvalues, dtype=np.float64))
    index = np.arange(1, vals.size + 1)
    if isinstance(result, DenseSpectrum):
        title = f"Hessian spectrum (dense eigendecomposition, all {result.n_params} eigenvalues)"
        xlabel = "rank (ascending)"
        ax.plot(index, vals, marker="o", markersize=3 if vals.size > 50 else 5, ls="-" if vals.size > 50 else "")
    else:
        order = np.argsort(np.asarray(result.eigenvalues, dtype=np.float64))
        residuals = np.asarray(result.residual_norms, dtype=np.float64)[order]
        title = (
            f"Hessian eigenvalues ({result.method}, which={result.which}, {vals.size} of {result.n_params}; "
            "bars: residual ‖Hv − λv‖)"
        )
        xlabel = "index among computed eigenvalues (ascending)"
        ax.errorbar(index, vals, yerr=residuals, marker="o", markersize=5, ls="", capsize=3, color=colour(0))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if vals.size and np.isfinite(vals).any():
        _symlog_y(ax, vals)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("eigenvalue λ (symlog)")
    ax.set_title(title, fontsize="medium")
    return ax.figure


def plot_top_k(result: DenseSpectrum | EigenResult, k: int | None = None, ax: Axes | None = None) -> Figure:
    """The ``k`` largest Hessian eigenvalues (default: all of a Lanczos result), largest first, each labelled with
    its value; Lanczos ones with their residual norms as error bars."""
    ax = _axes(ax, (5.0, 3.8))
    vals = np.asarray(result.eigenvalues, dtype=np.float64)
    order = np.argsort(vals)[::-1]
    k = vals.size if k is None else max(1, min(int(k), vals.size))
    top = vals[order][:k]
    rank = np.arange(1, k + 1)
    if isinstance(result, EigenResult):
        errors = np.asarray(result.residual_norms, dtype=np.float64)[order][:k]
        how = f"{result.method}, residual ‖Hv − λv‖ as error bars"
    else:
        errors = None
        how = "dense eigendecomposition, exact"
    ax.errorbar(rank, top, yerr=errors, marker="o", ls="", capsize=3, color=colour(0))
    for r, v in zip(rank, top, strict=True):
        ax.annotate(f"{v:.4g}", (r, v), textcoords="offset points", xytext=(6, 4), fontsize="x-small")
    ax.set_xticks(rank)
    ax.set_xlabel("rank (1 = largest)")
    ax.set_ylabel("eigenvalue λ")
    ax.set_title(f"Top {k} Hessian eigenvalues of {result.n_params} ({how})", fontsize="medium")
    ax.grid(alpha=0.3)
    return ax.figure


def density_method(density: SpectralDensity) -> str:
    """``exact (dense eigenvalues, Gaussian broadening)`` or ``SLQ (stochastic Lanczos quadrature, Gaussian
    broadening)``: what a density is, whatever its sizes."""
    if density.method == "exact":
        return "exact (dense eigenvalues, Gaussian broadening)"
    return "SLQ (stochastic Lanczos quadrature, Gaussian broadening)"


def describe_density(density: SpectralDensity) -> str:
    """How a density was computed: ``exact (dense eigenvalues, Gaussian broadening σ = ...)`` or ``SLQ (...)``."""
    if density.method == "exact":
        return f"exact: all {density.n_params} dense eigenvalues, Gaussian broadening σ = {density.sigma:.2g}"
    return (
        f"SLQ: {density.n_starts} starts × {density.lanczos_steps} Lanczos steps, Gaussian broadening "
        f"σ = {density.sigma:.2g}"
    )


def plot_density(density: SpectralDensity, ax: Axes | None = None, log: bool = True) -> Figure:
    """The spectral density ρ(λ) on its grid (log y by default, since a few outliers sit far from the bulk); the
    title says whether it is exact (dense eigenvalues) or a stochastic Lanczos quadrature estimate."""
    ax = _axes(ax)
    rho = density.density
    if log:
        floor = max(float(rho.max()) * 1e-12, 1e-300)
        ax.semilogy(density.grid, np.maximum(rho, floor), color=colour(0))
        ax.set_ylim(bottom=max(floor, float(rho.max()) * 1e-8))
    else:
        ax.plot(density.grid, rho, color=colour(0))
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density ρ(λ)" + (" (log)" if log else ""))
    ax.set_title(f"Hessian spectral density\n({describe_density(density)})", fontsize="medium")
    return ax.figure


def plot_structure(summary: StructureSummary, ax: Axes | None = None) -> Figure:
    """The spectra of H, of its Gauss-Newton part G and of the residual R = H − G overlaid (ascending against rank,
    symlog), with λ_max of each and the outlier count in the legend."""
    ax = _axes(ax, (6.0, 4.2))
    parts = (
        ("H (Hessian)", summary.eigenvalues_hessian, summary.lambda_max, f", {summary.n_outliers} outliers"),
        (
            "G (Gauss-Newton)",
            summary.eigenvalues_gauss_newton,
            summary.lambda_max_gauss_newton,
            f", {summary.n_outliers_gauss_newton} outliers",
        ),
        ("R = H − G (residual)", summary.eigenvalues_residual, summary.lambda_max_residual, ""),
    )
    markers = ("o", "s", "^")
    for i, (name, values, top, extra) in enumerate(parts):
        vals = np.sort(np.asarray(values, dtype=np.float64))
        ax.plot(
            np.arange(1, vals.size + 1),
            vals,
            color=colour(i),
            marker=markers[i],
            ms=3,
            lw=1.0,
            label=f"{name}: λ_max = {top:.4g}{extra}",
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    _symlog_y(
        ax,
        np.concatenate(
            [summary.eigenvalues_hessian, summary.eigenvalues_gauss_newton, summary.eigenvalues_residual]
        ).astype(np.float64),
    )
    ax.set_xlabel("rank (ascending)")
    ax.set_ylabel("eigenvalue λ (symlog)")
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(
        f"H = G + R, dense spectra ({summary.method} assembly; N = {summary.n_patches} patches, "
        f"C = {summary.n_classes} classes)",
        fontsize="medium",
    )
    return ax.figure


def plot_curvature_over_training(curvature: TrajectoryCurvature, ax: Axes | None = None) -> Figure:
    """λ_max, the rest of the top-k and |λ_min| (left axis) and the trace with ±1 standard error (right axis)
    against the training epoch."""
    ax = _axes(ax, (6.0, 4.0))
    t = curvature.times
    lines = ax.plot(t, curvature.lambda_max, marker="o", markersize=3, color=colour(0), label="λ_max")
    top_k = np.asarray(curvature.top_k, dtype=np.float64)
    if top_k.ndim == 2 and top_k.shape[1] > 1:
        for j in range(top_k.shape[1] - 1):
            (line,) = ax.plot(t, top_k[:, j], color=colour(0), lw=0.8, alpha=0.45, ls="--")
        line.set_label(f"λ_2 … λ_{top_k.shape[1]} (top {top_k.shape[1]})")
        lines.append(line)
    lines += ax.plot(t, np.abs(curvature.lambda_min), marker="s", markersize=3, color=colour(1), label="|λ_min|")
    ax.set_xlabel("epoch")
    ax.set_ylabel("eigenvalue")
    right = ax.twinx()
    lines += right.plot(t, curvature.trace, color=colour(2), marker="^", markersize=3, label="trace")
    stochastic = bool(np.any(curvature.trace_stderr > 0))
    if stochastic:
        right.fill_between(
            t,
            curvature.trace - curvature.trace_stderr,
            curvature.trace + curvature.trace_stderr,
            color=colour(2),
            alpha=0.2,
            linewidth=0,
        )
    right.set_ylabel("trace tr(H)" + (" (Hutchinson ± 1 s.e.)" if stochastic else " (exact)"))
    ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small")
    ax.set_title(f"Hessian curvature over training ({curvature.method}, P = {curvature.n_params})", fontsize="medium")
    return ax.figure
