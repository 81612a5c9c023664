"""Runs: run configs, run directories, the registry of run metrics, sweeps and the report over runs.

The names below are the package's face (``from qlandscape.runs import execute_run, load_run``). They load on first
use, so that importing one module of this package (``qlandscape.runs.config``, say) does not import them all.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    **dict.fromkeys(
        ("execute_run", "load_run", "run_metric", "LoadedRun", "set_flat_parameters", "versions"), "qlandscape.runs.run"
    ),
    **dict.fromkeys(("is_complete", "RUN_FILE", "ARRAYS_FILE"), "qlandscape.runs.layout"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'qlandscape.runs' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
