"""FGSM and PGD, L-infinity and L2, on any ``nn.Module`` that maps a batch of inputs to logits.

* FGSM (Goodfellow et al. 2015): ``x + eps * sign(grad_x L)`` (L-infinity) or ``x + eps * g / |g|`` per sample (L2,
  the "fast gradient method"), clipped into the bounds.
* PGD (Madry et al. 2018): optionally a seeded uniform start in the eps-ball, then ``steps`` ascent steps of size
  ``alpha`` (the sign of the gradient for L-infinity, the per-sample normalised gradient for L2), each projected
  onto the eps-ball around the clean input and clipped into the bounds. The last iterate is returned.

The loss is the model's mean loss (mean cross-entropy by default, or any name or callable
:func:`qlandscape.core.losses.resolve_loss` accepts). Gradients are taken with respect to a detached copy of the
inputs in eval mode (:mod:`qlandscape.attacks.input_gradients`); since each sample's loss depends on its own input
only there, the mean's 1/B factor changes no step direction, and chunks of samples give the same result as one
batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from qlandscape.attacks.input_gradients import eval_mode, loss_and_input_gradient
from qlandscape.attacks.projections import check_bounds, clip_to_bounds, per_sample_norm, project_to_ball
from qlandscape.attacks.settings import NORMS, AttackSettings, check_alpha, check_eps, check_steps
from qlandscape.core.errors import ConfigError, check_choice, is_integer
from qlandscape.core.losses import LossFn
from qlandscape.data.datasets import Dataset

__all__ = ["fgsm", "pgd", "attack"]


def _check_inputs(x: Any, y: Any, bounds: tuple[float, float] | None) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ConfigError("x", type(x).__name__, "expected a floating-point tensor with a leading batch axis")
    if not isinstance(y, Tensor) or y.shape[:1] != x.shape[:1]:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ConfigError("y", shape, f"expected a tensor of {x.shape[0]} labels, one per input")
    if bounds is not None and x.numel():
        low, high = float(x.min()), float(x.max())
        slack = 1e-9 * max(1.0, bounds[1] - bounds[0])
        if low < bounds[0] - slack or high > bounds[1] + slack:
            raise ConfigError(
                "bounds",
                bounds,
                f"the clean inputs span [{low:.6g}, {high:.6g}]; the bounds must contain them (None: unbounded)",
            )


def _check_chunk(chunk_size: Any) -> int | None:
    if chunk_size is not None and (not is_integer(chunk_size) or chunk_size < 1):
        raise ConfigError("chunk_size", chunk_size, "expected a positive integer or None (all samples at once)")
    return None if chunk_size is None else int(chunk_size)


def _ascent_direction(grad: Tensor, norm: str) -> Tensor:
    if norm == "linf":
        return grad.sign()
    length = per_sample_norm(grad)
    return torch.where(length > 0, grad / length.clamp_min(torch.finfo(grad.dtype).tiny), torch.zeros_like(grad))


def _random_start(x: Tensor, eps: float, norm: str, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(int(seed))
    shape, dtype = x.shape, torch.float64
    if norm == "linf":
        noise = (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1) * eps
    else:  # uniform in the L2 ball: a uniform direction and a radius eps * u^(1/d)
        direction = torch.randn(shape, generator=generator, dtype=dtype)
        direction = direction / per_sample_norm(direction).clamp_min(torch.finfo(dtype).tiny)
        d = x[0].numel()
        radius = eps * torch.rand((shape[0],), generator=generator, dtype=dtype) ** (1.0 / max(1, d))
        noise = direction * radius.reshape(-1, *([1] * (x.ndim - 1)))
    return noise.to(device=x.device, dtype=x.dtype)


def _chunks(n: int, chunk_size: int | None) -> list[slice]:
    size = n if chunk_size is None else chunk_size
    return [slice(start, min(n, start + size)) for start in range(0, max(n, 1), max(size, 1))]


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    bounds: Sequence[float] | Dataset | None = None,
    loss: str | LossFn | None = None,
    norm: str = "linf",
    chunk_size: int | None = None,
) -> Tensor:
    """Fast gradient sign method: ``clip(x + eps * sign(grad_x loss))`` (``norm="l2"``: the per-sample normalised
    gradient instead of its sign). Returns adversarial inputs of the shape and dtype of ``x``.

    Args:
        model: any ``nn.Module`` mapping inputs to logits; never changed (its mode is restored).
        x, y: clean inputs (floating point) and their labels.
        eps: perturbation size in the model's input units (>= 0).
        bounds: the valid input range: ``(low, high)``, or the :class:`~qlandscape.data.datasets.Dataset` the
            inputs come from (the range recorded with it, ``input_range``); None: unbounded.
        loss: a loss name or callable ``(outputs, y) -> mean loss``; None: mean cross-entropy.
        norm: ``"linf"`` or ``"l2"``.
        chunk_size: attack this many samples at a time (None: all at once); the result is the same.
    """
    eps = check_eps(eps)
    check_choice("norm", norm, NORMS)
    bounds = check_bounds(bounds)
    chunk_size = _check_chunk(chunk_size)
    _check_inputs(x, y, bounds)
    out = torch.empty_like(x)
    with eval_mode(model):
        for part in _chunks(x.shape[0], chunk_size):
            xc = x[part].detach()
            _, grad = loss_and_input_gradient(model, xc, y[part], loss)
            step = xc.to(grad.dtype) + eps * _ascent_direction(grad, norm)
            out[part] = clip_to_bounds(step, bounds).to(x.dtype)
    return out


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    alpha: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = False,
    seed: int = 0,
    bounds: Sequence[float] | Dataset | None = None,
    loss: str | LossFn | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Projected gradient descent on the loss (ascent): ``steps`` steps of size ``alpha`` inside the ``norm`` ball of
    radius ``eps`` around ``x`` and inside ``bounds``. Returns the last iterate, of the shape and dtype of ``x``.

    Args:
        model, x, y, eps, bounds, loss, chunk_size: as :func:`fgsm`.
        alpha: step size (> 0), in input units.
        steps: number of steps (>= 1).
        norm: ``"linf"`` (signed-gradient steps, box projection) or ``"l2"`` (normalised-gradient steps, ball
            projection), per sample.
        random_start: start from a seeded uniform point of the eps-ball (clipped into the bounds) instead of ``x``.
        seed: seeds the random start (the same seed gives the same start whatever the chunking).
    """
    eps = check_eps(eps)
    alpha = check_alpha(alpha)
    steps = check_steps(steps)
    check_choice("norm", norm, NORMS)
    if not isinstance(random_start, bool):
        raise ConfigError("random_start", random_start, "expected true or false")
    if not is_integer(seed) or seed < 0:
        raise ConfigError("seed", seed, "expected an integer >= 0")
    bounds = check_bounds(bounds)
    chunk_size = _check_chunk(chunk_size)
    _check_inputs(x, y, bounds)
    start = _random_start(x, eps, norm, seed) if random_start and eps > 0 else None
    out = torch.empty_like(x)
    with eval_mode(model):
        for part in _chunks(x.shape[0], chunk_size):
            clean = x[part].detach()
            current = clean if start is None else clip_to_bounds(clean + start[part], bounds)
            for _ in range(steps):
                _, grad = loss_and_input_gradient(model, current, y[part], loss)
                moved = current.to(grad.dtype) + alpha * _ascent_direction(grad, norm)
                current = clip_to_bounds(project_to_ball(moved, clean.to(grad.dtype), eps, norm), bounds)
            out[part] = current.to(x.dtype)
    return out


def attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    settings: AttackSettings,
    *,
    bounds: Sequence[float] | Dataset | None = None,
    loss: str | LossFn | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Adversarial inputs by the attack ``settings`` names (:func:`fgsm` or :func:`pgd`)."""
    settings.validate()
    if settings.attack == "fgsm":
        return fgsm(model, x, y, settings.eps, bounds=bounds, loss=loss, norm=settings.norm, chunk_size=chunk_size)
    return pgd(
        model,
        x,
        y,
        settings.eps,
        alpha=settings.alpha,
        steps=settings.steps,
        norm=settings.norm,
        random_start=settings.random_start,
        seed=settings.seed,
        bounds=bounds,
        loss=loss,
        chunk_size=chunk_size,
    )
