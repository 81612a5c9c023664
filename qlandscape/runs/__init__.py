"""Runs: run configs, run directories, the registry of run metrics, sweeps and the report over runs.

In qlandscape 0.1 ``qlandscape.runs`` was the module of run directories; its names still resolve here, with a
``DeprecationWarning`` naming their module now (:mod:`qlandscape.runs.run` or :mod:`qlandscape.runs.layout`).
They are imported by name when used, so that importing a module of this package does not import them all.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = {
    **dict.fromkeys(("execute_run", "load_run", "LoadedRun", "set_flat_parameters", "versions"), "qlandscape.runs.run"),
    **dict.fromkeys(("is_complete", "RUN_FILE", "ARRAYS_FILE"), "qlandscape.runs.layout"),
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'qlandscape.runs' has no attribute {name!r}")
    warnings.warn(
        f"qlandscape.runs.{name} is deprecated since qlandscape 0.2 and will be removed in 0.3; import it from "
        f"{_MOVED[name]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(_MOVED[name]), name)
