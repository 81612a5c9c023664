"""Old engine (engine_before.py) vs the current one, interleaved in one process: forward and forward+backward of
sum(outputs) for hea circuits, B=64 samples, 4 patches, 2 layers, one thread. Prints a Markdown table.

    .venv/bin/python benchmarks/perf/before_after.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_before  # noqa: E402

from qlandscape import engine  # noqa: E402
from qlandscape.circuits import build_circuit  # noqa: E402


def best(fn, reps: int = 7) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    print("| qubits | patches | layers | old fwd (ms) | new fwd (ms) | old fwd+bwd (ms) | new fwd+bwd (ms) | speed-up fwd+bwd |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, p, layers in [(4, 4, 2), (4, 16, 16), (6, 4, 2), (8, 4, 2), (10, 4, 2), (12, 4, 2)]:
        c = build_circuit("hea", n, layers)
        params = c.init_params((p,)).requires_grad_(True)
        feats = torch.rand(64, p, c.n_features, dtype=torch.float64)
        row = []
        for kind in ("fwd", "fb"):
            for mod in (engine_before, engine):
                if kind == "fwd":
                    row.append(best(lambda: mod.simulate(c, params.detach(), feats)))
                else:
                    row.append(best(lambda: mod.simulate(c, params, feats).sum().backward()))
        print(f"| {n} | {p} | {layers} | " + " | ".join(f"{t * 1e3:.2f}" for t in row) + f" | {row[2] / row[3]:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
