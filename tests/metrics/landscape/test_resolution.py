"""How finely a slice resolves a QNN landscape: directions in radians by default on a QNN (filter normalisation on a
classical net), the grid step in radians against its definition, and the warning and note of a coarse grid."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import (
    circuit_angles,
    normalize_direction,
    random_direction,
    resolve_normalization,
)
from qlandscape.metrics.landscape.results import Slice2D
from qlandscape.metrics.landscape.slices import (
    MAX_RADIANS_PER_STEP,
    grid_from_range,
    radians_per_step,
    slice_1d,
    slice_2d,
)
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots.landscape import plot_contour, plot_loss_and_error


@pytest.fixture
def qnn(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, n_qubits=2, n_layers=1, patch_size=3, stride=3, aggregation="linear", seed=0)
    return Objective(model, x, y)


@pytest.fixture
def mlp(tiny_images):
    x, y = tiny_images
    return Objective(MLP((6, 6), 2, width=4, depth=1, seed=0), x, y)


def test_auto_normalisation_is_radians_for_a_qnn_and_filter_otherwise(qnn, mlp):
    assert resolve_normalization(qnn, "auto") == "none" and resolve_normalization(mlp, "auto") == "filter"
    assert resolve_normalization(qnn, "layer") == "layer"
    # the default direction of a QNN is the raw Gaussian (radians), a classical net's the filter-normalised one
    raw = np.random.default_rng(5).standard_normal(qnn.n_params)
    np.testing.assert_array_equal(random_direction(qnn, seed=5), raw)
    np.testing.assert_array_equal(random_direction(mlp, seed=5), random_direction(mlp, normalization="filter", seed=5))
    np.testing.assert_array_equal(
        normalize_direction(qnn, raw, normalization="auto"), normalize_direction(qnn, raw, normalization="none")
    )


def test_radians_per_step_is_the_rms_change_of_the_angles_a_direction_moves(qnn, mlp):
    angles = circuit_angles(qnn)
    n = angles.stop - angles.start
    d = np.full(qnn.n_params, 100.0)  # the head's entries are not angles: they do not count
    d[angles] = np.where(np.arange(n) % 2 == 0, 3.0, -4.0)  # RMS sqrt((9 + 16) / 2) when n is even
    d[angles.start] = 0.0  # an angle the direction does not move does not count either
    moved = d[angles][d[angles] != 0]
    values = np.array([-0.2, -0.1, 0.0, 0.05, 0.1])  # the largest spacing is the step
    assert radians_per_step(d, values, angles) == pytest.approx(0.1 * np.sqrt(np.mean(moved**2)), rel=1e-12)
    assert np.isnan(radians_per_step(d, values, None))
    assert np.isnan(radians_per_step(d, values, circuit_angles(mlp)))


def test_a_coarse_grid_on_a_qnn_is_computed_with_a_warning_and_a_note(qnn, caplog):
    angles = circuit_angles(qnn)
    d1, d2 = np.zeros(qnn.n_params), np.zeros(qnn.n_params)
    d1[angles], d2[angles] = 1.0, -1.0
    d2[angles.start] = 1.0
    fine = grid_from_range(1.0, 11)  # 0.2 rad per step
    coarse = grid_from_range(2.0, 5)  # 1.0 rad per step
    with caplog.at_level(logging.WARNING):
        ok = slice_2d(qnn, d1, d2, alphas=fine, betas=fine)
    assert not ok.notes and not caplog.records
    np.testing.assert_allclose(ok.radians_per_step, [0.2, 0.2], rtol=1e-12)
    with caplog.at_level(logging.WARNING):
        bad = slice_2d(qnn, d1, d2, alphas=coarse, betas=fine)
    assert len(bad.notes) == 1 and "1 rad along α" in bad.notes[0] and "β" not in bad.notes[0].split("(")[0]
    assert f"above {MAX_RADIANS_PER_STEP} rad" in bad.notes[0]
    assert any("1 rad along α" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    fig = plot_contour(bad)
    assert "under-sampled" in fig.axes[0].get_title() and "rad/step" in fig.axes[0].get_xlabel()
    plt.close(fig)
    line = slice_1d(qnn, d1, alphas=coarse)
    assert line.radians_per_step == pytest.approx(1.0) and line.notes


def test_a_classical_slice_has_no_radians_and_no_note(mlp, caplog):
    d1, d2 = random_direction(mlp, seed=0), random_direction(mlp, seed=1)
    with caplog.at_level(logging.WARNING):
        result = slice_2d(mlp, d1, d2, alphas=grid_from_range(5.0, 3), betas=grid_from_range(5.0, 3))
    assert np.all(np.isnan(result.radians_per_step)) and result.notes == () and not caplog.records


def test_loss_and_error_contours_side_by_side_for_each_split(qnn):
    test = qnn.with_data(qnn.x[:5], qnn.y[:5])
    d1, d2 = random_direction(qnn, seed=0), random_direction(qnn, seed=1)
    grid = grid_from_range(0.5, 4)
    result = slice_2d(qnn, d1, d2, alphas=grid, betas=grid, eval_objectives={"test": test})
    fig = plot_loss_and_error(result, split="test")
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    bars = [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]
    assert [a.get_title()[:10] for a in panels] == ["loss", "error rate"]
    assert "test split" in fig.get_suptitle()
    assert bars == ["cross-entropy loss, test split", "error rate, test split"]
    # each colour bar spans the grid it draws: the loss and the error of the test split
    spans = [a.get_ylim() for a in fig.axes if a.get_label() == "<colorbar>"]
    for span, grid_values in zip(spans, (result.loss("test"), result.error("test")), strict=True):
        assert span == pytest.approx((grid_values.min(), grid_values.max()))
    plt.close(fig)


def test_a_slice_saved_before_radians_were_recorded_loads_with_none(mlp, tmp_path):
    grid = grid_from_range(1.0, 3)
    result = slice_2d(mlp, random_direction(mlp, seed=0), random_direction(mlp, seed=1), alphas=grid, betas=grid)
    io.save_result(result, tmp_path / "landscape")
    record = io.read_json(tmp_path / "landscape.json")
    del record["notes"]
    io.write_json(tmp_path / "landscape.json", record)
    arrays = io.read_npz(tmp_path / "landscape.npz")
    del arrays["radians_per_step"]
    io.write_npz(tmp_path / "landscape.npz", arrays)  # what qlandscape 0.2.0 wrote
    back = io.load_result(Slice2D, tmp_path / "landscape")
    assert back.notes == () and np.all(np.isnan(back.radians_per_step))
    np.testing.assert_array_equal(back.losses, result.losses)
