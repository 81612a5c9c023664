"""Gate matrices and the small tensor primitives of the engine (see :mod:`qlandscape.engine`).

Rotation matrices for stacked layers, Kronecker products and product states, one layer applied as Kronecker-group
GEMMs, and plan constants (index and sign vectors) cached as tensors per device.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from qlandscape.sim.gates import Rotation
from qlandscape.sim.lowering import Gather, SignatureGather, Stack

__all__ = [
    "SHARED_TWO_SIDED_MAX_QUBITS",
    "broadcast_shapes",
    "constant",
    "in_transform",
    "kron",
    "layer_columns",
    "layer_matrices",
    "per_wire",
    "per_wire_columns",
    "product_state",
    "apply_layer",
    "apply_shared_layer",
    "real_dtype",
    "common_dtype",
    "probabilities",
]


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """``torch.broadcast_shapes`` for plain int shapes, without its symbolic-shape machinery (12 µs a call, on
    every engine call); raises RuntimeError like it."""
    out = [1] * max(len(s) for s in shapes)
    for shape in shapes:
        for i, size in enumerate(shape, len(out) - len(shape)):
            if size != 1:
                if out[i] not in (1, size):
                    raise RuntimeError(f"shapes {shapes} do not broadcast")
                out[i] = size
    return tuple(out)


def group_sizes(n: int) -> tuple[int, ...]:
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


def rotations(gate: Rotation, angle: Tensor, cdtype: torch.dtype) -> Tensor:
    """Matrices ``(..., 2, 2)`` of rotation ``gate`` at angles ``(...)``; real when the gate's matrices are real and
    ``cdtype`` is real. Each entry is one of the gate's precomputed terms (``cos``, ``sin``, ``-sin``, 0, ...), so a
    batch of matrices is one stack (two for complex ones), with no branch on the gate's name."""
    half = angle / 2
    c, s = torch.cos(half), torch.sin(half)
    terms = [_term(cos_coef, sin_coef, c, s) for cos_coef, sin_coef in gate.terms]
    real = torch.stack([terms[i] for i in gate.real_entries], dim=-1)
    if gate.real:
        return real.reshape(*angle.shape, 2, 2).to(cdtype)
    imag = torch.stack([terms[i] for i in gate.imag_entries], dim=-1)
    return torch.complex(real, imag).reshape(*angle.shape, 2, 2).to(cdtype)


def _term(cos_coef: float, sin_coef: float, c: Tensor, s: Tensor) -> Tensor:
    """``cos_coef * c + sin_coef * s`` for one of a rotation's terms: ``c`` itself on the diagonal's real part (the
    generator is anti-Hermitian, so its diagonal is imaginary), a multiple of ``s`` everywhere else, without
    arithmetic for the 0 and ±1 of Pauli rotations."""
    if cos_coef:
        return c
    if sin_coef == 0:
        return torch.zeros_like(c)
    return s if sin_coef == 1 else -s if sin_coef == -1 else sin_coef * s


def angles(source: Tensor, gather: Gather) -> Tensor:
    """``source[..., index]`` as ``(..., F, W)``: a view when the index is a contiguous range."""
    if gather.start is not None:
        picked = source.narrow(-1, gather.start, gather.index.size)
    else:
        picked = source.index_select(-1, constant(gather.index, source.device))
    return picked.reshape(*source.shape[:-1], *gather.shape)


def in_transform() -> bool:
    """Whether a torch.func transform (grad, vmap, jvp, ...) is active. torch has no public test for this; if the
    private one ever disappears, assume a transform (the safe answer: nothing is cached or reused)."""
    peek = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)
    return peek is None or peek() is not None


_MAX_CONSTANTS = 4096
_CONSTANTS: dict[tuple[int, str, torch.dtype | None], tuple[np.ndarray, Tensor]] = {}


