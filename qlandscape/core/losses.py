"""The losses an Objective and training use: built-in names (``cross_entropy``, ``mse`` on one-hot targets) or
any callable ``(outputs, y) -> mean loss``, their per-point form for grids, and the targets each expects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError, check_choice

__all__ = ["LossFn", "LOSSES", "per_point_losses", "resolve_loss", "loss_targets", "loss_name"]

LossFn = Callable[[Tensor, Tensor], Tensor]
LOSSES = ("cross_entropy", "mse")


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(logits, y)


def _one_hot(y: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    # one_hot reads y.max() (data-dependent), which vmap cannot batch: the structured Hessian vmaps the loss.
    return (y.unsqueeze(-1) == torch.arange(n_classes, device=y.device)).to(dtype)


def _mse(outputs: Tensor, y: Tensor) -> Tensor:
    target = _one_hot(y, outputs.shape[-1], outputs.dtype)
    return ((outputs - target) ** 2).sum(-1).mean() / 2


def per_point_losses(loss_fn: LossFn, outputs: Tensor, y: Tensor) -> Tensor:
    """``loss_fn`` at each of K points: outputs ``(K, B, C)`` (or ``(K, B)`` for a one-output model with a loss
    of its own) -> ``(K,)``; one call for the built-in losses."""
    if loss_fn not in (_cross_entropy, _mse):
        return torch.stack([loss_fn(o, y) for o in outputs])
    k, b, c = outputs.shape
    if loss_fn is _cross_entropy:
        flat = nn.functional.cross_entropy(outputs.reshape(k * b, c), y.repeat(k), reduction="none")
        return flat.view(k, b).mean(1)
    target = _one_hot(y, c, outputs.dtype)
    return ((outputs - target) ** 2).sum(-1).mean(-1) / 2


def resolve_loss(loss: str | LossFn) -> LossFn:
    """Turn a loss name (``cross_entropy`` or ``mse`` on one-hot targets) or a callable into a mean-loss callable."""
    if callable(loss):
        return loss
    check_choice("loss", loss, LOSSES)
    return {"cross_entropy": _cross_entropy, "mse": _mse}[loss]


def loss_targets(y: Tensor, loss_fn: LossFn) -> Tensor:
    """Class indices (int64) for the built-in losses, float64 targets for a user's loss, which may regress on
    real values that ``.long()`` would silently truncate; fractional labels for a built-in loss raise."""
    if loss_fn not in (_cross_entropy, _mse) and (y.is_floating_point() or y.is_complex()):
        return y.to(torch.float64)
    flat = y.reshape(-1)
    if y.is_floating_point() and not bool((flat == flat.round()).all()):
        bad = int((flat != flat.round()).nonzero()[0, 0])
        raise ConfigError(
            f"labels[{bad}]",
            float(flat[bad]),
            "expected integer class indices for the built-in losses (or pass a loss callable)",
        )
    return y.long()


def loss_name(loss: str | LossFn) -> str:
    """The name results record: a built-in's name even when its resolved callable is passed (``with_data`` and
    other rebuilt Objectives do), else the callable's ``__name__``."""
    if isinstance(loss, str):
        return loss
    builtin: dict[LossFn, str] = {_cross_entropy: "cross_entropy", _mse: "mse"}
    return builtin.get(loss) or str(getattr(loss, "__name__", "custom"))
