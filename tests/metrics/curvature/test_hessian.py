"""Hessian metrics: dense vs Lanczos, Hutchinson, SLQ, summaries, trajectories, bad input, save/load, plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.core.operators import (
    matrix_operator,
)
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.metrics.curvature.hessian import dense_spectrum, hessian_along_trajectory, hessian_summary
from qlandscape.metrics.curvature.results import DenseSpectrum, EigenResult, SpectralDensity, TrajectoryCurvature
from qlandscape.metrics.curvature.spectral_density import hutchinson_trace, spectral_density
from tests.metrics.curvature.matrices import symmetric_with_spectrum


# ---------------------------------------------------------------------------------------------- fixtures
class Quadratic(nn.Module):
    """Outputs 1/2 θᵀAθ for every input, so the mean loss is exactly that and the Hessian is A."""

    def __init__(self, a: np.ndarray, theta: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float64))
        self.theta = nn.Parameter(torch.as_tensor(theta, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = 0.5 * self.theta @ self.a @ self.theta
        return value.expand(x.shape[0])


def quadratic_objective(a: np.ndarray, seed: int = 1) -> Objective:
    theta = np.random.default_rng(seed).standard_normal(a.shape[0])
    return Objective(Quadratic(a, theta), torch.zeros(2, 1), torch.zeros(2), loss=lambda out, y: out.mean())


@pytest.fixture(scope="module")
def mlp_objective() -> Objective:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 9), nn.Tanh(), nn.Linear(9, 3)).double()  # 84 parameters
    g = torch.Generator().manual_seed(4)
    x = torch.randn(24, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=g)
    return Objective(model, x, y, "cross_entropy")


@pytest.fixture(scope="module")
def mlp_dense(mlp_objective) -> DenseSpectrum:
    return dense_spectrum(mlp_objective, keep_hessian=True)


# ---------------------------------------------------------------------------------------------- exactness
def test_quadratic_model_gives_its_eigenvalues_dense_and_lanczos():
    spectrum = np.array([-2.0, -0.5, 0.0, 0.0, 0.3, 1.0, 1.5, 4.0, 7.0, 11.0])
    a = symmetric_with_spectrum(spectrum)
    obj = quadratic_objective(a)
    dense = dense_spectrum(obj)
    np.testing.assert_allclose(dense.eigenvalues, spectrum, atol=1e-12)
    top = top_eigenvalues(obj, 3, which="largest")
    np.testing.assert_allclose(top.eigenvalues, spectrum[-3:], atol=1e-10)
    low = top_eigenvalues(obj, 2, which="smallest")
    np.testing.assert_allclose(low.eigenvalues, spectrum[:2], atol=1e-10)
    via_matrix = top_eigenvalues(matrix_operator(a), 1, which="both")
    np.testing.assert_allclose(via_matrix.eigenvalues, [spectrum[0], spectrum[-1]], atol=1e-10)
    assert top.converged and top.method == "lanczos" and top.n_matvecs > 0
    # k near the size falls back to the dense eigenproblem of the operator (n matvecs + k residual checks)
    nearly_all = top_eigenvalues(matrix_operator(a), 9)
    assert nearly_all.method == "dense" and nearly_all.n_matvecs == 10 + 9
    np.testing.assert_allclose(nearly_all.eigenvalues, spectrum[1:], atol=1e-12)
    np.testing.assert_allclose(dense_spectrum(matrix_operator(a)).eigenvalues, spectrum, atol=1e-12)
    summary = hessian_summary(matrix_operator(a))
    assert (summary.lambda_max, summary.lambda_min) == pytest.approx((11.0, -2.0), abs=1e-12)
    assert summary.fraction_negative == 0.2 and summary.trace == pytest.approx(spectrum.sum(), abs=1e-12)


def test_lanczos_matches_dense_on_mlp(mlp_objective, mlp_dense):
    vals = mlp_dense.eigenvalues
    assert vals[0] < 0 < vals[-1]  # a saddle: both ends are informative
    top = top_eigenvalues(mlp_objective, 3, which="largest")
    low = top_eigenvalues(mlp_objective, 3, which="smallest")
    np.testing.assert_allclose(top.eigenvalues, vals[-3:], atol=1e-8, rtol=0)
    np.testing.assert_allclose(low.eigenvalues, vals[:3], atol=1e-8, rtol=0)
    for res in (top, low):
        assert res.converged
        assert res.residual_norms.max() < 1e-6
        np.testing.assert_allclose(np.linalg.norm(res.eigenvectors, axis=0), 1.0, atol=1e-12)
    h = mlp_dense.hessian
    np.testing.assert_allclose(h @ top.eigenvectors, top.eigenvectors * top.eigenvalues, atol=1e-6)


# ---------------------------------------------------------------------------------------------- estimators
def test_hutchinson_within_four_standard_errors(mlp_objective, mlp_dense):
    result = hutchinson_trace(mlp_objective, n_probes=200, seed=0)
    assert result.n_matvecs == 200 and result.samples.shape == (200,)
    assert result.stderr > 0
    assert abs(result.estimate - mlp_dense.trace) < 4 * result.stderr


def test_slq_density_normalised_and_mean_matches_trace(mlp_objective, mlp_dense):
    density = spectral_density(mlp_objective, n_starts=6, lanczos_steps=30, seed=7)
    assert np.trapezoid(density.density, density.grid) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, atol=1e-12)
    assert density.n_matvecs == 6 * 30
    # same Rademacher probes: the quadrature mean is each probe's Rayleigh quotient, i.e. Hutchinson / P
    same_probes = hutchinson_trace(mlp_objective, n_probes=6, seed=7)
    assert density.mean * density.n_params == pytest.approx(same_probes.estimate, rel=1e-10, abs=1e-10)
    assert density.grid_mean == pytest.approx(density.mean, abs=1e-6)
    # Ritz values lie inside the spectrum
    assert density.nodes.min() >= mlp_dense.lambda_min - 1e-8
    assert density.nodes.max() <= mlp_dense.lambda_max + 1e-8


def test_slq_mean_is_exact_trace_over_p_for_a_diagonal_matrix():
    # for a diagonal H every Rademacher probe gives zᵀHz = tr(H) exactly, so the SLQ mean must be tr(H)/P
    diag = np.linspace(-1.0, 5.0, 40)
    density = spectral_density(matrix_operator(np.diag(diag)), n_starts=4, lanczos_steps=40, seed=2)
    assert density.mean == pytest.approx(diag.mean(), abs=1e-12)
    assert density.grid_mean == pytest.approx(diag.mean(), abs=1e-6)
    assert np.trapezoid(density.density, density.grid) == pytest.approx(1.0, abs=1e-12)
    # full Krylov space: the nodes are the eigenvalues themselves
    real = density.nodes[0, : density.steps[0]]
    assert np.abs(real[:, None] - diag[None, :]).min(axis=1).max() < 1e-10
    assert density.mass_below(0.0) == pytest.approx(np.mean(diag < 0), abs=0.15)


def test_slq_stops_early_on_an_invariant_subspace():
    a = symmetric_with_spectrum([0.0] * 27 + [1.0, 2.0, 3.0])  # 4 distinct eigenvalues
    density = spectral_density(matrix_operator(a), n_starts=3, lanczos_steps=20, seed=0)
    assert (density.steps == 4).all() and density.n_matvecs == 12
    np.testing.assert_allclose(density.mean * 30, np.trace(a), rtol=0.5)
    assert density.mass_below(-1e-9) == 0.0


# ---------------------------------------------------------------------------------------------- summaries
def test_summary_dense_and_lanczos_agree(mlp_objective, mlp_dense):
    dense = hessian_summary(mlp_objective)
    assert dense.method == "dense" and dense.trace_stderr == 0.0
    assert dense.lambda_max == pytest.approx(mlp_dense.lambda_max, abs=1e-12)
    assert dense.ratio == pytest.approx(abs(mlp_dense.lambda_min) / mlp_dense.lambda_max)
    assert 0 < dense.fraction_negative < 1
    lanczos = hessian_summary(mlp_objective, method="lanczos", n_probes=80, n_starts=6, lanczos_steps=30)
    assert lanczos.method == "lanczos" and lanczos.converged and lanczos.n_matvecs > 80 + 6 * 30
    assert lanczos.lambda_max == pytest.approx(dense.lambda_max, abs=1e-8)
    assert lanczos.lambda_min == pytest.approx(dense.lambda_min, abs=1e-8)
    assert abs(lanczos.trace - dense.trace) < 4 * lanczos.trace_stderr
    assert abs(lanczos.fraction_negative - dense.fraction_negative) < 0.25
    assert hessian_summary(mlp_objective, max_params=50).method == "lanczos"


def test_curvature_along_trajectory(mlp_objective):
    rng = np.random.default_rng(0)
    theta0 = mlp_objective.theta0.numpy()
    traj = np.stack([theta0 + 0.1 * i * rng.standard_normal(theta0.size) for i in range(3)])
    times = np.array([0.0, 1.0, 2.5])
    dense = hessian_along_trajectory(mlp_objective, traj, times, k=2)
    lanczos = hessian_along_trajectory(mlp_objective, traj, times, k=2, method="lanczos", n_probes=40)
    assert dense.method == "dense" and lanczos.method == "lanczos"
    assert dense.top_k.shape == (3, 2) and lanczos.converged.all()
    np.testing.assert_allclose(lanczos.top_k, dense.top_k, atol=1e-8)
    np.testing.assert_allclose(lanczos.lambda_min, dense.lambda_min, atol=1e-8)
    assert (np.abs(lanczos.trace - dense.trace) < 4 * lanczos.trace_stderr).all()
    one = hessian_along_trajectory(mlp_objective, traj[:1], k=1, method="lanczos", n_probes=10)
    assert one.lambda_max[0] == pytest.approx(dense.lambda_max[0], abs=1e-8)


# ---------------------------------------------------------------------------------------------- bad input
def test_k_larger_than_parameter_count(mlp_objective):
    with pytest.raises(ConfigError, match="k = 85"):
        top_eigenvalues(mlp_objective, 85)
    with pytest.raises(ConfigError, match="k = 43"):
        top_eigenvalues(mlp_objective, 43, which="both")
    with pytest.raises(ConfigError, match="k = 85"):
        hessian_along_trajectory(mlp_objective, mlp_objective.theta0.numpy()[None], k=85)
    with pytest.raises(ConfigError, match="which = 'top'"):
        top_eigenvalues(mlp_objective, 1, which="top")


def test_non_finite_parameters(mlp_objective):
    theta = mlp_objective.theta0.numpy().copy()
    theta[7] = np.nan
    with pytest.raises(ConfigError, match=r"theta\[7\] = nan"):
        hessian_summary(mlp_objective, theta)
    with pytest.raises(ConfigError, match=r"theta\[7\] = nan"):
        top_eigenvalues(mlp_objective, 1, theta=theta)
    traj = np.stack([mlp_objective.theta0.numpy()] * 2)
    traj[1, 2] = np.inf
    with pytest.raises(ConfigError, match=r"trajectory\[1, 2\] = inf"):
        hessian_along_trajectory(mlp_objective, traj)


def test_empty_evaluation_set():
    with pytest.raises(ConfigError, match="evaluation set"):
        Objective(nn.Linear(3, 2), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_nan_loss_at_point_is_rejected(mlp_objective):
    x = mlp_objective.x.clone()
    x[0, 0] = np.nan
    bad = mlp_objective.with_data(x, mlp_objective.y)
    for call in (
        lambda: hessian_summary(bad),
        lambda: top_eigenvalues(bad, 1),
        lambda: dense_spectrum(bad),
        lambda: hutchinson_trace(bad, n_probes=4),
    ):
        with pytest.raises(ValueError, match="loss at this parameter vector is nan"):
            call()
    with pytest.raises(ValueError, match="trajectory point 0 .* is nan"):
        hessian_along_trajectory(bad, bad.theta0.numpy()[None])


def test_dense_limit_and_bad_settings(mlp_objective):
    with pytest.raises(ConfigError, match="n_params = 84.*max_params = 50.*top_eigenvalues"):
        dense_spectrum(mlp_objective, max_params=50)
    with pytest.raises(ConfigError, match="n_params = 84"):
        hessian_summary(mlp_objective, method="dense", max_params=50)
    with pytest.raises(ConfigError, match="method = 'exact'"):
        hessian_summary(mlp_objective, method="exact")
    with pytest.raises(ConfigError, match="n_probes = 1"):
        hutchinson_trace(mlp_objective, n_probes=1)
    with pytest.raises(ConfigError, match="sigma = -1"):
        spectral_density(mlp_objective, sigma=-1.0)
    with pytest.raises(ConfigError, match="matrix"):
        matrix_operator(np.array([[1.0, 2.0], [0.0, 1.0]]))


# ---------------------------------------------------------------------------------------------- io, plots
def test_results_round_trip(tmp_path, mlp_objective):
    eig = top_eigenvalues(mlp_objective, 2)
    save_result(eig, tmp_path / "eig")
    back = load_result(EigenResult, tmp_path / "eig")
    np.testing.assert_array_equal(back.eigenvalues, eig.eigenvalues)
    np.testing.assert_array_equal(back.eigenvectors, eig.eigenvectors)
    assert (back.n_matvecs, back.converged, back.which, back.tol) == (eig.n_matvecs, True, "largest", eig.tol)
    dens = spectral_density(mlp_objective, n_starts=2, lanczos_steps=10, grid_size=50)
    save_result(dens, tmp_path / "dens")
    back_d = load_result(SpectralDensity, tmp_path / "dens")
    assert back_d.mean == dens.mean and back_d.sigma == dens.sigma
    np.testing.assert_array_equal(back_d.steps, dens.steps)
    spec = dense_spectrum(mlp_objective, keep_eigenvectors=False)
    save_result(spec, tmp_path / "spec")
    back_s = load_result(DenseSpectrum, tmp_path / "spec")
    assert back_s.hessian is None and back_s.eigenvectors is None and back_s.trace == spec.trace
    curv = hessian_along_trajectory(mlp_objective, mlp_objective.theta0.numpy()[None], k=2)
    save_result(curv, tmp_path / "curv")
    back_c = load_result(TrajectoryCurvature, tmp_path / "curv")
    np.testing.assert_array_equal(back_c.top_k, curv.top_k)
    assert back_c.converged.dtype == bool and back_c.k == 2


def test_plots_render(tmp_path, mlp_objective, mlp_dense):
    import matplotlib.pyplot as plt

    from qlandscape.plots.hessian import plot_curvature_over_training, plot_density, plot_spectrum

    rng = np.random.default_rng(1)
    traj = mlp_objective.theta0.numpy() + 0.05 * rng.standard_normal((3, mlp_objective.n_params))
    figures = {
        "spectrum_dense": plot_spectrum(mlp_dense),
        "spectrum_lanczos": plot_spectrum(top_eigenvalues(mlp_objective, 3, which="both")),
        "density_log": plot_density(spectral_density(mlp_objective, n_starts=3, lanczos_steps=20)),
        "density_lin": plot_density(spectral_density(mlp_objective, n_starts=2, lanczos_steps=10), log=False),
        "curvature": plot_curvature_over_training(
            hessian_along_trajectory(mlp_objective, traj, [0, 1, 2], method="lanczos", n_probes=10)
        ),
    }
    for name, fig in figures.items():
        assert fig.axes[0].get_title() and fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        plt.close(fig)


def test_density_from_dense_eigenvalues_is_exact_and_normalised():
    from qlandscape.core.operators import matrix_operator
    from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues, spectral_density

    eig = np.array([-1.0, 0.5, 2.0, 3.0])
    exact = density_from_eigenvalues(eig, sigma=0.1)
    assert abs(np.trapezoid(exact.density, exact.grid) - 1) < 1e-12
    assert abs(exact.mean - eig.mean()) < 1e-15 and exact.n_matvecs == 0
    assert abs(exact.mass_below(0.0) - 0.25) < 1e-15
    # SLQ with a full Krylov space on the diagonal matrix reproduces the same quadrature mean
    slq = spectral_density(matrix_operator(np.diag(eig)), n_starts=4, lanczos_steps=4)
    assert abs(slq.mean - exact.mean) < 1e-12


def test_density_and_summary_options_are_validated_before_any_work():
    from qlandscape.metrics.curvature.spectral_density import density_from_eigenvalues

    for sigma in (-1.0, 0.0):  # a reversed grid / NaN density before
        with pytest.raises(ConfigError, match="sigma"):
            density_from_eigenvalues(np.array([1.0, 2.0]), sigma=sigma)
    op = matrix_operator(np.eye(1))
    with pytest.raises(ConfigError, match="method"):
        hessian_summary(op, method="lanczos")  # named a k the caller never passed
    assert op.n_matvecs == 0
