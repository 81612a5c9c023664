"""Earlier engines (loaded from git revisions) against the current one, interleaved in one process: forward and
forward+backward of sum(outputs) for hea circuits, B=64 samples, 4 patches, one thread. Prints a Markdown table.

    .venv/bin/python benchmarks/perf/before_after.py                      # first engine, end of session 1, now
    .venv/bin/python benchmarks/perf/before_after.py --revs 9768672       # any revisions of qlandscape/engine.py

A revision's engine.py is imported as a module of its own (its relative imports pointed at today's package), so
no frozen copy of an old engine lives in the tree. Revisions whose engine needs modules that no longer exist
cannot be loaded this way.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import argparse  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)

from qlandscape import engine  # noqa: E402
from qlandscape.circuits import build_circuit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REVS = {"59376f9": "first engine", "9768672": "end of session 1"}


def engine_at(rev: str):
    """Import qlandscape/engine.py as it was at ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:qlandscape/engine.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    for name in ("circuits", "errors", "lowering"):
        source = source.replace(f"from .{name} import", f"from qlandscape.{name} import")
    path = Path(tempfile.mkdtemp()) / f"engine_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"engine_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def best(fn, reps: int = 7) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revs", nargs="+", default=list(DEFAULT_REVS), help="git revisions to compare")
    args = parser.parse_args()
    engines = [(DEFAULT_REVS.get(rev, rev), engine_at(rev)) for rev in args.revs] + [("now", engine)]
    head = " | ".join(f"{label} fwd / fwd+bwd (ms)" for label, _ in engines)
    print(f"| qubits | layers | {head} | fwd+bwd speed-up vs first |")
    print("| --- | --- | " + " | ".join("---" for _ in engines) + " | --- |")
    for n, layers in [(4, 2), (4, 16), (6, 2), (8, 2), (10, 2), (12, 2)]:
        c = build_circuit("hea", n, layers)
        params = c.init_params((4,)).requires_grad_(True)
        feats = torch.rand(64, 4, c.n_features, dtype=torch.float64)
        cells, fbs = [], []
        for _, mod in engines:
            fwd = best(lambda: mod.simulate(c, params.detach(), feats))
            fb = best(lambda: mod.simulate(c, params, feats).sum().backward())
            cells.append(f"{fwd * 1e3:.2f} / {fb * 1e3:.2f}")
            fbs.append(fb)
        print(f"| {n} | {layers} | " + " | ".join(cells) + f" | {fbs[0] / fbs[-1]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
