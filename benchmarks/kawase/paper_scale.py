"""The Kawase 2025 study at paper scale on this machine: per-1,000-image loss, gradient and HVP, one training
epoch at batch 1,000, and the top Hessian eigenvalue by Lanczos over the whole training set, with the previous
release's engine and PennyLane's default.qubit timed on subsets in the same run.

The model is the study's exact 4-patch one (14x14 images, 8x8 patches with stride 6, 8 qubits, the `kawase`
ansatz with L = 50, positional bias, readout x100: 10,308 parameters). MNIST cannot be downloaded here: random
14x14 images in [0, pi/4] stand in (the cost does not depend on the pixel values), or the MNIST IDX files with
--mnist DIR. One torch thread by default (--threads). Writes paper_scale.json (or --out) beside this file, after
every section.

    python benchmarks/kawase/paper_scale.py --quick                    # a few minutes: 2,000 images
    python benchmarks/kawase/paper_scale.py --baseline /path/to/0.1.0  # + the previous engine on a subset
    python benchmarks/kawase/paper_scale.py --n-images 60000 --baseline /work/baseline

Sections (each skippable): `per_1000` (one Objective over 1,000 images in one chunk: building the unitaries is
part of every call), `shared` (chunks of 1,000 over --shared-images images: the unitaries built once per call,
reported per 1,000 images), `epoch` (Adam at batch 1,000 over the training set, as the Trainer steps),
`eigen` (Lanczos, tol 1e-6, on --n-images images in chunks of 1,000), `baseline` (the previous release, imported
from --baseline PATH in a subprocess, and this engine on the same --baseline-images images, in chunks of
--baseline-chunk and in one chunk),
`default_qubit` (PennyLane's default.qubit HVP on --dq-images images in chunks of --dq-chunk, and this engine
on the same images), `rows` (the larger rows of --rows STRIDE:L,...: per-1,000-image costs measured, the
eigenvalue and the epoch estimated from them; the HVP count of Lanczos taken from --row-hvps).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qlandscape.core.data_parallel import DataParallelObjective
from qlandscape.core.objective import Objective
from qlandscape.core.operators import hessian_operator
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.models.qnn import PatchQNN

HERE = Path(__file__).resolve().parent
SECTIONS = ("per_1000", "shared", "epoch", "eigen", "baseline", "default_qubit", "rows")

# Run by the previous release's interpreter path: its Objective and PatchQNN time loss, gradient and HVP on the
# images and parameters of the .npz file given as argv[1], in chunks of argv[3] images, and print them as JSON.
BASELINE_SCRIPT = """
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[2]))
chunk = int(sys.argv[3])
from qlandscape.objective import Objective
from qlandscape.qnn import PatchQNN
data = np.load(sys.argv[1])
layers, stride = int(data["layers"]), int(data["stride"])
model = PatchQNN((14, 14), 10, ansatz="kawase", n_qubits=8, n_layers=layers, patch_size=8, stride=stride,
                 positional_bias=True, output_scale=100.0, seed=0)
x, y = torch.as_tensor(data["x"]), torch.as_tensor(data["y"])
obj = Objective(model, x, y, chunk_size=chunk)
theta, v = torch.as_tensor(data["theta"]), torch.as_tensor(data["v"])
assert obj.n_params == theta.numel(), (obj.n_params, theta.numel())
out = {}
for name, call in (("loss", lambda: obj.loss(theta)), ("grad", lambda: obj.grad(theta)),
                   ("hvp", lambda: obj.hvp(theta, v))):
    start = time.perf_counter()
    value = call()
    out[name + "_s"] = time.perf_counter() - start
    out[name + "_value"] = value.reshape(-1)[:8].tolist()
