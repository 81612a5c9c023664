"""The public API: the names of ``qlandscape.__all__`` (loaded lazily, each the object of its defining module), the
``__all__`` of every module, the type stub of the package face, and the reference checks of the docs build
(docs/build_api.py)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import qlandscape
from qlandscape import _compat

ROOT = Path(__file__).parents[1]
NAMES = [name for name in qlandscape.__all__ if name != "__version__"]


def _docs_build() -> ModuleType:
    pytest.importorskip("pdoc")
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_loads_no_heavy_dependency_and_dir_lists_the_api():
    code = (
        "import json, sys, qlandscape\n"
        "names = dir(qlandscape)\n"
        "print(json.dumps({'names': names, 'all': qlandscape.__all__,"
        " 'loaded': sorted(m for m in ('torch', 'pennylane', 'matplotlib', 'numpy', 'scipy') if m in sys.modules)}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["loaded"] == []
    assert set(out["all"]) <= set(out["names"])
    assert "PatchQNN" in out["names"] and "load_run" in out["names"]


@pytest.mark.parametrize("name", NAMES)
def test_each_name_is_the_public_object_of_its_home(name):
    home = qlandscape._PUBLIC[name]
    module = importlib.import_module(home)
    obj = getattr(qlandscape, name)
    assert obj is getattr(module, name)
    assert name in module.__all__, f"{name} is not public in {home}"
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert obj.__module__ == home, f"{name} is defined in {obj.__module__}, not {home}"
    assert inspect.getdoc(obj), f"{name} has no docstring"


def test_all_the_homes_and_the_type_stub_agree():
    assert qlandscape.__all__ == ["__version__", *qlandscape._PUBLIC]
    assert len(set(qlandscape.__all__)) == len(qlandscape.__all__)
    stub = ast.parse((ROOT / "qlandscape" / "__init__.pyi").read_text())
    imported = {
        alias.name: node.module
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname in (None, alias.name)
    }
    assert imported == qlandscape._PUBLIC
    stub_all = next(
        node.value for node in stub.body if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"
    )
    assert ast.literal_eval(stub_all) == qlandscape.__all__


def test_no_public_name_is_also_a_module_path():
    # The import system sets a subpackage on its parent as soon as it is imported, over a name of the same
    # spelling: `train` would be the function before anything imported qlandscape.train, and the package after.
    for name in NAMES:
        assert importlib.util.find_spec(f"qlandscape.{name}") is None, name
        assert f"qlandscape.{name}" not in _compat.MOVED, name
    import qlandscape.train
    from qlandscape.train import train

    assert isinstance(qlandscape.train, ModuleType)
    assert train.__module__ == "qlandscape.train.trainer"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'PatchQnn'"):
        _ = qlandscape.PatchQnn
    with pytest.raises(ImportError):
        exec("from qlandscape import hessian_spectrum", {})


def _defines_public_names(tree: ast.Module) -> bool:
    return any(
        isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_") for node in tree.body
    )


def test_every_module_declares_its_public_names():
    missing, unresolved = [], []
    walked = [m.name for m in pkgutil.walk_packages(qlandscape.__path__, "qlandscape.")]
    for name in walked:
        if any(part.startswith("_") for part in name.split(".")[1:]):
            continue
        module = importlib.import_module(name)
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        if not hasattr(module, "__all__"):
            if _defines_public_names(tree):
                missing.append(name)
            continue
        unresolved += [f"{name}.{attr}" for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == [], f"modules without __all__: {missing}"
    assert unresolved == [], f"names in an __all__ that do not exist: {unresolved}"


def test_the_reference_check_finds_broken_internal_and_old_references():
    build = _docs_build()

    def problems(text: str, allow_deprecated: bool = False) -> list[str]:
        return list(build.check_text(text, "here", allow_deprecated=allow_deprecated))

    assert problems("see :func:`qlandscape.sim.engine.simulate` and ``qlandscape.runs.run.load_run``") == []
    assert problems("`qlandscape.core.objective.Objective.hessian` and qlandscape.train.train") == []
    assert problems("in qlandscape/sim/engine.py, see my-qlandscape.txt") == []
    (gone,) = problems("`qlandscape.core.objective.Objectiv`")
    assert "has no attribute 'Objectiv'" in gone
    (internal,) = problems(":func:`~qlandscape.sim.engine._run`")
    assert "internal" in internal
    (no_module,) = problems("qlandscape.nowhere.thing")
    assert "has no attribute 'nowhere'" in no_module
    (old,) = problems(":mod:`qlandscape.lowering`")
    assert "0.1 module path" in old
    assert problems("`qlandscape.objective` still works", allow_deprecated=True) == []


def test_the_markdown_pages_reference_only_public_names():
    build = _docs_build()
    assert list(build.markdown_problems()) == []


def test_the_reference_leaves_internal_and_private_modules_out():
    build = _docs_build()
    documented = build.public_modules()
    assert "qlandscape" in documented and "qlandscape.runs.sweep" in documented
    assert not set(build.INTERNAL_MODULES) & set(documented)
    assert not [m for m in documented if "._" in m]
    assert set(build.INTERNAL_MODULES) <= set(build.all_modules())  # no stale entry
