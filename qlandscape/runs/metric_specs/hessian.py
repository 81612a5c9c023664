"""The ``hessian`` run metric: the Hessian at one point of the trajectory (dense spectrum or Lanczos top-k, the
summary scalars, the spectral density), optionally along the whole trajectory and split into Gauss-Newton and
residual parts.

One result per run: computing it again replaces the earlier one as a whole. ``hessian.epoch`` is the training
epoch of the point (``hessian.time`` in run directories of qlandscape 0.2.0 and earlier, which :func:`epoch_of`
still reads).
Figures: ``hessian_spectrum`` (dense), ``hessian_top_k`` (the largest eigenvalues: Lanczos with residuals, or the
top of the dense spectrum), ``hessian_density`` (titled exact or SLQ, as computed), ``hessian_structure`` (the
spectra of H, G and R overlaid) and ``hessian_over_training``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.metrics.curvature.hessian import (
    dense_spectrum,
    hessian_along_trajectory,
    hessian_summary,
    spectrum_of_matrix,
    summary_from_spectrum,
)
from qlandscape.metrics.curvature.results import SpectralDensity
from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues, spectral_density
from qlandscape.metrics.curvature.structured import decompose, structure_summary
from qlandscape.metrics.sweeps import result_grid
from qlandscape.plots import hessian as hplots
from qlandscape.plots.hessian import density_method
from qlandscape.plots.sweeps import plot_density_grid
from qlandscape.runs.metric_spec import (
    POINTS,
    SPLITS,
    Headline,
    MetricOutput,
    MetricRun,
    MetricSpec,
    SavedResult,
    SweepView,
    choice,
    flag,
    integer,
    point_on_trajectory,
)

__all__ = ["HessianSettings", "SPEC"]


@dataclass(frozen=True)
class HessianSettings:
    """Settings of the ``hessian`` metric."""

    point: str = choice(
        "final", POINTS, "where: the final parameters, the epoch of lowest training loss, or the initialisation"
    )
    top_k: int = integer(5, 0, "largest eigenvalues: by Lanczos when the Hessian is not dense (drawn either way)")
    # On the command line the density is asked for: with Lanczos it costs a stochastic Lanczos quadrature.
    density: bool = flag(
        True,
        "spectral density: exact (dense eigenvalues, Gaussian broadening) when the Hessian is dense, else by "
        "stochastic Lanczos quadrature (SLQ)",
        cli_default=False,
    )
    trajectory: bool = flag(False, "also at every recorded point of the trajectory")
    method: str = choice(
        "auto",
        ("auto", "dense", "lanczos"),
        "dense up to max_params parameters (auto), or always dense, or always Lanczos",
    )
    max_params: int = integer(3000, 1, "the largest parameter count for a dense Hessian")
    n_probes: int = integer(100, 1, "probe vectors of the Hutchinson trace (Lanczos)")
    chunk_size: int | None = integer(None, 1, "samples per chunk for large evaluation sets")
    split: str = choice("train", SPLITS, "the evaluation set")
    seed: int = integer(0, 0, "seed of the random start vectors and probes")
    structure: bool = flag(False, "also the Gauss-Newton + residual decomposition")
    figures: bool = flag(True, "draw the figures")
    summary: bool = flag(True, "the summary scalars (λ_min, trace, ...) also with Lanczos")
    progress: bool = flag(False, "progress bar", cli=False)


def compute(run: MetricRun, s: HessianSettings) -> MetricOutput:
    """Hessian summary (+ top-k, spectral density, curvature along the trajectory, G + R split)."""
    obj = run.objective(s.split, chunk_size=s.chunk_size, progress=s.progress)
    index, theta = point_on_trajectory(run.result, s.point)
    scalars: dict[str, Any] = {"hessian.point": s.point, "hessian.epoch": float(run.result.times[index])}
    results: list[SavedResult] = []
    method = s.method
    if method == "auto":
        method = "dense" if obj.n_params <= s.max_params else "lanczos"
    spectrum = decomposition = None
    if s.structure:
        decomposition = decompose(obj, theta)
    if method == "dense":
        # The decomposition already holds the exact Hessian: no second dense Hessian for the spectrum.
        spectrum = (
            spectrum_of_matrix(decomposition.hessian, keep_eigenvectors=False)
            if decomposition is not None
            else dense_spectrum(obj, theta, max_params=s.max_params, keep_eigenvectors=False)
        )
        results.append(SavedResult("hessian_spectrum", "hessian.spectrum", spectrum))
    elif s.top_k:
        top = top_eigenvalues(obj, min(s.top_k, obj.n_params - 1), theta=theta, seed=s.seed)
        results.append(SavedResult("hessian_top_k", "hessian.top_k", top))
        scalars |= {
            "hessian.lambda_max": float(top.eigenvalues[-1]),
            "hessian.top_k_matvecs": int(top.n_matvecs),
            "hessian.top_k_residual": float(top.residual_norms[-1]),
            "hessian.method": "lanczos",
            "hessian.n_params": obj.n_params,
        }
    if spectrum is not None or s.summary:
        # The summary reuses a dense spectrum; with Lanczos it adds lambda_min, a Hutchinson trace and SLQ.
        summary = (
            summary_from_spectrum(spectrum)
            if spectrum is not None
            else hessian_summary(obj, theta, method=method, max_params=s.max_params, n_probes=s.n_probes, seed=s.seed)
        )
        scalars |= {f"hessian.{k}": v for k, v in dataclasses.asdict(summary).items()}
        results.append(SavedResult("hessian_summary", "hessian.summary", summary))
    if s.density:
        # With the dense spectrum at hand the exact (broadened) density is free; SLQ only when it is not.
        density = (
            density_from_eigenvalues(spectrum.eigenvalues)
            if spectrum is not None
            else spectral_density(obj, theta=theta, seed=s.seed)
        )
        results.append(SavedResult("hessian_density", "hessian.density", density))
    if s.trajectory:
        curv = hessian_along_trajectory(
            obj,
            run.result.trajectory,
            run.result.times,
            method=s.method,
            max_params=s.max_params,
            n_probes=s.n_probes,
            seed=s.seed,
            progress=s.progress,
        )
        results.append(SavedResult("hessian_trajectory", "hessian.trajectory", curv))
    if decomposition is not None:
        parts = structure_summary(decomposition)  # the decomposition carries the model's aggregation scale
        scalars |= {
            f"hessian.structure.{k}": v for k, v in dataclasses.asdict(parts).items() if not isinstance(v, np.ndarray)
        }
        results.append(SavedResult("hessian_structure", "hessian.structure", parts))
    return MetricOutput(scalars, tuple(results))


def epoch_of(scalars: dict[str, Any]) -> float | None:
    """The training epoch of the point the Hessian was computed at: ``hessian.epoch``, or ``hessian.time`` as run
    directories written by qlandscape 0.2.0 and earlier call it."""
    value = scalars.get("hessian.epoch", scalars.get("hessian.time"))
    return None if value is None else float(value)


def figures(output: MetricOutput, s: HessianSettings) -> Iterator[tuple[str, Figure]]:
    """The dense spectrum, the top-k eigenvalues, the density, the G + R spectra and the curvature over training,
    where computed."""
    spectrum = output.result("hessian_spectrum")
    if spectrum is not None:
        yield "hessian_spectrum", hplots.plot_spectrum(spectrum)
    top = output.result("hessian_top_k")
    if top is not None:
        yield "hessian_top_k", hplots.plot_top_k(top)
    elif spectrum is not None and s.top_k:
        yield "hessian_top_k", hplots.plot_top_k(spectrum, s.top_k)
    density = output.result("hessian_density")
    if density is not None:
        yield "hessian_density", hplots.plot_density(density)
    structure = output.result("hessian_structure")
    if structure is not None:
        yield "hessian_structure", hplots.plot_structure(structure)
    curvature = output.result("hessian_trajectory")
    if curvature is not None:
        yield "hessian_over_training", hplots.plot_curvature_over_training(curvature)


def check_against_run(s: HessianSettings, n_train: int, n_params: int) -> None:
    """A dense Hessian asked for on a model above ``max_params`` fails before training."""
    if s.method == "dense" and n_params > s.max_params:
        raise ConfigError(
            "metrics.hessian.method",
            "dense",
            f"the model has {n_params} parameters, above max_params = {s.max_params}; raise max_params or use "
            "'lanczos' or 'auto'",
        )


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Spectral densities of one run per cell (the lowest seed)."""
    rows = view.rows_with("hessian_density")
    grid = result_grid(
        rows, "hessian_density", view.loader("hessian_density", SpectralDensity), view.row_axis, view.col_axis
    )
    if grid is not None:
        methods = sorted({density_method(d) for row in grid.cells for d in row if d is not None})
        yield (
            "spectral_densities",
            f"Hessian spectral densities, {' and '.join(methods)}; one run per line: the lowest seed",
            plot_density_grid(grid),
        )


