"""What a model may offer beyond ``nn.Module``, as typing protocols that the Objective and the metrics test with
``isinstance``; a plain ``nn.Module`` offers none of them and gets the generic path.

The protocols are structural: a model offers a capability by having the methods, without inheriting from anything
here, so the layers below (``sim``) and above (``models``) never import each other through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = [
    "TransformAware",
    "PointBatched",
    "PrecisionSelectable",
    "SecondOrderSelectable",
    "PatchLayout",
    "PatchStructured",
    "ParameterWorkShared",
]


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


@dataclass(frozen=True)
class PatchLayout:
    """Where a patch model keeps its parameters, by their names in ``named_parameters()``.

    ``circuit``: one ``(N, n)`` tensor whose row k is patch k's circuit parameters; ``position_bias``: a tensor
    added to every input before the patches are cut (shared by all patches), or None; ``head_weight`` ``(C, O)``
    and ``head_bias`` ``(C,)``: a linear head on the patch mean, or None for a fixed readout.
    """

    circuit: str
    position_bias: str | None = None
    head_weight: str | None = None
    head_bias: str | None = None


@runtime_checkable
class PatchStructured(Protocol):
    """A model whose logits are a readout of the mean over N patches of per-patch outputs: patch k's O outputs
    depend on its own row of the circuit parameters and, through a feature map shared by all patches, on the input
    plus an optional positional bias; the readout is a fixed ``(C, O)`` matrix or a linear head. This is what the
    per-patch assembly of the exact Hessian (``qlandscape.metrics.curvature.structured``) needs: its cost then
    grows like N times one patch's Hessian. The assembly differentiates :meth:`evaluate_patches` with
    ``torch.func``, so it also needs a model that composes with it (:class:`TransformAware`)."""

    @property
    def n_patches(self) -> int:
        """N, the number of patches (and of circuit-parameter rows)."""
        ...

    @property
    def n_classes(self) -> int:
        """C, the number of logits."""
        ...

    def patch_layout(self) -> PatchLayout:
        """The names of the circuit parameters, the positional bias and the head's weight and bias."""
        ...

    def fixed_readout(self) -> Tensor | None:
        """The ``(C, O)`` float64 matrix A of a parameter-free readout, logits = A · (patch mean); None when a
        linear head (the parameters named by :meth:`patch_layout`) maps the patch mean to logits."""
        ...

    def evaluate_patches(self, circuit_params: Tensor, position_bias: Tensor | None, x: Tensor) -> Tensor:
        """The outputs ``(B, N, O)`` of every patch on inputs ``x`` at the given circuit parameters ``(N, n)``
        and positional bias (flattened, or None where the model has none), in the model's current precision."""
        ...


@runtime_checkable
class ParameterWorkShared(Protocol):
    """A model whose parameter-only work (PatchQNN on our engine: the unitaries of the circuit's parameter-only
    blocks) can be done once per parameter point and reused for every chunk of an evaluation set.

    The Objective then differentiates in two levels (:mod:`qlandscape.core.shared_work`): per chunk with respect
    to the parameters and the work's tensors, accumulated, then once through :meth:`parameter_work`. All three
    methods take the parameters by name, like ``named_parameters()``, so ``torch.func`` can differentiate them.
    """

    def shares_parameter_work(self, n_samples: int, n_chunks: int) -> bool:
        """Whether doing the work once pays for ``n_chunks`` chunks of ``n_samples`` samples."""
        ...

    def parameter_work(self, params: dict[str, Tensor]) -> tuple[Tensor, ...]:
        """The parameter-only tensors at ``params`` (differentiable in them)."""
        ...

    def forward_with_work(self, params: dict[str, Tensor], work: tuple[Tensor, ...], x: Tensor) -> Tensor:
        """The model's outputs on ``x`` at ``params`` given ``work = parameter_work(params)``; differentiable in
        both, and equal to ``forward`` with ``params``."""
        ...
