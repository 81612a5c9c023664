"""Adversarial training: the batch mix against attacks made here, reproducibility, settings and their errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.attacks import fgsm, pgd
from qlandscape.core.errors import ConfigError
from qlandscape.models.classical import MLP
from qlandscape.train.adversarial import AdversarialTraining, adversarial_training, mixed_batch
from qlandscape.train.trainer import TrainConfig, Trainer, train

BOUNDS = (0.0, math.pi)


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 4, 4, generator=g, dtype=torch.float64) * math.pi
    y = (x[:, :, :2].mean((1, 2)) > x[:, :, 2:].mean((1, 2))).long()
    return x, y


def test_the_batch_mix_replaces_the_first_fraction_by_attacked_inputs():
    x, y = _data(8)
    model = MLP((4, 4), 2, width=6, depth=1)
    setting = AdversarialTraining(attack="pgd", eps=0.2, steps=3, alpha=0.08, random_start=False, mix=0.5)
    out = mixed_batch(model, x, y, setting, bounds=BOUNDS, loss=None, seed=0)
    expected = pgd(model, x[:4], y[:4], 0.2, alpha=0.08, steps=3, bounds=BOUNDS)
    assert torch.equal(out[:4], expected) and torch.equal(out[4:], x[4:])
    full = mixed_batch(model, x, y, AdversarialTraining(mix=1.0, random_start=False), bounds=BOUNDS, loss=None, seed=0)
    assert not torch.equal(full[-1], x[-1])


def test_one_adversarial_step_is_the_gradient_step_on_the_mixed_batch():
    x, y = _data(8)
    model = MLP((4, 4), 2, width=6, depth=1, seed=1)
    setting = {"attack": "fgsm", "eps": 0.3, "mix": 0.5}
    config = TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=8, seed=3)
    trainer = Trainer(model, x, y, config=config, adversarial=setting, bounds=BOUNDS)
    order = trainer.order.clone()
    trainer.run_until(1)
    # the same step by hand: FGSM on the first half of the shuffled batch, then one SGD step on the mean CE
    xb, yb = x[order], y[order]
    reference = MLP((4, 4), 2, width=6, depth=1, seed=1)

    mixed = torch.cat([fgsm(reference, xb[:4], yb[:4], 0.3, bounds=BOUNDS), xb[4:]])
    loss = torch.nn.functional.cross_entropy(reference(mixed), yb)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for p, g, q in zip(reference.parameters(), grads, trainer.model.parameters(), strict=True):
        torch.testing.assert_close(q.detach(), p.detach() - 0.1 * g, rtol=0, atol=1e-14)


def test_adversarial_training_is_reproducible_and_differs_from_standard():
    x, y = _data(16)
    model = MLP((4, 4), 2, width=6, depth=1)
    config = TrainConfig(epochs=2, batch_size=8)
    adv = {"eps": 0.2, "steps": 2, "alpha": 0.1, "mix": 1.0}
    _, a = train(model, x, y, config=config, adversarial=adv, bounds=BOUNDS)
    _, b = train(model, x, y, config=config, adversarial=adv, bounds=BOUNDS)
    _, standard = train(model, x, y, config=config)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert not np.allclose(a.trajectory[-1], standard.trajectory[-1])
    assert a.config["adversarial"]["mix"] == 1.0 and a.config["adversarial"]["random_start"] is True
    assert all(p.grad is None for p in model.parameters())


def test_mix_zero_is_standard_training_and_integers_are_floats():
    assert adversarial_training({"mix": 0}) is None
    setting = adversarial_training({"eps": 1, "mix": 1})
    assert setting == AdversarialTraining(eps=1.0, mix=1.0) and isinstance(setting.eps, float)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"mix": 1.5}, "adversarial.mix"),
        ({"mix": -0.1}, "adversarial.mix"),
        ({"eps": -0.1}, "adversarial.eps"),
        ({"steps": 0}, "adversarial.steps"),
        ({"alpha": 0.0}, "adversarial.alpha"),
        ({"norm": "l1"}, "adversarial.norm"),
        ({"attack": "cw"}, "adversarial.attack"),
        ({"epsilon": 0.1}, "adversarial.epsilon"),
    ],
)
def test_bad_settings_raise_before_training(table, field):
    x, y = _data(4)
    with pytest.raises(ConfigError) as info:
        train(MLP((4, 4), 2), x, y, adversarial=table)
    assert info.value.field == field


def test_bounds_must_hold_the_training_inputs():
    x, y = _data(4)
    with pytest.raises(ConfigError, match="bounds"):
        Trainer(MLP((4, 4), 2), x, y, adversarial={"mix": 0.5}, bounds=(0.0, 1.0))
