"""The ``robustness`` run metric: clean, FGSM and PGD accuracy and loss at a list of eps at one point of the
trajectory, and the input-space curvature of the loss there (the top eigenvalue of each sample's input Hessian and
the input-gradient norm, averaged over samples).

eps is in the model's input units: the angles the pixels were scaled onto (``angle_range``, [0, π] by default;
the digits' 16 grey levels span π, so eps = 0.1 is 0.51 grey levels). Attacks are clipped to that range. PGD takes
``steps`` steps of ``alpha_fraction * eps``, from the clean input or a seeded random start.

Results accumulate by variant (:mod:`qlandscape.runs.variants`), named by :func:`variant_name`:
``robustness_<norm>`` (``robustness_linf``, ``robustness_l2``), then ``_init`` / ``_best`` off the final point and
``_train`` on the training split. A variant's files are ``results/<variant>_curve`` and ``_input_curvature``, and the
figures ``<variant>_accuracy`` (accuracy against eps, one curve per attack) and ``_input_curvature``. ``run.json``
holds the per-eps numbers (``robustness.pgd_accuracy_eps<eps>`` and the FGSM and loss counterparts) and the
headline scalars at the largest eps.

This module declares it (settings, variants, headline scalars); the computation and the figures are
:mod:`qlandscape.runs.metric_hooks.robustness`, loaded when first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qlandscape.core.errors import is_finite_number
from qlandscape.runs.metric_spec import POINTS, SPLITS, Headline, MetricSpec, choice, flag, hook, integer, value

__all__ = ["NORMS", "RobustnessSettings", "variant_name", "eps_key", "SPEC"]

NORMS = ("linf", "l2")  # qlandscape.attacks.NORMS, restated so that declaring the metric imports no torch
_HOOKS = "qlandscape.runs.metric_hooks.robustness"


def _eps_list(v: Any) -> bool:
    if not isinstance(v, (list, tuple)) or not v or not all(is_finite_number(e) and e >= 0 for e in v):
        return False
    return all(b > a for a, b in zip(v, v[1:], strict=False))


def _positive(v: Any) -> bool:
    return is_finite_number(v) and v > 0


@dataclass(frozen=True)
class RobustnessSettings:
    """Settings of the ``robustness`` metric."""

    eps: tuple[float, ...] = value(
        (0.0, 0.05, 0.1, 0.2),
        _eps_list,
        "expected a non-empty, increasing list of sizes >= 0",
        "perturbation sizes in input units (radians of angle for the built-in data)",
    )
    norm: str = choice("linf", NORMS, "the attacks' norm ball")
    steps: int = integer(10, 1, "PGD steps")
    alpha_fraction: float = value(0.25, _positive, "expected a finite number > 0", "PGD step size as a fraction of eps")
    random_start: bool = flag(False, "PGD from a seeded random point of the eps-ball")
    seed: int = integer(0, 0, "seed of PGD's random start and of the Lanczos start vectors")
    point: str = choice("final", POINTS, "where on the trajectory")
    split: str = choice("test", SPLITS, "the evaluation set")
    max_samples: int | None = integer(None, 1, "evaluate on the first this many samples of the split (nothing: all)")
    curvature: bool = flag(True, "also the input-space curvature (top input-Hessian eigenvalue, gradient norm)")
    curvature_samples: int = integer(100, 1, "samples for the input-space curvature (the first ones)")
    curvature_iterations: int = integer(20, 1, "Lanczos steps per sample (exact at the number of input pixels)")
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)


def variant_name(s: RobustnessSettings) -> str:
    """The variant a robustness result is kept under (see the module docstring)."""
    parts = ["robustness", s.norm]
    if s.point != "final":
        parts.append(s.point)
    if s.split != "test":
        parts.append(s.split)
    return "_".join(parts)


def eps_key(eps: float) -> str:
    """How an eps appears in a scalar's name: ``eps0.1``."""
    return f"eps{float(eps):g}"


SPEC = MetricSpec(
    name="robustness",
    help="accuracy under FGSM and PGD against eps, and input-space curvature, of a run (each norm, point and split "
    "is kept)",
    settings=RobustnessSettings,
    compute=hook(f"{_HOOKS}:compute"),
    figures=hook(f"{_HOOKS}:figures"),
    headline=(
        Headline("robustness.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline("robustness.clean_accuracy", "clean accuracy", "clean acc"),
        Headline("robustness.eps_max", "largest eps (input units)", "eps", summary=False),
        Headline("robustness.fgsm_accuracy", "FGSM accuracy at the largest eps", "FGSM acc"),
        Headline("robustness.pgd_accuracy", "PGD accuracy at the largest eps", "PGD acc", plot=True),
        Headline("robustness.input_curvature", "mean top eigenvalue of the input Hessian", "input λ_max", plot=True),
        Headline("robustness.input_gradient_norm", "mean input-gradient norm", "|∇_x ℓ|"),
    ),
    check_against_run=hook(f"{_HOOKS}:check_against_run"),
)
