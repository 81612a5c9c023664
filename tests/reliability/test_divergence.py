"""Divergence is its own status: training stops at the first NaN or infinite loss or parameter, keeps what it
recorded, and the run is ``diverged`` in run.json, the run command, the sweep summary and the report (never
plotted)."""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from qlandscape import cli
from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.models.config import build_model
from qlandscape.runs.config import RunConfig
from qlandscape.runs.layout import check_run, is_complete, is_finished
from qlandscape.runs.report import write_report
from qlandscape.runs.run import execute, load_run, set_flat_parameters
from qlandscape.runs.sweep import run_sweep
from qlandscape.train.trainer import TrainConfig, TrainingDiverged, TrainResult, evaluate, train
from tests.reliability.run_dirs import TINY

# An MLP whose one SGD step lands where the evaluation after it is NaN: the "loss turns NaN at the end".
DIVERGING = dict(
    TINY, model="mlp", width=4, depth=1, optimizer="sgd", lr=1e200, epochs=1, batch_size=20, max_train=20, max_test=10
)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    return x, (x[:, 0] > 0).long()


def _loss_turning_nan(after_calls: int, batch: int):
    """Cross-entropy that becomes NaN from its ``after_calls``-th call on batches of ``batch`` samples on."""
    calls = []

    def loss(out, y):
        value = F.cross_entropy(out, y)
        if out.shape[0] == batch:
            calls.append(1)
            if len(calls) > after_calls:
                return value * math.nan
        return value

    return loss


def test_a_nan_minibatch_loss_stops_training_before_its_step():
    x, y = _data()
    config = TrainConfig(lr=0.1, epochs=3, batch_size=4, record_every=1, loss=_loss_turning_nan(3, 4))
    with pytest.raises(TrainingDiverged, match="training loss became nan at step 3") as err:
        train(nn.Linear(4, 2).double(), x, y, config=config)
    d, result = err.value.divergence, err.value.result
    assert (d.quantity, d.step, d.epoch) == ("training loss", 3, 1.5) and math.isnan(d.value)
    np.testing.assert_array_equal(result.steps, [0, 1, 2, 3])  # every finite point recorded before it
    assert np.isfinite(result.trajectory).all() and np.isfinite(result.train_loss).all()
    assert isinstance(err.value, FloatingPointError)  # what callers caught before


def test_infinite_parameters_stop_training_unrecorded():
    x, y = _data()
    x = x * 100  # gradients far above 1: one step of lr 1e308 overflows
    config = TrainConfig(optimizer="sgd", lr=1e308, epochs=2, batch_size=8)
    with pytest.raises(TrainingDiverged, match="parameters became") as err:
        train(nn.Linear(4, 2).double(), x, y, config=config)
    d, result = err.value.divergence, err.value.result
    assert d.quantity == "parameters" and d.step == 1 and math.isinf(d.value)
    assert result.trajectory.shape == (1, 10) and np.isfinite(result.trajectory).all()  # the init point only


def test_nan_at_the_last_evaluation_is_divergence_not_a_complete_run():
    x, y = _data()
    # evaluations run on all 8 samples (train then test): the fifth is the training loss after the last step
    loss = _loss_turning_nan(4, 8)
    with pytest.raises(TrainingDiverged, match="evaluated training loss became nan at step 4") as err:
        train(nn.Linear(4, 2).double(), x, y, config=TrainConfig(lr=0.1, epochs=2, batch_size=4, loss=loss))
    result = err.value.result
    assert np.isfinite(result.train_loss[:2]).all() and math.isnan(result.train_loss[2])
    np.testing.assert_array_equal(result.times, [0, 1])  # the point whose evaluation was NaN is not recorded
    assert result.best_train_index == int(np.argmin(result.train_loss[:2]))  # never the NaN epoch


def test_the_best_epoch_skips_non_finite_losses():
    losses = np.array([0.7, 0.2, math.nan, math.inf, 0.3])
    result = TrainResult(*(np.zeros(5),) * 4, losses, *(np.zeros(5),) * 3, seconds=0.0)
    assert result.best_train_index == 1 and int(np.argmin(losses)) == 2  # what np.argmin alone picked
    with pytest.raises(ValueError, match="no finite training loss"):
        _ = TrainResult(*(np.zeros(2),) * 4, np.full(2, math.nan), *(np.zeros(2),) * 3, seconds=0.0).best_train_index


