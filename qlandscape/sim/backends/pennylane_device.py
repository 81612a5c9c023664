"""PennyLane devices as a backend: a QNode built from the very gate list our engine runs.

The only module that imports PennyLane, and only when a QNode is built: ``import qlandscape`` does not load it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import torch
from torch import Tensor

from qlandscape.core.dtypes import default_dtype
from qlandscape.core.errors import ConfigError
from qlandscape.sim.backends.base import DIFF_METHODS
from qlandscape.sim.circuits import Circuit
from qlandscape.sim.gates import entangler, rotation

__all__ = ["MODES", "pennylane_devices", "PennyLaneBackend"]

MODES = ("broadcast", "loop")
# Devices whose QNodes differentiate by backprop; others use adjoint (first order) or parameter shift.
_BACKPROP = {"default.qubit"}
# PennyLane's devices simulate float64 parameters with complex128 amplitudes.
_ITEMSIZE = torch.complex128.itemsize

QNode = Callable[[Tensor, Tensor], Any]


@lru_cache(maxsize=1)
def pennylane_devices() -> tuple[str, ...]:
    """Names of the PennyLane devices installed here (their plugins' entry points); empty when the metadata
    cannot be read."""
    try:
        return tuple(sorted({ep.name for ep in entry_points(group="pennylane.plugins")}))
    except Exception:  # pragma: no cover - a metadata lookup failure just hides the list
        return ()


@dataclass(frozen=True)
class PennyLaneBackend:
    """A PennyLane device by name (``"default.qubit"``, ``"lightning.qubit"``, ...), on the CPU.

    ``diff_method``: how its QNodes are differentiated (:data:`DIFF_METHODS`; ``"best"``: backprop on
    default.qubit, adjoint elsewhere). ``mode``: ``"broadcast"`` runs samples and patches as one broadcast
    circuit, ``"loop"`` one QNode call per patch. QNodes cannot be traced by ``torch.func``; PennyLane simulates
    in the precision of the parameters.
    """

    name: str
    diff_method: str = "best"
    mode: str = "broadcast"

    def __post_init__(self) -> None:
        if self.name not in pennylane_devices():
            raise ConfigError("backend", self.name, f"expected a PennyLane device among {list(pennylane_devices())}")
        if self.diff_method not in DIFF_METHODS:
            raise ConfigError("diff_method", self.diff_method, f"expected one of {DIFF_METHODS}")
        if self.mode not in MODES:
            raise ConfigError("mode", self.mode, "expected 'broadcast' or 'loop'")

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def supports_torch_func(self) -> bool:
        return False

    @property
    def state_itemsize(self) -> int:
        return _ITEMSIZE

    def resolved_diff_method(self) -> str:
        """The method the QNodes use: ``diff_method``, or for ``"best"`` backprop where the device supports it,
        else adjoint."""
        if self.diff_method != "best":
            return self.diff_method
        return "backprop" if self.name in _BACKPROP else "adjoint"

    def expectations(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``(B, P, n_outputs)`` expectations for one parameter point ``(P, n_params)`` and features ``(B, P, F)``;
        ``dtype`` is our engine's setting: PennyLane simulates in the precision of ``params``."""
        if params.ndim != 2:
            raise ConfigError(
                "params", tuple(params.shape), "PennyLane backends take one parameter point (P, n_params)"
            )
        qnode = _qnode(circuit, self.name, self.resolved_diff_method(), float(scale))
        # PennyLane's torch interface turns some devices' float results into tensors of torch's default dtype
        # (float32 unless set): the parameters' precision is set as the default for the call.
        with default_dtype(params.dtype if params.is_floating_point() else torch.float64):
            return _run_qnode(qnode, circuit, params, features, self.mode)

    def patch_mean(
        self, circuit: Circuit, params: Tensor, features: Tensor, scale: float = 1.0, n_outputs: int | None = None
    ) -> Tensor:
        """``(B, n_outputs)``: the mean over patches of the first ``n_outputs`` expectations (all by default)."""
        out = self.expectations(circuit, params, features, scale)
        return out[..., : circuit.n_outputs if n_outputs is None else n_outputs].mean(dim=-2)

    def shares_parameter_work(self, circuit: Circuit, n_samples: int, n_calls: int) -> bool:
        """False: a PennyLane device runs every circuit gate by gate."""
        return False

    def parameter_work(self, circuit: Circuit, params: Tensor) -> tuple[Tensor, ...]:
        """None to build: a PennyLane device runs every circuit gate by gate."""
        return ()

    def expectations_with_work(
        self, circuit: Circuit, params: Tensor, features: Tensor, work: tuple[Tensor, ...], scale: float = 1.0
    ) -> Tensor:
        """:meth:`expectations`; ``work`` must be empty, what :meth:`parameter_work` gives."""
        if work:
            raise ConfigError("work", len(work), "a PennyLane backend does no parameter-only work")
        return self.expectations(circuit, params, features, scale)

    def for_metrics(self) -> PennyLaneBackend:
        """This backend: PennyLane's precision follows the parameters, which metrics give in float64."""
        return self

    def for_second_derivatives(self, method: str) -> PennyLaneBackend:
        """``"parameter-shift"`` asks for shift rules; a device that differentiates by adjoint (first order only;
        it can return an incomplete Hessian without an error) gets them whatever ``method`` says."""
        if method == "parameter-shift" or self.resolved_diff_method() == "adjoint":
            return self.with_diff_method("parameter-shift")
        return self

    def with_diff_method(self, diff_method: str) -> PennyLaneBackend:
        """A copy whose QNodes differentiate by ``diff_method``."""
        return dataclasses.replace(self, diff_method=diff_method)


@lru_cache(maxsize=32)
def _qnode(circuit: Circuit, device: str, diff_method: str, scale: float) -> QNode:
    import pennylane as qml  # noqa: PLC0415 (optional at import time: loaded only when a PennyLane backend runs)

    dev = qml.device(device, wires=circuit.n_qubits)
    # each gate's PennyLane operation, from the gate table, once per QNode
    ops = [getattr(qml, (entangler(g.name) if g.source is None else rotation(g.name)).pennylane) for g in circuit.gates]
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    kwargs = {"max_diff": 2} if diff_method in ("parameter-shift", "finite-diff") else {}

    def run(params: Tensor, features: Tensor) -> list[Any]:
        for op, gate in zip(ops, circuit.gates, strict=True):
            if gate.source == "param":
                op(params[..., gate.index], wires=gate.wires[0])
            elif gate.source == "feature":
                op(scale * features[..., gate.index], wires=gate.wires[0])
            else:
                op(wires=list(gate.wires))
        return [qml.expval(paulis[p](w)) for p, w in circuit.observables]

    qnode: QNode = qml.QNode(run, dev, interface="torch", diff_method=diff_method, **kwargs)
    if kwargs:
        # Shift rules cannot differentiate broadcast parameters: split the broadcast into single circuits first.
        qnode = qml.transforms.broadcast_expand(qnode)
    return qnode


def _run_qnode(qnode: QNode, circuit: Circuit, params: Tensor, features: Tensor, mode: str) -> Tensor:
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
