"""Integrity on read: damaged run directories are named (file and reason) by every reader, recomputed by a resumed
sweep and listed by the report, which still writes its page; a dataset replaced in place is noticed."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs import registry
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import SCHEMA_VERSION, check_run, is_complete, is_finished
from qlandscape.runs.report import write_report
from qlandscape.runs.run import execute, execute_run, load_run, run_metric
from qlandscape.runs.sweep import run_sweep
from qlandscape.runs.tables import load_runs
from tests.reliability.run_dirs import TINY, copy_run

RUN_0_1 = Path(__file__).resolve().parents[1] / "runs" / "data" / "v0_1_run" / "0307e95d34d7"


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _edit(**changes):
    def apply(path: Path) -> None:
        info = io.read_json(path / "run.json")
        for key, value in changes.items():
            if value is None:
                del info[key]
            else:
                info[key] = value
        io.write_json(path / "run.json", info)

    return apply


def _edit_config(path: Path) -> None:
    info = io.read_json(path / "run.json")
    info["config"]["lr"] = 0.5  # no longer the config of this run id
    io.write_json(path / "run.json", info)


def _drop_trajectory(path: Path) -> None:
    arrays = io.read_npz(path / "arrays.npz")
    del arrays["trajectory"]
    io.write_npz(path / "arrays.npz", arrays)


# (how the directory is damaged, the damaged file, words of the reason)
DAMAGE = {
    "run.json truncated": (lambda p: _truncate(p / "run.json"), "run.json", "not valid JSON"),
    "run.json empty": (lambda p: (p / "run.json").write_text(""), "run.json", "is empty"),
    "run.json []": (lambda p: (p / "run.json").write_text("[]"), "run.json", "JSON list, expected an object"),
    "run.json not UTF-8": (lambda p: (p / "run.json").write_bytes(b"\xff\xfe{}"), "run.json", "not UTF-8"),
    "no config": (_edit(config=None), "run.json", "has no config"),
    "config edited": (_edit_config, "run.json", "its config gives the run id"),
    "config invalid": (_edit(config={"qubits": "four"}), "run.json", "not a valid run config"),
    "status edited": (_edit(status="done"), "run.json", "status = 'done'"),
    "metrics a list": (_edit(metrics=[1, 2]), "run.json", "metrics = [1, 2]"),
    "timings edited": (_edit(timings={"train_seconds": "slow"}), "run.json", "timings.train_seconds"),
    "newer schema": (_edit(schema=SCHEMA_VERSION + 1), "run.json", "upgrade qlandscape"),
    "arrays missing": (lambda p: (p / "arrays.npz").unlink(), "arrays.npz", "is missing"),
    "arrays truncated": (lambda p: _truncate(p / "arrays.npz"), "arrays.npz", "not a readable .npz"),
    "no trajectory": (_drop_trajectory, "arrays.npz", "has no trajectory"),
    "result truncated": (
        lambda p: _truncate(p / "results" / "hessian_dense_summary.json"),
        "hessian_dense_summary.json",
        "JSON",
    ),
    "result npz truncated": (
        lambda p: _truncate(p / "results" / "hessian_dense_summary.npz"),
        "hessian_dense_summary.npz",
        "npz",
    ),
    "result missing": (
        lambda p: (p / "results" / "hessian_dense_spectrum.json").unlink(),
        "hessian_dense_spectrum.json",
        "manifest",
    ),
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    config = RunConfig.from_dict({**TINY, "metrics": {"hessian": {"density": False, "figures": False}}})
    return execute_run(config, tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize("case", DAMAGE)
def test_every_reader_names_the_damaged_file_and_what_is_wrong(good_run, tmp_path, capsys, case):
    damage, file, reason = DAMAGE[case]
    path = copy_run(good_run, tmp_path)
    damage(path)
    state = check_run(path)
    assert state.status == "damaged" and state.file.name == file and reason in state.reason, state
    assert not is_complete(path) and not is_finished(path)
    with pytest.raises(ConfigError) as err:
        load_run(path)
    assert file in str(err.value) and reason in str(err.value)
    assert cli.main(["hessian", str(path), "--no-figures"]) == 2
    stderr = capsys.readouterr().err
    assert file in stderr and reason in stderr and "Traceback" not in stderr
    rows = load_runs(tmp_path)
    assert [(r["status"], file in r["error"]) for r in rows] == [("damaged", True)]


def test_a_run_written_by_0_1_is_complete_and_gets_a_manifest_when_a_metric_is_added(tmp_path):
    state = check_run(RUN_0_1)
    assert state.status == "complete" and "schema" not in state.info
    path = copy_run(RUN_0_1, tmp_path)
    run_metric(path, "hessian", {"density": False, "figures": False})
    info = io.read_json(path / "run.json")
    assert info["schema"] == SCHEMA_VERSION and set(info["manifest"]) == {"hessian"}
    assert check_run(path).status == "complete"


def test_a_resumed_sweep_recomputes_damaged_runs_and_only_them(tmp_path, caplog):
    sweep = {
        "base": {**TINY, "metrics": {"hessian": {"density": False, "figures": False}}},
        "grid": {"seed": [0, 1, 2, 3]},
    }
    first = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert all(r["computed"] for r in first)
    damaged = {first[0]["id"]: "arrays truncated", first[1]["id"]: "run.json []", first[2]["id"]: "result truncated"}
    for rid, case in damaged.items():
        DAMAGE[case][0](tmp_path / rid)
    with caplog.at_level(logging.WARNING):
        again = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert [r["computed"] for r in again] == [True, True, True, False]
    assert all(r["status"] == "complete" for r in again)
    for before, after in zip(first, again, strict=True):  # the same numbers as the first time
        for key in ("train_loss", "test_accuracy", "hessian.lambda_max"):
            assert after[key] == before[key]
    for rid in damaged:
        assert any(rid in m and "damaged" in m for m in caplog.messages)


def test_the_report_lists_damaged_failed_and_diverged_runs_and_writes_its_page(good_run, tmp_path):
    runs = tmp_path / "runs"
    sweep = {"base": {**TINY, "metrics": {"hessian": {"figures": False}}}, "grid": {"seed": [0, 1, 2, 3, 4]}}
    rows = run_sweep(sweep, runs, workers=1, progress=False)
    DAMAGE["run.json truncated"][0](runs / rows[0]["id"])
    DAMAGE["arrays truncated"][0](runs / rows[1]["id"])
    DAMAGE["result truncated"][0](runs / rows[2]["id"])
    _truncate(runs / rows[3]["id"] / "results" / "hessian_dense_density.json")  # read by the report's density figure
    with pytest.raises(ConfigError):
        execute_run(RunConfig.from_dict({**TINY, "dataset": str(tmp_path / "missing.npz")}), runs)
    execute_run(
        RunConfig.from_dict({**TINY, "model": "mlp", "width": 4, "depth": 1, "optimizer": "sgd", "lr": 1e200}), runs
    )

    files = write_report(runs, tmp_path / "report")
    assert (files.n_runs, files.n_complete, files.n_damaged, files.n_failed, files.n_diverged) == (7, 1, 4, 1, 1)
    page = files.markdown.read_text()
    for section in ("## Damaged runs", "## Failed or unfinished runs", "## Diverged runs"):
        assert section in page
    damaged_section = page.split("## Damaged runs")[1].split("##")[0]
    names = ("run.json", "arrays.npz", "hessian_dense_summary.json", "hessian_dense_density.json")
    for row, name in zip(rows[:4], names, strict=True):
        assert f"`{row['id']}`" in damaged_section and name in damaged_section
    assert "missing.npz" in page and "training loss became nan" in page
    assert files.html.exists() and "Damaged runs" in files.html.read_text()
    # the group of the TINY config counts every seed whose config could be read: 4 of them, 1 complete
    assert "| 1/4 |" in page


def _dataset(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.random((40, 8, 8)), y=np.repeat([0, 1], 20))
    return path


def test_a_dataset_replaced_in_place_is_noticed(tmp_path, caplog):
    data = _dataset(tmp_path / "data.npz", 0)
    config = RunConfig.from_dict({**TINY, "dataset": str(data), "max_train": None, "max_test": None})
    out = tmp_path / "runs"
    path = execute_run(config, out)
    first = io.read_json(path / "run.json")
    assert len(first["data"]["sha256"]) == 64
    assert not execute(config, out).computed  # unchanged: kept

    _dataset(data, 1)  # same path, other contents: the run id cannot tell
    assert config.run_id() == path.name
    with pytest.raises(ConfigError, match="has changed since the run was trained"):
        load_run(path)
    with caplog.at_level(logging.WARNING):
        again = execute(config, out)
    assert again.computed and again.path == path and any("has changed" in m for m in caplog.messages)
    fresh = execute_run(config, tmp_path / "fresh")  # trained on the new contents from the start
    recomputed, independent = io.read_json(path / "run.json"), io.read_json(fresh / "run.json")
    assert recomputed["data"] == independent["data"] != first["data"]
    assert recomputed["metrics"] == independent["metrics"] != first["metrics"]
    load_run(path)

    # a sweep resumes the same way; a run that recorded no hash (0.1) is kept as it is
    sweep = {"base": {**TINY, "dataset": str(data), "max_train": None, "max_test": None}, "grid": {"seed": [0, 1]}}
    rows = run_sweep(sweep, out, workers=1, progress=False)
    assert [r["computed"] for r in rows] == [False, True]
    _dataset(data, 2)
    info = io.read_json(out / rows[1]["id"] / "run.json")
    del info["data"]
    io.write_json(out / rows[1]["id"] / "run.json", info)
    rows = run_sweep(sweep, out, workers=1, progress=False)
    assert [r["computed"] for r in rows] == [True, False]


def test_a_report_of_only_damaged_runs_still_writes_its_page(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text(json.dumps([]))
    files = write_report(tmp_path)
    assert files.n_runs == 1 and files.n_damaged == 1 and files.markdown.exists()
    assert "x/run.json: holds a JSON list" in files.markdown.read_text()


def test_a_report_figure_that_fails_is_named_and_the_page_written(good_run, tmp_path, monkeypatch, capsys):
    copy_run(good_run, tmp_path / "runs")
    spec = registry.get("hessian")

    def unreadable(view):
        raise ValueError("Expecting value: line 1 column 1 (char 0)")
        yield  # a generator, as sweep figure functions are

    monkeypatch.setitem(registry._SPECS, "hessian", dataclasses.replace(spec, sweep_figures=unreadable))
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "not drawn: hessian figures: ValueError" in out
    page = (tmp_path / "report" / "report.md").read_text()
    assert "## Figures that could not be drawn" in page and "hessian figures" in page
