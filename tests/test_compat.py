"""The 0.1 import paths keep working for one release: each warns and still offers every name 0.1 users imported
from it (tests/fixtures/public_names_0_1.json: the names each 0.1 module defined or re-exported, plus those the
0.1 package, its tests, benchmarks and README imported from it)."""

from __future__ import annotations

import importlib
import json
import re
import sys
import warnings
from pathlib import Path

import pytest

from qlandscape import _compat

NAMES_0_1: dict[str, list[str]] = json.loads((Path(__file__).parent / "fixtures" / "public_names_0_1.json").read_text())
# The run-metric plumbing of 0.1, replaced as a whole by one MetricSpec per metric (qlandscape.runs.registry), two
# helpers replaced by the composed RunConfig, and the gate constants the gate table replaces; CHANGELOG.md lists
# each with its replacement.
REMOVED = {
    "qlandscape.circuits": {"ROTATIONS", "ENTANGLERS"},
    "qlandscape.lowering": {"GENERATORS"},
    "qlandscape.runs": {"METRIC_HOOKS", "MetricHook", "register_metric", "dataset_for", "train_config"},
    "qlandscape.run_metrics": {
        "DEFAULTS",
        "METRIC_CHOICES",
        "METRIC_INTS",
        "settings_for",
        "hessian_metric",
        "landscape_metric",
        "ntk_metric",
    },
    "qlandscape.report": {"HEADLINE", "SUMMARY_METRICS"},
    "qlandscape.plots.report": {"SHORT"},
}
MOVED_0_1 = sorted(m for m in NAMES_0_1 if m in _compat.MOVED)
KEPT_0_1 = sorted(m for m in NAMES_0_1 if m not in _compat.MOVED)


def _fresh_import(name: str):
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        if key in _compat.MOVED:
            del sys.modules[key]
    return importlib.import_module(name)


@pytest.mark.parametrize("name", MOVED_0_1)
def test_moved_module_warns_and_offers_its_0_1_names(name):
    with pytest.warns(DeprecationWarning, match=re.escape(name) + " is deprecated.*import from"):
        module = _fresh_import(name)
    missing = [n for n in NAMES_0_1[name] if not hasattr(module, n) and n not in REMOVED.get(name, ())]
    assert not missing, f"{name} lost {missing}"


@pytest.mark.parametrize("name", KEPT_0_1)
def test_kept_module_offers_its_0_1_names_without_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        module = importlib.import_module(name)
        missing = [n for n in NAMES_0_1[name] if not hasattr(module, n) and n not in REMOVED.get(name, ())]
    assert not missing, f"{name} lost {missing}"


def test_removed_names_are_gone_and_listed_in_the_changelog():
    changelog = (Path(__file__).parents[1] / "CHANGELOG.md").read_text()
    for module, names in REMOVED.items():
        for name in names:
            assert name in NAMES_0_1[module]
            assert re.search(rf"`{name}[`(]", changelog), f"CHANGELOG.md does not say what replaces {module}.{name}"


def test_every_0_1_module_is_moved_or_kept():
    moved_targets = {t for targets in _compat.MOVED.values() for t in targets}
    for target in moved_targets:  # every new home exists
        importlib.import_module(target)
    assert set(MOVED_0_1) | set(KEPT_0_1) == set(NAMES_0_1)


def test_the_warning_points_at_the_importing_line(tmp_path):
    script = tmp_path / "user.py"
    script.write_text("import warnings\nwarnings.simplefilter('always')\nimport qlandscape.objective\n")
    import subprocess

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert f"{script}:3: DeprecationWarning: qlandscape.objective is deprecated" in out.stderr


def test_package_face_is_lazy():
    import subprocess

    code = "import sys, qlandscape; print('torch' in sys.modules, qlandscape.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", qlandscape_version()]


def qlandscape_version() -> str:
    import qlandscape

    return qlandscape.__version__
