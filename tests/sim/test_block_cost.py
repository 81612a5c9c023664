"""The block plan chosen by its cost estimate, and the block plan against the plain layered plan at 6-10 qubits
(values, gradients and Hessian-vector products of a weighted readout) for every catalogue ansatz and X, Y, Z
readouts; the parameter work done once (``parameter_work``) against the plan run per call."""

from __future__ import annotations

import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.core.objective import Objective
from qlandscape.core.shared_work import SharedWork
from qlandscape.models.qnn import PatchQNN
from qlandscape.sim import engine
from qlandscape.sim.circuits import build_circuit, catalogue
from qlandscape.sim.lowering import LAYER_OVERHEAD, Block, block_cost, plan
from tests.sim.test_devices import _OffDeviceOps

READOUTS = (["Z"], ["X", "Y"], ["X", "Z"])


def _circuit(ansatz: str, n: int, layers: int, observables):
    try:
        return build_circuit(ansatz, n, layers, observables=observables, measure_qubits=range(min(n, 5)))
    except Exception:
        pytest.skip(f"{ansatz} not buildable with {n} qubits")


def test_cost_estimate_by_hand():
    """hea at 6 qubits, 2 layers: one block of 2 layers after the encoding, built layer by layer (halves of 8 and
    8 amplitudes), Z readout read in place after it."""
    circuit = build_circuit("hea", 6, 2)
    blocks = [s for s in plan(circuit, blocks=True).steps if isinstance(s, Block)]
    assert [len(b.layers) for b in blocks] == [2]
    cost = block_cost(circuit)
    assert cost.build == 2 * 64**2 * 16
    assert cost.apply == 64**2 - 64
    assert cost.layered == 2 * 64 * (16 + LAYER_OVERHEAD)
    assert not cost.pays(16) and cost.pays(32)  # the measured crossover, ~24 samples
    assert not cost.pays(1, shared_by=1) and cost.pays(1, shared_by=10**6)


def test_kawase_paper_model_uses_blocks():
    """The 8-qubit kawase circuit with L = 50: blocks pay from ~100 samples per call, or from one sample when the
    work is shared by enough chunks; a product-state circuit never shares work."""
    circuit = build_circuit("kawase", 8, 50)
    assert engine.use_blocks(circuit, 1000) and not engine.use_blocks(circuit, 50)
    assert engine.shares_parameter_work(circuit, 10, 60) and engine.shares_parameter_work(circuit, 1000, 1)
    assert not engine.shares_parameter_work(circuit, 3, 10) and not engine.shares_parameter_work(circuit, 30, 1)
    assert not engine.shares_parameter_work(build_circuit("hea", 4, 1), 100, 60)  # product-state readout
    assert block_cost(build_circuit("hea", 11, 2)).build == 0  # a 2**11 unitary per patch is too large


def _weights(circuit, n_samples, n_patches, seed):
    g = torch.Generator().manual_seed(seed)
    params = circuit.init_params((n_patches,), g)
    features = torch.rand(n_samples, n_patches, max(1, circuit.n_features), generator=g, dtype=torch.float64)
    weights = torch.randn(n_samples, n_patches, circuit.n_outputs, generator=g, dtype=torch.float64)
    tangent = torch.randn(params.shape, generator=g, dtype=torch.float64)
    return params, features, weights, tangent


def _derivatives(f, params, tangent):
    value = f(params)
    grad = torch.func.grad(f)(params)
    hvp = torch.func.jvp(torch.func.grad(f), (params,), (tangent,))[1]
    return value, grad, hvp


