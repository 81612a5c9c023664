"""The landscape run metric: defaults that resolve a QNN's landscape, results that accumulate by variant, the
full-period scan with its spectrum, and run directories written before variants."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape.results import FourierSpectrum, Slice2D
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import check_run
from qlandscape.runs.report import write_report
from qlandscape.runs.run import execute_run, load_run, run_metric
from qlandscape.runs.variants import latest, variants

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)
RUN_0_1 = Path(__file__).parent / "data" / "v0_1_run" / "0307e95d34d7"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


@pytest.fixture
def run_dir(base_run, tmp_path):
    return Path(shutil.copytree(base_run, tmp_path / base_run.name))


def _files(path: Path, folder: str) -> set[str]:
    return {p.name for p in (path / folder).glob("*")}


def test_a_qnn_default_slice_is_in_radians_with_a_step_under_0_3_rad(run_dir, caplog):
    with caplog.at_level(logging.WARNING):
        scalars = run_metric(run_dir, "landscape", {"figures": False})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    result = io.load_result(Slice2D, run_dir / "results" / "landscape_random_none")
    assert scalars["landscape.normalization"] == result.normalization == "none" and scalars["landscape.grid"] == 21
    np.testing.assert_allclose(result.alphas[[0, -1]], [-math.pi / 2, math.pi / 2])
    step = result.alphas[1] - result.alphas[0]
    assert step == pytest.approx(math.pi / 20)  # 0.157 rad in α
    # the step in radians, from its definition: α step times the RMS of the direction's angle entries
    run = load_run(run_dir)
    obj = run.objective()
    angles = obj.parameter_blocks()["circuit_params"]
    rng = np.random.default_rng(0)
    d1 = rng.standard_normal(obj.n_params)  # seed 0: the first direction, as drawn
    assert result.radians_per_step[0] == pytest.approx(step * np.sqrt(np.mean(d1[angles] ** 2)), rel=1e-12)
    assert scalars["landscape.radians_per_step"] <= 0.3 and "landscape.note" not in scalars and not result.notes


def test_a_coarse_qnn_slice_is_kept_with_its_note_in_run_json(run_dir, caplog):
    with caplog.at_level(logging.WARNING):
        run_metric(run_dir, "landscape", {"grid": 5, "range": 2.0, "figures": False})
    info = io.read_json(run_dir / "run.json")
    assert info["metrics"]["landscape.radians_per_step"] > 0.3
    assert "above 0.3 rad" in info["metrics"]["landscape.note"]
    assert any("above 0.3 rad" in r.getMessage() for r in caplog.records)


def test_a_classical_net_keeps_filter_normalisation_and_range_one(tmp_path):
    config = RunConfig.from_dict({**TINY, "model": "mlp", "width": 4, "depth": 1, "epochs": 1})
    path = execute_run(config, tmp_path)
    scalars = run_metric(path, "landscape", {"grid": 3, "figures": False})
    assert scalars["landscape.variant"] == "landscape_random_filter" and "landscape.radians_per_step" not in scalars
    result = io.load_result(Slice2D, path / "results" / "landscape_random_filter")
    np.testing.assert_allclose(result.alphas, [-1.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match="circuit angles"):
        run_metric(path, "landscape", {"directions": "periodic", "figures": False})


def test_two_landscapes_with_different_directions_coexist_and_the_same_one_is_replaced(run_dir):
    run_metric(run_dir, "landscape", {"grid": 5, "splits": ["train", "test"]})
    random_files = _files(run_dir, "figures")
    assert "landscape_random_none_contour_test.png" in random_files  # the test split is drawn too
    assert "landscape_random_none_loss_and_error.png" in random_files  # and the error beside the loss
    run_metric(run_dir, "landscape", {"directions": "pca", "grid": 5})
    figures = _files(run_dir, "figures")
    assert random_files < figures and "landscape_pca_contour.png" in figures
    assert {"landscape_random_none.json", "landscape_pca.json"} <= _files(run_dir, "results")
    info = io.read_json(run_dir / "run.json")
    entry = info["manifest"]["landscape"]
    assert set(entry["variants"]) == {"landscape_random_none", "landscape_pca"} and entry["variant"] == "landscape_pca"
    assert entry["variants"]["landscape_random_none"]["settings"]["splits"] == ["train", "test"]
    assert entry["variants"]["landscape_random_none"]["scalars"]["landscape.directions"] == "random"
    # run.json and arrays.npz show the latest variant; each variant's own numbers stay in its result file
    assert info["metrics"]["landscape.directions"] == "pca"
    pca = io.load_result(Slice2D, run_dir / "results" / "landscape_pca")
    np.testing.assert_array_equal(io.read_npz(run_dir / "arrays.npz")["landscape.losses"], pca.losses)
    assert check_run(run_dir).status == "complete"
    # the random variant again, with another grid: it replaces the earlier random one, not the PCA one
    run_metric(run_dir, "landscape", {"grid": 3, "figures": False})
    after = _files(run_dir, "figures")
    assert not any(name.startswith("landscape_random_none") for name in after)  # no figure of the earlier grid
    assert {n for n in figures if n.startswith("landscape_pca")} <= after
    again = io.load_result(Slice2D, run_dir / "results" / "landscape_random_none")
    assert again.losses.shape == (1, 3, 3)
    found = variants(io.read_json(run_dir / "run.json"), "landscape")
    assert [v.name for v in found] == ["landscape_pca", "landscape_random_none"] and found[-1].latest
    assert check_run(run_dir).status == "complete"


def test_the_periodic_scan_keeps_its_fourier_spectrum(run_dir):
    scalars = run_metric(run_dir, "landscape", {"directions": "periodic", "grid": 8})
    spectrum = io.load_result(FourierSpectrum, run_dir / "results" / "landscape_periodic_fourier")
    scan = io.load_result(Slice2D, run_dir / "results" / "landscape_periodic")
    assert scan.direction_kind == "periodic" and scan.losses.shape == (1, 8, 8)
    assert spectrum.variance == pytest.approx(np.var(scan.losses[0]), rel=1e-12)
    assert scalars["landscape.fourier_low_fraction"] == spectrum.low_fraction
    assert "landscape_periodic_fourier.png" in _files(run_dir, "figures")
    with pytest.raises(ConfigError, match="metrics.landscape.range"):
        run_metric(run_dir, "landscape", {"directions": "periodic", "range": 1.0})
    with pytest.raises(ConfigError, match="metrics.landscape.grid"):
        run_metric(run_dir, "landscape", {"grid": "fine"})


def _as_written_before_variants(path: Path) -> None:
    """Rewrite a run holding one random landscape as qlandscape 0.2.0 wrote it: files named after the metric and a
    manifest entry without variants."""
    info = io.read_json(path / "run.json")
    entry = info["manifest"]["landscape"]
    renamed = []
    for relative in entry["files"]:
        new = relative.replace("landscape_random_none", "landscape")
        (path / relative).rename(path / new)
        renamed.append(new)
    for key in ("variant", "variants"):
        entry.pop(key)
    entry["files"] = sorted(renamed)
    info["metrics"].pop("landscape.variant")
    io.write_json(path / "run.json", info)


def test_a_landscape_written_before_variants_is_kept_beside_new_ones(run_dir):
    run_metric(run_dir, "landscape", {"grid": 3})
    _as_written_before_variants(run_dir)
    assert check_run(run_dir).status == "complete"
    (old,) = variants(io.read_json(run_dir / "run.json"), "landscape", run_dir)
    assert old.name == "landscape" and old.result_file() == "results/landscape"
    run_metric(run_dir, "landscape", {"directions": "pca", "grid": 3})
    info = io.read_json(run_dir / "run.json")
    assert set(info["manifest"]["landscape"]["variants"]) == {"landscape", "landscape_pca"}
    assert (run_dir / "results" / "landscape.json").exists() and (
        run_dir / "figures" / "landscape_contour.png"
    ).exists()
    assert latest(info, "landscape").name == "landscape_pca" and check_run(run_dir).status == "complete"


def test_a_0_1_run_lists_its_hessian_as_one_result():
    info = io.read_json(RUN_0_1 / "run.json")
    (hessian,) = variants(info, "hessian", RUN_0_1)
    assert hessian.name == "hessian" and hessian.settings == {"density": False, "figures": False}
    assert set(hessian.files) == {
        f"results/hessian_{what}.{suffix}" for what in ("spectrum", "summary") for suffix in ("json", "npz")
    }
    assert hessian.scalars["hessian.lambda_max"] == info["metrics"]["hessian.lambda_max"]
    assert variants(info, "landscape", RUN_0_1) == []


def test_the_report_draws_one_contour_grid_per_variant(tmp_path, base_run):
    root = tmp_path / "runs"
    for seed in (0, 1):
        path = execute_run(RunConfig.from_dict({**TINY, "seed": seed}), root)
        run_metric(path, "landscape", {"grid": 3, "figures": False})
        if seed == 0:
            run_metric(path, "landscape", {"directions": "pca", "grid": 3, "figures": False})
    files = write_report(root, pdf=False)
    names = {p.name for p in files.figures}
    assert {"landscape_grid.png", "landscape_grid_pca.png"} <= names  # the variant both runs hold is the default
    page = files.markdown.read_text()
    assert "Loss landscape contours, random_none" in page and "Loss landscape contours, pca" in page
