"""Performance suite: our torch engine against PennyLane (default.qubit broadcast / loop, lightning.qubit adjoint).

One command writes ``results.json`` and ``results.md`` next to this file (``--out`` to change):

    .venv/bin/python benchmarks/perf/run_perf.py            # full subset (~10 min on 2 shared cores)
    .venv/bin/python benchmarks/perf/run_perf.py --quick    # a few rows (~3 min)

Grid: by default not the full product. A base point (hea, 4 qubits, 4 patches, 2 layers, batch 64) and one axis
varied at a time: qubits {4, 6, 8, 10, 12}, patches {1, 4, 9, 16}, layers {1, 4, 16}, batch {64, 512}.
``--grid product`` times the circuit section on the full product (120 configs, written to ``results_product.*``;
points the suite's images cannot be cut into are rows marked ``not built``); ``--backends`` picks the backends. Every timing is the
median (and min) of repeated runs in this process with ``torch.set_num_threads(THREADS)``; every row carries the
ratio to our engine from the same run. A measurement whose estimate (from the previous, smaller size of the same
axis, scaled by the work ratio, or from one timed repetition) exceeds ``--max-seconds`` is skipped and marked
``skipped (est. ...)``. Peak memory: the peak RSS (``VmHWM`` of /proc/self/status, the quantity
``getrusage`` reports as ru_maxrss, reset through /proc/self/clear_refs) of one forward+backward in a fresh
subprocess, minus its RSS just before the call (tracemalloc does not see torch's allocations).
"""

from __future__ import annotations

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from perf_probes import malloc_rows, memory_rows  # noqa: E402

# perf_setup first: it pins the BLAS/OpenMP threads before torch loads
from perf_setup import (
    AXES,
    BASE,
    PATCH_ARGS,
    THREADS,
    available_backends,
    copy_bandwidth,
    digits,
    loss_fns,
    make_model,
    n_gates,
    once,
    synthetic,
    timed,
    work,
)
from perf_tables import add_ratios, fmt_row, markdown  # noqa: E402

from qlandscape.core.objective import Objective  # noqa: E402
from qlandscape.metrics.curvature.eigensolvers import matvecs_to_tolerance, power_iteration, top_eigenvalues  # noqa: E402
from qlandscape.metrics.curvature.structured import exact_hessian  # noqa: E402
from qlandscape.metrics.landscape.slices import slice_2d  # noqa: E402
from qlandscape.models.qnn import PatchQNN  # noqa: E402
from qlandscape.sim.allocator import retain_freed_memory  # noqa: E402
from qlandscape.train.trainer import TrainConfig, train  # noqa: E402

HERE = Path(__file__).resolve().parent
SECTIONS = ("circuit", "hessian", "demo", "memory", "malloc")


# --------------------------------------------------------------------------------------------- sections
def circuit_rows(configs, backends, max_seconds, bandwidth, checkpoint=lambda rows: None):
    """forward and forward+backward per backend and config, ratios to the engine, effective bandwidth.
    ``checkpoint(rows)`` runs after every config, so a killed run keeps what it measured."""
    rows, last = [], {}
    available = _available_bytes()
    for cfg in configs:
        x, y = synthetic(cfg["batch"], qubits=cfg["qubits"])
        w = work(**cfg)
        for backend in backends:
            try:
                model = make_model(cfg["qubits"], cfg["patches"], cfg["layers"], backend)
            except ValueError as err:  # a product-grid point the suite's images cannot be cut into
                row = dict(
                    section="circuit",
                    kind="forward+backward",
                    backend=backend,
                    **cfg,
                    median=None,
                    min=None,
                    status=f"not built: {err}",
                )
                rows.append(row)
                print(fmt_row(row), flush=True)
                continue
            fwd, fb = loss_fns(model, x, y)
            for kind, fn in (("forward", fwd), ("forward+backward", fb)):
                prev = last.get((backend, kind))
                est = None if prev is None else prev[0] * w / prev[1]
                need = peak_bytes(backend, kind, cfg, n_gates(model))
                if need > available / 2:  # the time estimate cannot see a run that would be killed for memory
                    res = {
                        "status": f"skipped (est. memory {need / 2**30:.0f} GiB > half of "
                        f"{available / 2**30:.0f} GiB available)",
                        "median": None,
                        "min": None,
                    }
                else:
                    res = timed(fn, max_seconds=max_seconds, estimate=est)
                if res["median"] is not None:
                    last[(backend, kind)] = (res["median"], w)
                row = dict(section="circuit", kind=kind, backend=backend, **cfg, n_params=model.n_params, **res)
                if backend == "engine" and kind == "forward" and res["min"]:
                    touched = 2 * 16 * 2 ** cfg["qubits"] * n_gates(model) * cfg["batch"] * cfg["patches"]
                    row["effective_bandwidth_GBs"] = touched / res["min"] / 1e9
                    row["fraction_of_copy_bandwidth"] = touched / res["min"] / bandwidth
                rows.append(row)
                print(fmt_row(row), flush=True)
        checkpoint(rows)
    add_ratios(rows, ("kind", "qubits", "patches", "layers", "batch"))
    return rows


