"""Run directories: training into one, reading it back (also one written by qlandscape 0.1), failures, and metrics
added then or later."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig, load_config
from qlandscape.runs.layout import check_run, is_complete
from qlandscape.runs.run import execute_run, load_run, run_metric

TINY = dict(
    classes=[0, 1], max_train=40, max_test=20, qubits=2, layers=1, patch_size=4, stride=4, epochs=1, batch_size=10
)
TINY_PATCHES = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)
RUN_0_1 = Path(__file__).parent / "data" / "v0_1_run" / "0307e95d34d7"


def test_run_directory_roundtrip(tmp_path):
    config = RunConfig.from_dict(TINY)
    path = execute_run(config, tmp_path)
    assert path.name == config.run_id() and is_complete(path)
    info = json.loads((path / "run.json").read_text())
    assert info["status"] == "complete" and "torch" in info["versions"]
    assert info["config"]["qubits"] == 2
    run = load_run(path)
    assert run.result.trajectory.shape == (2, info["model"]["n_params"])
    obj = run.objective("test")
    assert abs(obj.accuracy() - info["metrics"]["test_accuracy"]) < 1e-12
    mtime = (path / "run.json").stat().st_mtime_ns
    assert execute_run(config, tmp_path) == path  # skipped, not redone
    assert (path / "run.json").stat().st_mtime_ns == mtime


def test_failed_run_is_recorded(tmp_path):
    config = RunConfig.from_dict({**TINY, "classes": [0, 42]})
    with pytest.raises(ConfigError, match="42"):
        execute_run(config, tmp_path)
    info = json.loads((tmp_path / config.run_id() / "run.json").read_text())
    assert info["status"] == "failed" and "42" in info["error"]


@pytest.mark.parametrize(
    "metrics,needle",
    [
        ({"hessian": {"tpo_k": 3}}, "metrics.hessian.tpo_k"),
        ({"hessian": {"method": "dens"}}, "metrics.hessian.method"),
        ({"hessian": {"split": "tset"}}, "metrics.hessian.split"),
        ({"hessian": {"density": "yes"}}, "metrics.hessian.density"),
        ({"landscape": {"normalization": "filtre"}}, "metrics.landscape.normalization"),
        ({"landscape": {"splits": ["trian"]}}, "metrics.landscape.splits"),
        ({"landscape": {"grid": "x"}}, "metrics.landscape.grid"),
        ({"ntk": {"subset": 1000}}, "metrics.ntk.subset"),
        ({"hessian": {"method": "dense", "max_params": 2}}, "metrics.hessian.method"),
    ],
)
def test_run_checks_metric_settings_before_training(tmp_path, monkeypatch, metrics, needle):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before the metric settings were checked")

    monkeypatch.setattr("qlandscape.runs.run.train", no_training)
    with pytest.raises(ConfigError) as err:
        execute_run(RunConfig(**{**TINY_PATCHES, "metrics": metrics}), tmp_path)
    assert needle in str(err.value)


def test_a_metric_at_another_point_is_kept_and_the_same_variant_replaced_as_a_whole(tmp_path):
    config = RunConfig.from_dict({**TINY_PATCHES, "metrics": {"hessian": {"structure": True, "figures": False}}})
    path = execute_run(config, tmp_path)
    assert (path / "results" / "hessian_dense_structure_structure.json").exists()
    scalars = run_metric(path, "hessian", {"point": "init", "density": False, "figures": False})
    info = io.read_json(path / "run.json")
    # run.json and arrays.npz show the latest variant alone: nothing of the structure split of the final point
    hessian_keys = {k for k in info["metrics"] if k.startswith("hessian.")}
    assert hessian_keys == set(scalars) and scalars["hessian.variant"] == "hessian_dense_init"
    assert not any(k.startswith("hessian.structure") for k in hessian_keys)
    assert not any(k.startswith(("hessian.structure", "hessian.density")) for k in io.read_npz(path / "arrays.npz"))
    # the final point's result stays beside it, whole
    assert (path / "results" / "hessian_dense_structure_structure.json").exists()
    assert (path / "results" / "hessian_dense_structure_density.json").exists()
    assert (path / "results" / "hessian_dense_init_spectrum.json").exists()
    assert not (path / "results" / "hessian_dense_init_density.json").exists()
    # the final point's variant computed again without the density replaces that variant only, as a whole
    run_metric(path, "hessian", {"structure": True, "density": False, "figures": False})
    assert not (path / "results" / "hessian_dense_structure_density.json").exists()
    assert (path / "results" / "hessian_dense_init_spectrum.json").exists()
    entry = io.read_json(path / "run.json")["manifest"]["hessian"]
    assert set(entry["variants"]) == {"hessian_dense_structure", "hessian_dense_init"}
    assert entry["files"] == sorted(f for v in entry["variants"].values() for f in v["files"])
    assert check_run(path).status == "complete"


def test_a_run_directory_written_by_0_1_loads_with_its_numbers():
    info = io.read_json(RUN_0_1 / "run.json")
    assert info["versions"]["qlandscape"] == "0.1.0"
    run = load_run(RUN_0_1)
    # the same config, the same id, and the config file it came from gives that id today
    assert run.config.to_dict() == info["config"] and run.config.run_id() == RUN_0_1.name
    assert load_config(RUN_0_1.parent / "config.toml").run_id() == RUN_0_1.name
    # what 0.1 wrote, read back
    assert info["metrics"]["test_accuracy"] == 0.6 and info["metrics"]["train_loss"] == 0.8197627148573816
    np.testing.assert_array_equal(run.result.train_loss, io.read_npz(RUN_0_1 / "arrays.npz")["train_loss"])
    assert run.result.trajectory.shape == (3, info["model"]["n_params"])
    # the data and the model rebuilt today, at the final parameters, give the losses and accuracy 0.1 recorded
    train, test = run.objective("train"), run.objective("test")
    assert float(train.loss()) == pytest.approx(info["metrics"]["train_loss"], rel=1e-12, abs=1e-14)
    assert float(test.loss()) == pytest.approx(info["metrics"]["test_loss"], rel=1e-12, abs=1e-14)
    assert test.accuracy() == info["metrics"]["test_accuracy"]


def test_a_metric_is_added_to_a_copy_of_a_0_1_run_directory(tmp_path):
    path = Path(shutil.copytree(RUN_0_1, tmp_path / RUN_0_1.name))
    before = io.read_json(path / "run.json")["metrics"]
    # the Hessian computed today at the final point is the one 0.1 recorded
    again = run_metric(path, "hessian", {"density": False, "figures": False})
    for key in ("lambda_max", "lambda_min", "trace"):
        assert again[f"hessian.{key}"] == pytest.approx(before[f"hessian.{key}"], rel=1e-9, abs=1e-12)
    scalars = run_metric(path, "landscape", {"grid": 3, "figures": False})
    info = io.read_json(path / "run.json")
    assert info["metrics"]["landscape.grid"] == 3 and info["metrics"]["test_accuracy"] == before["test_accuracy"]
    assert {k for k in info["metrics"] if k.startswith("hessian.")} == {k for k in again}
    # the centre of the slice is the final point, on the training split: the training loss 0.1 recorded
    assert scalars["landscape.center_loss"] == pytest.approx(before["train_loss"], rel=1e-12)
    assert io.read_npz(path / "arrays.npz")["landscape.losses"].shape == (1, 3, 3)
    # a QNN's default slice is in radians, kept under its variant's name (0.1 wrote results/landscape.json)
    assert info["metrics"]["landscape.variant"] == "landscape_random_none"
    assert (path / "results" / "landscape_random_none.json").exists()
    assert load_run(path).info["metrics"]["landscape.center_loss"] == scalars["landscape.center_loss"]
