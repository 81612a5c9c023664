"""Backends by name: ``"torch"`` for our engine, any installed PennyLane device's name for that device."""

from __future__ import annotations

import torch

from qlandscape.core.errors import ConfigError
from qlandscape.sim.backends.base import DIFF_METHODS, Backend
from qlandscape.sim.backends.engine import ENGINE, EngineBackend, resolve_device
from qlandscape.sim.backends.pennylane_device import MODES, PennyLaneBackend, pennylane_devices

__all__ = ["available_devices", "make_backend"]


def available_devices() -> list[str]:
    """Backend names available here: our engine, ``"torch"``, then the installed PennyLane devices."""
    return [ENGINE, *pennylane_devices()]


def make_backend(
    name: str = ENGINE,
    *,
    diff_method: str = "best",
    mode: str = "broadcast",
    dtype: torch.dtype = torch.complex128,
    device: str = "cpu",
) -> Backend:
    """Validate a backend name (``"torch"`` or a PennyLane device) and its settings before any work starts.

    ``dtype`` and ``device`` are our engine's (state dtype, where its states live); ``diff_method`` and ``mode``
    a PennyLane device's. A setting the named backend does not have is an error, not ignored.
    """
    devices = available_devices()
    if name not in devices:
        raise ConfigError("backend", name, f"expected one of {devices}")
    if diff_method not in DIFF_METHODS:
        raise ConfigError("diff_method", diff_method, f"expected one of {DIFF_METHODS}")
    if mode not in MODES:
        raise ConfigError("mode", mode, "expected 'broadcast' or 'loop'")
    if name == ENGINE:
        if diff_method not in ("best", "backprop"):
            raise ConfigError("diff_method", diff_method, "our engine differentiates by autograd: use 'best'")
        if mode != "broadcast":
            raise ConfigError(
                "mode", mode, "our engine runs all samples and patches in one batched call: use 'broadcast'"
            )
        return EngineBackend(dtype=dtype, device=device)
    device = resolve_device(device)
    if device != "cpu":
        raise ConfigError(
            "device", device, f"PennyLane's {name} runs on the CPU here; the device option moves our 'torch' engine"
        )
    if dtype != torch.complex128:
        raise ConfigError(
            "dtype",
            dtype,
            f"PennyLane's {name} simulates in the parameters' precision; dtype sets our 'torch' engine's",
        )
    return PennyLaneBackend(name=name, diff_method=diff_method, mode=mode)
