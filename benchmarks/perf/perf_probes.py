"""Measurements that need a fresh process: peak memory of one forward+backward, and the engine with and
without its malloc setting (process-wide, so it cannot be undone in one process).

``run_perf.py`` calls :func:`memory_rows` and :func:`malloc_rows`; each starts this file as a subprocess:

    python perf_probes.py memory '{"qubits": 8, "patches": 4, "layers": 2, "batch": 64, "backend": "engine"}'
    python perf_probes.py malloc '{"qubits": 8, "patches": 4, "layers": 2, "batch": 64}'
"""

from __future__ import annotations

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
from perf_setup import loss_fns, make_model, synthetic, timed  # first: pins the threads
from perf_tables import fmt_row  # noqa: E402


def memory_rows(configs, backends):
    """Peak RSS increase of one forward+backward, each in a fresh subprocess."""
    rows = []
    for cfg in configs:
        for backend in backends:
            cmd = [sys.executable, __file__, "memory", json.dumps(dict(cfg, backend=backend))]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            try:
                mib = float(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                mib = float("nan")
            row = dict(
                section="memory",
                kind="peak RSS delta (MiB)",
                backend=backend,
                **cfg,
                median=mib,
                status="ok" if np.isfinite(mib) else "failed",
            )
            rows.append(row)
            print(fmt_row(row), flush=True)
    return rows


def malloc_rows(configs):
    """Engine forward+backward with malloc left alone (``QLANDSCAPE_MALLOC=system``) against the engine's own
    setting, each in a fresh subprocess: the setting is process-wide and cannot be undone."""
    rows = []
    for cfg in configs:
        times = {}
        for setting in ("system", "retain"):
            env = dict(os.environ, QLANDSCAPE_MALLOC=setting)
            cmd = [sys.executable, __file__, "malloc", json.dumps(cfg)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
            try:
                times[setting] = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                times[setting] = dict(median=None, min=None, page_faults=None)
            label = "engine (system malloc)" if setting == "system" else "engine"
            row = dict(
                section="malloc",
                kind="forward+backward",
                backend=label,
                **cfg,
                **times[setting],
                status="ok" if times[setting]["min"] else "failed",
            )
            rows.append(row)
            print(fmt_row(row), flush=True)
        if times["system"]["min"] and times["retain"]["min"]:
            rows[-2]["ratio_to_engine"] = times["system"]["min"] / times["retain"]["min"]
    return rows


def _malloc_probe(spec: str) -> None:
    import resource

    cfg = json.loads(spec)
    model = make_model(cfg["qubits"], cfg["patches"], cfg["layers"])
    x, y = synthetic(cfg["batch"], qubits=cfg["qubits"])
    _, fb = loss_fns(model, x, y)
    fb()  # first-call costs (plans, heap growth) are not what this measures
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    res = timed(fb)
    calls = res["reps"] + 1  # timed() warms up once more
    res["page_faults"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls
    print(json.dumps({k: res.get(k) for k in ("median", "min", "page_faults")}))


def _memory_probe(spec: str) -> None:
    cfg = json.loads(spec)
    backend = cfg.pop("backend")
    model = make_model(cfg["qubits"], cfg["patches"], cfg["layers"], backend)
    x, y = synthetic(cfg["batch"], qubits=cfg["qubits"])
    _, fb = loss_fns(model, x, y)
    fb()  # warm caches, then the peak of a second call
    # hand freed memory back to the OS first: malloc keeps it (qlandscape.sim.allocator, and glibc's own dynamic
    # thresholds), and a second call served from resident pages would show no increase at all
    import ctypes

    ctypes.CDLL(None).malloc_trim(0)
    # ru_maxrss survives fork+exec (it would report the parent's peak); VmHWM belongs to this address space and
    # can be reset through clear_refs, so it measures exactly the call below.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    fb()
    print((_status_kib("VmHWM") - before) / 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


if __name__ == "__main__":
    {"memory": _memory_probe, "malloc": _malloc_probe}[sys.argv[1]](sys.argv[2])
