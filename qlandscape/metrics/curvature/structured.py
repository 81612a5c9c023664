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

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, hessian, jvp, vjp, vmap

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.metrics.curvature.results import CurvatureDecomposition, StructureSummary
from qlandscape.models.qnn import apply_feature_map


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
        raise ConfigError(
            "model",
            type(objective.model).__name__,
            "the structured Hessian needs a PatchQNN on the 'torch' engine; use decompose()",
        )
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
        hessian=(G + R).numpy(),
        gauss_newton=G.numpy(),
        residual=R.numpy(),
        method="structured",
        n_params=P,
        n_patches=int(n_patches),
        n_classes=int(model.n_classes),
        seconds=time.perf_counter() - start,
    )


def _structured_chunk(
    objective: Objective, model, params: dict[str, Tensor], blocks: dict[str, slice], x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor]:
    circuit, scale = model.circuit, model.encoding_scale
    theta_c = params["circuit_params"]  # (N, n)
    beta = params.get("position_bias")
    n_patches, n_per = theta_c.shape
    batch = x.shape[0]
    x_flat = x.reshape(batch, -1)
    amap = model.patch_map  # (N, F, HW)
    beta_flat = beta.reshape(-1) if beta is not None else torch.zeros(x_flat.shape[1], dtype=torch.float64)

    def patch_outputs(tc: Tensor, bf: Tensor) -> Tensor:  # (B, N, O), every patch in one engine call
        feats = apply_feature_map(x_flat + bf, amap)
        return model.backend.expectations(circuit, tc, feats, scale=scale, dtype=torch.complex128)

    # Compressed tangents: tangent j moves parameter j of EVERY patch block at once. Patch k's outputs depend
    # only on block k, so one forward-mode pass yields column j of all N per-patch Jacobians (and, below, of all
    # N diagonal Hessian blocks): n passes instead of N*n.
    tangents = torch.eye(n_per, dtype=torch.float64).unsqueeze(1).expand(n_per, n_patches, n_per)
    outs = patch_outputs(theta_c, beta_flat)
    j_theta = vmap(lambda v: jvp(lambda tc: patch_outputs(tc, beta_flat), (theta_c,), (v,))[1])(tangents)
    j_theta = j_theta.permute(2, 1, 3, 0)  # (N, B, O, n)
    if beta is not None:
        eye_b = torch.eye(beta_flat.numel(), dtype=torch.float64)
        j_beta = vmap(lambda v: jvp(lambda bf: patch_outputs(theta_c, bf), (beta_flat,), (v,))[1])(eye_b)
        j_beta = j_beta.permute(2, 1, 3, 0)  # (N, B, O, HW)
    pooled = outs.mean(1)  # (B, O)
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

    # Logit Jacobian J (B, C, P), block by block, and G = Σ_b J_bᵀ D_b J_b.
    n_classes = model.n_classes
    jac = torch.zeros(batch, n_classes, objective.n_params, dtype=torch.float64)
    circ = blocks["circuit_params"]
    jac[:, :, circ] = torch.einsum("co,kbon->bckn", dz_dm, j_theta).reshape(batch, n_classes, -1) / n_patches
    if beta is not None:
        jac[:, :, blocks["position_bias"]] = torch.einsum("co,kboh->bch", dz_dm, j_beta) / n_patches
    if model.head is not None:
        eye = torch.eye(n_classes, dtype=torch.float64)
        jac[:, :, blocks["head.weight"]] = torch.einsum("cd,bo->bcdo", eye, pooled).reshape(batch, n_classes, -1)
        jac[:, :, blocks["head.bias"]] = eye.expand(batch, -1, -1)
    G = torch.einsum("bcp,bcd,bdq->pq", jac, d2l, jac)

    # R: second derivatives of the logits weighted by dl. Through the patch mean they are the Hessian of
    # phi = Σ_b u_b · m_b with u = dl·∂z/∂m fixed: block-diagonal over patches plus the positional-bias border.
    u = (dl @ dz_dm).unsqueeze(1)  # (B, 1, O)

    def phi(tc: Tensor, bf: Tensor) -> Tensor:
        return (u * patch_outputs(tc, bf)).sum() / n_patches

    grad_phi = grad(phi, argnums=(0, 1))
    grad_theta = grad(phi, argnums=0)  # without a bias, differentiating by it would drag the encoding along
    R = torch.zeros(objective.n_params, objective.n_params, dtype=torch.float64)
    h_theta = vmap(lambda v: jvp(lambda tc: grad_theta(tc, beta_flat), (theta_c,), (v,))[1])(tangents)
    # h_theta[j, k, i] = ∂²phi/∂θ_k,i ∂θ_k,j
    offsets = [circ.start + k * n_per for k in range(n_patches)]
    for k, off in enumerate(offsets):
        R[off : off + n_per, off : off + n_per] = h_theta[:, k, :].T
    if beta is not None:
        pb = blocks["position_bias"]
        h_tb, h_bb = vmap(lambda v: jvp(lambda bf: grad_phi(theta_c, bf), (beta_flat,), (v,))[1])(eye_b)
        # h_tb[h, k, i] = ∂²phi/∂θ_k,i ∂β_h; h_bb[h, g] = ∂²phi/∂β_g ∂β_h
        R[pb, pb] = h_bb
        cross = h_tb.permute(1, 2, 0).reshape(n_patches * n_per, -1)  # rows: circuit params, cols: β
        R[circ, pb] = cross
        R[pb, circ] = cross.T
    if model.head is not None:
        # ∂²(Σ dl·z)/∂W_co ∂θ_k = Σ_b dl_bc ∂m_bo/∂θ_k: the head is linear in W, so only this border remains.
        wb = blocks["head.weight"]
        cross = torch.einsum("bc,kbon->cokn", dl, j_theta).reshape(n_classes * circuit.n_outputs, -1) / n_patches
        R[wb, circ] = cross
        R[circ, wb] = cross.T
        if beta is not None:
            pb = blocks["position_bias"]
            cross_b = torch.einsum("bc,kboh->coh", dl, j_beta).reshape(n_classes * circuit.n_outputs, -1)
            R[wb, pb] = cross_b / n_patches
            R[pb, wb] = cross_b.T / n_patches
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
        hessian=H.numpy(),
        gauss_newton=G.numpy(),
        residual=(H - G).numpy(),
        method="generic",
        n_params=objective.n_params,
        n_patches=int(getattr(objective.model, "n_patches", 1)),
        n_classes=n_classes,
        seconds=time.perf_counter() - start,
    )


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


