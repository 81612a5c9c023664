"""Performance suite: our torch engine against PennyLane (default.qubit broadcast / loop, lightning.qubit adjoint).

One command writes ``results.json`` and ``results.md`` next to this file (``--out`` to change):

    .venv/bin/python benchmarks/perf/run_perf.py            # full subset (~40 min on 2 shared cores)
    .venv/bin/python benchmarks/perf/run_perf.py --quick    # a few rows (~3 min)

Grid: not the full product. A base point (hea, 4 qubits, 4 patches, 2 layers, batch 64) and one axis varied at a
time: qubits {4, 6, 8, 10, 12}, patches {1, 4, 9, 16}, layers {1, 4, 16}, batch {64, 512}. Every timing is the
median (and min) of repeated runs in this process with ``torch.set_num_threads(THREADS)``; every row carries the
ratio to our engine from the same run. A measurement whose estimate (from the previous, smaller size of the same
axis, scaled by the work ratio, or from one timed repetition) exceeds ``--max-seconds`` is skipped and marked
``skipped (est. ...)``. Peak memory: the peak RSS (``VmHWM`` of /proc/self/status, the quantity
``getrusage`` reports as ru_maxrss, reset through /proc/self/clear_refs) of one forward+backward in a fresh
subprocess, minus its RSS just before the call (tracemalloc does not see torch's allocations).
"""
from __future__ import annotations

import os

THREADS = 1
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)
warnings.filterwarnings("ignore")

from qlandscape.allocator import retain_freed_memory  # noqa: E402
from qlandscape.data import load_dataset, to_torch  # noqa: E402
from qlandscape.hessian import matvecs_to_tolerance, power_iteration, top_eigenvalues  # noqa: E402
from qlandscape.landscape import slice_2d  # noqa: E402
from qlandscape.objective import Objective  # noqa: E402
from qlandscape.qnn import PatchQNN  # noqa: E402
from qlandscape.train import TrainConfig, train  # noqa: E402

HERE = Path(__file__).resolve().parent
BACKENDS = {  # label -> (device, mode, diff_method)
    "engine": ("torch", "broadcast", "best"),
    "dq-broadcast": ("default.qubit", "broadcast", "best"),
    "dq-loop": ("default.qubit", "loop", "best"),
    "lightning-adjoint": ("lightning.qubit", "broadcast", "adjoint"),
    "engine-cuda": ("torch", "broadcast", "best"),  # only where torch sees a GPU (ratios: CPU engine / this)
}
BASE = dict(qubits=4, patches=4, layers=2, batch=64)
AXES = dict(qubits=(4, 6, 8, 10, 12), patches=(1, 4, 9, 16), layers=(1, 4, 16), batch=(64, 512))
PATCH_ARGS = {1: dict(patch_size=8), 4: dict(patch_size=4, stride=4), 9: dict(patch_size=4, stride=2),
              16: dict(patch_size=2, stride=2), 25: dict(patch_size=4, stride=1)}


# --------------------------------------------------------------------------------------------- timing
MIN_SECONDS = 1.0  # fast calls repeat for at least this long (up to MAX_REPS): a min over 5 runs of a 1 ms call
MAX_REPS = 200     # is at the mercy of one noisy neighbour


def timed(fn, *, reps: int = 5, budget: float = 3.0, max_seconds: float = 60.0, estimate: float | None = None):
    """Median/min seconds of ``fn()`` after one warm-up: at least ``reps`` runs (3 when they exceed ``budget``)
    and at least MIN_SECONDS of them (at most MAX_REPS); skipped when the estimate or the warm-up is too long."""
    if estimate is not None and estimate > max_seconds:
        return {"status": f"skipped (est. {estimate:.0f} s > {max_seconds:.0f} s)", "median": None, "min": None,
                "estimate": estimate}
    t0 = time.perf_counter()
    out = fn()  # warm-up (QNode construction, caches): not counted unless it is all we can afford
    first = time.perf_counter() - t0
    times = [first]
    if first < max_seconds / 3:
        times = []
        while (not times or (len(times) < reps and (sum(times) < budget or len(times) < 3))
               or (sum(times) < MIN_SECONDS and len(times) < MAX_REPS)):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
    return {"status": "ok", "median": statistics.median(times), "min": min(times), "reps": len(times),
            "value": out if isinstance(out, (int, float)) else None}