def constant(array: np.ndarray, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """A plan constant as a tensor, cached per device: index and sign tensors are not rebuilt on every call.

    Not cached inside a torch.func transform, where a new tensor belongs to the transform's level and must not
    escape it.
    """
    key = (id(array), str(device), dtype)
    hit = _CONSTANTS.get(key)
    if hit is not None and hit[0] is array:
        return hit[1]
    tensor = torch.as_tensor(array, dtype=dtype, device=device)
    if not in_transform():
        if len(_CONSTANTS) >= _MAX_CONSTANTS:  # a long sweep over many circuits: start over rather than grow
            _CONSTANTS.clear()
        _CONSTANTS[key] = (array, tensor)  # the array is kept alive, so its id is not reused
    return tensor


_EYE = {True: np.eye(2), False: np.eye(2, dtype=complex)}


def _half_angle_cos_sin(
    combined: SignatureGather, params: Tensor, features: Tensor, scale: float
) -> tuple[Tensor, Tensor]:
    """cos and sin of half of every angle of a single-source signature, from one gather: ``(*K, 1, P, F, W, G)``
    for parameters, ``(B, P, F, W, G)`` for data."""
    if combined.source == "param":
        angle = angles(params, combined.gather).unsqueeze(-5)
    else:
        angle = scale * angles(features, combined.gather)
    half = 0.5 * angle
    return torch.cos(half), torch.sin(half)


def _signature_matrices(
    combined: SignatureGather, params: Tensor, features: Tensor, scale: float, dtype: torch.dtype
) -> Tensor:
    """Fused ``(*batch, F, W, 2, 2)`` matrices of one single-source signature: one gather, one cos and sin for
    every gate, cos·I + sin·G per gate, then the product over the gate positions."""
    c, s = _half_angle_cos_sin(combined, params, features, scale)
    c, s = c[..., None, None], s[..., None, None]
    real = not combined.generators.dtype.kind == "c"
    u = c * constant(_EYE[real], c.device, dtype) + s * constant(combined.generators, c.device, dtype)
    gates = u.unbind(-3)
    m = gates[0]
    for g in gates[1:]:  # later gates act after earlier ones
        m = g @ m
    return m


def layer_columns(stack: Stack, params: Tensor, features: Tensor, scale: float, cdtype: torch.dtype) -> Tensor:
    """First columns ``(*batch, F, len(gated), 2)`` of a stack's fused matrices: the layer applied to |0>.

    For one single-source signature (an angle encoding) they come straight from the angles: ``(cos, sin)`` for
    an RY, ``cos·e0 + sin·G e0`` otherwise, then any later gates as 2x2 products; half the work of the matrices
    and no per-wire column selects.
    """
    combined = stack.combined[0] if len(stack.signatures) == 1 else None
    if combined is None:
        return layer_matrices(stack, params, features, scale, cdtype)[..., 0]
    if stack.real:
        cdtype = params.dtype
    c, s = _half_angle_cos_sin(combined, params, features, scale)
    if combined.cos_sin_column and stack.real:  # RY|0> = (cos, sin)
        columns = torch.stack((c[..., 0], s[..., 0]), dim=-1)
    else:
        first = constant(combined.first_column, c.device, cdtype)
        columns = c[..., 0, None] * constant(_E0[stack.real], c.device, cdtype) + s[..., 0, None] * first
        if combined.generators.shape[0] > 1:
            real = stack.real
            gen = constant(combined.generators, c.device, cdtype)[1:]
            later = c[..., 1:, None, None] * constant(_EYE[real], c.device, cdtype) + s[..., 1:, None, None] * gen
            for g in later.unbind(-3):
                columns = (g @ columns.unsqueeze(-1)).squeeze(-1)
    if stack.order is not None:
        columns = columns.index_select(-2, constant(stack.order, columns.device))
    return columns


_E0 = {True: np.array([1.0, 0.0]), False: np.array([1.0, 0.0], dtype=complex)}


def layer_matrices(stack: Stack, params: Tensor, features: Tensor, scale: float, cdtype: torch.dtype) -> Tensor:
    """Fused matrices ``(*batch, F, len(gated), 2, 2)`` of the F layers of a stack, in wire order.

    ``batch`` is the layers' natural batch: ``(*K, 1, P)`` for parameter-only layers, ``(B, P)`` for data-only
    ones, their broadcast for mixed ones. RY-only layers stay real.
    """
    if stack.real:
        cdtype = params.dtype
    blocks = []
    for (key, gathers), gates, combined in zip(stack.signatures, stack.rotations, stack.combined, strict=True):
        if combined is not None:
            blocks.append(_signature_matrices(combined, params, features, scale, cdtype))
            continue
        per_gate = []
        for (_, source), gather, gate in zip(key, gathers, gates, strict=True):
            if source == "param":  # (*K, 1, P, F, W): shared by every sample
                angle = angles(params, gather).unsqueeze(-4)
            else:  # (B, P, F, W)
                angle = scale * angles(features, gather)
            per_gate.append(rotations(gate, angle, cdtype))
        m = per_gate[0]
        for u in per_gate[1:]:  # later gates act after earlier ones
            m = u @ m
        blocks.append(m)
    if len(blocks) > 1:
        shape = broadcast_shapes(*(b.shape[:-3] for b in blocks))
        blocks = [b.expand(*shape, *b.shape[-3:]) for b in blocks]
    mats = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-3)
    if stack.order is not None:
        mats = mats.index_select(-3, constant(stack.order, mats.device))
    return mats


