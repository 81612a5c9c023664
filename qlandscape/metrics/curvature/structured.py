"""Structured curvature: the exact Hessian as Gauss-Newton part + per-patch blocks.

For a loss L(θ) = (1/B) Σ_b l(z_b, y_b) of logits z, the Hessian splits exactly into

    H = G + R,   G = (1/B) Σ_b J_bᵀ (∂²l_b/∂z²) J_b,   R = Σ_b Σ_c (1/B)(∂l_b/∂z_bc) ∂²z_bc/∂θ².

In a PatchQNN the logits are a sum over patches of functions of disjoint parameter blocks, so R is block-diagonal
over patches, plus a border for parameters every patch shares (the positional bias, which enters every patch's
input, and the linear head, which is linear in its weights). :func:`structured_hessian` assembles H from
per-patch output Jacobians and per-patch block Hessians, batched over patches with ``torch.func.vmap``; it never
differentiates twice across patches, so its cost grows like N times one patch's Hessian rather than with the
square of the total parameter count. For any other model :func:`decompose` computes G from the output Jacobian
and R = H - G. A model offers the structure through :class:`~qlandscape.core.capabilities.PatchStructured`
(PatchQNN does); nothing here reads a model's simulator or circuit.

:func:`exact_hessian` is the one place that chooses between the generic Hessian (:meth:`Objective.hessian`) and the
per-patch assembly. :func:`gauss_newton_operator` and :func:`residual_operator` make G and R matrix-free
:class:`~qlandscape.core.operators.LinearOperator` s, so Lanczos, Hutchinson and SLQ run on them as on H.

The loss must be a mean of per-sample losses (true for ``cross_entropy`` and ``mse``).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad, hessian, jvp, vjp, vmap

from qlandscape.core.capabilities import PatchStructured
from qlandscape.core.errors import ConfigError, check_choice, is_finite_number
from qlandscape.core.objective import Objective, uses_torch_func
from qlandscape.core.operators import LinearOperator, checked_theta
from qlandscape.metrics.curvature.results import CurvatureDecomposition, StructureSummary

__all__ = [
    "HESSIAN_METHODS",
    "STRUCTURED_MIN_PATCHES",
    "CurvatureDecomposition",
    "StructureSummary",
    "aggregation_scale",
    "count_outliers",
    "decompose",
    "exact_hessian",
    "gauss_newton",
    "gauss_newton_operator",
    "gauss_newton_vector_product",
    "is_patch_model",
    "residual_operator",
    "residual_vector_product",
    "structure_summary",
    "structured_hessian",
]

# Below this many patches the plain torch.func Hessian beats the per-patch assembly (benchmarks/perf).
STRUCTURED_MIN_PATCHES = 2
HESSIAN_METHODS = ("auto", "autograd", "structured")


def _per_sample_loss_derivatives(objective: Objective, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(∂l_b/∂z_b, ∂²l_b/∂z_b²) for every sample, for the mean loss L = (1/B) Σ_b l_b."""

    def single(z: Tensor, label: Tensor) -> Tensor:
        return objective.loss_fn(z.unsqueeze(0), label.unsqueeze(0))

    return vmap(grad(single))(logits, y), vmap(hessian(single))(logits, y)


def gauss_newton(objective: Objective, theta: Tensor | None = None) -> Tensor:
    """The Gauss-Newton (generalised Fisher) matrix G = (1/B) Σ_b J_bᵀ (∂²l_b/∂z²) J_b, for any model."""
    theta = objective.as_theta(theta)
    total = torch.zeros(objective.n_params, objective.n_params, dtype=torch.float64)
    for xc, yc, w in objective.chunks(kind="jacobian"):
        jac = objective.jacobian(theta, xc)  # (b, C, P)
        _, d2 = _per_sample_loss_derivatives(objective, objective.outputs(theta, xc), yc)
        total += w * torch.einsum("bcp,bcd,bdq->pq", jac, d2, jac) / xc.shape[0]
    return (total + total.T) / 2


def is_patch_model(objective: Objective) -> bool:
    """Whether the structured path applies: the Objective's model offers its patch structure
    (:class:`~qlandscape.core.capabilities.PatchStructured`) and composes with ``torch.func`` (a PatchQNN on our
    engine, not on a PennyLane device)."""
    return isinstance(objective.model, PatchStructured) and uses_torch_func(objective.model)