def copy_bandwidth() -> float:
    """Bytes per second of a large tensor copy (read + write counted), best of 5."""
    src = torch.ones(32 * 2 ** 20, dtype=torch.float64)  # 256 MiB
    dst = torch.empty_like(src)
    best = min(_once(lambda: dst.copy_(src)) for _ in range(5))
    return 2 * src.numel() * 8 / best


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- models
def make_model(qubits: int, patches: int, layers: int, backend: str = "engine") -> PatchQNN:
    device, mode, diff = BACKENDS[backend]
    if qubits == 10:  # 10 features average-pool as 2 x 5: 8x10 images cut into four 4x5 patches
        model = PatchQNN((8, 10), 2, ansatz="hea", n_qubits=10, n_layers=layers, seed=0, patch_size=(4, 5))
    else:
        model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=qubits, n_layers=layers, seed=0,
                         **PATCH_ARGS[patches])
    if backend == "engine-cuda":
        from qlandscape.backends import make_backend

        model = model.with_backend(make_backend(device, device="cuda"))
    elif backend != "engine":
        from qlandscape.backends import make_backend

        model = model.with_backend(make_backend(device, mode=mode, diff_method=diff))
    return model


def available_backends() -> list[str]:
    """The suite's backends, the CUDA engine only where torch sees a GPU."""
    return [b for b in BACKENDS if b != "engine-cuda" or torch.cuda.is_available()]


def synthetic(batch: int, seed: int = 0, qubits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = 10 if qubits == 10 else 8
    return torch.rand(batch, 8, width, generator=g, dtype=torch.float64) * np.pi, torch.arange(batch) % 2


def digits(classes=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _, _ = to_torch(load_dataset("digits", classes=list(classes)))
    return x, y


def loss_fns(model: PatchQNN, x: torch.Tensor, y: torch.Tensor):
    def forward() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))

    def forward_backward() -> float:
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return float(loss)

    return forward, forward_backward


def work(qubits: int, patches: int, layers: int, batch: int) -> float:
    """Relative cost of one forward pass: circuits x amplitudes x depth."""
    return batch * patches * 2 ** qubits * (layers + 1) * qubits


def n_gates(model: PatchQNN) -> int:
    return len(model.circuit.gates)


# --------------------------------------------------------------------------------------------- sections
def circuit_rows(configs, backends, max_seconds, bandwidth):
    """forward and forward+backward per backend and config, ratios to the engine, effective bandwidth."""
    rows, last = [], {}
    for cfg in configs:
        x, y = synthetic(cfg["batch"], qubits=cfg["qubits"])
        w = work(**cfg)
        for backend in backends:
            model = make_model(cfg["qubits"], cfg["patches"], cfg["layers"], backend)
            fwd, fb = loss_fns(model, x, y)
            for kind, fn in (("forward", fwd), ("forward+backward", fb)):
                prev = last.get((backend, kind))
                est = None if prev is None else prev[0] * w / prev[1]
                res = timed(fn, max_seconds=max_seconds, estimate=est)
                if res["median"] is not None:
                    last[(backend, kind)] = (res["median"], w)
                row = dict(section="circuit", kind=kind, backend=backend, **cfg, n_params=model.n_params, **res)
                if backend == "engine" and kind == "forward" and res["min"]:
                    touched = 2 * 16 * 2 ** cfg["qubits"] * n_gates(model) * cfg["batch"] * cfg["patches"]
                    row["effective_bandwidth_GBs"] = touched / res["min"] / 1e9
                    row["fraction_of_copy_bandwidth"] = touched / res["min"] / bandwidth
                rows.append(row)
                print(_fmt(row), flush=True)
    _add_ratios(rows, ("kind", "qubits", "patches", "layers", "batch"))
    return rows


