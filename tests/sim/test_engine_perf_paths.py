"""The engine's fast paths (Kronecker groups, product-state start, Z readout with folded entanglers) against a
plain dense reference simulator -- correctness only, no timings (those live in benchmarks/perf)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from qlandscape.sim.circuits import build_circuit, catalogue
from qlandscape.sim.engine import simulate, simulate_state
from qlandscape.sim.gate_matrices import (
    apply_layer,
    apply_shared_layer,
    broadcast_shapes,
    kron,
    product_state,
    real_dtype,
)
from qlandscape.sim.gate_matrices import group_sizes as _group_sizes
from qlandscape.sim.lowering import Layer, plan
from qlandscape.sim.product_readout import product_plan
from tests.sim.reference import reference_expectations, reference_state


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_state_and_outputs_match_dense_reference(ansatz, n):
    try:
        circuit = build_circuit(ansatz, n, 2, observables=["Z", "X", "Y"] if n < 4 else None)
    except Exception:  # an ansatz that cannot be built at this width is not this test's business
        pytest.skip(f"{ansatz} not buildable with {n} qubits")
    g = torch.Generator().manual_seed(n)
    params = circuit.init_params((2,), g)
    features = torch.rand(3, 2, max(1, circuit.n_features), generator=g, dtype=torch.float64)
    states = simulate_state(circuit, params, features)
    outs = simulate(circuit, params, features)
    for b in range(3):
        for p in range(2):
            ref = reference_state(circuit, params[p], features[b, p])
            assert torch.allclose(states[b, p], ref, atol=1e-12)
            assert torch.allclose(outs[b, p], reference_expectations(circuit, ref), atol=1e-12)


def test_group_sizes_cover_every_wire():
    for n in range(1, 16):
        sizes = _group_sizes(n)
        assert sum(sizes) == n and max(sizes) <= 4 and min(sizes) >= 1


def test_z_readout_folds_trailing_entanglers():
    circuit = build_circuit("hea", 5, 2)  # ends with a CNOT ring, measures Z on every qubit
    assert plan(circuit).z_signs is not None
    g = torch.Generator().manual_seed(0)
    params = circuit.init_params((3,), g)
    features = torch.rand(4, 3, circuit.n_features, generator=g, dtype=torch.float64)
    state = simulate_state(circuit, params, features)
    probs = state.abs() ** 2
    z = torch.stack([1 - 2 * ((torch.arange(32) >> (4 - w)) & 1) for w in range(5)], -1).double()
    assert torch.allclose(simulate(circuit, params, features), probs @ z, atol=1e-13)


def test_torch_func_transforms_through_fast_paths():
    circuit = build_circuit("hea", 6, 2)  # 6 qubits: Kronecker groups of two wires
    g = torch.Generator().manual_seed(1)
    params = circuit.init_params((2,), g)
    features = torch.rand(3, 2, circuit.n_features, generator=g, dtype=torch.float64)

    def f(p):
        return simulate(circuit, p, features).sum()

    h = torch.func.hessian(f)(params)
    p0 = params.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(p0), p0, create_graph=True)
    v = torch.randn_like(params)
    (hv,) = torch.autograd.grad((grad * v).sum(), p0)
    assert torch.allclose(torch.einsum("abcd,cd->ab", h, v), hv, atol=1e-10)
    batched = torch.func.vmap(lambda p: simulate(circuit, p, features))(params.expand(4, -1, -1))
    assert torch.allclose(batched[2], simulate(circuit, params, features), atol=1e-14)
    lo = simulate(circuit, params, features, dtype=torch.complex64)
    assert lo.dtype == torch.float32 and torch.allclose(lo.double(), simulate(circuit, params, features), atol=1e-5)


@pytest.mark.parametrize("wires", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("rows", [1, 40])
def test_kronecker_products_and_product_states_against_torch_kron(wires, rows):
    g = torch.Generator().manual_seed(wires * rows)
    mats = [torch.randn(rows, 2, 2, dtype=torch.complex128, generator=g) for _ in range(wires)]
    expected = mats[0]
    for m in mats[1:]:
        expected = torch.stack([torch.kron(a, b) for a, b in zip(expected, m, strict=True)])
    assert torch.allclose(kron(mats), expected, atol=1e-13)
    columns = [m[:, :, 0] for m in mats]
    assert torch.allclose(product_state(columns), expected[:, :, 0], atol=1e-13)


@pytest.mark.parametrize("n", [2, 3, 6, 8, 9, 10])
@pytest.mark.parametrize("real_state", [False, True])
def test_shared_layer_matches_per_row_layer(n, real_state):
    g = torch.Generator().manual_seed(n)
    k, b, p = 2, 3, 2
    wires = [torch.randn(k, 1, p, 2, 2, dtype=torch.complex128, generator=g) for _ in range(n)]  # per point, patch
    dtype = torch.float64 if real_state else torch.complex128
    state = torch.randn(1, b, p, 2**n, dtype=dtype, generator=g)  # shared by the points
    shared = apply_shared_layer(state, wires, n)
    rows = [w.expand(k, b, p, 2, 2).reshape(-1, 2, 2) for w in wires]
    per_row = apply_layer(state.expand(k, b, p, -1).reshape(k * b * p, -1), rows, n).reshape(k, b, p, -1)
    assert shared.shape == (k, b, p, 2**n)
    assert torch.allclose(shared, per_row, atol=1e-11)


@pytest.mark.parametrize(
    "first_gates", [["RX", "RZ", "RY"], ["RY", "RY"], ["RZ"], ["RX"], ["x:RX", "x:RZ"], ["x:RY", "RY"]]
)
def test_first_layer_on_zero_state_for_any_rotations(first_gates, tmp_path):
    """The product-state start (first columns of the first layer) for multi-gate, complex, data and mixed layers."""
    spec = tmp_path / "first.toml"
    gates = ", ".join(f'"{g}"' for g in first_gates)
    spec.write_text(
        f'name = "first"\ndescription = "test"\nobservables = ["Z"]\n'
        f'[[block]]\ntype = "layers"\nrepeat = 1\ngates = [{gates}]\nentangler = "CZ"\npattern = "chain"\n'
        f'[[block]]\ntype = "layers"\nrepeat = "layers"\ngates = ["RY"]\nentangler = "CNOT"\n'
        f'pattern = "ring"\n'
    )
    circuit = build_circuit(spec, 3, 2)
    g = torch.Generator().manual_seed(5)
    params = circuit.init_params((2,), g)
    features = torch.rand(3, 2, max(1, circuit.n_features), generator=g, dtype=torch.float64)
    states, outs = simulate_state(circuit, params, features), simulate(circuit, params, features)
    for b in range(3):
        for p in range(2):
            ref = reference_state(circuit, params[p], features[b, p])
            assert torch.allclose(states[b, p], ref, atol=1e-12)
            assert torch.allclose(outs[b, p], reference_expectations(circuit, ref), atol=1e-12)


@pytest.mark.parametrize("ansatz", ["hea", "strongly_entangling"])
def test_phases_before_a_z_readout_are_dropped_exactly(ansatz):
    """The last RZ of every wire cannot change a Z-basis probability: the Z plan drops it, the state plan keeps it,
    and the outputs, gradients (exact zeros for those parameters) and Hessians are unchanged."""
    circuit = _circuit_or_skip(ansatz, 5, 2)
    last = [s for s in plan(circuit, fold_readout=True).steps if isinstance(s, Layer)][-1]
    assert all(key[-1][0] != "RZ" for key, _, _ in last.signatures)  # no wire ends in a phase
    kept = [s for s in plan(circuit, fold_readout=False).steps if isinstance(s, Layer)][-1]
    assert all(key[-1][0] == "RZ" for key, _, _ in kept.signatures)
    g = torch.Generator().manual_seed(11)
    params = circuit.init_params((2,), g).requires_grad_(True)
    features = torch.rand(1, 2, circuit.n_features, generator=g, dtype=torch.float64)  # 1 sample: layered path
    ref = torch.stack(
        [reference_expectations(circuit, reference_state(circuit, params[p], features[0, p])) for p in range(2)]
    )
    out = simulate(circuit, params, features)
    assert torch.allclose(out[0], ref, atol=1e-12)
    (g_out,) = torch.autograd.grad(out.sum(), params)
    (g_ref,) = torch.autograd.grad(ref.sum(), params)
    assert torch.allclose(g_out, g_ref, atol=1e-12)
    last_on_wire = {gate.wires[0]: gate for gate in circuit.gates if gate.source == "param"}
    dropped = [gate.index for gate in last_on_wire.values() if gate.name == "RZ"]
    assert len(dropped) == 5 and torch.count_nonzero(g_out[:, dropped]) == 0
    h = torch.func.hessian(lambda p: simulate(circuit, p, features).sum())(params.detach())
    h_ref = torch.func.hessian(
        lambda p: torch.stack(
            [reference_expectations(circuit, reference_state(circuit, p[k], features[0, k])) for k in range(2)]
        ).sum()
    )(params.detach())
    assert torch.allclose(h, h_ref, atol=1e-10)


def _circuit_or_skip(ansatz, n, layers):
    try:
        return build_circuit(ansatz, n, layers)
    except Exception:
        pytest.skip(f"{ansatz} not buildable with {n} qubits")


def test_broadcast_shapes_and_circuit_hash():

    for dtype in (torch.complex128, torch.complex64, torch.float64, torch.float32):
        assert real_dtype(dtype) == torch.zeros(1, dtype=dtype).real.dtype

    assert broadcast_shapes((1, 4), (64, 4)) == tuple(torch.broadcast_shapes((1, 4), (64, 4)))
    assert broadcast_shapes((3, 1, 2, 5), (7, 1, 5), (1,)) == (3, 7, 2, 5)
    with pytest.raises(RuntimeError):
        broadcast_shapes((2, 3), (4, 3))
    circuit = build_circuit("hea", 3, 2)
    twin = build_circuit("hea", 3, 2)
    assert hash(circuit) == hash(twin) and circuit == twin
    restored = pickle.loads(pickle.dumps(circuit))
    assert "_hash" not in restored.__dict__ and restored == circuit and hash(restored) == hash(circuit)
    assert hash(copy.deepcopy(circuit)) == hash(circuit)


@pytest.mark.parametrize(
    "spec_text",
    [
        None,  # hea: RY encoding, one RY RZ layer, CNOT ring
        'gates = ["x:RX", "RZ", "RY"]\nentangler = "CZ"\npattern = "all-to-all"',
        'gates = ["RY", "x:RX"]\nentangler = "CNOT"\npattern = "strong"',
    ],
)
@pytest.mark.parametrize("n", [1, 3, 5])
def test_product_state_readout_matches_the_state_vector(spec_text, n, tmp_path):
    """Rotations only before the entanglers and a Z readout: outputs are parities of a product state, computed
    without the state vector; they must equal the state-vector readout, gradients included."""
    if spec_text is None:
        circuit = build_circuit("hea", n, 1)
    else:
        spec = tmp_path / "one.toml"
        spec.write_text(
            f'name = "one"\ndescription = "t"\nobservables = ["Z"]\n[[block]]\ntype = "encode"\n{spec_text}\n'
        )
        circuit = build_circuit(spec, n, 1, measure_qubits=[n - 1, 0] if n > 1 else None)
    assert product_plan(circuit) is not None
    g = torch.Generator().manual_seed(n)
    params = circuit.init_params((3, 2), g).requires_grad_(circuit.n_params > 0)  # 3 parameter points
    features = torch.rand(4, 2, circuit.n_features, generator=g, dtype=torch.float64)
    outs = simulate(circuit, params, features)
    assert outs.shape == (3, 4, 2, circuit.n_outputs)
    ref_params = params.detach().clone().requires_grad_(circuit.n_params > 0)
    ref = torch.stack(
        [
            torch.stack(
                [
                    torch.stack(
                        [
                            reference_expectations(circuit, reference_state(circuit, ref_params[k, p], features[b, p]))
                            for p in range(2)
                        ]
                    )
                    for b in range(4)
                ]
            )
            for k in range(3)
        ]
    )
    assert torch.allclose(outs, ref, atol=1e-13)
    if circuit.n_params:
        w = torch.randn(outs.shape, generator=g, dtype=torch.float64)
        (grad,) = torch.autograd.grad((outs * w).sum(), params)
        (ref_grad,) = torch.autograd.grad((ref * w).sum(), ref_params)
        assert torch.allclose(grad, ref_grad, atol=1e-12)
    assert product_plan(build_circuit("hea", max(n, 2), 2)) is None  # a second layer entangles first


@pytest.mark.parametrize("n", [2, 5, 8])
@pytest.mark.parametrize("real_state, real_halves", [(False, False), (True, False), (False, True), (True, True)])
def test_shared_layer_on_a_training_batch_matches_per_row_layer(n, real_state, real_halves):
    """State (B, P, 2**n) with per-patch halves: the patch-major path, values and gradients, against the per-row
    layer."""
    g = torch.Generator().manual_seed(n)
    b, p = 5, 3
    mdtype = torch.float64 if real_halves else torch.complex128
    wires = [torch.randn(1, p, 2, 2, dtype=mdtype, generator=g).requires_grad_(True) for _ in range(n)]
    state = torch.randn(
        b, p, 2**n, dtype=torch.float64 if real_state else torch.complex128, generator=g
    ).requires_grad_(True)
    shared = apply_shared_layer(state, wires, n)
    rows = [w.expand(b, p, 2, 2).reshape(-1, 2, 2) for w in wires]
    per_row = apply_layer(state.reshape(b * p, -1), rows, n).reshape(b, p, -1)
    assert shared.shape == (b, p, 2**n) and torch.allclose(shared, per_row, atol=1e-11)
    weights = torch.randn(shared.shape, dtype=shared.dtype, generator=g)
    grads = torch.autograd.grad((shared * weights.conj()).real.sum(), [state, *wires])
    ref = torch.autograd.grad((per_row * weights.conj()).real.sum(), [state, *wires])
    assert all(torch.allclose(x, y, atol=1e-10) for x, y in zip(grads, ref, strict=True))
