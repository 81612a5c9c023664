"""Adversarial training: each minibatch mixes clean examples with adversarial ones made at the current parameters.

``mix`` is the fraction of every batch replaced by its attacked version (the batch's first ``round(mix * B)``
samples, which the shuffled data order makes a random subset): 0.5 is the adversarial-example augmentation of
Goodfellow et al. and Prabhu et al., 1.0 Madry et al.'s training on adversarial examples only, and 0 standard
training (such a setting is standard training and is stored as none, so that its run id is the standard one). The
attack is FGSM or PGD of :mod:`qlandscape.attacks`, run in eval mode on the model being trained (its mode is put
back), clipped to the data's valid input range; a PGD random start is seeded by the training seed and the step, so
a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from qlandscape.attacks.methods import attack
from qlandscape.attacks.settings import AttackSettings
from qlandscape.core.errors import ConfigError, is_finite_number, is_integer
from qlandscape.core.losses import LossFn

__all__ = ["AdversarialTraining", "adversarial_training", "mixed_batch", "step_seed"]


@dataclass(frozen=True)
class AdversarialTraining:
    """The ``adversarial`` training setting: ``attack`` (``"pgd"`` or ``"fgsm"``), ``eps`` (input units),
    ``norm`` (``"linf"`` or ``"l2"``), PGD's ``steps``, ``alpha`` and ``random_start``, and ``mix``, the fraction of
    each batch replaced by adversarial examples (in (0, 1])."""

    attack: str = "pgd"
    eps: float = 0.1
    norm: str = "linf"
    steps: int = 7
    alpha: float = 0.02
    random_start: bool = True
    mix: float = 0.5

    def validate(self, field: str = "adversarial") -> AdversarialTraining:
        """Check every setting; a bad one raises :class:`ConfigError` naming ``adversarial.<setting>``."""
        if not is_finite_number(self.mix) or not 0 < self.mix <= 1:
            raise ConfigError(
                f"{field}.mix", self.mix, "expected a fraction in [0, 1] of each batch to attack (0: standard training)"
            )
        self.attack_settings(0).validate(field)
        return self

    def attack_settings(self, seed: int) -> AttackSettings:
        """The attack this setting makes each batch with, its random start seeded by ``seed``."""
        return AttackSettings(
            attack=self.attack,
            eps=self.eps,
            norm=self.norm,
            steps=self.steps,
            alpha=self.alpha,
            random_start=self.random_start,
            seed=seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """The setting as a plain dict (what run.json records, every key filled in)."""
        return asdict(self)

    def describe(self) -> str:
        """``PGD-linf eps=0.1 (7 x 0.02), mix 0.5``."""
        return f"{self.attack_settings(0).describe()}, mix {self.mix:g}"


def adversarial_training(
    value: Any, field: str = "adversarial", *, validate: bool = True
) -> AdversarialTraining | None:
    """The setting from a table (``{attack = "pgd", eps = 0.1, steps = 7, alpha = 0.02, mix = 0.5}``, missing keys
    take the defaults), an :class:`AdversarialTraining` or None; a table with ``mix = 0`` is standard training,
    None. Unknown keys raise :class:`ConfigError`, and so do bad values unless ``validate`` is off (a config
    checks them when it is validated)."""
    if value is None or isinstance(value, AdversarialTraining):
        setting = value
    elif isinstance(value, Mapping):
        names = tuple(f.name for f in fields(AdversarialTraining))
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ConfigError(f"{field}.{unknown[0]}", value[unknown[0]], f"expected keys among {', '.join(names)}")
        values = dict(value)
        for name in ("eps", "alpha", "mix"):  # eps = 1 and eps = 1.0 are one setting (one run id)
            if is_integer(values.get(name)):
                values[name] = float(values[name])
        setting = AdversarialTraining(**values)
    else:
        raise ConfigError(
            field, value, "expected a table such as {attack = 'pgd', eps = 0.1, steps = 7, alpha = 0.02, mix = 0.5}"
        )
    if setting is not None and is_finite_number(setting.mix) and setting.mix == 0:
        return None
    if setting is None or not validate:
        return setting
    return setting.validate(field)


def step_seed(seed: int, step: int) -> int:
    """The random-start seed of optimiser step ``step`` of a run seeded ``seed``."""
    return (int(seed) * 1_000_003 + int(step)) % 2**62


def mixed_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    setting: AdversarialTraining,
    *,
    bounds: Sequence[float] | None,
    loss: str | LossFn | None,
    seed: int,
) -> Tensor:
    """The batch ``x`` with its first ``round(mix * B)`` samples replaced by adversarial examples made at the
    model's current parameters (the model is not changed)."""
    k = int(round(setting.mix * x.shape[0]))
    if k == 0:
        return x
    adversarial = attack(model, x[:k], y[:k], setting.attack_settings(seed), bounds=bounds, loss=loss)
    return torch.cat([adversarial, x[k:]]) if k < x.shape[0] else adversarial