import resource
out["peak_rss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print("RESULT " + json.dumps(out))
"""


def kawase_factory(layers: int, stride: int) -> functools.partial[PatchQNN]:
    """A picklable builder of the study's model (what data-parallel workers receive)."""
    return functools.partial(
        PatchQNN,
        (14, 14),
        10,
        ansatz="kawase",
        n_qubits=8,
        n_layers=layers,
        patch_size=8,
        stride=stride,
        positional_bias=True,
        output_scale=100.0,
        seed=0,
    )


def kawase_model(layers: int, stride: int) -> PatchQNN:
    """The study's model: 14x14 inputs, 8x8 patches, 8 qubits, `kawase` ansatz, positional bias, readout x100."""
    return kawase_factory(layers, stride)()


def images(n: int, mnist: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``n`` images and labels: MNIST's training set pooled to 14x14 and scaled to [0, pi/4], or random ones."""
    if mnist is not None:
        from qlandscape.data.datasets import read_idx  # only with --mnist

        raw = read_idx(next(Path(mnist).glob("train-images*")))[:n].astype(np.float64)
        labels = read_idx(next(Path(mnist).glob("train-labels*")))[:n].astype(np.int64)
        pooled = raw.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0 * math.pi / 4
        return torch.as_tensor(pooled), torch.as_tensor(labels), f"MNIST {mnist}"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 14, 14, generator=g, dtype=torch.float64) * math.pi / 4
    return x, torch.randint(0, 10, (n,), generator=g), "random images in [0, pi/4]"


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_child_rss_mb() -> float:
    """The largest peak resident set size of any finished child process (the baseline, the eigenvalue's workers).
    An upper bound: Linux starts a forked child's count at its parent's resident size at the fork."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def high_water_mb(pid: int) -> float:
    """A live process's own peak resident set size (VmHWM), which a fork does not inherit."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def per_1000(model: PatchQNN, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> dict:
    """Loss, gradient and HVP of one Objective over 1,000 images in one chunk (the unitaries built per call)."""
    obj = Objective(model, x[:1000], y[:1000])
    obj.loss()  # plans and caches, off the clock
    out = {"images": int(min(1000, x.shape[0])), "route": "one chunk"}
    for name, call in (("loss", obj.loss), ("grad", obj.grad), ("hvp", lambda: obj.hvp(None, v))):
        _, out[name + "_s"] = timed(call)
        log(f"per 1,000 images, one chunk: {name} {out[name + '_s']:.2f} s")
    return out


def shared(model: PatchQNN, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, n: int) -> dict:
    """The same over ``n`` images in chunks of 1,000: the parameter work done once per call (shared_work)."""
    obj = Objective(model, x[:n], y[:n], chunk_size=1000)
    out = {"images": n, "chunk_size": 1000, "route": "shared work" if obj.shared_work() is not None else "per chunk"}
    for name, call in (("loss", obj.loss), ("grad", obj.grad), ("hvp", lambda: obj.hvp(None, v))):
        _, seconds = timed(call)
        out[name + "_s"] = seconds
        out[name + "_s_per_1000"] = seconds * 1000 / n
        log(f"{n:,} images in chunks of 1,000: {name} {seconds:.2f} s ({seconds * 1000 / n:.2f} s per 1,000)")
    return out


def epoch(model: PatchQNN, x: torch.Tensor, y: torch.Tensor, steps: int | None) -> dict:
    """Adam steps at batch 1,000 as the Trainer takes them (forward, cross-entropy, backward, step) on a copy."""
    trained = copy.deepcopy(model)
    optimizer = torch.optim.Adam(trained.parameters(), lr=0.01, weight_decay=5e-5)
    n_batches = x.shape[0] // 1000
    run = n_batches if steps is None else min(steps, n_batches)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    for step in range(run):
        idx = order[step * 1000 : (step + 1) * 1000]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(trained(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    per_step = seconds / max(1, run)
    log(f"training: {run} steps at batch 1,000 in {seconds:.1f} s ({per_step:.2f} s per step)")
    return {
        "steps_measured": run,
        "seconds": seconds,
        "seconds_per_step": per_step,
        "steps_per_epoch": n_batches,
        "epoch_seconds": per_step * n_batches,
        "epoch_measured": run == n_batches,
    }


def eigen(model: PatchQNN, x: torch.Tensor, y: torch.Tensor, workers: int, threads: int, factory) -> dict:
    """The top Hessian eigenvalue by Lanczos (tol 1e-6) over every image, in chunks of 1,000: in this process, or
    with ``workers`` > 1 split across that many local worker processes (``threads`` torch threads each)."""
    obj = Objective(model, x, y, chunk_size=1000)
    route = "shared work" if obj.shared_work() is not None else "per chunk"
    if workers > 1:
        start = time.perf_counter()
        parallel = DataParallelObjective.from_objective(obj, factory, workers=workers, threads=threads)
        startup = time.perf_counter() - start
        log(f"{workers} worker processes ready in {startup:.1f} s")
        try:
            result, seconds = timed(lambda: top_eigenvalues(parallel.hessian_operator(), 1, tol=1e-6))
            workers_peak = [high_water_mb(proc.pid) for proc in parallel._pool.procs]  # type: ignore[attr-defined]
        finally:
            parallel.close()
    else:
        startup, workers_peak = 0.0, []
        result, seconds = timed(lambda: top_eigenvalues(hessian_operator(obj), 1, tol=1e-6))
    log(f"Lanczos over {x.shape[0]:,} images: lambda_max {result.eigenvalues[-1]:.6g} in {seconds:.0f} s")
    return {
        "images": int(x.shape[0]),
        "workers": workers,
        "worker_startup_s": startup,
        "worker_peak_rss_mb": workers_peak,
        "seconds": seconds,
        "hvps": int(result.n_matvecs),
        "seconds_per_hvp": seconds / max(1, int(result.n_matvecs)),
        "lambda_max": float(result.eigenvalues[-1]),
        "residual": float(result.residual_norms[-1]),
        "converged": bool(result.converged),
        "route": route,
    }


def rows(
    grid: list[tuple[int, int]],
    x: torch.Tensor,
    y: torch.Tensor,
    workers: int,
    hvps: int,
    n_total: int,
    out: list[dict],
    save,
) -> list[dict]:
    """The study's larger rows: for each (stride, L), the loss, gradient and HVP over 1,000 images in one chunk and
    the HVP over 3,000 images in chunks of 1,000 (measured), split into the parameter point's fixed work and the
    per-chunk work; from those, one HVP and a ``hvps``-HVP Lanczos over ``n_total`` images on ``workers``
    processes, and a training epoch from two measured steps (estimated, labelled as such). Each row is appended
    to ``out`` and saved as it finishes."""
    for stride, layers in grid:
        model = kawase_model(layers, stride)
        n_params = sum(p.numel() for p in model.parameters())
        v = torch.randn(n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        row: dict = {"stride": stride, "patches": model.n_patches, "layers": layers, "n_params": n_params}
        one = Objective(model, x[:1000], y[:1000])
        one.loss()
        for name, call in (("loss", one.loss), ("grad", one.grad), ("hvp", lambda o=one, v=v: o.hvp(None, v))):
            _, row[name + "_1000_s"] = timed(call)
        three = Objective(model, x[:3000], y[:3000], chunk_size=1000)
        _, row["hvp_3000_s"] = timed(lambda o=three, v=v: o.hvp(None, v))
        per_chunk = max(0.0, (row["hvp_3000_s"] - row["hvp_1000_s"]) / 2)
        fixed = max(0.0, row["hvp_1000_s"] - per_chunk)
        row["hvp_fixed_s"], row["hvp_per_1000_s"] = fixed, per_chunk
        step = epoch(model, x[:2000], y[:2000], 2)["seconds_per_step"]
        row["train_step_s"] = step
        hvp_total = fixed + math.ceil(n_total / 1000 / workers) * per_chunk
        row["estimated"] = {
            "images": n_total,
            "workers": workers,
            "hvp_s": hvp_total,
            "lanczos_hvps": hvps,
            "eigenvalue_s": hvps * hvp_total,
            "epoch_s": step * n_total // 1000,
        }
        log(
            f"N = {model.n_patches}, L = {layers} ({n_params:,} parameters): HVP fixed {fixed:.1f} s + "
            f"{per_chunk:.2f} s per 1,000 images; training step {step:.2f} s; estimated eigenvalue over "
            f"{n_total:,} images on {workers} workers {hvps * hvp_total / 60:.0f} min, "
            f"epoch {step * n_total / 1000:.0f} s"
        )
        row["peak_rss_mb_so_far"] = peak_rss_mb()
        out.append(row)
        save()
    return out


def baseline(
    path: str,
    model: PatchQNN,
    stride: int,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    threads: int,
    chunk: int,
) -> dict:
    """The previous release's engine (imported from ``path`` in a subprocess) and this one on the same images
    and parameters, both in chunks of ``chunk`` images (the previous engine's HVP needs ~8 GB per 200 images in
    one chunk): the before/after ratios. This engine is also timed in one chunk of all the images."""
    theta = Objective(model, x[:1], y[:1]).theta0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "inputs.npz"
        np.savez(
            data,
            x=x.numpy(),
            y=y.numpy(),
            theta=theta.numpy(),
            v=v.numpy(),
            layers=model.circuit.n_layers,
            stride=stride,
        )
        env = dict(os.environ, PYTHONPATH=str(Path(path).resolve()))
        done = subprocess.run(
            [sys.executable, "-c", BASELINE_SCRIPT, str(data), str(threads), str(chunk)],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the baseline at {path} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    before = json.loads(lines[-1][len("RESULT ") :])
    log(f"previous engine on {x.shape[0]} images in chunks of {chunk}: {before}")
    out: dict = {"path": str(path), "images": int(x.shape[0]), "chunk_size": chunk, "before": before}
    for label, size in (("after_same_chunks", chunk), ("after_one_chunk", None)):
        obj = Objective(model, x, y, chunk_size=size)
        obj.loss()
        after: dict = {"route": "shared work" if obj.shared_work() is not None else "per chunk"}
        for name, call in (("loss", obj.loss), ("grad", obj.grad), ("hvp", lambda o=obj: o.hvp(None, v))):
            value, after[name + "_s"] = timed(call)
            agree = float(np.max(np.abs(np.asarray(before[name + "_value"]) - value.reshape(-1)[:8].numpy())))
            after[name + "_agrees_to"] = agree
        after["ratio"] = {name: before[name + "_s"] / after[name + "_s"] for name in ("loss", "grad", "hvp")}
        log(f"this engine, {label}: {after}")
        out[label] = after
    return out


def default_qubit(model: PatchQNN, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, chunk: int) -> dict:
    """PennyLane's default.qubit (backprop) HVP against this engine's on the same images: ours in one chunk,
    default.qubit in chunks of ``chunk`` images (its backprop graph of an 8-qubit, L = 50 circuit takes ~20 GB
    for 100 images at once)."""
    ours = Objective(model, x, y)
    ours.hvp(None, v)
    hv_ours, ours_s = timed(lambda: ours.hvp(None, v))
    theirs = Objective(model.with_backend("default.qubit"), x, y, chunk_size=chunk)
    hv_theirs, theirs_s = timed(lambda: theirs.hvp(None, v))
    agree = float((hv_ours - hv_theirs).abs().max())
    log(f"default.qubit HVP on {x.shape[0]} images: {theirs_s:.1f} s, ours {ours_s:.2f} s ({theirs_s / ours_s:.0f}x)")
    return {"images": int(x.shape[0]), "default_qubit_chunk": chunk, "default_qubit_s": theirs_s, "engine_s": ours_s,
            "ratio": theirs_s / ours_s, "max_difference": agree}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=60000, help="training-set size (the study: 60,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 2 training steps, small subsets")
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--stride", type=int, default=6, help="6, 3, 2: N = 4, 9, 16 patches")
    parser.add_argument("--shared-images", type=int, default=5000)
    parser.add_argument("--epoch-steps", type=int, default=None, help="measure this many steps of the epoch")
    parser.add_argument("--baseline", default=None, help="a checkout of the previous release (0.1.0)")
    parser.add_argument("--baseline-images", type=int, default=1000)
    parser.add_argument("--baseline-chunk", type=int, default=100, help="chunk size of the before/after comparison")
    parser.add_argument("--dq-images", type=int, default=100)
    parser.add_argument("--dq-chunk", type=int, default=5, help="default.qubit's chunk size (memory)")
    parser.add_argument("--rows", default="3:50,2:50,6:100,6:150,6:200,2:200", help="STRIDE:L pairs for `rows`")
    parser.add_argument("--row-hvps", type=int, default=13, help="Lanczos HVPs assumed by the rows' estimates")
    parser.add_argument("--mnist", default=None, help="a folder with MNIST's IDX files")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (per worker process with --workers)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for the eigenvalue's HVPs")
    parser.add_argument("--out", default=str(HERE / "paper_scale.json"))
    args = parser.parse_args()
    if args.quick:
        args.n_images = min(args.n_images, 2000)
        args.shared_images = min(args.shared_images, 2000)
        args.epoch_steps = 2 if args.epoch_steps is None else args.epoch_steps
        args.baseline_images = min(args.baseline_images, 50)
        args.baseline_chunk = min(args.baseline_chunk, 25)
        args.dq_images = min(args.dq_images, 4)
        args.rows = "3:50"
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; expected some of {SECTIONS}")
    torch.set_num_threads(args.threads)
    x, y, source = images(args.n_images, args.mnist)
    model = kawase_model(args.layers, args.stride)
    n_params = sum(p.numel() for p in model.parameters())
    v = torch.randn(n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    report: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, torch {torch.__version__}",
        "threads": args.threads,
        "data": source,
        "model": {"layers": args.layers, "stride": args.stride, "patches": model.n_patches, "n_params": n_params},
        "n_images": args.n_images,
        "quick": args.quick,
    }
    path = Path(args.out)

    def save() -> None:
        report["peak_rss_mb"] = peak_rss_mb()
        report["peak_child_rss_mb"] = peak_child_rss_mb()
        path.write_text(json.dumps(report, indent=2) + "\n")

    log(f"model: {n_params:,} parameters, {model.n_patches} patches, L = {args.layers}; {args.n_images:,} images")
    if "per_1000" in sections:
        report["per_1000"] = per_1000(model, x, y, v)
        save()
    if "shared" in sections and args.shared_images >= 2000:
        report["shared"] = shared(model, x, y, v, min(args.shared_images, args.n_images))
        save()
    if "baseline" in sections and args.baseline:
        n = args.baseline_images
        report["baseline"] = baseline(
            args.baseline, model, args.stride, x[:n], y[:n], v, args.threads, args.baseline_chunk
        )
        save()
    if "default_qubit" in sections and args.dq_images > 0:
        n = args.dq_images
        report["default_qubit"] = default_qubit(model, x[:n], y[:n], v, args.dq_chunk)
        save()
    if "epoch" in sections:
        report["epoch"] = epoch(model, x, y, args.epoch_steps)
        save()
    if "eigen" in sections:
        factory = kawase_factory(args.layers, args.stride)
        report["eigen"] = eigen(model, x, y, args.workers, args.threads, factory)
        save()
    if "rows" in sections:
        grid = [(int(a), int(b)) for a, b in (pair.split(":") for pair in args.rows.split(",") if pair)]
        report["rows"] = []
        rows(grid, x, y, max(1, args.workers), args.row_hvps, args.n_images, report["rows"], save)
    save()
    log(f"peak RSS {report['peak_rss_mb']:.0f} MB; written to {path}")


if __name__ == "__main__":
    main()
