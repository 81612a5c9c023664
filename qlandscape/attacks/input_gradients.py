"""The gradient of a model's loss with respect to its inputs, without touching the model's state.

The inputs are a detached copy that requires grad; ``torch.autograd.grad`` is asked for that copy only, so no
parameter ``.grad`` is written. The model runs in eval mode (dropout off, batch-norm running statistics: each
sample's loss depends on its own input only) and its mode is restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from qlandscape.core.dtypes import default_dtype
from qlandscape.core.errors import ConfigError
from qlandscape.core.losses import LossFn, resolve_loss

__all__ = ["model_dtype", "eval_mode", "loss_and_input_gradient", "input_gradient"]


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (float64 when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float64)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode inside the block and put back its train/eval mode of every submodule after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def loss_and_input_gradient(
    model: nn.Module, x: Tensor, y: Tensor, loss: str | LossFn | None = None
) -> tuple[Tensor, Tensor]:
    """The mean loss of ``model`` on ``(x, y)`` and its gradient with respect to ``x`` (same shape as ``x``).

    ``x`` is computed on in the model's floating dtype (float64 for every built-in model). A model whose loss does
    not depend on its input raises :class:`ConfigError`. The model must already be in the mode wanted
    (see :func:`eval_mode`)."""
    loss_fn = resolve_loss("cross_entropy" if loss is None else loss)
    dtype = model_dtype(model)
    xg = x.detach().to(dtype).clone().requires_grad_(True)
    # a caller inside torch.no_grad() still gets its gradient; PennyLane devices differentiate inside backward
    # (qlandscape.core.dtypes)
    with torch.enable_grad(), default_dtype(dtype):
        value = loss_fn(model(xg), y)
        if not value.requires_grad:
            raise ConfigError(
                "model",
                type(model).__name__,
                "its loss has no gradient with respect to the input; attacks need a model differentiable in x",
            )
        (grad,) = torch.autograd.grad(value, xg, allow_unused=True)
    if grad is None:
        raise ConfigError(
            "model",
            type(model).__name__,
            "its loss does not depend on the input; attacks need a model differentiable in x",
        )
    return value.detach(), grad.detach()


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, loss: str | LossFn | None = None) -> Tensor:
    """Gradient of the mean loss with respect to ``x``, in eval mode (the model's mode is restored)."""
    with eval_mode(model):
        return loss_and_input_gradient(model, x, y, loss)[1]
