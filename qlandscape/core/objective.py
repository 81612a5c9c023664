"""The Objective: a model, a fixed evaluation set and a loss, seen as a function of one flat float64 vector.

Every metric in qlandscape takes an :class:`Objective`, so quantum and classical models share all metric code.
The caller's model is never mutated: the Objective keeps its own float64 copy in evaluation mode and evaluates
it at other parameters through :func:`torch.func.functional_call`.

Two differentiation paths:

* ``torch.func`` (our engine, any plain ``nn.Module``): ``grad``, forward-over-reverse ``hvp``, ``hessian``.
* plain autograd (PennyLane QNodes, which do not compose with ``torch.func``): double backward; on devices without
  backprop the QNode differentiates by parameter shift, so the Hessian is the hardware-faithful one.

Large evaluation sets are processed in chunks and accumulated, so memory stays flat: each computation (loss,
gradient, HVP, dense Hessian, Jacobian) takes chunks as large as its estimated peak allows within the memory
budget (:mod:`qlandscape.core.chunking`, :mod:`qlandscape.core.memory`), at most ``chunk_size`` samples.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from qlandscape.core.capabilities import (
    ParameterWorkShared,
    PointBatched,
    PrecisionSelectable,
    SecondOrderSelectable,
    TransformAware,
)
from qlandscape.core.chunking import ChunkPlan, Footprint, measure_footprint, plan_chunks
from qlandscape.core.dtypes import default_dtype
from qlandscape.core.errors import ConfigError, check_choice, check_positive_int
from qlandscape.core.losses import LossFn, loss_name, loss_targets, per_point_losses, resolve_loss
from qlandscape.core.memory import BUDGET_ENV, SizeError, memory_budget
from qlandscape.core.shared_work import SharedWork

# what a SizeError calls a chunked computation (the others read as their kind: loss, grad, hvp, jacobian)
_KIND_NAMES = {"hessian": "dense Hessian", "structured": "structured Hessian"}

__all__ = [
    "POINTS_STATE_BYTES",
    "MAX_POINTS_PER_CALL",
    "DEFAULT_POINTS_PER_CALL",
    "uses_torch_func",
    "Objective",
    "check_finite_loss",
]

# losses() groups as many parameter points per forward_points call as keep about this much state memory (with the
# engine's temporaries counted as 3 more states), up to MAX_POINTS_PER_CALL: per-call work (encoding, building
# the blocks) is shared by the group, so larger groups are faster (benchmarks/perf: 51x51 demo grid 1.15x from
# 64 to ~250 points) while an 8-qubit model stays at a few hundred MB.
POINTS_STATE_BYTES = 2**28
MAX_POINTS_PER_CALL = 1024
DEFAULT_POINTS_PER_CALL = 64  # models without a state-size estimate


def _float64_defaults(method: Callable[..., Any]) -> Callable[..., Any]:
    # Backward passes of PennyLane devices run inside these methods; see qlandscape.core.dtypes.
    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with default_dtype(torch.float64):
            return method(*args, **kwargs)

    return wrapped


def uses_torch_func(model: nn.Module) -> bool:
    """Whether ``model`` composes with ``torch.func`` transforms (PennyLane QNodes do not)."""
    return model.supports_torch_func if isinstance(model, TransformAware) else True


class Objective:
    """Mean loss of ``model`` over the evaluation set ``(x, y)`` as a function of a flat float64 vector θ.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to outputs (class logits). It is copied, not changed.
        x, y: the fixed evaluation set (the whole training set by default in the metrics).
        loss: ``"cross_entropy"``, ``"mse"`` (on one-hot targets) or a callable ``(outputs, y) -> mean loss``.
            The built-in losses take integer class labels; a callable gets real-valued ``y`` as float64.
        chunk_size: evaluate and differentiate in chunks of at most this many samples (None: as many as the memory
            budget allows, up to all of them).
        train_mode: evaluate with ``model.train()`` semantics (dropout on, batch-norm batch statistics). Default
            off: metrics see the network in eval mode, with batch-norm running statistics as recorded.
        hessian_method: how a model without ``torch.func`` support is differentiated twice:
            ``"autograd"`` (double backward through the model) or ``"parameter-shift"`` (ask the model for a
            parameter-shift differentiable copy; PennyLane backends support it). Devices that differentiate by
            adjoint (``lightning.qubit``) always use parameter shift for second derivatives.
        progress: show a progress bar over the chunks of every evaluation (large evaluation sets).
        memory_budget: bytes (or a size such as ``"2G"``) one computation of this Objective may take; None: the
            ``QLANDSCAPE_MEMORY_BUDGET`` environment variable, else half of the available memory
            (:func:`qlandscape.core.memory.memory_budget`). Chunk sizes are chosen to fit it; a computation whose
            smallest chunk (one sample) does not fit raises :class:`~qlandscape.core.memory.SizeError` before work.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        loss: str | LossFn = "cross_entropy",
        *,
        chunk_size: int | None = None,
        train_mode: bool = False,
        hessian_method: Literal["autograd", "parameter-shift"] = "autograd",
        progress: bool = False,
        memory_budget: int | str | None = None,
    ) -> None:
        x = torch.as_tensor(x)
        y = torch.as_tensor(y)
        if x.shape[0] == 0:
            raise ConfigError("evaluation set", tuple(x.shape), "expected at least one sample")
        if y.shape[0] != x.shape[0]:
            raise ConfigError("labels", tuple(y.shape), f"expected {x.shape[0]} labels, one per input")
        if chunk_size is not None:
            chunk_size = check_positive_int("chunk_size", chunk_size)
        check_choice("hessian_method", hessian_method, ("autograd", "parameter-shift"))
        _check_budget(memory_budget)
        self.model = copy.deepcopy(model).to(torch.float64)
        for module in self.model.modules():  # a QNN trained in complex64 keeps those states through .to(float64)
            if isinstance(module, PrecisionSelectable):
                module.use_metric_precision()
        self.model.train(train_mode)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.x = x.to(torch.float64) if x.is_floating_point() else x
        self.loss_fn = resolve_loss(loss)
        self.y = loss_targets(y, self.loss_fn)
        self.loss_name = loss_name(loss)
        self.chunk_size = chunk_size
        self.hessian_method = hessian_method
        self.progress = progress
        self.memory_budget = memory_budget
        self._footprint: Footprint | None = None
        self._plans: dict[tuple[Any, ...], ChunkPlan] = {}
        self.functorch = uses_torch_func(self.model)
        named = [(n, p) for n, p in self.model.named_parameters()]
        self.names: tuple[str, ...] = tuple(n for n, _ in named)
        self.shapes: tuple[torch.Size, ...] = tuple(p.shape for _, p in named)
        self.numels: tuple[int, ...] = tuple(p.numel() for _, p in named)
        self.buffers = {n: b for n, b in self.model.named_buffers()}
        self.theta0: Tensor = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        self.n_params = int(self.theta0.numel())

    # ----------------------------------------------------------------- layout
    def __repr__(self) -> str:
        return (
            f"Objective({type(self.model).__name__}, n_params={self.n_params}, n_samples={self.n_samples}, "
            f"loss={self.loss_name!r})"
        )

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])

    def with_data(self, x: Tensor, y: Tensor) -> Objective:
        """The same model and loss on another evaluation set (e.g. the test split)."""
        return Objective(
            self.model,
            x,
            y,
            self.loss_fn,
            chunk_size=self.chunk_size,
            train_mode=self.model.training,
            hessian_method=self.hessian_method,
            progress=self.progress,
            memory_budget=self.memory_budget,
        )

    def with_budget(self, budget: int | str | None) -> Objective:
        """This Objective (sharing its model copy and data) with another memory budget (None: the default)."""
        _check_budget(budget)
        other = copy.copy(self)
        other.memory_budget = budget
        other._plans = {}
        return other

    def footprint(self) -> Footprint:
        """The bytes a forward pass keeps for backward, measured once on two and four samples (on copies of the
        buffers, so that a batch-norm layer in training mode keeps its statistics)."""
        if self._footprint is None:

            def forward(t: Tensor, x: Tensor) -> Tensor:
                buffers = {n: b.clone() for n, b in self.buffers.items()}
                out: Tensor = functional_call(self.model, (self.unflatten(t), buffers), (x,))
                return out

            with default_dtype(torch.float64):
                self._footprint = measure_footprint(forward, self.theta0, self.x)
        return self._footprint

    def chunk_plan(
        self, kind: str = "loss", *, n_samples: int | None = None, passes: int = 1, limit: int | None = None
    ) -> ChunkPlan:
        """How a ``kind`` computation (:data:`qlandscape.core.chunking.CHUNK_KINDS`) over ``n_samples`` samples
        (default: the evaluation set) is chunked within the memory budget: at most ``limit`` (default
        ``chunk_size``) samples per chunk, ``passes`` forward passes at once. Raises
        :class:`~qlandscape.core.memory.SizeError` when one sample does not fit."""
        n = self.n_samples if n_samples is None else n_samples
        limit = self.chunk_size if limit is None else limit
        # Planned once per Objective (and environment setting): the default budget follows the available memory,
        # and chunks that changed between calls would change the order of the sums, hence the last bits.
        key = (kind, n, passes, limit, self.memory_budget, os.environ.get(BUDGET_ENV))
        if key not in self._plans:
            self._plans[key] = self._plan(kind, n, passes, limit)
        return self._plans[key]

    def _plan(self, kind: str, n: int, passes: int, limit: int | None) -> ChunkPlan:
        known = memory_budget(self.memory_budget)[0] is not None
        return plan_chunks(
            kind,
            self.footprint() if known else None,
            n_samples=n,
            n_params=self.n_params,
            passes=passes,
            limit=limit,
            budget=self.memory_budget,
            what=f"the {_KIND_NAMES.get(kind, kind)} of {type(self.model).__name__} ({self.n_params:,} parameters)",
        )

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into the model's named parameter tensors (views)."""
        parts = torch.split(theta, list(self.numels), dim=-1)
        lead = theta.shape[:-1]
        return {n: p.reshape(*lead, *s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def flatten(self, params: dict[str, Tensor]) -> Tensor:
        """Concatenate named parameter tensors into one flat vector, in the Objective's order."""
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def parameter_blocks(self) -> dict[str, slice]:
        """Where each named parameter lives in the flat vector."""
        out, start = {}, 0
        for n, k in zip(self.names, self.numels, strict=True):
            out[n] = slice(start, start + k)
            start += k
        return out

    def as_theta(self, theta: Tensor | Sequence[float] | None) -> Tensor:
        """Validate and convert a parameter vector (None: the model's own parameters)."""
        if theta is None:
            return self.theta0
        theta = torch.as_tensor(theta, dtype=torch.float64)
        if theta.shape != (self.n_params,):
            raise ConfigError("theta", tuple(theta.shape), f"expected a flat vector of shape ({self.n_params},)")
        if not torch.isfinite(theta).all():
            bad = int((~torch.isfinite(theta)).nonzero()[0, 0])
            raise ConfigError(f"theta[{bad}]", float(theta[bad]), "parameters must be finite")
        return theta

    def chunks(
        self, x: Tensor | None = None, y: Tensor | None = None, *, kind: str = "loss", size: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor, float]]:
        """Yield (x_chunk, y_chunk, weight) with weights summing to 1 over the evaluation set, in chunks sized for a
        ``kind`` computation by :meth:`chunk_plan` (or of ``size`` samples, planned by the caller)."""
        x = self.x if x is None else x
        y = self.y if y is None else y
        n = x.shape[0]
        size = self.chunk_plan(kind, n_samples=n).samples if size is None else size
        starts = range(0, n, size)
        for start in tqdm(
            starts, desc="chunks", unit="chunk", leave=False, disable=not self.progress or len(starts) < 2
        ):
            stop = min(n, start + size)
            yield x[start:stop], y[start:stop], (stop - start) / n

    def shared_work(self) -> SharedWork | None:
        """The two-level route (:mod:`qlandscape.core.shared_work`) when the model's parameter-only work, done once
        per parameter point, pays for this evaluation set's chunks; None otherwise (a model without it, or work
        that does not pay). :meth:`loss`, :meth:`grad`, :meth:`value_and_grad` and :meth:`hvp` take it when it is
        there."""
        if not (self.functorch and isinstance(self.model, ParameterWorkShared)):
            return None
        sizes = [int(xc.shape[0]) for xc, _, _ in self.chunks()]
        if not self.model.shares_parameter_work(max(sizes), len(sizes)):
            return None
        return SharedWork(self.model, self.unflatten, self.loss_fn, self.chunks)

    # ------------------------------------------------------------ evaluation
    def _outputs(self, theta: Tensor, x: Tensor) -> Tensor:
        out: Tensor = functional_call(self.model, (self.unflatten(theta), self.buffers), (x,))
        return out

    def _chunk_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(self._outputs(theta, x), y)

    def outputs(self, theta: Tensor | None = None, x: Tensor | None = None) -> Tensor:
        """Model outputs (logits) at θ for inputs ``x`` (default: the evaluation set), without gradients."""
        theta = self.as_theta(theta)
        x = self.x if x is None else torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            outs = [self._outputs(theta, xc) for xc, _, _ in self.chunks(x, torch.zeros(x.shape[0]))]
        return torch.cat(outs)

    def loss(self, theta: Tensor | None = None) -> Tensor:
        """Mean loss over the evaluation set at θ (a 0-d float64 tensor)."""
        theta = self.as_theta(theta)
        if (shared := self.shared_work()) is not None:
            return shared.loss(theta)
        with torch.no_grad():
            zero = torch.zeros((), dtype=torch.float64)
            return sum((w * self._chunk_loss(theta, xc, yc) for xc, yc, w in self.chunks()), zero)

    def error(self, theta: Tensor | None = None) -> float:
        """Fraction of misclassified samples at θ (argmax of the outputs); NaN for a model with one output per
        sample (a regression: no classes to confuse)."""
        outputs = self.outputs(theta)
        if outputs.ndim < 2:
            return float("nan")
        return float((outputs.argmax(-1) != self.y).double().mean())

    def accuracy(self, theta: Tensor | None = None) -> float:
        """Fraction of correctly classified samples at θ."""
        return 1.0 - self.error(theta)

    def points_per_call(self) -> int:
        """How many parameter points :meth:`losses` evaluates per model call by default: for a model that estimates
        its state memory per point (``PatchQNN.point_state_bytes``), as many as fit ``POINTS_STATE_BYTES`` with
        room for temporaries (1 to ``MAX_POINTS_PER_CALL``); else ``DEFAULT_POINTS_PER_CALL``."""
        if not (isinstance(self.model, PointBatched) and self.functorch):
            return DEFAULT_POINTS_PER_CALL
        plan = self.chunk_plan("loss")
        per_point = self.model.point_state_bytes(plan.samples)
        state_bytes = POINTS_STATE_BYTES if plan.budget is None else min(POINTS_STATE_BYTES, plan.budget)
        return max(1, min(MAX_POINTS_PER_CALL, state_bytes // max(1, 4 * per_point)))

    def losses(self, thetas: Tensor, *, batch: int | None = None) -> tuple[Tensor, Tensor]:
        """Loss and error at many parameter points: ``thetas`` (K, P) -> (losses (K,), errors (K,)).

        Models with a ``forward_points(params, x)`` method (PatchQNN on our engine) take each group of ``batch``
        points (default: :meth:`points_per_call`) in one call; other models that compose with ``torch.func`` go
        through ``vmap``; the rest loop.
        """
        batch = self.points_per_call() if batch is None else check_positive_int("batch", batch)
        thetas = torch.as_tensor(thetas, dtype=torch.float64)
        if thetas.ndim != 2 or thetas.shape[1] != self.n_params:
            raise ConfigError("thetas", tuple(thetas.shape), f"expected shape (K, {self.n_params})")
        losses = torch.zeros(thetas.shape[0], dtype=torch.float64)
        errors = torch.zeros(thetas.shape[0], dtype=torch.float64)
        batch, size = self._points_plan(min(batch, max(1, thetas.shape[0])))
        points_call = self.model.forward_points if isinstance(self.model, PointBatched) else None
        with torch.no_grad():
            for start in range(0, thetas.shape[0], batch):
                group = thetas[start : start + batch]
                for xc, yc, w in self.chunks(size=size):
                    if self.functorch and points_call is not None:
                        out = points_call(self.unflatten(group), xc)
                    elif self.functorch:
                        out = torch.func.vmap(self._outputs, in_dims=(0, None))(group, xc)
                    else:
                        out = torch.stack([self._outputs(t, xc) for t in group])
                    per_point = per_point_losses(self.loss_fn, out, yc)
                    losses[start : start + batch] += w * per_point
                    errors[start : start + batch] += w * (
                        (out.argmax(-1) != yc).double().mean(-1) if out.ndim == 3 else float("nan")
                    )  # one output per sample: no classes
        return losses, errors

    def _points_plan(self, batch: int) -> tuple[int, int]:
        # K points on m samples hold about K forward passes: fewer points per call when one sample with all of
        # them is over the budget; SizeError when one point on one sample is.
        while True:
            try:
                return batch, self.chunk_plan("loss", passes=batch).samples
            except SizeError:
                if batch == 1:
                    raise
                batch = max(1, batch // 2)

    # ------------------------------------------------------------ derivatives
    def _model_for_second_order(self) -> nn.Module:
        # A model that chooses its second-order differentiation (a PennyLane device by adjoint is first order only)
        if isinstance(self.model, SecondOrderSelectable):
            return self.model.for_second_derivatives(self.hessian_method)
        return self.model

    @_float64_defaults
    def grad(self, theta: Tensor | None = None) -> Tensor:
        """Gradient of the mean loss at θ."""
        theta = self.as_theta(theta)
        if (shared := self.shared_work()) is not None:
            return shared.value_and_grad(theta)[1]
        total = torch.zeros_like(theta)
        for xc, yc, w in self.chunks(kind="grad"):
            if self.functorch:
                g = torch.func.grad(self._chunk_loss)(theta, xc, yc)
            else:
                t = theta.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self._chunk_loss(t, xc, yc), t)
            total += w * g.detach()
        return total

    @_float64_defaults
    def value_and_grad(self, theta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean loss and its gradient at θ in one pass."""
        theta = self.as_theta(theta)
        if (shared := self.shared_work()) is not None:
            return shared.value_and_grad(theta)
        value, total = torch.zeros((), dtype=torch.float64), torch.zeros_like(theta)
        for xc, yc, w in self.chunks(kind="grad"):
            t = theta.clone().requires_grad_(True)
            with torch.enable_grad():
                val = self._chunk_loss(t, xc, yc)
                (g,) = torch.autograd.grad(val, t)
            value += w * val.detach()
            total += w * g
        return value, total

    @_float64_defaults
    def hvp(self, theta: Tensor | None, v: Tensor) -> Tensor:
        """Hessian-vector product H(θ) v of the mean loss, accumulated over chunks."""
        theta = self.as_theta(theta)
        v = torch.as_tensor(v, dtype=torch.float64)
        if v.shape != theta.shape:
            raise ConfigError("v", tuple(v.shape), f"expected shape ({self.n_params},)")
        if (shared := self.shared_work()) is not None:
            return shared.hvp(theta, v)
        total = torch.zeros_like(theta)
        for xc, yc, w in self.chunks(kind="hvp"):
            total += w * self._chunk_hvp(theta, v, xc, yc)
        return total

    def _chunk_hvp(self, theta: Tensor, v: Tensor, xc: Tensor, yc: Tensor) -> Tensor:
        if self.functorch:
            grad_fn = torch.func.grad(self._chunk_loss)
            hv: Tensor = torch.func.jvp(lambda t: grad_fn(t, xc, yc), (theta,), (v,))[1]
            return hv.detach()
        model = self._model_for_second_order()
        t = theta.clone().requires_grad_(True)
        with torch.enable_grad():
            out = functional_call(model, (self.unflatten(t), self.buffers), (xc,))
            (g,) = torch.autograd.grad(self.loss_fn(out, yc), t, create_graph=True)
            (hv,) = torch.autograd.grad(g, t, grad_outputs=v)
        return hv.detach()

    @_float64_defaults
    def hessian(self, theta: Tensor | None = None, *, method: str = "autograd") -> Tensor:
        """Dense Hessian (P, P) of the mean loss at θ by ``torch.func.hessian`` or, for a model that does not
        compose with it, double backward; symmetrised to remove round-off asymmetry.

        ``method`` is kept for qlandscape 0.1 callers: only ``"autograd"`` is computed here. The per-patch assembly
        and the automatic choice between the two live with the curvature metrics:
        ``qlandscape.metrics.curvature.structured.exact_hessian(objective, theta, method=...)``.
        """
        if method != "autograd":
            raise ConfigError(
                "method",
                method,
                "Objective.hessian computes the generic 'autograd' Hessian only; for 'structured' or 'auto' call "
                "qlandscape.metrics.curvature.structured.exact_hessian(objective, theta, method=...)",
            )
        theta = self.as_theta(theta)
        plan = self.chunk_plan("hessian", passes=self.n_params)
        total = torch.zeros(self.n_params, self.n_params, dtype=torch.float64)
        for xc, yc, w in self.chunks(size=plan.samples):
            if self.functorch and plan.directions >= self.n_params:
                h = torch.func.hessian(self._chunk_loss)(theta, xc, yc)
            elif self.functorch:
                h = self._hessian_in_blocks(theta, xc, yc, plan.directions)
            else:
                model = self._model_for_second_order()

                def f(t: Tensor, xc: Tensor = xc, yc: Tensor = yc, model: nn.Module = model) -> Tensor:
                    return self.loss_fn(functional_call(model, (self.unflatten(t), self.buffers), (xc,)), yc)

                h = torch.autograd.functional.hessian(f, theta.clone())
            total += w * h.detach()
        return (total + total.T) / 2

    def _hessian_in_blocks(self, theta: Tensor, xc: Tensor, yc: Tensor, directions: int) -> Tensor:
        # torch.func.hessian is jacfwd(jacrev): forward-mode over the gradient along every unit direction at once.
        # The same products, ``directions`` unit directions per pass, keep the peak within the budget.
        grad_fn = torch.func.grad(self._chunk_loss)

        def column(e: Tensor) -> Tensor:
            hv: Tensor = torch.func.jvp(lambda t: grad_fn(t, xc, yc), (theta,), (e,))[1]
            return hv

        h = torch.empty(self.n_params, self.n_params, dtype=torch.float64)
        eye = torch.eye(self.n_params, dtype=torch.float64)
        for start in range(0, self.n_params, directions):
            h[:, start : start + directions] = torch.func.vmap(column)(eye[start : start + directions]).T
        return h

    def _per_sample_jacobian(self, theta: Tensor, xc: Tensor) -> Tensor | None:
        # In eval mode each output depends on its own input only, so the Jacobian is taken per sample under vmap:
        # jacrev of the whole batch would pull every output cotangent back through all m samples (m times the
        # work; 5-7x slower on the patch QNN). Train-mode batch norm couples samples, so it is not used there.
        if not self.functorch or self.model.training:
            return None

        def one(t: Tensor, xi: Tensor) -> Tensor:
            return self._outputs(t, xi.unsqueeze(0))[0]

        try:
            jac: Tensor = torch.func.vmap(torch.func.jacrev(one), in_dims=(None, 0))(theta, xc)
            return jac
        except (RuntimeError, NotImplementedError):  # a model whose ops have no batching rule
            return None

    @_float64_defaults
    def jacobian(self, theta: Tensor | None = None, x: Tensor | None = None, *, chunk_size: int = 64) -> Tensor:
        """Jacobian of the outputs with respect to θ: (n_inputs, n_outputs, P), in chunks of at most ``chunk_size``
        inputs that fit the memory budget."""
        chunk_size = check_positive_int("chunk_size", chunk_size)
        theta = self.as_theta(theta)
        x = self.x if x is None else torch.as_tensor(x, dtype=torch.float64)
        known = memory_budget(self.memory_budget)[0] is not None
        passes = self.footprint().outputs if known else 1
        chunk_size = self.chunk_plan("jacobian", n_samples=x.shape[0], passes=passes, limit=chunk_size).samples
        parts = []
        for start in range(0, x.shape[0], chunk_size):
            xc = x[start : start + chunk_size]
            j = self._per_sample_jacobian(theta, xc)
            if j is None and self.functorch:
                j = torch.func.jacrev(self._outputs)(theta, xc)
            elif j is None:
                j = torch.autograd.functional.jacobian(lambda t, xc=xc: self._outputs(t, xc), theta.clone())
            parts.append(j.detach())
        return torch.cat(parts)


def _check_budget(budget: int | str | None) -> None:
    if budget is not None:
        memory_budget(budget)  # a bad value raises ConfigError naming it


def check_finite_loss(objective: Objective, theta: Tensor | None = None) -> float:
    """Return the loss at θ, raising a clear error when it is NaN or infinite (never plot a NaN)."""
    value = float(objective.loss(theta))
    if not math.isfinite(value):
        raise ValueError(
            f"the loss at this parameter vector is {value}; curvature metrics need a finite loss "
            "(check the learning rate, the data scaling and the parameters)"
        )
    return value
