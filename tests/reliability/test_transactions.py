"""Run directories as transactions: the lock, staged commits, tidying after dead writers, and two metric commands on
one run at once (the two concurrency failures of issue 22: both results are kept, or one whole result)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs import run as run_module
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import check_run
from qlandscape.runs.run import execute_run, run_metric
from qlandscape.runs.transaction import LockHeld, Staging, locked
from tests.reliability.run_dirs import ENV, ROOT, TINY, copy_run, leftovers, same, snapshot, start

HOLD = """
import sys, time
from pathlib import Path
from qlandscape.runs.transaction import locked
with locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("base"))


def test_the_lock_excludes_another_process_and_goes_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld):
            with locked(tmp_path, timeout=0):
                pass
        with pytest.raises(LockHeld):
            with locked(tmp_path, timeout=0.3):
                pass
        holder.kill()  # SIGKILL: no cleanup code runs; the OS releases the lock
        holder.wait()
        with locked(tmp_path, timeout=5):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_reentrant_in_its_thread_and_excludes_other_threads(tmp_path):
    inside = threading.Event()
    release = threading.Event()
    outcome = []

    def other() -> None:
        try:
            with locked(tmp_path, timeout=0):
                outcome.append("got it")
        except LockHeld:
            outcome.append("held")

    with locked(tmp_path):
        with locked(tmp_path, timeout=0):  # the same thread again
            inside.set()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        release.set()
    assert inside.is_set() and outcome == ["held"]
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert outcome == ["held", "got it"]


def test_taking_the_lock_tidies_what_dead_writers_left(tmp_path):
    (tmp_path / "results").mkdir()
    dead_tmp = [tmp_path / ".run.json.x1.tmp", tmp_path / "results" / ".hessian_summary.json.x2.tmp"]
    for f in dead_tmp:
        f.write_text("half")
    dead = tmp_path / ".txn-dead"  # a staging folder whose writer is gone (its owner file is not locked)
    (dead / "files").mkdir(parents=True)
    (dead / ".owner").touch()
    (dead / "files" / "run.json").write_text("{}")
    with Staging(tmp_path) as live:  # a writer that is still filling its staging folder
        (live.files / "run.json").write_text("{}")
        with locked(tmp_path, tidy=("results",)):
            pass
        assert not any(f.exists() for f in dead_tmp) and not dead.exists()
        assert live.root.exists()
    assert not live.root.exists() and leftovers(tmp_path) == []


def test_a_committed_journal_is_carried_out_by_the_next_reader(tmp_path, monkeypatch):
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "gone.txt").write_text("old")
    staging = Staging(tmp_path)
    (staging.files / "old.txt").write_text("new")
    (staging.files / "sub").mkdir()
    (staging.files / "sub" / "added.txt").write_text("new")

    def killed(*args):  # the writer dies right after the commit point
        raise KeyboardInterrupt

    monkeypatch.setattr("qlandscape.runs.transaction._roll_forward", killed)
    with locked(tmp_path), pytest.raises(KeyboardInterrupt):
        staging.commit(remove=["gone.txt"], last=["old.txt"])
    staging.close()
    monkeypatch.undo()
    assert (tmp_path / "old.txt").read_text() == "old" and staging.root.exists()  # not carried out yet
    with locked(tmp_path):  # whoever comes next finishes it
        pass
    assert (tmp_path / "old.txt").read_text() == "new" and (tmp_path / "sub" / "added.txt").read_text() == "new"
    assert not (tmp_path / "gone.txt").exists() and leftovers(tmp_path) == []


def test_committing_needs_the_lock(tmp_path):
    with Staging(tmp_path) as staging, pytest.raises(RuntimeError, match="lock"):
        staging.commit()


def _sequential(base, tmp_path, name, *calls):
    path = copy_run(base, tmp_path / name)
    for metric, settings, _ in calls:
        run_metric(path, metric, settings)
    return snapshot(path)


# The two concurrency failures of issue 22, with the subcommands' settings: a Hessian along the trajectory beside a
# landscape (the landscape scalars were lost), and the Hessian at init beside the Hessian at the final point with its
# structure (run.json said init beside the other call's structure files). The two Hessians are two variants
# (hessian_dense_init, hessian_dense_structure): both are kept, each whole. Two results of one variant at once
# (AT_FINAL and AT_FINAL_DENSITY) leave one of them whole.
HESSIAN = ("hessian", {"trajectory": True, "density": False, "figures": False}, ("--trajectory",))
LANDSCAPE = ("landscape", {"grid": 5, "figures": False}, ("--grid", "5"))
AT_INIT = ("hessian", {"point": "init", "density": False, "figures": False}, ("--point", "init"))
AT_FINAL = (
    "hessian",
    {"point": "final", "structure": True, "density": False, "figures": False},
    ("--point", "final", "--structure"),
)
AT_FINAL_DENSITY = (
    "hessian",
    {"point": "final", "structure": True, "density": True, "top_k": 2, "figures": False},
    ("--point", "final", "--structure", "--density", "--top-k", "2"),
)


