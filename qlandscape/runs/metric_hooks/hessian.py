"""What the ``hessian`` run metric (:mod:`qlandscape.runs.metric_specs.hessian`) does: the Hessian at a point of
the trajectory, its figures and its report figure. Loaded when the metric is first computed, drawn or checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core.data_parallel import DataParallelObjective
from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.operators import LinearOperator
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
from qlandscape.runs.adversarial_data import describe_data
from qlandscape.runs.metric_hooks.evaluation_data import evaluation_objective, titled
from qlandscape.runs.metric_spec import MetricOutput, MetricRun, SavedResult, SweepView, point_on_trajectory
from qlandscape.runs.metric_specs.hessian import HessianSettings, resolved_method, variant_name

__all__ = ["compute", "figures", "check_against_run", "sweep_figures"]


def compute(run: MetricRun, s: HessianSettings) -> MetricOutput:
    """Hessian summary (+ top-k, spectral density, curvature along the trajectory, G + R split), kept as the variant
    :func:`~qlandscape.runs.metric_specs.hessian.variant_name` names."""
    _parallel_route(s, None if s.method == "auto" else s.method)
    index, theta = point_on_trajectory(run.result, s.point)
    obj = evaluation_objective(
        run,
        s.split,
        s.adversarial,
        theta,
        "hessian",
        chunk_size=s.chunk_size,
        progress=s.progress,
        memory_budget=s.memory_budget,
    )
    method = resolved_method(s, obj.n_params)
    route = _parallel_route(s, method)
    if route is None:
        return _compute(run, s, obj, obj, theta, index, method)
    with DataParallelObjective.from_objective(obj, run.model_factory(), **route) as parallel:
        return _compute(run, s, obj, parallel.hessian_operator(theta), None, index, method)


def _parallel_route(s: HessianSettings, method: str | None) -> dict[str, Any] | None:
    """Where the HVPs run: None in this process, else the keyword (``dask`` or ``workers``) for the
    :class:`~qlandscape.core.data_parallel.DataParallelObjective`. That path is matrix-free (Lanczos top-k, the
    Hutchinson trace and SLQ): checked before any work, and again once ``auto`` is resolved (``method``: None until
    then)."""
    if s.dask is not None and s.workers is not None:
        raise ConfigError("metrics.hessian.workers", s.workers, "set dask or workers, not both")
    name, value = ("dask", s.dask) if s.dask is not None else ("workers", s.workers)
    if value is None or value == 1:
        return None
    if method is not None and method != "lanczos":
        raise ConfigError(
            f"metrics.hessian.{name}", value, "needs method = 'lanczos' (a dense Hessian is computed in one process)"
        )
    for other in ("structure", "trajectory"):
        if getattr(s, other):
            raise ConfigError(f"metrics.hessian.{other}", True, f"is computed in one process: drop {name} or this")
    return {name: value}


def _compute(
    run: MetricRun,
    s: HessianSettings,
    obj: Objective,
    source: Objective | LinearOperator,
    theta: Any,
    index: int,
    method: str,
) -> MetricOutput:
    """The metric on ``source``: the Objective at ``theta``, or its (data-parallel) Hessian operator."""
    variant = variant_name(s, method)
    scalars: dict[str, Any] = {
        "hessian.variant": variant,
        "hessian.point": s.point,
        "hessian.epoch": float(run.result.times[index]),
    }
    if s.adversarial is not None:
        scalars["hessian.data"] = describe_data(s.adversarial)
    results: list[SavedResult] = []
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
        results.append(SavedResult(f"{variant}_spectrum", "hessian.spectrum", spectrum))
    elif s.top_k:
        top = top_eigenvalues(source, min(s.top_k, obj.n_params - 1), theta=theta, seed=s.seed)
        results.append(SavedResult(f"{variant}_top_k", "hessian.top_k", top))
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
            else hessian_summary(
                source, theta, method=method, max_params=s.max_params, n_probes=s.n_probes, seed=s.seed
            )
        )
        scalars |= {f"hessian.{k}": v for k, v in dataclasses.asdict(summary).items()}
        results.append(SavedResult(f"{variant}_summary", "hessian.summary", summary))
    if s.density:
        # With the dense spectrum at hand the exact (broadened) density is free; SLQ only when it is not.
        density = (
            density_from_eigenvalues(spectrum.eigenvalues)
            if spectrum is not None
            else spectral_density(source, theta=theta, seed=s.seed)
        )
        results.append(SavedResult(f"{variant}_density", "hessian.density", density))
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
        results.append(SavedResult(f"{variant}_trajectory", "hessian.trajectory", curv))
    if decomposition is not None:
        parts = structure_summary(decomposition)  # the decomposition carries the model's aggregation scale
        scalars |= {
            f"hessian.structure.{k}": v for k, v in dataclasses.asdict(parts).items() if not isinstance(v, np.ndarray)
        }
        results.append(SavedResult(f"{variant}_structure", "hessian.structure", parts))
    return MetricOutput(scalars, tuple(results), variant=variant)


def figures(output: MetricOutput, s: HessianSettings) -> Iterator[tuple[str, Figure]]:
    """The dense spectrum, the top-k eigenvalues, the density, the G + R spectra and the curvature over training,
    where computed; titled with the adversarial inputs where the metric used them."""
    return titled(_figures(output, s), s.adversarial)


def _figures(output: MetricOutput, s: HessianSettings) -> Iterator[tuple[str, Figure]]:
    variant = output.variant or "hessian"
    spectrum = output.result(f"{variant}_spectrum")
    if spectrum is not None:
        yield f"{variant}_spectrum", hplots.plot_spectrum(spectrum)
    top = output.result(f"{variant}_top_k")
    if top is not None:
        yield f"{variant}_top_k", hplots.plot_top_k(top)
    elif spectrum is not None and s.top_k:
        yield f"{variant}_top_k", hplots.plot_top_k(spectrum, s.top_k)
    density = output.result(f"{variant}_density")
    if density is not None:
        yield f"{variant}_density", hplots.plot_density(density)
    structure = output.result(f"{variant}_structure")
    if structure is not None:
        yield f"{variant}_structure", hplots.plot_structure(structure)
    curvature = output.result(f"{variant}_trajectory")
    if curvature is not None:
        yield f"{variant}_over_training", hplots.plot_curvature_over_training(curvature)


def check_against_run(s: HessianSettings, n_train: int, n_params: int) -> None:
    """A dense Hessian asked for on a model above ``max_params``, or a dense one split over workers, fails before
    training."""
    _parallel_route(s, resolved_method(s, n_params))
    if s.method == "dense" and n_params > s.max_params:
        raise ConfigError(
            "metrics.hessian.method",
            "dense",
            f"the model has {n_params} parameters, above max_params = {s.max_params}; raise max_params or use "
            "'lanczos' or 'auto'",
        )


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Spectral densities of one run per cell (the lowest seed), each run's default variant
    (:func:`qlandscape.runs.variants.default`: the one its config computed, else the latest)."""
    rows = view.rows_with_result("hessian", "_density")
    grid = result_grid(
        rows,
        "hessian_density",
        view.result_loader("hessian", "_density", SpectralDensity),
        view.row_axis,
        view.col_axis,
    )
    if grid is not None:
        methods = sorted({density_method(d) for row in grid.cells for d in row if d is not None})
        yield (
            "spectral_densities",
            f"Hessian spectral densities, {' and '.join(methods)}; one run per line: the lowest seed",
            plot_density_grid(grid),
        )
