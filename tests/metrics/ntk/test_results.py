"""NTK results on their own: one home for each class (re-exported by the compute modules), and the 0.1 module
paths that still resolve every public name."""

from __future__ import annotations

import importlib
import sys

import pytest

from qlandscape.metrics.ntk import kernel_machines, kernels, results

# The public names of the 0.1 modules (their top-level definitions), which 0.2 keeps importable.
NAMES_01 = {
    "qlandscape.ntk": [
        "FORMS", "Form", "KernelEvolution", "NTK", "check_trajectory", "empirical_ntk", "kernel_alignment",
        "kernel_distance", "kernel_evolution", "kernel_matrix", "one_hot", "resolve_subset", "select_times",
        "trace_form",
    ],
    "qlandscape.kernel_regression": [
        "KernelMachineCurve", "kernel_machine_curve", "kernel_regression_accuracy", "kernel_ridge_predict",
    ],
}  # fmt: skip


def test_compute_modules_re_export_the_one_class():
    assert kernels.NTK is results.NTK and kernels.KernelEvolution is results.KernelEvolution
    assert kernel_machines.KernelMachineCurve is results.KernelMachineCurve


@pytest.mark.parametrize("old", sorted(NAMES_01))
def test_01_paths_resolve_every_public_name(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # a fresh alias, so that it warns again
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated"):
        module = importlib.import_module(old)
    assert [name for name in NAMES_01[old] if getattr(module, name, None) is None] == []
    for name in set(NAMES_01[old]) & set(results.__all__):  # a result class is the one class, not a copy
        assert getattr(module, name) is getattr(results, name)
