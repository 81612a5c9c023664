"""Sweeps share work through the run locks (two sweeps on one folder compute each run once), and a Dask sweep
whose workers or scheduler go away stops with one message instead of waiting forever."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from qlandscape.core import io
from qlandscape.runs.layout import check_run
from qlandscape.runs.sweep import ClusterLost, run_sweep
from tests.reliability.run_dirs import ENV, TINY, leftovers, start

GRID = {"seed": [0, 1, 2, 3, 4, 5], "layers": [1, 2]}


def _sweep_file(tmp_path, base=None):
    base = {**TINY, "epochs": 2, **(base or {})}
    text = "[base]\n" + "\n".join(f"{k} = {v}" for k, v in base.items())
    text += "\n[grid]\n" + "\n".join(f"{k} = {v}" for k, v in GRID.items()) + "\n"
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_two_sweeps_on_one_folder_compute_each_run_once(tmp_path):
    sweep, out = _sweep_file(tmp_path), tmp_path / "out"
    calls = [start("sweep", str(sweep), "--out", str(out), "--workers", "1", "--quiet") for _ in range(2)]
    computed = []
    for call in calls:
        printed, err = call.communicate(timeout=180)
        assert call.returncode == 0, err
        assert "12 runs in" in printed and "12 complete, 0 failed, 0 diverged" in printed
        computed.append(int(re.search(r"\((\d+) computed by this sweep\)", printed).group(1)))
    assert sum(computed) == 12, computed  # each run trained by exactly one of the two
    attempts = {check_run(p).info["attempt"]["call"] for p in out.iterdir() if p.is_dir()}
    assert len(attempts) == 12 and leftovers(out) == []
    assert io.read_json(out / "sweep.json")["counts"] == {"complete": 12}


def _sweep_in_thread(sweep, out, client, worker_timeout):
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["rows"] = run_sweep(sweep, out, dask=client, progress=False, worker_timeout=worker_timeout)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for_a_finished_run(out, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and any(check_run(p).finished for p in out.iterdir() if p.is_dir()):
            return
        time.sleep(0.05)
    pytest.fail("no run finished")


def test_a_dask_sweep_stops_when_every_worker_is_gone(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    sweep, out = _sweep_file(tmp_path, {"epochs": 6}), tmp_path / "out"
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        thread, outcome = _sweep_in_thread(sweep, out, client, worker_timeout=1.0)
        _wait_for_a_finished_run(out)
        cluster.scale(0)  # every worker leaves
        thread.join(60)
        assert not thread.is_alive(), "the sweep waited for workers that are gone"
    error = outcome.get("error")
    assert isinstance(error, ClusterLost), outcome
    assert "every Dask worker" in str(error) and "rerun the sweep" in str(error)
    unfinished = int(re.search(r"(\d+) of 12 runs are not finished", str(error)).group(1))
    assert 0 < unfinished < 12


def test_a_dask_sweep_stops_with_one_message_when_its_scheduler_goes(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    sweep, out = _sweep_file(tmp_path, {"epochs": 6}), tmp_path / "out"
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        thread, outcome = _sweep_in_thread(sweep, out, client, worker_timeout=60.0)
        _wait_for_a_finished_run(out)
        client.shutdown()  # the scheduler (and its workers) go away
        thread.join(60)
        assert not thread.is_alive(), "the sweep waited for a scheduler that is gone"
    finally:
        client.close()
        cluster.close()
    error = outcome.get("error")
    assert isinstance(error, ClusterLost), outcome
    assert "scheduler" in str(error) and "went away" in str(error) and "rerun the sweep" in str(error)
    # what finished is kept, and a rerun computes only the rest
    finished = {p.name for p in out.iterdir() if p.is_dir() and check_run(p).finished}
    rows = run_sweep(sweep, out, workers=1, progress=False)
    assert all(r["status"] == "complete" for r in rows)
    assert {r["id"] for r in rows if not r["computed"]} == finished


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["scheduler", "worker"])
def test_the_sweep_command_says_one_thing_when_its_dask_cluster_is_killed(tmp_path, killed):
    pytest.importorskip("dask.distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [*dask, "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"],
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sweep, out = _sweep_file(tmp_path, {"epochs": 6}), tmp_path / "out"
        call = start("sweep", str(sweep), "--out", str(out), "--dask", address, "--worker-timeout", "3", "--quiet")
        _wait_for_a_finished_run(out)
        os.killpg((scheduler if killed == "scheduler" else worker).pid, signal.SIGKILL)
        printed, err = call.communicate(timeout=120)
    finally:
        for process in (scheduler, worker):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert call.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qlandscape sweep: error: "), err  # one message, no traceback
    assert ("scheduler" if killed == "scheduler" else "every Dask worker") in lines[0]
    assert "finished runs are kept" in lines[0] and "None" not in err
