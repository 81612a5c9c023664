"""Our batched torch state-vector engine.

One compiled :class:`~qlandscape.sim.circuits.Circuit` runs for every (parameter point, sample, patch) triple at once:
params ``(*K, P, n_params)`` (one block per patch, optional parameter-point dims ``K``) and features ``(B, P, F)``
(or ``(*K, B, P, F)`` when the inputs differ per point, e.g. a learned positional bias).
The circuit is lowered and planned by :mod:`qlandscape.sim.lowering`; see benchmarks/perf for the measurements
behind each choice:

* a layer's fused per-wire 2x2 matrices are applied as a few Kronecker-group GEMMs (one read of the state per
  group, no permute copies); a layer shared by many samples as two Kronecker halves multiplied from the left and
  the right of the state viewed as a matrix; a first layer on |0...0> becomes a product state built from the
  gates' first columns;
* every step runs at its own natural batch: parameter-only steps before the data once per (point, patch), data-only
  steps once per (sample, patch), so a landscape grid encodes the data once and a circuit's parameter-only
  prefix runs once for all samples;
* where the cost estimate says it pays (:func:`qlandscape.sim.lowering.block_cost`: samples per call, layers per
  run, qubits, readout; up to ``lowering.BLOCK_MAX_QUBITS``), the parameter-only layers after the data form
  blocks: each block's unitary is built once per (point, patch) from all its layers at once (each factor from
  its layer's Kronecker halves, then layer by layer or a log-depth chain of products) and applied to every
  sample as one GEMM;
* a parameter point's parameter-only work (the state before the first data layer and the block unitaries,
  :func:`parameter_work`) can be done once and passed to every call on a chunk of data (``work=``), which the
  Objective's two-level derivatives use (:mod:`qlandscape.core.shared_work`);
* with Z-only readout, the trailing entangler run folds into the readout matrix, and when nothing but that run
  follows the first layer the outputs are parities of a product state (:mod:`qlandscape.sim.product_readout`);
* with ``QLANDSCAPE_MALLOC=retain`` the first call lets malloc keep freed memory (:mod:`qlandscape.sim.allocator`),
  so temporaries do not page-fault; the library leaves malloc alone otherwise.

Expectations of Z come from probabilities, those of X and Y from the amplitudes of each qubit's pair.
Everything is plain differentiable torch, so autograd and ``torch.func`` (``vmap``, ``jacrev``, ``hessian``)
compose with it. complex128 by default; complex64 is allowed for training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from qlandscape.core.errors import ConfigError
from qlandscape.core.memory import check_fits
from qlandscape.sim.allocator import apply_environment_setting
from qlandscape.sim.blocks import Readout, apply_block, block_unitary, nothing_differentiated, patch_mean_z, read_z
from qlandscape.sim.circuits import Circuit
from qlandscape.sim.gate_matrices import (
    SHARED_TWO_SIDED_MAX_QUBITS,
    apply_layer,
    apply_shared_layer,
    broadcast_shapes,
    constant,
    layer_columns,
    layer_matrices,
    per_wire,
    per_wire_columns,
    probabilities,
    product_state,
    real_dtype,
)
from qlandscape.sim.lowering import Block, Layer, Plan, Step, bit, block_cost, plan
from qlandscape.sim.product_readout import product_plan, product_z

__all__ = [
    "use_blocks",
    "shares_parameter_work",
    "parameter_work",
    "check_state_memory",
    "simulate_state",
    "simulate",
    "simulate_patch_mean",
]


def use_blocks(circuit: Circuit, n_samples: int, shared_by: int = 1) -> bool:
    """Whether the block plan pays: its unitaries are built per (point, patch) and applied to ``n_samples``
    samples, each built once for ``shared_by`` calls (:func:`qlandscape.sim.lowering.block_cost`; the estimate
    follows the measured forward+backward crossovers, 2 samples at 4 qubits and ~24 at 6 for hea with 2
    layers, benchmarks/perf, with 3 and 24)."""
    return block_cost(circuit).pays(n_samples, shared_by)


def shares_parameter_work(circuit: Circuit, n_samples: int, n_calls: int) -> bool:
    """Whether doing the parameter-only work once (:func:`parameter_work`) and passing it to ``n_calls`` calls of
    :func:`simulate` on ``n_samples`` samples each (the chunks of an evaluation set) beats planning every call
    alone. With one call it is the block plan's own choice: differentiating the work apart from the samples
    (two levels, :mod:`qlandscape.core.shared_work`) is then still cheaper than ``torch.func`` through both."""
    if product_plan(circuit) is not None:  # a product-state readout builds no state at all
        return False
    return use_blocks(circuit, n_samples, shared_by=n_calls)


def _first_data_step(chosen: Plan) -> int:
    """Where the plan first reads data: the steps before it act on |0...0> with parameters only (blocks are only
    ever gathered after data, so they are layers and entangler runs)."""
    for i, step in enumerate(chosen.steps):
        if isinstance(step, Layer) and step.has_features:
            return i
    return len(chosen.steps)


def parameter_work(circuit: Circuit, params: Tensor, *, dtype: torch.dtype = torch.complex128) -> tuple[Tensor, ...]:
    """A parameter point's parameter-only work for the block plan, for params ``(*K, P, n_params)``: the state
    that the steps before the first data-fed layer make of |0...0> (when there are such steps), then the
    unitaries ``(*K, P, 2**n, 2**n)`` of its blocks in plan order. Done once and passed to
    ``simulate(..., work=...)`` for every chunk of data; empty when the circuit has no block."""
    if dtype not in (torch.complex128, torch.complex64):
        raise ConfigError("dtype", dtype, "expected torch.complex128 or torch.complex64")
    if params.shape[-1] != circuit.n_params:
        raise ConfigError("params", tuple(params.shape), f"expected last dim {circuit.n_params} for {circuit.name}")
    chosen = plan(circuit, fold_readout=True, blocks=True)
    if product_plan(circuit) is not None or not chosen.has_blocks:
        return ()
    params = params.to(real_dtype(dtype))
    first = _first_data_step(chosen)
    work: list[Tensor] = []
    if first > 0:
        nowhere = params.new_zeros(1, params.shape[-2], max(1, circuit.n_features))  # the prefix reads no data
        work.append(_run(circuit, chosen.steps[:first], params, nowhere, 1.0, dtype)[0].to(dtype))
    work.extend(
        block_unitary(s, params, circuit.n_qubits, dtype, hand_derivatives=True)
        for s in chosen.steps
        if isinstance(s, Block)
    )
    return tuple(work)


# --------------------------------------------------------------------------------------------- execution
def _check(circuit: Circuit, params: Tensor, features: Tensor, dtype: torch.dtype) -> tuple[int, ...]:
    if dtype not in (torch.complex128, torch.complex64):
        raise ConfigError("dtype", dtype, "expected torch.complex128 or torch.complex64")
    if params.shape[-1] != circuit.n_params:
        raise ConfigError("params", tuple(params.shape), f"expected last dim {circuit.n_params} for {circuit.name}")
    if features.ndim < 3 or features.shape[-1] < circuit.n_features:
        raise ConfigError(
            "features",
            tuple(features.shape),
            f"expected (B, P, {circuit.n_features}) or (*K, B, P, {circuit.n_features}) for {circuit.name}",
        )
    try:
        return broadcast_shapes(params.shape[:-2] + (1, params.shape[-2]), features.shape[:-1])
    except RuntimeError:
        raise ConfigError(
            "features", tuple(features.shape), f"leading dims do not broadcast with params {tuple(params.shape)}"
        ) from None


# Below this size a call's states are not checked against the memory budget: reading the available memory costs
# more than simulating a small circuit, and no budget is that small.
_CHECK_FROM_BYTES = 2**26


def check_state_memory(circuit: Circuit, params: Tensor, features: Tensor, dtype: torch.dtype) -> None:
    """Refuse, with :class:`~qlandscape.core.memory.SizeError`, a call whose state vectors ``(*K, B, P, 2**n)``
    exceed the memory budget (:mod:`qlandscape.core.memory`; a GPU's free memory for CUDA tensors), before
    anything is allocated."""
    itemsize = 16 if dtype == torch.complex128 else 8
    # an upper bound first, from the shapes alone: most calls are far below the checked sizes
    bound = math.prod(params.shape[:-1]) * math.prod(features.shape[:-1]) * 2.0**circuit.n_qubits * itemsize
    if bound < _CHECK_FROM_BYTES:
        return
    batch = _check(circuit, params, features, dtype)
    n_states = math.prod(batch)
    estimate = float(n_states) * 2.0**circuit.n_qubits * itemsize
    if estimate < _CHECK_FROM_BYTES:
        return
    available = torch.cuda.mem_get_info(params.device)[0] if params.device.type == "cuda" else None
    names = ["points"] * (len(batch) - 2) + ["samples", "patches"]
    shape = " x ".join(f"{size} {name}" for size, name in zip(batch, names, strict=True))
    check_fits(
        estimate,
        f"one call's {n_states:,} state vectors ({shape}, each 2**{circuit.n_qubits} amplitudes x {itemsize} bytes)",
        "use fewer qubits, a smaller batch_size or fewer points at once",
        field="qubits",
        value=circuit.n_qubits,
        available=available,
    )


def _run(
    circuit: Circuit,
    steps: tuple[Step, ...],
    params: Tensor,
    features: Tensor,
    scale: float,
    dtype: torch.dtype,
    unitaries: Iterator[Tensor] | None = None,
    initial: Tensor | None = None,
) -> tuple[Tensor, tuple[int, ...]]:
    """Run ``steps``; return the state ``(*K', B', P, 2**n)`` (size-1 dims where it is shared) and the full
    batch shape ``(*K, B, P)`` it broadcasts to. ``unitaries``: the blocks' unitaries, built beforehand, in order;
    ``initial``: the state to start from (else |0...0>)."""
    batch = _check(circuit, params, features, dtype)
    n, rank = circuit.n_qubits, len(batch)
    n_k = rank - 2
    rdtype = real_dtype(dtype)
    params, features = params.to(rdtype), features.to(rdtype)
    device = params.device
    state: Tensor | None = None
    if initial is not None:
        state = initial.to(device).reshape((1,) * (rank + 1 - initial.ndim) + tuple(initial.shape))
    for step in steps:
        if isinstance(step, Block):
            u = block_unitary(step, params, n, dtype) if unitaries is None else next(unitaries).to(device)
            if state is None:  # U|0...0> is U's first column, shared by every sample
                state = u[..., :, 0].unsqueeze(-3)
                state = state.reshape((1,) * (rank + 1 - state.ndim) + tuple(state.shape))
            else:
                state = apply_block(state, u, n_k)
        elif isinstance(step, Layer):
            if state is None:  # on |0...0>: a product of the matrices' first columns
                cols = layer_columns(step.stack, params, features, scale, dtype).squeeze(-3)  # (*nb, W, 2)
                nb = cols.shape[:-2]
                columns = per_wire_columns(step.gated, cols.reshape(-1, *cols.shape[-2:]), n)
                state = product_state(columns).reshape(*((1,) * (rank - len(nb))), *nb, 2**n)
                continue
            mats = layer_matrices(step.stack, params, features, scale, dtype).squeeze(-4)  # (*nb, W, 2, 2)
            nb = mats.shape[:-3]
            target = broadcast_shapes(state.shape[:-1], nb)
            target = (1,) * (rank - len(target)) + tuple(target)
            m_total = int(np.prod(target))
            if 2 <= n <= SHARED_TWO_SIDED_MAX_QUBITS and int(np.prod(nb)) < m_total:
                # shared by several samples: build the Kronecker halves once per (point, patch)
                lead = (1,) * (rank - len(nb)) + tuple(nb)
                wires = per_wire(step.gated, mats.reshape(-1, *mats.shape[-3:]), n)
                state = apply_shared_layer(state, [w.reshape(*lead, 2, 2) for w in wires], n)
                continue
            flat = mats.expand(*target, *mats.shape[-3:]).reshape(m_total, *mats.shape[-3:])
            wires = per_wire(step.gated, flat, n)
            state = apply_layer(state.expand(*target, 2**n).reshape(m_total, -1), wires, n)
            state = state.reshape(*target, 2**n)
        else:
            if state is None:
                state = _basis_zero(n, rank, dtype, device)
            if not step.identity:  # on the flat (M, D) view: index_select on a 2-D tensor's last dim is faster
                state = state.reshape(-1, 2**n).index_select(1, constant(step.source, device)).reshape(state.shape)
            if step.sign_vector is not None:
                state = state * constant(step.sign_vector, device, rdtype)
    if state is None:
        state = _basis_zero(n, rank, dtype, device)
    return state, batch


def _basis_zero(n: int, rank: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    state = torch.zeros((1,) * rank + (2**n,), dtype=dtype, device=device)
    state[..., 0] = 1
    return state


def _fused_last_block(chosen: Plan) -> Block | None:
    """The block a plan ends in after other steps, with a Z readout: its GEMM and readout run as one; else None."""
    last = chosen.steps[-1] if chosen.z_signs is not None and len(chosen.steps) > 1 else None
    return last if isinstance(last, Block) else None


def _plan_for(circuit: Circuit, features: Tensor, fold_readout: bool) -> Plan:
    return plan(circuit, fold_readout=fold_readout, blocks=use_blocks(circuit, features.shape[-3]))


def simulate_state(
    circuit: Circuit, params: Tensor, features: Tensor, *, scale: float = 1.0, dtype: torch.dtype = torch.complex128
) -> Tensor:
    """Final state vectors ``(*K, B, P, 2**n)`` for params ``(*K, P, n_params)`` and features ``(B, P, F)`` or
    ``(*K, B, P, F)``."""
    apply_environment_setting()
    check_state_memory(circuit, params, features, dtype)
    steps = _plan_for(circuit, features, fold_readout=False).steps
    state, batch = _run(circuit, steps, params, features, scale, dtype)
    return state.to(dtype).expand(*batch, 2**circuit.n_qubits)


def simulate(
    circuit: Circuit,
    params: Tensor,
    features: Tensor,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.complex128,
    work: Sequence[Tensor] | None = None,
) -> Tensor:
    """Expectation values of the circuit's observables.

    Args:
        circuit: the compiled circuit.
        params: trainable angles ``(*K, P, n_params)`` -- one block per patch, optional leading parameter-point
            dims ``K`` (landscape grids, random initialisations).
        features: encoded inputs ``(B, P, n_features)``, or ``(*K, B, P, n_features)`` when they differ per
            parameter point.
        scale: multiplies every data angle.
        dtype: ``torch.complex128`` (default, for metrics) or ``torch.complex64`` (training).
        work: the block plan's parameter-only work from :func:`parameter_work` at these params, done once for
            many calls; the call then runs the block plan with it, whatever the number of samples. It must come
            from the same ``params`` (differentiating through both counts each parameter's two routes once).

    Returns:
        ``(*K, B, P, n_outputs)`` real expectations, in the circuit's observable order.
    """
    apply_environment_setting()  # QLANDSCAPE_MALLOC=retain, read once per process: see qlandscape.sim.allocator
    product = product_plan(circuit)
    if product is not None:  # Z parities of a product state: no state vector at all
        batch = _check(circuit, params, features, dtype)
        return _connected(product_z(circuit, product, params, features, scale, dtype, len(batch)), params).expand(
            *batch, circuit.n_outputs
        )
    check_state_memory(circuit, params, features, dtype)
    given: Iterator[Tensor] | None = None
    initial: Tensor | None = None
    if work:
        chosen = plan(circuit, fold_readout=True, blocks=True)
        first = _first_data_step(chosen)
        n_blocks = sum(isinstance(s, Block) for s in chosen.steps)
        if len(work) != n_blocks + (first > 0):
            raise ConfigError("work", len(work), f"expected the {circuit.name} block plan's, from parameter_work")
        steps = chosen.steps[first:]
        initial = work[0] if first > 0 else None
        given = iter(work[1:] if first > 0 else work)
    else:
        chosen = _plan_for(circuit, features, fold_readout=True)
        steps = chosen.steps
    fused = _fused_last_block(chosen)
    state, batch = _run(
        circuit, steps[:-1] if fused is not None else steps, params, features, scale, dtype, given, initial
    )
    if fused is not None:  # the last block and the readout in one pass over the GEMM's output
        rdtype = real_dtype(dtype)
        if given is not None:
            u = next(given).to(state.device)
        else:
            u = block_unitary(fused, params.to(rdtype), circuit.n_qubits, dtype)
        out = apply_block(state, u, len(batch) - 2, Readout(chosen, state.device, rdtype))
    elif chosen.z_signs is not None:
        out = read_z(state, Readout(chosen, state.device, state.real.dtype))
    else:
        out = _expectations(circuit, state, circuit.n_qubits)
    return _connected(out, params).expand(*batch, circuit.n_outputs)


def _connected(out: Tensor, params: Tensor) -> Tensor:
    """``out``, still attached to ``params`` when they require grad but no parameter reached the readout (all
    were phases dropped before a Z readout): autograd then gives zero gradients, as PennyLane does, rather than a
    loss that cannot be backpropagated."""
    if params.requires_grad and torch.is_grad_enabled() and not out.requires_grad:
        return out + 0 * params.sum()
    return out


def simulate_patch_mean(
    circuit: Circuit,
    params: Tensor,
    features: Tensor,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.complex128,
    n_outputs: int | None = None,
) -> Tensor:
    """The mean over patches of the first ``n_outputs`` expectations (all by default): ``(*K, B, n_outputs)``,
    what a patch-mean aggregation reads.

    A landscape grid (points ``(K, P, n_params)`` sharing their samples, nothing differentiated, a Z readout after
    a last block on a real encoded state) goes through :func:`qlandscape.sim.blocks.patch_mean_z`; anything else is
    :func:`simulate` followed by the mean.
    """
    apply_environment_setting()
    n_outputs = circuit.n_outputs if n_outputs is None else n_outputs
    if not 1 <= n_outputs <= circuit.n_outputs:
        raise ConfigError("n_outputs", n_outputs, f"expected 1..{circuit.n_outputs} for {circuit.name}")
    chosen = _plan_for(circuit, features, fold_readout=True)
    fused = _fused_last_block(chosen)
    if (
        fused is None
        or product_plan(circuit) is not None
        or params.ndim != 3
        or features.ndim != 3
        or not nothing_differentiated(params, features)
    ):
        return simulate(circuit, params, features, scale=scale, dtype=dtype)[..., :n_outputs].mean(dim=-2)
    check_state_memory(circuit, params, features, dtype)
    state, batch = _run(circuit, chosen.steps[:-1], params, features, scale, dtype)
    n_points, n_patches, dim = params.shape[0], params.shape[1], 2**circuit.n_qubits
    rdtype = real_dtype(dtype)
    u = block_unitary(fused, params.to(rdtype), circuit.n_qubits, dtype)
    if state.shape[0] == 1 and not state.is_complex():
        state = state.expand(1, *batch[1:], dim).reshape(-1, n_patches, dim)
        return patch_mean_z(state, u.reshape(n_points, n_patches, dim, dim), chosen, n_outputs)
    # a complex or per-point state: simulate's fused readout on what has been computed
    out = apply_block(state, u, len(batch) - 2, Readout(chosen, state.device, rdtype))
    return out.expand(*batch, circuit.n_outputs)[..., :n_outputs].mean(dim=-2)


def _expectations(circuit: Circuit, state: Tensor, n: int) -> Tensor:
    lead = state.shape[:-1]
    state = state.reshape(-1, 2**n)
    if not state.is_complex():
        state = state.to(torch.complex128 if state.dtype == torch.float64 else torch.complex64)
    m = state.shape[0]
    probs = probabilities(state)
    outs = []
    for pauli, wire in circuit.observables:
        if pauli == "Z":
            signs = torch.as_tensor(1.0 - 2.0 * bit(np.arange(2**n), wire, n), dtype=probs.dtype, device=probs.device)
            outs.append(probs @ signs)
        else:
            view = state.view(m, 2**wire, 2, 2 ** (n - wire - 1))
            cross = (view[:, :, 0, :].conj() * view[:, :, 1, :]).sum(dim=(1, 2))
            outs.append(2 * (cross.real if pauli == "X" else cross.imag))
    return torch.stack(outs, dim=-1).reshape(*lead, -1)
