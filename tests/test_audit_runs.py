"""Regression tests from the audit of runs, sweeps, reports, io and the command line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig
from qlandscape.runs.metric_hooks import run_metric
from qlandscape.runs.report import summary_table
from qlandscape.runs.run import execute_run
from qlandscape.runs.sweep import sweep_from_dict
from qlandscape.runs.tables import load_runs

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)


@pytest.mark.parametrize(
    "field,value",
    [
        ("angle_range", 5),
        ("angle_range", [0, "x"]),
        ("classes", 3),
        ("test_fraction", "a"),
        ("dropout", "x"),
        ("output_scale", "x"),
        ("encoding_scale", "x"),
        ("momentum", "0.9"),
        ("weight_decay", -1),
        ("schedule_period", 0),
        ("lr", True),
        ("positional_bias", "false"),
        ("batch_norm", 3),
        ("observables", "Z"),
    ],
)
def test_bad_field_types_are_config_errors(field, value):
    # "false" from `--set positional_bias=False` (not TOML, so kept as text) used to switch the bias on
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({field: value})
    assert err.value.field == field


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
        execute_run(RunConfig.from_dict({**TINY, "metrics": metrics}), tmp_path)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "base,grid,needle",
    [
        ({"metrics": {"landscape": {"normalization": "filtre"}}}, {"seed": [0, 1]}, "metrics.landscape.normalization"),
        ({"metrics": {"hessian": {"method": "dens"}}}, {"seed": [0, 1]}, "metrics.hessian.method"),
        ({}, {"ansatz": ["hea", "heaa"]}, "ansatz = 'heaa'"),
        ({}, {"backend": ["torch", "default.qbit"]}, "backend = 'default.qbit'"),
        ({}, {"output_scale": [1.0, "x"]}, "output_scale = 'x'"),
    ],
)
def test_sweep_rejects_bad_values_before_any_run(base, grid, needle):
    with pytest.raises(ConfigError) as err:
        sweep_from_dict({"base": {**TINY, **base}, "grid": grid})
    assert needle in str(err.value)


def _fake_run(root: Path, rid: str, config: dict, lambda_max: float) -> None:
    (root / rid).mkdir(parents=True)
    io.write_json(
        root / rid / "run.json",
        {
            "id": rid,
            "status": "complete",
            "config": config,
            "model": {"n_params": 8, "n_patches": 2, "params_per_circuit": 4},
            "metrics": {"hessian.lambda_max": lambda_max},
        },
    )
    io.write_npz(root / rid / "arrays.npz", {"trajectory": np.zeros((1, 8))})


def test_report_groups_seeds_across_runs_written_before_later_fields(tmp_path):
    # A run written before 'device' and 'schedule_unit' existed keeps its id, so a resumed sweep mixes both kinds.
    new = RunConfig.from_dict(TINY).to_dict()
    old = {k: v for k, v in new.items() if k not in ("device", "schedule_unit")}
    for layers in (1, 2):
        _fake_run(tmp_path, f"a{layers}", {**old, "layers": layers, "seed": 0}, 1.0 * layers)
        _fake_run(tmp_path, f"b{layers}", {**new, "layers": layers, "seed": 1}, 2.0 * layers)
        _fake_run(tmp_path, f"c{layers}", {**new, "layers": layers, "seed": 2}, 6.0 * layers)
    table = summary_table(load_runs(tmp_path))
    assert [(e["layers"], e["n_runs"]) for e in table] == [(1, 3), (2, 3)]
    assert [e["hessian.lambda_max.mean"] for e in table] == pytest.approx([3.0, 6.0])


def test_metric_computed_again_replaces_the_earlier_one(tmp_path):
    config = RunConfig.from_dict({**TINY, "metrics": {"hessian": {"structure": True, "figures": False}}})
    path = execute_run(config, tmp_path)
    assert (path / "results" / "hessian_structure.json").exists()
    scalars = run_metric(path, "hessian", {"point": "init", "density": False, "figures": False})
    info = io.read_json(path / "run.json")
    hessian_keys = {k for k in info["metrics"] if k.startswith("hessian.")}
    assert hessian_keys == set(scalars)
    assert not any(k.startswith("hessian.structure") for k in hessian_keys)
    assert not any(k.startswith(("hessian.structure", "hessian.density")) for k in io.read_npz(path / "arrays.npz"))
    assert not (path / "results" / "hessian_structure.json").exists()
    assert not (path / "results" / "hessian_density.json").exists()
    assert (path / "results" / "hessian_spectrum.json").exists()


@dataclass(frozen=True)
class _WithNonFinite:
    a: float
    b: float
    c: tuple
    x: np.ndarray


def test_saved_result_with_non_finite_floats_round_trips(tmp_path):
    result = _WithNonFinite(math.nan, math.inf, (1.0, -math.inf), np.arange(3.0))
    io.save_result(result, tmp_path / "r")
    back = io.load_result(_WithNonFinite, tmp_path / "r")
    assert math.isnan(back.a) and back.b == math.inf and back.c == (1.0, -math.inf)
    np.testing.assert_array_equal(back.x, result.x)


def test_sigkilled_sweep_leaves_no_worker_processes(tmp_path):
    sweep = tmp_path / "sweep.toml"
    base = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**TINY, "epochs": 20, "max_train": 100}.items())
    sweep.write_text(f"[base]\n{base}\n[grid]\nseed = [0, 1, 2, 3, 4, 5, 6, 7]\n")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qlandscape.cli", "sweep", str(sweep), "--out", str(out), "--workers", "2", "--quiet"],
        start_new_session=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(io.read_json(p).get("status") == "running" for p in out.glob("*/run.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.kill()
    proc.wait()
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anything left in the sweep's process group?
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("worker processes outlived the SIGKILLed sweep")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
