"""CPU threads: how many CPUs this process may really use, and how many threads torch runs its operations on.

Why this matters. torch sizes its intra-op thread pool (OpenMP) to the cores it sees (``os.cpu_count()`` and the
affinity mask), not to the CPU time the process may use. Two cases break that assumption:

* a container whose cgroup CPU quota (``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` in v1) is below the visible
  core count: 16 threads on a quota of 2 CPUs burn the quota in a fraction of each scheduling period, spinning at
  OpenMP barriers, and are then throttled for the rest of it;
* a machine shared with other busy processes: a parallel region waits for its slowest thread, and a thread that
  was descheduled holds up every small operation.

The work of this package is many small operations (state vectors of a few qubits, mini-batches of a few dozen
samples), where a second thread gains little even on an idle machine and costs a lot on a busy one. Measured on a
2-core machine shared with other processes (the demo config's training, 10 runs each): 1 thread 0.74 s median and
0.84 s at worst; torch's default of 2 threads 0.78 s median and 3.84 s at worst; with two busy processes beside it
0.98-3.8 s against 4.2-9.4 s. The ``qlandscape run`` of the demo config took 6.3-8.5 s with 1 thread against
12.6-16.6 s with torch's default (its training 0.1 s against 1.2-1.7 s).

The policy:

* the ``qlandscape`` command runs torch on one thread unless ``--threads N`` says otherwise (or ``OMP_NUM_THREADS``
  is set in its environment, which it then follows);
* sweep workers (local processes and Dask workers) run one thread each, and a sweep starts as many local workers
  as :func:`usable_cpus` (the affinity mask and the cgroup quota, not ``os.cpu_count()``);
* the library never changes the calling process's threads by itself: ``set_threads(1)`` applies the command's
  setting in a script or notebook, and :func:`thread_warning` says when torch runs more threads than the process
  may use (``execute_run`` logs it).

A large dense Hessian (thousands of parameters) or a CNN on full MNIST has operations big enough for several
threads to pay off: give those ``--threads N`` (at most :func:`usable_cpus`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from qlandscape.core.errors import ConfigError

__all__ = ["check_threads", "command_threads", "cpu_quota", "set_threads", "thread_warning", "usable_cpus"]

CLI_THREADS = 1  # the command's default: small operations run fastest on one thread (see the module docstring)
THREADS_ENV = "OMP_NUM_THREADS"  # when set, the command follows it instead of CLI_THREADS
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU time this process's cgroup may use, in CPUs (``1.5``: one and a half cores), or None when there is
    no quota or it cannot be read. The tightest quota on the way from the process's cgroup up to the root counts
    (cgroup v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: one unified hierarchy
            quotas += [_v2_quota(folder) for folder in _folders(root, path)]
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's hierarchy
            mount = root / controllers
            if not mount.is_dir():
                mount = root / "cpu"
            quotas += [_v1_quota(folder) for folder in _folders(mount, path)]
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _folders(mount: Path, path: str) -> list[Path]:
    """The cgroup folder of ``path`` under ``mount`` and every parent up to ``mount`` (a namespaced container sees
    its own cgroup as ``/``)."""
    folder = mount / path.strip("/")
    out = [folder]
    while folder != mount and mount in folder.parents:
        folder = folder.parent
        out.append(folder)
    return out


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may keep busy: the cores of its affinity mask, capped by its cgroup CPU quota
    (rounded up), at least 1."""
    try:
        visible = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks on this platform (macOS, Windows)
        visible = os.cpu_count() or 1
    quota = cpu_quota(root, proc_cgroup)
    if quota is not None:
        visible = min(visible, math.ceil(quota))
    return max(1, visible)


def command_threads(given: int | None, environ: dict[str, str] | None = None) -> int:
    """The torch threads of the ``qlandscape`` command: ``--threads`` when given, else ``OMP_NUM_THREADS`` when it
    is set to a positive integer, else :data:`CLI_THREADS`."""
    if given is not None:
        check_threads(given, "--threads")
        return given
    env = os.environ if environ is None else environ
    text = env.get(THREADS_ENV, "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    return CLI_THREADS


def check_threads(n: object, field: str = "threads") -> None:
    """A thread count is an integer >= 1; anything else raises :class:`ConfigError` naming it."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(field, n, "expected an integer >= 1 (torch CPU threads)")


def set_threads(n: int) -> None:
    """Run torch's CPU operations on ``n`` threads in this process (``torch.set_num_threads``). The command does
    this with ``--threads`` (default 1); a script calls it once at its start to get the same speed. torch's inter-op
    pool is left as it is: this package does not use it, and torch allows setting it only before its first use."""
    check_threads(n)
    torch.set_num_threads(n)


def thread_warning() -> str | None:
    """A sentence saying that torch runs more threads than this process may use, with the fix; None when it does
    not."""
    threads, usable = torch.get_num_threads(), usable_cpus()
    if threads <= usable:
        return None
    return (
        f"torch runs {threads} threads but this process may use {usable} CPU(s) (affinity and cgroup quota); "
        f"small operations then run many times slower: call qlandscape.core.threads.set_threads({usable}) "
        "(or 1), or give the command --threads"
    )
