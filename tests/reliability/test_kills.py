"""Kills: a metric command killed at any moment leaves the run directory's old or new result, never a mix, and a
sweep killed again and again resumes with every run computed once. Fast cases run by default; the loops of many
random kills are marked slow."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import check_run, lock_run
from qlandscape.runs.run import execute_run, run_metric
from qlandscape.runs.sweep import run_sweep
from tests.reliability.run_dirs import TINY, copy_run, leftovers, same, snapshot, start

OLD = {"point": "final", "density": False, "figures": False}
NEW = {"point": "init", "structure": True, "density": True, "figures": False}
NEW_ARGS = ("--point", "init", "--structure", "--density")  # NEW as options of the subcommand, figures drawn


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A run with a Hessian result (the old state that the killed commands replace)."""
    path = execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("old"))
    run_metric(path, "hessian", OLD)
    return path


def _outcome(path: Path, old: dict, new: dict) -> str:
    assert check_run(path).status == "complete"  # readable, settled: a commit under way is carried out
    got = snapshot(path)
    with lock_run(path):  # the next writer tidies whatever the killed one left
        pass
    assert leftovers(path) == []
    if same(got, old):
        return "old"
    if same(got, new):
        return "new"
    return "mix"


def _replaces_then_exit(path: Path, limit: int, log: Path | None, settings: dict) -> None:
    """Run the metric command in this (forked) process, dying like a SIGKILL at the ``limit``-th rename."""
    real = os.replace
    done: list[str] = []

    def replace(source, target):
        if len(done) == limit:
            os._exit(9)  # no cleanup, no finally: what a kill leaves
        real(source, target)
        done.append(Path(target).name)

    os.replace = replace
    run_metric(path, "hessian", settings)
    if log is not None:
        log.write_text("\n".join(done))
    os._exit(0)


def _fork(path: Path, limit: int, log: Path | None = None, settings: dict = NEW) -> int:
    # A forked child computes the metric without a new interpreter and dies (os._exit) at a chosen rename, the
    # steps where a run directory changes: every moment a kill can leave the directory in, in about a second.
    child = multiprocessing.get_context("fork").Process(target=_replaces_then_exit, args=(path, limit, log, settings))
    child.start()
    child.join(60)
    return child.exitcode


def _kill_points(old_run: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    reference = copy_run(old_run, tmp_path / "reference")
    log = tmp_path / "renames.txt"
    assert _fork(reference, 10**9, log) == 0
    return snapshot(reference), log.read_text().split("\n")


def _check_kill_points(old_run: Path, tmp_path: Path, limits) -> None:
    old = snapshot(old_run)
    new, renames = _kill_points(old_run, tmp_path)
    commit = renames.index("journal.json")  # renames up to here fill the staging folder; the journal commits
    assert renames[-1] == "run.json" and "hessian_dense_init_structure_structure.json" in renames[commit:]
    for limit in limits(len(renames)):
        path = copy_run(old_run, tmp_path / f"kill{limit}")
        assert _fork(path, limit) == 9
        assert _outcome(path, old, new) == ("old" if limit <= commit else "new"), (limit, renames[limit])


def test_a_metric_command_killed_at_every_rename_leaves_old_or_new(old_run, tmp_path):
    # before anything, while staging, at the commit point, in the middle of the roll-forward, before run.json
    _check_kill_points(old_run, tmp_path, range)


def _random_kills(old_run: Path, tmp_path: Path, kills: int, seed: int, window: tuple[float, float]) -> dict:
    """SIGKILL ``qlandscape hessian`` at random moments (seconds after its start, uniform in ``window``); count
    what each kill left."""
    old = snapshot(old_run)
    reference = copy_run(old_run, tmp_path / "reference")
    assert _fork(reference, 10**9, settings={**NEW, "figures": True}) == 0
    new = snapshot(reference)
    rng = random.Random(seed)
    counts = {"old": 0, "new": 0, "mix": 0}
    for i in range(kills):
        path = copy_run(old_run, tmp_path / f"kill{i}")
        call = start("hessian", str(path), *NEW_ARGS)
        time.sleep(rng.uniform(*window))
        os.killpg(call.pid, signal.SIGKILL)
        call.wait()
        counts[_outcome(path, old, new)] += 1
    return counts


def test_a_metric_command_killed_at_a_random_moment_leaves_old_or_new(old_run, tmp_path):
    counts = _random_kills(old_run, tmp_path, 1, seed=1, window=(2.0, 4.0))
    assert counts["mix"] == 0 and counts["old"] + counts["new"] == 1


@pytest.mark.slow
def test_a_metric_command_killed_ten_times_leaves_old_or_new(old_run, tmp_path):
    began = time.monotonic()  # how long the whole command takes here, start-up included
    call = start("hessian", str(copy_run(old_run, tmp_path / "timed")), *NEW_ARGS)
    assert call.wait(120) == 0, call.stderr.read()
    duration = time.monotonic() - began
    counts = _random_kills(old_run, tmp_path, 10, seed=2, window=(0.4 * duration, 1.05 * duration))
    assert counts["mix"] == 0 and counts["old"] + counts["new"] == 10


SWEEP = """[base]
classes = [0, 1]
max_train = 40
max_test = 20
qubits = 2
layers = 1
patch_size = 4
patches = 2
batch_size = 10
[base.metrics.hessian]
figures = false
density = false
[grid]
epochs = [3, 12]
seed = [0, 1, 2, 3]
"""


def _finished_attempts(out: Path) -> dict[str, str]:
    """run id -> the call that trained it, for every finished run below ``out``."""
    attempts = {}
    for path in sorted(p for p in out.iterdir() if p.is_dir()):
        state = check_run(path)
        if state.finished:
            attempts[path.name] = state.info["attempt"]["call"]
    return attempts


def _kill_sweep_repeatedly(tmp_path: Path, kills: int, seed: int, workers: str) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    for _ in range(kills):
        call = start("sweep", str(sweep), "--out", str(out), "--workers", workers, "--quiet")
        time.sleep(rng.uniform(2.0, 5.0))
        os.killpg(call.pid, signal.SIGKILL)  # the sweep and its workers
        call.wait()
        now = _finished_attempts(out) if out.exists() else {}
        for rid, attempt in seen.items():  # a run finished before a kill is never computed again
            assert now.get(rid) == attempt, rid
        seen |= now
    rows = run_sweep(sweep, out, workers=1, progress=False)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"complete"}
    final = _finished_attempts(out)
    assert {rid: final[rid] for rid in seen} == seen
    assert sum(r["computed"] for r in rows) == 8 - len(seen)  # the resume computed exactly the rest, once each
    assert len({a for a in final.values()}) == 8
    assert leftovers(out) == []  # what killed writers left was tidied when their runs were locked again
    for path in (p for p in out.iterdir() if p.is_dir()):
        assert io.read_json(path / "run.json")["status"] == "complete"
        assert "hessian.lambda_max" in io.read_json(path / "run.json")["metrics"]


def test_a_killed_sweep_resumes_with_every_run_once(tmp_path):
    _kill_sweep_repeatedly(tmp_path, kills=1, seed=3, workers="1")


@pytest.mark.slow
def test_a_sweep_killed_ten_times_resumes_with_every_run_once(tmp_path):
    _kill_sweep_repeatedly(tmp_path, kills=10, seed=4, workers="2")
