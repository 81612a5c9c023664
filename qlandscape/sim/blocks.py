"""Parameter-only blocks (see :mod:`qlandscape.lowering`): a block's unitary, built once per (point, patch), and
its application to every sample as one GEMM, with the Z readout fused in when the block is the last step."""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from qlandscape.sim.block_chain import ChainLayers, chain_product, fits_memory_share
from qlandscape.sim.gate_matrices import (
    common_dtype,
    constant,
    in_transform,
    kron,
    layer_matrices,
    per_wire,
    probabilities,
    real_dtype,
)
from qlandscape.sim.lowering import Block, Plan, kron_rows

__all__ = [
    "SEQUENTIAL_MIN_QUBITS",
    "saved_layers_over_budget",
    "Readout",
    "block_unitary",
    "chain_layers",
    "apply_block",
    "nothing_differentiated",
    "patch_mean_z",
    "read_z",
]


def block_unitary(
    block: Block, params: Tensor, n: int, cdtype: torch.dtype, *, hand_derivatives: bool | None = None
) -> Tensor:
    """The block's unitary ``(*K, P, 2**n, 2**n)``: every factor ``perm_f @ K_f`` straight from the Kronecker
    halves of its layer (rows gathered from the small halves, one broadcast product: no dense Kronecker matrix
    to transpose or gather), then a log-depth chain of products.

    ``hand_derivatives``: from :data:`SEQUENTIAL_MIN_QUBITS` qubits on, multiply the layers with the hand-written
    tangent and vector-Jacobian product of :mod:`qlandscape.sim.block_chain` (what a parameter point's shared work
    is differentiated with), which keep one layer's matrices at a time, rather than autograd's through every
    intermediate. None (the default): only when autograd's saved layers would exceed a share of the memory budget
    (:func:`saved_layers_over_budget`); autograd's are ~1.3x faster for a training step where both fit."""
    device, dim = params.device, 2**n
    left, right = [], []
    for stack in block.stacks:
        mats = layer_matrices(stack, params, params, 1.0, cdtype).squeeze(-5)  # (*K, P, F, W, 2, 2)
        lead = mats.shape[:-3]
        wires = per_wire(stack.gated, mats.reshape(-1, *mats.shape[-3:]), n)
        first = kron(wires[: n // 2]) if n > 1 else wires[0].new_ones(wires[0].shape[0], 1, 1)
        left.append(first.reshape(*lead, 2 ** (n // 2), -1))
        right.append(kron(wires[n // 2 :]).reshape(*lead, 2 ** (n - n // 2), -1))
    mixed = len({p.dtype for p in left + right}) > 1  # real (RY-only) and complex stacks in one block
    halves = []
    for parts in (left, right):
        if mixed:
            parts = [p.to(cdtype) for p in parts]
        half = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-3)  # (*K, P, F, d, d)
        if block.order is not None:
            half = half.index_select(-3, constant(block.order, device))
        halves.append(half)
    a, b = halves
    if n >= SEQUENTIAL_MIN_QUBITS and a.shape[-3] > 1:
        if hand_derivatives or (hand_derivatives is None and saved_layers_over_budget(a, n, cdtype)):
            return chain_product(a, b, chain_layers(block, n), cdtype)
        return _sequential_unitary(block, a, b, n)
    lead = a.shape[:-2]  # (*K, P, F)
    if block.rows is None:  # no entangler rows to pick: the plain Kronecker product
        mats = a[..., :, None, :, None] * b[..., None, :, None, :]
    else:
        rows_a, rows_b, _, _ = kron_rows(block, n)
        a = a.flatten(-3, -2).index_select(-2, constant(rows_a, device))  # (*K, P, F * D, da)
        b = b.flatten(-3, -2).index_select(-2, constant(rows_b, device))
        mats = a.unsqueeze(-1) * b.unsqueeze(-2)
    mats = mats.reshape(*lead, dim, dim)
    if block.signs is not None:
        mats = mats * constant(block.signs, device, real_dtype(mats.dtype))
    while mats.shape[-3] > 1:  # U = M_{F-1} ... M_1 M_0, pairwise
        # split/unbind rather than strided slices: their backward is a cat/stack, a slice's a zero-filled copy
        n_factors = mats.shape[-3]
        head, tail = torch.split(mats, [n_factors - 1, 1], dim=-3) if n_factors % 2 else (mats, None)
        first, second = torch.unflatten(head, -3, (n_factors // 2, 2)).unbind(-3)
        paired = second @ first
        mats = paired if tail is None else torch.cat((paired, tail), dim=-3)
    return mats.squeeze(-3)


def saved_layers_over_budget(halves: Tensor, n: int, cdtype: torch.dtype) -> bool:
    """Whether autograd, differentiating a block's layer product (:func:`_sequential_unitary`) over ``halves``
    ``(*K, P, F, d, d)``, would save more than its share of the memory budget
    (:func:`~qlandscape.sim.block_chain.fits_memory_share`): two ``2**n`` x ``2**n`` matrices per layer and (point,
    patch). False when nothing is differentiated. The Kawase model's training step at N = 16 patches, L = 200 saves
    ~13 GB through autograd (killed on a 23 GB machine); at N = 4, L = 50, 0.8 GB, where autograd's step is 1.3x
    faster than the hand-written walks (benchmarks/kawase/README.md)."""
    if nothing_differentiated(halves):
        return False
    itemsize = 16 if cdtype == torch.complex128 else 8
    return not fits_memory_share(2 * math.prod(halves.shape[:-2]) * 4**n * itemsize, halves.device)


@lru_cache(maxsize=64)
def chain_layers(block: Block, n: int) -> ChainLayers:
    """The block's entanglers as :class:`~qlandscape.sim.block_chain.ChainLayers` (row sources and signs)."""
    sources = tuple(None if p is None or p.identity else p.source for p in block.perms)
    signs = tuple(None if block.signs is None else block.signs[f] for f in range(len(block.perms)))
    return ChainLayers(sources=sources, signs=signs, n_high=n // 2, n_low=n - n // 2)


SEQUENTIAL_MIN_QUBITS = 5  # from here on, applying each layer's halves beats dense products (benchmarks/perf)


def _sequential_unitary(block: Block, a: Tensor, b: Tensor, n: int) -> Tensor:
    """``U = M_{F-1} ... M_0`` with ``M_f = perm_f (A_f ⊗ B_f)`` applied one layer at a time: the halves multiply
    U's rows from the left (A on the high wires, B on the low ones), 2**n * (2**a + 2**b) multiply-adds per
    column instead of the dense product's 4**n (4x fewer at 6 qubits)."""
    dim, da, db = 2**n, a.shape[-1], b.shape[-1]
    device = a.device
    _, _, rows_a, rows_b = kron_rows(block, n)
    first_a = a[..., 0, :, :].index_select(-2, constant(rows_a, device))  # rows of perm_0 (A_0 ⊗ B_0)
    first_b = b[..., 0, :, :].index_select(-2, constant(rows_b, device))
    u = (first_a.unsqueeze(-1) * first_b.unsqueeze(-2)).reshape(*a.shape[:-3], dim, dim)
    signs = None if block.signs is None else constant(block.signs, device, real_dtype(u.dtype))
    if signs is not None:
        u = u * signs[0]
    for f in range(1, a.shape[-3]):
        a_f, b_f = a[..., f, :, :], b[..., f, :, :]
        u, a_f = common_dtype(u, a_f)
        u = (a_f @ u.reshape(*u.shape[:-2], da, db * dim)).reshape(*u.shape[:-2], da, db, dim)
        u, b_f = common_dtype(u, b_f)
        u = (b_f.unsqueeze(-3) @ u).reshape(*u.shape[:-3], dim, dim)
        perm = block.perms[f]
        if perm is not None and not perm.identity:
            u = u.index_select(-2, constant(perm.source, device))
        if signs is not None:
            u = u * signs[f]
    return u


_LOCAL = threading.local()  # one workspace per thread: Dask workers may run several threads in one process


def _workspace(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A reused output buffer for the block GEMM when nothing is differentiated (landscape grids).

    Fresh multi-MB temporaries cost more in page faults than the GEMM itself (measured in benchmarks/perf:
    0.42 ms vs 0.17 ms per grid point), so the largest buffer of the thread's last call is kept and reused.
    """
    key = (dtype, str(device))
    cache = getattr(_LOCAL, "buffers", None)
    if cache is None:
        cache = _LOCAL.buffers = {}
    buf = cache.get(key)
    need = int(np.prod(shape))
    if buf is None or buf.numel() < need:
        cache.clear()
        buf = cache[key] = torch.empty(need, dtype=dtype, device=device)
    return buf[:need].view(shape)


def nothing_differentiated(*tensors: Tensor) -> bool:
    """Whether in-place work and reused buffers are safe: no autograd graph and no torch.func transform."""
    if in_transform():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


_CHUNK_BYTES = 2**21  # keep each GEMM output in cache for the squaring and the readout that follow


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


@lru_cache(maxsize=8)
def _upper_triangle(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns, flat indices and weights (1 on the diagonal, 2 off it) of a symmetric matrix's upper
    triangle: a quadratic form φᵀMφ as a dot product of packed vectors."""
    rows, cols = np.triu_indices(dim)
    return rows, cols, rows * dim + cols, np.where(rows == cols, 1.0, 2.0)


@lru_cache(maxsize=64)
def _negative_rows(plan: Plan, n_outputs: int, pairs: bool) -> tuple[np.ndarray, int]:
    """Per output, the basis states where its Z string reads -1 (each as its (re, im) rows for ``pairs``): exactly
    half of them, since a Z string on at least one wire has parity -1 on half the basis, in any order."""
    if plan.z_signs is None:
        raise ValueError("a plan without a Z readout has no Z strings")
    rows = np.stack([np.flatnonzero(column < 0) for column in plan.z_signs[:, :n_outputs].T])
    if pairs:
        rows = np.stack([rows * 2, rows * 2 + 1], axis=-1).reshape(rows.shape[0], -1)
    return np.ascontiguousarray(rows.reshape(-1)), rows.shape[1]  # flat, so constant() caches one array


def patch_mean_z(state: Tensor, unitary: Tensor, plan: Plan, n_outputs: int) -> Tensor:
    """Patch-mean expectations ``(K, B, O)`` of the plan's first O Z observables after a last block, as quadratic
    forms (nothing differentiated).

    With a real state φ ``(B, P, D)`` shared by the K points and U ``(K, P, D, D)``, ``<Z_o> = 1 - 2 φᵀ M_o φ``
    with ``M_o = Re(U† P_o U)`` and P_o the projector onto the basis states where Z_o reads -1. The mean over
    patches is then one GEMM: the packed products φ_i φ_l (i <= l, off the diagonal counted twice) of all patches
    against all points' packed M. It replaces squaring a (B, K·2D) GEMM output and reading it out, and the separate
    mean over patches: a landscape grid's readout (benchmarks/perf).
    """
    n_points, n_patches, dim = unitary.shape[0], unitary.shape[1], unitary.shape[-1]
    triangle = _upper_triangle(dim)
    rows, cols, flat_tri = (constant(a, state.device) for a in triangle[:3])
    quad = (
        state.index_select(-1, rows) * state.index_select(-1, cols) * constant(triangle[3], state.device, state.dtype)
    )
    quad = quad.reshape(state.shape[0], -1)  # (B, P * T)
    # Z_o = I - 2 P_o with P_o the projector on the basis states where Z_o reads -1, and φ has norm 1 (a unitary
    # image of |0...0>), so <Z_o> = 1 - 2 φᵀ Re(U† P_o U) φ: half the rows of U per output
    negative, per_output = _negative_rows(plan, n_outputs, unitary.is_complex())
    if unitary.is_complex():  # the rows of [Re U; Im U], (j, re/im) interleaved
        unitary = torch.view_as_real(unitary).transpose(-1, -2).reshape(n_points, n_patches, 2 * dim, dim)
    picked = unitary.index_select(-2, constant(negative, state.device))
    picked = picked.reshape(n_points, n_patches, n_outputs, per_output, dim)  # (K, P, O, rows / 2, D)
    forms = picked.transpose(-1, -2) @ picked  # (K, P, O, D, D): Re(U† P_o U)
    packed = forms.reshape(*forms.shape[:3], -1).index_select(-1, flat_tri)  # (K, P, O, T)
    packed = packed.permute(1, 3, 0, 2).reshape(n_patches * flat_tri.numel(), -1)  # (P * T, K * O)
    projected = (quad @ packed).reshape(-1, n_points, n_outputs).transpose(0, 1) / n_patches
    return 1.0 - 2.0 * projected


class Readout:
    """A plan's Z signs on a device: ``(O, D)`` and, for squared (re, im) pairs, ``(O, 2D)``, both stored
    transposed (see :class:`qlandscape.lowering.Plan`)."""

    def __init__(self, plan: Plan, device: torch.device, dtype: torch.dtype) -> None:
        if plan.z_read is None or plan.z_pairs_read is None:
            raise ValueError("a plan without a Z readout has no Z signs")
        self.signs = constant(plan.z_read, device, dtype)
        self.pairs = constant(plan.z_pairs_read, device, dtype)
        self.n_outputs = plan.z_read.shape[0]


def _read(squares: Tensor, signs_t: Tensor) -> Tensor:
    """``squares @ signs`` from the ``(O, W)`` transposed signs."""
    return squares @ signs_t.T


def read_z(state: Tensor, readout: Readout) -> Tensor:
    """Z expectations ``(..., O)`` of states ``(..., D)``: squared (re, im) pairs against the paired signs, whose
    backward is one multiply (``|a|**2`` through ``.real``/``.imag`` costs two zero-filled complex gradients)."""
    squares = _squares(state)
    return _read(squares, readout.pairs if squares.shape[-1] != state.shape[-1] else readout.signs)


def _squares(out: Tensor) -> Tensor:
    """Squared magnitudes with the (re, im) pairs of a complex tensor kept side by side: ``(..., 2D)``."""
    if out.is_complex():
        out = torch.view_as_real(out).flatten(-2)
    return out.square()


def apply_block(state: Tensor, unitary: Tensor, n_k: int, readout: Readout | None = None) -> Tensor:
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
            if readout is not None and nothing_differentiated(s, operand):
                values = _read_in_chunks(s, operand.reshape(n_patches, dim, k_total, 2 * dim), readout.pairs).permute(
                    2, 1, 0, 3
                )
                return values.reshape(*k_shape, -1, n_patches, readout.n_outputs)
            out = torch.bmm(s, operand)  # (P, B', K * 2D)
            pairs = True
        else:
            s, stacked = common_dtype(s, stacked)
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
    u, s = common_dtype(u, s)
    out = torch.matmul(u, s)  # (K, P, D, B')
    if readout is not None:
        probs = probabilities(out)
        values = (readout.signs @ probs).permute(0, 3, 1, 2)  # (K, B', P, O)
        return values.reshape(*k_shape, -1, n_patches, readout.n_outputs)
    return out.permute(0, 3, 1, 2).reshape(*k_shape, -1, n_patches, dim)
