"""qlandscape: loss-landscape geometry of quantum neural networks and classical deep networks.

The package is layered; each layer is a subpackage and imports only the layers below it::

    cli      the qlandscape command
    runs     run configs, run directories, the metric registry, sweeps, the report
    plots    figures drawn from result objects
    metrics  curvature, landscape, ntk, gradients, fits
    train    the training loop
    models   PatchQNN, patches, MLP and CNN  |  data   datasets
    sim      circuit specs, lowering, the engine, backends
    core     errors, io, losses, the Objective, linear operators

The names below are the most used entry points; they load on first use, so ``import qlandscape`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from qlandscape import _compat

__version__ = "0.2.0"

_PUBLIC = {
    "ConfigError": "qlandscape.core.errors",
    "Objective": "qlandscape.core.objective",
    "load_runs": "qlandscape.runs.tables",
    "run_sweep": "qlandscape.runs.sweep",
}
__all__ = [*_PUBLIC, "__version__"]

_compat.install()


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'qlandscape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
