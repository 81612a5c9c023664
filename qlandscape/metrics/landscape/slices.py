"""Loss-landscape slices: L(θ + αδ) on a line and L(θ + αδ + βη) on a plane, on one or more data splits.

Grid points are evaluated in batches by :func:`qlandscape.metrics.landscape.evaluation.evaluate_points`. The
results (:class:`Slice1D`, :class:`Slice2D`, with the grid layout convention) live in
:mod:`qlandscape.metrics.landscape.results`; the directions live in :mod:`qlandscape.metrics.landscape.directions`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.core.memory import check_fits, format_seconds
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import (
    DIRECTION_KINDS,
    NORMALIZATIONS,
    PCADirections,
    as_center,
    as_direction,
    circuit_angles,
    orthogonalize,
    periodic_directions,
)
from qlandscape.metrics.landscape.evaluation import evaluate_points, split_objectives
from qlandscape.metrics.landscape.results import Slice1D, Slice2D

log = logging.getLogger(__name__)

__all__ = [
    "check_grid_size",
    "grid_bytes",
    "grid_from_range",
    "pca_plane_grid",
    "period_grid",
    "project_onto_plane",
    "radians_per_step",
    "slice_1d",
    "slice_2d",
    "slice_pca",
    "slice_period",
]

# The largest grid step, in radians of a circuit angle, that resolves a QNN landscape: about a twentieth of the 2π
# period. Coarser slices are still computed, with a warning and a note in the result.
MAX_RADIANS_PER_STEP = 0.3
PERIOD_RESOLUTION = 32  # points per axis of a full-period scan: steps of 2π/32 = 0.196 rad, frequencies up to 16


# ------------------------------------------------------------------------------------------------ grids
def grid_from_range(range_: float | Sequence[float], resolution: int) -> np.ndarray:
    """``resolution`` evenly spaced values over ``range_`` (a number r means [−r, r], else a pair (lo, hi)).

    A value within round-off of zero is set to exactly 0, so the centre of a symmetric odd grid is the centre point.
    """
    resolution = check_positive_int("resolution", resolution, minimum=2)
    if np.ndim(range_) == 0:
        r = float(range_)
        if not np.isfinite(r) or r <= 0:
            raise ConfigError("range", range_, "expected a finite positive half-width or a pair (lo, hi)")
        lo, hi = -r, r
    else:
        pair = np.asarray(range_, dtype=np.float64)
        if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not pair[0] < pair[1]:
            raise ConfigError("range", tuple(np.ravel(range_).tolist()), "expected a finite pair (lo, hi), lo < hi")
        lo, hi = float(pair[0]), float(pair[1])
    grid = np.linspace(lo, hi, resolution)
    grid[np.abs(grid) < 1e-12 * (hi - lo)] = 0.0
    return grid


def period_grid(resolution: int) -> np.ndarray:
    """``resolution`` points spaced 2π/resolution over [-π, π), the endpoint left out (it repeats -π on a periodic
    landscape); 0 is a point of the grid when ``resolution`` is even."""
    resolution = check_positive_int("resolution", resolution, minimum=2)
    grid = -np.pi + 2.0 * np.pi * np.arange(resolution) / resolution
    grid[np.abs(grid) < 1e-12] = 0.0
    return grid


def pca_plane_grid(pca: PCADirections, resolution: int = 20, padding: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, betas) covering the projected trajectory and the centre, plus ``padding`` on every side
    (Kawase 2025 padded by 5 radians)."""
    if not np.isfinite(padding) or padding < 0:
        raise ConfigError("padding", padding, "expected a finite number >= 0")
    coords = np.vstack([pca.coordinates, np.zeros((1, 2))])
    lo, hi = coords.min(axis=0) - padding, coords.max(axis=0) + padding
    span = np.maximum(hi - lo, 1e-12)
    hi = lo + span
    return grid_from_range((lo[0], hi[0]), resolution), grid_from_range((lo[1], hi[1]), resolution)


