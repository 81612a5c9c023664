"""The layout of a run directory ``OUT/<run id>``: ``run.json`` (config, versions, timings, scalar metrics, status),
``arrays.npz`` (trajectory, history, metric arrays), ``results/`` (metric result objects) and ``figures/``."""

from __future__ import annotations

from pathlib import Path

from qlandscape.core import io

RUN_FILE, ARRAYS_FILE = "run.json", "arrays.npz"
RESULTS_DIR, FIGURES_DIR = "results", "figures"


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a finished run."""
    try:
        return io.read_json(path / RUN_FILE).get("status") == "complete" and (path / ARRAYS_FILE).exists()
    except (OSError, ValueError):
        return False
