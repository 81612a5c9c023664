"""Our batched torch state-vector engine.

One compiled :class:`~qlandscape.circuits.Circuit` runs for every (parameter point, sample, patch) triple at once:
params ``(*K, P, n_params)`` (one block per patch, optional parameter-point dims ``K``) and features ``(B, P, F)``
(or ``(*K, B, P, F)`` when the inputs differ per point, e.g. a learned positional bias).
The circuit is lowered and planned by :mod:`qlandscape.lowering`; see benchmarks/perf for the measurements
behind each choice:

* a layer's fused per-wire 2x2 matrices are applied as a few Kronecker-group GEMMs (one read of the state per
  group, no permute copies); a first layer on |0...0> becomes a product state;
* every step runs at its own natural batch: parameter-only steps before the data once per (point, patch), data-only
  steps once per (sample, patch), so a landscape grid encodes the data once and a circuit's parameter-only
  prefix runs once for all samples;
* on small circuits (``lowering.BLOCK_MAX_QUBITS``) with enough samples, the parameter-only layers after the
  data form blocks: each block's unitary is built once per (point, patch) from all its layers at once (stacked
  Kronecker products, a log-depth chain of matrix products) and applied to every sample as one GEMM;
* with Z-only readout, the trailing entangler run folds into the readout matrix.

Expectations of Z come from probabilities, those of X and Y from the amplitudes of each qubit's pair.
Everything is plain differentiable torch, so autograd and ``torch.func`` (``vmap``, ``jacrev``, ``hessian``)
compose with it. complex128 by default; complex64 is allowed for training.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .circuits import Circuit
from .errors import ConfigError
from .lowering import BLOCK_MAX_QUBITS, Block, Gather, Layer, Permute, Stack, bit, lower, plan  # noqa: F401

_bit = bit  # older name, kept for callers


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


def use_blocks(circuit: Circuit, n_samples: int) -> bool:
    """Whether the block plan pays: its unitaries are built per (point, patch) and shared by ``n_samples``."""
    return circuit.n_qubits <= BLOCK_MAX_QUBITS and n_samples >= max(2, 2 ** circuit.n_qubits // 8)


# ------------------------------------------------------------------------------------------ matrices
def _rotations(name: str, angle: Tensor, cdtype: torch.dtype) -> Tensor:
    """Rotation matrices ``(..., 2, 2)`` for angles ``(...)``; real for RY when ``cdtype`` is real."""
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


def _angles(source: Tensor, gather: Gather) -> Tensor:
    """``source[..., index]`` as ``(..., F, W)``: a view when the index is a contiguous range."""
    if gather.start is not None:
        picked = source.narrow(-1, gather.start, gather.index.size)
    else:
        picked = source.index_select(-1, _on(gather.index, source.device))
    return picked.reshape(*source.shape[:-1], *gather.shape)


_CONSTANTS: dict[tuple[int, str, torch.dtype | None], tuple[np.ndarray, Tensor]] = {}


def _on(array: np.ndarray, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """A plan constant as a tensor, cached per device: index and sign tensors are not rebuilt on every call.

    Not cached inside a torch.func transform, where a new tensor belongs to the transform's level and must not
    escape it (peek_interpreter_stack: torch has no public test for an active transform).
    """
    key = (id(array), str(device), dtype)
    hit = _CONSTANTS.get(key)
    if hit is not None and hit[0] is array:
        return hit[1]
    tensor = torch.as_tensor(array, dtype=dtype, device=device)
    if torch._C._functorch.peek_interpreter_stack() is None:
        _CONSTANTS[key] = (array, tensor)  # the array is kept alive, so its id is not reused
    return tensor


def _layer_matrices(stack: Stack, params: Tensor, features: Tensor, scale: float, cdtype: torch.dtype) -> Tensor:
    """Fused matrices ``(*batch, F, len(gated), 2, 2)`` of the F layers of a stack, in wire order.

    ``batch`` is the layers' natural batch: ``(*K, 1, P)`` for parameter-only layers, ``(B, P)`` for data-only
    ones, their broadcast for mixed ones. RY-only layers stay real.
    """
    if stack.real:
        cdtype = params.dtype
    blocks = []
    for key, gathers in stack.signatures:
        m = None
        for (name, source), gather in zip(key, gathers):
            if source == "param":  # (*K, 1, P, F, W): shared by every sample
                angle = _angles(params, gather).unsqueeze(-4)
            else:  # (B, P, F, W)
                angle = scale * _angles(features, gather)
            u = _rotations(name, angle, cdtype)
            m = u if m is None else u @ m  # later gates act after earlier ones
        blocks.append(m)
    if len(blocks) > 1:
        shape = torch.broadcast_shapes(*(b.shape[:-3] for b in blocks))
        blocks = [b.expand(*shape, *b.shape[-3:]) for b in blocks]
    mats = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-3)
    if stack.order is not None:
        mats = mats.index_select(-3, _on(stack.order, mats.device))
    return mats


def _per_wire(gated: tuple[int, ...], mats: Tensor, n: int) -> list[Tensor]:
    """Per-wire matrices ``(M, 2, 2)`` for all n wires (identity where the layer has no gate)."""
    out, eye = [], None
    columns = iter(mats.unbind(1))  # one UnbindBackward (a stack) instead of a zero-fill per selected wire
    for w in range(n):
        if w in gated:
            out.append(next(columns))
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
        state, u = _common_dtype(state, u)
        # Apply U to the leading g wires and write those wires out LAST: out[m, r, i] = sum_j U[m, i, j] s[m, j, r].
        # The wire order rotates by g per group, so after all groups it is the original one again, and every
        # group is one batched GEMM that reads the state once (as a transposed operand, without a copy).
        s = state.reshape(m_total, 2 ** g, -1)
        state = torch.matmul(s.transpose(1, 2), u.transpose(1, 2)).reshape(m_total, -1)
        start += g
    return state


def _common_dtype(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Promote a real operand to the other's complex dtype (real states and RY-only matrices stay real)."""
    if a.dtype == b.dtype:
        return a, b
    return (a.to(b.dtype), b) if b.is_complex() else (a, b.to(a.dtype))


