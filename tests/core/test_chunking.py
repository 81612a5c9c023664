"""Chunk sizes from the memory budget: the plans, chunked equals unchunked, refusal before work, and the estimates
as upper bounds of the peaks torch's profiler measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from qlandscape.core import memory
from qlandscape.core.chunking import COSTS, REFUSE_ABOVE, Footprint, chunk_cost, measure_footprint, plan_chunks
from qlandscape.core.memory import BUDGET_ENV, SizeError
from qlandscape.core.objective import Objective
from qlandscape.metrics.curvature.structured import structured_hessian
from qlandscape.models.config import ModelConfig, build_model

MODELS = {
    "cnn": ModelConfig(model="cnn", channels=(2, 3)),
    "mlp": ModelConfig(model="mlp", width=8),
    "qnn": ModelConfig(model="qnn", qubits=4, layers=1, patch_size=4, aggregation="linear"),
    "qnn-bias": ModelConfig(
        model="qnn", qubits=4, layers=1, patch_size=4, stride=4, positional_bias=True, aggregation="linear"
    ),
}


def _objective(name: str, n: int = 10, **kwargs) -> Objective:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(n, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return Objective(build_model(MODELS[name], (8, 8), 3, seed=0), x, y, **kwargs)


def _budget_for(objective: Objective, kind: str, samples: int, passes: int = 1) -> int:
    """A budget that fits ``samples`` samples of a ``kind`` step but not one more."""
    return chunk_cost(kind, objective.footprint(), objective.n_params, samples, passes) + 1


def _peak_bytes(fn) -> int:
    """Peak CPU memory torch allocates while ``fn`` runs: the running sum of every op's own allocations and frees,
    in time order, from torch's profiler."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


# ------------------------------------------------------------------------------------------ plans
def test_plan_takes_the_largest_chunk_that_fits():
    fp = Footprint(fixed=1000, per_sample=500)
    for kind in ("loss", "grad", "hvp", "jacobian"):
        budget = chunk_cost(kind, fp, 20, 7) + 3
        plan = plan_chunks(kind, fp, n_samples=100, n_params=20, budget=budget)
        assert plan.samples == 7
        assert plan.estimate <= budget < chunk_cost(kind, fp, 20, 8)
    assert plan_chunks("hvp", fp, n_samples=5, n_params=20, budget=10**12).samples == 5
    assert plan_chunks("hvp", fp, n_samples=100, n_params=20, budget=10**12, limit=9).samples == 9


def test_the_cost_follows_its_formula():
    fp = Footprint(fixed=100, per_sample=40)
    a, b, c, d = COSTS["hessian"]
    m, k, p = 3, 5, 11
    assert chunk_cost("hessian", fp, p, m, k) == int(
        (a * (100 + 40 * m) + b * 8 * p + d * 8 * p * m) * k + c * 8 * p**2
    )


def test_a_hessian_plan_takes_fewer_directions_when_all_do_not_fit():
    fp = Footprint(fixed=0, per_sample=10_000)
    budget = chunk_cost("hessian", fp, 64, 1, 16) + 1
    plan = plan_chunks("hessian", fp, n_samples=30, n_params=64, passes=64, budget=budget)
    assert plan.directions == 16
    assert plan.samples == 1
    assert plan.estimate <= budget


def test_no_footprint_or_no_budget_plans_everything(monkeypatch):
    plan = plan_chunks("grad", None, n_samples=40, n_params=3, budget=100)
    assert (plan.samples, plan.estimate) == (40, 0)


def test_one_sample_over_the_budget_names_estimate_and_budget():
    fp = Footprint(fixed=0, per_sample=2**20)
    with pytest.raises(
        SizeError, match=r"one sample would take about 8\.0 MiB, over the memory budget of 1\.0 MiB"
    ) as e:
        plan_chunks("hvp", fp, n_samples=10, n_params=1, budget="1M")
    assert e.value.budget == 2**20 and e.value.estimate > 2**20
    with pytest.raises(SizeError, match="one sample and one direction"):
        plan_chunks("hessian", fp, n_samples=10, n_params=4, passes=4, budget="1M")