def hessian_rows(configs, max_seconds, with_shift: bool):
    """Exact Hessian, one HVP: engine (autograd, structured) vs default.qubit (autograd through the QNode)."""
    rows = []
    for cfg in configs:
        x, y = synthetic(cfg["batch"])
        eng = Objective(make_model(cfg["qubits"], cfg["patches"], cfg["layers"]), x, y)
        dq = Objective(make_model(cfg["qubits"], cfg["patches"], cfg["layers"], "dq-broadcast"), x, y)
        v = torch.randn(eng.n_params, dtype=torch.float64)
        cases = [("hessian", "engine-autograd", lambda: eng.hessian(method="autograd")),
                 ("hessian", "engine-structured", lambda: eng.hessian(method="structured")),
                 ("hvp", "engine", lambda: eng.hvp(None, v))]
        hvp_dq = timed(lambda: dq.hvp(None, v), reps=3, max_seconds=max_seconds)
        est_dq_h = None if hvp_dq["median"] is None else hvp_dq["median"] * eng.n_params / 2
        cases += [("hessian", "dq-broadcast-autograd", (lambda: dq.hessian(method="autograd"), est_dq_h)),
                  ("hvp", "dq-broadcast", hvp_dq)]
        if with_shift:
            ps = Objective(make_model(cfg["qubits"], cfg["patches"], cfg["layers"], "dq-broadcast"), x, y,
                           hessian_method="parameter-shift")
            est_ps = 4 * eng.n_params ** 2 * cfg["batch"] * cfg["patches"] * 2e-4  # ~0.2 ms per circuit
            cases.append(("hessian", "dq-parameter-shift", (lambda: ps.hessian(method="autograd"), est_ps)))
        for kind, backend, spec in cases:
            if isinstance(spec, dict):
                res = spec
            elif isinstance(spec, tuple):
                res = timed(spec[0], reps=3, max_seconds=max_seconds, estimate=spec[1])
            else:
                res = timed(spec, reps=5, max_seconds=max_seconds)
            row = dict(section="hessian", kind=kind, backend=backend, **cfg, n_params=eng.n_params, **res)
            rows.append(row)
            print(_fmt(row), flush=True)
    _add_ratios(rows, ("kind", "qubits", "patches", "layers", "batch"), reference=("engine-structured", "engine"))
    return rows


