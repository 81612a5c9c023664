"""Our batched torch state-vector engine.

One compiled :class:`~qlandscape.circuits.Circuit` runs for every (parameter point, sample, patch) triple at once:
the state is a tensor ``(M, 2**n)`` with ``M = K * B * P`` and every patch has its own angles, broadcast over
the samples. The circuit is lowered once (:func:`lower`) into two instructions:

* ``fused``: all single-qubit rotations on one wire between two entangling steps, multiplied into one batched
  2x2 matrix;
* ``permute``: a run of consecutive CNOT/CZ gates composed into one basis permutation and one sign vector
  (a gather and a multiply, never a dense 2**n x 2**n matrix).

and then planned (:func:`_plan`, see benchmarks/perf for the measurements behind each choice): the fused steps
between two entangler runs form one layer, whose matrices are built for all wires at once and applied as a few
Kronecker-group GEMMs (one read of the state per group, no permute copies); a first layer on |0...0> becomes a
product state; with Z-only readout the trailing entangler run folds into the readout matrix.

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

from .circuits import Circuit, Gate
from .errors import ConfigError


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


# ------------------------------------------------------------------------------------------- execution plan
@dataclass(frozen=True)
class _Layer:
    """All single-qubit work between two entangling steps, every wire at once.

    ``signatures`` groups the wires whose gate sequences share one (name, source) pattern, so each group's fused
    2x2 matrices come out of a few tensor ops rather than a few ops per gate.
    """

    signatures: tuple[tuple[tuple[tuple[str, str], ...], np.ndarray, tuple[np.ndarray, ...]], ...]
    order: np.ndarray | None  # permutation from concatenated signature groups to wire order (None: identity)
    gated: tuple[int, ...]  # wires with at least one gate, ascending


@dataclass(frozen=True)
class _Plan:
    steps: tuple[object, ...]  # _Layer | _Permute
    product_start: bool  # the first step is a _Layer acting on |0...0>: the state starts as a product state
    z_signs: np.ndarray | None  # (2**n, n_outputs) readout when every observable is Z (trailing entanglers
    #                             folded in), else None


def _group_sizes(n: int) -> tuple[int, ...]:
    """Wires per Kronecker group when a layer's fused per-wire matrices are applied.

    A group of g wires is one batched GEMM that reads and writes the state once, instead of one pass per wire,
    but costs 2**g multiply-adds per amplitude and a (2**g)**2 matrix per circuit to build and differentiate.
    Measured (benchmarks/perf): single wires win up to ~5 qubits, where the matrices would outweigh the state;
    groups of n // 3 wires (at most 4) win from there on (4 at 12 qubits: 5x faster than single wires).
    """
    g = max(1, min(4, n // 3))
    k = -(-n // g)
    base, extra = divmod(n, k)
    return tuple(base + (1 if i < extra else 0) for i in range(k))


def _make_layer(steps: list[_Fused]) -> _Layer:
    by_signature: dict[tuple, list[_Fused]] = {}
    for step in steps:
        key = tuple((g.name, g.source) for g in step.rotations)
        by_signature.setdefault(key, []).append(step)
    signatures, concatenated = [], []
    for key, group in by_signature.items():
        wires = np.array([s.wire for s in group])
        indices = tuple(np.array([s.rotations[k].index for s in group]) for k in range(len(key)))
        signatures.append((key, wires, indices))
        concatenated.extend(wires.tolist())
    order = np.argsort(np.array(concatenated))
    identity = bool((order == np.arange(len(order))).all())
    return _Layer(signatures=tuple(signatures), order=None if identity else order,
                  gated=tuple(sorted(concatenated)))


@lru_cache(maxsize=64)
def _steps(circuit: Circuit) -> tuple[object, ...]:
    """Layers of fused single-qubit matrices alternating with composed entangler runs (no-ops dropped)."""
    steps: list[object] = []
    pending: list[_Fused] = []
    for step in lower(circuit):
        if isinstance(step, _Fused):
            pending.append(step)
            continue
        if pending:
            steps.append(_make_layer(pending))
            pending = []
        if not (step.identity and (step.sign == 1).all()):
            steps.append(step)
    if pending:
        steps.append(_make_layer(pending))
    return tuple(steps)


@lru_cache(maxsize=64)
def _plan(circuit: Circuit) -> _Plan:
    """The steps up to the readout: with Z observables only, trailing entanglers fold into the readout matrix."""
    n = circuit.n_qubits
    steps = list(_steps(circuit))
    z_signs = None
    if circuit.observables and all(p == "Z" for p, _ in circuit.observables):
        basis = np.arange(2 ** n)
        z = np.stack([1.0 - 2.0 * _bit(basis, w, n) for _, w in circuit.observables], axis=1)
        # Probabilities ignore signs, and p_new[j] = p_old[source[j]], so <Z> = sum_i p_old[i] z[inverse[i]].
        while steps and isinstance(steps[-1], _Permute):
            z = z[np.argsort(steps.pop().source)]
        z_signs = z
    product_start = bool(steps) and isinstance(steps[0], _Layer)
    return _Plan(steps=tuple(steps), product_start=product_start, z_signs=z_signs)


def _rotations(name: str, angle: Tensor, cdtype: torch.dtype) -> Tensor:
    """Rotation matrices ``(..., 2, 2)`` for angles ``(...)``."""
    half = angle / 2
    c, s = torch.cos(half), torch.sin(half)
    if name == "RY":
        return torch.stack((c, -s, s, c), dim=-1).reshape(*angle.shape, 2, 2).to(cdtype)
    zero = torch.zeros_like(c)
    real = torch.stack((c, zero, zero, c), dim=-1)
    if name == "RX":
        imag = torch.stack((zero, -s, -s, zero), dim=-1)
    else:  # RZ = diag(e^{-i a/2}, e^{i a/2})
        imag = torch.stack((-s, zero, zero, s), dim=-1)
    return torch.complex(real, imag).reshape(*angle.shape, 2, 2).to(cdtype)


def _layer_matrices(layer: _Layer, params: Tensor, features: Tensor, scale: float, batch: torch.Size,
                    cdtype: torch.dtype) -> Tensor:
    """Fused matrices ``(*batch, len(layer.gated), 2, 2)`` of the layer's wires, in wire order."""
    blocks = []
    device = params.device
    for key, wires, indices in layer.signatures:
        m = None
        for (name, source), index in zip(key, indices):
            idx = torch.as_tensor(index, device=device)
            if source == "param":
                angle = params.index_select(-1, idx).unsqueeze(-3)  # (..., 1, P, W): shared by every sample
            else:
                angle = scale * features.index_select(-1, idx)  # (B, P, W)
            u = _rotations(name, angle, cdtype)
            m = u if m is None else u @ m  # later gates act after earlier ones
        blocks.append(m.expand(*batch, len(wires), 2, 2))
    mats = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-3)
    if layer.order is not None:
        mats = mats.index_select(-3, torch.as_tensor(layer.order, device=device))
    return mats


