"""The engine's block plan (parameter-only layers after the data applied as one unitary per point and patch) and
its natural-batch execution, against the plain layered plan and a gate-by-gate reference -- correctness only."""

from __future__ import annotations

import threading

import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.sim import blocks as sim_blocks
from qlandscape.sim import engine
from qlandscape.sim.backends import make_backend
from qlandscape.sim.circuits import build_circuit, catalogue
from qlandscape.sim.lowering import Block, plan
from tests.sim.reference import reference_expectations, reference_state


def _force(monkeypatch, blocks: bool) -> None:
    monkeypatch.setattr(engine, "use_blocks", lambda circuit, n_samples: blocks)


def _circuit(ansatz: str, n: int, layers: int, observables=None):
    try:
        return build_circuit(ansatz, n, layers, observables=observables)
    except Exception:
        pytest.skip(f"{ansatz} not buildable with {n} qubits")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_block_plan_matches_reference(ansatz, n, monkeypatch):
    circuit = _circuit(ansatz, n, 3, observables=["Z", "X", "Y"])
    _force(monkeypatch, True)
    g = torch.Generator().manual_seed(n)
    params = circuit.init_params((2,), g)
    features = torch.rand(4, 2, max(1, circuit.n_features), generator=g, dtype=torch.float64)
    states = engine.simulate_state(circuit, params, features)
    outs = engine.simulate(circuit, params, features)
    for b in range(4):
        for p in range(2):
            ref = reference_state(circuit, params[p], features[b, p])
            assert torch.allclose(states[b, p], ref, atol=1e-12)
            assert torch.allclose(outs[b, p], reference_expectations(circuit, ref), atol=1e-12)


@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_blocks_exist_where_parameters_follow_data(ansatz):
    circuit = _circuit(ansatz, 5, 2)
    blocks = [s for s in plan(circuit, blocks=True).steps if isinstance(s, Block)]
    if ansatz in ("hea", "strongly_entangling", "kawase"):
        assert blocks and sum(len(b.layers) for b in blocks) >= 2
    assert not any(isinstance(s, Block) for s in plan(circuit, blocks=False).steps)


@pytest.mark.parametrize("observables", [["Z", "X"], None])
@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_parameter_points_share_the_data(ansatz, n, observables, monkeypatch):
    """A grid of parameter points (K dims) over shared samples: blocks vs layered vs one point at a time."""
    circuit = _circuit(ansatz, n, 2, observables=observables)
    g = torch.Generator().manual_seed(7)
    params = circuit.init_params((3, 2, 5), g)  # (K1, K2, P, n)
    features = torch.rand(6, 5, circuit.n_features, generator=g, dtype=torch.float64)
    _force(monkeypatch, True)
    fast = engine.simulate(circuit, params, features)
    _force(monkeypatch, False)
    layered = engine.simulate(circuit, params, features)
    assert fast.shape == (3, 2, 6, 5, circuit.n_outputs)
    assert torch.allclose(fast, layered, atol=1e-12)
    assert torch.allclose(fast[2, 1], engine.simulate(circuit, params[2, 1], features), atol=1e-12)