def demo_rows(max_seconds, quick: bool):
    """The README demo (digits 0 vs 1, 4 patches of 4x4, hea, 4 qubits, 2 layers) and the N = 4, 9, 16, 25 table."""
    x, y = digits()
    rows = []
    for n in ((4, 9) if quick else (4, 9, 16, 25)):
        model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=4, n_layers=2, seed=0, **PATCH_ARGS[n])
        eng = Objective(model, x, y)
        hv_eng = timed(lambda: eng.hvp(None, torch.ones(eng.n_params, dtype=torch.float64)), reps=3)
        res = {"engine-structured": timed(lambda: eng.hessian(method="structured"), reps=3),
               "engine-autograd": timed(lambda: eng.hessian(method="autograd"), reps=3, max_seconds=max_seconds,
                                        estimate=hv_eng["median"] * eng.n_params / 4)}
        if not quick or n == 4:
            dq = Objective(model.with_backend("default.qubit"), x, y)
            hv = timed(lambda: dq.hvp(None, torch.ones(eng.n_params, dtype=torch.float64)), reps=1)
            res["dq-broadcast-autograd"] = timed(lambda: dq.hessian(method="autograd"), reps=1,
                                                 max_seconds=max_seconds, estimate=hv["median"] * eng.n_params)
        for backend, r in res.items():
            row = dict(section="demo-hessian", kind="hessian", backend=backend, patches=n, qubits=4, layers=2,
                       batch=int(x.shape[0]), n_params=eng.n_params, **r)
            rows.append(row)
            print(_fmt(row), flush=True)
    _add_ratios(rows, ("patches",), reference=("engine-structured",))
    rows += eigen_rows(x, y, quick)
    model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=4, n_layers=2, seed=0, **PATCH_ARGS[4])
    obj = Objective(model, x, y)
    # 51 x 51 landscape: batched Objective.losses vs a loop of single points (loop timed on 102 points, scaled)
    g = torch.Generator().manual_seed(0)
    d1, d2 = (torch.randn(obj.n_params, generator=g, dtype=torch.float64).numpy() for _ in range(2))
    grid = np.linspace(-1, 1, 51)
    slice_2d(obj, d1, d2, alphas=grid[:8], betas=grid[:8])  # warm-up (plans, constants, buffers), as for the loop
    batched = min(_once(lambda: slice_2d(obj, d1, d2, alphas=grid, betas=grid)) for _ in range(3))
    points = torch.as_tensor(obj.theta0.numpy() + np.outer(np.linspace(-1, 1, 102), d1))
    obj.loss(points[0])
    loop = min(_once(lambda: [obj.loss(p) for p in points]) for _ in range(3)) * 51 * 51 / 102
    for kind, t, status in (("grid-batched", batched, "ok"), ("grid-loop", loop, "estimated from 102 points; both min of 3 warm runs")):
        row = dict(section="landscape", kind=kind, backend="engine", patches=4, median=t, status=status,
                   ratio_to_engine=t / batched)
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


def eigen_points(x2, y2, quick: bool):
    """(label, Objective) pairs: the demo model at init and trained, and a ten-class model (nine outlier
    eigenvalues of similar size, so a small top gap) at init and trained."""
    x10, y10 = digits(classes=tuple(range(10)))
    x10, y10 = x10[:300], y10[:300]
    points = []
    for label, (x, y, classes, n) in {"demo 2-class N=4": (x2, y2, 2, 4),
                                       "10-class N=9": (x10, y10, 10, 9)}.items():
        head = dict(aggregation="linear") if classes > 4 else {}  # the mean rule reads at most 4 Z outputs here
        model = PatchQNN((8, 8), classes, ansatz="hea", n_qubits=4, n_layers=2, seed=0, **head, **PATCH_ARGS[n])
        points.append((f"{label}, init", Objective(model, x, y)))
        if not quick:
            trained, _ = train(model, x, y, config=TrainConfig(epochs=5, lr=0.05, batch_size=32, seed=0))
            points.append((f"{label}, trained", Objective(trained, x, y)))
    return points


