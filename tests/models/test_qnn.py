"""PatchQNN construction and inputs: bad settings and bad image shapes are ConfigErrors naming the field."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.models.qnn import PatchQNN


def test_linear_head_with_no_readout_is_a_config_error():
    with pytest.raises(ConfigError, match="measure_qubits"):  # ZeroDivisionError before
        PatchQNN((8, 8), 2, aggregation="linear", measure_qubits=[])


def test_numpy_integer_sizes_are_accepted():
    model = PatchQNN((8, 8), np.int64(2), n_qubits=4, n_layers=1, seed=np.int64(3))
    assert torch.equal(model.circuit_params, PatchQNN((8, 8), 2, n_qubits=4, n_layers=1, seed=3).circuit_params)


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"encoding_scale": float("nan")}, "encoding_scale"),
        ({"encoding_scale": math.inf}, "encoding_scale"),
        ({"output_scale": "5"}, "output_scale"),
    ],
)
def test_patch_qnn_scales_are_validated(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        PatchQNN((8, 8), 2, **kwargs)


def test_patch_qnn_rejects_a_single_unbatched_image_by_shape():
    model = PatchQNN((8, 8), 2)
    with pytest.raises(ConfigError, match=r"images shape = \(8, 8\)"):
        model(torch.rand(8, 8, dtype=torch.float64))
    x = torch.rand(3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(model(x.unsqueeze(1)), model(x), rtol=0, atol=0)  # one channel still works
