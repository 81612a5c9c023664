"""Merging results as frozen dataclasses of numpy arrays and plain values (no torch): paths between two models
with their barriers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PATH_KINDS", "BARRIER_DEFINITIONS", "Barriers", "PathResult"]

PATH_KINDS = ("linear", "bezier", "polychain")
# "excess": max_t L(t) − [(1 − t) L(0) + t L(1)]; "max_minus_mean": max_t L(t) − (L(0) + L(1)) / 2
BARRIER_DEFINITIONS = ("excess", "max_minus_mean")


@dataclass(frozen=True)
class Barriers:
    """Both barrier definitions on loss and on error, with where the excess barrier is attained.

    ``excess``: the largest excess of the path over the straight interpolation of the endpoint values (>= 0, 0 on a
    convex loss; DESIGN.md section 5). ``max_minus_mean``: the path's maximum minus the mean of the endpoint values
    (Frankle et al. 2020, Ainsworth et al. 2023; >= 0, and larger than ``excess`` when the endpoints differ).
    """

    loss_excess: float
    loss_max_minus_mean: float
    error_excess: float
    error_max_minus_mean: float
    loss_excess_t: float
    error_excess_t: float


@dataclass(frozen=True)
class PathResult:
    """Loss and error along a path θ(t), t in [0, 1], between two models on one split, with both barriers.

    ``kind``: ``linear``, ``bezier`` (θ(t) = (1−t)² θ_a + 2t(1−t) θ_c + t² θ_b) or ``polychain`` (θ_a → θ_c → θ_b,
    the bend at t = 1/2); ``control`` is θ_c (empty for a line). ``bn_reset``: batch-norm statistics recomputed at
    every point. ``training_loss``: the curve's mean minibatch loss per epoch of its training (empty for a line).
    ``distance``: ||θ_b − θ_a||; ``length``: the path's length summed over the evaluation points.
    """

    kind: str
    ts: np.ndarray
    losses: np.ndarray
    errors: np.ndarray
    barriers: Barriers
    control: np.ndarray
    training_loss: np.ndarray
    split: str
    loss_name: str
    bn_reset: bool
    distance: float
    length: float
    label_a: str = "A"
    label_b: str = "B"
