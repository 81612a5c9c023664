"""Structured curvature: the exact Hessian as Gauss-Newton part + per-patch blocks.

For a loss L(θ) = (1/B) Σ_b l(z_b, y_b) of logits z, the Hessian splits exactly into

    H = G + R,   G = (1/B) Σ_b J_bᵀ (∂²l_b/∂z²) J_b,   R = Σ_b Σ_c (1/B)(∂l_b/∂z_bc) ∂²z_bc/∂θ².

In a PatchQNN the logits are a sum over patches of functions of disjoint parameter blocks, so R is block-diagonal
over patches, plus a border for parameters every patch shares (the positional bias, which enters every patch's
input, and the linear head, which is linear in its weights). :func:`structured_hessian` assembles H from
per-patch output Jacobians and per-patch block Hessians, batched over patches with ``torch.func.vmap``; it never
differentiates twice across patches, so its cost grows like N times one patch's Hessian rather than with the
square of the total parameter count. For any other model :func:`decompose` computes G from the output Jacobian
and R = H - G.

The loss must be a mean of per-sample losses (true for ``cross_entropy`` and ``mse``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, hessian, jacrev, jvp, vjp, vmap

from .engine import simulate
from .errors import ConfigError
from .objective import Objective


@dataclass(frozen=True)
class CurvatureDecomposition:
    """H = G + R at one parameter point, with how it was computed."""

    hessian: np.ndarray
    gauss_newton: np.ndarray
    residual: np.ndarray
    method: str  # "structured" (per-patch assembly) or "generic" (R = H - G)
    n_params: int
    n_patches: int
    n_classes: int
    seconds: float


def _per_sample_loss_derivatives(objective: Objective, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(∂l_b/∂z_b, ∂²l_b/∂z_b²) for every sample, for the mean loss L = (1/B) Σ_b l_b."""
    def single(z: Tensor, label: Tensor) -> Tensor:
        return objective.loss_fn(z.unsqueeze(0), label.unsqueeze(0))

    return vmap(grad(single))(logits, y), vmap(hessian(single))(logits, y)


def gauss_newton(objective: Objective, theta: Tensor | None = None) -> Tensor:
    """The Gauss-Newton (generalised Fisher) matrix G = (1/B) Σ_b J_bᵀ (∂²l_b/∂z²) J_b, for any model."""
    theta = objective.as_theta(theta)
    total = torch.zeros(objective.n_params, objective.n_params, dtype=torch.float64)
    for xc, yc, w in objective.chunks():
        jac = objective.jacobian(theta, xc)  # (b, C, P)
        _, d2 = _per_sample_loss_derivatives(objective, objective.outputs(theta, xc), yc)
        total += w * torch.einsum("bcp,bcd,bdq->pq", jac, d2, jac) / xc.shape[0]
    return (total + total.T) / 2


def is_patch_model(objective: Objective) -> bool:
    """Whether the Objective's model is a PatchQNN on our engine (the structured path applies)."""
    model = objective.model
    return hasattr(model, "circuit") and hasattr(model, "patch_map") and getattr(model, "supports_torch_func", False)


def structured_hessian(objective: Objective, theta: Tensor | None = None) -> CurvatureDecomposition:
    """Exact Hessian of a PatchQNN loss assembled from per-patch pieces (see the module docs)."""
    if not is_patch_model(objective):
        raise ConfigError("model", type(objective.model).__name__,
                          "the structured Hessian needs a PatchQNN on the 'torch' engine; use decompose()")
    start = time.perf_counter()
    theta = objective.as_theta(theta)
    model = objective.model
    params = objective.unflatten(theta)
    blocks = objective.parameter_blocks()
    n_patches, n_per = params["circuit_params"].shape
    P = objective.n_params
    G = torch.zeros(P, P, dtype=torch.float64)
    R = torch.zeros(P, P, dtype=torch.float64)
    for xc, yc, w in objective.chunks():
        g_c, r_c = _structured_chunk(objective, model, params, blocks, xc, yc)
        G += w * g_c
        R += w * r_c
    G, R = (G + G.T) / 2, (R + R.T) / 2
    return CurvatureDecomposition(
        hessian=(G + R).numpy(), gauss_newton=G.numpy(), residual=R.numpy(), method="structured",
        n_params=P, n_patches=int(n_patches), n_classes=int(model.n_classes), seconds=time.perf_counter() - start)


