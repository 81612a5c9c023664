from __future__ import annotations

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.metrics.modes.connectivity import mode_connectivity
from qlandscape.metrics.modes.results import ConnectivityResult
from qlandscape.models.classical import MLP
from qlandscape.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    return to_torch(load_dataset("digits", classes=(0, 1, 2), max_train=90, max_test=45))


def _train(model, digits, seed):
    x, y, xt, yt = digits
    return train(model, x, y, xt, yt, TrainConfig(lr=0.02, epochs=3, batch_size=16, seed=seed))[0]


def test_a_convex_model_has_no_linear_barrier(digits, tmp_path):
    # softmax regression (an MLP without hidden layers) has a convex cross-entropy: no path of it can rise above
    # the chord of its ends
    x, y, xt, yt = digits
    models = [_train(MLP(x.shape[1:], 3, depth=0, seed=s), digits, s) for s in range(3)]
    result = mode_connectivity(models, x, y, xt, yt, curve=None, n_points=11)
    assert result.kinds == ("linear", "aligned")
    assert result.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    assert np.all(result.barrier("linear", "loss_excess") <= 1e-12)
    # no hidden units: nothing to permute, so the aligned path is the linear one
    np.testing.assert_array_equal(result.barriers[:, 0], result.barriers[:, 1])
    save_result(result, tmp_path / "c")
    again = load_result(ConnectivityResult, tmp_path / "c")
    np.testing.assert_array_equal(again.barriers, result.barriers)


def test_a_permuted_copy_is_connected_after_alignment_and_curves_do_not_rise(digits):
    x, y, xt, yt = digits
    model = _train(MLP(x.shape[1:], 3, width=10, depth=1, seed=0), digits, 0)
    other = _train(MLP(x.shape[1:], 3, width=10, depth=1, seed=4), digits, 4)
    copy = MLP(x.shape[1:], 3, width=10, depth=1, seed=0)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    state = model.state_dict()
    copy.load_state_dict(
        {"net.0.weight": state["net.0.weight"][perm], "net.0.bias": state["net.0.bias"][perm],
         "net.2.weight": state["net.2.weight"][:, perm], "net.2.bias": state["net.2.bias"]}
    )  # fmt: skip
    result = mode_connectivity(
        [model, copy, other], x, y, xt, yt, pairs=[(0, 1), (0, 2)], curve="polychain", curve_epochs=3, n_points=7
    )
    assert result.barrier("aligned", "loss_excess")[0] == pytest.approx(0.0, abs=1e-12)
    assert result.barrier("aligned", "loss_max_minus_mean")[0] == pytest.approx(0.0, abs=1e-12)
    assert result.distances[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert result.distances[0, 0] > 0.5
    assert result.losses.shape == (2, 3, 7)
    # the curve starts at the midpoint of the aligned line and is trained to lower its expected loss
    assert np.all(result.barrier("polychain", "loss_max_minus_mean") >= 0)


def test_bad_pairs_and_kinds(digits):
    x, y, xt, yt = digits
    models = [MLP(x.shape[1:], 3, depth=0, seed=s) for s in range(2)]
    with pytest.raises(ConfigError, match="pairs"):
        mode_connectivity(models, x, y, xt, yt, pairs=[(0, 0)])
    with pytest.raises(ConfigError, match="curve"):
        mode_connectivity(models, x, y, xt, yt, curve="spline")
    with pytest.raises(ConfigError, match="at least 2"):
        mode_connectivity(models[:1], x, y, xt, yt)
