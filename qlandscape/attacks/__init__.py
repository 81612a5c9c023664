"""Adversarial attacks on a model's inputs: FGSM and PGD (L-infinity and L2), batched, in the model's dtype.

``from qlandscape.attacks import fgsm, pgd``. Every attack differentiates the loss with respect to a detached copy
of the inputs only, in eval mode (restored afterwards), so the caller's model and its parameter gradients are
never changed. ``bounds`` is the valid input range, e.g. ``Dataset.input_range`` ((0, pi) angles for the built-in
data); ``eps`` is in the same units (see :meth:`qlandscape.data.datasets.Dataset.eps_in_pixels`).
"""

from qlandscape.attacks.input_gradients import input_gradient, loss_and_input_gradient
from qlandscape.attacks.methods import ATTACKS, NORMS, AttackSettings, attack, fgsm, pgd
from qlandscape.attacks.projections import check_bounds, clip_to_bounds, project_to_ball

__all__ = [
    "ATTACKS",
    "NORMS",
    "AttackSettings",
    "attack",
    "fgsm",
    "pgd",
    "input_gradient",
    "loss_and_input_gradient",
    "check_bounds",
    "clip_to_bounds",
    "project_to_ball",
]
