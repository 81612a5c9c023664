"""Size estimates before work: the memory budget, circuit sizes, state vectors, landscape grids, kernels and
gradient-variance grids are refused with the estimate, the budget and what to change, before anything large is
allocated (no test here allocates more than a few megabytes)."""

from __future__ import annotations

import itertools
import logging
import math
import os

import numpy as np
import pytest
import torch

from qlandscape.core import memory
from qlandscape.core.errors import ConfigError
from qlandscape.core.memory import SizeError, check_fits, format_bytes, memory_budget, parse_size
from qlandscape.core.objective import Objective
from qlandscape.metrics import gradients
from qlandscape.metrics.landscape import slices
from qlandscape.metrics.ntk.kernels import kernel_evolution, kernel_matrix
from qlandscape.models.classical import MLP
from qlandscape.sim import circuits
from qlandscape.sim.circuits import build_circuit, catalogue, gate_limit, load_spec
from qlandscape.sim.engine import simulate, simulate_patch_mean, simulate_state


# ------------------------------------------------------------------------------------------- the budget
@pytest.mark.parametrize(
    "text,expected",
    [("100", 100), ("512M", 512 * 2**20), ("8G", 8 * 2**30), ("1.5TiB", 3 * 2**39), ("2 gb", 2 * 2**30)],
)
def test_sizes_are_read_with_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "0", "8X", "1e9"])
def test_bad_sizes_name_the_setting(text):
    with pytest.raises(ConfigError, match=memory.BUDGET_ENV):
        parse_size(text)


def test_the_budget_is_the_call_s_then_the_environment_s_then_half_the_available_memory(monkeypatch):
    monkeypatch.delenv(memory.BUDGET_ENV, raising=False)
    monkeypatch.setattr(memory, "available_memory", lambda: 10 * 2**30)
    assert memory_budget()[0] == 5 * 2**30
    assert memory_budget(available=2**30)[0] == 2**29  # a GPU's memory instead of this machine's
    monkeypatch.setenv(memory.BUDGET_ENV, "3G")
    assert memory_budget() == (3 * 2**30, f"{memory.BUDGET_ENV}=3G")
    assert memory_budget(2**20)[0] == 2**20 and memory_budget("2M")[0] == 2**21
    monkeypatch.delenv(memory.BUDGET_ENV)
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert memory_budget()[0] is None  # unknown: nothing is refused
    check_fits(2**60, "anything", "nothing", field="f", value=1)


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="reads Linux's /proc/meminfo")
def test_available_memory_agrees_with_the_kernel_s_count():
    found = memory.available_memory()
    assert found is not None and found > 0
    with open("/proc/meminfo") as handle:
        total = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemTotal:"))
    assert found <= total


def test_a_refusal_names_the_estimate_the_budget_and_what_to_change():
    check_fits(2**20, "a thing", "use less", field="size", value=3, budget=2**20)  # at the budget: allowed
    with pytest.raises(SizeError) as err:
        check_fits(2**40 * 16, "a state vector of 40 qubits", "use fewer qubits", field="qubits", value=40, budget="8G")
    message = str(err.value)
    assert message.startswith("qubits = 40 is not allowed; a state vector of 40 qubits would take about 16.0 TiB")
    assert "budget of 8.0 GiB (the budget given); use fewer qubits" in message
    assert (err.value.estimate, err.value.budget) == (2**44, 8 * 2**30)
    assert isinstance(err.value, ConfigError)
    assert format_bytes(10**10 * 8) == "74.5 GiB" and format_bytes(512) == "512 B"


# ------------------------------------------------------------------------------------------- circuits
def test_gate_counts_match_the_built_circuits():
    for name, n, layers in itertools.product(catalogue(), (1, 2, 3, 5), (0, 1, 3)):
        spec = load_spec(name)
        try:
            circuit = spec.build(n, layers)
        except ConfigError:  # e.g. a readout on qubits the circuit does not have
            continue
        assert spec.gate_count(n, layers) == len(circuit.gates), (name, n, layers)


def test_a_circuit_over_the_gate_limit_is_refused_with_the_layers_that_fit(monkeypatch):
    spec = load_spec("hea")
    limit = spec.gate_count(3, 10)
    spec.check_size(3, 10, max_gates=limit)
    with pytest.raises(ConfigError, match=r"layers = 11 is not allowed; hea on 3 qubits with 11 layers") as err:
        spec.check_size(3, 11, max_gates=limit)
    assert f"{spec.gate_count(3, 11):,} gates" in str(err.value) and "layers <= 10 for hea" in str(err.value)
    monkeypatch.setenv(circuits.MAX_GATES_ENV, str(limit))
    assert gate_limit() == limit
    with pytest.raises(ConfigError, match="layers = 11"):
        build_circuit("hea", 3, 11)
    monkeypatch.setenv(circuits.MAX_GATES_ENV, "lots")
    with pytest.raises(ConfigError, match="QLANDSCAPE_MAX_GATES = 'lots'"):
        gate_limit()


def test_a_circuit_whose_state_exceeds_the_budget_is_refused_before_building(monkeypatch):
    monkeypatch.setenv(memory.BUDGET_ENV, "1M")
    build_circuit("hea", 16, 1)  # 2**16 * 16 bytes = 1 MiB: at the budget
    with pytest.raises(SizeError, match=r"qubits = 17 is not allowed; one state vector of 17 qubits.*2\.0 MiB"):
        build_circuit("hea", 17, 1)