def per_wire(gated: tuple[int, ...], mats: Tensor, n: int) -> list[Tensor]:
    """Per-wire matrices ``(M, 2, 2)`` for all n wires (identity where the layer has no gate)."""
    return _fill_wires(gated, mats, n, lambda: torch.eye(2, dtype=mats.dtype, device=mats.device))


def per_wire_columns(gated: tuple[int, ...], columns: Tensor, n: int) -> list[Tensor]:
    """Per-wire states ``(M, 2)`` for all n wires from the gated wires' ``(M, W, 2)`` (|0> where there is no gate)."""
    return _fill_wires(gated, columns, n, lambda: torch.eye(2, dtype=columns.dtype, device=columns.device)[0])


def _fill_wires(gated: tuple[int, ...], per_gated: Tensor, n: int, fill: Callable[[], Tensor]) -> list[Tensor]:
    """The gated wires' slices of ``per_gated`` ``(M, W, ...)``, ``fill()`` expanded to M rows elsewhere."""
    out: list[Tensor] = []
    filler: Tensor | None = None
    picked = iter(per_gated.unbind(1))  # one UnbindBackward (a stack) instead of a zero-fill per selected wire
    for w in range(n):
        if w in gated:
            out.append(next(picked))
        else:
            if filler is None:
                one = fill()
                filler = one.expand(per_gated.shape[0], *one.shape)
            out.append(filler)
    return out


def kron(mats: list[Tensor]) -> Tensor:
    """Kronecker product ``(M, 2**g, 2**g)`` of per-wire ``(M, 2, 2)`` matrices, first wire most significant."""
    if len(mats) >= 5 or (len(mats) == 4 and mats[0].shape[0] >= 32):
        # Two halves joined by one outer-product GEMM: the chain of broadcast multiplies below has a backward of
        # strided reductions over the whole matrix, one per wire (6 wires: 1.6x slower forward+backward).
        half = len(mats) // 2
        a, b = kron(mats[:half]), kron(mats[half:])
        rows, da, db = a.shape[0], a.shape[-1], b.shape[-1]
        outer = a.reshape(rows, -1, 1) @ b.reshape(rows, 1, -1)  # (M, (ra, ca), (rb, cb))
        return outer.reshape(rows, da, da, db, db).transpose(2, 3).reshape(rows, da * db, da * db)
    k = mats[0]
    for m in mats[1:]:  # (M, a, 1, a, 1) * (M, 1, 2, 1, 2) -> (M, 2a, 2a)
        size = k.shape[-1] * 2
        k = (k[:, :, None, :, None] * m[:, None, :, None, :]).reshape(-1, size, size)
    return k


def product_state(columns: list[Tensor]) -> Tensor:
    """Kronecker product ``(M, 2**n)`` of per-wire ``(M, 2)`` single-qubit states."""
    if len(columns) >= 6:  # two halves joined by one outer-product GEMM (as in kron): 1.4-2x faster fwd+bwd
        half = len(columns) // 2
        a, b = product_state(columns[:half]), product_state(columns[half:])
        a, b = common_dtype(a, b)
        return (a[:, :, None] @ b[:, None, :]).reshape(a.shape[0], -1)
    v = columns[0]
    for u in columns[1:]:
        v = (v[:, :, None] * u[:, None, :]).reshape(v.shape[0], -1)
    return v


def apply_layer(state: Tensor, wires: list[Tensor], n: int) -> Tensor:
    """Apply per-wire matrices ``wires`` (n tensors ``(M, 2, 2)``) to states ``(M, 2**n)``, a Kronecker group of
    wires (:func:`group_sizes`) per GEMM."""
    m_total = state.shape[0]
    start = 0
    for g in group_sizes(n):
        u = kron(wires[start : start + g])
        state, u = common_dtype(state, u)
        # Apply U to the leading g wires and write those wires out LAST: out[m, r, i] = sum_j U[m, i, j] s[m, j, r].
        # The wire order rotates by g per group, so after all groups it is the original one again. Up to 3 wires
        # the GEMM is U @ s followed by a transpose copy: MKL's batched complex GEMM with a transposed k <= 8
        # operand runs 2-3x slower than that pair; 4-wire groups take the transposed operand (no copy).
        s = state.reshape(m_total, 2**g, -1)
        if g <= 3:
            state = torch.matmul(u, s).transpose(1, 2).reshape(m_total, -1)
        else:
            state = torch.matmul(s.transpose(1, 2), u.transpose(1, 2)).reshape(m_total, -1)
        start += g
    return state


