"""Our engine against PennyLane: outputs, gradients and Hessians of a small PatchQNN loss, every ansatz."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim.backends import make_backend
from qlandscape.sim.circuits import build_circuit, catalogue
from qlandscape.sim.engine import simulate

# kawase needs >= 5 qubits and 32 features per block: it has its own checks (test_kawase.py and the slow test below)
ANSATZE = sorted(set(catalogue()) - {"kawase"})


def small_qnn(ansatz: str, backend: str = "torch", **kw) -> PatchQNN:
    # 6x6 images, 3x3 patches with stride 3: 4 patches; 3 qubits read average-pooled features
    return PatchQNN(
        (6, 6), 2, ansatz=ansatz, n_qubits=3, n_layers=2, patch_size=3, stride=3, backend=backend, seed=3, **kw
    )


@pytest.mark.parametrize("ansatz", ANSATZE)
def test_engine_matches_default_qubit(ansatz, tiny_images):
    x, y = tiny_images
    x, y = x[:4], y[:4]
    model = small_qnn(ansatz, observables=["Z", "X", "Y"])
    ref = model.with_backend("default.qubit")
    assert torch.allclose(model.patch_outputs(x), ref.patch_outputs(x), atol=1e-10, rtol=0)
    ours, theirs = Objective(model, x, y), Objective(ref, x, y)
    assert not theirs.functorch
    assert abs(float(ours.loss()) - float(theirs.loss())) < 1e-10
    assert torch.allclose(ours.grad(), theirs.grad(), atol=1e-10, rtol=0)
    h_ours, h_theirs = ours.hessian(), theirs.hessian()
    assert h_ours.shape == (model.n_params, model.n_params)
    assert torch.allclose(h_ours, h_theirs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("ansatz", ANSATZE)
def test_lightning_matches_engine(ansatz, tiny_images):
    x, y = tiny_images
    x, y = x[:3], y[:3]
    model = small_qnn(ansatz)
    ours, light = Objective(model, x, y), Objective(model.with_backend("lightning.qubit"), x, y)
    assert torch.allclose(model.patch_outputs(x), light.model.patch_outputs(x), atol=1e-8, rtol=0)
    assert torch.allclose(ours.grad(), light.grad(), atol=1e-8, rtol=0)


def test_parameter_shift_hessian_matches_engine(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, ansatz="hea", n_qubits=2, n_layers=1, patch_size=3, stride=3, seed=1)
    ours = Objective(model, x[:2], y[:2])
    shift = Objective(model.with_backend("default.qubit"), x[:2], y[:2], hessian_method="parameter-shift")
    assert torch.allclose(ours.hessian(), shift.hessian(), atol=1e-8, rtol=0)


def test_batched_parameter_points_match_single_calls():
    circuit = build_circuit("hea", 3, 2, observables=["Z", "X"])
    g = torch.Generator().manual_seed(0)
    params = circuit.init_params((5, 4), g)  # 5 parameter points, 4 patches
    features = torch.rand(6, 4, circuit.n_features, generator=g, dtype=torch.float64)
    batched = simulate(circuit, params, features)
    assert batched.shape == (5, 6, 4, circuit.n_outputs)
    for k in range(5):
        assert torch.allclose(batched[k], simulate(circuit, params[k], features), atol=1e-14)


def test_single_qubit_analytic():
    circuit = build_circuit("hea", 1, 1)  # RY(x) then RY(a) RZ(b): <Z> = cos(x + a)
    params = torch.tensor([[0.3, 1.1]], dtype=torch.float64)
    x = torch.tensor([[[0.4]]], dtype=torch.float64)
    out = simulate(circuit, params, x)
    assert abs(float(out.squeeze()) - np.cos(0.7)) < 1e-14


def test_complex64_for_training_is_close():
    circuit = build_circuit("strongly_entangling", 4, 3)
    params = circuit.init_params((2,))
    features = torch.rand(3, 2, circuit.n_features, dtype=torch.float64)
    lo = simulate(circuit, params, features, dtype=torch.complex64)
    hi = simulate(circuit, params, features)
    assert lo.dtype == torch.float32 and torch.allclose(lo.double(), hi, atol=1e-5)


def test_unknown_backend_is_named():
    with pytest.raises(ConfigError, match="no.such.device"):
        make_backend("no.such.device")


@pytest.mark.slow
def test_kawase_patch_qnn_hessian_matches_default_qubit():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 8, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3])
    # 5 qubits x 4 features x 2 blocks = 40 features from a 8x8 patch (average-pooled 5x8)
    model = PatchQNN((8, 8), 10, ansatz="kawase", n_qubits=5, n_layers=1, patch_size=8, seed=0)
    ours, theirs = Objective(model, x, y), Objective(model.with_backend("default.qubit"), x, y)
    assert torch.allclose(ours.grad(), theirs.grad(), atol=1e-10, rtol=0)
    assert torch.allclose(ours.hessian(), theirs.hessian(), atol=1e-10, rtol=0)


def test_lightning_hessian_uses_parameter_shift_and_matches_engine(tiny_images):
    x, y = tiny_images
    model = PatchQNN((6, 6), 2, ansatz="hea", n_qubits=2, n_layers=1, patch_size=6, seed=2)  # one patch, 4 params
    light = Objective(model.with_backend("lightning.qubit"), x[:2], y[:2])
    assert light.model.backend.resolved_diff_method() == "adjoint"
    v = torch.randn(light.n_params, dtype=torch.float64)
    ours = Objective(model, x[:2], y[:2])
    assert torch.allclose(light.hessian(), ours.hessian(), atol=1e-8, rtol=0)
    assert torch.allclose(light.hvp(None, v), ours.hvp(None, v), atol=1e-8, rtol=0)