def aggregation_scale(model: nn.Module) -> float | None:
    """c²/N for a parameter-free patch-mean readout, logits = c · (mean over N patches): the factor by which the
    averaging alone scales G. For any fixed readout matrix A it is ‖A‖₂²/N (A = c·[I 0] gives c²). None for a
    model whose readout is trained (a linear head) or that has no patch structure (a classical net)."""
    if not isinstance(model, PatchStructured):
        return None
    readout = model.fixed_readout()
    if readout is None:
        return None
    return float(np.linalg.norm(readout.detach().cpu().numpy(), 2)) ** 2 / model.n_patches


def _scale_or_nan(model: nn.Module) -> float:
    scale = aggregation_scale(model)
    return float("nan") if scale is None else scale


def exact_hessian(
    objective: Objective,
    theta: Tensor | None = None,
    *,
    method: Literal["auto", "autograd", "structured"] = "auto",
) -> Tensor:
    """Dense exact Hessian (P, P) of the Objective's mean loss at θ (None: the model's own parameters).

    ``method``: ``"autograd"`` (:meth:`Objective.hessian`: ``torch.func.hessian`` or double backward),
    ``"structured"`` (:func:`structured_hessian`, the per-patch assembly; ConfigError for a model without patch
    structure or ``torch.func`` support), or ``"auto"``: structured for patch models with at least
    ``STRUCTURED_MIN_PATCHES`` patches, where it is measured to be faster, else autograd.
    """
    check_choice("method", method, HESSIAN_METHODS)
    if method == "auto":
        model = objective.model
        many_patches = isinstance(model, PatchStructured) and model.n_patches >= STRUCTURED_MIN_PATCHES
        method = "structured" if many_patches and is_patch_model(objective) else "autograd"
    if method == "structured":
        return torch.from_numpy(structured_hessian(objective, theta).hessian)
    return objective.hessian(theta)


def structured_hessian(objective: Objective, theta: Tensor | None = None) -> CurvatureDecomposition:
    """Exact Hessian of a patch model's loss assembled from per-patch pieces (see the module docs)."""
    if not is_patch_model(objective):
        raise ConfigError(
            "model",
            type(objective.model).__name__,
            "the structured Hessian needs a model with patch structure (a PatchQNN) on the 'torch' engine; "
            "use decompose() or exact_hessian(method='autograd')",
        )
    start = time.perf_counter()
    theta = objective.as_theta(theta)
    model = objective.model
    assert isinstance(model, PatchStructured)  # is_patch_model checked it; narrows the type
    params = objective.unflatten(theta)
    blocks = objective.parameter_blocks()
    layout = model.patch_layout()
    n_patches, n_per = params[layout.circuit].shape
    n_bias = 0 if layout.position_bias is None else int(params[layout.position_bias].numel())
    P = objective.n_params
    # Each chunk runs n_per (then n_bias) tangent passes through every patch at once: size the chunks for them.
    plan = objective.chunk_plan("structured", passes=int(n_per) + n_bias)
    G = torch.zeros(P, P, dtype=torch.float64)
    R = torch.zeros(P, P, dtype=torch.float64)
    for xc, yc, w in objective.chunks(size=plan.samples):
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
        aggregation_scale=_scale_or_nan(model),
    )