def _in_processes(path, *calls):
    started = [start(metric, str(path), *options, "--no-figures") for metric, _, options in calls]
    for call in started:
        _, err = call.communicate(timeout=120)
        assert call.returncode == 0 and "Traceback" not in err, err


def _check_both_kept(base_run, tmp_path, path):
    # both results, as computed one after the other
    assert same(snapshot(path), _sequential(base_run, tmp_path, "ref_both", HESSIAN, LANDSCAPE))
    info = io.read_json(path / "run.json")
    assert set(info["manifest"]) == {"hessian", "landscape"}
    assert "landscape.grid" in info["metrics"] and "hessian.lambda_max" in info["metrics"]
    assert leftovers(path) == []


def _check_both_whole(base_run, tmp_path, path):
    got = snapshot(path)
    init_final = _sequential(base_run, tmp_path, "ref_init_final", AT_INIT, AT_FINAL)
    final_init = _sequential(base_run, tmp_path, "ref_final_init", AT_FINAL, AT_INIT)
    # both variants whole, run.json and arrays.npz the last commit's, nothing of the other variant in them
    assert same(got, init_final) or same(got, final_init)
    settings = io.read_json(path / "run.json")["manifest"]["hessian"]["settings"]
    assert got["metrics"]["hessian.point"] == settings["point"] and leftovers(path) == []


def _check_one_whole(base_run, tmp_path, path):
    got = snapshot(path)
    after_final = _sequential(base_run, tmp_path, "ref_final", AT_FINAL)
    after_density = _sequential(base_run, tmp_path, "ref_density", AT_FINAL_DENSITY)
    assert same(got, after_final) or same(got, after_density)  # the last commit's whole result, nothing of the other
    settings = io.read_json(path / "run.json")["manifest"]["hessian"]["settings"]
    # the manifest's settings are those of the call whose files are there
    assert settings["density"] == any(name.endswith("_density.json") for name in got["results"])
    assert leftovers(path) == []


def test_two_metric_commands_at_once_keep_both_results(base_run, tmp_path):
    path = copy_run(base_run, tmp_path / "runs")
    _in_processes(path, HESSIAN, LANDSCAPE)
    _check_both_kept(base_run, tmp_path, path)


def test_two_results_of_one_metric_at_once_are_both_kept_whole(base_run, tmp_path):
    path = copy_run(base_run, tmp_path / "runs")
    _in_processes(path, AT_INIT, AT_FINAL)
    _check_both_whole(base_run, tmp_path, path)


def test_two_results_of_one_variant_at_once_leave_one_whole_result(base_run, tmp_path):
    path = copy_run(base_run, tmp_path / "runs")
    _in_processes(path, AT_FINAL, AT_FINAL_DENSITY)
    _check_one_whole(base_run, tmp_path, path)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(5))
def test_the_two_concurrency_failures_in_four_processes(base_run, tmp_path, attempt):
    both, one = copy_run(base_run, tmp_path / "both"), copy_run(base_run, tmp_path / "one")
    threads = [
        threading.Thread(target=_in_processes, args=(both, HESSIAN, LANDSCAPE)),
        threading.Thread(target=_in_processes, args=(one, AT_INIT, AT_FINAL)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check_both_kept(base_run, tmp_path, both)
    _check_both_whole(base_run, tmp_path, one)


def test_a_metric_is_refused_when_its_run_was_recomputed_meanwhile(base_run, tmp_path, monkeypatch):
    path = copy_run(base_run, tmp_path / "runs")
    config = RunConfig.from_dict(io.read_json(path / "run.json")["config"])
    stage = run_module._stage_metric

    def stage_then_retrain(*args, **kwargs):
        staged = stage(*args, **kwargs)
        execute_run(config, path.parent, force=True)  # another command recomputes the run
        return staged

    monkeypatch.setattr(run_module, "_stage_metric", stage_then_retrain)
    before = io.read_json(path / "run.json")["attempt"]
    with pytest.raises(ConfigError, match="recomputed while hessian was computed"):
        run_metric(path, "hessian", {"figures": False})
    info = io.read_json(path / "run.json")
    assert info["attempt"] != before and not any(k.startswith("hessian.") for k in info["metrics"])
    assert check_run(path).status == "complete" and leftovers(path) == []


def test_a_run_command_waits_for_the_process_computing_its_run(tmp_path):
    config = RunConfig.from_dict(TINY)
    path = tmp_path / config.run_id()
    path.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld):
            execute_run(config, tmp_path, wait=False)
        assert not (path / "run.json").exists()  # nothing written while another process holds it
        threading.Timer(0.5, holder.kill).start()
        started = time.monotonic()
        execute_run(config, tmp_path)  # waits, then trains
        assert time.monotonic() - started >= 0.4 and check_run(path).status == "complete"
    finally:
        holder.kill()
        holder.wait()
