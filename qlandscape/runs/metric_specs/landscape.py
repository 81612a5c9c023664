"""The ``landscape`` run metric: a 2D slice of the loss around one point of the trajectory, on a random,
Hessian-eigenvector or PCA-of-the-trajectory plane (with the trajectory projected onto it), or a full-period scan of
a QNN with its 2-D Fourier spectrum.

Defaults that resolve the landscape: on a model with circuit angles (a PatchQNN) random directions stay in radians
(normalisation ``auto`` = ``none``) and the grid spans ±π/2 on 21 points, a step of about 0.157 rad per angle (the
RMS angle entry of an unnormalised direction is about 1): a quarter period on each side of the centre, fine enough
that a landscape whose angles enter through cos/sin is drawn without jagged under-sampling. Filter normalisation
of angles would scale a direction by the norm of the angles, which depends on which multiple of 2π each angle sits
at (the demo's slice spanned ±29 rad per axis). Classical nets keep Li et al.'s filter normalisation and a
half-width of 1. A slice whose step exceeds 0.3 rad on a QNN is still computed, with a warning and a note in the
result and in ``run.json`` (``landscape.note``). ``directions = "periodic"`` scans one full period [-π, π)² of a
plane of integer directions (32 points per axis by default) and adds its Fourier spectrum (``landscape.fourier_*``).

Results accumulate by variant (:mod:`qlandscape.runs.variants`): each plane kind is kept under its own name
(``landscape_random_none``, ``landscape_random_filter``, ``landscape_pca``, ``landscape_hessian``,
``landscape_periodic``; ``_init`` / ``_best`` for another point, ``_seed<n>`` for other random directions), with
figures ``<variant>_contour``, ``_surface``, ``_trajectory``, ``_loss_and_error`` (loss and error contours side by
side), ``_contour_<split>`` and ``_loss_and_error_<split>`` for every further split, and ``_fourier``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core import io
from qlandscape.core.errors import ConfigError, is_finite_number, is_integer
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import (
    NORMALIZATION_CHOICES,
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
    PERIOD_RESOLUTION,
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
    number,
    point_on_trajectory,
    value,
)
from qlandscape.runs.variants import variants

DIRECTIONS = ("random", "hessian", "pca", "periodic")
LOCAL_RESOLUTION = 21  # points per axis of a local slice
QNN_HALF_WIDTH = math.pi / 2  # radians: with 21 points, 0.157 rad per step
CLASSICAL_HALF_WIDTH = 1.0  # Li et al. 2018, in units of the filter-normalised direction

__all__ = ["LandscapeSettings", "SPEC"]


def _is_range(span: Any) -> bool:
    if span == "auto":
        return True
    if isinstance(span, (list, tuple)):
        return len(span) == 2 and all(map(is_finite_number, span)) and span[0] < span[1]
    return is_finite_number(span) and span > 0


def _is_grid(points: Any) -> bool:
    return points == "auto" or (is_integer(points) and points >= 2)


def _is_splits(splits: Any) -> bool:
    return isinstance(splits, (list, tuple)) and bool(splits) and all(sp in SPLITS for sp in splits)


@dataclass(frozen=True)
class LandscapeSettings:
    """Settings of the ``landscape`` metric."""

    directions: str = choice(
        "random",
        DIRECTIONS,
        "the plane: random directions, the top and bottom Hessian eigenvectors, the trajectory's principal "
        "components, or a full-period scan of a QNN's circuit angles with its Fourier spectrum",
    )
    normalization: str = choice(
        "auto",
        NORMALIZATION_CHOICES,
        "for random directions; auto: none (radians) for a QNN, Li et al. 2018 filter normalisation otherwise",
    )
    grid: Any = value(
        "auto",
        _is_grid,
        "expected an integer >= 2 or 'auto'",
        f"points per axis; auto: {LOCAL_RESOLUTION}, or {PERIOD_RESOLUTION} for the periodic scan",
    )
    range: Any = value(
        "auto",
        _is_range,
        "expected a positive half-width, [low, high] with low < high, or 'auto'",
        "half-width of the grid, or [low, high] (random and hessian directions); auto: π/2 for a QNN's "
        "directions in radians, 1 otherwise",
    )
    point: str = choice("final", POINTS, "the centre: final parameters, lowest-training-loss epoch, or initialisation")
    splits: tuple[str, ...] = value(
        ("train",),
        _is_splits,
        "expected a non-empty list of 'train' and/or 'test'",
        "evaluation sets, each drawn (comma-separated: train,test)",
    )
    seed: int = integer(0, 0, "seed of the random (or periodic) directions")
    chunk_size: int | None = integer(None, 1, "samples per chunk for large evaluation sets")
    padding: float = number(5.0, 0, "radians beyond the trajectory (pca)")
    low_frequencies: int = integer(
        2, 0, "periodic scan: the spectrum's low frequencies, max(|k_α|, |k_β|) <= this many cycles per 2π"
    )
    log_scale: bool = flag(False, "log-scale contour levels")
    batch: int | None = integer(None, 1, "grid points evaluated at once (none: as many as fit)")
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)


def resolved_grid(s: LandscapeSettings) -> int:
    """Points per axis: the setting, or 21 (32 for the periodic scan)."""
    if s.grid != "auto":
        return int(s.grid)
    return PERIOD_RESOLUTION if s.directions == "periodic" else LOCAL_RESOLUTION


def resolved_range(s: LandscapeSettings, objective: Objective, normalization: str) -> Any:
    """The half-width (or [low, high]): the setting, or π/2 for unnormalised random directions on a model with
    circuit angles (radians), 1 otherwise."""
    if s.range != "auto":
        return s.range
    radians = s.directions == "random" and normalization == "none" and circuit_angles(objective) is not None
    return QNN_HALF_WIDTH if radians else CLASSICAL_HALF_WIDTH


def variant_name(directions: str, normalization: str, point: str, seed: int) -> str:
    """The variant a slice is kept under: ``landscape_<directions>`` (+ ``_<normalisation>`` for random directions,
    ``_<point>`` off the final point, ``_seed<n>`` for other random or periodic directions)."""
    parts = ["landscape", directions]
    if directions == "random":
        parts.append(normalization)
    if point != "final":
        parts.append(point)
    if directions in ("random", "periodic") and seed != 0:
        parts.append(f"seed{seed}")
    return "_".join(parts)


def _check_combination(s: LandscapeSettings) -> None:
    if s.directions == "periodic" and s.range != "auto":
        raise ConfigError(
            "metrics.landscape.range",
            s.range,
            "the periodic scan always spans one period [-π, π); leave range at 'auto'",
        )


def compute(run: MetricRun, s: LandscapeSettings) -> MetricOutput:
    """The slice, with the loss of every split on the grid and the trajectory projected onto the plane (and the
    Fourier spectrum of a periodic scan)."""
    _check_combination(s)
    splits = list(s.splits)
    grid = resolved_grid(s)
    obj = run.objective(splits[0], chunk_size=s.chunk_size, progress=s.progress)
    others = {sp: run.objective(sp, chunk_size=s.chunk_size) for sp in splits[1:]}
    index, theta = point_on_trajectory(run.result, s.point)
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
    variant = variant_name(s.directions, normalization, s.point, s.seed)
    scalars: dict[str, Any] = {
        "landscape.variant": variant,
        "landscape.directions": s.directions,
        "landscape.normalization": result.normalization,
        "landscape.grid": grid,
        "landscape.center_loss": float(result.center_losses[0]),
        "landscape.max_loss": float(np.max(result.losses[0])),
        "landscape.min_loss": float(np.min(result.losses[0])),
    }
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
    _check_combination(s)
    grid = resolved_grid(s)
    check_grid_size(grid, grid, len(s.splits), field="metrics.landscape.grid", value=grid)


def figures(output: MetricOutput, s: LandscapeSettings) -> Iterator[tuple[str, Figure]]:
    """For every split: the loss contour and the loss and error contours side by side; the surface and the
    trajectory on the plane (first split); the Fourier spectrum of a periodic scan."""
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


SPEC = MetricSpec(
    name="landscape",
    help="2D loss-landscape slice of a run (added to its run directory; each kind of plane is kept)",
    settings=LandscapeSettings,
    compute=compute,
    figures=figures,
    headline=(
        Headline("landscape.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline("landscape.center_loss", "loss at the centre of the slice", "centre loss"),
        Headline("landscape.min_loss", "lowest loss on the slice", "min loss", summary=False),
        Headline("landscape.max_loss", "highest loss on the slice", "max loss", summary=False),
        Headline(
            "landscape.radians_per_step",
            "grid step in radians (RMS circuit-angle change)",
            "rad/step",
            summary=False,
        ),
        Headline(
            "landscape.fourier_low_fraction",
            "low-frequency share of the variance (periodic)",
            "low-frequency share",
            summary=False,
        ),
        Headline("landscape.note", "note", "note", summary=False),
    ),
    check_against_run=check_against_run,
    sweep_figures=sweep_figures,
)