def eigen_rows(x, y, quick: bool):
    """Top eigenvalue to relative accuracy 1e-6 against the dense value: HVPs by each method's own stopping
    rule, and by its history (the first HVP after which the estimate stays within 1e-6)."""
    rows = []
    for label, obj in eigen_points(x, y, quick):
        values = np.linalg.eigvalsh(obj.hessian().numpy())
        exact = float(values[-1])
        gap = float(values[-2] / values[-1])
        found = {}
        for name, fn in (("lanczos", lambda: top_eigenvalues(obj, k=1, tol=1e-6)),
                         ("power", lambda: power_iteration(obj, tol=1e-6, max_iter=3000)),
                         ("lanczos-history", lambda: top_eigenvalues(obj, k=1, tol=1e-13, max_iter=300)),
                         ("power-history", lambda: power_iteration(obj, tol=1e-15, max_iter=3000))):
            t0 = time.perf_counter()
            res = fn()
            seconds = time.perf_counter() - t0
            found[name] = res
            row = dict(section="top-eigenvalue", kind=name, backend="engine", point=label, median=seconds,
                       status="ok", hvps=int(res.n_matvecs), converged=bool(res.converged), exact=exact,
                       lambda2_over_lambda1=gap,
                       relative_error=abs(float(res.eigenvalues[-1]) - exact) / abs(exact))
            if name.endswith("history"):
                row["hvps_to_1e-6"] = matvecs_to_tolerance(res, exact, 1e-6)
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def memory_rows(configs, backends):
    """Peak RSS increase of one forward+backward, each in a fresh subprocess."""
    rows = []
    for cfg in configs:
        for backend in backends:
            cmd = [sys.executable, __file__, "--memory-probe", json.dumps(dict(cfg, backend=backend))]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            try:
                mib = float(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                mib = float("nan")
            row = dict(section="memory", kind="peak RSS delta (MiB)", backend=backend, **cfg, median=mib,
                       status="ok" if np.isfinite(mib) else "failed")
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def malloc_rows(configs):
    """Engine forward+backward with malloc left alone (``QLANDSCAPE_MALLOC=system``) against the engine's own
    setting, each in a fresh subprocess: the setting is process-wide and cannot be undone."""
    rows = []
    for cfg in configs:
        times = {}
        for setting in ("system", "retain"):
            env = dict(os.environ, QLANDSCAPE_MALLOC=setting)
            cmd = [sys.executable, __file__, "--malloc-probe", json.dumps(cfg)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
            try:
                times[setting] = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                times[setting] = dict(median=None, min=None, page_faults=None)
            label = "engine (system malloc)" if setting == "system" else "engine"
            row = dict(section="malloc", kind="forward+backward", backend=label, **cfg, **times[setting],
                       status="ok" if times[setting]["min"] else "failed")
            rows.append(row)
            print(_fmt(row), flush=True)
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
    # hand freed memory back to the OS first: malloc keeps it (qlandscape.allocator, and glibc's own dynamic
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


# --------------------------------------------------------------------------------------------- output
def _add_ratios(rows, keys, reference=("engine",)):
    """ratio_to_engine = time / time of the first reference backend with the same kind and config."""
    for row in rows:
        ref = next((r for name in reference for r in rows if r.get("backend") == name
                    and r.get("kind") == row.get("kind") and all(r.get(k) == row.get(k) for k in keys)
                    and r.get("median")), None)
        if ref is not None and row.get("median"):
            # min over repeats: the least disturbed run, as other jobs share the cores
            row["ratio_to_engine"] = (row.get("min") or row["median"]) / (ref.get("min") or ref["median"])


def _fmt(row) -> str:
    t = row.get("median")
    shown = f"{t * 1e3:10.2f} ms" if isinstance(t, float) and row["section"] != "memory" else f"{t}"
    extra = {k: row[k] for k in ("point", "hvps", "hvps_to_1e-6", "relative_error", "lambda2_over_lambda1",
                                 "effective_bandwidth_GBs", "page_faults") if k in row}
    cfg = {k: row[k] for k in ("qubits", "patches", "layers", "batch") if k in row}
    return f"[{row['section']}] {row['kind']:<18} {row['backend']:<22} {cfg} {shown} {row['status']} {extra}"


def markdown(rows, meta) -> str:
    lines = [f"Machine: {meta['machine']}; torch {meta['torch']}, threads={meta['threads']}, float64/complex128; "
             f"copy bandwidth {meta['copy_bandwidth_GBs']:.1f} GB/s. Times in ms; ratios use the min over repeats.", ""]
    if meta.get("note"):
        lines[-1:-1] = ["", meta["note"]]
    lines += ["| section | kind | backend | q | N | L | B | median (ms) | min (ms) | x engine | notes |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        t = r.get("median")
        if r["section"] == "memory":
            shown = (f"{t:.1f} MiB" if isinstance(t, float) and np.isfinite(t) else "-") + " | "
        else:
            shown = f"{t * 1e3:.2f}" if isinstance(t, float) else "-"
            low = r.get("min")
            shown += f" | {low * 1e3:.2f}" if isinstance(low, float) else " | -"
        ratio = f"{r['ratio_to_engine']:.1f}" if "ratio_to_engine" in r else ""
        notes = [] if r["status"] == "ok" else [r["status"]]
        for key, label in (("point", "at"), ("hvps", "HVPs"), ("hvps_to_1e-6", "HVPs to 1e-6"),
                           ("relative_error", "rel.err"), ("lambda2_over_lambda1", "λ2/λ1"),
                           ("effective_bandwidth_GBs", "GB/s"), ("fraction_of_copy_bandwidth", "of copy bw")):
            if key in r:
                val = r[key]
                notes.append(f"{label} {val:.3g}" if isinstance(val, float) else f"{label} {val}")
        lines.append(f"| {r['section']} | {r['kind']} | {r['backend']} | {r.get('qubits', '')} | "
                     f"{r.get('patches', '')} | {r.get('layers', '')} | {r.get('batch', '')} | {shown} | {ratio} | "
                     f"{'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (base point, 2 qubit counts)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip measurements estimated above this")
    parser.add_argument("--max-seconds-demo", type=float, default=240.0,
                        help="the same for the demo-model Hessians (the N >= 16 targets need default.qubit measured)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json / results.md")
    parser.add_argument("--sections", default="circuit,hessian,demo,memory,malloc")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--malloc-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        _memory_probe(args.memory_probe)
        return
    if args.malloc_probe:
        _malloc_probe(args.malloc_probe)
        return
    # before any backend runs, so that PennyLane's baselines run under the same malloc setting as the engine
    retains = retain_freed_memory()
    sections = set(args.sections.split(","))
    bandwidth = copy_bandwidth()
    meta = dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", threads=THREADS,
                torch=torch.__version__, copy_bandwidth_GBs=bandwidth / 1e9, quick=args.quick,
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                max_seconds=args.max_seconds, base=BASE, axes=AXES, malloc_retains_freed_memory=retains)
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, threads {THREADS}", flush=True)
    if args.quick:
        configs = [dict(BASE), dict(BASE, qubits=8)]
    else:
        configs = [dict(BASE)] + [dict(BASE, **{axis: v}) for axis, values in AXES.items() for v in values
                                  if v != BASE[axis]]
    rows = []
    if "circuit" in sections:
        rows += circuit_rows(configs, available_backends(), args.max_seconds, bandwidth)
    if "hessian" in sections:
        h_cfgs = [dict(BASE)] if args.quick else [dict(BASE, qubits=2, patches=1, layers=1, batch=8), dict(BASE),
                                                  dict(BASE, qubits=8), dict(BASE, patches=16)]
        small = dict(BASE, qubits=2, patches=1, layers=1, batch=8)
        rows += hessian_rows([c for c in h_cfgs if c != small], args.max_seconds, with_shift=False)
        if not args.quick:
            rows += hessian_rows([small], args.max_seconds, with_shift=True)
    if "demo" in sections:
        rows += demo_rows(args.max_seconds_demo, args.quick)
    if "memory" in sections:
        mem_cfgs = [dict(BASE)] if args.quick else [dict(BASE, qubits=q) for q in (4, 8, 12)]
        rows += memory_rows(mem_cfgs, ["engine", "dq-broadcast"])
    if "malloc" in sections:
        rows += malloc_rows([dict(BASE, qubits=8)] if args.quick else [dict(BASE, qubits=q) for q in (6, 8, 10)])
    args.out.mkdir(parents=True, exist_ok=True)
    name = "results_quick" if args.quick else "results"
    (args.out / f"{name}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1, default=str))
    (args.out / f"{name}.md").write_text(markdown(rows, meta))
    print(f"wrote {args.out / name}.json and .md")


if __name__ == "__main__":
    main()
