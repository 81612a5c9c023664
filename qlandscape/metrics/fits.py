"""Fits of how a metric scales: the decay of a variance with circuit size (log-linear least squares weighted by
standard errors) and a power law in the patch count (log-log least squares)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from qlandscape.core.errors import ConfigError, is_finite_number

__all__ = ["DecayFit", "fit_decay", "PowerLawFit", "fit_power_law"]


class DecayFit(NamedTuple):
    """Weighted least-squares fit of ``log Var = intercept - rate * x`` with a confidence interval on the rate."""

    rate: float
    intercept: float
    rate_se: float
    rate_low: float
    rate_high: float
    chi2_reduced: float
    n_points: int


def fit_decay(
    x: Sequence[float], variance: Sequence[float], standard_error: Sequence[float], *, confidence: float = 0.95
) -> DecayFit:
    """Fit ``log Var = a - b x`` by weighted least squares (weights ``(Var/SE)^2``); b with a t-interval.

    Points with a non-positive variance are skipped. Fewer than two usable points give NaNs.
    """
    x, v, se = (np.asarray(a, dtype=np.float64) for a in (x, variance, standard_error))
    keep = (v > 0) & np.isfinite(v) & np.isfinite(se)
    x, v, se = x[keep], v[keep], se[keep]
    m = int(x.size)
    if m < 2 or np.ptp(x) == 0:
        return DecayFit(*(float("nan"),) * 6, m)
    sigma = np.maximum(se / v, 1e-12)
    w = 1.0 / sigma**2
    design = np.stack([np.ones_like(x), -x], axis=1)
    normal = design.T @ (w[:, None] * design)
    beta = np.linalg.solve(normal, design.T @ (w * np.log(v)))
    resid = np.log(v) - design @ beta
    dof = m - 2
    chi2_red = float((w * resid**2).sum() / dof) if dof > 0 else float("nan")
    cov = np.linalg.inv(normal) * (max(1.0, chi2_red) if dof > 0 else 1.0)
    rate_se = float(math.sqrt(cov[1, 1]))
    q = stats.t.ppf((1 + confidence) / 2, dof) if dof > 0 else stats.norm.ppf((1 + confidence) / 2)
    rate = float(beta[1])
    return DecayFit(rate, float(beta[0]), rate_se, rate - q * rate_se, rate + q * rate_se, chi2_red, m)


@dataclass(frozen=True)
class PowerLawFit:
    """value ≈ prefactor · N^exponent, fitted on log-log axes, with a confidence interval (95% by default) on the
    exponent."""

    exponent: float
    prefactor: float
    exponent_low: float
    exponent_high: float
    n_points: int


# Two points always lie on a line: the exponent would come without any interval. A fit needs a third distinct N.
MIN_POWER_LAW_POINTS = 3


def usable_power_law_points(ns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which points a power-law fit uses: N > 0 and a positive, finite value."""
    ns, values = np.asarray(ns, dtype=float), np.asarray(values, dtype=float)
    return (ns > 0) & (values > 0) & np.isfinite(values)


def distinct_power_law_ns(ns: np.ndarray, values: np.ndarray) -> int:
    """How many distinct N a power-law fit of these points would use."""
    keep = usable_power_law_points(ns, values)
    return int(np.unique(np.asarray(ns, dtype=float)[keep]).size)


def fit_power_law(ns: np.ndarray, values: np.ndarray, confidence: float = 0.95) -> PowerLawFit:
    """Least-squares fit of log(value) = log(prefactor) + exponent · log(N); points with N <= 0 or a non-positive
    or non-finite value are left out. Raises ConfigError for a confidence outside (0, 1) or fewer than
    :data:`MIN_POWER_LAW_POINTS` (3) distinct usable N: through two points any power law fits exactly, with no
    confidence interval."""
    if not (is_finite_number(confidence) and 0 < confidence < 1):
        raise ConfigError("confidence", confidence, "expected a level strictly between 0 and 1 (e.g. 0.95)")
    ns, values = np.asarray(ns, dtype=float), np.asarray(values, dtype=float)
    keep = usable_power_law_points(ns, values)
    distinct = np.unique(ns[keep]).size
    if distinct < MIN_POWER_LAW_POINTS:
        raise ConfigError(
            "points",
            f"{int(keep.sum())} usable at {distinct} distinct N",
            f"a power law needs positive values at {MIN_POWER_LAW_POINTS} or more distinct N (two points give an "
            "exponent without a confidence interval)",
        )
    fit = stats.linregress(np.log(ns[keep]), np.log(values[keep]))
    dof = int(keep.sum()) - 2
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * fit.stderr)
    return PowerLawFit(
        exponent=float(fit.slope),
        prefactor=float(np.exp(fit.intercept)),
        exponent_low=float(fit.slope - half),
        exponent_high=float(fit.slope + half),
        n_points=int(keep.sum()),
    )