def peak_bytes(backend: str, kind: str, cfg: dict, gates: int) -> float:
    """A generous estimate of one call's peak memory, from the bytes of one state of all its circuits:
    default.qubit's backward keeps a few per gate (3.6 GiB measured at 12 qubits, base point: 2.6 per gate),
    our engine's a few per layer, forward passes a few in all."""
    states = cfg["batch"] * cfg["patches"] * 2 ** cfg["qubits"] * 16
    if kind == "forward":
        return 4 * states
    if backend.startswith("dq"):
        return 3 * states * gates / (cfg["patches"] if backend == "dq-loop" else 1)
    return states * (2 * cfg["layers"] + 6)


def _available_bytes() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def hessian_rows(configs, max_seconds, with_shift: bool):
    """Exact Hessian, one HVP: engine (autograd, structured) vs default.qubit (autograd through the QNode)."""
    rows = []
    for cfg in configs:
        x, y = synthetic(cfg["batch"])
        eng = Objective(make_model(cfg["qubits"], cfg["patches"], cfg["layers"]), x, y)
        dq = Objective(make_model(cfg["qubits"], cfg["patches"], cfg["layers"], "dq-broadcast"), x, y)
        v = torch.randn(eng.n_params, dtype=torch.float64)
        cases = [
            ("hessian", "engine-autograd", lambda: eng.hessian(method="autograd")),
            ("hessian", "engine-structured", lambda: exact_hessian(eng, method="structured")),
            ("hvp", "engine", lambda: eng.hvp(None, v)),
        ]
        hvp_dq = timed(lambda: dq.hvp(None, v), reps=3, max_seconds=max_seconds)
        est_dq_h = None if hvp_dq["median"] is None else hvp_dq["median"] * eng.n_params / 2
        cases += [
            ("hessian", "dq-broadcast-autograd", (lambda: dq.hessian(method="autograd"), est_dq_h)),
            ("hvp", "dq-broadcast", hvp_dq),
        ]
        if with_shift:
            ps = Objective(
                make_model(cfg["qubits"], cfg["patches"], cfg["layers"], "dq-broadcast"),
                x,
                y,
                hessian_method="parameter-shift",
            )
            est_ps = 4 * eng.n_params**2 * cfg["batch"] * cfg["patches"] * 2e-4  # ~0.2 ms per circuit
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
            print(fmt_row(row), flush=True)
    add_ratios(rows, ("kind", "qubits", "patches", "layers", "batch"), reference=("engine-structured", "engine"))
    return rows


