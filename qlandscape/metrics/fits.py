"""Fitting how a variance decays with circuit size: log-linear least squares weighted by standard errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats


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