def _probabilities(state: Tensor) -> Tensor:
    return state ** 2 if not state.is_complex() else state.real ** 2 + state.imag ** 2


# ------------------------------------------------------------------------------------------------ blocks
def _block_unitary(block: Block, params: Tensor, n: int, cdtype: torch.dtype) -> Tensor:
    """The block's unitary ``(*K, P, 2**n, 2**n)``: all layers' Kronecker matrices at once, entangler rows
    gathered in, then a log-depth chain of products."""
    device, dim = params.device, 2 ** n
    factors = []
    for stack in block.stacks:
        mats = _layer_matrices(stack, params, params, 1.0, cdtype).squeeze(-5)  # (*K, P, F, W, 2, 2)
        lead = mats.shape[:-3]
        flat = mats.reshape(-1, *mats.shape[-3:])
        factors.append(_kron(_per_wire(stack.gated, flat, n)).reshape(*lead, dim, dim))
    if len({f.dtype for f in factors}) > 1:
        factors = [f.to(cdtype) for f in factors]
    mats = factors[0] if len(factors) == 1 else torch.cat(factors, dim=-3)
    if block.order is not None:
        mats = mats.index_select(-3, _on(block.order, device))
    if block.rows is not None:  # rows of (perm after layer f) @ K_f: out[j, :] = K_f[source[j], :]
        rows = _on(block.rows, device)
        if rows.numel() == dim:  # one source for every layer
            mats = mats.index_select(-2, rows)
        else:  # per-layer sources, offset into the flattened (layer, row) axis: one index_select, not a gather
            lead = mats.shape[:-3]
            mats = mats.reshape(*lead, -1, dim).index_select(-2, rows).reshape(*lead, -1, dim, dim)
    if block.signs is not None:
        mats = mats * _on(block.signs, device, mats.real.dtype if mats.is_complex() else mats.dtype)
    while mats.shape[-3] > 1:  # U = M_{F-1} ... M_1 M_0, pairwise
        odd = mats.shape[-3] % 2
        paired = mats[..., 1::2, :, :] @ mats[..., 0:mats.shape[-3] - odd:2, :, :]
        mats = torch.cat((paired, mats[..., -1:, :, :]), dim=-3) if odd else paired
    return mats.squeeze(-3)


_WORKSPACE: dict[tuple, Tensor] = {}


