"""The engine as it was before the benchmarks/perf work (kept only for before_after.py; do not import elsewhere).

One compiled :class:`~qlandscape.circuits.Circuit` runs for every (parameter point, sample, patch) triple at once:
the state is a tensor ``(M, 2**n)`` with ``M = K * B * P`` and every patch has its own angles, broadcast over
the samples. The circuit is lowered once into a short program of two instructions:

* ``fused``: all single-qubit rotations on one wire between two entangling steps multiplied into one batched
  2x2 matrix (cheap: the matrices are tiny), then applied to the state as two fused multiply-adds on a view;
* ``permute``: a run of consecutive CNOT/CZ gates composed into one basis permutation and one sign vector
  (a gather and a multiply, never a dense 2**n x 2**n matrix).

Expectations of Z come from probabilities, those of X and Y from the amplitudes of each qubit's pair.
Everything is plain differentiable torch, so autograd and ``torch.func`` (``vmap``, ``jacrev``, ``hessian``)
compose with it. complex128 by default; complex64 is allowed for training.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from qlandscape.circuits import Circuit, Gate
from qlandscape.errors import ConfigError


@dataclass(frozen=True)
class _Fused:
    wire: int
    rotations: tuple[Gate, ...]


@dataclass(frozen=True)
class _Permute:
    source: np.ndarray  # new_state[j] = sign[j] * state[source[j]]
    sign: np.ndarray
    identity: bool


def _bit(indices: np.ndarray, wire: int, n: int) -> np.ndarray:
    return (indices >> (n - 1 - wire)) & 1


def _compose_entanglers(gates: list[Gate], n: int) -> _Permute:
    basis = np.arange(2 ** n)
    image = basis.copy()
    sign = np.ones(2 ** n)
    for gate in gates:
        a, b = gate.wires
        if gate.name == "CZ":
            sign = sign * np.where(_bit(image, a, n) & _bit(image, b, n), -1.0, 1.0)
        else:  # CNOT: flip the target bit where the control bit is set
            image = image ^ (_bit(image, a, n) << (n - 1 - b))
    source = np.argsort(image)
    return _Permute(source=source, sign=sign[source], identity=bool((source == basis).all()))


@lru_cache(maxsize=64)
def lower(circuit: Circuit) -> tuple[object, ...]:
    """Lower a circuit into fused single-qubit steps and composed entangler steps."""
    program: list[object] = []
    pending: dict[int, list[Gate]] = {}
    run: list[Gate] = []

    def flush_rotations() -> None:
        for wire in sorted(pending):
            program.append(_Fused(wire, tuple(pending[wire])))
        pending.clear()

    for gate in circuit.gates:
        if gate.source is None:
            if not run:
                flush_rotations()
            run.append(gate)
        else:
            if run:
                program.append(_compose_entanglers(run, circuit.n_qubits))
                run = []
            pending.setdefault(gate.wires[0], []).append(gate)
    if run:
        program.append(_compose_entanglers(run, circuit.n_qubits))
    flush_rotations()
    return tuple(program)


def _rotation(name: str, angle: Tensor, cdtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    half = angle / 2
    c, s = torch.cos(half).to(cdtype), torch.sin(half).to(cdtype)
    if name == "RX":
        return c, -1j * s, -1j * s, c
    if name == "RY":
        return c, -s, s, c
    zero = torch.zeros_like(c)
    return c - 1j * s, zero, zero, c + 1j * s  # RZ = diag(e^{-i a/2}, e^{i a/2})


def _fuse(step: _Fused, params: Tensor, features: Tensor, scale: float,
          cdtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    m = None
    for gate in step.rotations:
        if gate.source == "param":
            angle = params[..., gate.index].unsqueeze(-2)  # (..., 1, P): shared by every sample
        else:
            angle = scale * features[..., gate.index]  # (B, P)
        u = _rotation(gate.name, angle, cdtype)
        if m is None:
            m = u
        else:  # later gates act after earlier ones: U_new @ M
            a, b, c, d = m
            e, f, g, h = u
            m = (e * a + f * c, e * b + f * d, g * a + h * c, g * b + h * d)
    return m


def simulate_state(circuit: Circuit, params: Tensor, features: Tensor, *, scale: float = 1.0,
                   dtype: torch.dtype = torch.complex128) -> Tensor:
    """Final state vectors ``(*K, B, P, 2**n)`` for params ``(*K, P, n_params)`` and features ``(B, P, F)``."""
    if dtype not in (torch.complex128, torch.complex64):
        raise ConfigError("dtype", dtype, "expected torch.complex128 or torch.complex64")
    if params.shape[-1] != circuit.n_params:
        raise ConfigError("params", tuple(params.shape), f"expected last dim {circuit.n_params} for {circuit.name}")
    if features.ndim != 3 or features.shape[-1] < circuit.n_features:
        raise ConfigError("features", tuple(features.shape),
                          f"expected (B, P, {circuit.n_features}) for {circuit.name}")
    n = circuit.n_qubits
    batch = torch.broadcast_shapes(params.shape[:-2] + (1, params.shape[-2]), features.shape[:-1])
    m_total = int(np.prod(batch))
    rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
    params = params.to(rdtype)
    features = features.to(rdtype)
    state = _product_start(n, dtype, m_total, params.device)
    for step in lower(circuit):
        if isinstance(step, _Fused):
            a, b, c, d = (t.expand(batch).reshape(m_total, 1, 1) for t in
                          _fuse(step, params, features, scale, dtype))
            view = state.view(m_total, 2 ** step.wire, 2, 2 ** (n - step.wire - 1))
            s0, s1 = view[:, :, 0, :], view[:, :, 1, :]
            state = torch.stack((a * s0 + b * s1, c * s0 + d * s1), dim=2).reshape(m_total, 2 ** n)
        else:
            if not step.identity:
                state = state.index_select(1, torch.as_tensor(step.source, device=state.device))
            state = state * torch.as_tensor(step.sign, dtype=rdtype, device=state.device)
    return state.reshape(*batch, 2 ** n)


def simulate(circuit: Circuit, params: Tensor, features: Tensor, *, scale: float = 1.0,
             dtype: torch.dtype = torch.complex128) -> Tensor:
    """Expectation values of the circuit's observables.

    Args:
        circuit: the compiled circuit.
        params: trainable angles ``(*K, P, n_params)`` -- one block per patch, optional leading parameter-point
            dims ``K`` (landscape grids, random initialisations).
        features: encoded inputs ``(B, P, n_features)``.
        scale: multiplies every data angle.
        dtype: ``torch.complex128`` (default, for metrics) or ``torch.complex64`` (training).

    Returns:
        ``(*K, B, P, n_outputs)`` real expectations, in the circuit's observable order.
    """
    state = simulate_state(circuit, params, features, scale=scale, dtype=dtype)
    batch = state.shape[:-1]
    flat = state.reshape(-1, state.shape[-1])
    return _expectations(circuit, flat, circuit.n_qubits).reshape(*batch, circuit.n_outputs)


def _product_start(n: int, dtype: torch.dtype, m: int, device: torch.device) -> Tensor:
    state = torch.zeros(m, 2 ** n, dtype=dtype, device=device)
    state[:, 0] = 1
    return state


def _expectations(circuit: Circuit, state: Tensor, n: int) -> Tensor:
    m = state.shape[0]
    probs = state.real ** 2 + state.imag ** 2
    outs = []
    for pauli, wire in circuit.observables:
        if pauli == "Z":
            signs = torch.as_tensor(1.0 - 2.0 * _bit(np.arange(2 ** n), wire, n), dtype=probs.dtype,
                                    device=probs.device)
            outs.append(probs @ signs)
        else:
            view = state.view(m, 2 ** wire, 2, 2 ** (n - wire - 1))
            cross = (view[:, :, 0, :].conj() * view[:, :, 1, :]).sum(dim=(1, 2))
            outs.append(2 * (cross.real if pauli == "X" else cross.imag))
    return torch.stack(outs, dim=-1)
