"""The run metrics' memory budget and the hessian metric's Dask and local-worker settings: from configs and the
command line."""

from __future__ import annotations

import numpy as np
import pytest

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.runs import registry
from qlandscape.runs.config import RunConfig
from qlandscape.runs.run import execute_run, load_run, run_metric

TINY = dict(
    classes=[0, 1], max_train=30, max_test=20, qubits=2, layers=1, patch_size=4, patches=2, epochs=2, batch_size=10
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return execute_run(RunConfig.from_dict(TINY), tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def cnn_run_dir(tmp_path_factory):
    config = dict(model="cnn", classes=[0, 1], max_train=30, max_test=20, epochs=1, batch_size=10)
    return execute_run(RunConfig.from_dict(config), tmp_path_factory.mktemp("cnn"))


def _metrics(run_dir):
    return io.read_json(run_dir / "run.json")["metrics"]


@pytest.mark.parametrize("name", ["hessian", "landscape", "ntk"])
def test_the_budget_is_a_checked_setting(name):
    spec = registry.get(name)
    assert spec.settings().memory_budget is None
    for good in ("2G", "512MiB", 10**9):
        assert spec.parse({"memory_budget": good}).memory_budget == good
    for bad in ("lots", 0, -3, True):
        with pytest.raises(ConfigError, match="memory_budget"):
            spec.parse({"memory_budget": bad})


def test_a_budget_below_one_sample_stops_the_metric_with_its_estimate(cnn_run_dir, capsys):
    assert cli.main(["hessian", str(cnn_run_dir), "--memory-budget", "100K", "--no-figures"]) != 0
    err = capsys.readouterr().err
    assert "on one sample and one direction would take about" in err
    assert "over the memory budget of 100.0 KiB (the budget given)" in err
    with pytest.raises(ConfigError, match="over the memory budget"):
        run_metric(cnn_run_dir, "hessian", {"memory_budget": "100K", "figures": False})


def test_a_budget_that_fits_gives_the_same_numbers(run_dir):
    run_metric(run_dir, "hessian", {"figures": False, "density": False})
    free = dict(_metrics(run_dir))
    run_metric(run_dir, "hessian", {"figures": False, "density": False, "memory_budget": "64M"})
    assert _metrics(run_dir)["hessian.lambda_max"] == pytest.approx(free["hessian.lambda_max"], rel=1e-12)


def _assert_split_equals_one_process(run_dir, seed: str, *split: str) -> None:
    """The Lanczos hessian metric with the extra options ``split`` (a Dask cluster or local workers) against the
    same in this process, and its λ_max against the dense Hessian's."""
    settings = ["--method", "lanczos", "--top-k", "2", "--no-figures", "--seed", seed]
    assert cli.main(["hessian", str(run_dir), *settings]) == 0
    local = dict(_metrics(run_dir))
    assert cli.main(["hessian", str(run_dir), *settings, *split]) == 0
    parallel = _metrics(run_dir)
    for key in ("hessian.lambda_max", "hessian.lambda_min", "hessian.trace"):
        assert parallel[key] == pytest.approx(local[key], rel=1e-9, abs=1e-12), key
    obj = load_run(run_dir).objective()
    exact = np.linalg.eigvalsh(obj.hessian().numpy())
    assert parallel["hessian.lambda_max"] == pytest.approx(exact[-1], rel=1e-8)


def test_dask_hessian_equals_one_process(run_dir):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        _assert_split_equals_one_process(run_dir, "1", "--dask", c.scheduler_address)


def test_dask_needs_the_matrix_free_path(run_dir):
    with pytest.raises(ConfigError, match="needs method = 'lanczos'"):
        run_metric(run_dir, "hessian", {"dask": "tcp://127.0.0.1:1", "method": "dense", "figures": False})
    with pytest.raises(ConfigError, match="structure"):
        run_metric(
            run_dir, "hessian", {"dask": "tcp://127.0.0.1:1", "method": "lanczos", "structure": True, "figures": False}
        )


def test_local_worker_processes_give_the_one_process_hessian(run_dir):
    _assert_split_equals_one_process(run_dir, "2", "--workers", "2")


def test_workers_are_checked_before_any_work(run_dir):
    with pytest.raises(ConfigError, match="workers"):
        run_metric(run_dir, "hessian", {"workers": 0, "figures": False})
    with pytest.raises(ConfigError, match="set dask or workers, not both"):
        run_metric(run_dir, "hessian", {"workers": 2, "dask": "tcp://127.0.0.1:1", "method": "lanczos"})
    with pytest.raises(ConfigError, match="metrics.hessian.workers.*needs method = 'lanczos'"):
        run_metric(run_dir, "hessian", {"workers": 2, "method": "dense", "figures": False})
    with pytest.raises(ConfigError, match="drop workers or this"):
        run_metric(run_dir, "hessian", {"workers": 2, "method": "lanczos", "trajectory": True, "figures": False})
