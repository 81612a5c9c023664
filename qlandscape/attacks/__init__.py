"""Adversarial attacks on a model's inputs: FGSM and PGD (L-infinity and L2), batched, in the model's dtype.

``from qlandscape.attacks import fgsm, pgd``. Every attack differentiates the loss with respect to a detached copy
of the inputs only, in eval mode (restored afterwards), so the caller's model and its parameter gradients are
never changed. ``bounds`` is the valid input range, e.g. ``Dataset.input_range`` ((0, pi) angles for the built-in
data); ``eps`` is in the same units (see :meth:`qlandscape.data.datasets.Dataset.eps_in_pixels`).

The names load on first use, so that importing :mod:`qlandscape.attacks.settings` (plain values, what run-metric
declarations check) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    **dict.fromkeys(("fgsm", "pgd", "attack"), "qlandscape.attacks.methods"),
    **dict.fromkeys(("ATTACKS", "NORMS", "AttackSettings"), "qlandscape.attacks.settings"),
    **dict.fromkeys(("input_gradient", "loss_and_input_gradient"), "qlandscape.attacks.input_gradients"),
    **dict.fromkeys(("check_bounds", "clip_to_bounds", "project_to_ball"), "qlandscape.attacks.projections"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'qlandscape.attacks' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
