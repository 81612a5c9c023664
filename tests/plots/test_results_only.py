"""Figures draw result objects: no plots module reaches torch, the simulator, models, training, data or the
Objective, directly or through what it imports.

This is the import-linter contract "Plots draw result objects" of pyproject.toml, checked twice in the default
suite: statically, by following every import statement (function-level ones included) from each plots module
through the package's source; and at run time, by importing the plots and results modules in a fresh interpreter
and looking at ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

import qlandscape
import qlandscape.plots

FORBIDDEN = ("torch", "qlandscape.sim", "qlandscape.models", "qlandscape.train", "qlandscape.data")
FORBIDDEN_MODULES = ("qlandscape.core.objective",)
ROOT = Path(qlandscape.__file__).parent
PLOTS = ["qlandscape.plots", *(f"qlandscape.plots.{m.name}" for m in pkgutil.iter_modules(qlandscape.plots.__path__))]
RESULTS = [
    "qlandscape.metrics.curvature.results",
    "qlandscape.metrics.landscape.results",
    "qlandscape.metrics.ntk.results",
    "qlandscape.metrics.robustness.results",
    "qlandscape.metrics.gradient_results",
    "qlandscape.metrics.fits",
    "qlandscape.metrics.sweeps",
    "qlandscape.metrics.modes.results",
]


def _source(module: str) -> Path | None:
    """The file of a qlandscape module (a package's ``__init__.py``), or None when it is not one."""
    parts = module.split(".")
    if parts[0] != "qlandscape":
        return None
    base = ROOT.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports(module: str) -> set[str]:
    """Every module an import statement anywhere in ``module``'s source names, and its parent packages (importing
    a module runs its parents' ``__init__``)."""
    path = _source(module)
    assert path is not None, module
    found = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"relative import in {module}"  # ruff bans them
            for alias in node.names:  # `from package import submodule` imports the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _source(sub) is not None else node.module)
    return found - {module}


def _import_chains(start: str) -> dict[str, list[str]]:
    """Every module reachable from ``start`` by import statements, with one chain of imports that reaches it."""
    chains = {start: [start]}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for name in sorted(_imports(module)):
            # an external package counts by its top-level name and its dotted name alike
            for reached in {name, name.split(".")[0]}:
                if reached not in chains:
                    chains[reached] = [*chains[module], reached]
                    if _source(reached) is not None:
                        queue.append(reached)
    return chains


def _forbidden(module: str) -> bool:
    return module in FORBIDDEN_MODULES or any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_the_scan_sees_the_plots_and_finds_indirect_imports():
    assert {"qlandscape.plots.landscape", "qlandscape.plots.ntk", "qlandscape.plots.gradients"} <= set(PLOTS)
    # a compute module reaches torch through the Objective: the scan must see that
    chains = _import_chains("qlandscape.metrics.landscape.slices")
    assert chains["torch"][0] == "qlandscape.metrics.landscape.slices"
    assert "qlandscape.core.objective" in chains and _forbidden("qlandscape.core.objective")
    assert not _forbidden("qlandscape.core.errors") and not _forbidden("torchvision")


@pytest.mark.parametrize("module", PLOTS)
def test_plots_module_imports_no_compute_code(module):
    bad = {name: chain for name, chain in _import_chains(module).items() if _forbidden(name)}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


@pytest.mark.parametrize("module", RESULTS)
def test_results_module_imports_no_compute_code(module):
    bad = {name: chain for name, chain in _import_chains(module).items() if _forbidden(name)}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


def test_importing_the_figures_loads_no_torch():
    modules = PLOTS + RESULTS
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "qlandscape.plots.landscape" in loaded and "numpy" in loaded
    assert [m for m in loaded if _forbidden(m)] == []
