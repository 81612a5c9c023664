from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.merging import merge
from qlandscape.merging.merges import diagonal_fisher, greedy_soup, task_arithmetic, ties_vector
from qlandscape.merging.parameters import flat_parameters, with_parameters
from qlandscape.models.classical import CNN, MLP, recompute_bn_statistics
from qlandscape.models.qnn import PatchQNN
from tests.merging.conftest import trained


@pytest.fixture(scope="module")
def mlps(digits):
    return [trained(MLP(digits[0].shape[1:], 3, width=12, depth=1, seed=s), digits, seed=s, epochs=2) for s in range(3)]


def test_average_is_the_weighted_mean_and_leaves_the_inputs_alone(mlps):
    before = [flat_parameters(m).clone() for m in mlps]
    merged = merge(mlps, "average", weights=[1.0, 2.0, 1.0])
    expected = 0.25 * before[0] + 0.5 * before[1] + 0.25 * before[2]
    torch.testing.assert_close(flat_parameters(merged), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(flat_parameters(merge(mlps, "uniform_soup")), sum(before) / 3, rtol=0, atol=1e-14)
    for m, b in zip(mlps, before, strict=True):
        assert torch.equal(flat_parameters(m), b)


def test_average_of_circuit_angles_is_circular():
    a = PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2, seed=0)
    b = PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2, seed=0)
    with torch.no_grad():
        a.circuit_params.fill_(0.1)
        b.circuit_params.fill_(2 * math.pi - 0.1)
    merged = merge([a, b], "average")
    torch.testing.assert_close(merged.circuit_params, torch.zeros_like(a.circuit_params), rtol=0, atol=1e-12)


def test_ties_on_hand_computed_vectors():
    tau = torch.tensor([[1.0, -2.0, 0.5, 3.0], [-1.5, -1.0, 0.2, -4.0], [2.0, 0.1, -0.3, 1.5]], dtype=torch.float64)
    # top 50 %: [0, -2, 0, 3], [-1.5, 0, 0, -4], [2, 0, 0, 1.5]; signs of the sums: +, -, 0, + (0.5);
    # disjoint means of the agreeing entries: 2, -2, 0, (3 + 1.5) / 2
    torch.testing.assert_close(ties_vector(tau, 50), torch.tensor([2.0, -2.0, 0.0, 2.25], dtype=torch.float64))
    # top 100 %: nothing trimmed; signs +, -, +, + ; means (1 + 2) / 2, (-2 - 1) / 2, (0.5 + 0.2) / 2, (3 + 1.5) / 2
    torch.testing.assert_close(ties_vector(tau, 100), torch.tensor([1.5, -1.5, 0.35, 2.25], dtype=torch.float64))
    for bad in (0, -5, 100.5, float("nan")):
        with pytest.raises(ConfigError, match="top_k"):
            ties_vector(tau, bad)


def test_ties_and_task_arithmetic_from_a_parent(mlps, digits):
    base, children = mlps[0], mlps[1:]
    theta0 = flat_parameters(base)
    taus = [flat_parameters(c) - theta0 for c in children]
    merged = merge(children, "ties", base=base, top_k=100, lam=0.5)
    stacked = torch.stack(taus)
    sign = torch.sign(stacked.sum(0))
    agree = torch.sign(stacked) == sign
    expected = theta0 + 0.5 * (stacked * agree).sum(0) / agree.sum(0).clamp(min=1)
    torch.testing.assert_close(flat_parameters(merged), expected, rtol=0, atol=1e-13)
    one = merge(children[:1], "task_arithmetic", base=base, lam=1.0)
    torch.testing.assert_close(flat_parameters(one), flat_parameters(children[0]), rtol=0, atol=1e-14)
    model, chosen = task_arithmetic(children, base, lambdas=(0.2, 0.5, 1.0), x_val=digits[2], y_val=digits[3])
    scores = []
    for lam in (0.2, 0.5, 1.0):
        objective = Objective(with_parameters(base, theta0 + lam * sum(taus)), digits[2], digits[3])
        scores.append((-objective.accuracy(), float(objective.loss())))
    assert chosen.lam == (0.2, 0.5, 1.0)[int(np.argmin([s[0] * 1e6 + s[1] for s in scores]))]
    np.testing.assert_allclose(chosen.accuracy, [-s[0] for s in scores])
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="lam"):
            merge(children, "task_arithmetic", base=base, lam=bad)


