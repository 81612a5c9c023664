"""The ``landscape`` run metric: a 2D slice of the loss around one point of the trajectory, on a random,
Hessian-eigenvector or PCA-of-the-trajectory plane, with the trajectory projected onto it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from qlandscape.core.errors import is_finite_number
from qlandscape.metrics.landscape.directions import (
    hessian_directions,
    orthogonalize,
    pca_directions,
    random_direction,
)
from qlandscape.metrics.landscape.results import Slice2D
from qlandscape.metrics.landscape.slices import (
    check_grid_size,
    grid_from_range,
    project_onto_plane,
    slice_2d,
    slice_pca,
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

__all__ = ["LandscapeSettings", "SPEC"]


def _is_range(span: Any) -> bool:
    if isinstance(span, (list, tuple)):
        return len(span) == 2 and all(map(is_finite_number, span)) and span[0] < span[1]
    return is_finite_number(span) and span > 0


def _is_splits(splits: Any) -> bool:
    return isinstance(splits, (list, tuple)) and bool(splits) and all(sp in SPLITS for sp in splits)


@dataclass(frozen=True)
class LandscapeSettings:
    """Settings of the ``landscape`` metric."""

    directions: str = choice(
        "random",
        ("random", "hessian", "pca"),
        "the plane: random directions, the top and "
        "bottom Hessian eigenvectors, or the trajectory's principal components",
    )
    normalization: str = choice(
        "filter",
        ("filter", "patch", "layer", "none"),
        "for random directions (Li et al. 2018 filter normalisation by default)",
    )
    grid: int = integer(21, 2, "points per axis")
    range: Any = value(
        1.0,
        _is_range,
        "expected a positive half-width or [low, high] with low < high",
        "half-width of the grid, or [low, high] (random and hessian directions)",
    )
    point: str = choice("final", POINTS, "the centre: final parameters, lowest-training-loss epoch, or initialisation")
    splits: tuple[str, ...] = value(
        ("train",),
        _is_splits,
        "expected a non-empty list of 'train' and/or 'test'",
        "evaluation sets, the first one drawn (comma-separated: train,test)",
    )
    seed: int = integer(0, 0, "seed of the random directions")
    chunk_size: int | None = integer(None, 1, "samples per chunk for large evaluation sets")
    padding: float = number(5.0, 0, "radians beyond the trajectory (pca)")
    log_scale: bool = flag(False, "log-scale contour levels")
    batch: int | None = integer(None, 1, "grid points evaluated at once (none: as many as fit)")
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)


def compute(run: MetricRun, s: LandscapeSettings) -> MetricOutput:
    """The slice, with the loss of every split on the grid and the trajectory projected onto the plane."""
    splits = list(s.splits)
    obj = run.objective(splits[0], chunk_size=s.chunk_size, progress=s.progress)
    others = {sp: run.objective(sp, chunk_size=s.chunk_size) for sp in splits[1:]}
    index, theta = point_on_trajectory(run.result, s.point)
    if s.directions == "pca":
        result = slice_pca(
            obj,
            pca_directions(run.result.trajectory[: index + 1]),
            resolution=s.grid,
            padding=float(s.padding),
            eval_objectives=others,
            split=splits[0],
            batch=s.batch,
            progress=s.progress,
        )
    else:
        if s.directions == "random":
            d1 = random_direction(obj, normalization=s.normalization, seed=s.seed, center=theta)
            d2 = random_direction(obj, normalization=s.normalization, seed=s.seed + 1, center=theta)
            d1, d2 = orthogonalize(d1, d2)
            normalization = s.normalization
        else:
            hd = hessian_directions(obj, theta, k=2, seed=s.seed)
            d1, d2 = hd.directions[-1], hd.directions[0]
            normalization = "none"
        grid = grid_from_range(s.range, s.grid)
        trajectory = project_onto_plane(run.result.trajectory, theta, d1, d2)
        result = slice_2d(
            obj,
            d1,
            d2,
            center=theta,
            alphas=grid,
            betas=grid,
            eval_objectives=others,
            split=splits[0],
            trajectory=trajectory,
            direction_kind=s.directions,
            normalization=normalization,
            batch=s.batch,
            progress=s.progress,
        )
    scalars = {
        "landscape.directions": s.directions,
        "landscape.grid": s.grid,
        "landscape.center_loss": float(result.center_losses[0]),
        "landscape.max_loss": float(np.max(result.losses[0])),
        "landscape.min_loss": float(np.min(result.losses[0])),
    }
    return MetricOutput(scalars, (SavedResult("landscape", "landscape", result),))


def check_against_run(s: LandscapeSettings, n_train: int, n_params: int) -> None:
    """The grid's memory, before training: a grid that cannot fit must not wait for the training to end."""
    check_grid_size(s.grid, s.grid, len(s.splits), field="metrics.landscape.grid", value=s.grid)


def figures(output: MetricOutput, s: LandscapeSettings) -> Iterator[tuple[str, Figure]]:
    """Contour and surface of the first split, and the trajectory on the plane when it was projected."""
    result = output.result("landscape")
    yield "landscape_contour", lplots.plot_contour(result, log_scale=s.log_scale)
    yield "landscape_surface", lplots.plot_surface(result, log_scale=s.log_scale)
    if result.has_trajectory:
        yield "landscape_trajectory", lplots.plot_trajectory(result)


def sweep_figures(view: SweepView) -> Iterator[tuple[str, str, Figure]]:
    """Contours of one run per cell (the lowest seed)."""
    grid = result_grid(
        view.rows_with("landscape"), "landscape", view.loader("landscape", Slice2D), view.row_axis, view.col_axis
    )
    if grid is not None:
        yield "landscape_grid", "Loss landscape contours (one run per cell: the lowest seed)", plot_landscape_grid(grid)


SPEC = MetricSpec(
    name="landscape",
    help="2D loss-landscape slice of a run (added to its run directory)",
    settings=LandscapeSettings,
    compute=compute,
    figures=figures,
    headline=(
        Headline("landscape.center_loss", "loss at the centre of the slice", "centre loss"),
        Headline("landscape.min_loss", "lowest loss on the slice", "min loss", summary=False),
        Headline("landscape.max_loss", "highest loss on the slice", "max loss", summary=False),
    ),
    check_against_run=check_against_run,
    sweep_figures=sweep_figures,
)
