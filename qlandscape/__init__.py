"""qlandscape: loss-landscape geometry of quantum neural networks and classical deep networks.

The names of ``__all__`` are the public API a script needs: models, data, the ``Objective``, training, the main
metric functions, plots, runs and sweeps (``from qlandscape import PatchQNN, Objective, slice_2d, load_run``). They
load on first use, so ``import qlandscape`` imports neither torch nor PennyLane; each is the very object of the module
that defines it.

What is public: these names, the names of each subpackage's ``__all__`` (``qlandscape.data``,
``qlandscape.models``, ``qlandscape.train``, ``qlandscape.runs``, ``qlandscape.sim.backends``, ...) and of each
module's ``__all__``. Anything else is internal and may change without a deprecation: names with a leading
underscore, names a module defines but leaves out of its ``__all__``, and the engine's internal modules
(``qlandscape.sim.lowering``, ``gate_matrices``, ``blocks``, ``product_readout``) and the subcommand modules of
``qlandscape.cli`` (their interface is the command line).

No public name here is also the name of a subpackage or of a 0.1 module path: the import system sets a module on
this package as soon as anything imports it, over a function of the same name. So the training function is
``qlandscape.train.train`` (``from qlandscape.train import train``; ``qlandscape.train`` is the subpackage), and
the spectral density is ``qlandscape.metrics.curvature.spectral_density.spectral_density`` (0.2 still resolves
the 0.1 module path of that name).

The package is layered; each layer is a subpackage and imports only the layers below it::

    cli      the qlandscape command
    runs     run configs, run directories, the metric registry, sweeps, the report
    plots    figures drawn from result objects
    metrics  curvature, landscape, ntk, gradients, fits, robustness, the four mode properties
    merging  alignment, merges, curved paths and barriers between models
    train    the training loop (adversarial training too)
    attacks  FGSM and PGD on a model's inputs
    models   PatchQNN, patches, MLP and CNN  |  data   datasets
    sim      circuit specs, lowering, the engine, backends
    core     errors, io, losses, the Objective, linear operators
"""

from __future__ import annotations

import importlib
from typing import Any

from qlandscape import _compat

__version__ = "0.2.0"

# name -> the module that defines it, grouped as the README's Python API section presents them
_HOMES = {
    "qlandscape.core.errors": ("ConfigError",),
    "qlandscape.core.objective": ("Objective",),
    "qlandscape.core.io": ("save_result", "load_result"),
    "qlandscape.sim.allocator": ("retain_freed_memory",),
    "qlandscape.sim.backends.registry": ("make_backend",),
    "qlandscape.sim.circuits": ("build_circuit",),
    "qlandscape.data.datasets": ("Dataset", "load_dataset", "to_torch"),
    "qlandscape.data.config": ("DataConfig",),
    "qlandscape.models.qnn": ("PatchQNN",),
    "qlandscape.models.classical": ("MLP", "CNN"),
    "qlandscape.models.config": ("ModelConfig", "build_model"),
    # the function train is not here: its name is the subpackage qlandscape.train's (see the docstring)
    "qlandscape.train.trainer": ("TrainConfig", "TrainResult", "Trainer"),
    "qlandscape.metrics.curvature.hessian": ("dense_spectrum", "hessian_summary", "hessian_along_trajectory"),
    "qlandscape.metrics.curvature.eigensolvers": ("top_eigenvalues",),
    # spectral_density is left out: it is also the 0.1 module path qlandscape.spectral_density (see the docstring)
    "qlandscape.metrics.curvature.spectral_density": ("hutchinson_trace",),
    "qlandscape.metrics.curvature.structured": ("decompose", "exact_hessian", "structure_summary"),
    "qlandscape.metrics.landscape.directions": ("random_direction", "hessian_directions", "pca_directions"),
    "qlandscape.metrics.landscape.slices": ("grid_from_range", "slice_1d", "slice_2d", "slice_pca"),
    "qlandscape.metrics.landscape.connectivity": ("interpolate", "function_space_distance"),
    "qlandscape.metrics.landscape.spawning": ("spawn_experiment",),
    "qlandscape.metrics.ntk.kernels": ("empirical_ntk", "kernel_evolution"),
    "qlandscape.metrics.ntk.kernel_machines": ("kernel_machine_curve",),
    "qlandscape.metrics.gradients": ("gradient_variance", "qnn_gradient_variance", "variance_curve"),
    "qlandscape.metrics.fits": ("fit_power_law",),
    "qlandscape.plots": ("save_figure",),
    "qlandscape.plots.hessian": ("plot_spectrum", "plot_density"),
    "qlandscape.plots.landscape": ("plot_slice_1d", "plot_contour", "plot_surface", "plot_trajectory"),
    "qlandscape.plots.connectivity": ("plot_interpolation",),
    "qlandscape.runs.config": ("RunConfig", "load_config"),
    "qlandscape.runs.run": ("LoadedRun", "execute_run", "load_run", "run_metric"),
    "qlandscape.runs.sweep": ("load_sweep", "run_sweep"),
    "qlandscape.runs.tables": ("load_runs",),
    "qlandscape.runs.report": ("write_report",),
}
_PUBLIC = {name: module for module, names in _HOMES.items() for name in names}
# written out for static tools (linters, IDEs; type checkers read __init__.pyi); tests/test_public_api.py checks
# both against _HOMES
__all__ = [
    "__version__",
    "ConfigError",
    "Objective",
    "save_result",
    "load_result",
    "retain_freed_memory",
    "make_backend",
    "build_circuit",
    "Dataset",
    "load_dataset",
    "to_torch",
    "DataConfig",
    "PatchQNN",
    "MLP",
    "CNN",
    "ModelConfig",
    "build_model",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "dense_spectrum",
    "hessian_summary",
    "hessian_along_trajectory",
    "top_eigenvalues",
    "hutchinson_trace",
    "decompose",
    "exact_hessian",
    "structure_summary",
    "random_direction",
    "hessian_directions",
    "pca_directions",
    "grid_from_range",
    "slice_1d",
    "slice_2d",
    "slice_pca",
    "interpolate",
    "function_space_distance",
    "spawn_experiment",
    "empirical_ntk",
    "kernel_evolution",
    "kernel_machine_curve",
    "gradient_variance",
    "qnn_gradient_variance",
    "variance_curve",
    "fit_power_law",
    "save_figure",
    "plot_spectrum",
    "plot_density",
    "plot_slice_1d",
    "plot_contour",
    "plot_surface",
    "plot_trajectory",
    "plot_interpolation",
    "RunConfig",
    "load_config",
    "LoadedRun",
    "execute_run",
    "load_run",
    "run_metric",
    "load_sweep",
    "run_sweep",
    "load_runs",
    "write_report",
]

_compat.install()


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'qlandscape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
