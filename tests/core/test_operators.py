"""Linear operators: dense matrices, exact and finite-difference HVPs, dense and SciPy views, counting, validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.operators import (
    LinearOperator,
    as_operator,
    gradient_difference_operator,
    hessian_operator,
    matrix_operator,
    to_dense,
    to_scipy,
)


@pytest.fixture(scope="module")
def mlp_objective() -> Objective:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()  # 43 parameters
    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    return Objective(model, x, torch.randint(0, 3, (16,), generator=g))


@pytest.fixture(scope="module")
def mlp_hessian(mlp_objective) -> np.ndarray:
    # the reference: PyTorch's own dense Hessian of the same mean loss, outside the Objective
    model = mlp_objective.model
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, (t.reshape(s) for t, s in zip(theta.split(sizes), shapes, strict=True)), strict=True))
        out = torch.func.functional_call(model, parts, (mlp_objective.x,))
        return nn.functional.cross_entropy(out, mlp_objective.y)

    return torch.autograd.functional.hessian(loss, mlp_objective.theta0.clone()).numpy()


def symmetric(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a + a.T) / 2


# ---------------------------------------------------------------------------------------------- dense matrices
def test_matrix_operator_applies_its_matrix_and_counts():
    a = symmetric(7, seed=0)
    op = matrix_operator(a)
    assert op.size == 7 and op.n_matvecs == 0 and "7x7" in op.name
    v = np.arange(7.0)
    np.testing.assert_array_equal(op.matvec(v), a @ v)
    assert op.n_matvecs == 1
    vs = np.random.default_rng(1).standard_normal((7, 3))
    np.testing.assert_allclose(op.matmat(vs), a @ vs, atol=1e-14)
    assert op.n_matvecs == 1 + 3  # one counted matvec per column
    assert "n_matvecs=4" in repr(op)


def test_matrix_operator_copies_its_matrix():
    a = symmetric(4, seed=2)
    op = matrix_operator(a)
    before = op.matvec(np.ones(4))
    a[0, 0] += 100.0  # the caller changes its array afterwards
    np.testing.assert_array_equal(op.matvec(np.ones(4)), before)


def test_matvec_accepts_any_real_vector_and_returns_float64():
    op = matrix_operator(np.diag([1.0, 2.0, 3.0]))
    out = op.matvec([1, 1, 1])  # ints, a list
    assert out.dtype == np.float64 and out.shape == (3,)
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(op.matvec(np.ones((3, 1), dtype=np.float32)), [1.0, 2.0, 3.0])


def test_to_dense_and_to_scipy_round_trip():
    a = symmetric(9, seed=3)
    op = matrix_operator(a)
    np.testing.assert_allclose(to_dense(op), a, atol=1e-14)
    assert op.n_matvecs == 9
    view = to_scipy(op)
    assert isinstance(view, spla.LinearOperator) and view.shape == (9, 9) and view.dtype == np.float64
    v = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(view.matvec(v), a @ v, atol=1e-14)
    np.testing.assert_allclose(view.rmatvec(v), a @ v, atol=1e-14)  # symmetric: the adjoint is itself
    assert op.n_matvecs == 9 + 2
    # SciPy's eigensolver on the view finds the extreme eigenvalues of the matrix, counted on the operator
    vals = spla.eigsh(view, k=2, which="LA", v0=np.ones(9), return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), np.linalg.eigvalsh(a)[-2:], atol=1e-10)
    assert op.n_matvecs > 9 + 2


def test_to_dense_symmetrises_round_off():
    # an operator with a tiny asymmetry (round-off in a real HVP) comes back exactly symmetric
    a = symmetric(5, seed=4)
    skew = np.triu(np.full((5, 5), 1e-13), 1)
    op = LinearOperator(5, lambda v: (a + skew) @ v)
    dense = to_dense(op)
    np.testing.assert_array_equal(dense, dense.T)
    np.testing.assert_allclose(dense, a + (skew + skew.T) / 2, atol=1e-15)


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "matrix,match",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros((0, 0)), "non-empty"),
        (np.zeros(4), "square"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "non-finite"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
    ],
)
def test_matrix_operator_rejects_bad_matrices(matrix, match):
    with pytest.raises(ConfigError, match=match):
        matrix_operator(matrix)


def test_asymmetry_check_is_relative_and_can_be_skipped():
    a = np.array([[1e6, 1.0], [1.0 + 1e-6, 2e6]])  # asymmetry 1e-6 against entries of 1e6: round-off
    assert matrix_operator(a).size == 2
    lower = np.tril(np.ones((3, 3)))
    with pytest.raises(ConfigError, match="symmetric"):
        matrix_operator(lower)
    np.testing.assert_array_equal(matrix_operator(lower, check_symmetric=False).matvec(np.ones(3)), [1, 2, 3])


def test_matvec_rejects_wrong_lengths_and_non_finite_products():
    op = matrix_operator(np.eye(3))
    with pytest.raises(ConfigError, match=r"v = \(4,\).*length 3"):
        op.matvec(np.ones(4))
    assert op.n_matvecs == 0  # a rejected vector is not counted
    nan_op = LinearOperator(3, lambda v: v * np.nan, name="broken")
    with pytest.raises(ValueError, match="broken: .*non-finite values \\(3 of 3\\)"):
        nan_op.matvec(np.ones(3))


def test_as_operator_accepts_operators_and_objectives_only(mlp_objective, mlp_hessian):
    op = matrix_operator(np.eye(3))
    assert as_operator(op) is op
    with pytest.raises(ConfigError, match="theta"):
        as_operator(op, np.zeros(3))
    with pytest.raises(ConfigError, match="ndarray"):
        as_operator(np.eye(3))
    h_op = as_operator(mlp_objective)
    assert h_op.size == mlp_objective.n_params
    v = np.random.default_rng(0).standard_normal(h_op.size)
    np.testing.assert_allclose(h_op.matvec(v), mlp_hessian @ v, atol=1e-12)


# ---------------------------------------------------------------------------------------------- HVP sources
def test_hessian_operator_equals_the_dense_hessian(mlp_objective, mlp_hessian):
    op = hessian_operator(mlp_objective)
    assert op.size == 43 and op.n_matvecs == 0
    np.testing.assert_allclose(to_dense(op), mlp_hessian, atol=1e-12)
    assert op.n_matvecs == 43


def test_hessian_operator_at_another_point_and_its_guards(mlp_objective):
    theta = mlp_objective.theta0.numpy() + 0.3
    op = hessian_operator(mlp_objective, theta)
    v = np.random.default_rng(1).standard_normal(op.size)
    want = mlp_objective.hvp(torch.from_numpy(theta), torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(op.matvec(v), want, atol=1e-14)
    np.testing.assert_allclose(hessian_operator(mlp_objective, torch.from_numpy(theta)).matvec(v), want, atol=1e-14)
    bad = theta.copy()
    bad[5] = np.inf
    with pytest.raises(ConfigError, match=r"theta\[5\] = inf"):
        hessian_operator(mlp_objective, bad)
    with pytest.raises(ConfigError, match="theta"):
        hessian_operator(mlp_objective, theta[:-1])
    x = mlp_objective.x.clone()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="loss at this parameter vector is nan"):
        hessian_operator(mlp_objective.with_data(x, mlp_objective.y))


@pytest.mark.parametrize("eps", [1e-3, 1e-4, 1e-5])
def test_gradient_difference_operator_approximates_the_exact_hvp(mlp_objective, mlp_hessian, eps):
    op = gradient_difference_operator(mlp_objective, eps=eps)
    v = 3.0 * np.random.default_rng(2).standard_normal(op.size)  # not unit length: the product scales back
    exact = mlp_hessian @ v
    # central differences: O(eps²) truncation plus O(machine eps / eps) round-off
    error = np.linalg.norm(op.matvec(v) - exact) / np.linalg.norm(exact)
    assert error < 10 * eps**2 + 1e-10 / eps
    assert op.n_matvecs == 1
    np.testing.assert_array_equal(op.matvec(np.zeros(op.size)), np.zeros(op.size))  # no 0/0


def test_gradient_difference_error_shrinks_like_eps_squared(mlp_objective, mlp_hessian):
    v = np.random.default_rng(3).standard_normal(mlp_objective.n_params)
    exact = mlp_hessian @ v
    errors = [
        np.linalg.norm(gradient_difference_operator(mlp_objective, eps=eps).matvec(v) - exact) for eps in (1e-1, 1e-2)
    ]
    assert 50 < errors[0] / errors[1] < 200  # a tenth of the step, a hundredth of the error


@pytest.mark.parametrize("eps", [0.0, -1e-4, float("nan"), float("inf")])
def test_gradient_difference_operator_rejects_bad_steps(mlp_objective, eps):
    with pytest.raises(ConfigError, match="eps"):
        gradient_difference_operator(mlp_objective, eps=eps)


def test_operator_counts_and_scipy_view(mlp_objective, mlp_hessian):
    op = hessian_operator(mlp_objective)
    assert op.size == 43 and op.n_matvecs == 0
    sp = to_scipy(op)
    sp.matvec(np.ones(43))
    np.testing.assert_allclose(to_dense(op), mlp_hessian, atol=1e-12)
    assert op.n_matvecs == 1 + 43


def test_hvp_equals_central_difference_of_gradient(mlp_objective, mlp_hessian):
    theta = mlp_objective.theta0
    v = torch.from_numpy(np.random.default_rng(5).standard_normal(mlp_objective.n_params))
    eps = 1e-5
    fd = (mlp_objective.grad(theta + eps * v) - mlp_objective.grad(theta - eps * v)) / (2 * eps)
    hv = mlp_objective.hvp(theta, v)
    np.testing.assert_allclose(hv.numpy(), fd.numpy(), rtol=0, atol=1e-7 * float(hv.norm()))
    np.testing.assert_allclose(hv.numpy(), mlp_hessian @ v.numpy(), atol=1e-12)
    op = gradient_difference_operator(mlp_objective, eps=1e-5)
    np.testing.assert_allclose(op.matvec(v.numpy()), hv.numpy(), atol=1e-7 * float(hv.norm()))
    assert op.n_matvecs == 1