def _workspace(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A reused output buffer for the block GEMM when nothing is differentiated (landscape grids).

    Fresh multi-MB temporaries cost more in page faults than the GEMM itself (measured in benchmarks/perf:
    0.42 ms vs 0.17 ms per grid point), so the largest buffer of the last call is kept and reused.
    """
    key = (dtype, str(device))
    buf = _WORKSPACE.get(key)
    need = int(np.prod(shape))
    if buf is None or buf.numel() < need:
        _WORKSPACE.clear()
        buf = _WORKSPACE[key] = torch.empty(need, dtype=dtype, device=device)
    return buf[:need].view(shape)


def _nothing_differentiated(*tensors: Tensor) -> bool:
    """Whether in-place work and reused buffers are safe: no autograd graph and no torch.func transform."""
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


_CHUNK_BYTES = 2 ** 21  # keep each GEMM output in cache for the squaring and the readout that follow


def _read_in_chunks(state: Tensor, operand: Tensor, signs: Tensor) -> Tensor:
    """Expectations ``(P, B, K, O)`` from a real state ``(P, B, D)`` and U's (re, im) pairs ``(P, D, K, 2D)``,
    a few parameter points at a time into one reused buffer, squared in place (nothing is differentiated)."""
    n_patches, batch, dim = state.shape
    k_total, width = operand.shape[2], operand.shape[3]
    step = max(1, _CHUNK_BYTES // (n_patches * batch * width * state.element_size()))
    values = torch.empty(n_patches, batch, k_total, signs.shape[0], dtype=state.dtype, device=state.device)
    for start in range(0, k_total, step):
        stop = min(k_total, start + step)
        part = operand[:, :, start:stop].reshape(n_patches, dim, -1)
        out = torch.bmm(state, part, out=_workspace((n_patches, batch, part.shape[-1]), state.dtype, state.device))
        values[:, :, start:stop] = _read(out.square_().reshape(n_patches, batch, stop - start, width), signs)
    return values


class Readout:
    """Z signs as ``(O, D)`` and, for squared (re, im) pairs, ``(O, 2D)``, each used as a GEMM's transposed
    right operand: MKL's kernel for a skinny contiguous ``(D, O)`` operand is 1.6x slower (benchmarks/perf)."""

    def __init__(self, z_signs: np.ndarray, device: torch.device, dtype: torch.dtype) -> None:
        self.signs = _on(_transposed(z_signs, pairs=False), device, dtype)
        self.pairs = _on(_transposed(z_signs, pairs=True), device, dtype)
        self.n_outputs = z_signs.shape[1]


_TRANSPOSED: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}


def _transposed(z_signs: np.ndarray, pairs: bool) -> np.ndarray:
    key = (id(z_signs), pairs)
    hit = _TRANSPOSED.get(key)
    if hit is None or hit[0] is not z_signs:
        hit = _TRANSPOSED[key] = (z_signs, np.ascontiguousarray((np.repeat(z_signs, 2, axis=0) if pairs
                                                                 else z_signs).T))
    return hit[1]


def _read(squares: Tensor, signs_t: Tensor) -> Tensor:
    """``squares @ signs`` from the ``(O, W)`` transposed signs."""
    return squares @ signs_t.T


def _squares(out: Tensor) -> Tensor:
    """Squared magnitudes with the (re, im) pairs of a complex tensor kept side by side: ``(..., 2D)``."""
    if out.is_complex():
        out = torch.view_as_real(out).flatten(-2)
    return out.square()


