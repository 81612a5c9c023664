"""Alignment: a copy of model B equal in function to B whose parameters are as close as possible to model A's.

* Classical nets (:class:`~qlandscape.models.classical.MLP`, :class:`~qlandscape.models.classical.CNN`, with batch
  norm): permutations of hidden units and channels found by weight matching
  (:mod:`qlandscape.merging.permutations`), running statistics permuted with them.
* Circuit angles: each angle moved by whole periods to the copy nearest A's (:mod:`qlandscape.merging.periodic`).
* A model with both gets both; a model with neither comes back as an unchanged copy of B.

Aligning before interpolating or merging removes the barriers that are only relabelling (Entezari et al. 2022).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qlandscape.core.errors import ConfigError, check_choice
from qlandscape.merging.parameters import check_models, flat_parameters, with_parameters
from qlandscape.merging.periodic import angle_periods, periodic_align
from qlandscape.merging.permutations import WeightMatching, weight_matching
from qlandscape.models.classical import CNN, MLP

__all__ = ["ALIGN_METHODS", "align", "align_with_report"]

ALIGN_METHODS = ("auto", "weights", "periodic", "none")


def align_with_report(
    model_a: nn.Module, model_b: nn.Module, *, method: str = "auto", max_sweeps: int = 100, seed: int = 0
) -> tuple[nn.Module, WeightMatching | None]:
    """:func:`align`, with the weight-matching report (None when no permutation was searched)."""
    check_choice("method", method, ALIGN_METHODS)
    model_a, model_b = check_models([model_a, model_b], minimum=2, field="model_a, model_b")
    report = None
    out = model_b
    permutable = isinstance(model_b, (MLP, CNN))
    if method == "weights" or (method == "auto" and permutable):
        state, report = weight_matching(model_a, model_b, max_sweeps=max_sweeps, seed=seed)
        out = _with_state(model_b, state)
    periods = angle_periods(model_b)
    if method in ("auto", "periodic") and np.isfinite(periods).any():
        theta = periodic_align(flat_parameters(model_a), flat_parameters(out), periods)
        out = with_parameters(out, theta)
    if out is model_b:
        out = with_parameters(model_b, flat_parameters(model_b))  # a copy: the caller's model is never returned
    return out, report


def _with_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    out = with_parameters(model, flat_parameters(model))
    own = out.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value.to(own[name].dtype))
    return out


def align(model_a: nn.Module, model_b: nn.Module, **options: object) -> nn.Module:
    """A new model equal in function to ``model_b`` with its parameters moved as close as possible to ``model_a``'s.

    Options: ``method`` (``"auto"``: permutations for MLP/CNN and periodic images for circuit angles;
    ``"weights"``, ``"periodic"`` or ``"none"`` for one of them or neither), ``max_sweeps`` and ``seed`` of the
    weight matching. Neither input is changed; models of different architectures are a ConfigError.
    """
    unknown = sorted(set(options) - {"method", "max_sweeps", "seed"})
    if unknown:
        raise ConfigError("options", unknown, "align takes method, max_sweeps and seed")
    return align_with_report(model_a, model_b, **options)[0]  # type: ignore[arg-type]
