"""Data-parallel loss, gradient and HVP: local worker processes and a Dask LocalCluster against one process."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import torch

from qlandscape.core.data_parallel import DataParallelObjective, ModelRecipe, shard_bounds
from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.metrics.curvature.eigensolvers import top_eigenvalues
from qlandscape.models.config import ModelConfig, build_model

CONFIG = ModelConfig(model="qnn", qubits=4, layers=1, patch_size=4, aggregation="linear")
FACTORY = functools.partial(build_model, CONFIG, (8, 8), 3, seed=5)


def _objective(n: int = 23) -> Objective:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(n, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    model = FACTORY()
    with torch.no_grad():  # parameters unlike the factory's own, so the state really travels
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return Objective(model, x, y)


def _close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert np.abs(a - b).max() <= tol * max(1.0, float(np.abs(b).max()))


def _check_against(dp: DataParallelObjective, objective: Objective) -> None:
    theta = objective.theta0 + 0.05 * torch.randn(objective.n_params, dtype=torch.float64)
    v = torch.randn(objective.n_params, dtype=torch.float64)
    _close(dp.theta0, objective.theta0)
    _close(dp.loss(theta), float(objective.loss(theta)))
    _close(dp.grad(theta), objective.grad(theta))
    value, grad = dp.value_and_grad(theta)
    _close(value, float(objective.loss(theta)))
    _close(grad, objective.grad(theta))
    _close(dp.hvp(theta, v), objective.hvp(theta, v))
    first = dp.hvp(theta, v)
    assert np.array_equal(first, dp.hvp(theta, v))  # the same sum in the same order on every call


def test_shards_are_contiguous_and_cover_the_set():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]


def test_the_recipe_rebuilds_the_model_exactly():
    objective = _objective()
    model = ModelRecipe.of(objective.model, FACTORY).build()
    for (name, a), (_, b) in zip(model.state_dict().items(), objective.model.state_dict().items(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name


def test_local_processes_equal_one_process():
    objective = _objective()
    with DataParallelObjective.from_objective(objective, FACTORY, workers=2) as dp:
        assert dp.bounds == [(0, 12), (12, 23)]
        _check_against(dp, objective)
        op = dp.hessian_operator()
        single = top_eigenvalues(objective, k=1, tol=1e-10, seed=0)
        parallel = top_eigenvalues(op, k=1, tol=1e-10, seed=0)
        _close(parallel.eigenvalues, single.eigenvalues, 1e-10)
        assert op.n_matvecs > 0


def test_dask_local_cluster_equals_one_process():
    distributed = pytest.importorskip("dask.distributed")
    objective = _objective()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
        DataParallelObjective.from_objective(objective, FACTORY, dask=client, shards=3) as dp,
    ):
        _check_against(dp, objective)


@pytest.mark.slow
def test_dask_worker_processes_equal_one_process():
    distributed = pytest.importorskip("dask.distributed")
    objective = _objective()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        DataParallelObjective.from_objective(objective, FACTORY, dask=cluster.scheduler_address) as dp,
    ):
        _check_against(dp, objective)


def test_bad_input_is_refused():
    objective = _objective(6)
    with pytest.raises(ConfigError, match="workers"):
        DataParallelObjective.from_objective(objective, FACTORY, workers=0)
    with pytest.raises(ConfigError, match="evaluation set"):
        DataParallelObjective(ModelRecipe.of(objective.model, FACTORY), np.zeros((3, 8, 8)), np.zeros(2))


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'qlandscape\[dask\]'"):
        DataParallelObjective.from_objective(_objective(4), FACTORY, dask="tcp://127.0.0.1:1")
