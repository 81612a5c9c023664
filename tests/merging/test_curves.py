from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.merging.curves import curve_path, evaluate_path, linear_path, path_points
from qlandscape.merging.parameters import flat_parameters
from qlandscape.models.classical import CNN, recompute_bn_statistics
from tests.merging.conftest import trained


class CurvedValley(nn.Module):
    """A 2-parameter 'model' whose output is the loss (v − (1 − u²))²: a curved valley along the parabola
    v = 1 − u², which the quadratic Bezier curve with control point (0, 2) follows exactly."""

    def __init__(self, u: float, v: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([u, v], dtype=torch.float64))

    def forward(self, x):
        value = (self.w[1] - (1 - self.w[0] ** 2)) ** 2
        return value + 0 * x[:, 0]


def mean_output(outputs, y):
    return outputs.mean()


def test_bezier_curve_follows_a_curved_valley_below_the_straight_line():
    a, b = CurvedValley(-1.0, 0.0), CurvedValley(1.0, 0.0)
    x, y = torch.zeros(32, 1, dtype=torch.float64), torch.zeros(32)
    line = linear_path(a, b, x, y, n_points=61, loss=mean_output)
    # the line v = 0 leaves the valley: (1 − u²)², 1 at the origin; both ends are in the valley (loss 0)
    assert line.losses.max() == pytest.approx(1.0, abs=1e-12)
    assert line.barriers.loss_excess == pytest.approx(1.0, abs=1e-12)
    for kind in ("bezier", "polychain"):
        curve = curve_path(a, b, x, y, x, y, kind=kind, epochs=150, lr=0.05, batch_size=32, loss=mean_output)
        assert curve.ts.shape == (61,)
        assert curve.losses[0] == pytest.approx(0.0, abs=1e-15) and curve.losses[-1] == pytest.approx(0.0, abs=1e-15)
        assert curve.losses.max() < 0.25 * line.losses.max(), (kind, curve.losses.max())
        assert curve.training_loss[-1] < curve.training_loss[0]
        if kind == "bezier":  # the known optimum: θ(t) = (2t − 1, 4t(1 − t)) lies on v = 1 − u²
            np.testing.assert_allclose(curve.control, [0.0, 2.0], atol=0.05)
    # endpoints untouched
    torch.testing.assert_close(flat_parameters(a), torch.tensor([-1.0, 0.0], dtype=torch.float64))


def test_path_points_by_hand():
    a, b, c = (
        torch.tensor([0.0, 0.0], dtype=torch.float64),
        torch.tensor([2.0, 0.0], dtype=torch.float64),
        torch.tensor([1.0, 2.0], dtype=torch.float64),
    )
    ts = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    bez = path_points("bezier", ts, a, b, c)
    # (1−t)² a + 2t(1−t) c + t² b at t = 0.25: 0.375 c + 0.0625 b
    torch.testing.assert_close(bez[1], 0.375 * c + 0.0625 * b)
    torch.testing.assert_close(bez[2], torch.tensor([1.0, 1.0], dtype=torch.float64))
    chain = path_points("polychain", ts, a, b, c)
    torch.testing.assert_close(chain[1], 0.5 * c)
    torch.testing.assert_close(chain[2], c)
    assert torch.equal(chain[0], a) and torch.equal(chain[-1], b)


def test_batch_norm_path_resets_statistics_at_every_point(digits):
    x, _, xt, yt = digits
    a = trained(CNN(x.shape[1:], 3, channels=(3,), batch_norm=True, seed=0), digits, seed=0, epochs=1)
    b = trained(CNN(x.shape[1:], 3, channels=(3,), batch_norm=True, seed=1), digits, seed=1, epochs=1)
    path = evaluate_path(a, b, xt, yt, n_points=3, x_stats=x)
    assert path.bn_reset
    mid = (flat_parameters(a) + flat_parameters(b)) / 2
    expected = Objective(recompute_bn_statistics(a, mid, x), xt, yt)
    assert path.losses[1] == pytest.approx(float(expected.loss()), abs=1e-12)
    assert path.errors[1] == pytest.approx(expected.error(), abs=1e-15)
    with pytest.raises(ConfigError, match="x_stats"):
        evaluate_path(a, b, xt, yt, n_points=3)


def test_curve_points_and_kinds_are_checked():
    a, b = CurvedValley(-1.0, 0.0), CurvedValley(1.0, 0.0)
    x, y = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4)
    with pytest.raises(ConfigError, match="n_points"):
        linear_path(a, b, x, y, n_points=2, loss=mean_output)
    with pytest.raises(ConfigError, match="kind"):
        curve_path(a, b, x, y, x, y, kind="spline", loss=mean_output)
    with pytest.raises(ConfigError, match="split"):
        linear_path(a, b, x[:0], y[:0], loss=mean_output)
    assert np.isnan(linear_path(a, b, x, y, n_points=3, loss=mean_output).barriers.error_excess)
