"""Eigensolvers on symmetric operators: Lanczos and power iteration against SciPy's eigsh and numpy's eigvalsh on
analytic and random matrices, repeated eigenvalues (null spaces, closed Krylov spaces), convergence diagnostics."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.operators import matrix_operator
from qlandscape.metrics.curvature.eigensolvers import matvecs_to_tolerance, power_iteration, top_eigenvalues
from qlandscape.models.classical import MLP
from tests.metrics.curvature.matrices import symmetric_with_spectrum


def path_laplacian(n: int) -> np.ndarray:
    """The graph Laplacian of a path of n nodes: eigenvalues 2 - 2 cos(π j / n), j = 0..n-1, and the constant
    vector spans the null space."""
    lap = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    lap[0, 0] = lap[-1, -1] = 1.0
    return lap


def explicit_residuals(matrix: np.ndarray, result) -> np.ndarray:
    return np.linalg.norm(matrix @ result.eigenvectors - result.eigenvectors * result.eigenvalues, axis=0)


# ---------------------------------------------------------------------------------------------- Lanczos
def test_lanczos_on_the_path_laplacian_gives_the_analytic_eigenpairs():
    n = 60
    lap = path_laplacian(n)
    exact = 2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)
    top = top_eigenvalues(matrix_operator(lap), 3, which="largest")
    low = top_eigenvalues(matrix_operator(lap), 2, which="smallest")
    np.testing.assert_allclose(top.eigenvalues, exact[-3:], atol=1e-10)
    np.testing.assert_allclose(low.eigenvalues, exact[:2], atol=1e-10)
    # the null vector is the constant vector (up to sign)
    np.testing.assert_allclose(np.abs(low.eigenvectors[:, 0]), np.full(n, 1 / np.sqrt(n)), atol=1e-8)
    for result in (top, low):
        assert result.converged and result.method == "lanczos" and result.which in ("largest", "smallest")
        assert explicit_residuals(lap, result).max() < 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("which,k", [("largest", 1), ("largest", 4), ("smallest", 3), ("both", 2)])
def test_lanczos_matches_eigvalsh_on_random_symmetric_matrices(seed, which, k):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((70, 70))
    a = (a + a.T) / 2
    exact = np.linalg.eigvalsh(a)
    want = {"largest": exact[-k:], "smallest": exact[:k], "both": np.r_[exact[:k], exact[-k:]]}[which]
    result = top_eigenvalues(matrix_operator(a), k, which=which, tol=1e-12, seed=seed)
    assert result.converged
    np.testing.assert_allclose(result.eigenvalues, want, atol=1e-9)
    assert np.all(np.diff(result.eigenvalues) >= 0)  # ascending
    np.testing.assert_allclose(result.eigenvectors.T @ result.eigenvectors, np.eye(want.size), atol=1e-8)
    # the reported residuals are the real ones (up to the k explicit checks' round-off)
    np.testing.assert_allclose(result.residual_norms, explicit_residuals(a, result), atol=1e-9)


@pytest.mark.parametrize("which,mode", [("largest", "LA"), ("smallest", "SA")])
def test_lanczos_matches_scipy_eigsh_called_directly(which, mode):
    a = symmetric_with_spectrum(np.r_[np.linspace(-3.0, 3.0, 95), [4.0, 5.0, -4.5, -6.0, 8.0]], seed=7)
    ours = top_eigenvalues(matrix_operator(a), 3, which=which, tol=1e-12)
    ref = np.sort(spla.eigsh(a, k=3, which=mode, tol=1e-12, return_eigenvectors=False))
    np.testing.assert_allclose(ours.eigenvalues, ref, atol=1e-10)
    # eigenvectors agree up to sign
    ref_vals, ref_vecs = np.linalg.eigh(a)
    idx = np.arange(97, 100) if which == "largest" else np.arange(3)
    np.testing.assert_allclose(np.abs(np.sum(ours.eigenvectors * ref_vecs[:, idx], axis=0)), 1.0, atol=1e-8)


def test_converging_lanczos_matches_arpack_with_fewer_matvecs():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((150, 150)))
    eig = np.concatenate([[10.0, 6.0, -4.0], rng.uniform(-1, 1, 147)])
    matrix = (q * eig) @ q.T
    for which, k in [("largest", 2), ("smallest", 1), ("both", 1)]:
        ours = top_eigenvalues(matrix_operator(matrix), k, which=which, tol=1e-10)
        ref = top_eigenvalues(matrix_operator(matrix), k, which=which, tol=1e-10, solver="arpack")
        np.testing.assert_allclose(ours.eigenvalues, ref.eigenvalues, atol=1e-9)
        explicit = np.linalg.norm(matrix @ ours.eigenvectors - ours.eigenvectors * ours.eigenvalues, axis=0)
        assert explicit.max() < 1e-8 and ours.residual_norms.max() < 1e-8
        # k >= 2 searches each end once more beyond the found vectors (repeated eigenvalues), about twice the cost
        assert ours.n_matvecs < ref.n_matvecs if k == 1 else ours.n_matvecs <= 1.5 * ref.n_matvecs
    with pytest.raises(ConfigError, match="krylov"):
        top_eigenvalues(matrix_operator(matrix), 1, solver="krylov")


def test_k_near_the_size_takes_the_dense_route():
    spectrum = np.linspace(-1.0, 1.0, 8)
    a = symmetric_with_spectrum(spectrum, seed=4)
    for which, k, want in [("largest", 7, spectrum[1:]), ("smallest", 7, spectrum[:7]), ("both", 4, spectrum)]:
        result = top_eigenvalues(matrix_operator(a), k, which=which)
        assert result.method == "dense" and result.converged
        np.testing.assert_allclose(result.eigenvalues, want, atol=1e-12)
        assert result.n_matvecs == 8 + want.size  # the identity, then one residual check per pair


# ---------------------------------------------------------------------------------------------- degenerate cases
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
@pytest.mark.parametrize("matrix", [2.0 * np.eye(10), np.zeros((10, 10))])
def test_lanczos_on_a_krylov_space_that_closes_at_once(matrix, which):
    # H v0 is parallel to v0: the next Lanczos vector was 0/0 (NaN, reported as a non-finite HVP)
    result = top_eigenvalues(matrix_operator(matrix), 2, which=which)
    np.testing.assert_allclose(result.eigenvalues, np.full(4 if which == "both" else 2, matrix[0, 0]), atol=1e-14)
    assert result.converged


def test_lanczos_top3_of_a_triple_eigenvalue():
    rng = np.random.default_rng(0)
    eig = np.concatenate([[5.0, 5.0, 5.0], np.linspace(-1, 2, 37)])
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    result = top_eigenvalues(matrix_operator((q * eig) @ q.T), 3, which="largest")
    np.testing.assert_allclose(result.eigenvalues, [5.0, 5.0, 5.0], atol=1e-12)  # was [2, 5, 5], converged


def test_lanczos_counts_every_copy_of_a_repeated_bottom_and_a_low_rank_matrix():
    spectrum = np.r_[[-1.0] * 4, np.linspace(0.0, 3.0, 46)]
    low = top_eigenvalues(matrix_operator(symmetric_with_spectrum(spectrum, seed=8)), 5, which="smallest")
    np.testing.assert_allclose(low.eigenvalues, spectrum[:5], atol=1e-10)
    # rank 2: everything but two eigenvalues is an exact zero
    u = np.random.default_rng(9).standard_normal((40, 2))
    rank2 = u @ np.diag([3.0, -2.0]) @ u.T
    exact = np.linalg.eigvalsh(rank2)
    both = top_eigenvalues(matrix_operator(rank2), 3, which="both")
    np.testing.assert_allclose(both.eigenvalues, np.r_[exact[:3], exact[-3:]], atol=1e-10)
    assert both.converged


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


# ---------------------------------------------------------------------------------------------- power iteration
def test_power_iteration_baseline():
    clear = symmetric_with_spectrum(np.r_[10.0, np.linspace(-1.0, 1.0, 99)], seed=1)
    result = power_iteration(matrix_operator(clear), tol=1e-10, max_iter=500)
    assert result.converged and result.eigenvalues[0] == pytest.approx(10.0, rel=1e-8)
    assert result.residual_norms[0] < 1e-3
    small_gap = symmetric_with_spectrum(np.r_[1.0, 0.99, np.linspace(-0.5, 0.9, 198)], seed=2)
    power = power_iteration(matrix_operator(small_gap), tol=1e-8, max_iter=20000)
    lanczos = top_eigenvalues(matrix_operator(small_gap), 1, tol=1e-8)
    assert power.converged and lanczos.converged
    assert lanczos.eigenvalues[0] == pytest.approx(1.0, abs=1e-10)
    assert power.eigenvalues[0] == pytest.approx(1.0, abs=1e-5)
    assert power.n_matvecs > 3 * lanczos.n_matvecs


def test_power_iteration_finds_the_largest_magnitude_even_when_negative():
    a = symmetric_with_spectrum(np.r_[-8.0, np.linspace(-2.0, 3.0, 29)], seed=3)
    result = power_iteration(matrix_operator(a), tol=1e-12, max_iter=2000)
    assert result.converged and result.which == "magnitude" and result.method == "power"
    assert result.eigenvalues[0] == pytest.approx(-8.0, rel=1e-9)
    # the reported vector is the one measured: its residual is the reported one
    np.testing.assert_allclose(explicit_residuals(a, result), result.residual_norms, atol=1e-12)
    assert np.linalg.norm(result.eigenvectors[:, 0]) == pytest.approx(1.0, abs=1e-12)


def test_power_iteration_on_the_zero_matrix_stops_in_the_null_space():
    result = power_iteration(matrix_operator(np.zeros((6, 6))), tol=1e-10)
    assert result.converged and result.eigenvalues[0] == 0.0 and result.n_matvecs == 1
    assert result.residual_norms[0] == 0.0


# ---------------------------------------------------------------------------------------------- diagnostics
def test_power_iteration_reports_non_convergence():
    # a top gap of 0.1%: five iterations leave the Rayleigh quotient far from settled
    a = symmetric_with_spectrum(np.r_[1.0, 0.999, np.linspace(-0.5, 0.5, 38)], seed=6)
    result = power_iteration(matrix_operator(a), tol=1e-14, max_iter=5)
    assert not result.converged
    assert result.n_matvecs == 5 and result.history.size == 5
    assert result.residual_norms[0] > 1e-2 and abs(result.eigenvalues[0] - 1.0) > 1e-3


def test_lanczos_hands_over_to_arpack_when_its_basis_is_full():
    a = symmetric_with_spectrum(np.r_[1.0, 0.98, np.linspace(-1.0, 0.9, 118)], seed=5)
    result = top_eigenvalues(matrix_operator(a), 1, tol=1e-12, max_iter=4)
    assert result.converged and result.eigenvalues[0] == pytest.approx(1.0, abs=1e-10)
    assert result.history.size == 0  # ARPACK keeps no per-iteration history
    assert result.n_matvecs > 4


def test_arpack_non_convergence_is_reported_and_logged(caplog):
    a = symmetric_with_spectrum(np.r_[1.0, 0.999, np.linspace(-1.0, 0.99, 198)], seed=6)
    with caplog.at_level(logging.WARNING, logger="qlandscape.metrics.curvature.eigensolvers"):
        result = top_eigenvalues(matrix_operator(a), 2, tol=1e-14, solver="arpack", max_iter=1, ncv=5)
    assert not result.converged
    assert "did not converge: 0 of 2 pairs converged" in caplog.text
    # only converged pairs are returned (none here), each with its residual
    assert result.eigenvalues.size == result.residual_norms.size == result.eigenvectors.shape[1] == 0


def test_histories_give_the_cost_to_an_accuracy():
    """Cost to relative accuracy 1e-6, read from the histories: on a clustered top (λ₂/λ₁ = 0.95, the shape of
    a many-class Hessian's outliers) Lanczos needs well under a third of power iteration's matvecs."""
    rng = np.random.default_rng(5)
    eig = np.concatenate([[1.0, 0.95, 0.9, 0.85], rng.uniform(-0.05, 0.2, 196)])
    op = matrix_operator(symmetric_with_spectrum(eig, seed=5))
    lanczos = top_eigenvalues(op, 1, tol=1e-12)
    power = power_iteration(op, tol=1e-14, max_iter=3000)
    assert len(lanczos.history) == lanczos.n_matvecs and len(power.history) == power.n_matvecs
    n_lanczos, n_power = matvecs_to_tolerance(lanczos, 1.0), matvecs_to_tolerance(power, 1.0)
    assert n_lanczos is not None and n_power is not None and 3 * n_lanczos <= n_power
    assert abs(lanczos.history[n_lanczos - 1] - 1.0) <= 1e-6 < abs(lanczos.history[n_lanczos - 2] - 1.0)
    assert matvecs_to_tolerance(power, 2.0) is None  # never reaches a wrong value
    with pytest.raises(ConfigError, match="rel_tol"):
        matvecs_to_tolerance(power, 1.0, rel_tol=0.0)


# ---------------------------------------------------------------------------------------------- bad input
def test_options_are_validated_before_any_work():
    op = matrix_operator(np.diag(np.arange(30.0)))
    with pytest.raises(ConfigError, match="solver"):
        top_eigenvalues(matrix_operator(np.eye(3)), 2, solver="bogus")  # the dense route ignored it
    with pytest.raises(ConfigError, match="ncv"):
        top_eigenvalues(op, 2, solver="arpack", ncv=2)  # was SciPy's ValueError after the work
    with pytest.raises(ConfigError, match="k = 16"):
        top_eigenvalues(op, 16, which="both")
    with pytest.raises(ConfigError, match="k = 0"):
        top_eigenvalues(op, 0)
    with pytest.raises(ConfigError, match="tol = -1"):
        top_eigenvalues(op, 1, tol=-1.0)
    with pytest.raises(ConfigError, match="max_iter = 0"):
        top_eigenvalues(op, 1, max_iter=0)
    with pytest.raises(ConfigError, match="which = 'top'"):
        top_eigenvalues(op, 1, which="top")
    with pytest.raises(ConfigError, match="tol = 0"):
        power_iteration(op, tol=0.0)
    with pytest.raises(ConfigError, match="max_iter = 0"):
        power_iteration(op, max_iter=0)
    assert op.n_matvecs == 0