def test_a_diverged_run_is_recorded_diverged_with_where_and_the_last_finite_values(tmp_path, capsys):
    config = RunConfig.from_dict({**DIVERGING, "metrics": {"hessian": {"figures": False}}})
    done = execute(config, tmp_path)
    assert done.computed and done.status == "diverged"
    info = io.read_json(done.path / "run.json")
    d = info["divergence"]
    assert (d["quantity"], d["value"], d["step"], d["epoch"]) == ("evaluated training loss", "nan", 1, 1.0)
    assert info["status"] == "diverged" and info["metrics"] == {} and info["manifest"] == {}
    assert not (done.path / "results").exists()  # no metric on a diverged run
    arrays = io.read_npz(done.path / "arrays.npz")
    assert arrays["trajectory"].shape == (1, info["model"]["n_params"]) and np.isfinite(arrays["trajectory"]).all()
    # the last finite values are those of the initial model, evaluated here independently
    data = config.data.load()
    model = set_flat_parameters(_model(config, data), arrays["trajectory"][0])
    x_train, y_train = torch.tensor(data.x_train), torch.tensor(data.y_train)
    loss, accuracy = evaluate(model, x_train, y_train)
    assert d["last_finite"]["train_loss"] == pytest.approx(loss, rel=1e-12)
    assert d["last_finite"]["train_accuracy"] == accuracy and d["best_train_epoch"] == 0

    assert is_finished(done.path) and not is_complete(done.path)
    assert not execute(config, tmp_path).computed  # a rerun keeps it: the same config diverges again
    assert execute(config, tmp_path, force=True).computed
    with pytest.raises(ConfigError, match="the run is 'diverged'"):
        load_run(done.path)

    assert cli.main(["hessian", str(done.path)]) == 2
    assert "diverged" in capsys.readouterr().err
    args = ["run", "--out", str(tmp_path), "--quiet"] + [f"--set={k}={_toml(v)}" for k, v in DIVERGING.items()]
    assert cli.main(args) == 1
    out, err = capsys.readouterr()
    assert "status: diverged" in out and "evaluated training loss became nan at step 1" in out
    assert "Traceback" not in out + err


def _model(config, data):
    return build_model(config.network, data.image_shape, data.n_classes, seed=config.training.seed)


def _toml(value):
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_a_sweep_and_its_report_count_diverged_runs_and_never_plot_them(tmp_path, capsys):
    base = {k: v for k, v in DIVERGING.items() if k != "lr"}
    sweep = tmp_path / "sweep.toml"
    lines = [f"{k} = {_toml(v) if not isinstance(v, list) else v}" for k, v in base.items()]
    sweep.write_text("[base]\n" + "\n".join(lines) + "\n[grid]\nlr = [0.05, 1e200]\nseed = [0, 1]\n")
    out = tmp_path / "out"
    assert cli.main(["sweep", str(sweep), "--out", str(out), "--workers", "1", "--quiet"]) == 0  # both are results
    printed, err = capsys.readouterr()
    assert "4 runs in" in printed and "2 complete, 0 failed, 2 diverged (4 computed by this sweep)" in printed
    assert err.count("diverged ") == 2 and "Traceback" not in err
    assert io.read_json(out / "sweep.json")["counts"] == {"complete": 2, "diverged": 2}

    files = write_report(out, tmp_path / "report")
    page = files.markdown.read_text()
    assert files.n_diverged == 2 and "## Diverged runs (not plotted)" in page
    # the same report without the diverged runs: the same figures and summary of the complete ones
    alone = tmp_path / "alone"
    for row in run_sweep(sweep, out, workers=1, progress=False):
        if check_run(out / row["id"]).status == "complete":
            shutil.copytree(out / row["id"], alone / row["id"])
    reference = write_report(alone, tmp_path / "reference")
    assert [p.name for p in files.figures] == [p.name for p in reference.figures]
    groups = {r["lr"]: r for r in _csv(files.summary_csv)}
    (expected,) = _csv(reference.summary_csv)
    diverged = groups["1e+200"]  # counted among its group's runs, averaged into nothing
    assert (diverged["n_complete"], diverged["n_runs"], diverged["train_loss.mean"]) == ("0", "2", "nan")
    statistics = [k for k in expected if k.rsplit(".", 1)[-1] in ("mean", "std", "min", "max")]
    assert statistics and all(groups["0.05"][k] == expected[k] for k in statistics)


def _csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))
