"""FGSM and PGD against closed forms, an independent PGD written here, and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qlandscape.attacks import AttackSettings, attack, fgsm, input_gradient, pgd
from qlandscape.core.errors import ConfigError
from qlandscape.data.datasets import load_dataset
from qlandscape.models.classical import CNN, MLP
from qlandscape.models.qnn import PatchQNN

BOUNDS = (0.0, math.pi)


def _images(n: int = 8, side: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, side, side, generator=g, dtype=torch.float64) * math.pi
    y = torch.arange(n) % 2
    return x, y


class _Logistic(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.randn(2, d, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(2, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ self.weight.T + self.bias


def test_fgsm_on_logistic_regression_is_the_closed_form():
    x, y = _images(12, 4)
    model = _Logistic(16)
    w, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    flat = x.reshape(12, -1).numpy()
    z = flat @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(2)[y.numpy()]
    grad = (p - onehot) @ w / len(y)  # d mean CE / dx
    for eps in (0.0, 0.05, 0.3):
        expected = np.clip(flat + eps * np.sign(grad), *BOUNDS).reshape(x.shape)
        got = fgsm(model, x, y, eps, bounds=BOUNDS)
        assert got.dtype == x.dtype and got.shape == x.shape
        assert np.array_equal(got.numpy(), expected)
    unbounded = fgsm(model, x, y, 0.3)
    assert np.array_equal(unbounded.numpy(), (flat + 0.3 * np.sign(grad)).reshape(x.shape))


def test_fgsm_l2_moves_each_sample_by_eps_along_its_gradient():
    x, y = _images(6, 4)
    model = _Logistic(16)
    g = input_gradient(model, x, y).reshape(6, -1)
    got = fgsm(model, x, y, 0.2, norm="l2").reshape(6, -1)
    expected = x.reshape(6, -1) + 0.2 * g / g.norm(dim=1, keepdim=True)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)


def _reference_pgd(model, x, y, eps, alpha, steps, norm, bounds):
    """PGD written out sample by sample in numpy, differentiating each sample's loss on its own."""
    model = model.eval()
    out = []
    for xi, yi in zip(x, y, strict=True):
        clean = xi.numpy().copy()
        cur = clean.copy()
        for _ in range(steps):
            t = torch.tensor(cur, requires_grad=True)
            loss = nn.functional.cross_entropy(model(t[None]), yi[None])
            (g,) = torch.autograd.grad(loss, t)
            g = g.numpy()
            if norm == "linf":
                cur = cur + alpha * np.sign(g)
                cur = np.minimum(np.maximum(cur, clean - eps), clean + eps)
            else:
                length = np.sqrt((g**2).sum())
                cur = cur + (alpha * g / length if length > 0 else 0.0)
                delta = cur - clean
                dl = np.sqrt((delta**2).sum())
                if dl > eps:
                    cur = clean + delta * (eps / dl)
            cur = np.minimum(np.maximum(cur, bounds[0]), bounds[1])
        out.append(cur)
    return np.stack(out)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["mlp", "qnn"])
def test_pgd_agrees_with_an_independent_reference(kind, norm):
    x, y = _images(6, 4)
    if kind == "mlp":
        model = MLP((4, 4), 2, width=8, depth=2, seed=2)
    else:
        model = PatchQNN((4, 4), 2, n_qubits=4, n_layers=1, patch_size=2, stride=2, positional_bias=True, seed=4)
        with torch.no_grad():  # a non-zero bias, so that the gradient flows through it visibly
            model.position_bias.copy_(0.1 * torch.randn(4, 4, dtype=torch.float64))
    eps, alpha, steps = (0.2, 0.05, 6) if norm == "linf" else (0.5, 0.15, 6)
    got = pgd(model, x, y, eps, alpha=alpha, steps=steps, norm=norm, bounds=BOUNDS)
    expected = _reference_pgd(model, x, y, eps, alpha, steps, norm, BOUNDS)
    assert np.abs(got.numpy() - expected).max() < 1e-10
    assert not np.allclose(expected, x.numpy())  # the attack moved the inputs


def test_attacks_leave_the_model_unchanged():
    x, y = _images(6, 4)
    model = MLP((4, 4), 2, width=8, depth=1, dropout=0.2, seed=1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pgd(model, x, y, 0.1, alpha=0.03, steps=3, random_start=True, bounds=BOUNDS)
    fgsm(model, x, y, 0.1, bounds=BOUNDS)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def _loss(model, x, y) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model.eval()(x), y))


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model.eval()(x).argmax(-1) == y).double().mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pgd_loss_is_at_least_the_fgsm_loss_and_robust_accuracy_at_most_clean(seed):
    x, y = _images(16, 4, seed=seed)
    model = MLP((4, 4), 2, width=16, depth=1, seed=seed)
    eps = 0.2
    clean_loss, clean_acc = _loss(model, x, y), _accuracy(model, x, y)
    x_fgsm = fgsm(model, x, y, eps, bounds=BOUNDS)
    x_pgd = pgd(model, x, y, eps, alpha=eps / 4, steps=10, bounds=BOUNDS)
    assert _loss(model, x_pgd, y) >= _loss(model, x_fgsm, y) - 1e-12
    assert _loss(model, x_fgsm, y) >= clean_loss
    assert _accuracy(model, x_pgd, y) <= clean_acc


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(3, 4, 4), (2, 1, 4, 4), (5, 16)]),
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.0, 2.0),
    alpha=st.floats(0.01, 1.0),
    steps=st.integers(1, 4),
    random_start=st.booleans(),
    seed=st.integers(0, 100),
)
def test_pgd_iterates_stay_in_the_ball_and_the_bounds(shape, norm, eps, alpha, steps, random_start, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * math.pi
    y = torch.arange(shape[0]) % 2
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    out = pgd(
        model, x, y, eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start, seed=seed, bounds=BOUNDS
    )
    delta = (out - x).reshape(shape[0], -1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-12) + 1e-12).all())
    assert bool((out >= BOUNDS[0]).all()) and bool((out <= BOUNDS[1]).all())
    assert out.shape == x.shape and out.dtype == x.dtype


