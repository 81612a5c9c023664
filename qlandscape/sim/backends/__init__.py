"""Backends: where a circuit runs. ``"torch"`` is our engine (:class:`EngineBackend`), any other name a PennyLane
device (:class:`PennyLaneBackend`); both run the very same compiled circuit, so every backend computes the same
function, and both offer the :class:`Backend` protocol that PatchQNN, the Objective and the metrics use.

Our engine can run its circuits on another torch device (``device="cuda"``): parameters and features are moved
there, the state vectors live there, and the expectations come back to the caller's device. The moves are
differentiable, so the model, its loss and every metric stay where they are and only the simulation moves.
A PennyLane backend runs samples and patches through PennyLane's parameter broadcasting (one broadcast circuit of
B*P executions, mode ``"broadcast"``) or one QNode call per patch (mode ``"loop"``).
"""

from qlandscape.sim.backends.base import DIFF_METHODS, Backend
from qlandscape.sim.backends.engine import ENGINE, EngineBackend, resolve_device
from qlandscape.sim.backends.pennylane_device import MODES, PennyLaneBackend
from qlandscape.sim.backends.registry import available_devices, make_backend

__all__ = [
    "DIFF_METHODS",
    "ENGINE",
    "MODES",
    "Backend",
    "EngineBackend",
    "PennyLaneBackend",
    "available_devices",
    "make_backend",
    "resolve_device",
]