def count_outliers(eigenvalues: np.ndarray, n_classes: int) -> int:
    """Eigenvalues above the largest ratio gap among the top ``4 * n_classes`` positive ones."""
    top = np.sort(eigenvalues[eigenvalues > 0])[::-1][: 4 * n_classes]
    if top.size < 2:
        return int(top.size)
    ratios = top[:-1] / np.maximum(top[1:], np.finfo(float).tiny)
    return int(np.argmax(ratios)) + 1


def structure_summary(decomposition: CurvatureDecomposition, *, output_scale: float | None = None) -> StructureSummary:
    """Spectra and outlier counts of H = G + R (see :class:`StructureSummary`). ``output_scale``: the c of a
    mean-rule PatchQNN; None (a head, a classical net) leaves the aggregation-normalised values NaN."""
    h = np.linalg.eigvalsh(decomposition.hessian)
    g = np.linalg.eigvalsh(decomposition.gauss_newton)
    r = np.linalg.eigvalsh(decomposition.residual)
    # Only the parameter-free mean rule has an aggregation scale; elsewhere the normalised value means nothing.
    scale = float("nan") if output_scale is None else float(output_scale) ** 2 / decomposition.n_patches
    return StructureSummary(
        eigenvalues_hessian=h,
        eigenvalues_gauss_newton=g,
        eigenvalues_residual=r,
        lambda_max=float(h[-1]),
        lambda_min=float(h[0]),
        lambda_max_gauss_newton=float(g[-1]),
        lambda_max_residual=float(r[-1]),
        lambda_min_residual=float(r[0]),
        n_outliers=count_outliers(h, decomposition.n_classes),
        n_outliers_gauss_newton=count_outliers(g, decomposition.n_classes),
        n_classes=decomposition.n_classes,
        n_patches=decomposition.n_patches,
        aggregation_scale=scale,
        lambda_max_normalised=float(h[-1] / scale),
        method=decomposition.method,
    )
