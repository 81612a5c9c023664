"""Robustness curves and adversarial evaluation sets, checked against the attacks and losses computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qlandscape.attacks import AttackSettings, fgsm, pgd
from qlandscape.core.errors import ConfigError
from qlandscape.core.io import load_result, save_result
from qlandscape.core.objective import Objective
from qlandscape.metrics.robustness.evaluation import adversarial_objective, robustness_curve
from qlandscape.metrics.robustness.models_at import model_at
from qlandscape.metrics.robustness.results import RobustnessCurve
from qlandscape.models.classical import MLP

BOUNDS = (0.0, math.pi)


def _setup(n=24):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 4, 4, generator=g, dtype=torch.float64) * math.pi
    y = (x[:, :2].mean((1, 2)) > x[:, 2:].mean((1, 2))).long()
    model = MLP((4, 4), 2, width=16, depth=1, seed=0)
    return model, x, y


def _ce_and_accuracy(model, x, y):
    with torch.no_grad():
        out = model.eval()(x)
        return float(nn.functional.cross_entropy(out, y)), float((out.argmax(-1) == y).double().mean())


def test_the_curve_holds_the_attacks_losses_and_accuracies(tmp_path):
    model, x, y = _setup()
    objective = Objective(model, x, y)
    theta = objective.theta0 + 0.05 * torch.randn(objective.n_params, dtype=torch.float64)
    eps = [0.0, 0.1, 0.3]
    curve = robustness_curve(objective, eps, theta=theta, steps=5, bounds=BOUNDS, pixels_per_input_unit=16 / math.pi)
    moved = model_at(objective, theta)
    assert _ce_and_accuracy(moved, x, y) == pytest.approx((curve.clean_loss, curve.clean_accuracy), abs=1e-12)
    for i, e in enumerate(eps):
        xf = fgsm(moved, x, y, e, bounds=BOUNDS)
        xp = pgd(moved, x, y, e, alpha=(0.25 * e) or 1.0, steps=5, bounds=BOUNDS)
        assert _ce_and_accuracy(moved, xf, y) == pytest.approx((curve.fgsm_loss[i], curve.fgsm_accuracy[i]), abs=1e-12)
        assert _ce_and_accuracy(moved, xp, y) == pytest.approx((curve.pgd_loss[i], curve.pgd_accuracy[i]), abs=1e-12)
    assert curve.fgsm_accuracy[0] == curve.clean_accuracy and curve.pgd_loss[0] == pytest.approx(curve.clean_loss)
    assert np.all(curve.pgd_accuracy <= curve.clean_accuracy) and np.all(curve.fgsm_accuracy <= curve.clean_accuracy)
    assert np.all(np.diff(curve.pgd_loss) >= 0)
    np.testing.assert_allclose(curve.eps_pixels, np.asarray(eps) * 16 / math.pi)
    save_result(curve, tmp_path / "curve")
    back = load_result(RobustnessCurve, tmp_path / "curve")
    np.testing.assert_array_equal(back.pgd_accuracy, curve.pgd_accuracy)
    assert back.bounds == BOUNDS


def test_the_adversarial_objective_evaluates_on_inputs_fixed_at_the_point():
    model, x, y = _setup(12)
    objective = Objective(model, x, y)
    settings = AttackSettings(attack="pgd", eps=0.2, steps=4, alpha=0.05)
    adv = adversarial_objective(objective, settings, bounds=BOUNDS)
    expected = pgd(model, x, y, 0.2, alpha=0.05, steps=4, bounds=BOUNDS)
    torch.testing.assert_close(adv.x, expected, rtol=0, atol=0)
    assert float(adv.loss()) > float(objective.loss())
    assert torch.equal(adv.theta0, objective.theta0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eps": []}, "eps"),
        ({"eps": [0.2, 0.1]}, "eps"),
        ({"eps": [-0.1]}, "eps"),
        ({"eps": [0.1], "norm": "l1"}, "norm"),
        ({"eps": [0.1], "steps": 0}, "steps"),
        ({"eps": [0.1], "alpha_fraction": 0}, "alpha_fraction"),
        ({"eps": [0.1], "bounds": (2.0, 1.0)}, "bounds"),
    ],
)
def test_bad_settings_raise_before_work(kwargs, field):
    model, x, y = _setup(4)
    with pytest.raises(ConfigError) as info:
        robustness_curve(Objective(model, x, y), **kwargs)
    assert info.value.field == field
