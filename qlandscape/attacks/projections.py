"""Projections of perturbed inputs: onto the eps-ball around the clean inputs (L-infinity or L2, per sample) and
onto the valid input range."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from qlandscape.core.errors import ConfigError, is_finite_number
from qlandscape.data.datasets import Dataset

__all__ = ["check_bounds", "clip_to_bounds", "project_to_ball", "per_sample_norm"]


def check_bounds(bounds: Sequence[float] | Dataset | None) -> tuple[float, float] | None:
    """``bounds`` as ``(low, high)`` floats with low < high: a pair, or a :class:`~qlandscape.data.datasets.Dataset`
    (its recorded ``input_range``); None: unbounded. Anything else is a ConfigError."""
    if bounds is None:
        return None
    if isinstance(bounds, Dataset):
        bounds = bounds.input_range
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ConfigError("bounds", bounds, "expected (low, high) or None for unbounded inputs")
    low, high = bounds
    if not (is_finite_number(low) and is_finite_number(high)) or not low < high:
        raise ConfigError("bounds", tuple(bounds), "expected finite (low, high) with low < high")
    return float(low), float(high)


def clip_to_bounds(x: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    """``x`` clipped into ``bounds`` (unchanged when None)."""
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def per_sample_norm(v: Tensor) -> Tensor:
    """The L2 norm of each sample (over every axis but the first), shaped to broadcast against ``v``."""
    flat = v.reshape(v.shape[0], -1)
    return flat.norm(dim=1).reshape(-1, *([1] * (v.ndim - 1)))


def project_to_ball(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """The point of the ``norm`` ball of radius ``eps`` around each clean sample ``x`` nearest ``x_adv``."""
    delta = x_adv - x
    if norm == "linf":
        return x + delta.clamp(-eps, eps)
    length = per_sample_norm(delta)
    # delta * min(1, eps / |delta|); a zero delta stays zero
    scale = torch.where(length > eps, eps / length.clamp_min(math.ulp(0.0)), torch.ones_like(length))
    return x + delta * scale
