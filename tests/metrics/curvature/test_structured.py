"""Structured curvature: H = G + R assembled per patch equals the plain autograd Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.metrics.curvature.structured import (
    decompose,
    gauss_newton,
    gauss_newton_vector_product,
    residual_vector_product,
    structured_hessian,
)
from qlandscape.models.qnn import PatchQNN


def images(n=6, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, size, size, generator=g, dtype=torch.float64) * np.pi, torch.arange(n) % 3


@pytest.mark.parametrize("stride,n_patches", [(None, 1), (3, 4), (None, 9)])
@pytest.mark.parametrize("head,bias", [(False, False), (True, True), (False, True), (True, False)])
def test_structured_equals_autograd(stride, n_patches, head, bias):
    x, y = images()
    kwargs = dict(stride=stride) if stride else dict(n_patches=n_patches)
    model = PatchQNN(
        (6, 6),
        3,
        ansatz="hea",
        n_qubits=3,
        n_layers=1,
        patch_size=3,
        aggregation="linear" if head else "mean",
        positional_bias=bias,
        seed=2,
        **kwargs,
    )
    with torch.no_grad():  # move off the zero initialisation so bias terms are generic
        if bias:
            model.position_bias.add_(0.3 * torch.randn(6, 6, dtype=torch.float64))
    assert model.n_patches == n_patches
    obj = Objective(model, x, y, chunk_size=4)
    dec = structured_hessian(obj)
    H = obj.hessian(method="autograd").numpy()
    np.testing.assert_allclose(dec.hessian, H, atol=1e-10, rtol=0)
    np.testing.assert_allclose(dec.gauss_newton + dec.residual, H, atol=1e-10, rtol=0)
    np.testing.assert_allclose(dec.gauss_newton, gauss_newton(obj).numpy(), atol=1e-10, rtol=0)
    eig = np.linalg.eigvalsh(dec.gauss_newton)
    assert eig.min() > -1e-10 and np.allclose(dec.gauss_newton, dec.gauss_newton.T)


def test_matrix_free_products_match_dense():
    x, y = images(5)
    model = PatchQNN(
        (6, 6), 3, n_qubits=3, n_layers=2, patch_size=3, stride=3, aggregation="linear", positional_bias=True, seed=1
    )
    obj = Objective(model, x, y)
    dec = structured_hessian(obj)
    v = torch.randn(obj.n_params, dtype=torch.float64)
    gv = gauss_newton_vector_product(obj, None, v).numpy()
    rv = residual_vector_product(obj, None, v).numpy()
    np.testing.assert_allclose(gv, dec.gauss_newton @ v.numpy(), atol=1e-10)
    np.testing.assert_allclose(rv, dec.residual @ v.numpy(), atol=1e-10)
    np.testing.assert_allclose(gv + rv, obj.hvp(None, v).numpy(), atol=1e-10)


def test_default_qubit_same_numbers_through_autograd():
    x, y = images(3)
    model = PatchQNN((6, 6), 3, n_qubits=2, n_layers=1, patch_size=3, stride=3, seed=5, observables=["Z", "X"])
    ours = decompose(Objective(model, x, y))
    theirs = decompose(Objective(model.with_backend("default.qubit"), x, y))
    assert ours.method == "structured" and theirs.method == "generic"
    np.testing.assert_allclose(ours.hessian, theirs.hessian, atol=1e-10)
    np.testing.assert_allclose(ours.gauss_newton, theirs.gauss_newton, atol=1e-10)


def test_classical_decomposition_and_errors():
    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    mlp = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    obj = Objective(mlp, x, y)
    dec = decompose(obj)
    assert dec.method == "generic"
    np.testing.assert_allclose(dec.gauss_newton + dec.residual, obj.hessian().numpy(), atol=1e-12)
    with pytest.raises(ConfigError, match="Sequential"):
        structured_hessian(obj)
    # a linear model under cross-entropy has R = 0
    lin = Objective(nn.Linear(4, 3).double(), x, y)
    assert np.abs(decompose(lin).residual).max() < 1e-12


def test_structure_summary():
    from qlandscape.metrics.curvature.structured import count_outliers, structure_summary

    x, y = images(6)
    model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=2, output_scale=4.0)
    summary = structure_summary(decompose(Objective(model, x, y)), output_scale=4.0)
    assert summary.aggregation_scale == 16.0 / 4
    assert np.isclose(summary.lambda_max_normalised * 4.0, summary.lambda_max)
    assert summary.lambda_max_gauss_newton >= 0
    assert count_outliers(np.array([100.0, 90.0, 80.0, 1.0, 0.9, 0.8, 0.0]), 2) == 3


def test_objective_hessian_auto_uses_structure_for_many_patches():
    x, y = images(3)
    model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, n_patches=9, seed=4)
    obj = Objective(model, x, y)
    np.testing.assert_allclose(obj.hessian().numpy(), obj.hessian(method="autograd").numpy(), atol=1e-10)
    np.testing.assert_allclose(obj.hessian(method="structured").numpy(), obj.hessian().numpy(), atol=1e-10)
    with pytest.raises(ConfigError, match="fast"):
        obj.hessian(method="fast")