def test_greedy_soup_keeps_only_ingredients_that_raise_held_out_accuracy(mlps, digits):
    _, _, xt, yt = digits
    untrained = MLP(xt.shape[1:], 3, width=12, depth=1, seed=9)
    ingredients = [*mlps, untrained]
    soup, recipe = greedy_soup(ingredients, xt, yt)
    scores = [Objective(m, xt, yt).accuracy() for m in ingredients]
    np.testing.assert_allclose(recipe.ingredient_accuracy, scores)
    assert recipe.chosen[0] == int(np.argmax(scores))
    # replay the recipe independently: each accepted ingredient raised the accuracy (or, tied, lowered the loss)
    current = [recipe.chosen[0]]
    for i in recipe.order[1:]:
        mean = sum(flat_parameters(ingredients[j]) for j in [*current, i]) / (len(current) + 1)
        now = sum(flat_parameters(ingredients[j]) for j in current) / len(current)
        obj_new, obj_now = (
            Objective(with_parameters(untrained, mean), xt, yt),
            Objective(with_parameters(untrained, now), xt, yt),
        )
        better = obj_new.accuracy() > obj_now.accuracy() or (
            obj_new.accuracy() == obj_now.accuracy() and obj_new.loss() < obj_now.loss()
        )
        assert (i in recipe.chosen) == better
        if better:
            current.append(i)
    assert Objective(soup, xt, yt).accuracy() >= max(scores)
    with pytest.raises(ConfigError, match="held-out"):
        greedy_soup(ingredients, xt[:0], yt[:0])


def test_swa_equals_averaged_model_and_update_bn(digits):
    x, _, xt, _ = digits
    models = [
        trained(CNN(x.shape[1:], 3, channels=(3,), batch_norm=True, seed=s), digits, seed=s, epochs=1) for s in range(3)
    ]
    swa_model = merge(models, "swa", x_stats=x)
    reference = AveragedModel(models[0])
    for m in models:
        reference.update_parameters(m)
    torch.testing.assert_close(flat_parameters(swa_model), flat_parameters(reference.module), rtol=0, atol=1e-14)
    mean = sum(flat_parameters(m) for m in models) / 3
    torch.testing.assert_close(flat_parameters(swa_model), mean, rtol=0, atol=1e-14)
    # update_bn on one batch gives the batch statistics, as recompute_bn_statistics computes them
    expected = recompute_bn_statistics(models[0], mean, x)
    bn, ref = swa_model.features[1], expected.features[1]
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=0, atol=1e-12)


def _fisher_by_hand(model, x):
    model = model.double().eval()
    params = list(model.parameters())
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    for xi in x:
        logp = torch.log_softmax(model(xi[None])[0], -1)
        for c in range(logp.shape[0]):
            grads = torch.autograd.grad(logp[c], params, retain_graph=True)
            total += logp[c].exp().detach() * torch.cat([g.reshape(-1) for g in grads]) ** 2
    return total / x.shape[0]


def test_fisher_merge_weights_by_the_diagonal_fisher(mlps, digits):
    x = digits[0][:12]
    fishers = [_fisher_by_hand(m, x) for m in mlps[:2]]
    torch.testing.assert_close(diagonal_fisher(mlps[0], x), fishers[0], rtol=1e-10, atol=1e-14)
    merged = merge(mlps[:2], "fisher", x=x, fisher_floor=1e-6)
    f0, f1 = fishers[0] + 1e-6, fishers[1] + 1e-6
    expected = (f0 * flat_parameters(mlps[0]) + f1 * flat_parameters(mlps[1])) / (f0 + f1)
    torch.testing.assert_close(flat_parameters(merged), expected, rtol=1e-9, atol=1e-12)


def test_bad_merge_input_is_a_config_error(mlps, digits):
    with pytest.raises(ConfigError, match="at least 1"):
        merge([], "average")
    with pytest.raises(ConfigError, match="method"):
        merge(mlps, "median")
    with pytest.raises(ConfigError, match="parameter count"):
        merge([mlps[0], MLP(digits[0].shape[1:], 3, width=5, depth=1)], "average")
    with pytest.raises(ConfigError, match="options"):
        merge(mlps, "average", top_k=10)
    with pytest.raises(ConfigError, match="base"):
        merge(mlps, "ties")
    with pytest.raises(ConfigError, match="top_k"):
        merge(mlps[1:], "ties", base=mlps[0], top_k=0)
    with pytest.raises(ConfigError, match="weights"):
        merge(mlps, "average", weights=[1.0, -1.0, 1.0])
