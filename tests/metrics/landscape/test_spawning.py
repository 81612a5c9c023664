"""Parent-child spawning: identical children at the end, reproducibility, errors, plot and the CLI command."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape import spawning
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.metrics.landscape.spawning import spawn_experiment
from qlandscape.models.classical import CNN, MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots.spawning import plot_barrier_vs_spawn_time
from qlandscape.train.trainer import TrainConfig


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 6, 6, generator=g, dtype=torch.float64)
    y = (x[:, :3].mean((1, 2)) > x[:, 3:].mean((1, 2))).long() + 2 * (x[:, :, :3].mean((1, 2)) > 0.5).long()
    return x[:40], y[:40], x[40:], y[40:]


CONFIG = TrainConfig(optimizer="sgd", lr=0.2, momentum=0.5, epochs=2, batch_size=8)


def _spawn(data, model=None, times=(0, 0.5, 2), **kwargs):
    model = model if model is not None else MLP((6, 6), 4, width=8, depth=1, seed=0)
    return spawn_experiment(model, *data, CONFIG, times, **kwargs)


@pytest.fixture(scope="module")
def result(data):
    return _spawn(data)


def test_result_layout(result):
    assert isinstance(result, SpawnResult)
    np.testing.assert_array_equal(result.spawn_epochs, [0, 0.5, 2])
    np.testing.assert_array_equal(result.spawn_steps, [0, 2, 10])
    assert result.child_test_accuracy.shape == (3, 2) and result.test_errors.shape == (3, result.n_points)
    assert np.all(result.error_barrier >= 0) and np.all(result.loss_barrier >= 0)
    assert 0 <= result.parent_test_accuracy <= 1 and result.child_seeds == (1, 2) and not result.bn_reset
    # accuracies are the end points of the interpolation curve
    np.testing.assert_allclose(result.child_test_accuracy[:, 0], 1 - result.test_errors[:, 0])
    np.testing.assert_allclose(result.child_test_accuracy[:, 1], 1 - result.test_errors[:, -1])


def test_spawning_at_the_final_epoch_gives_identical_children(result):
    assert result.error_barrier[-1] == 0 and result.function_distance[-1] == 0
    assert result.parameter_distance[-1] == 0 and abs(result.loss_barrier[-1]) < 1e-12
    assert np.all(result.parent_child_distance[-1] == 0)
    assert result.child_test_accuracy[-1, 0] == result.child_test_accuracy[-1, 1] == result.parent_test_accuracy


def test_children_differ_from_each_other_and_from_the_parent_at_spawn_time_zero(result):
    assert result.parameter_distance[0] > 1e-3
    assert np.all(result.parent_child_distance[0] > 1e-3)


def test_spawning_is_reproducible_and_leaves_the_global_rng_alone(data, result):
    state = torch.get_rng_state()
    again = _spawn(data)
    assert torch.equal(torch.get_rng_state(), state)
    for name in (
        "error_barrier",
        "loss_barrier",
        "function_distance",
        "child_test_accuracy",
        "test_losses",
        "parameter_distance",
        "parent_child_distance",
    ):
        np.testing.assert_array_equal(getattr(again, name), getattr(result, name), err_msg=name)
    other = _spawn(data, child_seeds=(3, 4), times=(0,))
    assert other.parameter_distance[0] != result.parameter_distance[0]


@pytest.mark.parametrize("times, named", [((0, 2.5), "2.5"), ((-1,), "-1"), ((), "[]"), ((float("nan"),), "nan")])
def test_bad_spawn_times_raise_before_training(data, times, named):
    with pytest.raises(ConfigError) as info:
        _spawn(data, times=times)
    assert named in str(info.value) and "spawn_epochs" in str(info.value)


def test_dropout_children_do_not_depend_on_the_other_spawn_times(data):
    model = MLP((6, 6), 4, width=8, depth=1, dropout=0.3, seed=0)
    both = _spawn(data, model=model, times=(0, 1))
    alone = _spawn(data, model=model, times=(1,))
    assert both.error_barrier[1] == alone.error_barrier[0]
    np.testing.assert_array_equal(both.test_losses[1], alone.test_losses[0])


def test_bad_child_seeds(data):
    with pytest.raises(ConfigError, match="child_seeds"):
        _spawn(data, child_seeds=(1, 2, 3))


@pytest.mark.parametrize("seeds", [(1, 1), (1.5, 2), (True, 2)])
def test_spawn_child_seeds_must_be_two_different_integers(monkeypatch, seeds):
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


def test_batch_norm_model_uses_recomputed_statistics(data):
    model = CNN((6, 6), 4, channels=(2,), batch_norm=True, seed=0)
    res = _spawn(data, model=model, times=(1, 2), n_points=3)
    assert res.bn_reset and res.error_barrier[-1] == 0 and res.function_distance[-1] == 0


def test_batch_norm_parent_accuracy_is_measured_like_the_children():
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


def test_patch_qnn_spawns(data):
    x_train, y_train, x_test, y_test = data
    model = PatchQNN((6, 6), 2, n_qubits=2, n_layers=1, patch_size=3, stride=3)
    res = spawn_experiment(
        model,
        x_train[:16],
        y_train[:16] % 2,
        x_test[:8],
        y_test[:8] % 2,
        TrainConfig(epochs=1, batch_size=8),
        (0, 1),
        n_points=3,
    )
    assert res.model == "PatchQNN" and res.parameter_distance[0] > 0 and res.error_barrier[-1] == 0


def test_save_load_and_plot(tmp_path, result, data):
    io.save_result(result, tmp_path / "spawn")
    loaded = io.load_result(SpawnResult, tmp_path / "spawn")
    np.testing.assert_array_equal(loaded.error_barrier, result.error_barrier)
    assert loaded.child_seeds == result.child_seeds and loaded.train_config == result.train_config

    fig = plot_barrier_vs_spawn_time(result)
    assert len(fig.axes) == 3 and fig.axes[0].get_xscale() == "symlog"  # the third: the children's accuracies
    child_1, child_2, parent = fig.axes[2].get_lines()
    np.testing.assert_array_equal(child_1.get_ydata(), result.child_test_accuracy[:, 0])
    np.testing.assert_array_equal(child_2.get_ydata(), result.child_test_accuracy[:, 1])
    assert parent.get_ydata()[0] == result.parent_test_accuracy and "child 1" in fig.axes[2].get_ylabel()
    other = _spawn(data, parent_seed=1)
    fig = plot_barrier_vs_spawn_time([result, other, result], labels=["a", "a", "b"])
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(ConfigError, match="labels"):
        plot_barrier_vs_spawn_time([result, other], labels=["a"])
    shifted = dataclasses.replace(result, spawn_epochs=result.spawn_epochs + 0.25)
    with pytest.raises(ConfigError, match="distinct labels"):  # one label = seeds of one setting, one time axis
        plot_barrier_vs_spawn_time([result, shifted], labels=["a", "a"])


def test_cli_spawn_end_to_end(tmp_path, capsys):
    from qlandscape.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(
        'model = "cnn"\nclasses = [0, 1, 2]\nchannels = [2, 4]\nmax_train = 45\nmax_test = 24\n'
        'epochs = 1\nbatch_size = 15\noptimizer = "sgd"\nlr = 0.1\n'
    )
    code = main(
        [
            "spawn",
            str(config),
            "--spawn-epochs",
            "0,0.5,1",
            "--out",
            str(tmp_path / "out"),
            "--n-points",
            "5",
            "--quiet",
        ]
    )
    assert code == 0
    (folder,) = (tmp_path / "out").iterdir()
    assert folder.name.startswith("spawn-")
    for name in ("spawn.json", "spawn.npz", "spawn.png", "spawn.pdf"):
        assert (folder / name).stat().st_size > 0
    loaded = io.load_result(SpawnResult, folder / "spawn")
    np.testing.assert_array_equal(loaded.spawn_epochs, [0, 0.5, 1])
    assert loaded.error_barrier[-1] == 0
    out = capsys.readouterr().out
    assert "error barrier" in out
    # the printed table has each child's accuracy, as saved
    assert "child 1 acc" in out and "child 2 acc" in out
    rows = [line.split() for line in out.splitlines() if line.strip() and line.split()[0] in ("0", "0.5", "1")]
    assert [[float(v) for v in row[-2:]] for row in rows] == pytest.approx(loaded.child_test_accuracy, abs=5e-5)

    assert main(["spawn", str(config), "--spawn-epochs", "0,3", "--out", str(tmp_path / "bad")]) == 2
    assert "3.0" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["spawn", str(config), "--spawn-epochs", "0,x", "--out", str(tmp_path / "bad")]) == 2
