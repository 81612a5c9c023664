"""Earlier engines (loaded from git revisions) against the current one, interleaved in one process: forward and
forward+backward of sum(outputs) for hea circuits, B=64 samples, 4 patches, one thread. Prints a Markdown table.

    .venv/bin/python benchmarks/perf/before_after.py                      # first engine, 9768672, 02aa3cd, now
    .venv/bin/python benchmarks/perf/before_after.py --revs 9768672       # any revisions of qlandscape/engine.py

A revision's whole package is exported from git to a temporary folder and imported under a name of its own, so
no frozen copy of an old engine lives in the tree.
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

from qlandscape.sim import engine  # noqa: E402
from qlandscape.sim.allocator import retain_freed_memory  # noqa: E402
from qlandscape.sim.circuits import build_circuit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REVS = {
    "59376f9": "59376f9 (first engine)",
    "9768672": "9768672 (grouped layers)",
    "02aa3cd": "02aa3cd (blocks)",
}


def engine_at(rev: str):
    """Import qlandscape/engine.py as it was at ``rev``, with the package's other modules of that revision: the
    whole package is exported to a temporary folder under the name ``qlandscape_<rev>``."""
    name = f"qlandscape_{rev}"
    root = Path(tempfile.mkdtemp())
    archive = subprocess.run(["git", "archive", rev, "qlandscape"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "qlandscape").rename(root / name)
    for path in (root / name).rglob("*.py"):  # absolute self-imports point at the exported copy
        text = path.read_text()
        path.write_text(
            text.replace("from qlandscape.", f"from {name}.").replace("import qlandscape.", f"import {name}.")
        )
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{name}.engine")


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
    retain_freed_memory()  # every revision under the same malloc setting (the current engine would set it)
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
