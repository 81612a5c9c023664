from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.merging.parameters import flat_parameters, with_parameters
from qlandscape.metrics.modes.directedness import directedness_of_vectors, mode_directedness
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN


def test_parallel_displacements_share_one_direction():
    base = MLP((2, 2), 2, depth=0)
    theta = flat_parameters(base)
    direction = torch.linspace(-1, 1, theta.shape[0], dtype=torch.float64)
    models = [with_parameters(base, theta + s * direction) for s in (0.5, 1.0, 2.0)]
    result = mode_directedness(models, base)
    np.testing.assert_allclose(result.cosines, np.ones((3, 3)), atol=1e-12)
    np.testing.assert_allclose(result.explained_variance, [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.norms, np.array([0.5, 1.0, 2.0]) * float(direction.norm()), rtol=1e-12)


def test_orthogonal_displacements_of_equal_length():
    result = directedness_of_vectors(np.eye(4)[:3] * 2.0)
    np.testing.assert_allclose(result.cosines, np.eye(3), atol=1e-15)
    assert result.mean_cosine == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(result.explained_variance, [1 / 3] * 3, atol=1e-12)
    opposite = directedness_of_vectors(np.array([[1.0, 0.0], [-2.0, 0.0]]))
    assert opposite.mean_cosine == pytest.approx(-1.0)


def test_circuit_angle_displacements_are_periodic():
    base = PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2, seed=0)
    a, b = (PatchQNN((4, 4), 2, n_qubits=2, n_layers=1, patch_size=2, stride=2, seed=0) for _ in range(2))
    with torch.no_grad():
        a.circuit_params.add_(0.1)
        b.circuit_params.add_(0.1 - 4 * math.pi)  # the same circuit as a
    result = mode_directedness([a, b], base)
    np.testing.assert_allclose(result.cosines, np.ones((2, 2)), atol=1e-12)
    np.testing.assert_allclose(result.norms, [0.1 * math.sqrt(base.n_params)] * 2, rtol=1e-9)


def test_zero_displacement_is_refused():
    with pytest.raises(ConfigError, match="non-zero"):
        directedness_of_vectors(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ConfigError, match="two"):
        directedness_of_vectors(np.array([[1.0, 0.0]]))
