"""The Objective's model as an ``nn.Module`` at a parameter vector, for code (the attacks) that calls a model."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from qlandscape.core.objective import Objective

__all__ = ["model_at"]


def model_at(objective: Objective, theta: Tensor | None = None) -> nn.Module:
    """A copy of the Objective's float64 model with its parameters set to ``theta`` (None: the Objective's own),
    in the Objective's train/eval mode; the Objective is not changed."""
    theta = objective.as_theta(theta)
    model = copy.deepcopy(objective.model)
    with torch.no_grad():
        for (name, param), value in zip(model.named_parameters(), objective.unflatten(theta).values(), strict=True):
            if param.shape != value.shape:  # the Objective's order is named_parameters' order
                raise AssertionError(f"parameter {name}: {tuple(param.shape)} != {tuple(value.shape)}")
            param.copy_(value)
    return model
