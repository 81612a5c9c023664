"""A block's unitary as the product of its layers, with hand-written first and second derivatives.

A parameter-only block is ``U = M_{F-1} ... M_1 M_0`` with ``M_f = S_f Π_f (A_f ⊗ B_f)``: the Kronecker halves
``A_f`` (high wires) and ``B_f`` (low wires) of layer f, then its entangler as a row permutation ``Π_f`` and real
signs ``S_f``. Autograd differentiates that chain through every intermediate it saves, and a Hessian-vector
product (forward mode over the reverse pass) through all of them again, with their tangents, at once: the Kawase
model's HVP spent 21 forward builds there and set its peak memory (benchmarks/kawase/README.md). Here each
derivative is the same two small GEMMs per layer as the forward:

* tangent: ``U̇_f = M_f U̇_{f-1} + Ṁ_f U_{f-1}`` alongside ``U_f``;
* vector-Jacobian product: the cotangent walks back, ``Ḡ_{f-1} = M_f^H Ḡ_f``, and each layer's halves get
  ``Ā_f``, ``B̄_f`` from it and the prefix ``U_{f-1}``: kept from a forward pass (two matrices per layer, point and
  patch) when they fit a share of the memory budget, else rebuilt during the walk from ``U`` by the layers'
  inverses, ``U_{f-1} = M_f^H U_f`` (every layer is unitary: two more small GEMMs per layer, one layer's matrices
  in memory at a time);
* the vector-Jacobian product's tangent (what an HVP needs): the same walk with the tangents of every term
  (rebuilt backwards too: ``U̇_{f-1} = M_f^H (U̇_f - Ṁ_f U_{f-1})``).

:func:`chain_product` wraps them as autograd Functions, so reverse mode, forward mode and any nesting of the two
(``torch.func.jvp`` of ``torch.func.vjp``, ``torch.func.hessian``) run these formulas; what a Function's derivative
returns is plain torch arithmetic, so higher orders are still exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qlandscape.core.memory import memory_budget

__all__ = ["ChainLayers", "chain_product", "fits_memory_share", "keeps_prefixes", "MEMORY_SHARE"]


@dataclass(frozen=True, eq=False)
class ChainLayers:
    """The fixed part of each layer: ``sources[f]`` the rows ``Π_f`` takes (None: identity), ``signs[f]`` the
    ``(D, 1)`` row signs ``S_f`` (None: all ones), for ``n_high`` + ``n_low`` qubits."""

    sources: tuple[np.ndarray | None, ...]
    signs: tuple[np.ndarray | None, ...]
    n_high: int
    n_low: int


class _Consts:
    """The layers' index and sign tensors on one device, and the inverse permutations for the reverse walk."""

    def __init__(self, layers: ChainLayers, device: torch.device, dtype: torch.dtype) -> None:
        self.sources = [None if s is None else torch.as_tensor(s, device=device) for s in layers.sources]
        self.inverses = [None if s is None else torch.as_tensor(np.argsort(s), device=device) for s in layers.sources]
        self.signs = [None if s is None else torch.as_tensor(s, dtype=dtype, device=device) for s in layers.signs]
        self.da, self.db = 2**layers.n_high, 2**layers.n_low


def _apply_a(a: Tensor, u: Tensor, c: _Consts) -> Tensor:
    """``(A ⊗ I) U``."""
    dim = u.shape[-1]
    return (a @ u.reshape(*u.shape[:-2], c.da, c.db * dim)).reshape(u.shape)


def _apply_b(b: Tensor, u: Tensor, c: _Consts) -> Tensor:
    """``(I ⊗ B) U``."""
    dim = u.shape[-1]
    return (b.unsqueeze(-3) @ u.reshape(*u.shape[:-2], c.da, c.db, dim)).reshape(u.shape)


def _grad_a(out_bar: Tensor, u: Tensor, c: _Consts) -> Tensor:
    """The cotangent of A in ``(A ⊗ I) U`` given the output's: ``Σ_{j,c} X̄[i,j,c] conj(U[k,j,c])``."""
    dim = u.shape[-1]
    left, right = out_bar.reshape(-1, c.da, c.db * dim), u.reshape(-1, c.da, c.db * dim)
    # one mm per (point, patch): mm reads U's conjugate transpose in place, bmm copies it first (1.6x slower)
    return torch.stack([x @ y.mH for x, y in zip(left, right, strict=True)]).reshape(*u.shape[:-2], c.da, c.da)