def _structured_chunk(
    objective: Objective,
    model: PatchStructured,
    params: dict[str, Tensor],
    blocks: dict[str, slice],
    x: Tensor,
    y: Tensor,
) -> tuple[Tensor, Tensor]:
    layout = model.patch_layout()
    theta_c = params[layout.circuit]  # (N, n)
    beta = params[layout.position_bias] if layout.position_bias is not None else None
    n_patches, n_per = theta_c.shape
    batch = x.shape[0]
    beta_flat = beta.reshape(-1) if beta is not None else None

    def patch_outputs(tc: Tensor, bf: Tensor | None) -> Tensor:  # (B, N, O), every patch in one call
        return model.evaluate_patches(tc, bf, x)

    # Compressed tangents: tangent j moves parameter j of EVERY patch block at once. Patch k's outputs depend
    # only on block k, so one forward-mode pass yields column j of all N per-patch Jacobians (and, below, of all
    # N diagonal Hessian blocks): n passes instead of N*n.
    tangents = torch.eye(n_per, dtype=torch.float64).unsqueeze(1).expand(n_per, n_patches, n_per)
    outs = patch_outputs(theta_c, beta_flat)
    j_theta = vmap(lambda v: jvp(lambda tc: patch_outputs(tc, beta_flat), (theta_c,), (v,))[1])(tangents)
    j_theta = j_theta.permute(2, 1, 3, 0)  # (N, B, O, n)
    if beta_flat is not None:
        eye_b = torch.eye(beta_flat.numel(), dtype=torch.float64)
        j_beta = vmap(lambda v: jvp(lambda bf: patch_outputs(theta_c, bf), (beta_flat,), (v,))[1])(eye_b)
        j_beta = j_beta.permute(2, 1, 3, 0)  # (N, B, O, HW)
    pooled = outs.mean(1)  # (B, O)
    n_outputs = outs.shape[-1]
    readout = model.fixed_readout()
    if layout.head_weight is not None and layout.head_bias is not None:
        weight, bias = params[layout.head_weight], params[layout.head_bias]
        dz_dm = weight  # (C, O)
        logits = pooled @ weight.T + bias
    elif readout is not None:
        dz_dm = readout.to(torch.float64)  # (C, O)
        logits = pooled @ dz_dm.T
    else:
        raise ConfigError(
            "model", type(model).__name__, "a patch model needs a fixed readout or a linear head (weight and bias)"
        )
    dl, d2l = _per_sample_loss_derivatives(objective, logits, y)  # (B, C), (B, C, C)
    dl, d2l = dl / batch, d2l / batch  # per-sample derivatives of the chunk's mean loss

    # Logit Jacobian J (B, C, P), block by block, and G = Σ_b J_bᵀ D_b J_b.
    n_classes = model.n_classes
    jac = torch.zeros(batch, n_classes, objective.n_params, dtype=torch.float64)
    circ = blocks[layout.circuit]
    jac[:, :, circ] = torch.einsum("co,kbon->bckn", dz_dm, j_theta).reshape(batch, n_classes, -1) / n_patches
    if layout.position_bias is not None:
        jac[:, :, blocks[layout.position_bias]] = torch.einsum("co,kboh->bch", dz_dm, j_beta) / n_patches
    if layout.head_weight is not None and layout.head_bias is not None:
        eye = torch.eye(n_classes, dtype=torch.float64)
        jac[:, :, blocks[layout.head_weight]] = torch.einsum("cd,bo->bcdo", eye, pooled).reshape(batch, n_classes, -1)
        jac[:, :, blocks[layout.head_bias]] = eye.expand(batch, -1, -1)
    G = torch.einsum("bcp,bcd,bdq->pq", jac, d2l, jac)

    # R: second derivatives of the logits weighted by dl. Through the patch mean they are the Hessian of
    # phi = Σ_b u_b · m_b with u = dl·∂z/∂m fixed: block-diagonal over patches plus the positional-bias border.
    u = (dl @ dz_dm).unsqueeze(1)  # (B, 1, O)

    def phi(tc: Tensor, bf: Tensor | None) -> Tensor:
        return (u * patch_outputs(tc, bf)).sum() / n_patches

    grad_phi = grad(phi, argnums=(0, 1))
    grad_theta = grad(phi, argnums=0)  # without a bias, differentiating by it would drag the encoding along
    R = torch.zeros(objective.n_params, objective.n_params, dtype=torch.float64)
    h_theta = vmap(lambda v: jvp(lambda tc: grad_theta(tc, beta_flat), (theta_c,), (v,))[1])(tangents)
    # h_theta[j, k, i] = ∂²phi/∂θ_k,i ∂θ_k,j
    offsets = [circ.start + k * n_per for k in range(n_patches)]
    for k, off in enumerate(offsets):
        R[off : off + n_per, off : off + n_per] = h_theta[:, k, :].T
    if layout.position_bias is not None:
        pb = blocks[layout.position_bias]
        h_tb, h_bb = vmap(lambda v: jvp(lambda bf: grad_phi(theta_c, bf), (beta_flat,), (v,))[1])(eye_b)
        # h_tb[h, k, i] = ∂²phi/∂θ_k,i ∂β_h; h_bb[h, g] = ∂²phi/∂β_g ∂β_h
        R[pb, pb] = h_bb
        cross = h_tb.permute(1, 2, 0).reshape(n_patches * n_per, -1)  # rows: circuit params, cols: β
        R[circ, pb] = cross
        R[pb, circ] = cross.T
    if layout.head_weight is not None:
        # ∂²(Σ dl·z)/∂W_co ∂θ_k = Σ_b dl_bc ∂m_bo/∂θ_k: the head is linear in W, so only this border remains.
        wb = blocks[layout.head_weight]
        cross = torch.einsum("bc,kbon->cokn", dl, j_theta).reshape(n_classes * n_outputs, -1) / n_patches
        R[wb, circ] = cross
        R[circ, wb] = cross.T
        if layout.position_bias is not None:
            pb = blocks[layout.position_bias]
            cross_b = torch.einsum("bc,kboh->coh", dl, j_beta).reshape(n_classes * n_outputs, -1)
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
        n_patches=objective.model.n_patches if isinstance(objective.model, PatchStructured) else 1,
        n_classes=n_classes,
        seconds=time.perf_counter() - start,
        aggregation_scale=_scale_or_nan(objective.model),
    )


