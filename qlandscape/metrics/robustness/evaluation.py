"""Robustness of a model at a point: clean, FGSM and PGD accuracy and loss at a list of eps, and the fixed
adversarial evaluation set that other metrics (Hessian, landscapes, NTK) can be computed on instead of the clean
one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from qlandscape.attacks.methods import attack, fgsm, pgd
from qlandscape.attacks.projections import check_bounds
from qlandscape.attacks.settings import AttackSettings
from qlandscape.core.errors import ConfigError, check_choice, check_positive_int, is_finite_number
from qlandscape.core.objective import Objective
from qlandscape.core.progress import progress_bar
from qlandscape.data.datasets import Dataset
from qlandscape.metrics.robustness.models_at import model_at
from qlandscape.metrics.robustness.results import RobustnessCurve

__all__ = ["robustness_curve", "adversarial_objective", "check_eps_list"]


def check_eps_list(eps: Sequence[float]) -> tuple[float, ...]:
    """``eps`` as a non-empty tuple of finite floats >= 0 in increasing order, else a ConfigError."""
    if isinstance(eps, (str, bytes)) or not isinstance(eps, Sequence) or len(eps) == 0:
        raise ConfigError("eps", eps, "expected a non-empty list of perturbation sizes >= 0")
    values = []
    for value in eps:
        if not is_finite_number(value) or value < 0:
            raise ConfigError("eps", tuple(eps), f"expected finite sizes >= 0, got {value!r}")
        values.append(float(value))
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ConfigError("eps", tuple(values), "expected strictly increasing sizes")
    return tuple(values)


def robustness_curve(
    objective: Objective,
    eps: Sequence[float],
    *,
    theta: Tensor | None = None,
    norm: str = "linf",
    steps: int = 10,
    alpha_fraction: float = 0.25,
    random_start: bool = False,
    seed: int = 0,
    bounds: Sequence[float] | Dataset | None = None,
    pixels_per_input_unit: float | None = None,
    chunk_size: int | None = 256,
    split: str = "test",
    progress: bool = False,
) -> RobustnessCurve:
    """Accuracy and mean loss of the Objective's model at θ on its evaluation set, clean and under FGSM and PGD at
    every ``eps`` (input units). PGD takes ``steps`` steps of ``alpha_fraction * eps``; ``bounds`` is the valid input
    range (e.g. ``dataset.input_range``; None: unbounded); ``pixels_per_input_unit`` (e.g.
    ``dataset.pixels_per_input_unit``) converts eps to pixel units for the result."""
    eps_values = check_eps_list(eps)
    check_choice("norm", norm, ("linf", "l2"))
    steps = check_positive_int("steps", steps)
    if not is_finite_number(alpha_fraction) or alpha_fraction <= 0:
        raise ConfigError("alpha_fraction", alpha_fraction, "expected a finite number > 0 (PGD step = fraction * eps)")
    checked_bounds = check_bounds(bounds)
    model = model_at(objective, theta)
    model.eval()
    x, y = objective.x, objective.y
    clean = objective.with_data(x, y)
    theta0 = objective.as_theta(theta)
    clean_loss, clean_acc = float(clean.loss(theta0)), clean.accuracy(theta0)
    rows = {key: np.zeros(len(eps_values)) for key in ("fgsm_acc", "fgsm_loss", "pgd_acc", "pgd_loss")}
    bar = progress_bar(len(eps_values), "robustness", enabled=progress, unit="eps")
    for i, e in enumerate(eps_values):
        kw = dict(bounds=checked_bounds, loss=objective.loss_fn, chunk_size=chunk_size)
        x_fgsm = fgsm(model, x, y, e, norm=norm, **kw)
        alpha = alpha_fraction * e if e > 0 else 1.0  # eps = 0: the ball is a point, any step projects back
        x_pgd = pgd(model, x, y, e, alpha=alpha, steps=steps, norm=norm, random_start=random_start, seed=seed, **kw)
        for name, xa in (("fgsm", x_fgsm), ("pgd", x_pgd)):
            attacked = objective.with_data(xa, y)
            rows[f"{name}_loss"][i] = float(attacked.loss(theta0))
            rows[f"{name}_acc"][i] = attacked.accuracy(theta0)
        bar.update(1)
    bar.close()
    scale = math.nan if pixels_per_input_unit is None else float(pixels_per_input_unit)
    return RobustnessCurve(
        eps=np.asarray(eps_values),
        eps_pixels=np.asarray(eps_values) * scale,
        clean_accuracy=float(clean_acc),
        clean_loss=clean_loss,
        fgsm_accuracy=rows["fgsm_acc"],
        fgsm_loss=rows["fgsm_loss"],
        pgd_accuracy=rows["pgd_acc"],
        pgd_loss=rows["pgd_loss"],
        norm=norm,
        steps=steps,
        alpha_fraction=float(alpha_fraction),
        random_start=bool(random_start),
        seed=int(seed),
        bounds=(math.nan, math.nan) if checked_bounds is None else checked_bounds,
        split=split,
        n_samples=int(x.shape[0]),
        loss=objective.loss_name,
    )


def adversarial_objective(
    objective: Objective,
    settings: AttackSettings,
    *,
    theta: Tensor | None = None,
    bounds: Sequence[float] | Dataset | None = None,
    chunk_size: int | None = 256,
) -> Objective:
    """The same model and loss on a fixed adversarial evaluation set: the Objective's inputs attacked by ``settings``
    at θ (None: the Objective's own parameters). Every metric computed on it (Hessian, slices, NTK) sees the loss
    on these fixed inputs, i.e. the adversarial loss frozen at the evaluated point."""
    settings.validate()
    model = model_at(objective, theta)
    x_adv = attack(
        model, objective.x, objective.y, settings, bounds=bounds, loss=objective.loss_fn, chunk_size=chunk_size
    )
    return objective.with_data(x_adv, objective.y)
