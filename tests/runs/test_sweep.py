"""Sweeps: validation before any run, resumability (SIGKILL), reuse, failures, local and Dask executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs import registry
from qlandscape.runs.layout import is_complete
from qlandscape.runs.metric_spec import MetricOutput, MetricSpec
from qlandscape.runs.sweep import load_sweep, run_sweep, sweep_from_dict
from qlandscape.runs.tables import load_runs, write_csv

ROOT = Path(__file__).resolve().parents[2]
BASE = """[base]
classes = [0, 1]
max_train = 30
max_test = 20
qubits = 2
layers = 1
patch_size = 4
patches = 2
epochs = 1
batch_size = 10
"""
BASE_DICT = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=1, batch_size=10
)


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.mark.parametrize(
    "grid,needles",
    [
        ("layerz = [1, 2]", ["grid.layerz", "not a run field"]),
        ("qubits = [2, 0]", ["qubits = 0", "grid point qubits=0"]),
        ("layers = 3", ["grid.layers", "non-empty list"]),
        ("seed = [0, 0]", ["grid.seed", "distinct"]),
        ("stride = [1, 2]", ["give either stride or patches"]),
        ("optimizer = ['adam', 'lbfgs']", ["optimizer = 'lbfgs'"]),
    ],
)
def test_bad_axis_fails_before_any_run(tmp_path, capsys, grid, needles):
    path = write(tmp_path, BASE + "[grid]\n" + grid + "\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as err:
        run_sweep(path, out, workers=1, progress=False)
    for needle in needles + [str(path)]:
        assert needle in str(err.value)
    assert not out.exists()  # nothing started
    assert cli.main(["sweep", str(path), "--out", str(out)]) == 2
    assert needles[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    "metrics,needle",
    [
        ("hesian = {}", "hesian"),
        ("hessian = {top = 3}", "metrics.hessian.top"),
        ("hessian = {point = 'middle'}", "metrics.hessian.point = 'middle'"),
        ("landscape = {directions = 'diagonal'}", "metrics.landscape.directions"),
        ("ntk = 3", "metrics.ntk"),
    ],
)
def test_bad_metric_fails_before_any_run(tmp_path, metrics, needle):
    path = write(tmp_path, BASE + "[base.metrics]\n" + metrics + "\n[grid]\nseed = [0, 1]\n")
    with pytest.raises(ConfigError, match="sweep.toml") as err:
        load_sweep(path)
    assert needle in str(err.value)


def test_unknown_table_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="runs"):
        sweep_from_dict({"base": {}, "runs": {}})
    with pytest.raises(ConfigError, match="no such file"):
        load_sweep(tmp_path / "nope.toml")


def test_in_process_sweep_manifest_rows_and_reuse(tmp_path, capsys):
    out = tmp_path / "out"
    first = write(tmp_path, BASE + "[grid]\nseed = [0, 1]\nlayers = [1, 2]\n", "a.toml")
    assert cli.main(["sweep", str(first), "--out", str(out), "--dry-run"]) == 0
    assert "4 runs (0 already complete" in capsys.readouterr().out
    rows = run_sweep(first, out, workers=1, progress=False)
    assert [r["status"] for r in rows] == ["complete"] * 4
    assert [(r["seed"], r["layers"]) for r in rows] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert {r["n_patches"] for r in rows} == {2} and all(r["n_params"] == 2 * r["params_per_circuit"] for r in rows)
    assert all(isinstance(r["test_accuracy"], float) for r in rows)
    manifest = io.read_json(out / "sweep.json")
    assert manifest["run_ids"] == [r["id"] for r in rows] and manifest["counts"] == {"complete": 4}
    assert manifest["sweep"]["grid"] == {"seed": [0, 1], "layers": [1, 2]}
    mtimes = {r["id"]: (out / r["id"] / "run.json").stat().st_mtime_ns for r in rows}

    # an overlapping grid: the seed-1 runs are shared and must not be redone
    second = sweep_from_dict({"base": BASE_DICT, "grid": {"seed": [1, 2], "layers": [1, 2]}})
    rows2 = run_sweep(second, out, workers=1, progress=False)
    shared = [r["id"] for r in rows2 if r["seed"] == 1]
    assert len(shared) == 2 and all(r["status"] == "complete" for r in rows2)
    for rid in shared:
        assert (out / rid / "run.json").stat().st_mtime_ns == mtimes[rid]
    manifest = io.read_json(out / "sweep.json")
    assert [e["skipped"] for e in manifest["runs"]] == [True, True, False, False]

    everything = load_runs(out)
    assert len(everything) == 6 == len(run_dirs(out))
    csv_path = write_csv(everything, tmp_path / "runs.csv")
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("id,status,path")
    assert cli.main(["sweep", str(first), "--out", str(out), "--quiet"]) == 0  # all complete: nothing to do
    assert "4 complete, 0 failed" in capsys.readouterr().out


@dataclass(frozen=True)
class _NoSettings:
    pass


def test_failed_run_is_recorded_and_others_go_on(tmp_path, monkeypatch):
    def explode(run, settings):
        if run.config.layers == 2:
            raise RuntimeError("boom at two layers")
        return MetricOutput({"explode.ok": 1.0})

    monkeypatch.setitem(registry._SPECS, "explode", MetricSpec("explode", "fails at two layers", _NoSettings, explode))
    sweep = {"base": {**BASE_DICT, "metrics": {"explode": {}}}, "grid": {"layers": [2, 1, 3]}}
    rows = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert [r["status"] for r in rows] == ["failed", "complete", "complete"]
    assert "boom at two layers" in rows[0]["error"] and rows[1]["explode.ok"] == 1.0
    info = json.loads((tmp_path / rows[0]["id"] / "run.json").read_text())
    assert info["status"] == "failed" and "boom" in info["error"]
    manifest = io.read_json(tmp_path / "sweep.json")
    assert manifest["counts"] == {"failed": 1, "complete": 2} and "boom" in manifest["runs"][0]["error"]


def test_process_pool_records_runtime_failure(tmp_path):
    missing = tmp_path / "missing.npz"  # validation cannot know that the file is absent
    sweep = {"base": BASE_DICT, "grid": {"dataset": ["digits", str(missing)]}}
    rows = run_sweep(sweep, tmp_path / "out", workers=2, progress=False)
    assert [r["status"] for r in rows] == ["complete", "failed"]
    assert "missing.npz" in rows[1]["error"]


def test_sigkill_mid_sweep_then_resume(tmp_path):
    # quick runs first, then slow ones, so that the kill lands while runs are in flight
    path = write(
        tmp_path, BASE.replace("max_train = 30", "max_train = 60") + "[grid]\nepochs = [1, 150]\nseed = [0, 1, 2]\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qlandscape.cli", "sweep", str(path), "--out", str(out), "--workers", "2", "--quiet"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and any(is_complete(p) for p in run_dirs(out)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep process and its workers
        proc.wait()
    before = {p.name: (p / "run.json").stat().st_mtime_ns for p in run_dirs(out) if is_complete(p)}
    assert 1 <= len(before) < 6
    for p in run_dirs(out):  # a run killed right after its mkdir has no run.json yet; one that has it is whole
        if (p / "run.json").exists():
            json.loads((p / "run.json").read_text())

    rows = run_sweep(path, out, workers=1, progress=False)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"complete"}
    dirs = run_dirs(out)
    assert len(dirs) == 6 and sorted(r["id"] for r in rows) == [p.name for p in dirs]
    for p in dirs:
        assert json.loads((p / "run.json").read_text())["status"] == "complete"
        assert io.read_npz(p / "arrays.npz")["trajectory"].ndim == 2
    for name, mtime in before.items():  # finished before the kill, not redone
        assert (out / name / "run.json").stat().st_mtime_ns == mtime
    assert io.read_json(out / "sweep.json")["counts"] == {"complete": 6}


def test_dask_local_cluster_matches_local_executor(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    sweep = {"base": {**BASE_DICT, "epochs": 2}, "grid": {"seed": [0, 1], "layers": [1, 2]}}
    local = run_sweep(sweep, tmp_path / "local", workers=1, progress=False)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = run_sweep(sweep, tmp_path / "dask", dask=client, progress=False)
    assert [r["id"] for r in remote] == [r["id"] for r in local]
    for a, b in zip(local, remote, strict=True):
        assert b["status"] == "complete"
        for key in ("train_loss", "test_loss", "test_accuracy", "n_params"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12)
        ta = io.read_npz(tmp_path / "local" / a["id"] / "arrays.npz")["trajectory"]
        tb = io.read_npz(tmp_path / "dask" / b["id"] / "arrays.npz")["trajectory"]
        np.testing.assert_allclose(ta, tb, rtol=1e-12, atol=1e-12)


def test_dask_missing_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ConfigError, match=r"qlandscape\[dask\]"):
        run_sweep({"base": BASE_DICT, "grid": {"seed": [0]}}, tmp_path, dask="tcp://127.0.0.1:1", progress=False)


def test_zip_axes_advance_together():
    sweep = sweep_from_dict(
        {"base": BASE_DICT, "grid": {"seed": [0, 1]}, "zip": {"layers": [1, 2, 4], "lr": [0.01, 0.005, 0.001]}}
    )
    pairs = {(c.seed, c.layers, c.lr) for c in sweep.runs}
    assert len(sweep.runs) == 6
    assert pairs == {(s, L, lr) for s in (0, 1) for L, lr in [(1, 0.01), (2, 0.005), (4, 0.001)]}
    assert sweep.to_dict()["zip"]["layers"] == [1, 2, 4]
    with pytest.raises(ConfigError, match="common length"):
        sweep_from_dict({"base": BASE_DICT, "zip": {"layers": [1, 2], "lr": [0.1]}})
    with pytest.raises(ConfigError, match="zip.seed"):
        sweep_from_dict({"base": BASE_DICT, "grid": {"seed": [0, 1]}, "zip": {"seed": [3]}})


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
        sweep_from_dict({"base": {**BASE_DICT, **base}, "grid": grid})
    assert needle in str(err.value)


def test_sigkilled_sweep_leaves_no_worker_processes(tmp_path):
    sweep = tmp_path / "sweep.toml"
    base = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**BASE_DICT, "epochs": 20, "max_train": 100}.items())
    sweep.write_text(f"[base]\n{base}\n[grid]\nseed = [0, 1, 2, 3, 4, 5, 6, 7]\n")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qlandscape.cli", "sweep", str(sweep), "--out", str(out), "--workers", "2", "--quiet"],
        cwd=ROOT,
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
