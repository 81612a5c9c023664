"""Gradient variance (barren plateaus): analytic values, engine vs PennyLane, standard errors, fits, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.metrics.fits import fit_decay
from qlandscape.metrics.gradient_results import PatchVarianceCurve, VarianceCurve
from qlandscape.metrics.gradients import (
    circuit_features,
    circuit_gradients,
    gradient_variance,
    patch_variance,
    qnn_gradient_variance,
    sample_parameters,
    variance_curve,
    variance_statistics,
)
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots.gradients import plot_patch_variance, plot_variance_curve
from qlandscape.sim.circuits import build_circuit, parse_spec

SINGLE_RY = parse_spec({"name": "single_ry", "block": [{"type": "layers", "repeat": 1, "gates": ["RY"]}]})


@pytest.mark.parametrize("cost", ["global", "local"])
def test_single_ry_matches_analytic_half(cost):
    # <Z> = cos(theta), d<Z>/dtheta = -sin(theta), Var over uniform theta = E[sin^2] = 1/2
    result = gradient_variance(SINGLE_RY, 1, 1, samples=3000, cost=cost, seed=4)
    assert result.n_params == 1 and result.n_samples == 3000
    assert result.standard_error > 0
    assert abs(result.mean_variance - 0.5) < 4 * result.standard_error
    assert result.variance_se[0] == pytest.approx(result.standard_error)
    # Var[sin^2] = 3/8 - 1/4 = 1/8, so the SE is about sqrt(1/8 / K)
    assert result.standard_error == pytest.approx(math.sqrt(0.125 / 3000), rel=0.15)


def test_projector_cost_is_a_quarter_on_one_qubit():
    # 1 - p(0) = (1 - <Z>)/2: the same draws give exactly a quarter of the variance
    local = gradient_variance(SINGLE_RY, 1, 1, samples=50, cost="local", seed=2)
    projector = gradient_variance(SINGLE_RY, 1, 1, samples=50, cost="projector", seed=2)
    assert projector.mean_variance == pytest.approx(local.mean_variance / 4, rel=1e-12)


def _pennylane_gradients(circuit, params, features, cost):
    import pennylane as qml

    dev = qml.device("default.qubit", wires=circuit.n_qubits)
    gates = {"RX": qml.RX, "RY": qml.RY, "RZ": qml.RZ, "CNOT": qml.CNOT, "CZ": qml.CZ}
    n = circuit.n_qubits

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def probabilities(theta):
        for gate in circuit.gates:
            if gate.source == "param":
                gates[gate.name](theta[gate.index], wires=gate.wires[0])
            elif gate.source == "feature":
                gates[gate.name](features[gate.index], wires=gate.wires[0])
            else:
                gates[gate.name](wires=list(gate.wires))
        if cost == "global":
            return qml.expval(qml.prod(*[qml.PauliZ(w) for w in range(n)]))
        if cost == "local":
            return [qml.expval(qml.PauliZ(w)) for w in range(n)]
        return qml.probs(wires=range(n))

    def value(theta):
        out = probabilities(theta)
        if cost == "global":
            return out
        if cost == "local":
            return torch.stack(list(out)).mean()
        return 1 - out[0]

    grads = []
    for theta in params:
        t = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(value(t), t)
        grads.append(g)
    return torch.stack(grads)


@pytest.mark.parametrize(
    "cost,ansatz,inputs",
    [("global", "hea", "zero"), ("local", "strongly_entangling", "random"), ("projector", "reuploading", "random")],
)
def test_engine_matches_default_qubit(cost, ansatz, inputs):
    circuit = build_circuit(ansatz, 3, 2)
    params = sample_parameters(circuit, 5, seed=7)[:, 0]
    features = circuit_features(circuit, inputs, seed=7)
    _, ours = circuit_gradients(circuit, params, cost=cost, features=features, max_batch=2)
    theirs = _pennylane_gradients(circuit, params, features[0, 0], cost)
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)
    result = gradient_variance(circuit, samples=5, cost=cost, inputs=inputs, seed=7)
    var, var_se, mean_var, mean_se = variance_statistics(theirs.numpy())
    np.testing.assert_allclose(result.variance, var, atol=1e-10, rtol=0)
    assert abs(result.mean_variance - mean_var) < 1e-10 and abs(result.standard_error - mean_se) < 1e-10


def test_standard_error_shrinks_with_samples():
    small = gradient_variance("hea", 3, 2, samples=40, seed=1)
    large = gradient_variance("hea", 3, 2, samples=1280, seed=1)
    assert large.standard_error < small.standard_error / 2.5  # expected ratio sqrt(32) ~ 5.7
    assert abs(large.mean_variance - small.mean_variance) < 4 * math.hypot(small.standard_error, large.standard_error)


def test_batches_do_not_change_the_estimate():
    whole = gradient_variance("hea", 3, 3, samples=30, seed=5)
    split = gradient_variance("hea", 3, 3, samples=30, seed=5, max_batch=7)
    np.testing.assert_allclose(whole.variance, split.variance, atol=1e-14, rtol=0)


def test_ansatz_init_uses_the_spec_distribution():
    circuit = build_circuit("hea", 2, 1)
    circuit = type(circuit)(**{**circuit.__dict__, "init": {"distribution": "normal", "std": 0.01}})
    near_zero = gradient_variance(circuit, samples=40, init="ansatz", cost="local")
    uniform = gradient_variance(circuit, samples=40, init="uniform", cost="local")
    assert near_zero.mean_variance < 0.1 * uniform.mean_variance


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: gradient_variance("hea", 0, 2), "qubits = 0"),
        (lambda: gradient_variance("hea", 2, 2, samples=1), "samples = 1"),
        (lambda: gradient_variance("no_such_ansatz", 2, 2), "no_such_ansatz"),
        (lambda: gradient_variance("hea", 2, 2, cost="medium"), "medium"),
        (lambda: variance_curve("hea", qubits=[0, 2], layers=[1]), "qubits = 0"),
        (lambda: variance_curve("hea", qubits=[2], layers=[1], samples=1), "samples = 1"),
        (lambda: variance_curve("no_such_ansatz", qubits=[2], layers=[1]), "no_such_ansatz"),
        (lambda: variance_curve("hea", qubits=[2], layers=[1], init="gaussian"), "gaussian"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


@pytest.mark.parametrize("max_batch", [0, -1])
def test_gradient_variance_rejects_a_bad_max_batch(max_batch):
    with pytest.raises(ConfigError, match="max_batch"):
        gradient_variance("hea", 2, 1, samples=4, max_batch=max_batch)
    circuit = build_circuit("hea", 2, 1)
    with pytest.raises(ConfigError, match="max_batch"):
        circuit_gradients(circuit, sample_parameters(circuit, 3)[:, 0], max_batch=max_batch)


def test_qnn_gradient_variance_needs_a_patch_qnn(tiny_images):
    x, y = tiny_images
    with pytest.raises(ConfigError, match="model = 'MLP'.*PatchQNN"):  # a classical net has no circuit to re-draw
        qnn_gradient_variance(MLP((6, 6), 2, width=3, depth=1), x, y, samples=3)


def test_qnn_gradient_variance_rejects_a_bad_max_batch():
    model = PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2)
    x, y = torch.rand(3, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 0])
    with pytest.raises(ConfigError, match="max_batch"):
        qnn_gradient_variance(model, x, y, samples=3, max_batch=0)


def test_gradient_variance_ignores_a_readout_beyond_the_circuit():
    # kawase measures qubits 0..4; the bare-circuit costs read the state, so 2..4 qubits must work
    result = gradient_variance("kawase", 3, 1, samples=4, seed=2)
    assert result.n_qubits == 3 and np.isfinite(result.mean_variance)
    curve = variance_curve("kawase", qubits=[2, 3], layers=[1], samples=4)
    assert np.all(curve.mean_variance > 0)
    full = build_circuit("kawase", 8, 1)  # where the readout fits, the numbers are those of the spec's circuit
    np.testing.assert_array_equal(
        gradient_variance("kawase", 8, 1, samples=4, seed=2).variance,
        gradient_variance(full, samples=4, seed=2).variance,
    )


def test_fit_decay_recovers_an_exact_exponential():
    n = np.arange(2, 9)
    v = np.exp(1.5 - 0.7 * n)
    fit = fit_decay(n, v, 0.05 * v)
    assert fit.rate == pytest.approx(0.7, abs=1e-10) and fit.intercept == pytest.approx(1.5, abs=1e-9)
    assert fit.rate_low < 0.7 < fit.rate_high and fit.n_points == 7
    noisy = v * np.exp(np.random.default_rng(0).normal(0, 0.05, n.size))
    fit = fit_decay(n, noisy, 0.05 * noisy)
    assert fit.rate_low < 0.7 < fit.rate_high
    assert math.isnan(fit_decay([3], [0.1], [0.01]).rate)


def test_variance_curve_decays_and_round_trips(tmp_path):
    curve = variance_curve("hea", qubits=range(1, 6), layers=(1, 4), samples=60, cost="global")
    assert curve.mean_variance.shape == (2, 5) and curve.standard_error.shape == (2, 5)
    assert (curve.mean_variance > 0).all() and (curve.standard_error > 0).all()
    assert (curve.rate > 0.2).all() and (curve.rate_low < curve.rate).all() and (curve.rate < curve.rate_high).all()
    assert curve.n_params[1, 4] == 2 * 5 * 4
    save_result(curve, tmp_path / "gradvar")
    back = load_result(VarianceCurve, tmp_path / "gradvar")
    np.testing.assert_array_equal(back.mean_variance, curve.mean_variance)
    assert back.ansatz == "hea" and back.samples == 60

    fig = plot_variance_curve(curve)
    assert "b=" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_qnn_loss_variance_engine_matches_default_qubit(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, ansatz="hea", n_qubits=2, n_layers=1, patch_size=3, stride=3, seed=0)
    ours = qnn_gradient_variance(model, x[:3], y[:3], samples=4, seed=3)
    theirs = qnn_gradient_variance(model.with_backend("default.qubit"), x[:3], y[:3], samples=4, seed=3)
    assert ours.n_params == 4 * model.circuit.n_params and ours.n_patches == 4
    np.testing.assert_allclose(ours.variance, theirs.variance, atol=1e-10, rtol=0)
    assert ours.cost == "loss:cross_entropy"


def test_patch_variance_and_plot(tiny_images):
    x, y = tiny_images
    result = patch_variance(x, y, grids=((6, 6), (3, 3), (3, 1)), n_qubits=2, n_layers=1, samples=8)
    assert list(result.n_patches) == [1, 4, 16]
    assert (result.mean_variance > 0).all() and np.isfinite(result.exponent)
    assert plot_patch_variance(result).axes
    assert isinstance(result, PatchVarianceCurve)


def test_cli_writes_results_and_figure(tmp_path, capsys):
    from qlandscape.cli import build_parser, gradvar

    parser = build_parser(["gradvar"])
    args = parser.parse_args(
        [
            "gradvar",
            "--qubits",
            "1:3",
            "--layers",
            "1,2",
            "--samples",
            "10",
            "--cost",
            "local",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    args.progress = not args.quiet
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "L=2" in printed and "b =" in printed
    for name in ("gradvar.json", "gradvar.npz", "gradvar.png", "gradvar.pdf"):
        assert (tmp_path / name).exists()
    with pytest.raises(ConfigError, match="2-x"):
        gradvar.parse_int_range("qubits", "2-x")
