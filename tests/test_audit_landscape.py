"""Regression tests from the audit of the landscape, connectivity, spawning and NTK modules."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.metrics.landscape.directions import pca_directions, random_direction
from qlandscape.metrics.landscape.slices import slice_2d
from qlandscape.metrics.ntk import kernels as ntk
from qlandscape.models.classical import MLP
from qlandscape.train.trainer import TrainConfig


def _objective(n: int = 10, labels: torch.Tensor | None = None) -> Objective:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 4, 4, generator=g, dtype=torch.float64)
    y = torch.arange(n) % 3 if labels is None else labels
    return Objective(MLP((4, 4), 3, width=3, depth=1, seed=0), x, y)


def test_pca_directions_are_principal_components_like_sklearn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    g = np.random.default_rng(5)
    traj = np.cumsum(g.standard_normal((12, 30)) * np.linspace(3, 0.1, 30), axis=0)
    pca = pca_directions(traj)
    diffs = traj - traj[-1]
    ref = decomposition.PCA(n_components=2, svd_solver="full").fit(diffs)
    for i in range(2):
        assert abs(abs(pca.directions[i] @ ref.components_[i]) - 1) < 1e-12
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-12)
    np.testing.assert_allclose(pca.singular_values, ref.singular_values_, rtol=1e-12)
    # the trajectory itself is projected uncentred, so the final point is the plane's origin
    np.testing.assert_allclose(pca.coordinates, diffs @ pca.directions.T, atol=1e-12)
    np.testing.assert_allclose(pca.coordinates[-1], 0.0, atol=1e-15)


def _exact_distance(k1: np.ndarray, k2: np.ndarray) -> float:
    a = [Fraction(float(v)) for v in k1.ravel()]
    b = [Fraction(float(v)) for v in k2.ravel()]
    dot = sum(x * y for x, y in zip(a, b))
    n11, n22 = sum(x * x for x in a), sum(x * x for x in b)
    with localcontext() as ctx:
        ctx.prec = 80
        frac = lambda f: Decimal(f.numerator) / Decimal(f.denominator)  # noqa: E731
        return float(1 - frac(dot) / (frac(n11) * frac(n22)).sqrt())


@pytest.mark.parametrize("eps", [1e-4, 1e-6, 1e-8])
def test_kernel_distance_keeps_its_digits_for_nearby_kernels(eps):
    g = np.random.default_rng(0)
    a = g.standard_normal((6, 6))
    k1 = a @ a.T
    e = g.standard_normal((6, 6))
    k2 = k1 + eps * (e + e.T)
    exact = _exact_distance(k1, k2)
    assert exact > 0
    # 1 − cos lost 7e-8 relative at eps = 1e-4, 0.2 % at 1e-6 and everything (returned 0) at 1e-8
    assert ntk.kernel_distance(k1, k2) == pytest.approx(exact, rel=1e-8, abs=0)


def test_kernel_evolution_rejects_one_class_subset_before_any_kernel(monkeypatch):
    obj = _objective(labels=torch.zeros(10, dtype=torch.long))
    traj = np.stack([obj.theta0.numpy()] * 3)
    calls = []
    real = ntk.kernel_matrix
    monkeypatch.setattr(ntk, "kernel_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(ConfigError, match="two classes"):
        ntk.kernel_evolution(obj, traj, [0.0, 1.0, 2.0], 5)
    assert not calls
    # uncentred alignment is defined for one class
    evo = ntk.kernel_evolution(obj, traj, [0.0, 1.0, 2.0], 5, centered_alignment=False)
    assert np.all(np.isfinite(evo.alignment))


@pytest.mark.parametrize("subset", [4, [0, 2, 5]])
def test_labels_next_to_a_size_or_indices_are_not_silently_dropped(subset):
    obj = _objective()
    traj = np.stack([obj.theta0.numpy()] * 2)
    with pytest.raises(ConfigError, match="y_subset"):
        ntk.kernel_evolution(obj, traj, [0.0, 1.0], subset, y_subset=np.zeros(len(np.atleast_1d(subset))))


@pytest.mark.parametrize("seeds", [(1, 1), (1.5, 2), (True, 2)])
def test_spawn_child_seeds_must_be_two_different_integers(monkeypatch, seeds):
    from qlandscape.metrics.landscape import spawning

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the seeds were checked")

    monkeypatch.setattr(spawning, "Trainer", no_training)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 4, 4, generator=g, dtype=torch.float64)
    y = torch.arange(8) % 2
    with pytest.raises(ConfigError, match="child_seeds"):
        spawning.spawn_experiment(
            MLP((4, 4), 2, width=3, depth=1), x, y, x, y, TrainConfig(epochs=1), [0], child_seeds=seeds
        )


def test_slice_2d_rejects_an_explained_variance_that_is_not_two_fractions():
    obj = _objective(n=6)
    d1, d2 = random_direction(obj, seed=1), random_direction(obj, seed=2)
    with pytest.raises(ConfigError, match="explained_variance_ratio"):
        slice_2d(obj, d1, d2, alphas=[-1, 1], betas=[-1, 1], direction_kind="pca", explained_variance_ratio=[0.6])


def test_batch_norm_parent_accuracy_is_measured_like_the_children():
    from qlandscape.metrics.landscape.spawning import spawn_experiment
    from qlandscape.models.classical import CNN

    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 6, 6, generator=g, dtype=torch.float64)
    y = (x[:, :3].mean((1, 2)) > x[:, 3:].mean((1, 2))).long() + 2 * (x[:, :, :3].mean((1, 2)) > 0.5).long()
    config = TrainConfig(optimizer="sgd", lr=0.2, momentum=0.5, epochs=2, batch_size=8)
    res = spawn_experiment(
        CNN((6, 6), 4, channels=(2,), batch_norm=True, seed=0), x[:40], y[:40], x[40:], y[40:], config, (2,), n_points=3
    )
    assert res.bn_reset and res.parameter_distance[0] == 0
    # spawned at the last epoch, both children are the parent: one network, one accuracy (was 0.4 vs 0.35)
    assert res.child_test_accuracy[0, 0] == res.child_test_accuracy[0, 1] == res.parent_test_accuracy
