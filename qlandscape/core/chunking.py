"""Chunk sizes chosen against the memory budget: how many samples (and, for a dense Hessian, how many tangent
directions) one step of a chunked computation may take so that its estimated peak stays within the budget of
:mod:`qlandscape.core.memory`.

The estimates start from a model's :class:`Footprint`: the bytes autograd keeps for backward during a forward
pass (the tensors saved for backward, plus the outputs), measured on two and four samples by :func:`measure_footprint`,
so ``saved(m) = fixed + per_sample * m``. Every derivative the package takes is built from such passes, and its peak
is a small multiple of ``saved(m)`` per pass held at once; the multiples in :data:`COSTS` are upper bounds of the
peaks measured on the MLP, the CNN and patch QNNs (``tests/core/test_chunking.py`` checks the bound on each kind
with torch's profiler, ``tests/metrics/curvature/test_budget_scale.py`` the resident size of large cases).

:func:`plan_chunks` turns a footprint into a :class:`ChunkPlan`; when even one sample (and one direction) does not
fit it raises :class:`~qlandscape.core.memory.SizeError` naming the estimate and the budget, before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from qlandscape.core.errors import ConfigError, check_choice
from qlandscape.core.memory import BUDGET_ENV, SizeError, format_bytes, memory_budget

__all__ = [
    "CHUNK_KINDS",
    "COSTS",
    "REFUSE_ABOVE",
    "Footprint",
    "ChunkPlan",
    "measure_footprint",
    "chunk_cost",
    "plan_chunks",
]

CHUNK_KINDS = ("loss", "grad", "hvp", "hessian", "jacobian", "structured")
# A step estimated below this is never refused, whatever the budget: it is under the noise of a Python process
# (the interpreter and torch alone take a few hundred MB), and small checks of other sizes may use tiny budgets.
REFUSE_ABOVE = 64 * 2**10

# Peak bytes of one step on m samples with k forward passes at once (1 for loss, grad and HVP; the tangent
# directions under vmap for the dense Hessian; the outputs per sample for a Jacobian; the tangents of one patch
# block for the structured Hessian) = a * saved(m) * k + b * 8P * k + c * 8P^2 + d * 8P * k * m, as (a, b, c, d).
# Calibrated on the MLP, the CNN and patch QNNs of 4 and 8 qubits, float64, one thread: against torch's profiler
# (1-8 samples) and against the growth of the resident size in a fresh process (the digits CNN: its dense Hessian
# grows by 55 MB a sample, 3.1 saved per direction, HVPs 5.7 saved; the 25-patch L = 4 structured Hessian by
# 45 MB a sample, well under its estimate). A Jacobian holds its (m, C, P) result and a copy.
COSTS: dict[str, tuple[float, float, float, float]] = {
    "loss": (2.0, 2.0, 0.0, 0.0),
    "grad": (4.0, 4.0, 0.0, 0.0),
    "hvp": (8.0, 8.0, 0.0, 0.0),
    # the digits CNN's dense Hessian at 8 samples a chunk grew the resident size by 0.78-0.84 GiB against an estimate
    # of 1.0 GiB, and by up to 1.31 GiB under other allocator settings (MALLOC_TRIM_THRESHOLD_ and the like in the
    # environment): 6.5 leaves that margin
    "hessian": (6.5, 4.0, 3.0, 0.0),
    "jacobian": (3.0, 2.0, 0.0, 3.0),
    "structured": (4.0, 2.0, 4.0, 3.0),
}


@dataclass(frozen=True)
class Footprint:
    """Bytes a forward pass keeps for backward on ``m`` samples: ``fixed + per_sample * m``."""

    fixed: int
    per_sample: int
    outputs: int = 1  # outputs per sample (the rows of a per-sample Jacobian)

    def saved(self, samples: int) -> int:
        """The bytes kept for ``samples`` samples."""
        return self.fixed + self.per_sample * samples


@dataclass(frozen=True)
class ChunkPlan:
    """How a chunked computation splits its work: ``samples`` per chunk, ``directions`` tangent directions per
    pass (the dense Hessian; else 1), the estimated peak of one chunk and the budget it was planned against."""

    kind: str
    samples: int
    directions: int
    estimate: int
    budget: int | None
    origin: str

    def describe(self) -> str:
        """One line for logs: the chunking and its estimate against the budget."""
        budget = "no budget" if self.budget is None else f"budget {format_bytes(self.budget)} ({self.origin})"
        directions = f" x {self.directions} directions" if self.kind == "hessian" else ""
        return f"{self.kind}: {self.samples} samples{directions} per chunk, ~{format_bytes(self.estimate)}; {budget}"


def _storage_bytes(t: Tensor, seen: dict[int, int]) -> None:
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # a tensor without storage (a functorch wrapper): count its size
        seen[id(t)] = t.numel() * t.element_size()
        return
    seen[storage.data_ptr()] = storage.nbytes()


def _saved_bytes(forward: Callable[[Tensor, Tensor], Tensor], theta: Tensor, x: Tensor) -> tuple[int, int]:
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        _storage_bytes(t, seen)
        return t

    t = theta.detach().clone().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(t, x)
    _storage_bytes(out, seen)
    return sum(seen.values()), max(1, out[0].numel()) if out.ndim > 0 else 1


def measure_footprint(forward: Callable[[Tensor, Tensor], Tensor], theta: Tensor, x: Tensor) -> Footprint:
    """The :class:`Footprint` of ``forward(theta, x)``, measured on copies of the first two and four samples of
    ``x`` (copies, so that a saved slice of the inputs does not count the whole set; two, so that a batch-norm
    layer in training mode has a batch)."""
    small, large = min(2, x.shape[0]), min(4, x.shape[0])
    low, outputs = _saved_bytes(forward, theta, x[:small].clone())
    if large == small:
        return Footprint(0, max(1, -(-low // small)), outputs)
    high, _ = _saved_bytes(forward, theta, x[:large].clone())
    per_sample = max(1, -(-(high - low) // (large - small)))
    return Footprint(max(low - per_sample * small, 0), per_sample, outputs)


def chunk_cost(kind: str, footprint: Footprint, n_params: int, samples: int, passes: int = 1) -> int:
    """Estimated peak bytes of one ``kind`` step on ``samples`` samples with ``passes`` forward passes at once."""
    check_choice("kind", kind, CHUNK_KINDS)
    a, b, c, d = COSTS[kind]
    per_pass = a * footprint.saved(samples) + b * 8 * n_params + d * 8 * n_params * samples
    return int(per_pass * passes + c * 8 * n_params**2)


def plan_chunks(
    kind: str,
    footprint: Footprint | None,
    *,
    n_samples: int,
    n_params: int,
    passes: int = 1,
    limit: int | None = None,
    budget: int | str | None = None,
    what: str = "",
) -> ChunkPlan:
    """The largest chunk of at most ``limit`` (None: all) of ``n_samples`` samples whose ``kind`` step fits the
    memory budget; for ``"hessian"`` (``passes`` = the directions wanted, the parameter count) the directions per
    pass shrink too when one sample with all of them does not fit.

    ``footprint`` None (nothing measured, as where the budget is unknown) plans the whole limit. Raises
    :class:`~qlandscape.core.memory.SizeError` when one sample (one direction) is over the budget, unless its
    estimate is below :data:`REFUSE_ABOVE` (then one sample per chunk)."""
    check_choice("kind", kind, CHUNK_KINDS)
    if n_samples < 1 or passes < 1:
        raise ConfigError("samples", (n_samples, passes), "expected at least one sample and one pass")
    cap = n_samples if limit is None else max(1, min(limit, n_samples))
    size, origin = memory_budget(budget)
    if size is None or footprint is None:
        estimate = 0 if footprint is None else chunk_cost(kind, footprint, n_params, cap, passes)
        return ChunkPlan(kind, cap, passes, estimate, size, origin)
    directions = passes
    if kind == "hessian":
        while directions > 1 and chunk_cost(kind, footprint, n_params, 1, directions) > size:
            directions = max(1, directions // 2)
    smallest = chunk_cost(kind, footprint, n_params, 1, directions)
    if smallest > size and smallest > REFUSE_ABOVE:
        unit = "one sample and one direction" if kind == "hessian" else "one sample"
        raise SizeError(
            "memory budget",
            format_bytes(size),
            f"{what or kind} on {unit} would take about {format_bytes(smallest)}, over the memory budget of "
            f"{format_bytes(size)} ({origin}); raise the budget (per call, in the config or "
            f"with {BUDGET_ENV}) or use a smaller model",
            estimate=smallest,
            budget=size,
        )
    per_sample = max(1, chunk_cost(kind, footprint, n_params, 2, directions) - smallest)
    samples = max(1, min(cap, 1 + max(0, size - smallest) // per_sample))
    estimate = chunk_cost(kind, footprint, n_params, samples, directions)
    return ChunkPlan(kind, samples, directions, estimate, size, origin)
