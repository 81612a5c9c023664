from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.merging import align
from qlandscape.merging.alignment import align_with_report
from qlandscape.merging.curves import linear_path
from qlandscape.merging.parameters import flat_parameters
from qlandscape.merging.periodic import angle_periods
from qlandscape.models.classical import CNN, MLP, recompute_bn_statistics
from qlandscape.models.qnn import PatchQNN
from tests.merging.conftest import trained


def _permuted_copy(model, generator):
    """The model with each hidden layer's units (channels) shuffled, written out by hand: rows of a layer, its
    batch-norm entries and the next layer's columns (the head's through Flatten's channel-major layout)."""
    out = copy.deepcopy(model)
    state = {k: v.clone() for k, v in out.state_dict().items()}
    if isinstance(model, MLP):
        linears = [k[: -len(".weight")] for k in state if k.endswith(".weight")]
        for layer, nxt in zip(linears[:-1], linears[1:], strict=True):
            perm = torch.randperm(state[f"{layer}.bias"].shape[0], generator=generator)
            state[f"{layer}.weight"] = state[f"{layer}.weight"][perm]
            state[f"{layer}.bias"] = state[f"{layer}.bias"][perm]
            state[f"{nxt}.weight"] = state[f"{nxt}.weight"][:, perm]
    else:
        convs = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
        for k, i in enumerate(convs):
            perm = torch.randperm(model.features[i].out_channels, generator=generator)
            for name in (f"features.{i}.weight", f"features.{i}.bias"):
                state[name] = state[name][perm]
            for field in ("weight", "bias", "running_mean", "running_var"):
                state[f"features.{i + 1}.{field}"] = state[f"features.{i + 1}.{field}"][perm]
            if k + 1 < len(convs):
                state[f"features.{convs[k + 1]}.weight"] = state[f"features.{convs[k + 1]}.weight"][:, perm]
            else:
                w = state["head.2.weight"]
                c, h, ww = model.feature_shape
                state["head.2.weight"] = w.reshape(w.shape[0], c, h * ww)[:, perm].reshape(w.shape)
    out.load_state_dict(state)
    return out


@pytest.mark.parametrize("which", ["trained_mlp", "trained_cnn"])
def test_weight_matching_recovers_a_known_permutation(which, request, digits):
    model = request.getfixturevalue(which)
    x, _, xt, yt = digits
    shuffled = _permuted_copy(model, torch.Generator().manual_seed(3))
    model.eval(), shuffled.eval()
    # the shuffle is a real one, and a symmetry: same function, other parameters
    assert torch.linalg.norm(flat_parameters(shuffled) - flat_parameters(model)) > 1.0
    torch.testing.assert_close(shuffled(xt), model(xt), rtol=0, atol=1e-12)
    before = {k: v.clone() for k, v in shuffled.state_dict().items()}
    aligned, report = align_with_report(model, shuffled)
    assert report is not None and report.converged
    for name, value in model.state_dict().items():
        torch.testing.assert_close(aligned.state_dict()[name].double(), value.double(), rtol=0, atol=1e-12)
    for name, value in shuffled.state_dict().items():  # the input is not changed
        assert torch.equal(value, before[name])
    path = linear_path(model, aligned, xt, yt, n_points=5, x_stats=x)
    assert path.barriers.loss_excess == pytest.approx(0.0, abs=1e-12)
    assert path.barriers.loss_max_minus_mean == pytest.approx(0.0, abs=1e-12)
    assert path.barriers.error_excess == 0.0


def test_aligned_batch_norm_model_keeps_its_function_after_statistics_are_recomputed(trained_cnn, digits):
    x, _, xt, _ = digits
    other = trained(CNN(x.shape[1:], 3, channels=(4, 6), batch_norm=True, seed=5), digits, seed=5)
    aligned = align(trained_cnn, other)
    other.eval(), aligned.eval()
    torch.testing.assert_close(aligned(xt), other(xt), rtol=0, atol=1e-10)
    reset_a = recompute_bn_statistics(aligned, None, x)
    reset_b = recompute_bn_statistics(other, None, x)
    torch.testing.assert_close(reset_a(xt), reset_b(xt), rtol=0, atol=1e-10)


def test_two_mlps_from_different_seeds_have_a_lower_barrier_after_alignment(digits):
    x, y, xt, yt = digits
    a = trained(MLP(x.shape[1:], 3, width=32, depth=1, seed=1), digits, seed=1, epochs=6)
    b = trained(MLP(x.shape[1:], 3, width=32, depth=1, seed=2), digits, seed=2, epochs=6)
    aligned = align(a, b)
    torch.testing.assert_close(aligned.eval()(xt), b.eval()(xt), rtol=0, atol=1e-12)
    naive = linear_path(a, b, xt, yt, n_points=21).barriers.loss_excess
    after = linear_path(a, aligned, xt, yt, n_points=21).barriers.loss_excess
    assert torch.linalg.norm(flat_parameters(aligned) - flat_parameters(a)) < torch.linalg.norm(
        flat_parameters(b) - flat_parameters(a)
    )
    assert after < 0.5 * naive, (naive, after)


def _qnn(seed=0):
    return PatchQNN((4, 4), 2, ansatz="hea", n_qubits=2, n_layers=2, patch_size=2, stride=2, seed=seed)


def test_periodic_alignment_undoes_whole_period_shifts():
    a = _qnn()
    g = torch.Generator().manual_seed(7)
    k = torch.randint(-3, 4, a.circuit_params.shape, generator=g).double()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.circuit_params.add_(2 * math.pi * k)
    x = torch.rand(10, 4, 4, generator=g, dtype=torch.float64) * math.pi
    y = torch.randint(0, 2, (10,), generator=g)
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=1e-12)  # identical outputs: a symmetry
    naive = linear_path(a, b, x, y, n_points=21).barriers
    aligned = align(a, b)
    torch.testing.assert_close(aligned.circuit_params, a.circuit_params, rtol=0, atol=1e-12)
    after = linear_path(a, aligned, x, y, n_points=21).barriers
    assert after.loss_excess == pytest.approx(0.0, abs=1e-12)
    assert naive.loss_excess > 0.05  # the straight line through other circuits climbs


def test_angle_periods_follow_the_generators():
    model = _qnn()
    periods = angle_periods(model)
    assert periods.shape == (model.n_params,)
    np.testing.assert_allclose(periods, 2 * math.pi)  # RY and RZ: G = -iP, eigenvalues ±i


def test_align_refuses_models_of_different_architectures(trained_mlp, digits):
    other = MLP(digits[0].shape[1:], 3, width=10, depth=2)
    with pytest.raises(ConfigError, match="parameter count"):
        align(trained_mlp, other)
    with pytest.raises(ConfigError, match="MLP"):
        align(trained_mlp, _qnn())
    with pytest.raises(ConfigError, match="method"):
        align(trained_mlp, trained_mlp, method="bogus")
    with pytest.raises(ConfigError, match="options"):
        align(trained_mlp, trained_mlp, sweeps=3)