# ------------------------------------------------------------------------------------------- the engine
@pytest.mark.parametrize("run", [simulate, simulate_state, simulate_patch_mean])
def test_the_engine_refuses_a_call_whose_states_exceed_the_budget(run, monkeypatch):
    circuit = build_circuit("hea", 12, 2)  # not a product-state circuit: it needs its state vectors
    params = torch.zeros(3, 2, circuit.n_params, dtype=torch.float64)
    # 3 points x 1000 samples x 2 patches x 2**12 amplitudes x 16 bytes = 375 MiB, never allocated (expanded views)
    features = torch.zeros(1, 1, circuit.n_features, dtype=torch.float64).expand(1000, 2, -1)
    monkeypatch.setenv(memory.BUDGET_ENV, "256M")
    with pytest.raises(SizeError) as err:
        run(circuit, params, features)
    assert "qubits = 12" in str(err.value) and "3 points x 1000 samples x 2 patches" in str(err.value)
    assert err.value.estimate == 3 * 1000 * 2 * 2**12 * 16


def test_the_engine_check_leaves_small_calls_alone(monkeypatch):
    circuit = build_circuit("hea", 3, 2)
    params = torch.rand(2, circuit.n_params, dtype=torch.float64)
    features = torch.rand(4, 2, circuit.n_features, dtype=torch.float64)
    expected = simulate(circuit, params, features)
    monkeypatch.setenv(memory.BUDGET_ENV, "1K")  # below the checked sizes: the result is unchanged
    assert torch.equal(simulate(circuit, params, features), expected)


# ------------------------------------------------------------------------------------------- landscapes
def test_grid_memory_is_its_coordinates_and_results():
    assert slices.grid_bytes(100_000, 100_000, 1) == 8 * 10**10 * 4
    with pytest.raises(SizeError, match=r"grid = 100000 is not allowed; a 100000 x 100000 grid"):
        slices.check_grid_size(100_000, 100_000, 1)
    slices.check_grid_size(51, 51, 2)


def _objective():
    g = torch.Generator().manual_seed(0)
    model = MLP((2, 2), 2, width=3, depth=1, seed=0)
    x = torch.rand(12, 2, 2, generator=g, dtype=torch.float64)
    return Objective(model, x, torch.arange(12) % 2, "cross_entropy")


def test_slices_refuse_a_grid_before_evaluating_it(monkeypatch):
    objective = _objective()
    d = np.ones(objective.n_params)
    monkeypatch.setattr(slices, "evaluate_points", lambda *a, **k: pytest.fail("evaluated"))
    monkeypatch.setenv(memory.BUDGET_ENV, "1M")
    grid = np.linspace(-1, 1, 200)  # 200 x 200 x 8 bytes x (2 + 2) = 1.2 MiB
    with pytest.raises(SizeError, match="a 200 x 200 grid"):
        slices.slice_2d(objective, d, d, alphas=grid, betas=grid)


def test_a_long_grid_logs_its_estimate_and_gives_the_same_numbers(monkeypatch, caplog):
    objective = _objective()
    d1, d2 = np.eye(objective.n_params)[:2]
    grid = np.linspace(-1, 1, 7)
    quiet = slices.slice_2d(objective, d1, d2, alphas=grid, betas=grid, batch=5)
    assert not caplog.records
    monkeypatch.setattr(slices, "LONG_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING):
        announced = slices.slice_2d(objective, d1, d2, alphas=grid, betas=grid, batch=5)
    assert any("49 points" in r.getMessage() and "measured on the first 5" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(announced.losses, quiet.losses)
    # and both against the objective point by point
    theta = objective.theta0.numpy()
    for (i, b), (j, a) in itertools.product(enumerate(grid), enumerate(grid)):
        value = float(objective.loss(torch.as_tensor(theta + a * d1 + b * d2)))
        assert math.isclose(quiet.losses[0, i, j], value, rel_tol=1e-12, abs_tol=1e-14)


# ------------------------------------------------------------------------------------------- kernels
def test_kernels_are_refused_before_they_are_allocated(monkeypatch):
    objective = _objective()
    monkeypatch.setenv(memory.BUDGET_ENV, "2K")
    kernel_matrix(objective, None, objective.x[:8])  # 8 x 8 x 8 bytes x 2 copies = 1 KiB
    with pytest.raises(SizeError, match=r"inputs = \(12, 12\).*2 trace-form kernel\(s\) of 12 x 12"):
        kernel_matrix(objective, None, objective.x)
    with pytest.raises(SizeError, match=r"inputs = \(16, 16\).*full-form"):  # 8 inputs x 2 outputs
        kernel_matrix(objective, None, objective.x[:8], form="full")
    traj = np.stack([objective.theta0.numpy()] * 3)
    with pytest.raises(SizeError, match="6 trace-form kernel"):  # three kept kernels, and their stack
        kernel_evolution(objective, traj, [0.0, 1.0, 2.0], 8)


# ------------------------------------------------------------------------------------------- gradient variance
def test_a_gradient_variance_grid_is_checked_whole_before_its_first_cell(monkeypatch):
    monkeypatch.setattr(gradients, "gradient_variance", lambda *a, **k: pytest.fail("a cell ran"))
    with pytest.raises(ConfigError, match="layers = 1000000"):
        gradients.variance_curve("hea", [2, 3], [1, 10**6], samples=4)
    with pytest.raises(SizeError, match="qubits = 40"):
        gradients.variance_curve("hea", [2, 40], [1], samples=4)
    with pytest.raises(SizeError, match=r"samples = 1000000000000.*initialisations"):
        gradients.variance_curve("hea", [2, 3], [1, 2], samples=10**12)
