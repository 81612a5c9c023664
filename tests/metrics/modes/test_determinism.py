from __future__ import annotations

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.metrics.modes.determinism import mode_determinism
from qlandscape.metrics.modes.results import DeterminismResult
from qlandscape.models.classical import MLP
from qlandscape.train.trainer import TrainConfig


def test_full_batch_training_has_no_data_order_so_its_order_barrier_is_zero(tmp_path):
    x, y, xt, yt = to_torch(load_dataset("digits", classes=(0, 1), max_train=40, max_test=20, pool=2))
    config = TrainConfig(lr=0.05, epochs=5, batch_size=40)  # one batch of every sample: no order to shuffle
    result = mode_determinism(lambda seed: MLP(x.shape[1:], 2, width=8, depth=1, seed=seed), x, y, xt, yt, config,
                              n_points=5)  # fmt: skip
    assert result.sources == ("init", "order", "both")
    # the full-batch gradient only sums the samples in another order: equal up to round-off
    assert result.parameter_distance[1] == pytest.approx(0.0, abs=1e-12)
    assert result.barrier("order") == pytest.approx(0.0, abs=1e-12)
    assert result.barrier("order", field="error_max_minus_mean") == 0.0
    assert result.function_distance[1] == 0.0
    # another initialisation ends elsewhere
    assert result.parameter_distance[0] > 0.1 and result.parameter_distance[2] > 0.1
    assert result.accuracies.shape == (4,)
    save_result(result, tmp_path / "d")
    np.testing.assert_array_equal(load_result(DeterminismResult, tmp_path / "d").barriers, result.barriers)


def test_seeds_must_differ():
    x, y, xt, yt = to_torch(load_dataset("digits", classes=(0, 1), max_train=10, max_test=5, pool=2))
    with pytest.raises(ConfigError, match="seeds"):
        mode_determinism(lambda s: MLP(x.shape[1:], 2, seed=s), x, y, xt, yt, TrainConfig(epochs=1), seeds=(3, 3))