def test_tiny_steps_are_never_refused():
    fp = Footprint(fixed=0, per_sample=100)
    assert chunk_cost("grad", fp, 10, 1) < REFUSE_ABOVE
    plan = plan_chunks("grad", fp, n_samples=10, n_params=10, budget=10)
    assert plan.samples == 1


def test_kind_is_checked():
    with pytest.raises(Exception, match="kind"):
        plan_chunks("hessians", Footprint(0, 1), n_samples=1, n_params=1, budget=10)


def test_footprint_is_linear_in_the_samples_and_ignores_the_full_input():
    def forward(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * theta.sum())  # saves tanh's output: one copy of x per pass

    x = torch.rand(1000, 50, dtype=torch.float64)  # 400 kB: a saved slice must not count all of it
    fp = measure_footprint(forward, torch.ones(3, dtype=torch.float64), x)
    assert fp.per_sample == pytest.approx(50 * 8 * 3, rel=0.5)  # x*s, tanh output, the output itself
    assert fp.saved(4) < 1000 * 50 * 8 / 10
    assert fp.outputs == 50


# --------------------------------------------------------------------- chunked equals unchunked
@pytest.mark.parametrize("name", ["cnn", "qnn"])
def test_chunked_loss_grad_hvp_and_jacobian_equal_unchunked(name):
    whole = _objective(name, memory_budget="64G")
    v = torch.randn(whole.n_params, dtype=torch.float64)
    ref = (whole.loss(), whole.grad(), whole.hvp(None, v), whole.jacobian())
    for kind, value in (("loss", lambda o: o.loss()), ("grad", lambda o: o.grad()), ("hvp", lambda o: o.hvp(None, v))):
        small = whole.with_budget(_budget_for(whole, kind, 3))
        assert small.chunk_plan(kind).samples == 3
        got = value(small)
        expected = ref[("loss", "grad", "hvp").index(kind)]
        assert torch.allclose(got, expected, rtol=0, atol=1e-12 * max(1.0, float(expected.abs().max())))
    outputs = whole.footprint().outputs
    small = whole.with_budget(_budget_for(whole, "jacobian", 4, outputs))
    assert torch.allclose(small.jacobian(), ref[3], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["cnn", "qnn"])
