"""Gradient-variance results on their own: one home for each class (re-exported by metrics.gradients), and the
0.1 module path that still resolves every public name."""

from __future__ import annotations

import importlib
import sys

import pytest

from qlandscape.metrics import gradient_results, gradients

# The public names of qlandscape.gradients in 0.1 (its top-level definitions and re-exports).
NAMES_01 = [
    "COSTS", "DIGITS_GRIDS", "DecayFit", "GradientVariance", "INITS", "INPUTS", "PatchVarianceCurve",
    "VarianceCurve", "circuit_features", "circuit_gradients", "cost_diagonal", "fit_decay", "gradient_variance",
    "patch_variance", "qnn_gradient_variance", "sample_parameters", "variance_curve", "variance_statistics",
]  # fmt: skip


def test_gradients_re_exports_the_one_class():
    for name in gradient_results.__all__:
        assert getattr(gradients, name) is getattr(gradient_results, name)


def test_01_path_resolves_every_public_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "qlandscape.gradients", raising=False)  # a fresh alias, so that it warns again
    with pytest.warns(DeprecationWarning, match="qlandscape.gradients is deprecated"):
        module = importlib.import_module("qlandscape.gradients")
    assert [name for name in NAMES_01 if getattr(module, name, None) is None] == []
    for name in gradient_results.__all__:
        assert getattr(module, name) is getattr(gradient_results, name)
