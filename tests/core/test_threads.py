"""The thread policy: the CPUs a process may use (affinity and cgroup quota, read from fake cgroup trees), the
command's thread count, and the warning for more torch threads than usable CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from qlandscape.core import threads
from qlandscape.core.errors import ConfigError
from qlandscape.core.threads import command_threads, cpu_quota, set_threads, thread_warning, usable_cpus


def _v2_tree(tmp_path: Path, quotas: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for folder, text in quotas.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(text + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/kubepods/pod1/container\n")
    return root, proc


def test_cgroup_v2_quota_is_the_tightest_on_the_way_to_the_root(tmp_path):
    root, proc = _v2_tree(
        tmp_path,
        {"kubepods/pod1/container": "max 100000", "kubepods/pod1": "150000 100000", "kubepods": "400000 100000"},
    )
    assert cpu_quota(root, proc) == pytest.approx(1.5)
    root, proc = _v2_tree(tmp_path / "unlimited", {"kubepods/pod1/container": "max 100000", "": "max 100000"})
    assert cpu_quota(root, proc) is None


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("250000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert cpu_quota(root, proc) == pytest.approx(2.5)
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cpu_quota(root, proc) is None
    assert cpu_quota(root, tmp_path / "missing") is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota(tmp_path):
    visible = len(os.sched_getaffinity(0))
    root, proc = _v2_tree(tmp_path, {"kubepods/pod1/container": "50000 100000"})
    assert usable_cpus(root, proc) == 1  # half a CPU still runs one thread
    root, proc = _v2_tree(tmp_path / "big", {"kubepods/pod1/container": f"{100000 * (visible + 8)} 100000"})
    assert usable_cpus(root, proc) == visible
    assert usable_cpus(tmp_path / "none", tmp_path / "none") == visible


def test_command_threads():
    assert command_threads(3, {}) == 3
    assert command_threads(None, {}) == threads.CLI_THREADS == 1
    assert command_threads(None, {"OMP_NUM_THREADS": "4"}) == 4
    assert command_threads(None, {"OMP_NUM_THREADS": "lots"}) == 1
    assert command_threads(None, {"OMP_NUM_THREADS": "0"}) == 1
    with pytest.raises(ConfigError, match="--threads = 0 is not allowed; expected an integer >= 1"):
        command_threads(0, {})


def test_set_threads_and_the_warning(monkeypatch):
    before = torch.get_num_threads()
    try:
        set_threads(2)
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(threads, "usable_cpus", lambda: 1)
        warning = thread_warning()
        assert warning is not None and "torch runs 2 threads but this process may use 1 CPU" in warning
        set_threads(1)
        assert thread_warning() is None
        with pytest.raises(ConfigError, match="threads = True is not allowed"):
            set_threads(True)
    finally:
        torch.set_num_threads(before)
