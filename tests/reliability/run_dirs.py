"""Helpers of the reliability tests: tiny runs, subprocess commands, and what a run directory holds, by content."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qlandscape.core import io

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def command(*args: str) -> list[str]:
    """The ``qlandscape`` command line run by this checkout's code."""
    return [sys.executable, "-m", "qlandscape.cli", *args]


def start(*args: str, **kwargs: Any) -> subprocess.Popen:
    """Start ``qlandscape ARGS`` in its own process group (so that a kill reaches every process it starts)."""
    return subprocess.Popen(
        command(*args),
        cwd=ROOT,
        env=ENV,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def copy_run(source: Path, parent: Path) -> Path:
    """A copy of a run directory (same name) under ``parent``."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(source, parent / source.name))


def _timeless(values: dict[str, Any]) -> dict[str, Any]:
    # wall-clock timings differ between two computations of one result
    return {k: v for k, v in values.items() if "seconds" not in k}


def snapshot(path: Path) -> dict[str, Any]:
    """What a run directory holds, by content: its scalar metrics, the files its manifest lists, every array of
    ``arrays.npz`` and of each result file, each result file's JSON, and the names of its figures (timings left
    out)."""
    info = io.read_json(path / "run.json")
    results: dict[str, Any] = {}
    for file in sorted((path / "results").glob("*")):
        results[file.name] = _timeless(io.read_json(file)) if file.suffix == ".json" else io.read_npz(file)
    return {
        "status": info["status"],
        "metrics": _timeless(info.get("metrics", {})),
        "manifest_files": {k: sorted(v.get("files", [])) for k, v in info.get("manifest", {}).items()},
        "arrays": io.read_npz(path / "arrays.npz"),
        "results": results,
        "figures": sorted(f.name for f in (path / "figures").glob("*")) if (path / "figures").exists() else [],
    }


def same(a: Any, b: Any) -> bool:
    """Equal, with arrays compared by value (exactly: the same computation gives the same bits)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def leftovers(path: Path) -> list[Path]:
    """Staging folders and temporary files anywhere below ``path``."""
    return sorted(p for p in path.rglob("*") if p.name.startswith(".txn-") or p.name.endswith(".tmp"))
