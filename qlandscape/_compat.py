"""Import paths of qlandscape 0.1, kept for one release: each old module is an alias of its new home.

``import qlandscape.objective`` still works and warns (``DeprecationWarning``) with the path to use instead. An
old module that gathered names from several places (``qlandscape.hessian`` re-exported the eigensolvers and the
spectral densities) is a module holding the public names of all of them, the first one listed winning a clash.
The new modules are imported by name at the moment an old path is used, so nothing here adds an import edge
between the layers.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

# old module -> the modules its names now live in (the first is where to import from)
MOVED: dict[str, tuple[str, ...]] = {
    "qlandscape.errors": ("qlandscape.core.errors",),
    "qlandscape.io": ("qlandscape.core.io",),
    "qlandscape.losses": ("qlandscape.core.losses",),
    # STRUCTURED_MIN_PATCHES moved with the automatic choice of the structured Hessian (exact_hessian)
    "qlandscape.objective": ("qlandscape.core.objective", "qlandscape.metrics.curvature.structured"),
    "qlandscape.operators": ("qlandscape.core.operators",),
    "qlandscape.allocator": ("qlandscape.sim.allocator",),
    "qlandscape.backends": ("qlandscape.sim.backends", "qlandscape.core.dtypes"),
    "qlandscape.blocks": ("qlandscape.sim.blocks",),
    "qlandscape.circuits": ("qlandscape.sim.circuits",),
    "qlandscape.engine": ("qlandscape.sim.engine",),
    "qlandscape.gate_matrices": ("qlandscape.sim.gate_matrices",),
    "qlandscape.lowering": ("qlandscape.sim.lowering",),
    "qlandscape.product_readout": ("qlandscape.sim.product_readout",),
    "qlandscape.patches": ("qlandscape.models.patches",),
    "qlandscape.qnn": ("qlandscape.models.qnn",),
    "qlandscape.classical": ("qlandscape.models.classical", "qlandscape.metrics.landscape.connectivity"),
    "qlandscape.hessian": (
        "qlandscape.metrics.curvature.hessian",
        "qlandscape.metrics.curvature.eigensolvers",
        "qlandscape.metrics.curvature.spectral_density",
        "qlandscape.metrics.curvature.results",
    ),
    "qlandscape.eigensolvers": ("qlandscape.metrics.curvature.eigensolvers", "qlandscape.metrics.curvature.results"),
    "qlandscape.spectral_density": (
        "qlandscape.metrics.curvature.spectral_density",
        "qlandscape.metrics.curvature.results",
    ),
    "qlandscape.structured": (
        "qlandscape.metrics.curvature.structured",
        "qlandscape.metrics.curvature.results",
        "qlandscape.metrics.fits",
    ),
    "qlandscape.directions": ("qlandscape.metrics.landscape.directions",),
    "qlandscape.landscape": (
        "qlandscape.metrics.landscape.slices",
        "qlandscape.metrics.landscape.directions",
        "qlandscape.metrics.landscape.results",
    ),
    "qlandscape.connectivity": ("qlandscape.metrics.landscape.connectivity", "qlandscape.metrics.landscape.results"),
    "qlandscape.spawning": ("qlandscape.metrics.landscape.spawning", "qlandscape.metrics.landscape.results"),
    "qlandscape.ntk": ("qlandscape.metrics.ntk.kernels", "qlandscape.metrics.ntk.results"),
    "qlandscape.kernel_regression": ("qlandscape.metrics.ntk.kernel_machines", "qlandscape.metrics.ntk.results"),
    "qlandscape.gradients": (
        "qlandscape.metrics.gradients",
        "qlandscape.metrics.gradient_results",
        "qlandscape.metrics.fits",
    ),
    "qlandscape.decay_fits": ("qlandscape.metrics.fits",),
    "qlandscape.config": ("qlandscape.runs.config", "qlandscape.models.config"),
    "qlandscape.run_metrics": ("qlandscape.runs.run", "qlandscape.runs.registry"),
    "qlandscape.run_tables": ("qlandscape.runs.tables",),
    "qlandscape.sweep": ("qlandscape.runs.sweep", "qlandscape.runs.tables"),
    "qlandscape.report": ("qlandscape.runs.report", "qlandscape.metrics.sweeps"),
    "qlandscape.plots.report": ("qlandscape.plots.sweeps", "qlandscape.runs.report"),
    "qlandscape.commands": ("qlandscape.cli",),
    **{
        f"qlandscape.commands.{name}": (f"qlandscape.cli.{name}",)
        for name in ("circuits", "gradvar", "report", "run", "spawn", "sweep")
    },
    # the metric subcommands are built from the registered run metrics
    **{f"qlandscape.commands.{name}": ("qlandscape.cli.metric",) for name in ("hessian", "landscape", "ntk")},
}


def _warn(message: str) -> None:
    # Attribute the warning to the line that imported the old path, not to the import machinery.
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_globals.get("__name__") == __name__
    ):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return
    warnings.warn_explicit(
        message,
        DeprecationWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
    )


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        targets = MOVED[module.__name__]
        _warn(
            f"{module.__name__} is deprecated since qlandscape 0.2 and will be removed in 0.3; import from "
            f"{' or '.join(targets)} instead"
        )
        for target in reversed(targets):  # the first target wins a clash
            new = importlib.import_module(target)
            module.__dict__.update(
                {k: v for k, v in vars(new).items() if not (k.startswith("__") and k.endswith("__"))}
            )
        if module.__name__ == "qlandscape.commands":
            module.__path__ = []  # a package, so that qlandscape.commands.run resolves through this finder


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(), is_package=fullname == "qlandscape.commands")


def install() -> None:
    """Let the 0.1 module paths resolve (once per process)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