def test_random_start_is_seeded_and_chunking_changes_nothing():
    x, y = _images(10, 4)
    model = MLP((4, 4), 2, width=8, depth=1, seed=0)
    kw = dict(alpha=0.05, steps=3, random_start=True, bounds=BOUNDS)
    a = pgd(model, x, y, 0.2, seed=5, **kw)
    assert torch.equal(a, pgd(model, x, y, 0.2, seed=5, **kw))
    assert not torch.equal(a, pgd(model, x, y, 0.2, seed=6, **kw))
    torch.testing.assert_close(pgd(model, x, y, 0.2, seed=5, chunk_size=3, **kw), a, rtol=0, atol=1e-14)


def test_input_gradient_flows_through_a_cnn_and_a_float32_model():
    x, y = _images(4, 8)
    cnn = CNN((8, 8), 2, channels=(2,), seed=0)
    assert float(input_gradient(cnn, x, y).abs().sum()) > 0
    model = MLP((8, 8), 2, width=4, depth=1, seed=0).float()
    out = fgsm(model, x.float(), y, 0.1, bounds=BOUNDS)
    assert out.dtype == torch.float32


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], 2)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m, x, y: fgsm(m, x, y, -0.1), "eps"),
        (lambda m, x, y: fgsm(m, x, y, float("nan")), "eps"),
        (lambda m, x, y: pgd(m, x, y, 0.1, alpha=0.01, steps=0), "steps"),
        (lambda m, x, y: pgd(m, x, y, 0.1, alpha=0.0, steps=2), "alpha"),
        (lambda m, x, y: pgd(m, x, y, 0.1, alpha=0.01, steps=2, norm="l1"), "norm"),
        (lambda m, x, y: fgsm(m, x, y, 0.1, bounds=(1.0, 0.0)), "bounds"),
        (lambda m, x, y: fgsm(m, x, y, 0.1, bounds=(0.0, 1.0)), "bounds"),  # the inputs span [0, pi]
        (lambda m, x, y: fgsm(m, x, y[:2], 0.1), "y"),
        (lambda m, x, y: fgsm(_Constant(), x, y, 0.1), "model"),
        (lambda m, x, y: attack(m, x, y, AttackSettings(attack="cw")), "attack.attack"),
        (lambda m, x, y: AttackSettings.from_mapping({"eps": 0.1, "mix": 0.5}), "attack.mix"),
    ],
)
def test_bad_input_is_a_config_error_naming_the_field(call, field):
    x, y = _images(4, 4)
    model = MLP((4, 4), 2, width=4, depth=1)
    with pytest.raises(ConfigError) as info:
        call(model, x, y)
    assert info.value.field == field


def test_attack_dispatches_by_settings():
    x, y = _images(4, 4)
    model = MLP((4, 4), 2, width=4, depth=1)
    s = AttackSettings(attack="pgd", eps=0.1, steps=3, alpha=0.04)
    assert torch.equal(attack(model, x, y, s, bounds=BOUNDS), pgd(model, x, y, 0.1, alpha=0.04, steps=3, bounds=BOUNDS))
    f = AttackSettings(attack="fgsm", eps=0.1)
    assert torch.equal(attack(model, x, y, f), fgsm(model, x, y, 0.1))
    assert f.describe() == "FGSM-linf eps=0.1" and "PGD" in s.describe()


def test_pgd_on_a_pennylane_backend_matches_the_engine():
    x, y = _images(3, 4)
    engine = PatchQNN((4, 4), 2, n_qubits=4, n_layers=1, patch_size=2, stride=2, positional_bias=True, seed=4)
    with torch.no_grad():
        engine.position_bias.copy_(0.1 * torch.randn(4, 4, dtype=torch.float64))
    device = engine.with_backend("default.qubit")
    kw = dict(alpha=0.05, steps=2, bounds=BOUNDS)
    torch.testing.assert_close(input_gradient(device, x, y), input_gradient(engine, x, y), rtol=1e-9, atol=1e-11)
    assert np.abs(pgd(device, x, y, 0.2, **kw).numpy() - pgd(engine, x, y, 0.2, **kw).numpy()).max() < 1e-10


def test_attacks_work_inside_no_grad():
    x, y = _images(4, 4)
    model = MLP((4, 4), 2, width=4, depth=1)
    expected = fgsm(model, x, y, 0.1, bounds=BOUNDS)
    with torch.no_grad():
        assert torch.equal(fgsm(model, x, y, 0.1, bounds=BOUNDS), expected)


def test_bounds_may_be_the_dataset_whose_recorded_range_they_are():
    data = load_dataset("digits", classes=(0, 1), angle_range=(0.0, 2.0), max_train=12, max_test=4)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    model = MLP(data.image_shape, 2, width=4, depth=1)
    torch.testing.assert_close(fgsm(model, x, y, 0.5, bounds=data), fgsm(model, x, y, 0.5, bounds=(0.0, 2.0)))
    assert float(pgd(model, x, y, 0.5, alpha=0.3, steps=2, bounds=data).max()) <= 2.0
