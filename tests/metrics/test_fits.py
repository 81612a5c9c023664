"""Power-law fits in the patch count: exact recovery, the confidence interval, skipped points, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.fits import PowerLawFit, fit_power_law


def test_power_law_recovers_an_exact_power_law():
    fit = fit_power_law([1, 4, 9, 16], 3.0 * np.array([1, 4, 9, 16.0]) ** -0.7)
    assert isinstance(fit, PowerLawFit)
    assert abs(fit.exponent + 0.7) < 1e-12 and abs(fit.prefactor - 3.0) < 1e-10
    assert fit.n_points == 4
    assert fit.exponent_high - fit.exponent_low < 1e-10  # no scatter, no width


def test_power_law_interval_is_the_t_interval_of_the_log_log_slope():
    ns = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    values = 2.0 * ns**-1.3 * np.exp(np.array([0.05, -0.03, 0.02, -0.06, 0.04, -0.01]))
    fit = fit_power_law(ns, values, confidence=0.9)
    # independent: the slope, its standard error and the t quantile from the textbook formulas
    lx, ly = np.log(ns), np.log(values)
    slope = np.sum((lx - lx.mean()) * (ly - ly.mean())) / np.sum((lx - lx.mean()) ** 2)
    resid = ly - (ly.mean() + slope * (lx - lx.mean()))
    stderr = np.sqrt(np.sum(resid**2) / (ns.size - 2) / np.sum((lx - lx.mean()) ** 2))
    half = stats.t.ppf(0.95, ns.size - 2) * stderr
    assert fit.exponent == pytest.approx(slope, abs=1e-12)
    assert (fit.exponent_low, fit.exponent_high) == pytest.approx((slope - half, slope + half), abs=1e-12)
    wider = fit_power_law(ns, values, confidence=0.99)
    assert wider.exponent_high - wider.exponent_low > fit.exponent_high - fit.exponent_low


def test_power_law_skips_unusable_points_and_refuses_two():
    fit = fit_power_law([1, 2, 4, 0, 8], [1.0, 0.5, 0.25, 7.0, np.nan])
    assert fit.n_points == 3 and fit.exponent == pytest.approx(-1.0, abs=1e-12)
    # two points give an exponent without an interval (0.1 reported "exponent -0.5 [nan, nan]"): no fit, said so
    with pytest.raises(ConfigError, match="3 or more distinct N"):
        fit_power_law([1, 4], [2.0, 1.0])
    with pytest.raises(ConfigError, match="2 distinct N"):
        fit_power_law([1, 4, 4, 1], [2.0, 1.0, 1.1, 2.1])


def test_power_law_rejects_bad_input():
    with pytest.raises(ConfigError, match="points"):
        fit_power_law([4, 4], [1.0, 2.0])
    with pytest.raises(ConfigError, match="points"):
        fit_power_law([1, 2, 3], [1.0, -2.0, 0.0])
    for confidence in (95, 0.0, 1.0, float("nan"), True):
        with pytest.raises(ConfigError, match="confidence"):
            fit_power_law([1, 2, 4], [1.0, 2.0, 4.1], confidence=confidence)  # NaN interval before
