"""Structured curvature: H = G + R assembled per patch equals the plain autograd Hessian; the patch-structure
protocol, the automatic choice of the exact Hessian, the aggregation scale, and G and R as operators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.capabilities import PatchLayout, PatchStructured
from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.operators import hessian_operator, to_dense
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.metrics.curvature.spectral_density import hutchinson_trace
from qlandscape.metrics.curvature.structured import (
    STRUCTURED_MIN_PATCHES,
    aggregation_scale,
    count_outliers,
    decompose,
    exact_hessian,
    gauss_newton,
    gauss_newton_operator,
    gauss_newton_vector_product,
    is_patch_model,
    residual_operator,
    residual_vector_product,
    structure_summary,
    structured_hessian,
)
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.backends import make_backend


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
    x, y = images(6)
    model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=2, output_scale=4.0)
    summary = structure_summary(decompose(Objective(model, x, y)), output_scale=4.0)
    assert summary.aggregation_scale == 16.0 / 4
    assert np.isclose(summary.lambda_max_normalised * 4.0, summary.lambda_max)
    assert summary.lambda_max_gauss_newton >= 0
    assert count_outliers(np.array([100.0, 90.0, 80.0, 1.0, 0.9, 0.8, 0.0]), 2) == 3


# ---------------------------------------------------------------------------------------------- the protocol
def test_patch_qnn_offers_its_patch_structure():
    head = PatchQNN(
        (6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, aggregation="linear", positional_bias=True
    )
    mean = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, output_scale=2.5)
    for model in (head, mean):
        assert isinstance(model, PatchStructured)
        names = dict(model.named_parameters())
        layout = model.patch_layout()
        assert names[layout.circuit].shape == (model.n_patches, model.circuit.n_params)
        assert all(name in names for name in vars(layout).values() if name is not None)
    assert head.patch_layout() == PatchLayout("circuit_params", "position_bias", "head.weight", "head.bias")
    assert mean.patch_layout() == PatchLayout("circuit_params")
    assert head.fixed_readout() is None
    readout = mean.fixed_readout()
    assert readout.shape == (3, mean.circuit.n_outputs)
    torch.testing.assert_close(readout[:, :3], 2.5 * torch.eye(3, dtype=torch.float64), atol=0, rtol=0)
    assert not isinstance(MLP((6, 6), 3, width=4), PatchStructured)


@pytest.mark.parametrize("bias", [False, True])
def test_evaluate_patches_reproduces_the_forward_pass(bias):
    # the model's logits are the readout of the patch mean of evaluate_patches at its own parameters
    x, _ = images(4)
    for aggregation in ("mean", "linear"):
        model = PatchQNN(
            (6, 6), 3, n_qubits=3, n_layers=2, patch_size=3, stride=3, aggregation=aggregation, positional_bias=bias
        )
        if bias:
            with torch.no_grad():
                model.position_bias.add_(0.2 * torch.randn(6, 6, dtype=torch.float64))
        flat_bias = model.position_bias.reshape(-1) if bias else None
        outs = model.evaluate_patches(model.circuit_params, flat_bias, x)
        assert outs.shape == (4, model.n_patches, model.circuit.n_outputs)
        torch.testing.assert_close(outs, model.patch_outputs(x), atol=1e-14, rtol=0)
        readout = model.fixed_readout()
        logits = outs.mean(1) @ readout.T if readout is not None else model.head(outs.mean(1))
        torch.testing.assert_close(logits, model(x), atol=1e-14, rtol=0)


def test_only_engine_patch_models_take_the_structured_path():
    x, y = images(3)
    model = PatchQNN((6, 6), 3, n_qubits=2, n_layers=1, patch_size=3, stride=3, observables=["Z", "X"])
    assert is_patch_model(Objective(model, x, y))
    pennylane = Objective(model.with_backend("default.qubit"), x, y)
    assert isinstance(pennylane.model, PatchStructured) and not is_patch_model(pennylane)
    assert not is_patch_model(Objective(MLP((6, 6), 3, width=4), x, y))
    with pytest.raises(ConfigError, match="structured Hessian needs"):
        structured_hessian(pennylane)


# ---------------------------------------------------------------------------------------------- exact_hessian
def test_exact_hessian_auto_uses_structure_for_many_patches():
    x, y = images(3)
    model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, n_patches=9, seed=4)
    obj = Objective(model, x, y)
    generic = obj.hessian().numpy()
    np.testing.assert_allclose(exact_hessian(obj).numpy(), generic, atol=1e-10)
    np.testing.assert_allclose(exact_hessian(obj, method="structured").numpy(), generic, atol=1e-10)
    np.testing.assert_array_equal(exact_hessian(obj, method="autograd").numpy(), generic)
    with pytest.raises(ConfigError, match="fast"):
        exact_hessian(obj, method="fast")


def test_exact_hessian_auto_follows_the_patch_count(monkeypatch):
    """The structured route is taken exactly for patch models on the engine with >= STRUCTURED_MIN_PATCHES."""
    from qlandscape.metrics.curvature import structured

    calls = []
    original = structured.structured_hessian
    monkeypatch.setattr(structured, "structured_hessian", lambda *a, **k: calls.append(1) or original(*a, **k))
    x, y = images(3)
    one = Objective(PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=6, n_patches=1), x, y)
    many = Objective(PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3), x, y)
    mlp = Objective(MLP((6, 6), 3, width=4), x, y)
    assert one.model.n_patches < STRUCTURED_MIN_PATCHES <= many.model.n_patches
    for obj, structured_route in ((one, False), (many, True), (mlp, False)):
        calls.clear()
        np.testing.assert_allclose(exact_hessian(obj).numpy(), obj.hessian().numpy(), atol=1e-10)
        assert bool(calls) == structured_route
    with pytest.raises(ConfigError, match="structured Hessian needs"):
        exact_hessian(mlp, method="structured")


def test_dense_spectrum_and_hessian_directions_use_the_exact_hessian(monkeypatch):
    from qlandscape.metrics.curvature import structured
    from qlandscape.metrics.curvature.hessian import dense_spectrum
    from qlandscape.metrics.landscape.directions import hessian_directions

    calls = []
    original = structured.structured_hessian
    monkeypatch.setattr(structured, "structured_hessian", lambda *a, **k: calls.append(1) or original(*a, **k))
    x, y = images(3)
    obj = Objective(PatchQNN((6, 6), 3, n_qubits=2, n_layers=1, patch_size=3, stride=3, observables=["Z", "X"]), x, y)
    exact = np.linalg.eigvalsh(obj.hessian().numpy())
    np.testing.assert_allclose(dense_spectrum(obj).eigenvalues, exact, atol=1e-10)
    directions = hessian_directions(obj, k=obj.n_params - 1)
    assert directions.method == "dense"
    np.testing.assert_allclose(directions.eigenvalues, exact[::-1][: obj.n_params - 1], atol=1e-10)
    assert len(calls) == 2


def test_structured_hessian_of_a_complex64_model_matches_its_hvps(tiny_images):
    # the structured Hessian runs in the Objective's complex128 precision, like the HVPs
    x, y = tiny_images
    fast = PatchQNN(
        (6, 6),
        3,
        n_qubits=3,
        n_layers=1,
        patch_size=4,
        stride=2,
        seed=2,
        backend=make_backend("torch", dtype=torch.complex64),
    )
    obj = Objective(fast, x, y)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert float((exact_hessian(obj, method="structured") @ v - obj.hvp(None, v)).abs().max()) < 1e-13
    assert fast.backend.dtype == torch.complex64


@pytest.mark.parametrize("aggregation", ["mean", "linear"])
def test_structured_hessian_of_an_mse_loss_matches_autograd(tiny_images, aggregation):
    x, y = tiny_images
    model = PatchQNN(
        (6, 6),
        3,
        n_qubits=3,
        n_layers=1,
        patch_size=4,
        stride=2,
        seed=2,
        aggregation=aggregation,
        positional_bias=True,
    )
    obj = Objective(model, x, y, "mse", chunk_size=3)
    np.testing.assert_allclose(
        exact_hessian(obj, method="structured").numpy(), obj.hessian(method="autograd").numpy(), atol=1e-13
    )


# ---------------------------------------------------------------------------------------------- aggregation scale
def test_aggregation_scale_is_c_squared_over_n_for_the_mean_rule():
    for n_patches, c in ((4, 4.0), (9, 5.0), (1, 0.3)):
        model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, n_patches=n_patches, output_scale=c)
        assert aggregation_scale(model) == pytest.approx(c**2 / n_patches, rel=1e-15)
    head = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, aggregation="linear")
    assert aggregation_scale(head) is None
    assert aggregation_scale(MLP((6, 6), 3, width=4)) is None


def test_aggregation_scale_is_how_the_readout_scales_gauss_newton():
    # with an MSE loss ∂²l/∂z² = I, so G is exactly proportional to c²: G(c) = c² G(1) at the same circuit point
    x, y = images(4)
    g, scale = {}, {}
    for c in (1.0, 3.0):
        model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=1, output_scale=c)
        dec = decompose(Objective(model, x, y, "mse"))
        g[c], scale[c] = dec.gauss_newton, aggregation_scale(model)
        assert dec.aggregation_scale == scale[c]
    np.testing.assert_allclose(g[3.0], (scale[3.0] / scale[1.0]) * g[1.0], atol=1e-12)
    assert scale[3.0] / scale[1.0] == pytest.approx(9.0, rel=1e-15)


def test_structure_summary_takes_the_scale_from_the_decomposition():
    x, y = images(6)
    model = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=2, output_scale=4.0)
    dec = decompose(Objective(model, x, y))
    assert dec.aggregation_scale == pytest.approx(16.0 / 4)
    own = structure_summary(dec)
    assert own.aggregation_scale == pytest.approx(4.0)
    assert own.lambda_max_normalised == pytest.approx(own.lambda_max / 4.0)
    assert structure_summary(dec, output_scale=2.0).aggregation_scale == 1.0  # the 0.1 route overrides it
    head = PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, aggregation="linear")
    for dec_none in (decompose(Objective(head, x, y)), decompose(Objective(MLP((6, 6), 3, width=4), x, y))):
        summary = structure_summary(dec_none)
        assert np.isnan(summary.aggregation_scale) and np.isnan(summary.lambda_max_normalised)
    for bad in (0.0, -1.0, float("nan"), "5"):
        with pytest.raises(ConfigError, match="output_scale"):
            structure_summary(dec, output_scale=bad)


# ---------------------------------------------------------------------------------------------- G and R operators
def _qnn_objective() -> Objective:
    x, y = images(5)
    model = PatchQNN(
        (6, 6), 3, n_qubits=3, n_layers=1, patch_size=3, stride=3, aggregation="linear", positional_bias=True, seed=3
    )
    with torch.no_grad():
        model.position_bias.add_(
            0.2 * torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        )
    return Objective(model, x, y, chunk_size=3)


def _mlp_objective() -> Objective:
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    mlp = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    return Objective(mlp, torch.randn(14, 4, generator=g, dtype=torch.float64), torch.arange(14) % 3)


@pytest.mark.parametrize("make", [_qnn_objective, _mlp_objective], ids=["patch_qnn", "mlp"])
def test_gauss_newton_and_residual_operators_match_the_dense_decomposition(make):
    obj = make()
    dec = decompose(obj)
    g_op, r_op, h_op = gauss_newton_operator(obj), residual_operator(obj), hessian_operator(obj)
    assert g_op.size == r_op.size == obj.n_params and g_op.n_matvecs == r_op.n_matvecs == 0
    np.testing.assert_allclose(to_dense(g_op), dec.gauss_newton, atol=1e-10)
    np.testing.assert_allclose(to_dense(r_op), dec.residual, atol=1e-10)
    assert g_op.n_matvecs == r_op.n_matvecs == obj.n_params  # counted like the Hessian operator
    # H = G + R, operator-wise
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.standard_normal(obj.n_params)
        np.testing.assert_allclose(g_op.matvec(v) + r_op.matvec(v), h_op.matvec(v), atol=1e-10)
    # Lanczos on G and R against the dense eigenvalues; G is positive semi-definite, R indefinite
    g_eig, r_eig = np.linalg.eigvalsh(dec.gauss_newton), np.linalg.eigvalsh(dec.residual)
    g_top = top_eigenvalues(g_op, 3, which="largest", tol=1e-12)
    r_both = top_eigenvalues(r_op, 1, which="both", tol=1e-12)
    assert g_top.converged and r_both.converged
    np.testing.assert_allclose(g_top.eigenvalues, g_eig[-3:], atol=1e-9)
    np.testing.assert_allclose(r_both.eigenvalues, [r_eig[0], r_eig[-1]], atol=1e-9)
    assert g_eig[0] > -1e-10 and r_eig[0] < 0 < r_eig[-1]
    # Hutchinson on each: within four standard errors of the dense trace
    for op, dense in ((g_op, dec.gauss_newton), (r_op, dec.residual)):
        trace = hutchinson_trace(op, n_probes=40, seed=1)
        assert trace.n_matvecs == 40
        assert abs(trace.estimate - np.trace(dense)) < 4 * trace.stderr


def test_operators_at_another_point_and_their_guards():
    obj = _mlp_objective()
    theta = obj.theta0.numpy() + 0.5
    v = np.random.default_rng(3).standard_normal(obj.n_params)
    gv = gauss_newton_vector_product(obj, torch.from_numpy(theta), torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(gauss_newton_operator(obj, theta).matvec(v), gv, atol=1e-14)
    np.testing.assert_allclose(gauss_newton(obj, torch.from_numpy(theta)).numpy() @ v, gv, atol=1e-12)
    bad = theta.copy()
    bad[2] = np.nan
    for make_op in (gauss_newton_operator, residual_operator):
        with pytest.raises(ConfigError, match=r"theta\[2\] = nan"):
            make_op(obj, bad)
    x, y = images(3)
    model = PatchQNN((6, 6), 3, n_qubits=2, n_layers=1, patch_size=3, stride=3, observables=["Z", "X"])
    pennylane = Objective(model.with_backend("default.qubit"), x, y)
    for make_op in (gauss_newton_operator, residual_operator):
        with pytest.raises(ConfigError, match="torch.func.*decompose"):
            make_op(pennylane)
