"""The lowering's typed IR: every attribute a plan step carries is a declared dataclass field (derived ones
computed on construction), so nothing is attached behind mypy's back, and the derived values are right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qlandscape.sim.circuits import Circuit, build_circuit, catalogue
from qlandscape.sim.gates import rotation
from qlandscape.sim.lowering import Block, Gather, Layer, Permute, Plan, SignatureGather, Stack, lower, plan


def _objects(value: object, seen: set[int]) -> list[object]:
    """Every dataclass instance reachable from ``value`` through fields, tuples and lists."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = [value]
        for f in dataclasses.fields(value):
            found += _objects(getattr(value, f.name), seen)
        return found
    if isinstance(value, (tuple, list)):
        return [obj for item in value for obj in _objects(item, seen)]
    return []


@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_plan_objects_carry_only_declared_fields(ansatz):
    kinds = set()
    for n in (2, 4, 6):
        try:
            circuit = build_circuit(ansatz, n, 2)
        except Exception:  # an ansatz that cannot be built at this width is not this test's business
            continue
        for fold_readout in (True, False):
            for blocks in (True, False):
                for obj in _objects(plan(circuit, fold_readout=fold_readout, blocks=blocks), set()):
                    declared = {f.name for f in dataclasses.fields(obj)}
                    assert set(vars(obj)) <= declared, (type(obj).__name__, set(vars(obj)) - declared)
                    kinds.add(type(obj))
    assert {Plan, Layer, Stack} <= kinds


def test_derived_fields_are_declared_and_computed():
    derived = {
        Permute: {"sign_vector"},
        SignatureGather: {"first_column", "cos_sin_column"},
        Layer: {"stack"},
        Block: {"stacks", "order", "rows", "signs"},
        Plan: {"z_read", "z_pairs_read"},
    }
    for cls, names in derived.items():
        not_init = {f.name for f in dataclasses.fields(cls) if not f.init}
        assert names == not_init, cls

    circuit = build_circuit("strongly_entangling", 3, 3)  # CNOT runs with ranges 1 and 2, Z readout
    chosen = plan(circuit, blocks=True)
    assert chosen.has_blocks and chosen.z_read is not None and chosen.z_pairs_read is not None
    assert np.array_equal(chosen.z_read, chosen.z_signs.T) and chosen.z_read.flags.c_contiguous
    assert np.array_equal(chosen.z_pairs_read, np.repeat(chosen.z_signs, 2, axis=0).T)
    block = next(step for step in chosen.steps if isinstance(step, Block))
    assert block.rows is not None and block.signs is None  # CNOTs permute and never flip a sign
    for step in lower(build_circuit("reuploading", 3, 1)):  # CZ runs: signs, no permutation
        if isinstance(step, Permute):
            assert step.identity and step.sign_vector is step.sign and not step.trivial
    layer = next(step for step in plan(circuit).steps if isinstance(step, Layer))
    assert layer.stack.gated == layer.gated and len(layer.stack.signatures) == len(layer.signatures)
    gather = Gather(index=np.arange(2), start=0, shape=(1, 2))
    for names, column, cos_sin in ((["RY"], [0, 1], True), (["RX"], [0, -1j], False), (["RY", "RZ"], [0, 1], False)):
        generators = np.stack([rotation(name).generator for name in names])
        signature = SignatureGather(source="param", gather=gather, generators=generators)
        assert np.array_equal(signature.first_column, column) and signature.cos_sin_column == cos_sin, names


def test_circuit_hash_is_computed_once_and_not_a_field():
    circuit = build_circuit("hea", 3, 2)
    assert "_hash" not in {f.name for f in dataclasses.fields(Circuit)}
    assert "_hash" not in vars(circuit)
    first = hash(circuit)
    assert vars(circuit)["_hash"] == first == hash(circuit)
    twin = build_circuit("hea", 3, 2)
    assert twin == circuit and hash(twin) == first and twin is not circuit
