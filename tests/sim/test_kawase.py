"""The Kawase 2025 circuit from the catalogue against the same circuit written directly in PennyLane."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from qlandscape.sim.circuits import build_circuit
from qlandscape.sim.engine import simulate


def kawase_by_hand(n_layers: int):
    """Kawase's circuit written gate by gate from the paper's description (independent of our spec loader)."""
    n = 8
    dev = qml.device("default.qubit", wires=n)

    def cz_ring():
        for q in range(n):
            qml.CZ(wires=[q, (q + 1) % n])

    def variational(params, start, last_without_cz=False):
        k = start
        for layer in range(n_layers):
            for q in range(n):
                qml.RX(params[k], wires=q)
                qml.RY(params[k + 1], wires=q)
                k += 2
            if not (last_without_cz and layer == n_layers - 1):
                cz_ring()
        return k

    def encoding(params, start, x, offset):
        k = start
        for f in range(32):
            q = f // 4
            outer, inner = (qml.RY, qml.RX) if f % 2 == 0 else (qml.RX, qml.RY)
            outer(params[k], wires=q)
            inner(x[offset + f], wires=q)
            outer(params[k + 1], wires=q)
            k += 2
        cz_ring()
        return k

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(params, x):
        k = variational(params, 0)
        k = encoding(params, k, x, 0)
        k = variational(params, k)
        k = encoding(params, k, x, 32)
        variational(params, k, last_without_cz=True)
        return [qml.expval(qml.PauliX(q)) for q in range(5)] + [qml.expval(qml.PauliZ(q)) for q in range(5)]

    return circuit


@pytest.mark.parametrize("n_layers", [1, 2])
def test_kawase_engine_equals_pennylane_by_hand(n_layers):
    circuit = build_circuit("kawase", 8, n_layers)
    assert circuit.n_params == 48 * n_layers + 128 and circuit.n_features == 64 and circuit.n_outputs == 10
    g = torch.Generator().manual_seed(n_layers)
    params = circuit.init_params((1,), g)  # one patch
    assert float(params.min()) >= 0 and float(params.max()) < np.pi
    x = torch.rand(2, 1, 64, generator=g, dtype=torch.float64) * np.pi / 4
    ref_fn = kawase_by_hand(n_layers)
    weights = torch.rand(10, generator=g, dtype=torch.float64)

    p1 = params.clone().requires_grad_(True)
    ours = simulate(circuit, p1, x)[:, 0, :]  # (2, 10)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), p1)

    p2 = params[0].clone().requires_grad_(True)
    theirs = torch.stack([torch.stack(list(ref_fn(p2, x[b, 0]))) for b in range(2)])
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), p2)
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)
    assert torch.allclose(g_ours[0], g_theirs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("n_layers", [1, 2, 50, 100, 150, 200])
def test_kawase_parameter_count(n_layers):
    assert build_circuit("kawase", 8, n_layers).n_params == 48 * n_layers + 128
