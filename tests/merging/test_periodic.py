from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.merging.periodic import (
    circular_mean,
    generator_period,
    periodic_align,
    periodic_difference,
    redundant_parameters,
)
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim import gates


def test_circular_mean_of_angles_either_side_of_zero_and_of_pi():
    two_pi = 2 * math.pi
    mean = circular_mean(torch.tensor([[0.1], [two_pi - 0.1]], dtype=torch.float64), np.array([two_pi]))
    assert float(mean[0]) == pytest.approx(0.0, abs=1e-12)  # the arithmetic mean would be π
    # near ±π: the mean is π (or −π, the same circuit), the copy nearest the first angle
    mean = circular_mean(torch.tensor([[math.pi - 0.1], [-math.pi + 0.1]], dtype=torch.float64), np.array([two_pi]))
    assert float(mean[0]) == pytest.approx(math.pi, abs=1e-12)
    mean = circular_mean(
        torch.tensor([[-math.pi + 0.2], [math.pi - 0.1], [-math.pi + 0.05]], dtype=torch.float64), np.array([two_pi])
    )
    # by hand: the offsets from −π are 0.2, −0.1, 0.05; their circular mean is atan2(Σ sin, Σ cos)
    offsets = np.array([0.2, -0.1, 0.05])
    expected = -math.pi + math.atan2(np.sin(offsets).sum(), np.cos(offsets).sum())
    assert float(mean[0]) == pytest.approx(expected, abs=1e-12)


def test_circular_mean_is_arithmetic_off_the_angles_and_weighted():
    thetas = torch.tensor([[0.2, 1.0], [0.4, 3.0]], dtype=torch.float64)
    periods = np.array([2 * math.pi, np.nan])
    mean = circular_mean(thetas, periods, torch.tensor([3.0, 1.0]))
    assert float(mean[1]) == pytest.approx(0.75 * 1.0 + 0.25 * 3.0)
    expected = math.atan2(0.75 * math.sin(0.2) + 0.25 * math.sin(0.4), 0.75 * math.cos(0.2) + 0.25 * math.cos(0.4))
    assert float(mean[0]) == pytest.approx(expected, abs=1e-14)


def test_periodic_align_and_difference_move_by_whole_periods():
    periods = np.array([2 * math.pi, 2 * math.pi, np.nan])
    a = torch.tensor([0.1, 3.0, 5.0], dtype=torch.float64)
    b = torch.tensor([0.1 + 4 * math.pi + 0.2, 3.0 - 2 * math.pi - 0.3, 50.0], dtype=torch.float64)
    torch.testing.assert_close(periodic_align(a, b, periods), torch.tensor([0.3, 2.7, 50.0], dtype=torch.float64))
    torch.testing.assert_close(periodic_difference(b, a, periods), torch.tensor([0.2, -0.3, 45.0], dtype=torch.float64))


def test_generator_period_from_eigenvalues():
    for name in ("RX", "RY", "RZ"):
        assert generator_period(name) == pytest.approx(2 * math.pi)
    # a global-phase "rotation" (G = iI) has no period: R(a) = e^{ia/2} I changes nothing
    phase = gates.Rotation("PHASE_TEST", 1j * np.eye(2), pennylane="GlobalPhase")
    gates.GATES["PHASE_TEST"] = phase
    try:
        assert math.isinf(generator_period("PHASE_TEST"))
    finally:
        del gates.GATES["PHASE_TEST"]


def test_redundant_parameters_are_the_last_rz_layer_before_a_z_readout():
    # hea: L x [RY, RZ per qubit + CNOT ring] with Z readout: the last layer's RZ commute with the readout
    model = PatchQNN((4, 4), 2, ansatz="hea", n_qubits=2, n_layers=2, patch_size=2, stride=2, seed=1)
    x = torch.rand(6, 4, 4, dtype=torch.float64) * math.pi
    report = redundant_parameters(model, x)
    n = model.circuit.n_params
    last_rz = [g.index for g in model.circuit.gates if g.source == "param" and g.name == "RZ"][-2:]
    expected = sorted(p * n + j for p in range(model.n_patches) for j in last_rz)
    assert report.indices.tolist() == expected
    assert all(name.startswith("circuit_params[") for name in report.names)
    others = np.setdiff1d(np.arange(model.n_params), expected)
    assert report.max_abs_jacobian[others].min() > 1e-6


def test_redundant_parameters_of_a_classical_net_are_none():
    model = MLP((3, 3), 2, width=4, depth=1)
    report = redundant_parameters(model, torch.rand(5, 3, 3, dtype=torch.float64))
    assert report.indices.size == 0
    with pytest.raises(ConfigError, match="tolerance"):
        redundant_parameters(model, torch.rand(5, 3, 3, dtype=torch.float64), tolerance=-1.0)