def test_grid_readout_in_chunks_and_threads(monkeypatch):
    """The no-grad grid path (chunks of points into a reused per-thread buffer) equals the differentiable path,
    with one point per chunk and from two threads at once."""
    circuit = build_circuit("hea", 4, 2)
    g = torch.Generator().manual_seed(3)
    params = circuit.init_params((9, 3), g)
    features = torch.rand(7, 3, circuit.n_features, generator=g, dtype=torch.float64)
    reference = engine.simulate(circuit, params.clone().requires_grad_(True), features).detach()
    monkeypatch.setattr(sim_blocks, "_CHUNK_BYTES", 1)
    with torch.no_grad():
        assert torch.allclose(engine.simulate(circuit, params, features), reference, atol=1e-13)
    results = {}

    def run(i):
        with torch.no_grad():
            results[i] = [engine.simulate(circuit, params * (1 + i), features) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        expected = engine.simulate(circuit, (params * (1 + i)).requires_grad_(True), features).detach()
        assert all(torch.allclose(r, expected, atol=1e-13) for r in results[i])


def test_torch_func_through_blocks(monkeypatch):
    """Hessian (forward-over-reverse), vmap over points and complex64 all run through the block path."""
    _force(monkeypatch, True)
    circuit = build_circuit("strongly_entangling", 4, 3)
    g = torch.Generator().manual_seed(2)
    params = circuit.init_params((3,), g)
    features = torch.rand(5, 3, circuit.n_features, generator=g, dtype=torch.float64)

    def f(p):
        return (engine.simulate(circuit, p, features) ** 2).sum()

    h_blocks = torch.func.hessian(f)(params)
    _force(monkeypatch, False)
    h_layered = torch.func.hessian(f)(params)
    assert torch.allclose(h_blocks, h_layered, atol=1e-11)
    _force(monkeypatch, True)
    batched = torch.func.vmap(lambda p: engine.simulate(circuit, p, features))(params.expand(4, -1, -1))
    assert torch.allclose(batched[3], engine.simulate(circuit, params, features), atol=1e-14)
    lo = engine.simulate(circuit, params, features, dtype=torch.complex64)
    assert lo.dtype == torch.float32 and torch.allclose(
        lo.double(), engine.simulate(circuit, params, features), atol=1e-5
    )


def test_block_choice_follows_circuit_size_and_samples():
    small, large = build_circuit("hea", 4, 2), build_circuit("hea", 8, 2)
    assert engine.use_blocks(small, 64) and not engine.use_blocks(small, 1)
    assert not engine.use_blocks(large, 512)
    six = build_circuit("hea", 6, 2)
    assert engine.use_blocks(six, 32) and not engine.use_blocks(six, 16)


def test_per_point_features_and_bad_shapes():
    """Features may carry the parameter-point dims; dims that do not broadcast fail naming both shapes."""
    circuit = build_circuit("hea", 3, 2)
    g = torch.Generator().manual_seed(4)
    params = circuit.init_params((3, 2), g)
    features = torch.rand(3, 5, 2, circuit.n_features, generator=g, dtype=torch.float64)
    out = engine.simulate(circuit, params, features)
    assert out.shape == (3, 5, 2, circuit.n_outputs)
    assert torch.allclose(out[1], engine.simulate(circuit, params[1], features[1]), atol=1e-13)
    with pytest.raises(ConfigError, match=r"\(4, 5, 2, 3\).*do not broadcast"):
        engine.simulate(circuit, params, torch.rand(4, 5, 2, circuit.n_features, dtype=torch.float64))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("n_outputs", [None, 2])
def test_patch_mean_as_quadratic_forms(layers, n_outputs):
    """The grid readout (Re(U†ZU) quadratic forms, patch mean in one GEMM) against simulate's outputs averaged,
    for a complex block (2 layers) and a real one (1 layer: RY only once the trailing phases are dropped)."""
    circuit = _circuit("hea", 4, layers)
    g = torch.Generator().manual_seed(layers)
    params = circuit.init_params((5, 3), g)  # (K, P, n)
    features = torch.rand(7, 3, circuit.n_features, generator=g, dtype=torch.float64)
    want = engine.simulate(circuit, params, features)[..., : n_outputs or circuit.n_outputs].mean(dim=-2)
    got = engine.simulate_patch_mean(circuit, params, features, n_outputs=n_outputs)
    assert got.shape == want.shape == (5, 7, n_outputs or circuit.n_outputs)
    assert torch.allclose(got, want, atol=1e-12)
    p = params.clone().requires_grad_(True)  # differentiated: the ordinary path, with its gradient
    out = engine.simulate_patch_mean(circuit, p, features, n_outputs=n_outputs)
    assert torch.allclose(out, want, atol=1e-12) and out.requires_grad


def test_patch_mean_with_a_complex_encoding(tmp_path):
    """An RX encoding leaves a complex state before the last block: the patch mean takes the fused readout."""
    spec = tmp_path / "rx.toml"
    spec.write_text(
        'name = "rx"\ndescription = "test"\nobservables = ["Z"]\n[[block]]\ntype = "encode"\n'
        'gates = ["x:RX"]\n[[block]]\ntype = "layers"\nrepeat = "layers"\ngates = ["RY", "RZ"]\n'
        'entangler = "CNOT"\npattern = "ring"\n'
    )
    circuit = build_circuit(spec, 3, 2)
    g = torch.Generator().manual_seed(9)
    params = circuit.init_params((4, 2), g)
    features = torch.rand(5, 2, circuit.n_features, generator=g, dtype=torch.float64)
    want = engine.simulate(circuit, params, features)[..., :2].mean(dim=-2)
    assert torch.allclose(engine.simulate_patch_mean(circuit, params, features, n_outputs=2), want, atol=1e-12)


def test_patch_mean_on_pennylane_and_bad_output_counts():
    circuit = _circuit("hea", 3, 1)
    g = torch.Generator().manual_seed(4)
    params = circuit.init_params((2,), g)
    features = torch.rand(3, 2, circuit.n_features, generator=g, dtype=torch.float64)
    ours = make_backend("torch").patch_mean(circuit, params, features, n_outputs=2)
    theirs = make_backend("default.qubit").patch_mean(circuit, params, features, n_outputs=2)
    assert ours.shape == theirs.shape == (3, 2) and torch.allclose(ours, theirs, atol=1e-10)
    for bad in (0, circuit.n_outputs + 1):
        with pytest.raises(ConfigError, match="n_outputs"):
            engine.simulate_patch_mean(circuit, params, features, n_outputs=bad)
