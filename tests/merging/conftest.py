"""Small trained models for the merging tests."""

from __future__ import annotations

import pytest
import torch

from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.models.classical import CNN, MLP
from qlandscape.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    """Digits 0-2, 8x8, 120 training and 60 test images: (x_train, y_train, x_test, y_test)."""
    data = load_dataset("digits", classes=(0, 1, 2), max_train=120, max_test=60)
    return to_torch(data)


def trained(model, digits, *, seed=0, epochs=3):
    x, y, xt, yt = digits
    out, _ = train(model, x, y, xt, yt, TrainConfig(lr=0.02, epochs=epochs, batch_size=16, seed=seed))
    return out


@pytest.fixture(scope="module")
def trained_mlp(digits):
    return trained(MLP(digits[0].shape[1:], 3, width=12, depth=2, seed=0), digits)


@pytest.fixture(scope="module")
def trained_cnn(digits):
    return trained(CNN(digits[0].shape[1:], 3, channels=(4, 6), batch_norm=True, seed=0), digits)


__all__ = ["trained", "torch"]