def _apply_block(state: Tensor, unitary: Tensor, n_k: int, readout: Readout | None = None) -> Tensor:
    """``out[..., i] = sum_j U[k, p, i, j] state[k, b, p, j]`` for state ``(*K', B', P, D)``, U ``(*K, P, D, D)``.

    With ``readout`` (the Z signs) the block is the last step: return the expectations ``(*K, B', P, O)``
    straight from the GEMM's output, squared in its own layout, before any permute copy.
    """
    dim, n_patches = state.shape[-1], state.shape[-2]
    k_shape = unitary.shape[:n_k]
    k_total = int(np.prod(k_shape)) if n_k else 1
    u = unitary.reshape(k_total, n_patches, dim, dim)
    if all(s == 1 for s in state.shape[:n_k]):
        # The state is shared by every parameter point (a grid over encoded data): one GEMM per patch with all
        # points' unitaries side by side, out[p, b, (k, i)] = sum_j state[b, p, j] U[k, p, i, j].
        s = state.reshape(-1, n_patches, dim).transpose(0, 1)  # (P, B', D)
        stacked = u.permute(1, 3, 0, 2).reshape(n_patches, dim, k_total * dim)
        if stacked.is_complex() and not s.is_complex():  # real state: one real GEMM on U's (re, im) pairs
            operand = torch.view_as_real(stacked.contiguous()).flatten(-2)  # (P, D, K * 2D)
            if readout is not None and _nothing_differentiated(s, operand):
                values = _read_in_chunks(s, operand.reshape(n_patches, dim, k_total, 2 * dim),
                                         readout.pairs).permute(2, 1, 0, 3)
                return values.reshape(*k_shape, -1, n_patches, readout.n_outputs)
            out = torch.bmm(s, operand)  # (P, B', K * 2D)
            pairs = True
        else:
            s, stacked = _common_dtype(s, stacked)
            out = torch.bmm(s, stacked)  # (P, B', K * D)
            pairs = False
        if readout is not None:
            sq = _squares(out).reshape(n_patches, -1, k_total, 2 * dim if pairs or out.is_complex() else dim)
            values = _read(sq, readout.pairs if sq.shape[-1] == 2 * dim else readout.signs).permute(2, 1, 0, 3)
            return values.reshape(*k_shape, -1, n_patches, readout.n_outputs)  # (*K, B', P, O)
        if pairs:
            out = torch.view_as_complex(out.reshape(n_patches, -1, k_total * dim, 2))
        out = out.reshape(n_patches, -1, k_total, dim).permute(2, 1, 0, 3)
        return out.reshape(*k_shape, -1, n_patches, dim)
    s = state.expand(*k_shape, *state.shape[n_k:]).reshape(k_total, -1, n_patches, dim).permute(0, 2, 3, 1)
    u, s = _common_dtype(u, s)
    out = torch.matmul(u, s)  # (K, P, D, B')
    if readout is not None:
        probs = _probabilities(out)
        values = (readout.signs @ probs).permute(0, 3, 1, 2)  # (K, B', P, O)
        return values.reshape(*k_shape, -1, n_patches, readout.n_outputs)
    return out.permute(0, 3, 1, 2).reshape(*k_shape, -1, n_patches, dim)


# --------------------------------------------------------------------------------------------- execution
def _check(circuit: Circuit, params: Tensor, features: Tensor, dtype: torch.dtype) -> torch.Size:
    if dtype not in (torch.complex128, torch.complex64):
        raise ConfigError("dtype", dtype, "expected torch.complex128 or torch.complex64")
    if params.shape[-1] != circuit.n_params:
        raise ConfigError("params", tuple(params.shape), f"expected last dim {circuit.n_params} for {circuit.name}")
    if features.ndim < 3 or features.shape[-1] < circuit.n_features:
        raise ConfigError("features", tuple(features.shape),
                          f"expected (B, P, {circuit.n_features}) or (*K, B, P, {circuit.n_features}) for "
                          f"{circuit.name}")
    try:
        return torch.broadcast_shapes(params.shape[:-2] + (1, params.shape[-2]), features.shape[:-1])
    except RuntimeError:
        raise ConfigError("features", tuple(features.shape),
                          f"leading dims do not broadcast with params {tuple(params.shape)}") from None


