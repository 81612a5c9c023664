"""Backend registry: ``"torch"`` (our engine) or any PennyLane device by name, all running the same circuit.

A PennyLane backend builds a QNode from the very gate list our engine runs, so every backend computes the same
function. Samples and patches go through PennyLane's parameter broadcasting (one broadcast circuit of B*P
executions, mode ``"broadcast"``) or one QNode call per patch (mode ``"loop"``).

Our engine can run its circuits on another torch device (``device="cuda"``): parameters and features are moved
there, the state vectors live there, and the expectations come back to the caller's device. The moves are
differentiable, so the model, its loss and every metric stay where they are and only the simulation moves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from qlandscape.core.dtypes import default_dtype
from qlandscape.core.errors import ConfigError
from qlandscape.sim.circuits import Circuit
from qlandscape.sim.engine import simulate, simulate_patch_mean
from qlandscape.sim.gates import entangler, rotation

ENGINE = "torch"
# Devices whose QNodes differentiate by backprop; others use adjoint (first order) or parameter shift.
_BACKPROP = {"default.qubit"}
DIFF_METHODS = ("best", "backprop", "adjoint", "parameter-shift", "finite-diff")


@dataclass(frozen=True)
class Backend:
    """Where a circuit runs: our engine or a PennyLane device, with the differentiation method to use."""

    name: str = ENGINE
    diff_method: str = "best"
    mode: str = "broadcast"
    dtype: torch.dtype = torch.complex128
    device: str = "cpu"  # where our engine's state vectors live (see resolve_device)

    @property
    def is_engine(self) -> bool:
        return self.name == ENGINE

    @property
    def supports_torch_func(self) -> bool:
        """PennyLane QNodes cannot be traced by torch.func transforms; our engine can."""
        return self.is_engine

    def resolved_diff_method(self) -> str:
        if self.diff_method != "best":
            return self.diff_method
        return "backprop" if self.name in _BACKPROP else "adjoint"

    def for_metrics(self) -> Backend:
        """This backend in the precision metrics are computed in: our engine with complex128 states (a model trained
        with complex64 keeps that engine dtype through ``.to(float64)``); PennyLane devices as they are."""
        if self.is_engine and self.dtype != torch.complex128:
            return dataclasses.replace(self, dtype=torch.complex128)
        return self

    def for_second_derivatives(self, method: str) -> Backend:
        """The backend to differentiate twice: ``"parameter-shift"`` asks for shift rules on a PennyLane device, and
        a device that differentiates by adjoint (first order only; it can return an incomplete Hessian without an
        error) gets them whatever ``method`` says. Our engine differentiates by autograd either way."""
        if self.is_engine:
            return self
        if method == "parameter-shift" or self.resolved_diff_method() == "adjoint":
            return dataclasses.replace(self, diff_method="parameter-shift")
        return self

    def expectations(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``(*K, B, P, n_outputs)`` expectations for params ``(*K, P, n_params)`` and features ``(B, P, F)``;
        ``dtype`` overrides the engine's state dtype (metrics ask for complex128 whatever training used)."""
        if self.is_engine:
            return self._on_device(
                lambda p, f: simulate(circuit, p, f, scale=scale, dtype=self.dtype if dtype is None else dtype),
                params,
                features,
            )
        return _pennylane_expectations(self, circuit, params, features, scale)

    def patch_mean(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, n_outputs: int | None = None
    ) -> Tensor:
        """``(*K, B, n_outputs)``: the mean over patches of the first ``n_outputs`` expectations (all by default)."""
        if self.is_engine:
            return self._on_device(
                lambda p, f: simulate_patch_mean(circuit, p, f, scale=scale, dtype=self.dtype, n_outputs=n_outputs),
                params,
                features,
            )
        out = _pennylane_expectations(self, circuit, params, features, scale)
        return out[..., : circuit.n_outputs if n_outputs is None else n_outputs].mean(dim=-2)

    def _on_device(self, run, params: Tensor, features: Tensor) -> Tensor:
        """``run(params, features)`` on the engine's device, the result back on the caller's (differentiable
        moves; ``.to()`` is a no-op, the same tensor, when already there)."""
        target = torch.device(self.device)
        return run(params.to(target), features.to(target)).to(params.device)


def available_devices() -> list[str]:
    """PennyLane device names installed here (plus our engine, ``"torch"``)."""
    names = [ENGINE]
    try:
        from importlib.metadata import entry_points

        names += sorted({ep.name for ep in entry_points(group="pennylane.plugins")})
    except Exception:  # pragma: no cover - metadata lookup failure just hides the list
        pass
    return names