def _grad_b(out_bar: Tensor, u: Tensor, c: _Consts) -> Tensor:
    """The cotangent of B in ``(I ⊗ B) U`` given the output's: ``Σ_{i,c} Ȳ[i,j,c] conj(U[i,l,c])``."""
    dim = u.shape[-1]
    shape = (*u.shape[:-2], c.da, c.db, dim)
    return (out_bar.reshape(shape) @ u.reshape(shape).mH).sum(-3)


def _rows(u: Tensor, index: Tensor | None, sign: Tensor | None) -> Tensor:
    """``S Π U`` (forward) when given the sources; the cotangent walk uses ``Π^T S`` via :func:`_rows_back`."""
    if index is not None:
        u = u.index_select(-2, index)
        return u if sign is None else u.mul_(sign)  # a fresh tensor: signed in place
    return u if sign is None else u * sign


def _rows_back(g: Tensor, inverse: Tensor | None, sign: Tensor | None) -> Tensor:
    """``Π^T S Ḡ``: the adjoint of :func:`_rows` (signs real, a permutation's transpose its inverse)."""
    if inverse is not None:
        g = g.index_select(-2, inverse)
        return g if sign is None else g.mul_(sign.index_select(-2, inverse))  # a fresh tensor: signed in place
    return g if sign is None else g * sign


def _identity(a: Tensor, c: _Consts) -> Tensor:
    dim = c.da * c.db
    return torch.eye(dim, dtype=a.dtype, device=a.device).expand(*a.shape[:-3], dim, dim)


class _Walk:
    """What a forward pass keeps for the reverse walk: per layer f the prefix ``U_{f-1}`` (``us``, with the
    product itself last) and ``V_f = (A_f ⊗ I) U_{f-1}`` (``vs``), and with tangents their tangents (else None)."""

    def __init__(self) -> None:
        self.us: list[Tensor] = []
        self.vs: list[Tensor] = []
        self.u_dots: list[Tensor] | None = None
        self.v_dots: list[Tensor] | None = None


def _prefixes(
    a: Tensor, b: Tensor, c: _Consts, a_dot: Tensor | None = None, b_dot: Tensor | None = None, keep: bool = True
) -> _Walk:
    """The forward pass ``U_{-1} = I``, ``U_f = S_f Π_f (I ⊗ B_f)(A_f ⊗ I) U_{f-1}``, with tangents when given;
    ``keep``: keep every layer's matrices for a reverse walk (else only the product and its tangent)."""
    walk = _Walk()
    u = _identity(a, c)
    u_dot: Tensor | None = None
    if a_dot is not None:
        walk.u_dots, walk.v_dots = [], []
    for f in range(a.shape[-3]):
        a_f, b_f = a[..., f, :, :], b[..., f, :, :]
        v = _apply_a(a_f, u, c)
        if keep:
            walk.us.append(u)
            walk.vs.append(v)
        if walk.u_dots is not None and walk.v_dots is not None:
            assert a_dot is not None and b_dot is not None
            v_dot = _apply_a(a_dot[..., f, :, :], u, c)
            if u_dot is not None:
                v_dot = v_dot.add_(_apply_a(a_f, u_dot, c))
            if keep:
                walk.u_dots.append(torch.zeros_like(u) if u_dot is None else u_dot)
                walk.v_dots.append(v_dot)
            u_dot = _rows(_apply_b(b_f, v_dot, c).add_(_apply_b(b_dot[..., f, :, :], v, c)), c.sources[f], c.signs[f])
        u = _rows(_apply_b(b_f, v, c), c.sources[f], c.signs[f])
    walk.us.append(u)
    if walk.u_dots is not None:
        walk.u_dots.append(torch.zeros_like(u) if u_dot is None else u_dot)
    return walk


# Saved or kept layer matrices may take this share of the memory budget (with the default budget, a quarter of the
# available memory): beyond it the walks rebuild the prefixes from the product, and a differentiated block takes
# these walks instead of autograd's graph (qlandscape.sim.blocks).
MEMORY_SHARE = 0.5
_CHECK_FROM = 2**26  # below this nothing is read: no budget is that small, and reading costs time


def fits_memory_share(estimate: float, device: torch.device) -> bool:
    """Whether ``estimate`` bytes fit :data:`MEMORY_SHARE` of the memory budget (a CUDA device's free memory for
    its tensors); an unknown budget, or an estimate too small to matter, fits."""
    if estimate < _CHECK_FROM:
        return True
    available = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    budget, _ = memory_budget(available=available)
    return budget is None or estimate <= MEMORY_SHARE * budget


