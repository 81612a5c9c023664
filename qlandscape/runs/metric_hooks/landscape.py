"""What the ``landscape`` run metric (:mod:`qlandscape.runs.metric_specs.landscape`) does: the slice or the
full-period scan, its figures and the report's contour grids. Loaded when the metric is first computed, drawn or
checked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core import io
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import (
    circuit_angles,
    hessian_directions,
    orthogonalize,
    pca_directions,
    random_direction,
    resolve_normalization,
)
from qlandscape.metrics.landscape.fourier import fourier_spectrum
from qlandscape.metrics.landscape.results import FourierSpectrum, Slice2D
from qlandscape.metrics.landscape.slices import (
    check_grid_size,
    grid_from_range,
    project_onto_plane,
    slice_2d,
    slice_pca,
    slice_period,
)
from qlandscape.metrics.sweeps import result_grid
from qlandscape.plots import landscape as lplots
from qlandscape.plots.sweeps import plot_landscape_grid
from qlandscape.runs.adversarial_data import describe_data
from qlandscape.runs.metric_hooks.evaluation_data import evaluation_objective, titled
from qlandscape.runs.metric_spec import MetricOutput, MetricRun, SavedResult, SweepView, point_on_trajectory
from qlandscape.runs.metric_specs.landscape import (
    CLASSICAL_HALF_WIDTH,
    QNN_HALF_WIDTH,
    LandscapeSettings,
    check_combination,
    resolved_grid,
    variant_name,
)
from qlandscape.runs.variants import variants

__all__ = ["resolved_range", "compute", "check_against_run", "figures", "sweep_figures"]


def resolved_range(s: LandscapeSettings, objective: Objective, normalization: str) -> Any:
    """The half-width (or [low, high]): the setting, or π/2 for unnormalised random directions on a model with
    circuit angles (radians), 1 otherwise."""
    if s.range != "auto":
        return s.range
    radians = s.directions == "random" and normalization == "none" and circuit_angles(objective) is not None
    return QNN_HALF_WIDTH if radians else CLASSICAL_HALF_WIDTH


def compute(run: MetricRun, s: LandscapeSettings) -> MetricOutput:
    """The slice, with the loss of every split on the grid and the trajectory projected onto the plane (and the
    Fourier spectrum of a periodic scan)."""
    check_combination(s)
    splits = list(s.splits)
    grid = resolved_grid(s)
    index, theta = point_on_trajectory(run.result, s.point)
    budget = {"chunk_size": s.chunk_size, "memory_budget": s.memory_budget}
    obj = evaluation_objective(run, splits[0], s.adversarial, theta, "landscape", progress=s.progress, **budget)
    others = {sp: evaluation_objective(run, sp, s.adversarial, theta, "landscape", **budget) for sp in splits[1:]}
    normalization = "none"
    spectrum: FourierSpectrum | None = None
    if s.directions == "periodic":
        result = slice_period(
            obj,
            center=theta,
            resolution=grid,
            seed=s.seed,
            eval_objectives=others,
            split=splits[0],
            batch=s.batch,
            progress=s.progress,
        )
        spectrum = fourier_spectrum(result, low_cutoff=s.low_frequencies)
    elif s.directions == "pca":
        result = slice_pca(
            obj,
            pca_directions(run.result.trajectory[: index + 1]),
            resolution=grid,
            padding=float(s.padding),
            eval_objectives=others,
            split=splits[0],
            batch=s.batch,
            progress=s.progress,
        )
    else:
        if s.directions == "random":
            normalization = resolve_normalization(obj, s.normalization)
            d1 = random_direction(obj, normalization=normalization, seed=s.seed, center=theta)
            d2 = random_direction(obj, normalization=normalization, seed=s.seed + 1, center=theta)
            d1, d2 = orthogonalize(d1, d2)
        else:
            hd = hessian_directions(obj, theta, k=2, seed=s.seed)
            d1, d2 = hd.directions[-1], hd.directions[0]
        values = grid_from_range(resolved_range(s, obj, normalization), grid)
        result = slice_2d(
            obj,
            d1,
            d2,
            center=theta,
            alphas=values,
            betas=values,
            eval_objectives=others,
            split=splits[0],
            trajectory=project_onto_plane(run.result.trajectory, theta, d1, d2),
            direction_kind=s.directions,
            normalization=normalization,
            batch=s.batch,
            progress=s.progress,
        )
    variant = variant_name(s.directions, normalization, s.point, s.seed, s.adversarial)
    scalars: dict[str, Any] = {
        "landscape.variant": variant,
        "landscape.directions": s.directions,
        "landscape.normalization": result.normalization,
        "landscape.grid": grid,
        "landscape.center_loss": float(result.center_losses[0]),
        "landscape.max_loss": float(np.max(result.losses[0])),
        "landscape.min_loss": float(np.min(result.losses[0])),
    }
    if s.adversarial is not None:
        scalars["landscape.data"] = describe_data(s.adversarial)
    steps = np.asarray(result.radians_per_step, dtype=np.float64)
    if np.any(np.isfinite(steps)):
        scalars["landscape.radians_per_step"] = float(np.nanmax(steps))
    if result.notes:
        scalars["landscape.note"] = "; ".join(result.notes)
    saved = [SavedResult(variant, "landscape", result)]
    if spectrum is not None:
        scalars["landscape.fourier_low_fraction"] = spectrum.low_fraction
        scalars["landscape.fourier_low_cutoff"] = spectrum.low_cutoff
        saved.append(SavedResult(f"{variant}_fourier", "landscape.fourier", spectrum))
    return MetricOutput(scalars, tuple(saved), variant=variant)


def check_against_run(s: LandscapeSettings, n_train: int, n_params: int) -> None:
    """The grid's memory and the settings that exclude each other, before training: a grid that cannot fit must
    not wait for the training to end."""
    check_combination(s)
    grid = resolved_grid(s)
    check_grid_size(grid, grid, len(s.splits), field="metrics.landscape.grid", value=grid)


def figures(output: MetricOutput, s: LandscapeSettings) -> Iterator[tuple[str, Figure]]:
    """For every split: the loss contour and the loss and error contours side by side; the surface and the
    trajectory on the plane (first split); the Fourier spectrum of a periodic scan. Titled with the adversarial
    inputs where the metric used them."""
    return titled(_figures(output, s), s.adversarial)


def _figures(output: MetricOutput, s: LandscapeSettings) -> Iterator[tuple[str, Figure]]:
    variant = output.variant or "landscape"
    result: Slice2D = output.result(variant)
    for i, split in enumerate(result.splits):
        tail = "" if i == 0 else f"_{split}"
        yield f"{variant}_contour{tail}", lplots.plot_contour(result, split=split, log_scale=s.log_scale)
        yield f"{variant}_loss_and_error{tail}", lplots.plot_loss_and_error(result, split=split, log_scale=s.log_scale)
    yield f"{variant}_surface", lplots.plot_surface(result, log_scale=s.log_scale)
    if result.has_trajectory:
        yield f"{variant}_trajectory", lplots.plot_trajectory(result)
    spectrum = output.result(f"{variant}_fourier")
    if spectrum is not None:
        yield f"{variant}_fourier", lplots.plot_fourier(spectrum)


def _slice_files(view: SweepView) -> dict[str, dict[str, Path]]:
    """For every variant name that a run below the report holds: each row's id -> its result file."""
    found: dict[str, dict[str, Path]] = {}
    for row in view.rows:
        folder = view.directory / row["path"]
        try:
            info = io.read_json(folder / "run.json")
        except (OSError, ValueError):
            continue
        for variant in variants(info, "landscape", folder):
            relative = variant.result_file()
            if relative is not None:
                found.setdefault(variant.name, {})[row["id"]] = folder / relative
    return found


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Contours of one run per cell (the lowest seed), one figure per variant: ``landscape_grid`` for the variant
    most runs hold (the sweep's own), ``landscape_grid_<kind>`` for each other."""
    files = _slice_files(view)
    counts = Counter({name: len(rows) for name, rows in files.items()})
    for rank, (name, _) in enumerate(counts.most_common()):
        paths = files[name]
        rows = [r for r in view.rows if r["id"] in paths]
        grid = result_grid(
            rows, name, lambda row, p=paths: io.load_result(Slice2D, p[row["id"]]), view.row_axis, view.col_axis
        )
        if grid is None:
            continue
        kind = name.removeprefix("landscape_").removeprefix("landscape") or "landscape"
        file = "landscape_grid" if rank == 0 else f"landscape_grid_{kind}"
        yield file, f"Loss landscape contours, {kind} (one run per cell: the lowest seed)", plot_landscape_grid(grid)
