"""Input-space curvature of the loss: per sample, the top eigenvalue of ∇²_x ℓ(x_i) and the gradient norm |∇_x ℓ(x_i)|.

In eval mode each sample's loss depends on its own input only, so the Hessian of the summed per-sample losses with
respect to the whole batch of inputs is block diagonal, one ``d x d`` block per sample. One double-backward pass
therefore gives every sample's Hessian-vector product at once, and Lanczos runs on all samples together: a
``(B, k)`` tridiagonal per sample, with full reorthogonalisation (``d`` is a few dozen pixels), restarting on a
random vector orthogonal to the Krylov basis when a sample's Krylov space closes. With ``k = d`` iterations the
top eigenvalue is exact (up to rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from qlandscape.core.errors import ConfigError, check_positive_int
from qlandscape.core.objective import Objective
from qlandscape.core.progress import progress_bar
from qlandscape.metrics.robustness.results import InputCurvature

__all__ = ["input_curvature"]


def _sample_losses_sum(objective: Objective, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # the Objective's loss is a mean over the chunk: times its size, the sum of the per-sample losses
    params = objective.unflatten(theta)
    out = functional_call(objective.model, (params, objective.buffers), (x,))
    return objective.loss_fn(out, y) * x.shape[0]


def _orthonormal_against(v: Tensor, basis: Tensor) -> Tensor:
    # two rounds of classical Gram-Schmidt against the (B, j, d) basis; then unit length per sample
    for _ in range(2):
        v = v - torch.einsum("bjd,bj->bd", basis, torch.einsum("bjd,bd->bj", basis, v))
    return v / v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def _chunk_curvature(
    objective: Objective, theta: Tensor, x: Tensor, y: Tensor, k: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    b, shape = x.shape[0], x.shape[1:]
    d = int(np.prod(shape))
    xg = x.detach().clone().requires_grad_(True)
    total = _sample_losses_sum(objective, theta, xg, y)
    if not total.requires_grad:
        raise ConfigError("model", type(objective.model).__name__, "its loss has no gradient with respect to x")
    (grad,) = torch.autograd.grad(total, xg, create_graph=True)
    flat_grad = grad.reshape(b, d)

    def hvp(v: Tensor) -> Tensor:
        (h,) = torch.autograd.grad(flat_grad, xg, grad_outputs=v, retain_graph=True)
        return h.reshape(b, d)

    device = x.device
    basis = torch.zeros(b, k, d, dtype=torch.float64, device=device)
    alphas = torch.zeros(b, k, dtype=torch.float64, device=device)
    betas = torch.zeros(b, k, dtype=torch.float64, device=device)
    # start vectors are drawn on the CPU (one seeded stream whatever the device) and moved
    v = torch.randn(b, d, generator=generator, dtype=torch.float64).to(device)
    v = v / v.norm(dim=1, keepdim=True)
    for j in range(k):
        basis[:, j] = v
        w = hvp(v)
        alphas[:, j] = (w * v).sum(1)
        # full reorthogonalisation against every basis vector (covers the three-term recurrence)
        for _ in range(2):
            w = w - torch.einsum("bjd,bj->bd", basis[:, : j + 1], torch.einsum("bjd,bd->bj", basis[:, : j + 1], w))
        beta = w.norm(dim=1)
        betas[:, j] = beta
        if j + 1 < k:
            scale = alphas[:, : j + 1].abs().amax(1).clamp_min(1.0)
            closed = beta <= 1e-10 * scale  # an invariant subspace: restart orthogonally, beta = 0
            draw = torch.randn(b, d, generator=generator, dtype=torch.float64).to(device)
            fresh = _orthonormal_against(draw, basis[:, : j + 1])
            v = torch.where(closed[:, None], fresh, w / beta.clamp_min(torch.finfo(w.dtype).tiny)[:, None])
            betas[:, j] = torch.where(closed, torch.zeros_like(beta), beta)
    tri = torch.diag_embed(alphas) + torch.diag_embed(betas[:, :-1], 1) + torch.diag_embed(betas[:, :-1], -1)
    values, vectors = torch.linalg.eigh(tri)
    top = values[:, -1]
    residual = (betas[:, -1] * vectors[:, -1, -1]).abs()  # |beta_k e_k^T s|: the Ritz pair's residual norm
    return top.detach(), residual.detach(), flat_grad.detach().norm(dim=1)


def input_curvature(
    objective: Objective,
    theta: Tensor | None = None,
    *,
    iterations: int = 20,
    n_samples: int | None = None,
    chunk_size: int = 64,
    seed: int = 0,
    split: str = "train",
    progress: bool = False,
) -> InputCurvature:
    """Per-sample input-space curvature of the Objective's loss at θ (see the module docstring).

    Args:
        objective: the model, evaluation set and loss (cross-entropy by default).
        theta: parameters (None: the Objective's own).
        iterations: Lanczos steps per sample (at most the input dimension; exact at the input dimension).
        n_samples: use the first this many samples of the evaluation set (None: all).
        chunk_size: samples per double-backward pass (bounds memory: ``chunk_size x iterations x d`` floats).
        seed: seeds the Lanczos start vectors.
        split: which split the evaluation set is, for the result's label.
        progress: show a progress bar over chunks.
    """
    iterations = check_positive_int("iterations", iterations)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    seed = check_positive_int("seed", seed, minimum=0)
    theta = objective.as_theta(theta)
    x, y = objective.x, objective.y
    if not x.is_floating_point():
        raise ConfigError("evaluation set", str(x.dtype), "input curvature needs floating-point inputs")
    if n_samples is not None:
        n_samples = check_positive_int("n_samples", n_samples)
        x, y = x[:n_samples], y[:n_samples]
    d = int(np.prod(x.shape[1:]))
    k = min(iterations, d)
    generator = torch.Generator().manual_seed(seed)
    tops, residuals, norms = [], [], []
    was_training = objective.model.training
    objective.model.eval()  # per-sample independence (batch-norm running statistics, no dropout)
    try:
        starts = range(0, x.shape[0], chunk_size)
        bar = progress_bar(len(starts), "input curvature", enabled=progress, unit="chunk")
        for start in starts:
            with torch.enable_grad():  # also under a caller's torch.no_grad()
                top, res, norm = _chunk_curvature(
                    objective, theta, x[start : start + chunk_size], y[start : start + chunk_size], k, generator
                )
            tops.append(top)
            residuals.append(res)
            norms.append(norm)
            bar.update(1)
        bar.close()
    finally:
        objective.model.train(was_training)
    top_all = torch.cat(tops).cpu().numpy()
    norm_all = torch.cat(norms).cpu().numpy()
    return InputCurvature(
        top_eigenvalues=top_all,
        residuals=torch.cat(residuals).cpu().numpy(),
        gradient_norms=norm_all,
        mean_top_eigenvalue=float(top_all.mean()),
        max_top_eigenvalue=float(top_all.max()),
        mean_gradient_norm=float(norm_all.mean()),
        dimension=d,
        iterations=k,
        hvp_count=k * int(x.shape[0]),
        split=split,
        n_samples=int(x.shape[0]),
        loss=objective.loss_name,
    )
