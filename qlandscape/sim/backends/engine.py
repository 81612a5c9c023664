"""Our engine as a backend: complex128 or complex64 state vectors, on the CPU or a CUDA device."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from qlandscape.core.errors import ConfigError
from qlandscape.sim.backends.base import DIFF_METHODS
from qlandscape.sim.circuits import Circuit
from qlandscape.sim.engine import parameter_work, shares_parameter_work, simulate, simulate_patch_mean

__all__ = ["ENGINE", "STATE_DTYPES", "resolve_device", "EngineBackend"]

ENGINE = "torch"
STATE_DTYPES = (torch.complex128, torch.complex64)
_DEVICE_NAMES = "expected 'cpu', 'cuda', 'cuda:N' or 'auto'"


def resolve_device(device: str) -> str:
    """A torch device name for our engine: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"auto"`` (CUDA when
    available, else the CPU). Unavailable devices fail here, before any work starts."""
    if not isinstance(device, str):
        raise ConfigError("device", device, _DEVICE_NAMES)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError("device", device, _DEVICE_NAMES) from None
    if parsed.type == "cpu":
        return "cpu"
    if parsed.type != "cuda":
        raise ConfigError("device", device, _DEVICE_NAMES)
    if not torch.cuda.is_available():
        raise ConfigError(
            "device",
            device,
            "CUDA is not available on this machine (torch.cuda.is_available() is False); use 'cpu' or 'auto'",
        )
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError("device", device, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(parsed)


@dataclass(frozen=True)
class EngineBackend:
    """Our batched torch state-vector engine (:mod:`qlandscape.sim.engine`).

    ``dtype``: the state dtype, complex128 (the default, what metrics use) or complex64 (faster training).
    ``device``: where the state vectors live (see :func:`resolve_device`; ``"auto"`` resolves on construction).
    Differentiated by autograd, to any order, and traceable by ``torch.func``.
    """

    dtype: torch.dtype = torch.complex128
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in STATE_DTYPES:
            raise ConfigError("dtype", self.dtype, "expected torch.complex128 or torch.complex64")
        object.__setattr__(self, "device", resolve_device(self.device))

    @property
    def name(self) -> str:
        return ENGINE

    @property
    def supports_torch_func(self) -> bool:
        return True

    @property
    def state_itemsize(self) -> int:
        return self.dtype.itemsize

    def expectations(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``(*K, B, P, n_outputs)`` expectations; ``dtype`` overrides this backend's state dtype for the call."""
        state_dtype = self.dtype if dtype is None else dtype
        return self._on_device(
            lambda p, f: simulate(circuit, p, f, scale=scale, dtype=state_dtype),
            params,
            features,
        )

    def patch_mean(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, n_outputs: int | None = None
    ) -> Tensor:
        """``(*K, B, n_outputs)``: the mean over patches of the first ``n_outputs`` expectations (all by default)."""
        return self._on_device(
            lambda p, f: simulate_patch_mean(circuit, p, f, scale=scale, dtype=self.dtype, n_outputs=n_outputs),
            params,
            features,
        )

    def shares_parameter_work(self, circuit: Circuit, n_samples: int, n_calls: int) -> bool:
        """Whether the parameter-only work done once pays for ``n_calls`` calls of ``n_samples`` samples
        (:func:`qlandscape.sim.engine.shares_parameter_work`)."""
        return shares_parameter_work(circuit, n_samples, n_calls)

    def parameter_work(self, circuit: Circuit, params: Tensor) -> tuple[Tensor, ...]:
        """The block plan's parameter-only work at ``params`` (:func:`qlandscape.sim.engine.parameter_work`), on
        the engine's device, in this backend's state dtype."""
        return parameter_work(circuit, params.to(torch.device(self.device)), dtype=self.dtype)

    def expectations_with_work(
        self, circuit: Circuit, params: Tensor, features: Tensor, work: tuple[Tensor, ...], scale: float = 1.0
    ) -> Tensor:
        """``(*K, B, P, n_outputs)`` expectations running the block plan with ``work`` done beforehand."""
        return self._on_device(
            lambda p, f: simulate(circuit, p, f, scale=scale, dtype=self.dtype, work=work),
            params,
            features,
        )

    def for_metrics(self) -> EngineBackend:
        """complex128 states: a model trained with complex64 keeps that engine dtype through ``.to(float64)``."""
        return self if self.dtype == torch.complex128 else dataclasses.replace(self, dtype=torch.complex128)

    def for_second_derivatives(self, method: str) -> EngineBackend:
        """This backend: autograd differentiates the engine exactly, to any order, whatever ``method`` says."""
        return self

    def with_diff_method(self, diff_method: str) -> EngineBackend:
        """This backend: the engine differentiates by autograd, exact for every method PennyLane offers."""
        if diff_method not in DIFF_METHODS:
            raise ConfigError("diff_method", diff_method, f"expected one of {DIFF_METHODS}")
        return self

    def _on_device(self, run: Callable[[Tensor, Tensor], Tensor], params: Tensor, features: Tensor) -> Tensor:
        """``run(params, features)`` on the engine's device, the result back on the caller's (differentiable
        moves; ``.to()`` is a no-op, the same tensor, when already there)."""
        target = torch.device(self.device)
        return run(params.to(target), features.to(target)).to(params.device)
