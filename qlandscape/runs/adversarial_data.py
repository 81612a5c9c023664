"""The ``adversarial`` setting that the Hessian, landscape and NTK run metrics share: evaluate on the clean data
(unset, the default) or on a fixed adversarial set generated at the evaluated point.

The setting is a table of attack settings (:class:`qlandscape.attacks.settings.AttackSettings`: ``attack``,
``eps``, ``norm``, ``steps``, ``alpha``, ``random_start``, ``seed``), e.g. ``adversarial = { attack = "pgd",
eps = 0.1, steps = 10, alpha = 0.025 }``. The metric's evaluation inputs are attacked once, at the point the metric
looks at (``point``; the final point for quantities along the trajectory), clipped to the data's input range, and
then held fixed: the metric sees the adversarial loss frozen at that point, ``L(θ; x_adv(θ₀))``. The variant name
gains ``_adv_<attack>_<norm>_eps<eps>`` and the figure titles say which inputs were used.

Declaring the setting loads no torch (run-metric declarations import this module); the attack itself is
:mod:`qlandscape.runs.metric_hooks.evaluation_data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qlandscape.attacks.settings import AttackSettings
from qlandscape.core.errors import ConfigError
from qlandscape.runs.metric_spec import value

__all__ = ["adversarial_setting", "attack_of", "variant_suffix", "describe_data"]


def attack_of(table: Mapping[str, Any] | None, metric: str) -> AttackSettings | None:
    """The attack a metric's ``adversarial`` setting names (None: clean data); a bad table raises
    :class:`ConfigError` naming ``metrics.<metric>.adversarial.<key>``."""
    if table is None:
        return None
    return AttackSettings.from_mapping(table, f"metrics.{metric}.adversarial")


def _valid(table: Any) -> bool:
    if table is None:
        return True
    try:
        AttackSettings.from_mapping(table)
    except ConfigError:
        return False
    return True


def adversarial_setting() -> Any:
    """The declaration of the shared ``adversarial`` setting (a field default for a metric's settings class)."""
    return value(
        None,
        _valid,
        "expected nothing (clean data) or a table of attack settings among attack ('fgsm', 'pgd'), eps (>= 0), "
        "norm ('linf', 'l2'), steps (>= 1), alpha (> 0), random_start, seed",
        "evaluate on a fixed adversarial set made at the evaluated point, e.g. {attack = 'pgd', eps = 0.1, steps = "
        "10, alpha = 0.025} (nothing: the clean data)",
    )


def variant_suffix(table: Mapping[str, Any] | None) -> str:
    """``""`` for clean data, else ``_adv_<attack>_<norm>_eps<eps>`` (``_adv_pgd_linf_eps0.1``)."""
    attack = attack_of(table, "metric")
    if attack is None:
        return ""
    return f"_adv_{attack.attack}_{attack.norm}_eps{attack.eps:g}"


def describe_data(table: Mapping[str, Any] | None) -> str:
    """``clean inputs`` or ``adversarial inputs (PGD-linf eps=0.1 (10 x 0.025), fixed at the evaluated point)``."""
    attack = attack_of(table, "metric")
    if attack is None:
        return "clean inputs"
    return f"adversarial inputs ({attack.describe()}, fixed at the evaluated point)"
