"""Models as flat parameter vectors: the architecture check every merge and alignment starts with, and copies of a
model with other parameters or buffers.

The flat order is ``model.parameters()`` order (as :func:`qlandscape.train.trainer.flat_parameters` and the
:class:`~qlandscape.core.objective.Objective` use). Buffers (batch-norm running statistics) travel separately, by
name, because alignment permutes them and merges average or recompute them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from qlandscape.core.errors import ConfigError
from qlandscape.train.trainer import flat_parameters

__all__ = ["check_models", "flat_parameters", "with_parameters", "floating_buffers"]


def _signature(model: nn.Module) -> tuple[str, tuple[tuple[str, tuple[int, ...]], ...], tuple[str, ...]]:
    params = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    buffers = tuple(f"{name}{tuple(b.shape)}" for name, b in model.named_buffers())
    return type(model).__name__, params, buffers


def check_models(models: Sequence[nn.Module], *, minimum: int = 1, field: str = "models") -> list[nn.Module]:
    """``models`` as a list after checking that there are at least ``minimum`` and that all share one architecture
    (class, parameter names and shapes, buffers); otherwise :class:`ConfigError` naming what differs."""
    if isinstance(models, nn.Module):
        raise ConfigError(field, type(models).__name__, "expected a list of models, not one model")
    models = list(models)
    if len(models) < minimum:
        raise ConfigError(field, f"{len(models)} models", f"expected at least {minimum}")
    for i, model in enumerate(models):
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{field}[{i}]", type(model).__name__, "expected a torch nn.Module")
    reference = _signature(models[0])
    n_ref = sum(p.numel() for p in models[0].parameters())
    for i, model in enumerate(models[1:], start=1):
        signature = _signature(model)
        if signature[0] != reference[0]:
            raise ConfigError(f"{field}[{i}]", signature[0], f"expected a {reference[0]} like {field}[0]")
        n = sum(p.numel() for p in model.parameters())
        if n != n_ref:
            raise ConfigError(
                f"{field}[{i}] parameter count", n, f"expected {n_ref} parameters, the count of {field}[0]"
            )
        if signature != reference:
            raise ConfigError(
                f"{field}[{i}] parameters",
                [f"{name}{shape}" for name, shape in signature[1]],
                f"expected the parameter names and shapes of {field}[0]: "
                f"{[f'{name}{shape}' for name, shape in reference[1]]} (one architecture)",
            )
    return models


def with_parameters(model: nn.Module, theta: Tensor, buffers: Mapping[str, Tensor] | None = None) -> nn.Module:
    """A copy of ``model`` whose parameters are the flat vector ``theta`` (and whose named ``buffers`` are
    replaced where given); ``model`` is not changed."""
    out = copy.deepcopy(model)
    params = list(out.parameters())
    n = sum(p.numel() for p in params)
    theta = torch.as_tensor(theta)
    if theta.shape != (n,):
        raise ConfigError("theta", tuple(theta.shape), f"expected a flat vector of shape ({n},)")
    with torch.no_grad():
        for p, value in zip(params, torch.split(theta, [p.numel() for p in params]), strict=True):
            p.copy_(value.reshape(p.shape).to(p.dtype))
        if buffers:
            own = dict(out.named_buffers())
            for name, value in buffers.items():
                if name not in own:
                    raise ConfigError("buffers", name, f"expected buffer names of the model: {sorted(own)}")
                own[name].copy_(value.reshape(own[name].shape).to(own[name].dtype))
    return out


def floating_buffers(model: nn.Module) -> dict[str, Tensor]:
    """The model's floating-point buffers (batch-norm running means and variances), detached copies by name."""
    return {name: b.detach().clone() for name, b in model.named_buffers() if b.is_floating_point()}