def project_onto_plane(points: np.ndarray, center: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """(α, β) coordinates (T, 2) of parameter points (T, P) relative to ``center``, by least squares in the plane
    spanned by d1, d2 (exact dot products when the directions are orthonormal)."""
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    basis = np.stack([np.asarray(d1, dtype=np.float64), np.asarray(d2, dtype=np.float64)])
    if pts.shape[1] != basis.shape[1] or np.shape(center) != (basis.shape[1],):
        raise ConfigError("points", pts.shape, f"expected (T, {basis.shape[1]}) points and a matching center")
    gram = basis @ basis.T
    return np.linalg.solve(gram, basis @ (pts - center).T).T


def radians_per_step(direction: np.ndarray, values: np.ndarray, angles: slice | None) -> float:
    """The RMS change of a circuit angle between neighbouring grid points along ``direction``: the grid's largest
    spacing times the root mean square of the direction's non-zero entries in ``angles`` (the angles it moves); NaN
    without angles, 0 when it moves none."""
    if angles is None or angles.stop <= angles.start or len(values) < 2:
        return float("nan")
    moved = np.asarray(direction, dtype=np.float64)[angles]
    moved = moved[moved != 0]
    if moved.size == 0:
        return 0.0
    step = float(np.max(np.diff(np.sort(np.asarray(values, dtype=np.float64)))))
    return step * float(np.sqrt(np.mean(moved**2)))


def _step_notes(steps: Sequence[float], axes: Sequence[str]) -> tuple[str, ...]:
    """A note (also logged as a warning) when the step in radians along some axis exceeds the limit."""
    coarse = [
        f"{step:.3g} rad along {axis}"
        for step, axis in zip(steps, axes, strict=True)
        if np.isfinite(step) and step > MAX_RADIANS_PER_STEP
    ]
    if not coarse:
        return ()
    note = (
        f"grid step {' and '.join(coarse)} (RMS change of a circuit angle between neighbouring grid points) is above "
        f"{MAX_RADIANS_PER_STEP} rad: the slice may under-sample the landscape (angles are 2π-periodic); use a "
        "smaller range or more grid points"
    )
    log.warning("landscape slice: %s", note)
    return (note,)


# ------------------------------------------------------------------------------------------- sizes
# A grid that takes longer than this announces its estimate and shows its progress, wherever its output goes.
LONG_SECONDS = 60.0


def grid_bytes(n_alphas: int, n_betas: int, n_splits: int) -> float:
    """Memory of a 2-D slice's own arrays: the flat α and β coordinates and the loss and error of every split at
    every point (float64); the points themselves are evaluated a batch at a time."""
    return 8.0 * n_alphas * n_betas * (2 + 2 * n_splits)


def check_grid_size(n_alphas: int, n_betas: int, n_splits: int, *, field: str = "grid", value: object = None) -> None:
    """Refuse, before anything is evaluated, a grid whose arrays exceed the memory budget."""
    check_fits(
        grid_bytes(n_alphas, n_betas, n_splits),
        f"a {n_alphas} x {n_betas} grid ({n_alphas * n_betas:,} points) on {n_splits} split(s) "
        "(coordinates, losses and errors in float64)",
        "use a smaller grid",
        field=field,
        value=(n_alphas if n_alphas == n_betas else (n_alphas, n_betas)) if value is None else value,
    )


def _evaluate_timed(
    objectives: Mapping[str, Objective],
    make_points: Callable[[int, int], np.ndarray],
    n_points: int,
    batch: int | None,
    progress: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluate_points` in the same batches, the first one timed: when the rest would take longer than
    :data:`LONG_SECONDS`, the estimate is logged and the progress shown, wherever the output goes."""
    size = next(iter(objectives.values())).points_per_call() if batch is None else check_positive_int("batch", batch)
    first = min(size, n_points)
    started = time.perf_counter()
    head = evaluate_points(objectives, make_points, first, size, False, desc)
    if first == n_points:
        return head
    remaining = (n_points - first) * (time.perf_counter() - started) / first
    if remaining > LONG_SECONDS:
        log.warning(
            "%s: %s points, about %s to go (measured on the first %s); progress follows, Ctrl-C stops it",
            desc,
            f"{n_points:,}",
            format_seconds(remaining),
            f"{first:,}",
        )
        progress = True
    tail = evaluate_points(
        objectives, lambda start, stop: make_points(first + start, first + stop), n_points - first, size, progress, desc
    )
    return np.concatenate([head[0], tail[0]], axis=1), np.concatenate([head[1], tail[1]], axis=1)


# ------------------------------------------------------------------------------------------- evaluation
def _check_values(field: str, values: np.ndarray | Sequence[float] | None, default: np.ndarray) -> np.ndarray:
    arr = default if values is None else np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ConfigError(field, arr.shape, "expected a 1-D array of at least 2 values")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(field, arr.tolist(), "every value must be finite")
    return arr


def _center_losses(objectives: Mapping[str, Objective], center: np.ndarray) -> np.ndarray:
    return np.array([float(obj.loss(torch.as_tensor(center))) for obj in objectives.values()])


def _check_labels(direction_kind: str, normalization: str) -> None:
    check_choice("direction_kind", direction_kind, DIRECTION_KINDS)
    check_choice("normalization", normalization, NORMALIZATIONS)


def slice_1d(
    objective: Objective,
    direction: np.ndarray,
    *,
    center: np.ndarray | None = None,
    alphas: np.ndarray | Sequence[float] | None = None,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    batch: int | None = None,
    progress: bool = False,
    direction_kind: str = "custom",
    normalization: str = "none",
) -> Slice1D:
    """Loss and error at ``center + α·direction`` for each α (default ``linspace(-1, 1, 51)``).

    ``objective``'s data is the split named ``split``; ``eval_objectives`` adds others, e.g. ``{"test": obj}``.
    ``direction_kind`` and ``normalization`` only label the result (titles, reports).
    """
    _check_labels(direction_kind, normalization)
    theta = as_center(objective, center)
    d = as_direction(objective, direction)
    alphas = _check_values("alphas", alphas, grid_from_range(1.0, 51))
    objs = split_objectives(objective, eval_objectives, split)
    step = radians_per_step(d, alphas, circuit_angles(objective))
    notes = _step_notes([step], ["the direction"])
    losses, errors = _evaluate_timed(
        objs, lambda a, b: theta + alphas[a:b, None] * d, len(alphas), batch, progress, "1-D slice"
    )
    return Slice1D(
        alphas=alphas,
        losses=losses,
        errors=errors,
        center_losses=_center_losses(objs, theta),
        splits=tuple(objs),
        direction_kind=direction_kind,
        normalization=normalization,
        direction_norm=float(np.linalg.norm(d)),
        loss_name=str(objective.loss_name),
        radians_per_step=step,
        notes=notes,
    )


def slice_2d(
    objective: Objective,
    d1: np.ndarray,
    d2: np.ndarray,
    *,
    center: np.ndarray | None = None,
    alphas: np.ndarray | Sequence[float] | None = None,
    betas: np.ndarray | Sequence[float] | None = None,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    batch: int | None = None,
    progress: bool = False,
    orthogonal: bool = False,
    trajectory: np.ndarray | None = None,
    direction_kind: str = "custom",
    normalization: str = "none",
    explained_variance_ratio: Sequence[float] | None = None,
) -> Slice2D:
    """Loss and error on the grid ``center + α·d1 + β·d2``; grids are (len(betas), len(alphas)).

    ``alphas``/``betas`` default to ``linspace(-1, 1, 21)``. ``orthogonal=True`` first Gram-Schmidts d2 against
    d1 (keeping d2's norm). ``trajectory`` is an optional (T, 2) array of (α, β) coordinates to overlay (project
    parameter points with :func:`project_onto_plane`). The label arguments only annotate the result.
    """
    _check_labels(direction_kind, normalization)
    theta = as_center(objective, center)
    d1 = as_direction(objective, d1, "d1")
    d2 = as_direction(objective, d2, "d2")
    if orthogonal:
        d1, d2 = orthogonalize(d1, d2)
    alphas = _check_values("alphas", alphas, grid_from_range(1.0, 21))
    betas = _check_values("betas", betas, grid_from_range(1.0, 21))
    traj = np.zeros((0, 2)) if trajectory is None else np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 2 or not np.all(np.isfinite(traj)):
        raise ConfigError("trajectory", traj.shape, "expected finite (α, β) coordinates of shape (T, 2)")
    evr = np.full(2, np.nan) if explained_variance_ratio is None else np.asarray(explained_variance_ratio, float)
    if evr.shape != (2,):  # the plots label the axes with PC1 and PC2's shares
        raise ConfigError("explained_variance_ratio", evr.tolist(), "expected two fractions (PC1, PC2) or None")
    objs = split_objectives(objective, eval_objectives, split)
    check_grid_size(len(alphas), len(betas), len(objs))
    angles = circuit_angles(objective)
    steps = np.array([radians_per_step(d1, alphas, angles), radians_per_step(d2, betas, angles)])
    notes = _step_notes(steps, ["α (d1)", "β (d2)"])
    a_flat = np.tile(alphas, len(betas))
    b_flat = np.repeat(betas, len(alphas))

    def points(start: int, stop: int) -> np.ndarray:
        return theta + a_flat[start:stop, None] * d1 + b_flat[start:stop, None] * d2

    losses, errors = _evaluate_timed(objs, points, len(a_flat), batch, progress, "2-D slice")
    shape = (len(objs), len(betas), len(alphas))
    norms = np.array([np.linalg.norm(d1), np.linalg.norm(d2)])
    return Slice2D(
        alphas=alphas,
        betas=betas,
        losses=losses.reshape(shape),
        errors=errors.reshape(shape),
        center_losses=_center_losses(objs, theta),
        splits=tuple(objs),
        direction_kind=direction_kind,
        normalization=normalization,
        direction_norms=norms,
        direction_cosine=float(d1 @ d2 / (norms[0] * norms[1])),
        trajectory=traj,
        explained_variance_ratio=evr,
        loss_name=str(objective.loss_name),
        radians_per_step=steps,
        notes=notes,
    )


def slice_pca(
    objective: Objective,
    pca: PCADirections,
    *,
    resolution: int = 20,
    padding: float = 5.0,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    batch: int | None = None,
    progress: bool = False,
) -> Slice2D:
    """The landscape on the PCA plane of a trajectory (Li et al. 2018; Kawase 2025's 20×20 grid padded by 5 rad),
    centred on the final point, with the projected trajectory attached for overlay."""
    resolution = check_positive_int("resolution", resolution, minimum=2)
    check_grid_size(resolution, resolution, 1 + len(eval_objectives or {}), field="resolution")
    alphas, betas = pca_plane_grid(pca, resolution, padding)
    return slice_2d(
        objective,
        pca.directions[0],
        pca.directions[1],
        center=pca.center,
        alphas=alphas,
        betas=betas,
        eval_objectives=eval_objectives,
        split=split,
        batch=batch,
        progress=progress,
        trajectory=pca.coordinates,
        direction_kind="pca",
        normalization="none",
        explained_variance_ratio=pca.explained_variance_ratio,
    )


def slice_period(
    objective: Objective,
    *,
    center: np.ndarray | None = None,
    resolution: int = PERIOD_RESOLUTION,
    seed: int = 0,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    batch: int | None = None,
    progress: bool = False,
) -> Slice2D:
    """The full period of a QNN's landscape on a plane: α and β over [-π, π) (``resolution`` points each, the
    endpoint left out) along the integer directions of :func:`periodic_directions` (seeded by ``seed``) around
    ``center``. The loss is 2π-periodic in α and β, so the grid is one period of a periodic function: the input of
    :func:`qlandscape.metrics.landscape.fourier.fourier_spectrum`. Raises :class:`ConfigError` for a model
    without circuit angles."""
    d1, d2 = periodic_directions(objective, seed=seed)
    grid = period_grid(resolution)
    return slice_2d(
        objective,
        d1,
        d2,
        center=center,
        alphas=grid,
        betas=grid,
        eval_objectives=eval_objectives,
        split=split,
        batch=batch,
        progress=progress,
        direction_kind="periodic",
        normalization="none",
    )
