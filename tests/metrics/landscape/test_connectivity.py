"""Interpolation, loss/error barriers, function-space distance and the interpolation plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.connectivity import (
    barrier_location,
    function_space_distance,
    interpolate,
    interpolate_with_bn_reset,
    loss_barrier,
)
from qlandscape.metrics.landscape.results import Interpolation
from qlandscape.models.classical import CNN, recompute_bn_statistics
from qlandscape.plots import save_figure
from qlandscape.plots.connectivity import plot_interpolation


def _data(n=20, d=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


@pytest.fixture(scope="module")
def mlp():
    """θ_a: a tanh MLP labelling its own data (so its loss is low) and θ_b: its hidden-sign-flipped twin (the
    same function) plus a little noise. The midpoint has hidden weights near 0, so the path has a clear barrier."""
    x, _ = _data()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p *= 4.0
        y = model(x).argmax(-1)
    obj = Objective(model, x, y)
    flipped = {k: -v for k, v in obj.unflatten(obj.theta0).items()}
    flipped["2.bias"] = -flipped["2.bias"]
    other = obj.flatten(flipped).numpy() + np.random.default_rng(2).standard_normal(obj.n_params) * 0.05
    return obj, obj.theta0.numpy(), other


def test_loss_barrier_pure_function():
    ts = np.linspace(0, 1, 5)
    assert loss_barrier(ts, [1.0, 2.0, 3.0, 2.5, 2.0]) == pytest.approx(3.0 - 1.5)
    assert barrier_location(ts, [1.0, 2.0, 3.0, 2.5, 2.0]) == 0.5
    assert loss_barrier(ts, 2.0 - ts) == 0.0  # linear: no barrier
    assert loss_barrier(ts, (ts - 0.5) ** 2) == 0.0  # convex: the endpoints give the max, 0
    with pytest.raises(ConfigError, match="strictly increasing"):
        loss_barrier([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])


def test_endpoints_self_barrier_and_symmetry(mlp):
    obj, a, b = mlp
    res = interpolate(obj, a, b, n_points=11, batch=4)
    assert res.losses[0, 0] == pytest.approx(float(obj.loss(torch.as_tensor(a))), abs=1e-12)
    assert res.losses[0, -1] == pytest.approx(float(obj.loss(torch.as_tensor(b))), abs=1e-12)
    assert res.errors[0, -1] == pytest.approx(obj.error(torch.as_tensor(b)), abs=1e-12)
    for k, t in enumerate(res.ts):  # batched path == point by point
        assert res.losses[0, k] == pytest.approx(float(obj.loss(torch.as_tensor(a + t * (b - a)))), abs=1e-12)
    assert res.loss_barrier > 0.1 and 0.2 < res.loss_barrier_ts[0] < 0.8 and res.error_barrier >= 0.0
    assert res.distance == pytest.approx(np.linalg.norm(b - a))
    itself = interpolate(obj, a, a)
    assert itself.loss_barrier == 0.0 and itself.error_barrier == 0.0
    swapped = interpolate(obj, b, a, n_points=11)
    assert swapped.loss_barrier == pytest.approx(res.loss_barrier, abs=1e-12)
    assert swapped.error_barrier == pytest.approx(res.error_barrier, abs=1e-12)
    assert swapped.loss_barrier_ts[0] == pytest.approx(1 - res.loss_barrier_ts[0], abs=1e-12)


def test_convex_logistic_regression_has_no_barrier():
    x, y = _data(n=30, seed=3)
    obj = Objective(nn.Linear(4, 3), x, y)
    g = np.random.default_rng(4)
    for _ in range(3):
        a, b = g.standard_normal(obj.n_params) * 3, g.standard_normal(obj.n_params) * 3
        assert interpolate(obj, a, b, n_points=41).loss_barrier <= 1e-10


def test_splits_and_round_trip(mlp, tmp_path):
    obj, a, b = mlp
    xt, yt = _data(n=9, seed=5)
    test = obj.with_data(xt, yt)
    res = interpolate(obj, a, b, n_points=7, eval_objectives={"test": test})
    assert res.splits == ("train", "test") and res.losses.shape == (2, 7)
    assert res.loss("test")[0] == pytest.approx(float(test.loss(torch.as_tensor(a))), abs=1e-12)
    assert res.loss_barriers[1] == pytest.approx(loss_barrier(res.ts, res.loss("test")))
    save_result(res, tmp_path / "interp")
    back = load_result(Interpolation, tmp_path / "interp")
    np.testing.assert_array_equal(back.losses, res.losses)
    assert back.splits == res.splits and back.loss_barrier == res.loss_barrier


def test_function_space_distance(mlp):
    obj, a, b = mlp
    assert function_space_distance(obj, a, a) == 0.0
    dist = function_space_distance(obj, a, b)
    pa = obj.outputs(torch.as_tensor(a)).argmax(-1)
    pb = obj.outputs(torch.as_tensor(b)).argmax(-1)
    assert dist == pytest.approx(float((pa != pb).double().mean()))
    xt, _ = _data(n=5, seed=9)
    assert 0.0 <= function_space_distance(obj, a, b, x=xt) <= 1.0


def test_bad_inputs(mlp):
    obj, a, b = mlp
    with pytest.raises(ConfigError, match=rf"\(\({obj.n_params},\), \(3,\)\)"):
        interpolate(obj, a, b[:3])
    with pytest.raises(ConfigError, match="n_points = 2"):
        interpolate(obj, a, b, n_points=2)
    bad = b.copy()
    bad[0] = np.inf
    with pytest.raises(ConfigError, match="inf"):
        interpolate(obj, a, bad)
    with pytest.raises(ConfigError, match="theta_b"):
        function_space_distance(obj, a, np.zeros(4))


def test_plot_interpolation_writes_png(mlp, tmp_path):
    obj, a, b = mlp
    xt, yt = _data(n=9, seed=5)
    res = interpolate(
        obj, a, b, n_points=15, eval_objectives={"test": obj.with_data(xt, yt)}, label_a="run A", label_b="run B"
    )
    fig = plot_interpolation(res)
    png, pdf = save_figure(fig, tmp_path / "interp")
    assert png.stat().st_size > 1000 and pdf.exists()
    assert "run A → run B" in fig.axes[0].get_title()
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- batch norm
def _images(n=12, shape=(4, 4), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g))


def test_interpolate_with_bn_reset():
    x, y = _images(n=16)
    plain = CNN((4, 4), 3, channels=(2, 3), seed=0)
    objective = Objective(plain, x, y)
    a = objective.theta0
    b = a + 0.3 * torch.randn(objective.n_params, dtype=torch.float64)
    ours = interpolate_with_bn_reset(objective, a, b, x, n_points=5)
    ref = interpolate(objective, a, b, n_points=5)
    assert isinstance(ours, Interpolation)
    np.testing.assert_allclose(ours.losses, ref.losses, atol=1e-12, rtol=0)
    assert ours.loss_barrier == pytest.approx(ref.loss_barrier, abs=1e-12)

    model = CNN((4, 4), 3, channels=(2, 3), batch_norm=True, dropout=0.3, seed=0)
    objective = Objective(model, x, y)
    a = objective.theta0
    b = a + 0.3 * torch.randn(objective.n_params, dtype=torch.float64)
    x_test, y_test = _images(n=8, seed=1)
    curve = interpolate_with_bn_reset(
        objective, a, b, x, n_points=3, eval_objectives={"test": objective.with_data(x_test, y_test)}
    )
    assert curve.losses.shape == (2, 3) and curve.splits == ("train", "test")
    for i, theta in ((0, a), (2, b)):
        reset = Objective(recompute_bn_statistics(model, theta, x), x, y)
        assert curve.losses[0, i] == pytest.approx(float(reset.loss(theta)), abs=1e-13)
    # the stale statistics (those of the initial model) give a different loss at b
    assert abs(curve.losses[0, 2] - float(objective.loss(b))) > 1e-6
    # as in interpolate, a split may not take the objective's own name (it would replace the objective's data)
    with pytest.raises(ConfigError, match="eval_objectives = 'train'"):
        interpolate_with_bn_reset(objective, a, b, x, n_points=3, eval_objectives={"train": objective})
