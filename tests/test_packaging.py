"""What the wheel ships: every package of the layered tree (setuptools takes an explicit list, so a new subpackage
left out of it would be missing from an installed qlandscape), and one version, written once."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import qlandscape

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_list_names_every_package_of_the_tree():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "qlandscape").rglob("__init__.py")} | {
        "qlandscape.circuits_catalogue"
    }
    assert listed == on_disk, f"missing from pyproject: {on_disk - listed}; listed but absent: {listed - on_disk}"


def test_every_folder_of_the_package_is_a_regular_package():
    folders = {p for p in (ROOT / "qlandscape").rglob("*") if p.is_dir() and p.name != "__pycache__"}
    assert [f for f in folders if not (f / "__init__.py").exists()] == []


def test_the_version_is_written_once():
    assert PROJECT["project"]["dynamic"] == ["version"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "qlandscape.__version__"}
    tree = ast.parse((ROOT / "qlandscape" / "__init__.py").read_text())
    assigned = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"]
    assert len(assigned) == 1 and assigned[0].value.value == qlandscape.__version__
