"""Full-period scans and their Fourier spectrum: an analytic periodic function, the periodicity of the integer
directions on a real PatchQNN, Parseval, the figure and bad grids."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import circuit_angles, periodic_directions
from qlandscape.metrics.landscape.fourier import fourier_spectrum, is_full_period
from qlandscape.metrics.landscape.results import FourierSpectrum, Slice2D
from qlandscape.metrics.landscape.slices import grid_from_range, period_grid, slice_period
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots.landscape import plot_fourier


def _grid_slice(alphas: np.ndarray, betas: np.ndarray, values: np.ndarray) -> Slice2D:
    return Slice2D(
        alphas=alphas,
        betas=betas,
        losses=values[None],
        errors=np.zeros_like(values)[None],
        center_losses=np.zeros(1),
        splits=("train",),
        direction_kind="periodic",
        normalization="none",
        direction_norms=np.ones(2),
        direction_cosine=0.0,
        trajectory=np.zeros((0, 2)),
        explained_variance_ratio=np.full(2, np.nan),
        loss_name="mse",
    )


@pytest.fixture
def qnn_objective(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, n_qubits=2, n_layers=2, patch_size=3, stride=3, aggregation="linear", seed=1)
    return Objective(model, x, y)


def test_period_grid_is_one_period_without_its_endpoint():
    for n in (2, 7, 16, 32):
        grid = period_grid(n)
        assert grid.shape == (n,) and grid[0] == pytest.approx(-np.pi)
        np.testing.assert_allclose(np.diff(grid), 2 * np.pi / n, rtol=0, atol=1e-12)
        assert grid[-1] + 2 * np.pi / n == pytest.approx(np.pi) and is_full_period(grid)
    assert 0.0 in period_grid(16)  # the centre is a grid point for an even count
    assert not is_full_period(grid_from_range(np.pi, 17))  # [-π, π] repeats the endpoint


@pytest.mark.parametrize("n_alpha,n_beta", [(16, 16), (12, 20)])
def test_spectrum_of_cos_a_plus_half_sin_2b_has_power_only_at_its_four_frequencies(n_alpha, n_beta):
    alphas, betas = period_grid(n_alpha), period_grid(n_beta)
    a, b = np.meshgrid(alphas, betas)
    values = 0.3 + np.cos(a) + 0.5 * np.sin(2 * b)
    spectrum = fourier_spectrum(_grid_slice(alphas, betas, values), low_cutoff=1)
    # cos a = (e^{ia} + e^{-ia})/2: |c|² = 1/4 at (±1, 0); 0.5 sin 2b: |c|² = (0.5/2)² = 1/16 at (0, ±2)
    expected = {(1, 0): 0.25, (-1, 0): 0.25, (0, 2): 0.0625, (0, -2): 0.0625}
    for (ka, kb), power in expected.items():
        assert spectrum.power_at(ka, kb) == pytest.approx(power, abs=1e-14)
    others = spectrum.power.copy()
    for ka, kb in [*expected, (0, 0)]:
        others[spectrum.freq_beta == kb, spectrum.freq_alpha == ka] = 0.0
    assert np.max(others) < 1e-28
    assert spectrum.mean == pytest.approx(0.3, abs=1e-14)
    assert spectrum.variance == pytest.approx(0.625, abs=1e-14) == pytest.approx(np.var(values), abs=1e-14)
    assert spectrum.low_fraction == pytest.approx(0.5 / 0.625)  # (0, ±2) lies beyond max(|k|) <= 1
    assert fourier_spectrum(_grid_slice(alphas, betas, values), low_cutoff=2).low_fraction == pytest.approx(1.0)
    assert spectrum.freq_alpha.tolist() == sorted(np.fft.fftfreq(n_alpha, 1 / n_alpha).round().astype(int).tolist())


def test_a_constant_grid_has_no_low_frequency_share(tmp_path):
    grid = period_grid(8)
    spectrum = fourier_spectrum(_grid_slice(grid, grid, np.full((8, 8), 2.0)))
    assert spectrum.variance == 0.0 and np.isnan(spectrum.low_fraction) and spectrum.mean == pytest.approx(2.0)
    save_result(spectrum, tmp_path / "f")
    back = load_result(FourierSpectrum, tmp_path / "f")
    np.testing.assert_array_equal(back.power, spectrum.power)
    assert back.split == "train" and np.isnan(back.low_fraction)


def test_spectrum_refuses_a_grid_that_is_not_one_period():
    alphas = grid_from_range(np.pi, 16)  # includes both ends: not periodic samples
    with pytest.raises(ConfigError, match="full period"):
        fourier_spectrum(_grid_slice(alphas, period_grid(16), np.zeros((16, 16))))
    with pytest.raises(ConfigError, match="quantity"):
        fourier_spectrum(_grid_slice(period_grid(4), period_grid(4), np.zeros((4, 4))), quantity="accuracy")


def test_periodic_directions_are_orthogonal_integer_and_only_on_the_angles(qnn_objective):
    obj = qnn_objective
    angles = circuit_angles(obj)
    assert angles is not None and obj.names[0] == "circuit_params"
    d1, d2 = periodic_directions(obj, seed=3)
    outside = np.ones(obj.n_params, dtype=bool)
    outside[angles] = False
    assert not np.any(d1[outside]) and not np.any(d2[outside])  # the head is not periodic
    assert set(np.unique(d1)) <= {-1.0, 0.0, 1.0} and set(np.unique(d2)) <= {-1.0, 0.0, 1.0}
    assert d1 @ d2 == 0.0 and np.all(np.abs(d1[angles]) + np.abs(d2[angles]) == 1)  # each angle on one axis
    n = angles.stop - angles.start
    assert np.count_nonzero(d1) == (n + 1) // 2
    again = periodic_directions(obj, seed=3)
    np.testing.assert_array_equal(again[0], d1)
    assert not np.array_equal(periodic_directions(obj, seed=4)[0], d1)


def test_the_loss_is_2pi_periodic_along_the_integer_directions(qnn_objective):
    obj = qnn_objective
    theta = obj.theta0.numpy()
    d1, d2 = periodic_directions(obj, seed=0)

    def loss(a: float, b: float) -> float:
        return float(obj.loss(torch.as_tensor(theta + a * d1 + b * d2)))

    rng = np.random.default_rng(0)
    for a, b in rng.uniform(-np.pi, np.pi, size=(3, 2)):
        assert loss(a + 2 * np.pi, b) == pytest.approx(loss(a, b), abs=1e-12)
        assert loss(a, b - 2 * np.pi) == pytest.approx(loss(a, b), abs=1e-12)
    # and not with a shorter period: a shift of (π, π) is no symmetry of this plane
    assert abs(loss(0.3 + np.pi, -0.2 + np.pi) - loss(0.3, -0.2)) > 1e-6


def test_slice_period_scans_one_period_and_its_spectrum_keeps_the_variance(qnn_objective):
    obj = qnn_objective
    result = slice_period(obj, resolution=8, seed=2)
    assert result.direction_kind == "periodic" and result.losses.shape == (1, 8, 8)
    np.testing.assert_allclose(result.radians_per_step, [2 * np.pi / 8] * 2, rtol=1e-12)
    assert result.notes  # 0.785 rad per step: coarse, and said so
    centre = (result.betas == 0.0, result.alphas == 0.0)
    assert result.loss()[centre[0], centre[1]][0] == pytest.approx(float(obj.loss()), abs=1e-12)
    d1, d2 = periodic_directions(obj, seed=2)
    theta = obj.theta0.numpy()
    i, j = 1, 6  # any grid point: the loss at θ + α_j d1 + β_i d2
    point = torch.as_tensor(theta + result.alphas[j] * d1 + result.betas[i] * d2)
    assert result.loss()[i, j] == pytest.approx(float(obj.loss(point)), abs=1e-12)
    spectrum = fourier_spectrum(result)
    assert spectrum.variance == pytest.approx(np.var(result.loss()), rel=1e-12)  # Parseval
    assert spectrum.mean == pytest.approx(np.mean(result.loss()), rel=1e-12)
    assert 0 <= spectrum.low_fraction <= 1
    assert not slice_period(obj, resolution=32).notes  # 2π/32 = 0.196 rad per step resolves it
    fig = plot_fourier(spectrum)
    ax = fig.axes[0]
    assert "cycles per 2π" in ax.get_xlabel() and "cycles per 2π" in ax.get_ylabel()
    assert "Fourier power" in ax.get_title() and "of the variance" in ax.get_title()
    plt.close(fig)


def test_a_model_without_angles_has_no_periodic_scan(tiny_images):
    x, y = tiny_images
    obj = Objective(MLP((6, 6), 2, width=4, depth=1, seed=0), x, y)
    assert circuit_angles(obj) is None
    with pytest.raises(ConfigError, match="circuit angles"):
        periodic_directions(obj)
