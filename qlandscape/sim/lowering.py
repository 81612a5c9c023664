"""Lowering a compiled circuit into the engine's execution plan.

:func:`lower` turns the gate list into two instructions:

* ``fused``: all single-qubit rotations on one wire between two entangling steps (a batched 2x2 matrix later);
* ``permute``: a run of consecutive entanglers (CNOT, CZ: signed permutations, see :mod:`qlandscape.sim.gates`)
  composed into one basis permutation and one sign vector (a gather and a multiply, never a dense 2**n x 2**n
  matrix).

:func:`plan` then groups the fused steps between two entangler runs into one :class:`Layer` (all wires at once)
and, with Z-only readout, folds the trailing entangler run into the readout matrix and drops the phases that
cannot reach it (:func:`drop_phases_before_z`). With ``blocks=True`` it also
splits every wire's rotations at the data/parameter boundary and gathers the parameter-only layers and entanglers
that follow data into :class:`Block` steps: a block is the same unitary for every sample of a patch, so the engine
builds it once per (parameter point, patch) and applies it to all samples as one GEMM.

Whether blocks pay is a cost estimate (:func:`block_cost`), not a qubit cap: building a block costs about
``F * 4**n * (2**a + 2**b)`` multiply-adds per (point, patch) (F layers, the Kronecker halves' sizes) and applying
it ``4**n`` per sample, against ``F * 2**n * (2**a + 2**b + LAYER_OVERHEAD)`` per sample for the same layers run
one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qlandscape.sim.circuits import Circuit, Gate
from qlandscape.sim.gates import Rotation, entangler, rotation

__all__ = [
    "BLOCK_MAX_QUBITS",
    "LAYER_OVERHEAD",
    "BlockCost",
    "block_cost",
    "Fused",
    "Permute",
    "bit",
    "lower",
    "Gather",
    "SignatureGather",
    "Stack",
    "Layer",
    "Block",
    "kron_rows",
    "Step",
    "Plan",
    "plan",
]

# A block is a dense (2**n)^2 matrix per (point, patch): 16 MB at 10 qubits in complex128. Beyond that its memory,
# not its arithmetic, rules it out (a grid of points times patches of them); below it the cost estimate decides.
BLOCK_MAX_QUBITS = 10
# What running one shared layer costs per amplitude beyond its two small GEMMs' 2**a + 2**b multiply-adds, in
# multiply-adds of a large GEMM: the entangler's gather and signs, the small GEMMs' lower throughput and the
# per-op dispatch. Fitted to the measured forward+backward crossovers of the block plan (benchmarks/perf: 2
# samples at 4 qubits, ~24 at 6, hea with 2 layers; the estimate gives 3 and 24); it puts the 8-qubit kawase
# blocks (L = 50) ahead from 95 samples per call, or from 10 per chunk when 60 chunks share the unitaries.
LAYER_OVERHEAD = 60

IntArray = NDArray[np.integer[Any]]
FloatArray = NDArray[np.floating[Any]]
Pattern = tuple[tuple[str, str], ...]  # a wire's gate sequence as (name, source) pairs, source "param" or "feature"


@dataclass(frozen=True)
class Fused:
    """All rotations on one wire between two entangling steps, in order."""

    wire: int
    rotations: tuple[Gate, ...]


@dataclass(frozen=True, eq=False)
class Permute:
    """A run of entanglers as one signed permutation: ``new_state[j] = sign[j] * state[source[j]]``.

    Derived: ``sign_vector``, the signs where any is -1, else None (nothing to multiply).
    """

    source: IntArray
    sign: FloatArray
    identity: bool
    sign_vector: FloatArray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sign_vector", None if (self.sign == 1).all() else self.sign)

    @property
    def trivial(self) -> bool:
        return self.identity and self.sign_vector is None


def bit(indices: IntArray, wire: int, n: int) -> IntArray:
    """Bit of ``wire`` (wire 0 most significant) in basis-state ``indices`` of an n-qubit register."""
    return (indices >> (n - 1 - wire)) & 1


def _compose_entanglers(gates: list[Gate], n: int) -> Permute:
    """One signed permutation for a run of entanglers: basis state i ends up at ``image[i]`` with ``sign[i]``."""
    basis = np.arange(2**n)
    image = basis.copy()
    sign = np.ones(2**n)
    for gate in gates:
        action = entangler(gate.name)
        a, b = gate.wires
        control, target = bit(image, a, n), bit(image, b, n)
        local = 2 * control + target  # where each state now is, in the pair's basis
        sign = sign * action.sign_array[local]
        moved = action.image_array[local]
        image = image ^ (((moved >> 1) ^ control) << (n - 1 - a)) ^ (((moved & 1) ^ target) << (n - 1 - b))
    source = np.argsort(image)
    return Permute(source=source, sign=sign[source], identity=bool((source == basis).all()))


@lru_cache(maxsize=64)
def lower(circuit: Circuit) -> tuple[Fused | Permute, ...]:
    """Lower a circuit into fused single-qubit steps and composed entangler steps.

    Every gate is looked up in the gate table here: a name the table does not have, or has as the other kind, is
    a :class:`~qlandscape.core.errors.ConfigError` naming it before anything runs."""
    for gate in circuit.gates:
        if gate.source is None:
            entangler(gate.name)
        else:
            rotation(gate.name)
    program: list[Fused | Permute] = []
    pending: dict[int, list[Gate]] = {}
    run: list[Gate] = []

    def flush_rotations() -> None:
        for wire in sorted(pending):
            program.append(Fused(wire, tuple(pending[wire])))
        pending.clear()

    for gate in circuit.gates:
        if gate.source is None:
            if not run:
                flush_rotations()
            run.append(gate)
        else:
            if run:
                program.append(_compose_entanglers(run, circuit.n_qubits))
                run = []
            pending.setdefault(gate.wires[0], []).append(gate)
    if run:
        program.append(_compose_entanglers(run, circuit.n_qubits))
    flush_rotations()
    return tuple(program)


# ------------------------------------------------------------------------------------------------ layers
@dataclass(frozen=True, eq=False)
class Gather:
    """Where angles come from, for F stacked layers of W wires: ``source[..., index]`` reshaped to ``shape``,
    ``(F, W)`` for one gate or ``(F, W, G)`` for G gates at once; ``start`` is set when the index is a contiguous
    range (a view, no copy)."""

    index: IntArray
    start: int | None
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class SignatureGather:
    """All angles of a signature whose gates share one source, in one gather: index ``(F, W, G)``, and the
    ``(G, 2, 2)`` generators of its G gate positions (``R(a) = cos(a/2) I + sin(a/2) G``; real when they all are).

    Derived: ``first_column``, G e0 of the first gate (what it adds to |0>, see ``layer_columns``), and
    ``cos_sin_column``, whether the signature is one gate with G e0 = e1 (RY), so that it takes |0> to (cos, sin).
    """

    source: str
    gather: Gather
    generators: NDArray[Any]  # complex128, or float64 when all are real
    first_column: NDArray[Any] = field(init=False, repr=False)
    cos_sin_column: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        first = np.ascontiguousarray(self.generators[0][:, 0])
        object.__setattr__(self, "first_column", first)
        object.__setattr__(self, "cos_sin_column", len(self.generators) == 1 and np.array_equal(first, [0, 1]))


@dataclass(frozen=True, eq=False)
class Stack:
    """The angle gathers of F layers sharing one structure, so their matrices come out of one set of ops."""

    signatures: tuple[tuple[Pattern, tuple[Gather, ...]], ...]  # (gate pattern, gathers)
    rotations: tuple[tuple[Rotation, ...], ...]  # per signature, its gates' table entries
    order: IntArray | None  # from concatenated signature groups to wire order (None: identity)
    gated: tuple[int, ...]
    real: bool  # every rotation's matrices are real (RY): the layer stays real
    combined: tuple[SignatureGather | None, ...]  # per signature; None when its gates mix sources


def _gather(indices: list[IntArray]) -> Gather:
    index = np.stack(indices)
    flat = index.reshape(-1)
    contiguous = flat.size > 0 and bool((np.diff(flat) == 1).all())
    return Gather(index=flat, start=int(flat[0]) if contiguous else None, shape=index.shape)


def make_stack(layers: list[Layer]) -> Stack:
    first = layers[0]
    signatures = tuple(
        (key, tuple(_gather([layer.signatures[s][2][k] for layer in layers]) for k in range(len(key))))
        for s, (key, _, _) in enumerate(first.signatures)
    )
    rotations = tuple(tuple(rotation(name) for name, _ in key) for key, _, _ in first.signatures)
    real = all(gate.real for gates in rotations for gate in gates)
    combined: list[SignatureGather | None] = []
    for s, (key, _, _) in enumerate(first.signatures):
        if len({source for _, source in key}) > 1:
            combined.append(None)
            continue
        per_layer = [np.stack([layer.signatures[s][2][k] for k in range(len(key))], axis=-1) for layer in layers]
        generators = np.stack([gate.generator for gate in rotations[s]])
        combined.append(
            SignatureGather(
                source=key[0][1], gather=_gather(per_layer), generators=generators.real.copy() if real else generators
            )
        )
    return Stack(
        signatures=signatures,
        rotations=rotations,
        order=first.order,
        gated=first.gated,
        real=real,
        combined=tuple(combined),
    )


@dataclass(frozen=True, eq=False)
class Layer:
    """All single-qubit work between two entangling steps, every wire at once.

    ``signatures`` groups the wires whose gate sequences share one (name, source) pattern, so each group's fused
    2x2 matrices come out of a few tensor ops rather than a few ops per gate.
    """

    signatures: tuple[tuple[Pattern, IntArray, tuple[IntArray, ...]], ...]  # (pattern, wires, angle indices)
    order: IntArray | None  # permutation from concatenated signature groups to wire order (None: identity)
    gated: tuple[int, ...]  # wires with at least one gate, ascending
    has_params: bool
    has_features: bool
    stack: Stack = field(init=False, repr=False)  # this layer alone (F = 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stack", make_stack([self]))

    @property
    def structure(self) -> tuple[tuple[tuple[Pattern, tuple[int, ...]], ...], tuple[int, ...] | None]:
        """What two layers must share to be built in one stacked call (everything but the angle indices)."""
        order = None if self.order is None else tuple(self.order.tolist())
        return tuple((key, tuple(wires.tolist())) for key, wires, _ in self.signatures), order


def _fed_by(gate: Gate) -> str:
    """Where a rotation's angle comes from, ``"param"`` or ``"feature"``: :func:`lower` sends every gate without
    one to the entanglers."""
    assert gate.source is not None, gate
    return gate.source


def make_layer(steps: list[Fused]) -> Layer:
    by_signature: dict[Pattern, list[Fused]] = {}
    for step in steps:
        key = tuple((g.name, _fed_by(g)) for g in step.rotations)
        by_signature.setdefault(key, []).append(step)
    signatures: list[tuple[Pattern, IntArray, tuple[IntArray, ...]]] = []
    concatenated: list[int] = []
    for key, group in by_signature.items():
        wires = np.array([s.wire for s in group])
        indices = tuple(np.array([s.rotations[k].index for s in group]) for k in range(len(key)))
        signatures.append((key, wires, indices))
        concatenated.extend(wires.tolist())
    order = np.argsort(np.array(concatenated))
    identity = bool((order == np.arange(len(order))).all())
    sources = {g.source for s in steps for g in s.rotations}
    return Layer(
        signatures=tuple(signatures),
        order=None if identity else order,
        gated=tuple(sorted(concatenated)),
        has_params="param" in sources,
        has_features="feature" in sources,
    )


def _split_at_data(steps: list[Fused]) -> list[list[Fused]]:
    """Split one layer's per-wire rotations into (parameter prefix, data part, parameter suffix) layers.

    Rotations on different wires commute, so a layer equals its suffix layer after its data layer after its prefix
    layer. The data part runs from a wire's first to its last data-fed rotation.
    """
    pre: list[Fused] = []
    mid: list[Fused] = []
    post: list[Fused] = []
    for step in steps:
        fed = [i for i, g in enumerate(step.rotations) if g.source == "feature"]
        if not fed:
            pre.append(step)
            continue
        lo, hi = fed[0], fed[-1] + 1
        for part, rotations in ((pre, step.rotations[:lo]), (mid, step.rotations[lo:hi]), (post, step.rotations[hi:])):
            if rotations:
                part.append(Fused(step.wire, rotations))
    if not mid:  # parameter-only layer: keep it whole
        return [pre]
    return [part for part in (pre, mid, post) if part]


# -------------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True, eq=False)
class Block:
    """Parameter-only layers, each followed by the entangler run after it (``perms``, None where there is none),
    applied after the data as one unitary per (parameter point, patch).

    Precomputed: ``stacks`` (layers grouped by structure, each built in one call), ``order`` (from the stacks'
    concatenation back to layer order), ``rows`` (each layer's entangler as a row gather: one source vector
    when all layers share it, else an index into the flattened (F * D) rows) and ``signs`` ((F, D, 1), None when
    all ones).
    """

    layers: tuple[Layer, ...]
    perms: tuple[Permute | None, ...]
    stacks: tuple[Stack, ...] = field(init=False, repr=False)
    order: IntArray | None = field(init=False, repr=False)
    rows: IntArray | None = field(init=False, repr=False)
    signs: FloatArray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        groups: dict[object, list[int]] = {}
        for f, layer in enumerate(self.layers):
            groups.setdefault(layer.structure, []).append(f)
        stacks = tuple(make_stack([self.layers[f] for f in members]) for members in groups.values())
        order = [f for members in groups.values() for f in members]
        perms = [p for p in self.perms if p is not None]
        rows: IntArray | None = None
        signs: FloatArray | None = None
        if perms and any(not p.identity for p in perms):
            dim = perms[0].source.size
            if len(perms) == len(self.perms) and all((p.source == perms[0].source).all() for p in perms):
                rows = perms[0].source
            else:
                rows = np.concatenate(
                    [f * dim + (np.arange(dim) if p is None else p.source) for f, p in enumerate(self.perms)]
                )  # into the flattened (F * D) rows
        if perms and any(p.sign_vector is not None for p in perms):
            dim = perms[0].source.size
            signs = np.stack([np.ones(dim) if p is None else p.sign for p in self.perms])[:, :, None]
        object.__setattr__(self, "stacks", stacks)
        object.__setattr__(self, "order", None if order == sorted(order) else np.argsort(order))
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "signs", signs)


@lru_cache(maxsize=256)
def kron_rows(block: Block, n: int) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Row indices that build each ``perm_f @ (A_f ⊗ B_f)`` of a block from its Kronecker halves.

    Row j of ``A ⊗ B`` is ``A[j >> b] ⊗ B[j & (2**b - 1)]`` (b = the right half's wires), and a permutation of
    rows only changes which ones: row j of factor f is ``A_f[ra] ⊗ B_f[rb]`` with ``(ra, rb)`` the halves of
    ``source_f[j]``. Returned as indices into the flattened ``(F * 2**a)`` and ``(F * 2**b)`` rows, then the
    first factor's alone (arrays of their own, which the engine caches as tensors by identity).
    """
    right = n - n // 2
    dim = 2**n
    idx_a, idx_b = [], []
    for f, perm in enumerate(block.perms):
        source = np.arange(dim) if perm is None else perm.source
        idx_a.append(f * 2 ** (n // 2) + (source >> right))
        idx_b.append(f * 2**right + (source & (2**right - 1)))
    return np.concatenate(idx_a), np.concatenate(idx_b), idx_a[0].copy(), idx_b[0].copy()


Step = Layer | Permute | Block  # what a plan runs, in order


@dataclass(frozen=True, eq=False)
class Plan:
    """What the engine runs: ``steps`` in order, and the Z readout ``z_signs`` ``(2**n, n_outputs)`` when every
    observable is Z (trailing entanglers folded in), else None.

    Derived: the readout as GEMM right operands stored transposed, ``z_read`` ``(O, 2**n)`` and, for squared
    (re, im) pairs, ``z_pairs_read`` ``(O, 2**(n+1))``: MKL's kernel for a skinny contiguous (D, O) operand is
    1.6x slower (benchmarks/perf).
    """

    steps: tuple[Step, ...]
    z_signs: FloatArray | None
    has_blocks: bool
    z_read: FloatArray | None = field(init=False, repr=False)
    z_pairs_read: FloatArray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        z = self.z_signs
        object.__setattr__(self, "z_read", None if z is None else np.ascontiguousarray(z.T))
        object.__setattr__(self, "z_pairs_read", None if z is None else np.ascontiguousarray(np.repeat(z, 2, 0).T))


def drop_phases_before_z(program: tuple[Fused | Permute, ...]) -> tuple[Fused | Permute, ...]:
    """The lowered program without the diagonal rotations (phases: RZ) that end each wire's last rotations, for a
    Z readout.

    Everything after them is monomial (the other wires' rotations commute with them, the trailing entangler runs
    permute basis states and flip signs), so a diagonal phase there cannot change a probability: hea's last RZ
    layer, strongly entangling's last RZ of every Rot. Their parameters keep exactly zero derivatives, and the
    last layer may become RY-only, hence real.
    """
    steps = list(program)
    end = len(steps)
    while end and isinstance(steps[end - 1], Permute):
        end -= 1
    start = end
    while start and isinstance(steps[start - 1], Fused):
        start -= 1
    kept: list[Fused | Permute] = []
    for step in steps[start:end]:
        assert isinstance(step, Fused)  # the run found above
        rotations = list(step.rotations)
        while rotations and rotation(rotations[-1].name).diagonal:
            rotations.pop()
        if rotations:
            kept.append(Fused(step.wire, tuple(rotations)))
    return tuple(steps[:start] + kept + steps[end:])


def _layer_steps(circuit: Circuit, split: bool, z_readout: bool = False) -> list[Step]:
    steps: list[Step] = []
    pending: list[Fused] = []

    def flush() -> None:
        for part in _split_at_data(pending) if split else [pending]:
            steps.append(make_layer(part))
        pending.clear()

    program = lower(circuit)
    for step in drop_phases_before_z(program) if z_readout else program:
        if isinstance(step, Fused):
            pending.append(step)
            continue
        if pending:
            flush()
        if not step.trivial:
            steps.append(step)
    if pending:
        flush()
    return steps


def _gather_blocks(steps: list[Step]) -> list[Step]:
    """Replace each run of parameter-only layers (and their entanglers) that follows data by one Block."""
    out: list[Step] = []
    seen_data, i = False, 0
    while i < len(steps):
        step = steps[i]
        if not (seen_data and isinstance(step, Layer) and not step.has_features):
            seen_data = seen_data or (isinstance(step, Layer) and step.has_features)
            out.append(step)
            i += 1
            continue
        layers: list[Layer] = []
        perms: list[Permute | None] = []
        while i < len(steps) and isinstance(layer := steps[i], Layer) and not layer.has_features:
            layers.append(layer)
            after = steps[i + 1] if i + 1 < len(steps) else None
            following = after if isinstance(after, Permute) else None
            perms.append(following)
            i += 2 if following is not None else 1
        out.append(Block(layers=tuple(layers), perms=tuple(perms)))
    return out


def _stacks_in_last_block(steps: list[Step]) -> int:
    gathered = [s for s in _gather_blocks(list(steps)) if isinstance(s, Block)]
    return len(gathered[-1].stacks) if gathered else 0


@lru_cache(maxsize=128)
def plan(circuit: Circuit, *, fold_readout: bool = True, blocks: bool = False) -> Plan:
    """The execution plan: layers alternating with entangler runs, optionally with parameter-only blocks.

    ``fold_readout``: with Z observables only, trailing entanglers fold into the readout matrix (probabilities
    ignore signs and a permutation only reorders them). ``blocks``: gather parameter-only layers after the data
    into :class:`Block` steps (see the module docs), for circuits of at most ``BLOCK_MAX_QUBITS`` qubits; whether
    they pay is :func:`block_cost`'s to say.
    """
    n = circuit.n_qubits
    z_only = fold_readout and bool(circuit.observables) and all(p == "Z" for p, _ in circuit.observables)
    steps = _layer_steps(circuit, split=blocks, z_readout=z_only)
    if z_only and blocks and n <= BLOCK_MAX_QUBITS:
        kept = _layer_steps(circuit, split=True)
        if _stacks_in_last_block(steps) > _stacks_in_last_block(kept):
            # a last layer without its phases would be a second structure in its block: one more stack to build
            # (measured slower at 4 and 6 qubits, 2 layers); keep the phases there
            steps = kept
    z_signs = None
    if z_only:
        basis = np.arange(2**n)
        z = np.stack([1.0 - 2.0 * bit(basis, w, n) for _, w in circuit.observables], axis=1)
        # p_new[j] = p_old[source[j]], so <Z> = sum_i p_old[i] z[inverse[i]].
        while steps and isinstance(last := steps[-1], Permute):
            steps.pop()
            z = z[np.argsort(last.source)]
        z_signs = z
    has_blocks = False
    if blocks and n <= BLOCK_MAX_QUBITS:
        steps = _gather_blocks(steps)
        has_blocks = any(isinstance(s, Block) for s in steps)
    if blocks and not has_blocks:  # nothing to gather: the unsplit plan has fewer layers
        return plan(circuit, fold_readout=fold_readout, blocks=False)
    return Plan(steps=tuple(steps), z_signs=z_signs, has_blocks=has_blocks)


@dataclass(frozen=True)
class BlockCost:
    """Estimated multiply-adds of one plan's blocks (see :func:`block_cost`): ``build`` per (point, patch),
    ``apply`` per (sample, patch) with the blocks, ``layered`` per (sample, patch) running the same layers one at
    a time."""

    build: float
    apply: float
    layered: float

    def pays(self, n_samples: int, shared_by: int = 1) -> bool:
        """Whether the blocks are cheaper for ``n_samples`` samples per call, each unitary built once for
        ``shared_by`` such calls (the chunks of an evaluation set sharing one parameter point)."""
        if (self.build == 0 and self.apply == 0) or (shared_by <= 1 and n_samples < 2):
            return False  # no block, or one sample: applying a unitary to one state never beats building it
        return self.build / max(1, shared_by) + n_samples * self.apply < n_samples * self.layered


@lru_cache(maxsize=128)
def block_cost(circuit: Circuit) -> BlockCost:
    """The cost estimate of :func:`plan`'s blocks for ``circuit``, in multiply-adds of a large GEMM.

    Per block of F layers on n qubits (D = 2**n, Kronecker halves of 2**a and 2**b): building its unitary costs
    F D**2 (2**a + 2**b) layer by layer from 5 qubits (``qlandscape.sim.blocks``), F D**2 + (F - 1) D**3 as a
    chain of dense products below; applying it costs D**2 per sample; the layers one at a time cost
    F D (2**a + 2**b + LAYER_OVERHEAD) per sample. With a Z readout after the last block, the block's GEMM output
    is read in place, which saves a pass over the state (D per sample). Zero everywhere when the plan has no
    block or the circuit is too large for one (``BLOCK_MAX_QUBITS``)."""
    n = circuit.n_qubits
    if n > BLOCK_MAX_QUBITS:
        return BlockCost(0.0, 0.0, 0.0)
    chosen = plan(circuit, blocks=True)
    dim = 2.0**n
    halves = 2.0 ** (n // 2) + 2.0 ** (n - n // 2)
    build = apply = layered = 0.0
    blocks = [step for step in chosen.steps if isinstance(step, Block)]
    for block in blocks:
        f = len(block.layers)
        build += f * dim**2 * halves if n >= 5 else f * dim**2 + (f - 1) * dim**3
        apply += dim**2
        layered += f * dim * (halves + LAYER_OVERHEAD)
    if blocks and chosen.z_signs is not None and chosen.steps[-1] is blocks[-1]:
        apply -= dim
    return BlockCost(build, apply, layered)