def _run(circuit: Circuit, steps: tuple[object, ...], params: Tensor, features: Tensor, scale: float,
         dtype: torch.dtype) -> tuple[Tensor, torch.Size]:
    """Run ``steps``; return the state ``(*K', B', P, 2**n)`` (size-1 dims where it is shared) and the full
    batch shape ``(*K, B, P)`` it broadcasts to."""
    batch = _check(circuit, params, features, dtype)
    n, rank = circuit.n_qubits, len(batch)
    n_k = rank - 2
    rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
    params, features = params.to(rdtype), features.to(rdtype)
    device = params.device
    state = None
    for step in steps:
        if isinstance(step, Block):
            u = _block_unitary(step, params, n, dtype)
            if state is None:  # U|0...0> is U's first column, shared by every sample
                state = u[..., :, 0].unsqueeze(-3)
                state = state.reshape((1,) * (rank + 1 - state.ndim) + tuple(state.shape))
            else:
                state = _apply_block(state, u, n_k)
        elif isinstance(step, Layer):
            mats = _layer_matrices(step.stack, params, features, scale, dtype).squeeze(-4)  # (*nb, W, 2, 2)
            nb = mats.shape[:-3]
            target = nb if state is None else torch.broadcast_shapes(state.shape[:-1], nb)
            target = (1,) * (rank - len(target)) + tuple(target)
            m_total = int(np.prod(target))
            flat = mats.expand(*target, *mats.shape[-3:]).reshape(m_total, *mats.shape[-3:])
            per_wire = _per_wire(step.gated, flat, n)
            if state is None:
                state = _product_state([m[:, :, 0] for m in per_wire])  # U|0> is U's first column
            else:
                state = _apply_layer(state.expand(*target, 2 ** n).reshape(m_total, -1), per_wire, n)
            state = state.reshape(*target, 2 ** n)
        else:
            if state is None:
                state = _basis_zero(n, rank, dtype, device)
            if not step.identity:  # on the flat (M, D) view: index_select on a 2-D tensor's last dim is faster
                state = state.reshape(-1, 2 ** n).index_select(1, _on(step.source, device)).reshape(state.shape)
            if step.sign_vector is not None:
                state = state * _on(step.sign_vector, device, rdtype)
    if state is None:
        state = _basis_zero(n, rank, dtype, device)
    return state, batch


def _basis_zero(n: int, rank: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    state = torch.zeros((1,) * rank + (2 ** n,), dtype=dtype, device=device)
    state[..., 0] = 1
    return state


def _plan_for(circuit: Circuit, features: Tensor, fold_readout: bool):
    return plan(circuit, fold_readout=fold_readout, blocks=use_blocks(circuit, features.shape[0]))


def simulate_state(circuit: Circuit, params: Tensor, features: Tensor, *, scale: float = 1.0,
                   dtype: torch.dtype = torch.complex128) -> Tensor:
    """Final state vectors ``(*K, B, P, 2**n)`` for params ``(*K, P, n_params)`` and features ``(B, P, F)``."""
    steps = _plan_for(circuit, features, fold_readout=False).steps
    state, batch = _run(circuit, steps, params, features, scale, dtype)
    return state.to(dtype).expand(*batch, 2 ** circuit.n_qubits)


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
    chosen = _plan_for(circuit, features, fold_readout=True)
    steps = chosen.steps
    fused = chosen.z_signs is not None and bool(steps) and isinstance(steps[-1], Block) and len(steps) > 1
    state, batch = _run(circuit, steps[:-1] if fused else steps, params, features, scale, dtype)
    if fused:  # the last block and the readout in one pass over the GEMM's output
        rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
        u = _block_unitary(steps[-1], params.to(rdtype), circuit.n_qubits, dtype)
        out = _apply_block(state, u, len(batch) - 2, Readout(chosen.z_signs, state.device, rdtype))
    elif chosen.z_signs is not None:
        probs = _probabilities(state)
        out = probs @ _on(chosen.z_signs, probs.device, probs.dtype)
    else:
        out = _expectations(circuit, state, circuit.n_qubits)
    return out.expand(*batch, circuit.n_outputs)


def _expectations(circuit: Circuit, state: Tensor, n: int) -> Tensor:
    lead = state.shape[:-1]
    state = state.reshape(-1, 2 ** n)
    if not state.is_complex():
        state = state.to(torch.complex128 if state.dtype == torch.float64 else torch.complex64)
    m = state.shape[0]
    probs = _probabilities(state)
    outs = []
    for pauli, wire in circuit.observables:
        if pauli == "Z":
            signs = torch.as_tensor(1.0 - 2.0 * bit(np.arange(2 ** n), wire, n), dtype=probs.dtype,
                                    device=probs.device)
            outs.append(probs @ signs)
        else:
            view = state.view(m, 2 ** wire, 2, 2 ** (n - wire - 1))
            cross = (view[:, :, 0, :].conj() * view[:, :, 1, :]).sum(dim=(1, 2))
            outs.append(2 * (cross.real if pauli == "X" else cross.imag))
    return torch.stack(outs, dim=-1).reshape(*lead, -1)
