"""Run configs, run directories and the command line."""

from __future__ import annotations

import json

import pytest

from qlandscape import cli
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig, load_config, parse_override
from qlandscape.runs.run import execute_run, is_complete, load_run

TINY = dict(
    classes=[0, 1], max_train=40, max_test=20, qubits=2, layers=1, patch_size=4, stride=4, epochs=1, batch_size=10
)


def test_config_hash_is_stable_and_sensitive():
    a, b = RunConfig.from_dict(TINY), RunConfig.from_dict(dict(TINY))
    assert a.run_id() == b.run_id() and len(a.run_id()) == 12
    assert a.replace(seed=1).run_id() != a.run_id()


@pytest.mark.parametrize(
    "field,value",
    [
        ("model", "transformer"),
        ("qubits", 0),
        ("patch_size", -1),
        ("lr", 0.0),
        ("test_fraction", 1.5),
        ("classes", [3]),
        ("optimizer", "lbfgs"),
        ("schedule_unit", "batch"),
        ("colour", "red"),
    ],
)
def test_bad_config_names_value(field, value):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({field: value})
    assert str(value).strip("[]") in str(err.value) and field in str(err.value)


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


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("qubits = 3\nclasses = [0, 1, 2]\n[metrics]\n")
    config = load_config(path)
    assert config.qubits == 3 and config.classes == (0, 1, 2)
    assert parse_override("classes=[1,7]") == ("classes", [1, 7])
    assert parse_override("backend=default.qubit") == ("backend", "default.qubit")
    with pytest.raises(ConfigError, match="nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_cli_run_and_circuits(tmp_path, capsys):
    args = ["run", "--out", str(tmp_path), "--quiet"] + [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    assert cli.main(["circuits", "--qubits", "3"]) == 0
    assert "strongly_entangling" in capsys.readouterr().out
    assert cli.main(["run", "--out", str(tmp_path), "--qubits", "0"]) == 2
    assert "qubits" in capsys.readouterr().err


def test_run_ids_survive_fields_added_later():
    """Ids hash the whole config, except fields added after the first release while at their default, so run
    directories written before schedule_unit existed keep their names and old sweeps still resume."""
    assert RunConfig().run_id() == "502ac814add8"
    assert RunConfig(model="mlp", seed=3).run_id() == "a6fed072fbbf"
    assert RunConfig(schedule_unit="epoch").run_id() != RunConfig().run_id()


def test_whole_numbers_in_float_fields_give_one_run_id():
    """lr = 1 and lr = 1.0 are the same setting, so the same run (a sweep's grid [1, 1.0] is one run)."""
    from qlandscape.runs.config import RunConfig

    assert RunConfig(lr=1).run_id() == RunConfig(lr=1.0).run_id()
    assert (
        RunConfig.from_dict({"angle_range": [0, 3], "output_scale": 5}).run_id()
        == RunConfig.from_dict({"angle_range": [0.0, 3.0], "output_scale": 5.0}).run_id()
    )
    assert RunConfig(lr=1).lr == 1.0 and isinstance(RunConfig(lr=1).lr, float)
    assert RunConfig().run_id() == "502ac814add8"  # defaults are floats already: old ids are kept
