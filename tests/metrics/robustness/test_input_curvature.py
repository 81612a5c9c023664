"""Input-space curvature against dense per-sample input Hessians and finite-difference gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.robustness.input_curvature import input_curvature
from qlandscape.metrics.robustness.results import InputCurvature
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN


def _data(n=5, side=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, side, side, generator=g, dtype=torch.float64) * math.pi, torch.arange(n) % 2


def _dense(model, x, y):
    """Per sample: the dense Hessian of its own cross-entropy w.r.t. its input, and its input gradient."""
    model = model.eval()
    tops, norms = [], []
    for xi, yi in zip(x, y, strict=True):

        def f(v, yi=yi, xi=xi):
            return nn.functional.cross_entropy(model(v.reshape(1, *xi.shape)), yi[None])

        h = torch.autograd.functional.hessian(f, xi.reshape(-1).clone())
        tops.append(float(np.linalg.eigvalsh(h.numpy()).max()))
        # central differences of the loss along each pixel
        flat, step = xi.reshape(-1), 1e-6
        with torch.no_grad():
            grad = [
                (float(f(flat + step * e)) - float(f(flat - step * e))) / (2 * step)
                for e in torch.eye(flat.numel(), dtype=torch.float64)
            ]
        norms.append(float(np.linalg.norm(grad)))
    return np.array(tops), np.array(norms)


@pytest.mark.parametrize("kind", ["mlp", "qnn"])
def test_top_input_eigenvalue_matches_the_dense_hessian(kind):
    x, y = _data()
    if kind == "mlp":
        model = MLP((4, 4), 2, width=8, depth=2, activation="tanh", seed=1)
    else:
        model = PatchQNN((4, 4), 2, n_qubits=4, n_layers=1, patch_size=2, stride=2, positional_bias=True, seed=3)
    objective = Objective(model, x, y)
    tops, norms = _dense(model, x, y)
    exact = input_curvature(objective, iterations=16, chunk_size=2)
    assert exact.iterations == 16 and exact.dimension == 16
    np.testing.assert_allclose(exact.top_eigenvalues, tops, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(exact.gradient_norms, norms, rtol=1e-6, atol=1e-9)
    assert exact.mean_top_eigenvalue == pytest.approx(tops.mean(), rel=1e-9, abs=1e-12)
    few = input_curvature(objective, iterations=10)
    # Ritz values never exceed the top eigenvalue, and the residual bound brackets the error
    assert np.all(few.top_eigenvalues <= tops + 1e-10)
    assert np.all(tops - few.top_eigenvalues <= few.residuals + 1e-8)


def test_a_closed_krylov_space_restarts_and_stays_exact():
    # logistic regression: each input Hessian has rank one (p(1-p) w w^T over the logit difference)
    x, y = _data(3, 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 2)).double()
    objective = Objective(model, x, y)
    tops, _ = _dense(model, x, y)
    result = input_curvature(objective, iterations=9)
    np.testing.assert_allclose(result.top_eigenvalues, tops, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(result.residuals))


def test_the_result_round_trips_and_bad_settings_raise(tmp_path):
    x, y = _data()
    objective = Objective(MLP((4, 4), 2, width=4, depth=1), x, y)
    result = input_curvature(objective, iterations=4, n_samples=3)
    assert result.n_samples == 3 and result.top_eigenvalues.shape == (3,)
    save_result(result, tmp_path / "curv")
    back = load_result(InputCurvature, tmp_path / "curv")
    np.testing.assert_array_equal(back.top_eigenvalues, result.top_eigenvalues)
    assert back.mean_gradient_norm == result.mean_gradient_norm
    for kwargs, field in (({"iterations": 0}, "iterations"), ({"chunk_size": 0}, "chunk_size")):
        with pytest.raises(ConfigError) as info:
            input_curvature(objective, **kwargs)
        assert info.value.field == field