def gauss_newton_vector_product(objective: Objective, theta: Tensor | None, v: Tensor) -> Tensor:
    """G v = (1/B) Σ_b J_bᵀ D_b (J_b v), matrix-free: one Jacobian-vector and one vector-Jacobian product."""
    theta = objective.as_theta(theta)
    v = torch.as_tensor(v, dtype=torch.float64)
    total = torch.zeros_like(theta)
    for xc, yc, w in objective.chunks(kind="hvp"):
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
    for xc, yc, w in objective.chunks(kind="hvp"):
        logits = objective._outputs(theta, xc).detach()
        dl, _ = _per_sample_loss_derivatives(objective, logits, yc)
        weights = dl / xc.shape[0]
        scalar = lambda t, xc=xc, weights=weights: (weights * objective._outputs(t, xc)).sum()  # noqa: E731
        _, rv = jvp(grad(scalar), (theta,), (v,))
        total += w * rv
    return total.detach()


def _require_torch_func(objective: Objective, what: str) -> None:
    if not objective.functorch:
        raise ConfigError(
            "model",
            type(objective.model).__name__,
            f"{what} differentiates the outputs with torch.func, which this model does not compose with (a "
            "PennyLane device); use decompose() for the dense G and R",
        )


def gauss_newton_operator(objective: Objective, theta: np.ndarray | Tensor | None = None) -> LinearOperator:
    """The Gauss-Newton matrix G at θ (None: the model's own parameters) as a counted, matrix-free operator
    (:func:`gauss_newton_vector_product`: one Jacobian-vector and one vector-Jacobian product per matvec).

    Raises ConfigError on non-finite parameters or a model without ``torch.func`` support, ValueError when the
    loss at θ is not finite.
    """
    _require_torch_func(objective, "the Gauss-Newton operator")
    theta_t = checked_theta(objective, theta)

    def apply(v: np.ndarray) -> np.ndarray:
        return gauss_newton_vector_product(objective, theta_t, torch.from_numpy(np.ascontiguousarray(v))).numpy()

    return LinearOperator(objective.n_params, apply, name=f"Gauss-Newton matrix of {objective!r}")


def residual_operator(objective: Objective, theta: np.ndarray | Tensor | None = None) -> LinearOperator:
    """The residual R = H − G at θ (None: the model's own parameters) as a counted, matrix-free operator
    (:func:`residual_vector_product`: one forward-over-reverse product per matvec).

    Raises ConfigError on non-finite parameters or a model without ``torch.func`` support, ValueError when the
    loss at θ is not finite.
    """
    _require_torch_func(objective, "the residual operator")
    theta_t = checked_theta(objective, theta)

    def apply(v: np.ndarray) -> np.ndarray:
        return residual_vector_product(objective, theta_t, torch.from_numpy(np.ascontiguousarray(v))).numpy()

    return LinearOperator(objective.n_params, apply, name=f"residual R = H - G of {objective!r}")


def count_outliers(eigenvalues: np.ndarray, n_classes: int) -> int:
    """Eigenvalues above the largest ratio gap among the top ``4 * n_classes`` positive ones."""
    top = np.sort(eigenvalues[eigenvalues > 0])[::-1][: 4 * n_classes]
    if top.size < 2:
        return int(top.size)
    ratios = top[:-1] / np.maximum(top[1:], np.finfo(float).tiny)
    return int(np.argmax(ratios)) + 1


def structure_summary(decomposition: CurvatureDecomposition, *, output_scale: float | None = None) -> StructureSummary:
    """Spectra and outlier counts of H = G + R (see :class:`StructureSummary`).

    The aggregation scale is the decomposition's own (:func:`aggregation_scale` of its model: c²/N for a mean-rule
    PatchQNN, NaN with a head or for a classical net, which leaves the normalised value NaN). ``output_scale``
    overrides it with c²/N for the given c (the route of qlandscape 0.1, where the caller passed c).
    """
    if output_scale is not None and not (is_finite_number(output_scale) and output_scale > 0):
        raise ConfigError("output_scale", output_scale, "expected a finite positive number or None")
    h = np.linalg.eigvalsh(decomposition.hessian)
    g = np.linalg.eigvalsh(decomposition.gauss_newton)
    r = np.linalg.eigvalsh(decomposition.residual)
    # Only the parameter-free mean rule has an aggregation scale; elsewhere the normalised value means nothing.
    if output_scale is None:
        scale = float(decomposition.aggregation_scale)
    else:
        scale = float(output_scale) ** 2 / decomposition.n_patches
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