def _check_plans_agree(ansatz, n, observables, monkeypatch, layers=2):
    circuit = _circuit(ansatz, n, layers, observables)
    if not plan(circuit, blocks=True).has_blocks:
        pytest.skip(f"{ansatz} has no parameter-only layers after its data")
    params, features, weights, tangent = _weights(circuit, 3, 2, n)

    def f(p, work=None):
        out = engine.simulate(circuit, p, features, work=work)
        return (out * weights).sum() + 0.5 * (out**2 * weights).sum()  # a nonlinear readout: curvature in out

    monkeypatch.setattr(engine, "use_blocks", lambda circuit, n_samples, shared_by=1: True)
    blocked = _derivatives(f, params, tangent)
    shared = _derivatives(lambda p: f(p, engine.parameter_work(circuit, p)), params, tangent)
    monkeypatch.setattr(engine, "use_blocks", lambda circuit, n_samples, shared_by=1: False)
    layered = _derivatives(f, params, tangent)
    for a, b, c in zip(blocked, layered, shared, strict=True):
        assert torch.allclose(a, b, atol=1e-12, rtol=0), (a - b).abs().max()
        assert torch.allclose(c, b, atol=1e-12, rtol=0), (c - b).abs().max()


@pytest.mark.parametrize(("ansatz", "n", "observables"), [("kawase", 6, ["X", "Z"]), ("hea", 7, ["Y"])])
def test_blocked_equals_layered(ansatz, n, observables, monkeypatch):
    _check_plans_agree(ansatz, n, observables, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("observables", READOUTS)
@pytest.mark.parametrize("n", [6, 8, 10])
@pytest.mark.parametrize("ansatz", sorted(catalogue()))
def test_blocked_equals_layered_sweep(ansatz, n, observables, monkeypatch):
    _check_plans_agree(ansatz, n, observables, monkeypatch, layers=1 if n == 10 else 2)


def test_work_must_match_the_plan():
    circuit = build_circuit("kawase", 4, 1, measure_qubits=[0, 1])
    params, features, _, _ = _weights(circuit, 2, 1, 0)
    work = engine.parameter_work(circuit, params)
    assert len(work) == 3  # the state before the first data layer, then the two blocks' unitaries
    with pytest.raises(ConfigError, match="work"):
        engine.simulate(circuit, params, features, work=work[1:])
    assert engine.parameter_work(build_circuit("hea", 4, 1), params[..., :0].new_zeros(1, 8)) == ()


def test_parameter_work_stays_on_the_inputs_device():
    """The shared work and the calls that use it, forward and backward, on torch's "meta" device (see
    tests/sim/test_devices.py): no op mixes in a tensor from another device, as CUDA would refuse."""
    for ansatz in sorted(catalogue()):
        circuit = build_circuit(ansatz, 4, 2, observables=["X", "Z"], measure_qubits=[0, 1])
        params = circuit.init_params((2,)).to("meta").requires_grad_(True)
        feats = torch.rand(5, 2, max(1, circuit.n_features), dtype=torch.float64).to("meta")
        with _OffDeviceOps("meta") as mode:
            work = engine.parameter_work(circuit, params)
            engine.simulate(circuit, params, feats, work=work).sum().backward()
        assert mode.found == [], (ansatz, mode.found[:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_shared_work_on_cuda_matches_cpu():
    """The two-level route with the work on a GPU: loss, gradient and HVP over chunks equal the CPU's ordinary
    route (skipped without CUDA)."""
    kw = dict(ansatz="kawase", n_qubits=6, n_layers=2, patch_size=8, stride=6, positional_bias=True)
    cpu, gpu = PatchQNN((14, 14), 2, **kw), PatchQNN((14, 14), 2, device="cuda", **kw)
    x, y = torch.rand(12, 14, 14, dtype=torch.float64), torch.randint(0, 2, (12,))
    ordinary, chunked = Objective(cpu, x, y), Objective(gpu, x, y, chunk_size=4)
    ordinary.shared_work = lambda: None
    shared = SharedWork(chunked.model, chunked.unflatten, chunked.loss_fn, chunked.chunks)
    v = torch.randn(ordinary.n_params, dtype=torch.float64)
    assert abs(float(ordinary.loss() - shared.loss(chunked.theta0))) < 1e-12
    assert torch.allclose(ordinary.grad(), shared.value_and_grad(chunked.theta0)[1], atol=1e-12)
    assert torch.allclose(ordinary.hvp(None, v), shared.hvp(chunked.theta0, v), atol=1e-11)