def keeps_prefixes(a: Tensor, dim: int, per_layer: int) -> bool:
    """Whether a reverse walk may keep ``per_layer`` ``(dim, dim)`` matrices per layer, point and patch of halves
    ``a`` ``(*lead, F, da, da)`` (:func:`fits_memory_share`)."""
    itemsize = 16 if a.dtype in (torch.complex128, torch.float64) else 8
    return fits_memory_share(per_layer * math.prod(a.shape[:-2]) * dim * dim * itemsize, a.device)


def _backwards(
    a: Tensor, b: Tensor, c: _Consts, a_dot: Tensor | None = None, b_dot: Tensor | None = None
) -> Iterator[tuple[int, Tensor, Tensor, Tensor | None, Tensor | None]]:
    """``(f, U_{f-1}, V_f, U̇_{f-1}, V̇_f)`` for f = F-1 .. 0 (the tangents None without ``a_dot``): from a kept
    forward pass when it fits the memory budget (:func:`keeps_prefixes`), else rebuilt layer by layer from the
    product by each layer's inverse, ``V_f = (I ⊗ B_f^H) Π_f^T S_f U_f``, ``U_{f-1} = (A_f^H ⊗ I) V_f``, and for
    the tangents ``V̇_f = (I ⊗ B_f^H)(Π_f^T S_f U̇_f - (I ⊗ Ḃ_f) V_f)``,
    ``U̇_{f-1} = (A_f^H ⊗ I)(V̇_f - (Ȧ_f ⊗ I) U_{f-1})``."""
    tangents = a_dot is not None and b_dot is not None
    n_layers, dim = a.shape[-3], c.da * c.db
    if keeps_prefixes(a, dim, 4 if tangents else 2):
        walk = _prefixes(a, b, c, a_dot, b_dot)
        for f in reversed(range(n_layers)):
            u_dot = None if walk.u_dots is None else walk.u_dots[f]
            v_dot = None if walk.v_dots is None else walk.v_dots[f]
            yield f, walk.us[f], walk.vs[f], u_dot, v_dot
            del walk.us[f:], walk.vs[f:]  # done with layer f: memory back
            if walk.u_dots is not None and walk.v_dots is not None:
                del walk.u_dots[f:], walk.v_dots[f:]
        return
    end = _prefixes(a, b, c, a_dot, b_dot, keep=False)
    u = end.us[-1]
    u_dot = None if end.u_dots is None else end.u_dots[-1]
    for f in reversed(range(n_layers)):
        a_f, b_f = a[..., f, :, :], b[..., f, :, :]
        v = _apply_b(b_f.mH, _rows_back(u, c.inverses[f], c.signs[f]), c)
        u_prev = _apply_a(a_f.mH, v, c)
        v_dot = u_prev_dot = None
        if tangents and u_dot is not None:
            assert a_dot is not None and b_dot is not None
            y_dot = _rows_back(u_dot, c.inverses[f], c.signs[f]) - _apply_b(b_dot[..., f, :, :], v, c)
            v_dot = _apply_b(b_f.mH, y_dot, c)
            u_prev_dot = _apply_a(a_f.mH, v_dot - _apply_a(a_dot[..., f, :, :], u_prev, c), c)
        yield f, u_prev, v, u_prev_dot, v_dot
        u, u_dot = u_prev, u_prev_dot


def _vjp(a: Tensor, b: Tensor, g: Tensor, c: _Consts) -> tuple[Tensor, Tensor]:
    """``(Ā, B̄)`` from the cotangent ``Ḡ`` of U."""
    grads_a, grads_b = [], []
    for f, u, v, _, _ in _backwards(a, b, c):
        a_f, b_f = a[..., f, :, :], b[..., f, :, :]
        y_bar = _rows_back(g, c.inverses[f], c.signs[f])
        grads_b.append(_grad_b(y_bar, v, c))
        v_bar = _apply_b(b_f.mH, y_bar, c)
        grads_a.append(_grad_a(v_bar, u, c))
        g = _apply_a(a_f.mH, v_bar, c)
    return torch.stack(grads_a[::-1], dim=-3), torch.stack(grads_b[::-1], dim=-3)


