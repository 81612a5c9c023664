"""The Objective: derivatives against independent methods, chunking, no mutation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective, check_finite_loss
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.backends import make_backend


@pytest.fixture
def mlp_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    y = torch.arange(30) % 3
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    return model, x, y


def test_grad_and_hvp_match_finite_differences(mlp_problem):
    model, x, y = mlp_problem
    obj = Objective(model, x, y)
    theta, v = obj.theta0, torch.randn(obj.n_params, dtype=torch.float64)
    eps = 1e-6
    fd_grad = torch.stack(
        [
            (obj.loss(theta + eps * e) - obj.loss(theta - eps * e)) / (2 * eps)
            for e in torch.eye(obj.n_params, dtype=torch.float64)
        ]
    )
    assert torch.allclose(obj.grad(theta), fd_grad, atol=1e-8)
    fd_hvp = (obj.grad(theta + 1e-5 * v) - obj.grad(theta - 1e-5 * v)) / 2e-5
    assert torch.allclose(obj.hvp(theta, v), fd_hvp, atol=1e-7)
    assert torch.allclose(obj.hessian() @ v, obj.hvp(theta, v), atol=1e-12)


def test_chunked_equals_unchunked_qnn(tiny_images):
    x, y = tiny_images
    model = PatchQNN(
        (6, 6), 2, n_qubits=3, n_layers=1, patch_size=3, stride=3, positional_bias=True, aggregation="linear"
    )
    whole, chunked = Objective(model, x, y), Objective(model, x, y, chunk_size=3)
    v = torch.randn(whole.n_params, dtype=torch.float64)
    assert abs(float(whole.loss() - chunked.loss())) < 1e-12
    assert torch.allclose(whole.grad(), chunked.grad(), atol=1e-12, rtol=0)
    assert torch.allclose(whole.hvp(None, v), chunked.hvp(None, v), atol=1e-12, rtol=0)
    assert torch.allclose(whole.hessian(), chunked.hessian(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("extras", [{}, {"positional_bias": True, "aggregation": "linear"}])
@pytest.mark.parametrize("ansatz", ["hea", "reuploading"])
def test_batched_losses_equal_loop(tiny_images, ansatz, extras):
    """Objective.losses goes through PatchQNN.forward_points (every point in one engine call, blocks on), the
    loop through forward: same numbers, with per-point positional biases and heads too."""
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, ansatz=ansatz, n_qubits=3, n_layers=2, patch_size=3, stride=3, **extras)
    obj = Objective(model, x, y, chunk_size=5)
    thetas = obj.theta0 + 0.3 * torch.randn(7, obj.n_params, dtype=torch.float64)
    losses, errors = obj.losses(thetas, batch=3)
    for k in range(7):
        assert abs(float(losses[k]) - float(obj.loss(thetas[k]))) < 1e-12
        assert abs(float(errors[k]) - obj.error(thetas[k])) < 1e-12
    mse = Objective(model, x, y, "mse")
    mse_losses, _ = mse.losses(thetas[:2])
    assert all(abs(float(mse_losses[k]) - float(mse.loss(thetas[k]))) < 1e-12 for k in range(2))
    logits = model.forward_points(obj.unflatten(thetas), x)
    assert logits.shape == (7, x.shape[0], 2)
    assert torch.allclose(logits[4], obj.outputs(thetas[4], x), atol=1e-12)


def test_callers_model_is_untouched(mlp_problem):
    model, x, y = mlp_problem
    before = [p.detach().clone() for p in model.parameters()]
    obj = Objective(model, x, y)
    obj.hessian(obj.theta0 + 1.0)
    obj.losses(torch.stack([obj.theta0 * 2]))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.requires_grad for p in model.parameters())


def test_bad_inputs(mlp_problem):
    model, x, y = mlp_problem
    with pytest.raises(ConfigError, match="evaluation set"):
        Objective(model, x[:0], y[:0])
    with pytest.raises(ConfigError, match="labels"):
        Objective(model, x, y[:3])
    obj = Objective(model, x, y)
    bad = obj.theta0.clone()
    bad[4] = float("nan")
    with pytest.raises(ConfigError, match=r"theta\[4\]"):
        obj.loss(bad)
    with pytest.raises(ConfigError, match="shape"):
        obj.grad(torch.zeros(3))
    with pytest.raises(ConfigError, match="chunk_size"):
        Objective(model, x, y, chunk_size=0)
    with pytest.raises(ConfigError, match="hinge"):
        Objective(model, x, y, loss="hinge")
    diverged = Objective(model, x, y, loss=lambda out, labels: out.sum() * float("inf"))
    with pytest.raises(ValueError, match="finite loss"):
        check_finite_loss(diverged)


def test_one_output_regression_model_in_slices_and_interpolation():
    """A model with one output per sample and a loss of its own: grids equal point-by-point losses, and the
    classification error is NaN (undefined) rather than a crash or an argmax over one column."""
    from qlandscape.metrics.landscape.connectivity import interpolate
    from qlandscape.metrics.landscape.slices import slice_1d

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1), nn.Flatten(0)).double()
    x, y = torch.randn(20, 4, 4, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    obj = Objective(model, x, y, lambda out, target: ((out - target) ** 2).mean())
    d = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    alphas = np.linspace(-1, 1, 5)
    s = slice_1d(obj, d.numpy(), alphas=alphas)
    np.testing.assert_allclose(s.losses[0], [float(obj.loss(obj.theta0 + a * d)) for a in alphas], rtol=1e-13)
    assert np.isnan(s.errors).all() and np.isnan(obj.error())
    path = interpolate(obj, obj.theta0, obj.theta0 + d, n_points=5)
    assert path.losses.shape == (1, 5) and np.isnan(path.error_barriers).all()


def test_points_per_call_follows_the_state_memory(tiny_images):
    """Grid points per engine call: as many as fit the state budget (a 4-qubit model takes large groups, more
    qubits or samples fewer), 64 for models without an estimate; every grouping gives the same losses."""
    from qlandscape.core import objective as objective_module

    x, y = tiny_images
    small = PatchQNN((6, 6), 2, n_qubits=3, n_layers=1, patch_size=3, stride=3, seed=0)
    obj = Objective(small, x, y)
    per_point = small.point_state_bytes(x.shape[0])
    assert per_point == x.shape[0] * small.n_patches * 2**3 * 16
    expected = min(objective_module.MAX_POINTS_PER_CALL, objective_module.POINTS_STATE_BYTES // (4 * per_point))
    assert obj.points_per_call() == expected
    assert Objective(small, x, y, chunk_size=2).points_per_call() >= obj.points_per_call()
    wide = PatchQNN((6, 6), 2, n_qubits=9, n_layers=1, patch_size=3, stride=3, seed=0)
    assert 1 <= Objective(wide, x, y).points_per_call() < obj.points_per_call()
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(36, 2)).double()
    assert Objective(mlp, x, y).points_per_call() == objective_module.DEFAULT_POINTS_PER_CALL
    thetas = obj.theta0 + 0.3 * torch.randn(
        9, obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    default, grouped = obj.losses(thetas), obj.losses(thetas, batch=4)
    assert torch.allclose(default[0], grouped[0], atol=1e-13) and torch.equal(default[1], grouped[1])


def test_objective_of_a_complex64_model_evaluates_in_complex128(tiny_images):
    def qnn(**kwargs) -> PatchQNN:
        return PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=4, stride=2, seed=2, **kwargs)

    x, y = tiny_images
    fast = qnn(backend=make_backend("torch", dtype=torch.complex64))
    exact = Objective(qnn(), x, y)
    obj = Objective(fast, x, y)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(float(obj.loss() - exact.loss())) < 1e-14
    assert float((obj.hvp(None, v) - exact.hvp(None, v)).abs().max()) < 1e-14
    assert float((obj.hessian() @ v - obj.hvp(None, v)).abs().max()) < 1e-13
    assert fast.backend.dtype == torch.complex64  # the caller's model is untouched


def test_custom_loss_keeps_real_targets_and_builtin_losses_reject_fractional_labels():
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)

    def regression(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ((out[:, 0] - t) ** 2).mean()

    obj = Objective(model, x, y, regression)
    assert abs(float(obj.loss()) - float(regression(model(x), y).detach())) < 1e-15
    with pytest.raises(ConfigError, match=r"labels\[3\] = 0.5"):
        Objective(nn.Linear(3, 2).double(), x, torch.tensor([0.0, 1.0, 1.0, 0.5, 0.0, 1.0]))
    assert Objective(nn.Linear(3, 2).double(), x, torch.tensor([0.0, 1, 1, 0, 0, 1])).y.dtype == torch.long


def test_loss_name_survives_with_data():
    obj = Objective(nn.Linear(3, 2).double(), torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), "mse")
    assert obj.with_data(torch.randn(2, 3), torch.tensor([0, 1])).loss_name == "mse"


def test_batch_and_chunk_sizes_are_validated():
    obj = Objective(nn.Linear(3, 2).double(), torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ConfigError, match="batch"):
        obj.losses(obj.theta0[None], batch=0)
    with pytest.raises(ConfigError, match="chunk_size"):
        obj.jacobian(chunk_size=0)
    with pytest.raises(ConfigError, match="chunk_size"):
        Objective(nn.Linear(3, 2).double(), torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), chunk_size=1.5)


def test_hessian_is_the_generic_one_and_points_to_exact_hessian_for_the_rest(mlp_problem):
    model, x, y = mlp_problem
    obj = Objective(model, x, y)
    theta = obj.theta0 + 0.1
    reference = torch.autograd.functional.hessian(lambda t: obj.loss_fn(obj._outputs(t, x), obj.y), theta)
    torch.testing.assert_close(obj.hessian(theta), reference, atol=1e-12, rtol=0)
    torch.testing.assert_close(obj.hessian(theta, method="autograd"), obj.hessian(theta), atol=0, rtol=0)
    for method in ("structured", "auto", "fast"):
        with pytest.raises(ConfigError, match=f"method = '{method}'.*exact_hessian"):
            obj.hessian(method=method)
