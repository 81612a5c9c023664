"""Shared fixtures: small float64 problems that every test file can use."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

# Small float64 problems run fastest on one thread, and CI machines are shared: no oversubscription.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fixed_seeds():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (code under test may draw from numpy's global generator: keep it seeded)
    yield


@pytest.fixture
def tiny_images():
    """Eight random 6x6 'images' with angles in [0, pi] and binary labels."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 6, 6, generator=g, dtype=torch.float64) * np.pi
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    return x, y
