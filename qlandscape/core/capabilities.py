"""What a model may offer beyond ``nn.Module``, as typing protocols that the Objective and the metrics test with
``isinstance``; a plain ``nn.Module`` offers none of them and gets the generic path.

The protocols are structural: a model offers a capability by having the methods, without inheriting from anything
here, so the layers below (``sim``) and above (``models``) never import each other through this module.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class TransformAware(Protocol):
    """A model that says whether ``torch.func`` transforms can trace it (PennyLane QNodes cannot); models without
    this attribute are assumed to compose with ``torch.func``."""

    @property
    def supports_torch_func(self) -> bool: ...


@runtime_checkable
class PointBatched(Protocol):
    """A model that evaluates many parameter points in one call (a landscape grid), sharing per-call work such as
    encoding the data, and estimates the state memory one point costs."""

    def forward_points(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Outputs ``(K, B, C)`` at K points: ``params`` named like ``named_parameters()`` with a leading K."""
        ...

    def point_state_bytes(self, n_samples: int) -> int:
        """Bytes of simulator state one parameter point costs on ``n_samples`` inputs."""
        ...


@runtime_checkable
class PrecisionSelectable(Protocol):
    """A model whose simulation precision is a setting of its own, not of its parameters' dtype (a QNN trained
    with complex64 states keeps them through ``.to(float64)``)."""

    def use_metric_precision(self) -> None:
        """Switch this model, in place, to the precision metrics are computed in (complex128 states)."""
        ...


@runtime_checkable
class SecondOrderSelectable(Protocol):
    """A model that chooses how its outputs are differentiated twice (a PennyLane device's adjoint method is first
    order only and can return an incomplete Hessian without an error)."""

    def for_second_derivatives(self, method: str) -> nn.Module:
        """The model to differentiate twice: ``method`` ``"autograd"`` keeps its own differentiation where that
        supports second derivatives, ``"parameter-shift"`` asks for shift rules."""
        ...
