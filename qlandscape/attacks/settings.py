"""Attack settings as plain values: which attack, its eps, norm, steps, step size, random start and seed, with their
checks. Importing this module loads no torch, so that run-metric declarations can check an attack table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from qlandscape.core.errors import ConfigError, check_choice, is_finite_number, is_integer

__all__ = ["ATTACKS", "NORMS", "AttackSettings", "check_eps", "check_alpha", "check_steps"]

ATTACKS = ("fgsm", "pgd")
NORMS = ("linf", "l2")


def check_eps(eps: Any) -> float:
    """``eps`` as a float, or a ConfigError unless it is a finite number >= 0."""
    if not is_finite_number(eps) or eps < 0:
        raise ConfigError("eps", eps, "expected a finite number >= 0 (in the model's input units)")
    return float(eps)


def check_alpha(alpha: Any) -> float:
    """``alpha`` as a float, or a ConfigError unless it is a finite number > 0."""
    if not is_finite_number(alpha) or alpha <= 0:
        raise ConfigError("alpha", alpha, "expected a finite step size > 0")
    return float(alpha)


def check_steps(steps: Any) -> int:
    """``steps`` as an int, or a ConfigError unless it is an integer >= 1."""
    if not is_integer(steps) or steps < 1:
        raise ConfigError("steps", steps, "expected an integer >= 1")
    return int(steps)


@dataclass(frozen=True)
class AttackSettings:
    """One attack and its settings, as a run config or training setting writes them: ``attack`` (``"fgsm"`` or
    ``"pgd"``), ``eps``, ``norm``, and for PGD ``steps``, ``alpha``, ``random_start`` and ``seed``."""

    attack: str = "pgd"
    eps: float = 0.1
    norm: str = "linf"
    steps: int = 10
    alpha: float = 0.01
    random_start: bool = False
    seed: int = 0

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], field: str = "attack") -> AttackSettings:
        """Settings from a table (unknown keys raise :class:`ConfigError` naming ``field``), validated."""
        if not isinstance(table, Mapping):
            raise ConfigError(field, table, "expected a table such as {attack = 'pgd', eps = 0.1, steps = 10}")
        names = tuple(f.name for f in fields(cls))
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise ConfigError(f"{field}.{unknown[0]}", table[unknown[0]], f"expected keys among {', '.join(names)}")
        values = dict(table)
        for name in ("eps", "alpha"):  # eps = 1 is eps = 1.0, one spelling for run ids
            if is_integer(values.get(name)):
                values[name] = float(values[name])
        return cls(**values).validate(field)

    def validate(self, field: str = "attack") -> AttackSettings:
        """Check every setting; a bad one raises :class:`ConfigError` naming ``field.<setting>``."""
        try:
            check_choice("attack", self.attack, ATTACKS)
            check_eps(self.eps)
            check_choice("norm", self.norm, NORMS)
            check_steps(self.steps)
            check_alpha(self.alpha)
            if not isinstance(self.random_start, bool):
                raise ConfigError("random_start", self.random_start, "expected true or false")
            if not is_integer(self.seed) or self.seed < 0:
                raise ConfigError("seed", self.seed, "expected an integer >= 0")
        except ConfigError as exc:
            raise ConfigError(f"{field}.{exc.field}", exc.value, exc.allowed) from None
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (what run.json records)."""
        return asdict(self)

    def describe(self) -> str:
        """A short label: ``PGD-linf eps=0.1 (10 x 0.01)`` or ``FGSM-linf eps=0.1``."""
        head = f"{self.attack.upper()}-{self.norm} eps={self.eps:g}"
        return head if self.attack == "fgsm" else f"{head} ({self.steps} x {self.alpha:g})"