def demo_rows(max_seconds, quick: bool):
    """The README demo (digits 0 vs 1, 4 patches of 4x4, hea, 4 qubits, 2 layers) and the N = 4, 9, 16, 25 table."""
    x, y = digits()
    rows = []
    for n in (4, 9) if quick else (4, 9, 16, 25):
        model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=4, n_layers=2, seed=0, **PATCH_ARGS[n])
        eng = Objective(model, x, y)
        hv_eng = timed(lambda: eng.hvp(None, torch.ones(eng.n_params, dtype=torch.float64)), reps=3)
        res = {
            "engine-structured": timed(lambda: exact_hessian(eng, method="structured"), reps=3),
            "engine-autograd": timed(
                lambda: eng.hessian(method="autograd"),
                reps=3,
                max_seconds=max_seconds,
                estimate=hv_eng["median"] * eng.n_params / 4,
            ),
        }
        if not quick or n == 4:
            dq = Objective(model.with_backend("default.qubit"), x, y)
            hv = timed(lambda: dq.hvp(None, torch.ones(eng.n_params, dtype=torch.float64)), reps=1)
            res["dq-broadcast-autograd"] = timed(
                lambda: dq.hessian(method="autograd"),
                reps=1,
                max_seconds=max_seconds,
                estimate=hv["median"] * eng.n_params,
            )
        for backend, r in res.items():
            row = dict(
                section="demo-hessian",
                kind="hessian",
                backend=backend,
                patches=n,
                qubits=4,
                layers=2,
                batch=int(x.shape[0]),
                n_params=eng.n_params,
                **r,
            )
            rows.append(row)
            print(fmt_row(row), flush=True)
    add_ratios(rows, ("patches",), reference=("engine-structured",))
    rows += eigen_rows(x, y, quick)
    model = PatchQNN((8, 8), 2, ansatz="hea", n_qubits=4, n_layers=2, seed=0, **PATCH_ARGS[4])
    obj = Objective(model, x, y)
    # 51 x 51 landscape: batched Objective.losses vs a loop of single points (loop timed on 102 points, scaled)
    g = torch.Generator().manual_seed(0)
    d1, d2 = (torch.randn(obj.n_params, generator=g, dtype=torch.float64).numpy() for _ in range(2))
    grid = np.linspace(-1, 1, 51)
    slice_2d(obj, d1, d2, alphas=grid[:8], betas=grid[:8])  # warm-up (plans, constants, buffers), as for the loop
    batched = min(once(lambda: slice_2d(obj, d1, d2, alphas=grid, betas=grid)) for _ in range(3))
    points = torch.as_tensor(obj.theta0.numpy() + np.outer(np.linspace(-1, 1, 102), d1))
    obj.loss(points[0])
    loop = min(once(lambda: [obj.loss(p) for p in points]) for _ in range(3)) * 51 * 51 / 102
    loop_status = "estimated from 102 points; both min of 3 warm runs"
    for kind, t, status in (("grid-batched", batched, "ok"), ("grid-loop", loop, loop_status)):
        row = dict(
            section="landscape",
            kind=kind,
            backend="engine",
            patches=4,
            median=t,
            status=status,
            ratio_to_engine=t / batched,
        )
        rows.append(row)
        print(fmt_row(row), flush=True)
    return rows