def _vjp_tangent(
    a: Tensor, b: Tensor, g: Tensor, a_dot: Tensor, b_dot: Tensor, g_dot: Tensor | None, c: _Consts
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tangent of ``(Ā, B̄)`` along ``(Ȧ, Ḃ, dḠ)`` (``g_dot`` None: zero), then ``(Ā, B̄)`` themselves (the
    walk computes both)."""
    out_a, out_b, grads_a, grads_b = [], [], [], []
    for f, u, v, u_dot_or_none, v_dot_or_none in _backwards(a, b, c, a_dot, b_dot):
        assert u_dot_or_none is not None and v_dot_or_none is not None
        u_dot, v_dot = u_dot_or_none, v_dot_or_none
        a_f, b_f = a[..., f, :, :], b[..., f, :, :]
        ad_f, bd_f = a_dot[..., f, :, :], b_dot[..., f, :, :]
        y_bar = _rows_back(g, c.inverses[f], c.signs[f])
        v_bar = _apply_b(b_f.mH, y_bar, c)
        db_f = _grad_b(y_bar, v_dot, c)
        v_bar_dot = _apply_b(bd_f.mH, y_bar, c)
        if g_dot is not None:
            y_bar_dot = _rows_back(g_dot, c.inverses[f], c.signs[f])
            db_f = db_f.add_(_grad_b(y_bar_dot, v, c))
            v_bar_dot = v_bar_dot.add_(_apply_b(b_f.mH, y_bar_dot, c))
        out_b.append(db_f)
        out_a.append(_grad_a(v_bar_dot, u, c).add_(_grad_a(v_bar, u_dot, c)))
        grads_b.append(_grad_b(y_bar, v, c))
        grads_a.append(_grad_a(v_bar, u, c))
        g = _apply_a(a_f.mH, v_bar, c)
        g_dot = _apply_a(a_f.mH, v_bar_dot, c).add_(_apply_a(ad_f.mH, v_bar, c))
    return tuple(torch.stack(parts[::-1], dim=-3) for parts in (out_a, out_b, grads_a, grads_b))  # type: ignore[return-value]


def _like(grad: Tensor, reference: Tensor) -> Tensor:
    """A complex derivative for a real input is its real part (the input's own real direction)."""
    return grad if reference.is_complex() else grad.real.contiguous()


def _complex(t: Tensor | None, like: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.zeros_like(like, dtype=dtype) if t is None else t.to(dtype)


class _Chain(torch.autograd.Function):
    """``U`` from the halves; its tangent and vector-Jacobian product by the walks above."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: Tensor, b: Tensor, layers: ChainLayers, cdtype: torch.dtype) -> Tensor:
        c = _Consts(layers, a.device, cdtype)
        out: Tensor = _prefixes(a.to(cdtype), b.to(cdtype), c, keep=False).us[-1]
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        a, b, layers, cdtype = inputs
        ctx.layers, ctx.cdtype = layers, cdtype
        ctx.save_for_backward(a, b)
        ctx.save_for_forward(a, b)

    @staticmethod
    def jvp(ctx: Any, a_dot: Tensor | None, b_dot: Tensor | None, *rest: Any) -> Tensor:
        a, b = ctx.saved_tensors
        cd = ctx.cdtype
        tangent: Tensor = _ChainTangent.apply(  # type: ignore[no-untyped-call]
            a, b, _complex(a_dot, a, cd), _complex(b_dot, b, cd), ctx.layers, cd
        )
        return tangent

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        a, b = ctx.saved_tensors
        a_bar, b_bar = _ChainVjp.apply(  # type: ignore[no-untyped-call]
            a, b, g.to(ctx.cdtype), ctx.layers, ctx.cdtype
        )
        return a_bar, b_bar, None, None


class _ChainTangent(torch.autograd.Function):
    """``U̇`` from ``(A, B, Ȧ, Ḃ)`` (the tangents complex). Its vector-Jacobian product is one walk: along the
    tangents it is U's own vector-Jacobian product, along the halves the second-order term; so a Hessian-vector
    product taken as reverse mode over forward mode (:mod:`qlandscape.core.shared_work`) costs one walk with
    tangents instead of autograd through the tangent's every intermediate."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: Tensor, b: Tensor, a_dot: Tensor, b_dot: Tensor, layers: ChainLayers, cdtype: torch.dtype) -> Tensor:
        c = _Consts(layers, a.device, cdtype)
        dots = _prefixes(a.to(cdtype), b.to(cdtype), c, a_dot, b_dot, keep=False).u_dots
        assert dots is not None
        return dots[-1]

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        a, b, a_dot, b_dot, layers, cdtype = inputs
        ctx.layers, ctx.cdtype = layers, cdtype
        ctx.save_for_backward(a, b, a_dot, b_dot)
        ctx.save_for_forward(a, b, a_dot, b_dot)

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> Tensor:
        # forward mode of a tangent (third-order work): autograd's forward mode through the plain walk
        a, b, a_dot, b_dot = ctx.saved_tensors
        c, cd = _Consts(ctx.layers, a.device, ctx.cdtype), ctx.cdtype
        primals = (a, b, a_dot, b_dot)
        given = tuple(torch.zeros_like(p) if t is None else t for p, t in zip(primals, tangents[:4], strict=True))

        def walk(a: Tensor, b: Tensor, a_dot: Tensor, b_dot: Tensor) -> Tensor:
            dots = _prefixes(a.to(cd), b.to(cd), c, a_dot, b_dot, keep=False).u_dots
            assert dots is not None
            return dots[-1]

        out: Tensor = torch.func.jvp(walk, primals, given)[1]
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        a, b, a_dot, b_dot = ctx.saved_tensors
        cd = ctx.cdtype
        c = _Consts(ctx.layers, a.device, ctx.cdtype)
        second_a, second_b, first_a, first_b = _vjp_tangent(a.to(cd), b.to(cd), g.to(cd), a_dot, b_dot, None, c)
        return _like(second_a, a), _like(second_b, b), first_a, first_b, None, None


class _ChainVjp(torch.autograd.Function):
    """``(Ā, B̄)`` from ``(A, B, Ḡ)``; its tangent by the differentiated walk, its own vector-Jacobian product
    by the symmetry of second derivatives: along ``Ḡ`` it is U's tangent, along the halves the walk's tangent."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: Tensor, b: Tensor, g: Tensor, layers: ChainLayers, cdtype: torch.dtype) -> tuple[Tensor, Tensor]:
        c = _Consts(layers, a.device, cdtype)
        a_bar, b_bar = _vjp(a.to(cdtype), b.to(cdtype), g, c)
        return _like(a_bar, a), _like(b_bar, b)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
        a, b, g, layers, cdtype = inputs
        ctx.layers, ctx.cdtype = layers, cdtype
        ctx.save_for_backward(a, b, g)
        ctx.save_for_forward(a, b, g)

    @staticmethod
    def jvp(
        ctx: Any, a_dot: Tensor | None, b_dot: Tensor | None, g_dot: Tensor | None, *rest: Any
    ) -> tuple[Tensor, Tensor]:
        a, b, g = ctx.saved_tensors
        c = _Consts(ctx.layers, a.device, ctx.cdtype)
        cd = ctx.cdtype
        out_a, out_b, _, _ = _vjp_tangent(
            a.to(cd),
            b.to(cd),
            g,
            _complex(a_dot, a, cd),
            _complex(b_dot, b, cd),
            None if g_dot is None else g_dot.to(cd),
            c,
        )
        return _like(out_a, a), _like(out_b, b)

    @staticmethod
    def backward(ctx: Any, ca: Tensor | None, cb: Tensor | None) -> tuple[Tensor | None, ...]:
        a, b, g = ctx.saved_tensors
        cd = ctx.cdtype
        c = _Consts(ctx.layers, a.device, ctx.cdtype)
        ac, bc = a.to(cd), b.to(cd)
        ca_c, cb_c = _complex(ca, a, cd), _complex(cb, b, cd)
        dots = _prefixes(ac, bc, c, ca_c, cb_c, keep=False).u_dots
        assert dots is not None
        out_a, out_b, _, _ = _vjp_tangent(ac, bc, g, ca_c, cb_c, None, c)
        return _like(out_a, a), _like(out_b, b), dots[-1], None, None


def chain_product(a: Tensor, b: Tensor, layers: ChainLayers, cdtype: torch.dtype) -> Tensor:
    """``U = Π_f S_f Π_f (A_f ⊗ B_f)`` ``(*lead, D, D)`` from the halves ``a`` ``(*lead, F, da, da)`` and ``b``
    ``(*lead, F, db, db)`` (real or complex), in ``cdtype``, differentiated by the hand-written walks."""
    out: Tensor = _Chain.apply(a, b, layers, cdtype)  # type: ignore[no-untyped-call]
    return out
