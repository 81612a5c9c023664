"""Regression tests for defects found in the audit of the model-side modules (circuits, qnn, train, gradients)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.gradients import circuit_gradients, gradient_variance, qnn_gradient_variance, sample_parameters
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.circuits import build_circuit, parse_spec
from qlandscape.train.trainer import TrainConfig, Trainer, train


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(40, 3, 3, dtype=torch.float64)
    y = (x.sum((1, 2)) > 0).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 2, dtype=torch.float64))
    return model, x, y


# ------------------------------------------------------------------------------------------------ train.fork
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


# ------------------------------------------------------------------------------------------------ train inputs
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


# ------------------------------------------------------------------------------------------------ circuit specs
def _spec(**layer_fields):
    return {
        "name": "t",
        "block": [
            {"type": "encode", "gates": ["x:RY"]},
            {"type": "layers", "gates": ["RY"], "entangler": "CZ", **layer_fields},
        ],
    }


@pytest.mark.parametrize("flag,value", [("reupload", "false"), ("skip_last_entangler", "no"), ("reupload", 1)])
def test_boolean_block_fields_must_be_booleans(flag, value):
    with pytest.raises(ConfigError, match=flag):
        parse_spec(_spec(**{flag: value}))


@pytest.mark.parametrize(
    "init,named",
    [
        ({"distribution": "uniform", "lo": 0.0, "hi": 0.1}, "init.hi"),  # typo: silently [0, 2 pi) before
        ({"distribution": "normal", "mean": 1.0}, "init.mean"),  # not a field: silently ignored before
        ({"distribution": "normal", "std": -1.0}, "init.std"),
        ({"low": 3.0, "high": 1.0}, "init"),
        ({"low": "a"}, "init.low"),
        ("uniform", "init"),  # AttributeError before
    ],
)
def test_init_table_is_validated(init, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_spec({**_spec(), "init": init})


def test_valid_init_tables_still_work():
    normal = parse_spec({**_spec(), "init": {"distribution": "normal", "std": 0.5}}).build(2, 1)
    uniform = parse_spec({**_spec(), "init": {"low": 0.0, "high": 1.0}}).build(2, 1)
    assert normal.init_params((3,)).shape == (3, 2)
    assert 0 <= float(uniform.init_params((50,)).min()) and float(uniform.init_params((50,)).max()) < 1


@pytest.mark.parametrize("mq", [[], ["a"], 0, [True]])
def test_spec_measure_qubits_are_validated(mq):
    # [] silently measured every qubit; strings and scalars crashed with a TypeError at build time
    with pytest.raises(ConfigError, match="measure_qubits"):
        parse_spec({**_spec(), "measure_qubits": mq})


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"measure_qubits": []}, "measure_qubits"),
        ({"observables": []}, "observables"),
        ({"observables": "XZ"}, "observables"),
    ],
)
def test_build_rejects_an_empty_or_string_readout(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        build_circuit("hea", 2, 1, **kwargs)


def test_linear_head_with_no_readout_is_a_config_error():
    with pytest.raises(ConfigError, match="measure_qubits"):  # ZeroDivisionError before
        PatchQNN((8, 8), 2, aggregation="linear", measure_qubits=[])


def test_encode_sequence_without_data_gate_is_rejected():
    # the block used up n features that no gate read: a 2-qubit circuit asked for 4 features and ignored two
    spec = {"name": "t", "block": [{"type": "encode", "gates": ["RY"]}, {"type": "layers", "gates": ["x:RY"]}]}
    with pytest.raises(ConfigError, match=r"block\[0\]\.gates"):
        parse_spec(spec)
    alternate = {"name": "t", "block": [{"type": "encode", "alternate": [["x:RY"], ["RX"]]}]}
    with pytest.raises(ConfigError, match=r"alternate\[1\]"):
        parse_spec(alternate)


def test_block_that_is_not_a_table_is_a_config_error():
    with pytest.raises(ConfigError, match=r"block\[0\]"):
        parse_spec({"name": "t", "block": ["encode"]})


def test_numpy_integer_sizes_are_accepted():
    circuit = build_circuit("hea", np.int64(3), np.int64(2))
    assert circuit == build_circuit("hea", 3, 2)
    model = PatchQNN((8, 8), np.int64(2), n_qubits=4, n_layers=1, seed=np.int64(3))
    assert torch.equal(model.circuit_params, PatchQNN((8, 8), 2, n_qubits=4, n_layers=1, seed=3).circuit_params)


# ------------------------------------------------------------------------------------------------ PatchQNN inputs
@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"encoding_scale": float("nan")}, "encoding_scale"),
        ({"encoding_scale": math.inf}, "encoding_scale"),
        ({"output_scale": "5"}, "output_scale"),
    ],
)
def test_patch_qnn_scales_are_validated(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        PatchQNN((8, 8), 2, **kwargs)


def test_patch_qnn_rejects_a_single_unbatched_image_by_shape():
    model = PatchQNN((8, 8), 2)
    with pytest.raises(ConfigError, match=r"images shape = \(8, 8\)"):
        model(torch.rand(8, 8, dtype=torch.float64))
    x = torch.rand(3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(model(x.unsqueeze(1)), model(x), rtol=0, atol=0)  # one channel still works


# ------------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("max_batch", [0, -1])
def test_gradient_variance_rejects_a_bad_max_batch(max_batch):
    with pytest.raises(ConfigError, match="max_batch"):
        gradient_variance("hea", 2, 1, samples=4, max_batch=max_batch)
    circuit = build_circuit("hea", 2, 1)
    with pytest.raises(ConfigError, match="max_batch"):
        circuit_gradients(circuit, sample_parameters(circuit, 3)[:, 0], max_batch=max_batch)


def test_qnn_gradient_variance_rejects_a_bad_max_batch():
    model = PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2)
    x, y = torch.rand(3, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 0])
    with pytest.raises(ConfigError, match="max_batch"):
        qnn_gradient_variance(model, x, y, samples=3, max_batch=0)


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


# ------------------------------------------------------------------------------------------------ data
def test_empty_npz_is_a_config_error(tmp_path):
    from qlandscape.data.datasets import load_dataset

    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 4, 4)), y=np.zeros(0, dtype=np.int64))
    with pytest.raises(ConfigError, match="npz x shape"):  # numpy's "zero-size array to reduction" before
        load_dataset(str(path))


def test_gradient_variance_ignores_a_readout_beyond_the_circuit():
    # kawase measures qubits 0..4; the bare-circuit costs read the state, so 2..4 qubits must work
    result = gradient_variance("kawase", 3, 1, samples=4, seed=2)
    assert result.n_qubits == 3 and np.isfinite(result.mean_variance)
    from qlandscape.metrics.gradients import variance_curve

    curve = variance_curve("kawase", qubits=[2, 3], layers=[1], samples=4)
    assert np.all(curve.mean_variance > 0)
    full = build_circuit("kawase", 8, 1)  # where the readout fits, the numbers are those of the spec's circuit
    np.testing.assert_array_equal(
        gradient_variance("kawase", 8, 1, samples=4, seed=2).variance,
        gradient_variance(full, samples=4, seed=2).variance,
    )