def test_chunked_dense_hessian_equals_unchunked(name):
    whole = _objective(name, memory_budget="64G")
    ref = whole.hessian()
    p = whole.n_params
    by_samples = whole.with_budget(_budget_for(whole, "hessian", 4, p))
    plan = by_samples.chunk_plan("hessian", passes=p)
    assert (plan.samples, plan.directions) == (4, p)
    assert torch.allclose(by_samples.hessian(), ref, rtol=0, atol=1e-12)
    by_directions = whole.with_budget(_budget_for(whole, "hessian", 1, p // 4 + 1))
    plan = by_directions.chunk_plan("hessian", passes=p)
    assert plan.directions < p
    assert torch.allclose(by_directions.hessian(), ref, rtol=0, atol=1e-12)


def test_chunked_structured_hessian_equals_unchunked():
    whole = _objective("qnn-bias", memory_budget="64G")
    ref = structured_hessian(whole)
    lay = whole.model.patch_layout()
    params = whole.unflatten(whole.theta0)
    passes = params[lay.circuit].shape[1] + params[lay.position_bias].numel()
    small = whole.with_budget(_budget_for(whole, "structured", 3, passes))
    assert small.chunk_plan("structured", passes=passes).samples == 3
    got = structured_hessian(small)
    np.testing.assert_allclose(got.hessian, ref.hessian, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.gauss_newton, ref.gauss_newton, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.hessian, whole.hessian().numpy(), rtol=0, atol=1e-10)  # and the generic one


def test_grid_points_are_chunked_within_the_budget():
    whole = _objective("qnn", memory_budget="64G")
    thetas = whole.theta0 + 0.1 * torch.randn(6, whole.n_params, dtype=torch.float64)
    ref = whole.losses(thetas)
    small = whole.with_budget(_budget_for(whole, "loss", 2, 3))
    got = small.losses(thetas, batch=6)
    assert torch.allclose(got[0], ref[0], rtol=0, atol=1e-12)
    assert torch.equal(got[1], ref[1])


def test_the_environment_variable_sets_the_budget(monkeypatch):
    objective = _objective("mlp")
    budget = _budget_for(objective, "grad", 2)
    monkeypatch.setenv(BUDGET_ENV, str(budget))
    assert objective.chunk_plan("grad").samples == 2
    assert objective.with_budget("64G").chunk_plan("grad").samples == objective.n_samples  # per call wins


# ------------------------------------------------------------------------------- refusal
def test_a_budget_too_small_for_one_sample_raises_before_any_work(monkeypatch):
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(10, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)
    objective = Objective(build_model(ModelConfig(model="cnn"), (8, 8), 3, seed=0), x, y, memory_budget=1000)
    calls = []
    monkeypatch.setattr(Objective, "_chunk_hvp", lambda *a: calls.append(1))
    monkeypatch.setattr(Objective, "_chunk_loss", lambda *a: calls.append(1))
    v = torch.zeros(objective.n_params, dtype=torch.float64)
    for run in (objective.hvp, objective.grad, objective.loss, objective.hessian, objective.jacobian):
        with pytest.raises(SizeError, match=r"over the memory budget of 1000 B \(the budget given\)"):
            run(None, v) if run == objective.hvp else run()
    assert calls == []


def test_bad_budgets_are_config_errors():
    with pytest.raises(Exception, match="budget"):
        _objective("mlp", memory_budget="lots")
    with pytest.raises(Exception, match="budget"):
        _objective("mlp").with_budget(-5)


# ---------------------------------------------------------------------------- upper bounds
@pytest.mark.parametrize("name", ["cnn", "mlp", "qnn"])
@pytest.mark.parametrize("n", [1, 6])
def test_estimates_bound_the_measured_peaks(name, n):
    objective = _objective(name, n=n, memory_budget="64G")
    fp, p = objective.footprint(), objective.n_params
    theta, v = objective.theta0, torch.randn(p, dtype=torch.float64)
    runs = [
        ("loss", 1, lambda: objective.loss(theta)),
        ("grad", 1, lambda: objective.grad(theta)),
        ("hvp", 1, lambda: objective.hvp(theta, v)),
        ("jacobian", fp.outputs, lambda: objective.jacobian(theta)),
        ("hessian", p // 3 + 1, lambda: objective._hessian_in_blocks(theta, objective.x, objective.y, p // 3 + 1)),
    ]
    if p <= 400:
        runs.append(("hessian", p, lambda: objective.hessian(theta)))
    for kind, passes, fn in runs:
        measured = _peak_bytes(fn)
        assert chunk_cost(kind, fp, p, n, passes) >= measured, (kind, passes)


def test_structured_estimate_bounds_the_measured_peak():
    objective = _objective("qnn-bias", n=6, memory_budget="64G")
    lay = objective.model.patch_layout()
    params = objective.unflatten(objective.theta0)
    passes = params[lay.circuit].shape[1] + params[lay.position_bias].numel()
    measured = _peak_bytes(lambda: structured_hessian(objective))
    assert chunk_cost("structured", objective.footprint(), objective.n_params, 6, passes) >= measured


def test_the_default_budget_is_planned_once_per_objective(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    objective = _objective("mlp")
    room = [2 * _budget_for(objective, "grad", 3)]  # half of it is the default budget: 3 samples
    monkeypatch.setattr(memory, "available_memory", lambda: room[0])
    first = objective.chunk_plan("grad")
    assert first.samples == 3
    room[0] *= 100  # memory freed elsewhere: the same Objective keeps its chunks, so its sums keep their order
    assert objective.chunk_plan("grad") == first
    assert objective.with_budget(None).chunk_plan("grad").samples == objective.n_samples
