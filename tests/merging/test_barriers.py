from __future__ import annotations

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.merging.barriers import barriers, excess_barrier, max_minus_mean_barrier


def test_both_definitions_on_a_hand_computed_path():
    ts = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    losses = np.array([1.0, 2.5, 3.0, 2.0, 2.0])
    # excess over the chord 1 + t: 2.5 − 1.25, 3 − 1.5, 2 − 1.75 -> 1.5 at t = 0.5
    assert excess_barrier(ts, losses) == (1.5, 0.5)
    assert max_minus_mean_barrier(ts, losses) == 3.0 - 1.5
    result = barriers(ts, losses, np.array([0.0, 0.5, 0.5, 0.5, 0.0]))
    assert result.error_excess == 0.5 and result.error_max_minus_mean == 0.5 and result.loss_excess_t == 0.5


def test_a_convex_path_has_no_barrier_and_a_tilted_one_differs_between_definitions():
    ts = np.linspace(0, 1, 11)
    assert excess_barrier(ts, (ts - 0.5) ** 2)[0] == pytest.approx(0.0, abs=1e-15)
    line = 1 + 2 * ts
    assert excess_barrier(ts, line)[0] == pytest.approx(0.0, abs=1e-15)
    assert max_minus_mean_barrier(ts, line) == pytest.approx(1.0)  # max 3 − mean 2


def test_bad_paths_are_refused():
    with pytest.raises(ConfigError, match="ts"):
        barriers([0.0, 1.0], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ConfigError, match="increasing"):
        barriers([0.0, 0.7, 0.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert np.isnan(barriers([0, 0.5, 1], [1.0, np.nan, 1.0], [0.0, 0.0, 0.0]).loss_excess)