def _structured_chunk(objective: Objective, model, params: dict[str, Tensor], blocks: dict[str, slice],
                      x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    circuit, scale = model.circuit, model.encoding_scale
    theta_c = params["circuit_params"]  # (N, n)
    beta = params.get("position_bias")
    n_patches, n_per = theta_c.shape
    batch = x.shape[0]
    x_flat = x.reshape(batch, -1)
    amap = model.patch_map  # (N, F, HW)

    def patch_out(theta_k: Tensor, beta_flat: Tensor, a_k: Tensor) -> Tensor:
        feats = (x_flat + beta_flat) @ a_k.T  # (B, F)
        return simulate(circuit, theta_k.unsqueeze(0), feats.unsqueeze(1), scale=scale)[:, 0, :]  # (B, O)

    beta_flat = beta.reshape(-1) if beta is not None else torch.zeros(x_flat.shape[1], dtype=torch.float64)
    outs = vmap(patch_out, in_dims=(0, None, 0))(theta_c, beta_flat, amap)  # (N, B, O)
    j_theta = vmap(jacrev(patch_out, argnums=0), in_dims=(0, None, 0))(theta_c, beta_flat, amap)  # (N,B,O,n)
    pooled = outs.mean(0)  # (B, O)
    if model.head is not None:
        weight, bias = params["head.weight"], params["head.bias"]
        dz_dm = weight  # (C, O)
        logits = pooled @ weight.T + bias
    else:
        dz_dm = torch.zeros(model.n_classes, circuit.n_outputs, dtype=torch.float64)
        dz_dm[:, : model.n_classes] = model.output_scale * torch.eye(model.n_classes, dtype=torch.float64)
        logits = pooled @ dz_dm.T
    dl, d2l = _per_sample_loss_derivatives(objective, logits, y)  # (B, C), (B, C, C)
    dl, d2l = dl / batch, d2l / batch  # per-sample derivatives of the chunk's mean loss

    # Logit Jacobian J (B, C, P), block by block.
    P = objective.n_params
    jac = torch.zeros(batch, model.n_classes, P, dtype=torch.float64)
    circ = blocks["circuit_params"]
    jac[:, :, circ] = torch.einsum("co,kbon->bckn", dz_dm, j_theta).reshape(batch, model.n_classes, -1) / n_patches
    if beta is not None:
        j_beta = vmap(jacrev(patch_out, argnums=1), in_dims=(0, None, 0))(theta_c, beta_flat, amap)  # (N,B,O,HW)
        jac[:, :, blocks["position_bias"]] = torch.einsum("co,kboh->bch", dz_dm, j_beta) / n_patches
    if model.head is not None:
        eye = torch.eye(model.n_classes, dtype=torch.float64)
        jac[:, :, blocks["head.weight"]] = torch.einsum("cd,bo->bcdo", eye, pooled).reshape(batch, model.n_classes, -1)
        jac[:, :, blocks["head.bias"]] = eye.expand(batch, -1, -1)
    G = torch.einsum("bcp,bcd,bdq->pq", jac, d2l, jac)

    # R: second derivatives of the logits, weighted by dl, patch by patch (never across two patches).
    u = dl @ dz_dm  # (B, O): weight of each patch-mean observable

    def weighted(theta_k: Tensor, beta_flat: Tensor, a_k: Tensor) -> Tensor:
        return (u * patch_out(theta_k, beta_flat, a_k)).sum() / n_patches

    R = torch.zeros(P, P, dtype=torch.float64)
    argnums = (0, 1) if beta is not None else 0
    h = vmap(hessian(weighted, argnums=argnums), in_dims=(0, None, 0))(theta_c, beta_flat, amap)
    offsets = torch.arange(n_patches) * n_per + circ.start
    if beta is None:
        h_tt = h
    else:
        (h_tt, h_tb), (_, h_bb) = h
        pb = blocks["position_bias"]
        R[pb, pb] = h_bb.sum(0)
        for k in range(n_patches):
            rows = slice(int(offsets[k]), int(offsets[k]) + n_per)
            R[rows, pb] = h_tb[k]
            R[pb, rows] = h_tb[k].T
    for k in range(n_patches):
        rows = slice(int(offsets[k]), int(offsets[k]) + n_per)
        R[rows, rows] = h_tt[k]
    if model.head is not None:
        # ∂²(Σ dl·z)/∂W_co ∂θ_k = Σ_b dl_bc ∂m_bo/∂θ_k: the head is linear in W, so only this border remains.
        wb = blocks["head.weight"]
        cross = torch.einsum("bc,kbon->cokn", dl, j_theta).reshape(model.n_classes * circuit.n_outputs, -1)
        cross = cross / n_patches
        R[wb, circ] = cross
        R[circ, wb] = cross.T
        if beta is not None:
            cross_b = torch.einsum("bc,kboh->coh", dl, j_beta).reshape(model.n_classes * circuit.n_outputs, -1)
            cross_b = cross_b / n_patches
            R[wb, blocks["position_bias"]] = cross_b
            R[blocks["position_bias"], wb] = cross_b.T
    return G, R


def decompose(objective: Objective, theta: Tensor | None = None) -> CurvatureDecomposition:
    """H = G + R for any model: structured for a PatchQNN on our engine, else G from Jacobians and R = H - G."""
    if is_patch_model(objective):
        return structured_hessian(objective, theta)
    start = time.perf_counter()
    H = objective.hessian(theta)
    G = gauss_newton(objective, theta)
    n_classes = int(objective.outputs(theta, objective.x[:1]).shape[-1])
    return CurvatureDecomposition(
        hessian=H.numpy(), gauss_newton=G.numpy(), residual=(H - G).numpy(), method="generic",
        n_params=objective.n_params, n_patches=int(getattr(objective.model, "n_patches", 1)),
        n_classes=n_classes, seconds=time.perf_counter() - start)


def gauss_newton_vector_product(objective: Objective, theta: Tensor | None, v: Tensor) -> Tensor:
    """G v = (1/B) Σ_b J_bᵀ D_b (J_b v), matrix-free: one Jacobian-vector and one vector-Jacobian product."""
    theta = objective.as_theta(theta)
    v = torch.as_tensor(v, dtype=torch.float64)
    total = torch.zeros_like(theta)
    for xc, yc, w in objective.chunks():
        f = lambda t, xc=xc: objective._outputs(t, xc)  # noqa: E731
        logits, jv = jvp(f, (theta,), (v,))
        _, d2 = _per_sample_loss_derivatives(objective, logits.detach(), yc)
        dj = torch.einsum("bcd,bd->bc", d2, jv) / xc.shape[0]
        _, pullback = vjp(f, theta)
        total += w * pullback(dj)[0]
    return total.detach()


def residual_vector_product(objective: Objective, theta: Tensor | None, v: Tensor) -> Tensor:
    """R v = ∇²(Σ_bc w_bc z_bc) v with w = ∂L/∂z held fixed; batched over patches by the engine."""
    theta = objective.as_theta(theta)
    v = torch.as_tensor(v, dtype=torch.float64)
    total = torch.zeros_like(theta)
    for xc, yc, w in objective.chunks():
        logits = objective._outputs(theta, xc).detach()
        dl, _ = _per_sample_loss_derivatives(objective, logits, yc)
        weights = dl / xc.shape[0]
        scalar = lambda t, xc=xc, weights=weights: (weights * objective._outputs(t, xc)).sum()  # noqa: E731
        _, rv = jvp(grad(scalar), (theta,), (v,))
        total += w * rv
    return total.detach()
