from __future__ import annotations

import numpy as np
import pytest
import torch

from qlandscape.core.objective import Objective
from qlandscape.merging.parameters import flat_parameters, with_parameters
from qlandscape.metrics.modes.convexity import mode_convexity
from qlandscape.models.classical import MLP


def test_jensen_gap_of_a_quadratic_loss_is_minus_half_the_hessian_spread():
    # a linear model with the MSE loss is quadratic in θ: L(θ_i) = L(θ̄) + g·δ_i + ½ δ_iᵀ H δ_i with δ_i = θ_i − θ̄, so
    # L(θ̄) − mean_i L(θ_i) = −mean_i ½ δ_iᵀ H δ_i (the gradient terms cancel, Σ δ_i = 0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    base = MLP((2, 3), 3, depth=0, seed=0)
    theta = flat_parameters(base)
    models = [
        with_parameters(base, theta + 0.3 * torch.randn(theta.shape, generator=g, dtype=torch.float64))
        for _ in range(4)
    ]
    result = mode_convexity(models, x, y, loss="mse")
    hessian = Objective(base, x, y, "mse").hessian()
    thetas = torch.stack([flat_parameters(m) for m in models])
    deltas = thetas - thetas.mean(0)
    expected = -float(torch.einsum("kp,pq,kq->k", deltas, hessian, deltas).mean()) / 2
    assert result.jensen_gap_loss == pytest.approx(expected, rel=1e-9)
    assert result.jensen_gap_loss < 0
    assert result.k == 4 and result.member_loss.shape == (4,)
    assert result.greedy_soup_accuracy >= result.best_ingredient_accuracy
    assert result.soup_minus_best == pytest.approx(result.greedy_soup_accuracy - result.best_ingredient_accuracy)
    np.testing.assert_allclose(result.ingredient_accuracy, [Objective(m, x, y, "mse").accuracy() for m in models])
    # chosen on another split, the best ingredient is the one best there, scored here
    xs, ys = x[:15], y[:15]
    chosen = mode_convexity(models, x, y, x_select=xs, y_select=ys, loss="mse")
    best_there = int(np.argmax([Objective(m, xs, ys, "mse").accuracy() for m in models]))
    assert chosen.best_ingredient_accuracy == pytest.approx(Objective(models[best_there], x, y, "mse").accuracy())
    assert chosen.selection_split == "held-out" and result.selection_split == "test"


def test_identical_models_have_no_gap():
    x = torch.rand(10, 3, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (10,))
    model = MLP((3, 3), 2, width=4, depth=1)
    result = mode_convexity([model, model, model], x, y)
    assert result.jensen_gap_loss == pytest.approx(0.0, abs=1e-15)
    assert result.jensen_gap_error == pytest.approx(0.0, abs=1e-15)
