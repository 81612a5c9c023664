"""Training loop: reproducibility, trajectory recording, no mutation of the caller's model, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import qlandscape.train
from qlandscape.core.errors import ConfigError
from qlandscape.models.qnn import PatchQNN
from qlandscape.train.trainer import TrainConfig, Trainer, flat_parameters, train


def test_same_seed_same_trajectory_qnn(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, n_qubits=3, n_layers=1, patch_size=3, stride=3)
    config = TrainConfig(epochs=2, batch_size=3, lr=0.1, seed=4)
    _, a = train(model, x, y, config=config)
    _, b = train(model, x, y, config=config)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert a.trajectory.shape == (3, model.n_params)  # init + one point per epoch
    np.testing.assert_array_equal(a.times, [0, 1, 2])
    _, c = train(model, x, y, config=TrainConfig(epochs=2, batch_size=3, lr=0.1, seed=5))
    assert not np.array_equal(a.trajectory, c.trajectory)


def test_caller_model_is_not_changed(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, n_qubits=3, n_layers=1, patch_size=3, stride=3)
    before = flat_parameters(model).clone()
    trained, result = train(model, x, y, config=TrainConfig(epochs=1, batch_size=4))
    assert torch.equal(flat_parameters(model), before)
    assert not torch.equal(flat_parameters(trained), before)
    np.testing.assert_array_equal(result.trajectory[-1], flat_parameters(trained).numpy())


def test_record_every_steps_and_sgd():
    x = torch.randn(40, 5, dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(5, 2)).double()
    _, result = train(
        model, x, y, config=TrainConfig(optimizer="sgd", lr=0.5, momentum=0.9, epochs=3, batch_size=10, record_every=2)
    )
    np.testing.assert_array_equal(result.steps, [0, 2, 4, 6, 8, 10, 12])
    np.testing.assert_allclose(result.times, result.steps / 4)
    assert result.train_accuracy[-1] > 0.9 and result.train_loss[-1] < result.train_loss[0]


@pytest.mark.parametrize(
    "schedule,expected", [("cosine", [0.5, 0.0, 0.5, 1.0]), ("cosine_restarts", [0.5, 1.0, 0.5, 1.0])]
)
def test_cosine_schedules(schedule, expected):
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.zeros(8, dtype=torch.long)
    trainer = Trainer(
        nn.Linear(3, 2).double(),
        x,
        y,
        config=TrainConfig(lr=1.0, epochs=4, batch_size=4, schedule=schedule, schedule_period=1),
    )
    lrs = []
    for _ in range(4):
        trainer.run_until(trainer.epoch + 0.5)
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, expected, atol=1e-12)
    # cosine matches torch's CosineAnnealingLR stepped once per optimiser step
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    if schedule == "cosine":
        got = []
        for _ in range(4):
            opt.step()
            ref.step()
            got.append(opt.param_groups[0]["lr"])
        np.testing.assert_allclose(got, [0.5, 0.0, 0.5, 1.0], atol=1e-12)


def test_epoch_clock_matches_a_scheduler_stepped_per_epoch():
    """schedule_unit="epoch": the lr only changes at epoch ends, exactly as CosineAnnealingLR(T_max=period)
    stepped once per epoch (how Kawase 2025 used it), while the default clock moves every step."""
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.zeros(12, dtype=torch.long)
    config = TrainConfig(lr=1.0, epochs=6, batch_size=4, schedule="cosine", schedule_period=2.5, schedule_unit="epoch")
    trainer = Trainer(nn.Linear(3, 2).double(), x, y, config=config)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2.5)
    for _ in range(6):
        within = []
        for _ in range(3):  # three steps per epoch
            within.append(trainer.optimizer.param_groups[0]["lr"])
            trainer.run_until((trainer.step + 1) / 3)
        assert within[0] == within[1] == within[2]
        assert abs(within[0] - opt.param_groups[0]["lr"]) < 1e-12
        opt.step()
        ref.step()
    with pytest.raises(ConfigError, match="schedule_unit"):
        TrainConfig(schedule_unit="batch").validate()


def test_fork_reproducible_and_different():
    x = torch.randn(32, 4, dtype=torch.float64)
    y = (x.sum(1) > 0).long()
    parent = Trainer(nn.Linear(4, 2).double(), x, y, config=TrainConfig(epochs=2, batch_size=8, lr=0.1))
    parent.run_until(0.5)
    a1, a2, b = parent.fork(1), parent.fork(1), parent.fork(2)
    for t in (a1, a2, b):
        t.run_until(2)
    assert torch.equal(flat_parameters(a1.model), flat_parameters(a2.model))
    assert not torch.equal(flat_parameters(a1.model), flat_parameters(b.model))


@pytest.mark.parametrize(
    "field,value", [("optimizer", "adagrad"), ("lr", -1.0), ("epochs", -2), ("batch_size", 0), ("schedule", "step")]
)
def test_bad_training_config(field, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value}).validate()
    assert str(value) in str(err.value)


@pytest.mark.parametrize(
    "field,value",
    [
        ("weight_decay", "0.1"),
        ("momentum", float("nan")),
        ("record_every", 2.5),
        ("schedule_period", "5"),
        ("weight_decay", math.inf),
        ("lr", True),
        ("seed", 1.5),
        ("seed", -1),
    ],
)
def test_train_config_numbers_are_validated(field, value):
    # before: TypeErrors from comparisons, or silently accepted (NaN momentum, fractional record_every)
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value}).validate()


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(40, 3, 3, dtype=torch.float64)
    y = (x.sum((1, 2)) > 0).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 2, dtype=torch.float64))
    return model, x, y


@pytest.mark.parametrize("schedule", ["cosine", "cosine_restarts"])
def test_fork_keeps_the_scheduled_learning_rate(schedule):
    model, x, y = _linear_problem()
    config = TrainConfig(optimizer="sgd", lr=0.1, epochs=4, batch_size=10, schedule=schedule, schedule_period=3)
    parent = Trainer(model, x, y, config=config).run_until(2)
    child = parent.fork(seed=5)
    assert child.optimizer.param_groups[0]["lr"] == parent.optimizer.param_groups[0]["lr"]
    assert parent.optimizer.param_groups[0]["lr"] < 0.1


def test_fork_with_the_parents_data_order_continues_the_parent_exactly():
    model, x, y = _linear_problem()
    config = TrainConfig(optimizer="adam", lr=0.05, epochs=4, batch_size=10, schedule="cosine")
    parent = Trainer(model, x, y, config=config).run_until(2)
    child = parent.fork(seed=5)
    child.generator.set_state(parent.generator.get_state())  # same data order from here on
    parent.run_until(3)
    child.run_until(3)
    np.testing.assert_array_equal(child.result().trajectory, parent.result().trajectory)


def test_test_inputs_without_test_labels_are_rejected():
    model, x, y = _linear_problem()
    with pytest.raises(ConfigError, match="y_test"):
        train(model, x, y, x[:20], None, TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="x_test"):
        train(model, x, y, None, y[:20], TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="y_test"):
        train(model, x, y, x[:20], y[:10], TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="y_train"):
        train(model, x, y[:30], config=TrainConfig(epochs=1))


def test_the_train_package_keeps_the_01_names():
    # qlandscape.train was a module in 0.1; the package face keeps its public names
    names = ("OPTIMIZERS", "SCHEDULES", "SCHEDULE_UNITS", "TrainConfig", "TrainResult", "Trainer", "evaluate")
    names += ("flat_parameters", "train")
    assert [name for name in names if not hasattr(qlandscape.train, name)] == []
    assert qlandscape.train.Trainer is Trainer
