"""Linear mode connectivity: the loss and error along the segment between two parameter points, and barriers.

Barrier (DESIGN.md section 5): ``max_t L(t) − [(1−t) L(0) + t L(1)]`` on a grid of t including both endpoints, so
it is >= 0 (the endpoints contribute 0) and is 0 on a convex loss. The same on the error rate.
Points on the path are θ_a + t (θ_b − θ_a), with the t = 1 point set to θ_b exactly, so the endpoint values are
exactly L(θ_a) and L(θ_b), and a path from a point to itself has a barrier of exactly 0.

Batch norm: an Objective evaluates in eval mode, with the running statistics recorded during training. Those belong
to one parameter vector; at an interpolated point they are stale, which inflates the measured loss.
:func:`interpolate_with_bn_reset` recomputes them at every point of the line
(:func:`qlandscape.models.classical.recompute_bn_statistics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from qlandscape.core.errors import ConfigError, check_positive_int
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import as_center
from qlandscape.metrics.landscape.evaluation import evaluate_points, split_objectives
from qlandscape.metrics.landscape.results import Interpolation
from qlandscape.models.classical import recompute_bn_statistics

__all__ = [
    "Interpolation",
    "barrier_location",
    "error_barrier",
    "function_space_distance",
    "interpolate",
    "interpolate_with_bn_reset",
    "loss_barrier",
]


def _barrier(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> tuple[float, float]:
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if ts.ndim != 1 or ts.shape != values.shape or ts.shape[0] < 2:
        raise ConfigError("ts, values", (ts.shape, values.shape), "expected two 1-D arrays of the same length >= 2")
    if not np.all(np.isfinite(ts)) or not np.all(np.diff(ts) > 0):
        raise ConfigError("ts", ts.tolist(), "expected finite, strictly increasing values")
    if not np.all(np.isfinite(values)):
        raise ConfigError("values", values.tolist(), "every value must be finite to define a barrier")
    frac = (ts - ts[0]) / (ts[-1] - ts[0])
    excess = values - (values[0] + frac * (values[-1] - values[0]))
    i = int(np.argmax(excess))
    return float(excess[i]), float(ts[i])


def loss_barrier(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> float:
    """``max_t values(t) − linear interpolation of the end values`` (ts increasing; the ends are ts[0], ts[-1])."""
    return _barrier(ts, values)[0]


def barrier_location(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> float:
    """The t at which :func:`loss_barrier` is attained (the first one on ties)."""
    return _barrier(ts, values)[1]


error_barrier = loss_barrier  # the same definition on error rates; a name for readability at call sites


def interpolate(
    objective: Objective,
    theta_a: np.ndarray | torch.Tensor,
    theta_b: np.ndarray | torch.Tensor,
    *,
    n_points: int = 25,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    batch: int | None = None,
    progress: bool = False,
    label_a: str = "θ_a",
    label_b: str = "θ_b",
) -> Interpolation:
    """Loss and error at (1 − t) θ_a + t θ_b for ``n_points`` evenly spaced t in [0, 1], with barriers."""
    shape_a, shape_b = tuple(np.shape(theta_a)), tuple(np.shape(theta_b))
    if shape_a != shape_b:
        raise ConfigError("theta_a, theta_b", (shape_a, shape_b), "the two endpoints must have the same shape")
    n_points = check_positive_int("n_points", n_points, minimum=3)
    a = as_center(objective, theta_a, "theta_a")
    b = as_center(objective, theta_b, "theta_b")
    ts = np.linspace(0.0, 1.0, n_points)
    delta = b - a
    objs = split_objectives(objective, eval_objectives, split)

    def points(start: int, stop: int) -> np.ndarray:
        pts = a + ts[start:stop, None] * delta
        if stop == n_points:
            pts[-1] = b
        return pts

    losses, errors = evaluate_points(objs, points, n_points, batch, progress, "interpolation")
    # a non-finite loss (diverged model) gives a NaN barrier rather than an error after the work is done
    lb = [_barrier(ts, row) if np.all(np.isfinite(row)) else (np.nan, np.nan) for row in losses]
    eb = [_barrier(ts, row) if np.all(np.isfinite(row)) else (np.nan, np.nan) for row in errors]
    return Interpolation(
        ts=ts,
        losses=losses,
        errors=errors,
        loss_barriers=np.array([h for h, _ in lb]),
        error_barriers=np.array([h for h, _ in eb]),
        loss_barrier_ts=np.array([t for _, t in lb]),
        error_barrier_ts=np.array([t for _, t in eb]),
        splits=tuple(objs),
        distance=float(np.linalg.norm(delta)),
        loss_name=str(objective.loss_name),
        label_a=label_a,
        label_b=label_b,
    )


def function_space_distance(
    objective: Objective,
    theta_a: np.ndarray | torch.Tensor,
    theta_b: np.ndarray | torch.Tensor,
    x: torch.Tensor | None = None,
) -> float:
    """Fraction of inputs (default: the objective's evaluation set) on which the argmax predictions differ."""
    a = torch.as_tensor(as_center(objective, theta_a, "theta_a"))
    b = torch.as_tensor(as_center(objective, theta_b, "theta_b"))
    if x is not None and (torch.as_tensor(x).ndim == 0 or torch.as_tensor(x).shape[0] == 0):
        raise ConfigError("x", tuple(torch.as_tensor(x).shape), "expected a non-empty batch of inputs")
    pred_a = objective.outputs(a, x).argmax(-1)
    pred_b = objective.outputs(b, x).argmax(-1)
    return float((pred_a != pred_b).double().mean())


def interpolate_with_bn_reset(
    objective: Objective,
    theta_a: Tensor | np.ndarray,
    theta_b: Tensor | np.ndarray,
    x_stats: Tensor,
    n_points: int = 25,
    *,
    batch_size: int | None = None,
    eval_objectives: Mapping[str, Objective] | None = None,
    split: str = "train",
    progress: bool = False,
) -> Interpolation:
    """Straight-line interpolation where each point's batch-norm statistics are recomputed on ``x_stats``.

    Each point θ(t) = θ_a + t (θ_b − θ_a) is evaluated on the Objective's data (and on each of
    ``eval_objectives``, as in :func:`interpolate`) by a copy of the model whose running statistics come from
    :func:`~qlandscape.models.classical.recompute_bn_statistics` at θ(t) on ``x_stats``. Without batch norm this
    equals the ordinary interpolation.
    """
    n_points = check_positive_int("n_points", n_points, minimum=3)
    splits = split_objectives(objective, eval_objectives, split)
    theta_a, theta_b = objective.as_theta(theta_a), objective.as_theta(theta_b)
    ts = np.linspace(0.0, 1.0, n_points)
    losses, errors = np.zeros((len(splits), n_points)), np.zeros((len(splits), n_points))
    for i, t in enumerate(tqdm(ts, desc="interpolation (BN reset)", disable=not progress)):
        theta = theta_b if i == n_points - 1 else theta_a + float(t) * (theta_b - theta_a)
        model_t = recompute_bn_statistics(objective.model, theta, x_stats, batch_size=batch_size)
        for s, obj in enumerate(splits.values()):
            point = Objective(model_t, obj.x, obj.y, obj.loss_fn, chunk_size=obj.chunk_size)
            losses[s, i] = float(point.loss(theta))
            errors[s, i] = point.error(theta)
    return Interpolation(
        ts=ts,
        losses=losses,
        errors=errors,
        loss_barriers=np.array([loss_barrier(ts, row) for row in losses]),
        error_barriers=np.array([loss_barrier(ts, row) for row in errors]),
        loss_barrier_ts=np.array([barrier_location(ts, row) for row in losses]),
        error_barrier_ts=np.array([barrier_location(ts, row) for row in errors]),
        splits=tuple(splits),
        distance=float(torch.linalg.norm(theta_b - theta_a)),
        loss_name=str(objective.loss_name),
        label_a="θ_a (BN reset)",
        label_b="θ_b (BN reset)",
    )
