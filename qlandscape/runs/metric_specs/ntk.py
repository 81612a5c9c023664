"""The ``ntk`` run metric: how the empirical neural tangent kernel moves along the recorded trajectory, and how well
the kernel machine of the kernel at each point classifies the test split.

This module declares it (settings, variants, headline scalars); the computation and the figures are
:mod:`qlandscape.runs.metric_hooks.ntk`, loaded when first used.

Results accumulate by variant (:mod:`qlandscape.runs.variants`), named by :func:`variant_name`:
``ntk_<form>_subset<n>`` (the kernel's form and its number of training inputs), with ``_every<k>`` when only every
k-th recorded point is used, ``_adv_<attack>_<norm>_eps<eps>`` on inputs attacked at the final point (the
``adversarial`` setting, :mod:`qlandscape.runs.adversarial_data`) (``ntk_trace_subset100``,
``ntk_full_subset20_every2``). The kernel machine's ``ridge``
says how a kernel is used, not which kernel: the same variant computed with another ridge replaces it. A variant's
files are ``results/<variant>_evolution`` and ``_kernel_machine``, and the figures ``<variant>_distance``,
``_velocity`` and ``_kernel_machine``. Run directories of qlandscape 0.2.0 and earlier hold one variant named
``ntk`` (``results/ntk_evolution.json``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qlandscape.runs.adversarial_data import adversarial_setting, variant_suffix
from qlandscape.runs.metric_spec import Headline, MetricSpec, budget_setting, choice, flag, hook, integer, number

__all__ = ["FORMS", "NTKSettings", "variant_name", "SPEC"]

FORMS = ("trace", "full")
_HOOKS = "qlandscape.runs.metric_hooks.ntk"


@dataclass(frozen=True)
class NTKSettings:
    """Settings of the ``ntk`` metric."""

    subset: int = integer(100, 1, "training inputs for the kernel (the first ones)")
    every: int = integer(1, 1, "use every k-th recorded point")
    form: str = choice("trace", FORMS, "the kernel's form: trace over outputs, or the full block kernel")
    ridge: float = number(1e-6, 0, "kernel ridge (relative to the mean diagonal)")
    seed: int = integer(0, 0, "accepted for configs that set it; the kernel uses the first inputs, no draw", cli=False)
    memory_budget: int | str | None = budget_setting()
    figures: bool = flag(True, "draw the figures")
    progress: bool = flag(False, "progress bar", cli=False)
    adversarial: dict[str, Any] | None = adversarial_setting()


def variant_name(s: NTKSettings) -> str:
    """The variant a kernel result is kept under (see the module docstring)."""
    name = f"ntk_{s.form}_subset{s.subset}"
    return (name if s.every == 1 else f"{name}_every{s.every}") + variant_suffix(s.adversarial)


SPEC = MetricSpec(
    name="ntk",
    help="neural tangent kernel evolution of a run (added to its run directory; each kernel form and subset is kept)",
    settings=NTKSettings,
    compute=hook(f"{_HOOKS}:compute"),
    figures=hook(f"{_HOOKS}:figures"),
    headline=(
        Headline("ntk.variant", "kept as (its files start with this name)", "variant", summary=False),
        Headline("ntk.final_distance_from_init", "kernel distance from initialisation at the end", "NTK distance"),
        Headline(
            "ntk.kernel_accuracy_init",
            "kernel-machine test accuracy, initial kernel",
            "initial kernel accuracy",
            summary=False,
        ),
        Headline("ntk.kernel_accuracy_final", "kernel-machine test accuracy, final kernel", "kernel accuracy"),
    ),
    check_against_run=hook(f"{_HOOKS}:check_against_run"),
    sweep_figures=hook(f"{_HOOKS}:sweep_figures"),
)