def resolve_device(device: str) -> str:
    """A torch device name for our engine: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"auto"`` (CUDA when
    available, else the CPU). Unavailable devices fail here, before any work starts."""
    if not isinstance(device, str):
        raise ConfigError("device", device, "expected 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError("device", device, "expected 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if parsed.type == "cpu":
        return "cpu"
    if parsed.type != "cuda":
        raise ConfigError("device", device, "expected 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if not torch.cuda.is_available():
        raise ConfigError(
            "device",
            device,
            "CUDA is not available on this machine (torch.cuda.is_available() is False); use 'cpu' or 'auto'",
        )
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError("device", device, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(parsed)


def make_backend(
    name: str = ENGINE,
    *,
    diff_method: str = "best",
    mode: str = "broadcast",
    dtype: torch.dtype = torch.complex128,
    device: str = "cpu",
) -> Backend:
    """Validate a backend name (``"torch"`` or a PennyLane device) and its settings before any work starts."""
    devices = available_devices()
    if name not in devices:
        raise ConfigError("backend", name, f"expected one of {devices}")
    if diff_method not in DIFF_METHODS:
        raise ConfigError("diff_method", diff_method, f"expected one of {DIFF_METHODS}")
    if mode not in ("broadcast", "loop"):
        raise ConfigError("mode", mode, "expected 'broadcast' or 'loop'")
    if name == ENGINE and diff_method not in ("best", "backprop"):
        raise ConfigError("diff_method", diff_method, "our engine differentiates by autograd: use 'best'")
    device = resolve_device(device)
    if name != ENGINE and device != "cpu":
        raise ConfigError(
            "device", device, f"PennyLane's {name} runs on the CPU here; the device option moves our 'torch' engine"
        )
    return Backend(name=name, diff_method=diff_method, mode=mode, dtype=dtype, device=device)


@lru_cache(maxsize=32)
def _qnode(circuit: Circuit, device: str, diff_method: str, scale: float):
    import pennylane as qml

    dev = qml.device(device, wires=circuit.n_qubits)
    # each gate's PennyLane operation, from the gate table, once per QNode
    ops = [getattr(qml, (entangler(g.name) if g.source is None else rotation(g.name)).pennylane) for g in circuit.gates]
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    kwargs = {"max_diff": 2} if diff_method in ("parameter-shift", "finite-diff") else {}

    @qml.qnode(dev, interface="torch", diff_method=diff_method, **kwargs)
    def run(params: Tensor, features: Tensor):
        for op, gate in zip(ops, circuit.gates, strict=True):
            if gate.source == "param":
                op(params[..., gate.index], wires=gate.wires[0])
            elif gate.source == "feature":
                op(scale * features[..., gate.index], wires=gate.wires[0])
            else:
                op(wires=list(gate.wires))
        return [qml.expval(paulis[p](w)) for p, w in circuit.observables]

    if kwargs:
        # Shift rules cannot differentiate broadcast parameters: split the broadcast into single circuits first.
        return qml.transforms.broadcast_expand(run)
    return run


def _pennylane_expectations(
    backend: Backend, circuit: Circuit, params: Tensor, features: Tensor, scale: float
) -> Tensor:
    if params.ndim != 2:
        raise ConfigError("params", tuple(params.shape), "PennyLane backends take one parameter point (P, n_params)")
    qnode = _qnode(circuit, backend.name, backend.resolved_diff_method(), float(scale))
    with default_dtype(params.dtype if params.is_floating_point() else torch.float64):
        return _run_qnode(qnode, circuit, params, features, backend.mode)


def _run_qnode(qnode, circuit: Circuit, params: Tensor, features: Tensor, mode: str) -> Tensor:
    n_samples, n_patches = features.shape[:2]
    if mode == "loop":
        per_patch = [
            torch.stack(list(qnode(params[p].expand(n_samples, -1), features[:, p])), -1) for p in range(n_patches)
        ]
        return torch.stack(per_patch, dim=1)
    flat_params = params.unsqueeze(0).expand(n_samples, -1, -1).reshape(n_samples * n_patches, -1)
    flat_features = features.reshape(n_samples * n_patches, -1)
    out = torch.stack(list(qnode(flat_params, flat_features)), -1)
    return out.reshape(n_samples, n_patches, circuit.n_outputs)
