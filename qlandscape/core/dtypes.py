"""torch's default dtype, set for the duration of a computation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["default_dtype"]


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype.

    PennyLane's torch interface turns some devices' (lightning's) Python-float results into tensors of torch's
    default dtype, in the forward pass and again when it differentiates (parameter-shift circuits run inside
    autograd's backward), which would silently give float32 numbers for float64 parameters. The Objective and the
    training loop wrap forward and backward passes in this, for every model: it costs nothing elsewhere.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