def _per_wire(layer: _Layer, mats: Tensor, n: int) -> list[Tensor]:
    """Per-wire matrices ``(M, 2, 2)`` for all n wires (identity where the layer has no gate)."""
    out, k, eye = [], 0, None
    for w in range(n):
        if w in layer.gated:
            out.append(mats[:, k])
            k += 1
        else:
            if eye is None:
                eye = torch.eye(2, dtype=mats.dtype, device=mats.device).expand(mats.shape[0], 2, 2)
            out.append(eye)
    return out


def _kron(mats: list[Tensor]) -> Tensor:
    """Kronecker product ``(M, 2**g, 2**g)`` of per-wire ``(M, 2, 2)`` matrices, first wire most significant."""
    k = mats[0]
    for m in mats[1:]:  # (M, a, 1, a, 1) * (M, 1, 2, 1, 2) -> (M, 2a, 2a)
        size = k.shape[-1] * 2
        k = (k[:, :, None, :, None] * m[:, None, :, None, :]).reshape(-1, size, size)
    return k


def _product_state(columns: list[Tensor]) -> Tensor:
    """Kronecker product ``(M, 2**n)`` of per-wire ``(M, 2)`` single-qubit states."""
    v = columns[0]
    for u in columns[1:]:
        v = (v[:, :, None] * u[:, None, :]).reshape(v.shape[0], -1)
    return v


