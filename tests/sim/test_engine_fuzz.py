"""Random circuit specs through every engine path (product-state start, shared layers, blocks, folded readout,
dropped phases, grids of parameter points) against the gate-by-gate dense reference: states, expectations and
parameter gradients. The specs are drawn from a seeded generator, so a failure names a reproducible case."""

from __future__ import annotations

import random

import pytest
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.sim.circuits import PAULIS, build_circuit
from qlandscape.sim.engine import simulate, simulate_patch_mean, simulate_state
from tests.sim.reference import reference_expectations, reference_state

N_CASES = 60


def _gates(rng: random.Random, data: bool) -> list[str]:
    tokens = [rng.choice(("RX", "RY", "RZ")) for _ in range(rng.randint(0 if data else 1, 3))]
    if data:
        tokens.insert(rng.randint(0, len(tokens)), "x:" + rng.choice(("RX", "RY", "RZ")))
    return tokens


def _toml_list(items) -> str:
    return "[" + ", ".join(f'"{i}"' if isinstance(i, str) else _toml_list(i) for i in items) + "]"


def random_spec(rng: random.Random) -> str:
    """A TOML spec: an encoding block, one or two layer blocks (some re-uploading), random readout."""
    lines = [
        'name = "fuzz"',
        'description = "random"',
        # Z alone half the time: the Z readout has the most special paths (folding, dropped phases, grids)
        f"observables = {_toml_list(['Z'] if rng.random() < 0.5 else rng.sample(PAULIS, rng.randint(1, 3)))}",
    ]
    encode = [
        "[[block]]",
        'type = "encode"',
        f"gates = {_toml_list(_gates(rng, True))}",
        f"features_per_qubit = {rng.randint(1, 2)}",
        f'order = "{rng.choice(("qubit", "round-robin"))}"',
    ]
    if rng.random() < 0.3:
        encode.append(f"alternate = {_toml_list([_gates(rng, True), _gates(rng, True)])}")
    if rng.random() < 0.5:
        encode += [f'entangler = "{rng.choice(("CNOT", "CZ"))}"', f'pattern = "{rng.choice(("chain", "ring"))}"']
    blocks = [encode] if rng.random() < 0.85 else []
    for _ in range(rng.randint(1, 2)):
        reupload = rng.random() < 0.25
        layer = [
            "[[block]]",
            'type = "layers"',
            f"gates = {_toml_list(_gates(rng, reupload))}",
            f'entangler = "{rng.choice(("CNOT", "CZ", "none"))}"',
            f'pattern = "{rng.choice(("chain", "ring", "all-to-all", "strong"))}"',
        ]
        if rng.random() < 0.3:
            layer.append(f"repeat = {rng.randint(1, 2)}")
        if reupload:
            layer.append("reupload = true")
        if rng.random() < 0.3:
            layer.append("skip_last_entangler = true")
        blocks.append(layer)
    rng.shuffle(blocks[1:] if len(blocks) > 2 else [])
    return "\n".join(lines + [line for block in blocks for line in block]) + "\n"


def _case(seed: int, tmp_path):
    rng = random.Random(seed)
    spec = tmp_path / f"fuzz{seed}.toml"
    spec.write_text(random_spec(rng))
    n, layers = rng.randint(1, 6), rng.randint(1, 3)
    measure = sorted(rng.sample(range(n), rng.randint(1, n))) if rng.random() < 0.4 else None
    try:
        circuit = build_circuit(spec, n, layers, measure_qubits=measure)
    except ConfigError as err:  # a random spec the catalogue rejects (with a named reason) is not a failure
        pytest.skip(f"spec rejected: {err}")
    return rng, circuit


@pytest.mark.parametrize("seed", range(N_CASES))
def test_random_spec_matches_dense_reference(seed, tmp_path):
    rng, circuit = _case(seed, tmp_path)
    g = torch.Generator().manual_seed(seed)
    n_patches = 2
    for n_samples in (1, 3, 30):  # 30 samples take the block plan wherever the circuit is small enough
        params = circuit.init_params((n_patches,), g).requires_grad_(circuit.n_params > 0)
        features = torch.rand(n_samples, n_patches, max(1, circuit.n_features), generator=g, dtype=torch.float64)
        outs = simulate(circuit, params, features)
        states = simulate_state(circuit, params.detach(), features)
        weights = torch.randn(outs.shape, generator=g, dtype=torch.float64)
        differentiable = outs.requires_grad  # False when no parameter reaches the readout
        if differentiable:
            (grad,) = torch.autograd.grad((outs * weights).sum(), params)
        ref_params = params.detach().clone().requires_grad_(circuit.n_params > 0)
        ref_total, picks = 0.0, [(b, p) for b in range(n_samples) for p in range(n_patches)]
        for b, p in picks[:6] if n_samples > 3 else picks:
            ref = reference_state(circuit, ref_params[p], features[b, p])
            ref_out = reference_expectations(circuit, ref)
            assert torch.allclose(states[b, p], ref.detach(), atol=1e-12), (b, p)
            assert torch.allclose(outs[b, p].detach(), ref_out.detach(), atol=1e-12), (b, p)
            ref_total = ref_total + (ref_out * weights[b, p]).sum()
        if n_samples <= 3 and circuit.n_params > 0:  # every pair is in the reference sum: gradients must agree
            (ref_grad,) = torch.autograd.grad(ref_total, ref_params, allow_unused=True)
            ref_grad = torch.zeros_like(params) if ref_grad is None else ref_grad
            assert torch.allclose(grad if differentiable else torch.zeros_like(params), ref_grad, atol=1e-11)


@pytest.mark.parametrize("seed", range(0, N_CASES, 3))
def test_random_spec_parameter_points_and_patch_mean(seed, tmp_path):
    """K parameter points in one call (a landscape grid) equal K single calls, also through the patch-mean
    readout that grids use when nothing is differentiated."""
    rng, circuit = _case(seed, tmp_path)
    g = torch.Generator().manual_seed(seed)
    points = circuit.init_params((4, 3), g)
    features = torch.rand(40, 3, max(1, circuit.n_features), generator=g, dtype=torch.float64)
    many = simulate(circuit, points, features)
    mean = simulate_patch_mean(circuit, points, features)
    for k in range(points.shape[0]):
        single = simulate(circuit, points[k], features)
        assert torch.allclose(many[k], single, atol=1e-12)
        assert torch.allclose(mean[k], single.mean(dim=-2), atol=1e-12)


def test_all_parameters_dropped_before_z_readout_still_backpropagate(tmp_path):
    """A layer of RZ only, right before a Z readout, is dropped from the plan; training must still get zero
    gradients (as on PennyLane), not an error that the loss does not require grad."""
    spec = tmp_path / "rz.toml"
    spec.write_text(
        'name = "rz"\ndescription = "t"\nobservables = ["Z"]\n[[block]]\ntype = "encode"\n'
        'gates = ["x:RY"]\n[[block]]\ntype = "layers"\ngates = ["RZ"]\nentangler = "CNOT"\n'
        'pattern = "ring"\n'
    )
    circuit = build_circuit(spec, 3, 1)
    params = circuit.init_params((2,)).requires_grad_(True)
    out = simulate(circuit, params, torch.rand(5, 2, 3, dtype=torch.float64))
    (grad,) = torch.autograd.grad(out.sum(), params)
    assert torch.equal(grad, torch.zeros_like(params))
    with torch.no_grad():
        assert not simulate(circuit, params, torch.rand(5, 2, 3, dtype=torch.float64)).requires_grad
