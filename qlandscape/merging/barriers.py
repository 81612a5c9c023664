"""Barriers along a path, both definitions, on loss and on error (see :class:`qlandscape.merging.results.Barriers`).

The excess barrier is the one :mod:`qlandscape.metrics.landscape.connectivity` reports; the max-minus-mean barrier
is the one of Frankle et al. (2020) and Ainsworth et al. (2023). Reports label which one a number is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qlandscape.core.errors import ConfigError
from qlandscape.merging.results import Barriers

__all__ = ["excess_barrier", "max_minus_mean_barrier", "barriers"]


def _check(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    ts, values = np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if ts.ndim != 1 or ts.shape != values.shape or ts.shape[0] < 3:
        raise ConfigError("ts, values", (ts.shape, values.shape), "expected two 1-D arrays of one length >= 3")
    if not np.all(np.isfinite(ts)) or not np.all(np.diff(ts) > 0):
        raise ConfigError("ts", ts.tolist(), "expected finite, strictly increasing values")
    return ts, values


def excess_barrier(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """(max_t v(t) − [(1−s) v(t_0) + s v(t_1)], the t where it is attained), s the fraction of the way along;
    NaN for non-finite values (a diverged point)."""
    ts, values = _check(ts, values)
    if not np.all(np.isfinite(values)):
        return float("nan"), float("nan")
    frac = (ts - ts[0]) / (ts[-1] - ts[0])
    excess = values - (values[0] + frac * (values[-1] - values[0]))
    i = int(np.argmax(excess))
    return float(excess[i]), float(ts[i])


def max_minus_mean_barrier(ts: np.ndarray | Sequence[float], values: np.ndarray | Sequence[float]) -> float:
    """max_t v(t) − (v(t_0) + v(t_1)) / 2; NaN for non-finite values."""
    ts, values = _check(ts, values)
    if not np.all(np.isfinite(values)):
        return float("nan")
    return float(values.max() - 0.5 * (values[0] + values[-1]))


def barriers(
    ts: np.ndarray | Sequence[float], losses: np.ndarray | Sequence[float], errors: np.ndarray | Sequence[float]
) -> Barriers:
    """Both barrier definitions of a path's losses and errors."""
    loss_excess, loss_t = excess_barrier(ts, losses)
    error_excess, error_t = excess_barrier(ts, errors)
    return Barriers(
        loss_excess=loss_excess,
        loss_max_minus_mean=max_minus_mean_barrier(ts, losses),
        error_excess=error_excess,
        error_max_minus_mean=max_minus_mean_barrier(ts, errors),
        loss_excess_t=loss_t,
        error_excess_t=error_t,
    )
