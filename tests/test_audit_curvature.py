"""Regression tests from the curvature audit: Objective precision and targets, structured MSE Hessians, Lanczos
with repeated eigenvalues (null spaces, closed Krylov spaces)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.operators import matrix_operator
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.metrics.curvature.structured import exact_hessian
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.backends import make_backend


def _qnn(**kwargs) -> PatchQNN:
    return PatchQNN((6, 6), 3, n_qubits=3, n_layers=1, patch_size=4, stride=2, seed=2, **kwargs)


def test_objective_of_a_complex64_model_evaluates_in_complex128(tiny_images):
    x, y = tiny_images
    fast = _qnn(backend=make_backend("torch", dtype=torch.complex64))
    exact = Objective(_qnn(), x, y)
    obj = Objective(fast, x, y)
    v = torch.randn(obj.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(float(obj.loss() - exact.loss())) < 1e-14
    assert float((obj.hvp(None, v) - exact.hvp(None, v)).abs().max()) < 1e-14
    # the structured (complex128) Hessian and the HVPs now describe the same function
    assert float((exact_hessian(obj) @ v - obj.hvp(None, v)).abs().max()) < 1e-13
    assert fast.backend.dtype == torch.complex64  # the caller's model is untouched


@pytest.mark.parametrize("aggregation", ["mean", "linear"])
def test_structured_hessian_of_an_mse_loss_matches_autograd(tiny_images, aggregation):
    x, y = tiny_images
    obj = Objective(_qnn(aggregation=aggregation, positional_bias=True), x, y, "mse", chunk_size=3)
    np.testing.assert_allclose(exact_hessian(obj).numpy(), obj.hessian(method="autograd").numpy(), atol=1e-13)


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


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
@pytest.mark.parametrize("matrix", [2.0 * np.eye(10), np.zeros((10, 10))])
def test_lanczos_on_a_krylov_space_that_closes_at_once(matrix, which):
    # H v0 is parallel to v0: the next Lanczos vector was 0/0 (NaN, reported as a non-finite HVP)
    result = top_eigenvalues(matrix_operator(matrix), 2, which=which)
    np.testing.assert_allclose(result.eigenvalues, np.full(4 if which == "both" else 2, matrix[0, 0]), atol=1e-14)
    assert result.converged


def _linear_classifier(n_in: int, seed: int) -> Objective:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=g)
    return (
        Objective(MLP((6, 6), 3, width=4, depth=0), x, y)
        if n_in == 36
        else Objective(
            nn.Linear(n_in, 3).double(),
            torch.randn(20, n_in, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (20,), generator=g),
        )
    )


@pytest.mark.parametrize("n_in", [4, 36])
@pytest.mark.parametrize("which,k", [("smallest", 3), ("both", 3), ("smallest", 6), ("largest", 12)])
def test_lanczos_finds_every_copy_of_a_null_space(n_in, which, k):
    # A linear softmax classifier has an exact null space; Lanczos reported one zero and then interior eigenvalues
    # with converged=True (e.g. [0, 0.027, 0.036] for [0, 0, 0]).
    obj = _linear_classifier(n_in, seed=0)
    if k >= obj.n_params - 1:
        pytest.skip("dense route")
    exact = np.linalg.eigvalsh(obj.hessian().numpy())
    want = {"smallest": exact[:k], "largest": exact[-k:], "both": np.concatenate([exact[:k], exact[-k:]])}[which]
    result = top_eigenvalues(obj, k, which=which)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, want, atol=1e-12)
    h = obj.hessian().numpy()
    explicit = np.linalg.norm(h @ result.eigenvectors - result.eigenvectors * result.eigenvalues, axis=0)
    assert explicit.max() < 1e-9


def test_lanczos_top3_of_a_triple_eigenvalue():
    rng = np.random.default_rng(0)
    eig = np.concatenate([[5.0, 5.0, 5.0], np.linspace(-1, 2, 37)])
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    result = top_eigenvalues(matrix_operator((q * eig) @ q.T), 3, which="largest")
    np.testing.assert_allclose(result.eigenvalues, [5.0, 5.0, 5.0], atol=1e-12)  # was [2, 5, 5], converged


def test_options_are_validated_before_any_work():
    from qlandscape.metrics.curvature.hessian import hessian_summary
    from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues
    from qlandscape.metrics.fits import fit_power_law

    op = matrix_operator(np.diag(np.arange(30.0)))
    with pytest.raises(ConfigError, match="solver"):
        top_eigenvalues(matrix_operator(np.eye(3)), 2, solver="bogus")  # the dense route ignored it
    with pytest.raises(ConfigError, match="ncv"):
        top_eigenvalues(op, 2, solver="arpack", ncv=2)  # was SciPy's ValueError after the work
    assert op.n_matvecs == 0
    for sigma in (-1.0, 0.0):  # a reversed grid / NaN density before
        with pytest.raises(ConfigError, match="sigma"):
            density_from_eigenvalues(np.array([1.0, 2.0]), sigma=sigma)
    with pytest.raises(ConfigError, match="confidence"):
        fit_power_law([1, 2, 4], [1.0, 2.0, 4.1], confidence=95)  # NaN interval before
    with pytest.raises(ConfigError, match="method"):
        hessian_summary(matrix_operator(np.eye(1)), method="lanczos")  # named a k the caller never passed