SPEC = MetricSpec(
    name="hessian",
    help="Hessian metrics of a run (added to its run directory)",
    settings=HessianSettings,
    compute=compute,
    figures=figures,
    headline=(
        Headline("hessian.lambda_max", "λ_max (top Hessian eigenvalue)", "λ_max", plot=True, power_law=True),
        Headline("hessian.lambda_min", "λ_min (lowest Hessian eigenvalue)", "λ_min"),
        Headline("hessian.trace", "trace of the Hessian", "tr H", plot=True),
        Headline("hessian.trace_stderr", "standard error of the trace", "SE(tr H)", summary=False),
        Headline("hessian.ratio", "|λ_min| / λ_max", "|λ_min|/λ_max", summary=False),
        Headline("hessian.fraction_negative", "fraction of negative eigenvalues", "negative fraction", summary=False),
        Headline(
            "hessian.structure.lambda_max_normalised",
            "λ_max over the aggregation scale c²/N",
            "λ_max / (c²/N)",
            power_law=True,
        ),
        Headline("hessian.structure.n_outliers", "outlier eigenvalues of H (G + R split)", "outliers"),
        Headline("hessian.structure.lambda_max", "λ_max of H (dense, with the G + R split)", "λ_max(H)", summary=False),
        Headline(
            "hessian.structure.lambda_max_gauss_newton",
            "λ_max of G (Gauss-Newton part)",
            "λ_max(G)",
            summary=False,
        ),
        Headline(
            "hessian.structure.lambda_max_residual", "λ_max of R = H − G (residual part)", "λ_max(R)", summary=False
        ),
        Headline("hessian.epoch", "epoch of the point", "epoch", summary=False),
    ),
    check_against_run=check_against_run,
    sweep_figures=sweep_figures,
)
