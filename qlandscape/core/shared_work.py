"""Two-level differentiation over chunks that share a parameter point's parameter-only work.

A model that offers :class:`~qlandscape.core.capabilities.ParameterWorkShared` (PatchQNN on our engine) splits its
loss on one chunk of data into ``f_c(θ, W(θ))``: ``W`` the parameter-only work (the unitaries of the circuit's
parameter-only blocks, the same for every sample), ``f_c`` what the chunk's samples add. Over an evaluation set of
many chunks, with weights ``w_c``,

* the loss is ``Σ w_c f_c(θ, W)`` with ``W`` built once;
* the gradient is ``Σ w_c ∂f_c/∂θ + J_Wᵀ (Σ w_c ∂f_c/∂W)``: each chunk accumulates its gradient with respect to
  ``W``, which is pulled back through the construction of ``W`` once;
* a Hessian-vector product differentiates that along ``v``: ``W`` and its tangent ``Ẇ = J_W v`` are built once
  (forward mode), each chunk gives the tangents of its two partial gradients (forward over reverse, with tangents
  ``(v, Ẇ)``), and the pull-back's tangent ``J_Wᵀ Ġ + ∇_θ <G, J_W(θ) v>`` is one reverse pass through the
  construction of ``(W, Ẇ)`` with cotangents ``(Ġ, G)`` (reverse over forward: for the engine's blocks one
  hand-written walk, :mod:`qlandscape.sim.block_chain`).

Every chunk therefore costs what applying the work costs, and building it (and its derivatives) is paid once per
parameter point instead of once per chunk. The results equal the chunk-by-chunk ones to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from qlandscape.core.capabilities import ParameterWorkShared
from qlandscape.core.losses import LossFn

__all__ = ["SharedWork"]

Chunks = Callable[..., Iterable[tuple[Tensor, Tensor, float]]]  # called with kind=: what the chunks are sized for


class SharedWork:
    """Loss, gradient and Hessian-vector products of a chunked mean loss whose model shares its parameter work.

    Args:
        model: the model (evaluated through the capability's methods, never mutated).
        unflatten: flat θ -> the model's parameters by name.
        loss_fn: ``(outputs, y) -> mean loss`` of one chunk.
        chunks: ``chunks(kind=...)`` yields ``(x_chunk, y_chunk, weight)`` with weights summing to one, in chunks
            sized for a ``"loss"``, ``"grad"`` or ``"hvp"`` computation (the Objective's chunks, planned against its
            memory budget).
    """

    def __init__(
        self,
        model: ParameterWorkShared,
        unflatten: Callable[[Tensor], dict[str, Tensor]],
        loss_fn: LossFn,
        chunks: Chunks,
    ) -> None:
        self.model = model
        self.unflatten = unflatten
        self.loss_fn = loss_fn
        self.chunks = chunks

    def work(self, theta: Tensor) -> tuple[Tensor, ...]:
        """The parameter-only work at θ."""
        return self.model.parameter_work(self.unflatten(theta))

    def chunk_loss(self, theta: Tensor, work: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
        """One chunk's mean loss at θ given the work at θ."""
        return self.loss_fn(self.model.forward_with_work(self.unflatten(theta), work, x), y)

    def loss(self, theta: Tensor) -> Tensor:
        """Mean loss over every chunk, the work built once."""
        with torch.no_grad():
            work = self.work(theta)
            total = torch.zeros((), dtype=torch.float64)
            for xc, yc, w in self.chunks(kind="loss"):
                total = total + w * self.chunk_loss(theta, work, xc, yc)
        return total

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Mean loss and its gradient: per chunk with respect to θ and the work, the work's part pulled back once."""
        with torch.no_grad():
            work = self.work(theta)
        value = torch.zeros((), dtype=torch.float64)
        direct = torch.zeros_like(theta)
        through: list[Tensor] = [torch.zeros_like(u) for u in work]
        grad_fn = torch.func.grad_and_value(self.chunk_loss, argnums=(0, 1))
        for xc, yc, w in self.chunks(kind="grad"):
            (g_theta, g_work), val = grad_fn(theta, work, xc, yc)
            value += w * val.detach()
            direct += w * g_theta.detach()
            for acc, g in zip(through, g_work, strict=True):
                acc += w * g.detach()
        pull = torch.func.vjp(self.work, theta)[1]
        (pulled,) = pull(tuple(through))
        return value, direct + pulled.detach()

    def hvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """H(θ) v of the mean loss: the work and its tangent along v built once, the chunks' partial gradients
        and their tangents accumulated, then one reverse pass through the work's construction (reverse over
        forward: the gradient of ``<Ġ, W(θ)> + <G, J_W(θ) v>``)."""

        def with_tangent(t: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            both = torch.func.jvp(self.work, (t,), (v,))
            return both[0], both[1]

        traced = torch.func.vjp(with_tangent, theta)
        built, pull = traced[0], traced[1]
        work = tuple(u.detach() for u in built[0])
        work_dot = tuple(u.detach() for u in built[1])
        grad_fn = torch.func.grad(self.chunk_loss, argnums=(0, 1))
        direct_dot = torch.zeros_like(theta)
        through: list[Tensor] = [torch.zeros_like(u) for u in work]
        through_dot: list[Tensor] = [torch.zeros_like(u) for u in work]
        for xc, yc, w in self.chunks(kind="hvp"):

            def partials(t: Tensor, u: tuple[Tensor, ...], xc: Tensor = xc, yc: Tensor = yc) -> tuple[Tensor, ...]:
                g_theta, g_work = grad_fn(t, u, xc, yc)
                return (g_theta, *g_work)

            both = torch.func.jvp(partials, (theta, work), (v, work_dot))
            grads, tangents = both[0], both[1]
            direct_dot += w * tangents[0].detach()
            for acc, acc_dot, g, g_dot in zip(through, through_dot, grads[1:], tangents[1:], strict=True):
                acc += w * g.detach()
                acc_dot += w * g_dot.detach()
        # d/dε J_W(θ + εv)ᵀ (G + εĠ) = J_Wᵀ Ġ + ∇_θ <G, J_W(θ) v>: the vector-Jacobian product of (W, J_W v)
        (pulled_dot,) = pull((tuple(through_dot), tuple(through)))
        return direct_dot + pulled_dot.detach()
