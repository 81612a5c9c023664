"""A gate-by-gate dense state-vector simulator: slow and obviously right, the oracle of the engine tests.

Its gates are written out here, independently of the gate table (qlandscape.sim.gates); a gate it does not know
is an error, or comes as a matrix function through ``rotations``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

RotationMatrix = Callable[[torch.Tensor], torch.Tensor]


def _rx(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    return torch.stack([torch.stack([c + 0j, -1j * s]), torch.stack([-1j * s, c + 0j])])


def _ry(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    return torch.stack([torch.stack([c + 0j, -s + 0j]), torch.stack([s + 0j, c + 0j])])


def _rz(angle: torch.Tensor) -> torch.Tensor:
    return torch.diag(torch.stack([torch.exp(-0.5j * angle), torch.exp(0.5j * angle)]))


ROTATIONS: dict[str, RotationMatrix] = {"RX": _rx, "RY": _ry, "RZ": _rz}


def reference_state(circuit, params, features, scale=1.0, rotations: dict[str, RotationMatrix] | None = None):
    """One circuit at a time, gate by gate, on a (2,)*n tensor: slow and obviously right. ``rotations`` adds
    matrix functions for gates beyond RX, RY, RZ."""
    matrices = {**ROTATIONS, **(rotations or {})}
    n = circuit.n_qubits
    state = torch.zeros((2,) * n, dtype=torch.complex128)
    state[(0,) * n] = 1
    for gate in circuit.gates:
        if gate.source is None:
            if gate.name not in ("CNOT", "CZ"):
                raise KeyError(f"the reference simulator has no entangler {gate.name!r}")
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
        u = matrices[gate.name](angle)
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
