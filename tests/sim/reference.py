"""A gate-by-gate dense state-vector simulator: slow and obviously right, the oracle of the engine tests."""

from __future__ import annotations

import torch


def reference_state(circuit, params, features, scale=1.0):
    """One circuit at a time, gate by gate, on a (2,)*n tensor: slow and obviously right."""
    n = circuit.n_qubits
    state = torch.zeros((2,) * n, dtype=torch.complex128)
    state[(0,) * n] = 1
    for gate in circuit.gates:
        if gate.source is None:
            a, b = gate.wires
            idx = [slice(None)] * n
            idx[a] = 1
            sub = state[tuple(idx)].clone()  # control = 1 slice, target axis shifts by one if after a
            t = b if b < a else b - 1
            sub = (
                sub.flip(t)
                if gate.name == "CNOT"
                else sub * torch.tensor([1, -1], dtype=sub.dtype).reshape([2 if i == t else 1 for i in range(n - 1)])
            )
            state = state.clone()
            state[tuple(idx)] = sub
            continue
        angle = params[gate.index] if gate.source == "param" else scale * features[gate.index]
        c, s = torch.cos(angle / 2), torch.sin(angle / 2)
        if gate.name == "RX":
            u = torch.stack([torch.stack([c + 0j, -1j * s]), torch.stack([-1j * s, c + 0j])])
        elif gate.name == "RY":
            u = torch.stack([torch.stack([c + 0j, -s + 0j]), torch.stack([s + 0j, c + 0j])])
        else:
            u = torch.diag(torch.stack([torch.exp(-0.5j * angle), torch.exp(0.5j * angle)]))
        state = torch.movedim(torch.tensordot(u, state, dims=([1], [gate.wires[0]])), 0, gate.wires[0])
    return state.reshape(-1)


def reference_expectations(circuit, state):
    n = circuit.n_qubits
    view = state.reshape((2,) * n)
    out = []
    for pauli, w in circuit.observables:
        m = {"X": [[0, 1], [1, 0]], "Y": [[0, -1j], [1j, 0]], "Z": [[1, 0], [0, -1]]}[pauli]
        applied = torch.movedim(torch.tensordot(torch.tensor(m, dtype=state.dtype), view, dims=([1], [w])), 0, w)
        out.append((view.conj() * applied).sum().real)
    return torch.stack(out)