def _apply_layer(state: Tensor, per_wire: list[Tensor], n: int) -> Tensor:
    m_total = state.shape[0]
    start = 0
    for g in _group_sizes(n):
        u = _kron(per_wire[start:start + g])
        # Apply U to the leading g wires and write those wires out LAST: out[m, r, i] = sum_j U[m, i, j] s[m, j, r].
        # The wire order rotates by g per group, so after all groups it is the original one again, and every
        # group is one batched GEMM that reads the state once (as a transposed operand, without a copy).
        s = state.reshape(m_total, 2 ** g, -1)
        state = torch.matmul(s.transpose(1, 2), u.transpose(1, 2)).reshape(m_total, -1)
        start += g
    return state


def _check(circuit: Circuit, params: Tensor, features: Tensor, dtype: torch.dtype) -> tuple[torch.Size, int]:
    if dtype not in (torch.complex128, torch.complex64):
        raise ConfigError("dtype", dtype, "expected torch.complex128 or torch.complex64")
    if params.shape[-1] != circuit.n_params:
        raise ConfigError("params", tuple(params.shape), f"expected last dim {circuit.n_params} for {circuit.name}")
    if features.ndim != 3 or features.shape[-1] < circuit.n_features:
        raise ConfigError("features", tuple(features.shape),
                          f"expected (B, P, {circuit.n_features}) for {circuit.name}")
    batch = torch.broadcast_shapes(params.shape[:-2] + (1, params.shape[-2]), features.shape[:-1])
    return batch, int(np.prod(batch))


def _run(circuit: Circuit, steps: tuple[object, ...], product_start: bool, params: Tensor, features: Tensor,
         scale: float, dtype: torch.dtype) -> tuple[Tensor, torch.Size]:
    """Run ``steps`` and return the flat state ``(M, 2**n)`` and the batch shape it flattens."""
    batch, m_total = _check(circuit, params, features, dtype)
    n = circuit.n_qubits
    rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
    params, features = params.to(rdtype), features.to(rdtype)
    device = params.device
    state = None
    for i, step in enumerate(steps):
        if isinstance(step, _Layer):
            mats = _layer_matrices(step, params, features, scale, batch, dtype)
            per_wire = _per_wire(step, mats.reshape(m_total, len(step.gated), 2, 2), n)
            if i == 0 and product_start:
                state = _product_state([m[:, :, 0] for m in per_wire])  # U|0> is U's first column
            else:
                state = _apply_layer(state, per_wire, n)
            continue
        if state is None:
            state = _product_start(n, dtype, m_total, device)
        if not step.identity:
            state = state.index_select(1, torch.as_tensor(step.source, device=device))
        if not (step.sign == 1).all():
            state = state * torch.as_tensor(step.sign, dtype=rdtype, device=device)
    if state is None:
        state = _product_start(n, dtype, m_total, device)
    return state, batch


def simulate_state(circuit: Circuit, params: Tensor, features: Tensor, *, scale: float = 1.0,
                   dtype: torch.dtype = torch.complex128) -> Tensor:
    """Final state vectors ``(*K, B, P, 2**n)`` for params ``(*K, P, n_params)`` and features ``(B, P, F)``."""
    steps = _steps(circuit)  # every step: the plan may have folded trailing entanglers into its readout
    product_start = bool(steps) and isinstance(steps[0], _Layer)
    state, batch = _run(circuit, steps, product_start, params, features, scale, dtype)
    return state.reshape(*batch, 2 ** circuit.n_qubits)


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
    plan = _plan(circuit)
    state, batch = _run(circuit, plan.steps, plan.product_start, params, features, scale, dtype)
    if plan.z_signs is not None:
        probs = state.real ** 2 + state.imag ** 2
        out = probs @ torch.as_tensor(plan.z_signs, dtype=probs.dtype, device=probs.device)
    else:
        out = _expectations(circuit, state, circuit.n_qubits)
    return out.reshape(*batch, circuit.n_outputs)


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