SHARED_TWO_SIDED_MAX_QUBITS = 10


def apply_shared_layer(state: Tensor, wires: list[Tensor], n: int) -> Tensor:
    """Apply per-wire matrices that are shared by many rows of the state (a parameter-only layer on a batch of
    samples): ``state`` ``(*S, 2**n)``, ``wires`` n tensors ``(*N, 2, 2)`` with N broadcasting to S.

    The leading half of the wires is one Kronecker matrix multiplied from the left of the state viewed as a
    ``(2**a, 2**b)`` matrix, the trailing half one multiplied from the right: two GEMMs, and the Kronecker
    matrices are built once per (point, patch) rather than per sample. A training batch ``(B, P, 2**n)`` goes
    patch-major (:func:`_shared_by_samples`); other shapes broadcast the halves over the batch. Measured against
    :func:`apply_layer` on such layers (benchmarks/perf): 1.6x faster forward+backward at 6-8 qubits, even at
    10; slower at 12 qubits, where the halves' 2**6 multiply-adds per amplitude outweigh it.
    """
    lead = wires[0].shape[:-2]
    rows = [w.reshape(-1, 2, 2) for w in wires]
    half = n // 2
    left = kron(rows[:half]).reshape(*lead, 2**half, 2**half)
    right = kron(rows[half:]).reshape(*lead, 2 ** (n - half), 2 ** (n - half))
    if state.ndim == 3 and state.shape[0] > 1 and lead[-1:] == state.shape[1:2] and math.prod(lead) == lead[-1]:
        return _shared_by_samples(state, left.reshape(-1, *left.shape[-2:]), right.reshape(-1, *right.shape[-2:]))
    s, left = common_dtype(state.reshape(*state.shape[:-1], 2**half, -1), left)
    s = left @ s
    s, right = common_dtype(s, right)
    out = s @ right.transpose(-1, -2)  # batch: state's and the matrices' broadcast
    return out.reshape(*out.shape[:-2], -1)


def _shared_by_samples(state: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """The two-sided product for a training batch: state ``(B, P, 2**n)``, halves ``(P, a, a)`` and ``(P, b, b)``.

    Viewed patch-major, ``(P, a, B·b)``, the left half is one GEMM per patch over all samples, and its output
    read as ``(P, a·B, b)`` takes the right half the same way: no broadcast copies of the halves, and their
    gradients come out of single GEMMs instead of per-sample products summed over B. That costs two transposes
    of the state; net 1.08x at 8 qubits, 2 layers, 1.16x at 16 layers, 1.15x at 10 qubits (benchmarks/perf).
    """
    n_samples, n_patches = state.shape[0], state.shape[1]
    a, b = left.shape[-1], right.shape[-1]
    s = state.reshape(n_samples, n_patches, a, b).permute(1, 2, 0, 3).reshape(n_patches, a, n_samples * b)
    s, left = common_dtype(s, left)
    t = torch.bmm(left, s).reshape(n_patches, a * n_samples, b)
    t, right = common_dtype(t, right)
    out = torch.bmm(t, right.transpose(-1, -2))
    return out.reshape(n_patches, a, n_samples, b).permute(2, 0, 1, 3).reshape(n_samples, n_patches, a * b)


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of a state or matrix dtype: float64 for complex128, float32 for complex64, real ones as is."""
    return {torch.complex128: torch.float64, torch.complex64: torch.float32}.get(dtype, dtype)


def common_dtype(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Promote a real operand to the other's complex dtype (real states and RY-only matrices stay real)."""
    if a.dtype == b.dtype:
        return a, b
    return (a.to(b.dtype), b) if b.is_complex() else (a, b.to(a.dtype))


def probabilities(state: Tensor) -> Tensor:
    """Squared magnitudes of the amplitudes of real or complex ``state``."""
    return state**2 if not state.is_complex() else state.real**2 + state.imag**2