def eigen_points(x2, y2, quick: bool):
    """(label, Objective) pairs: the demo model at init and trained, and a ten-class model (nine outlier
    eigenvalues of similar size, so a small top gap) at init and trained."""
    x10, y10 = digits(classes=tuple(range(10)))
    x10, y10 = x10[:300], y10[:300]
    points = []
    for label, (x, y, classes, n) in {"demo 2-class N=4": (x2, y2, 2, 4), "10-class N=9": (x10, y10, 10, 9)}.items():
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
        values = np.linalg.eigvalsh(exact_hessian(obj).numpy())
        exact = float(values[-1])
        gap = float(values[-2] / values[-1])
        found = {}
        for name, fn in (
            ("lanczos", lambda: top_eigenvalues(obj, k=1, tol=1e-6)),
            ("power", lambda: power_iteration(obj, tol=1e-6, max_iter=3000)),
            ("lanczos-history", lambda: top_eigenvalues(obj, k=1, tol=1e-13, max_iter=300)),
            ("power-history", lambda: power_iteration(obj, tol=1e-15, max_iter=3000)),
        ):
            t0 = time.perf_counter()
            res = fn()
            seconds = time.perf_counter() - t0
            found[name] = res
            row = dict(
                section="top-eigenvalue",
                kind=name,
                backend="engine",
                point=label,
                median=seconds,
                status="ok",
                hvps=int(res.n_matvecs),
                converged=bool(res.converged),
                exact=exact,
                lambda2_over_lambda1=gap,
                relative_error=abs(float(res.eigenvalues[-1]) - exact) / abs(exact),
            )
            if name.endswith("history"):
                row["hvps_to_1e-6"] = matvecs_to_tolerance(res, exact, 1e-6)
            rows.append(row)
            print(fmt_row(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (base point, 2 qubit counts)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip measurements estimated above this")
    parser.add_argument(
        "--max-seconds-demo",
        type=float,
        default=240.0,
        help="the same for the demo-model Hessians (the N >= 16 targets need default.qubit measured)",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json / results.md")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, among %(default)s")
    parser.add_argument(
        "--grid",
        choices=("axes", "product"),
        default="axes",
        help="circuit configs: the base point and one axis varied at a time (default), or the full "
        "product of the axes (120 configs; hours, sizes over --max-seconds skipped)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(available_backends()),
        help="comma-separated backends of the circuit section, among %(default)s",
    )
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "engine" not in backends or not set(backends) <= set(available_backends()):
        parser.error(f"--backends: {backends}; expected 'engine' and others among {available_backends()}")
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"--sections: unknown {sorted(sections - set(SECTIONS))}; expected among {SECTIONS}")
    # before any backend runs, so that PennyLane's baselines run under the same malloc setting as the engine
    retains = retain_freed_memory()
    bandwidth = copy_bandwidth()
    meta = dict(
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        threads=THREADS,
        torch=torch.__version__,
        copy_bandwidth_GBs=bandwidth / 1e9,
        quick=args.quick,
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        max_seconds=args.max_seconds,
        base=BASE,
        axes=AXES,
        grid=args.grid,
        malloc_retains_freed_memory=retains,
    )
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s, threads {THREADS}", flush=True)
    if args.quick:
        configs = [dict(BASE), dict(BASE, qubits=8)]
    elif args.grid == "product":
        configs = [dict(zip(AXES, values)) for values in itertools.product(*AXES.values())]
    else:
        configs = [dict(BASE)] + [
            dict(BASE, **{axis: v}) for axis, values in AXES.items() for v in values if v != BASE[axis]
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    name = "results_quick" if args.quick else "results_product" if args.grid == "product" else "results"
    rows: list[dict] = []

    def save(new_rows: list[dict]) -> None:  # after every section (and circuit config): a killed run keeps its rows
        for suffix, text in (
            (".json", json.dumps(dict(meta=meta, rows=rows + new_rows), indent=1, default=str)),
            (".md", markdown(rows + new_rows, meta)),
        ):
            tmp = args.out / f"{name}{suffix}.tmp"
            tmp.write_text(text)
            tmp.replace(args.out / f"{name}{suffix}")

    if "circuit" in sections:
        rows += circuit_rows(configs, backends, args.max_seconds, bandwidth, checkpoint=save)
        save([])
    if "hessian" in sections:
        h_cfgs = (
            [dict(BASE)]
            if args.quick
            else [
                dict(BASE, qubits=2, patches=1, layers=1, batch=8),
                dict(BASE),
                dict(BASE, qubits=8),
                dict(BASE, patches=16),
            ]
        )
        small = dict(BASE, qubits=2, patches=1, layers=1, batch=8)
        rows += hessian_rows([c for c in h_cfgs if c != small], args.max_seconds, with_shift=False)
        if not args.quick:
            rows += hessian_rows([small], args.max_seconds, with_shift=True)
        save([])
    if "demo" in sections:
        rows += demo_rows(args.max_seconds_demo, args.quick)
        save([])
    if "memory" in sections:
        mem_cfgs = [dict(BASE)] if args.quick else [dict(BASE, qubits=q) for q in (4, 8, 12)]
        rows += memory_rows(mem_cfgs, ["engine", "dq-broadcast"])
        save([])
    if "malloc" in sections:
        rows += malloc_rows([dict(BASE, qubits=8)] if args.quick else [dict(BASE, qubits=q) for q in (6, 8, 10)])
    save([])
    print(f"wrote {args.out / name}.json and .md")


if __name__ == "__main__":
    main()
