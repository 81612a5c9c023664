"""Landscape results on their own: the accessors shared by split results, the classes' single home (re-exported by
the compute modules), and the 0.1 module paths that still resolve every public name."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape import connectivity, results, slices, spawning
from qlandscape.metrics.landscape.results import Interpolation, Slice1D, split_index

# The public names of the 0.1 modules (their __all__ and top-level definitions), which 0.2 keeps importable.
NAMES_01 = {
    "qlandscape.landscape": [
        "HessianDirections", "PCADirections", "Slice1D", "Slice2D", "SplitResults", "grid_from_range",
        "hessian_directions", "normalize_direction", "orthogonalize", "pca_directions", "pca_plane_grid",
        "project_onto_plane", "random_direction", "slice_1d", "slice_2d", "slice_pca",
    ],
    "qlandscape.directions": [
        "DIRECTION_KINDS", "HessianDirections", "NORMALIZATIONS", "PCADirections", "as_center", "as_direction",
        "hessian_directions", "normalize_direction", "orthogonalize", "pca_directions", "random_direction",
    ],
    "qlandscape.connectivity": [
        "Interpolation", "barrier_location", "error_barrier", "function_space_distance", "interpolate", "loss_barrier",
    ],
    "qlandscape.spawning": ["SpawnResult", "check_spawn_epochs", "spawn_experiment"],
    "qlandscape.classical": [
        "ACTIVATIONS", "CNN", "MLP", "batch_norm_layers", "build_classical", "has_batch_norm",
        "interpolate_with_bn_reset", "recompute_bn_statistics",
    ],
}  # fmt: skip


def _slice_1d() -> Slice1D:
    losses = np.array([[1.0, 0.5, 1.0], [2.0, 1.5, 2.0]])
    return Slice1D(
        alphas=np.array([-1.0, 0.0, 1.0]),
        losses=losses,
        errors=losses / 4,
        center_losses=losses[:, 1],
        splits=("train", "test"),
        direction_kind="random",
        normalization="filter",
        direction_norm=1.0,
        loss_name="cross_entropy",
    )


def test_split_index_and_accessors():
    assert split_index(("train", "test"), None) == 0 and split_index(("train", "test"), "test") == 1
    with pytest.raises(ConfigError, match=r"split = 'val' is not allowed; expected one of 'train', 'test'"):
        split_index(("train", "test"), "val")
    s = _slice_1d()
    np.testing.assert_array_equal(s.loss(), [1.0, 0.5, 1.0])
    np.testing.assert_array_equal(s.loss("test"), [2.0, 1.5, 2.0])
    np.testing.assert_array_equal(s.error("test"), [0.5, 0.375, 0.5])
    np.testing.assert_array_equal(s.accuracies, 1.0 - s.errors)
    with pytest.raises(ConfigError, match="split"):
        s.error("val")


def test_interpolation_barriers_are_the_first_splits():
    curve = Interpolation(
        ts=np.linspace(0, 1, 3),
        losses=np.zeros((2, 3)),
        errors=np.zeros((2, 3)),
        loss_barriers=np.array([0.3, 0.1]),
        error_barriers=np.array([0.2, 0.0]),
        loss_barrier_ts=np.array([0.5, 0.5]),
        error_barrier_ts=np.array([0.5, 0.0]),
        splits=("train", "test"),
        distance=1.0,
        loss_name="mse",
    )
    assert curve.loss_barrier == 0.3 and curve.error_barrier == 0.2 and curve.label_a == "θ_a"


def test_compute_modules_re_export_the_one_class():
    assert slices.Slice1D is results.Slice1D and slices.Slice2D is results.Slice2D
    assert connectivity.Interpolation is results.Interpolation
    assert spawning.SpawnResult is results.SpawnResult


@pytest.mark.parametrize("old", sorted(NAMES_01))
def test_01_paths_resolve_every_public_name(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # a fresh alias, so that it warns again
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated"):
        module = importlib.import_module(old)
    missing = [name for name in NAMES_01[old] if getattr(module, name, None) is None]
    assert missing == []
    for name in set(NAMES_01[old]) & set(results.__all__):  # a result class is the one class, not a copy
        assert getattr(module, name) is getattr(results, name)
