"""The :class:`Backend` protocol: what PatchQNN, the Objective and the metrics ask of the thing that runs a circuit.

Each implementation owns its differences (dtypes, devices, differentiation methods) as methods; callers never ask
which backend they hold.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from qlandscape.sim.circuits import Circuit

__all__ = ["DIFF_METHODS", "Backend"]

# How a PennyLane QNode is differentiated ("best": backprop where the device supports it, else adjoint).
DIFF_METHODS = ("best", "backprop", "adjoint", "parameter-shift", "finite-diff")


@runtime_checkable
class Backend(Protocol):
    """Where a circuit runs: our engine (:class:`~qlandscape.sim.backends.engine.EngineBackend`) or a PennyLane
    device (:class:`~qlandscape.sim.backends.pennylane_device.PennyLaneBackend`)."""

    @property
    def name(self) -> str:
        """``"torch"`` for our engine, else the PennyLane device's name."""
        ...

    @property
    def device(self) -> str:
        """The torch device the state vectors live on (``"cpu"``, ``"cuda:0"``, ...)."""
        ...

    @property
    def supports_torch_func(self) -> bool:
        """Whether ``torch.func`` transforms (vmap, jacrev, hessian) can trace the simulation."""
        ...

    @property
    def state_itemsize(self) -> int:
        """Bytes per state-vector amplitude (what sizes groups of parameter points)."""
        ...

    def expectations(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``(*K, B, P, n_outputs)`` expectations for params ``(*K, P, n_params)`` and features ``(B, P, F)``;
        ``dtype`` asks for a state dtype where the backend lets its caller choose (metrics ask for complex128)."""
        ...

    def patch_mean(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, n_outputs: int | None = None
    ) -> Tensor:
        """``(*K, B, n_outputs)``: the mean over patches of the first ``n_outputs`` expectations (all by default)."""
        ...

    def shares_parameter_work(self, circuit: Circuit, n_samples: int, n_calls: int) -> bool:
        """Whether doing the parameter-only work once (:meth:`parameter_work`) for ``n_calls`` calls on
        ``n_samples`` samples each pays (the chunks of an evaluation set at one parameter point)."""
        ...

    def parameter_work(self, circuit: Circuit, params: Tensor) -> tuple[Tensor, ...]:
        """One parameter point's parameter-only work (our engine: a state and unitaries), done once for many
        calls of :meth:`expectations_with_work`; empty where the backend has none."""
        ...

    def expectations_with_work(
        self, circuit: Circuit, params: Tensor, features: Tensor, work: tuple[Tensor, ...], scale: float = 1.0
    ) -> Tensor:
        """:meth:`expectations` with the parameter-only work from :meth:`parameter_work` at ``params``."""
        ...

    def for_metrics(self) -> Backend:
        """This backend in the precision metrics are computed in."""
        ...

    def for_second_derivatives(self, method: str) -> Backend:
        """The backend to differentiate twice; ``method`` ``"autograd"`` or ``"parameter-shift"``."""
        ...

    def with_diff_method(self, diff_method: str) -> Backend:
        """This backend differentiating its circuits by ``diff_method`` (one of :data:`DIFF_METHODS`)."""
        ...
