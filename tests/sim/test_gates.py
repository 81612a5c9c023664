"""The gate table (qlandscape.sim.gates): every entry against PennyLane's matrices and the matrix exponential, the
engine's batched matrices and composed entangler runs against the table and PennyLane, unknown names and broken
entries as ConfigErrors naming them (never run as another gate), and a gate added to the table alone running
through the parser and every engine path."""

from __future__ import annotations

import math
import types

import numpy as np
import pennylane as qml
import pytest
import scipy.linalg
import torch

from qlandscape.core.errors import ConfigError
from qlandscape.sim.backends import make_backend
from qlandscape.sim.circuits import Circuit, Gate, build_circuit, parse_spec
from qlandscape.sim.engine import simulate, simulate_patch_mean, simulate_state
from qlandscape.sim.gate_matrices import rotations
from qlandscape.sim.gates import GATES, Entangler, Rotation, entangler, entangler_names, rotation, rotation_names
from qlandscape.sim.lowering import _compose_entanglers
from tests.sim.reference import reference_expectations, reference_state

ANGLES = (-2.3, 0.0, 0.4, 1.7, math.pi, 5.9)
PAULIS = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.array([[1, 0], [0, -1]])}


def test_table_holds_the_catalogue_gates():
    assert rotation_names() == ("RX", "RY", "RZ")
    assert entangler_names() == ("CNOT", "CZ")
    assert all(name == gate.name for name, gate in GATES.items())


@pytest.mark.parametrize("name", rotation_names())
def test_rotation_matrices_match_pennylane_and_the_exponential(name):
    gate = rotation(name)
    for a in ANGLES:
        ours = gate.matrix(a)
        assert np.allclose(ours, qml.matrix(getattr(qml, gate.pennylane)(a, wires=0)), atol=1e-14)
        assert np.allclose(ours, scipy.linalg.expm(a / 2 * gate.generator), atol=1e-14)
        assert np.allclose(ours.conj().T @ ours, np.eye(2), atol=1e-14)


@pytest.mark.parametrize("name,pauli", [("RX", "X"), ("RY", "Y"), ("RZ", "Z")])
def test_pauli_rotations_are_exp_of_minus_i_a_p_over_2(name, pauli):
    gate = rotation(name)
    for a in ANGLES:
        assert np.allclose(gate.matrix(a), scipy.linalg.expm(-1j * a * PAULIS[pauli] / 2), atol=1e-14)
    assert gate.real == (pauli == "Y") and gate.diagonal == (pauli == "Z")


@pytest.mark.parametrize("name", rotation_names())
@pytest.mark.parametrize("cdtype", [torch.complex128, torch.complex64])
def test_engine_rotation_matrices_match_the_table(name, cdtype):
    gate = rotation(name)
    angle = torch.tensor(ANGLES, dtype=torch.float64).reshape(2, 3)
    batch = rotations(gate, angle, cdtype)
    assert batch.shape == (2, 3, 2, 2) and batch.dtype == cdtype
    expected = np.stack([gate.matrix(a) for a in ANGLES]).reshape(2, 3, 2, 2)
    tol = 1e-14 if cdtype == torch.complex128 else 1e-6
    assert np.allclose(batch.numpy(), expected, atol=tol)
    if gate.real:  # real matrices (RY) in a real dtype: the engine's real layers
        real = rotations(gate, angle, torch.float64)
        assert real.dtype == torch.float64 and np.allclose(real.numpy(), expected.real, atol=1e-14)


@pytest.mark.parametrize("name", entangler_names())
def test_entangler_actions_match_pennylane(name):
    gate = entangler(name)
    assert np.array_equal(gate.matrix(), qml.matrix(getattr(qml, gate.pennylane)(wires=[0, 1])))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_composed_entangler_runs_match_pennylane(n):
    rng = np.random.default_rng(n)
    for _ in range(10):
        run = []
        for _ in range(rng.integers(1, 7)):
            a, b = rng.choice(n, size=2, replace=False)
            run.append(Gate(str(rng.choice(entangler_names())), (int(a), int(b))))
        step = _compose_entanglers(run, n)
        ours = np.zeros((2**n, 2**n))
        ours[np.arange(2**n), step.source] = step.sign  # new_state[j] = sign[j] * state[source[j]]

        def apply(run=run):
            for gate in run:
                getattr(qml, gate.name)(wires=list(gate.wires))

        assert np.array_equal(ours, qml.matrix(apply, wire_order=list(range(n)))().real), run


@pytest.mark.parametrize(
    "block,bad",
    [
        ({"type": "layers", "gates": ["RW"]}, "RW"),
        ({"type": "layers", "gates": ["x:CNOT"]}, "x:CNOT"),  # an entangler is not a rotation
        ({"type": "layers", "gates": ["RY"], "entangler": "RX"}, "RX"),  # nor a rotation an entangler
        ({"type": "layers", "gates": ["RY"], "entangler": "SWAP"}, "SWAP"),
    ],
)
def test_unknown_gate_in_a_spec_is_a_config_error(block, bad):
    with pytest.raises(ConfigError, match=bad):
        parse_spec({"name": "bad", "block": [block]}, source="bad.toml")


def _circuit(gate_list: tuple[Gate, ...], n_qubits: int = 2, n_params: int = 1) -> Circuit:
    """A circuit built by hand, past the spec parser (as a circuit from an older table or another tool)."""
    return Circuit("hand", n_qubits, 1, gate_list, n_params, 1, (("Z", 0),))


def _runs(circuit: Circuit) -> None:
    params = torch.zeros(1, circuit.n_params, dtype=torch.float64)
    simulate(circuit, params, torch.zeros(1, 1, 1, dtype=torch.float64))


def test_gates_outside_the_table_are_never_simulated_as_another_gate():
    rotated = (Gate("RY", (0,), "param", 0),)
    for wrong in (
        rotated + (Gate("RW", (1,), "param", 0),),  # unknown rotation (once simulated as RZ)
        rotated + (Gate("SWAP", (0, 1)),),  # unknown entangler (once simulated as CNOT)
        rotated + (Gate("CZ", (1,), "feature", 0),),  # an entangler fed an angle
        rotated + (Gate("RX", (0, 1)),),  # a rotation as an entangler
    ):
        name = wrong[-1].name
        with pytest.raises(ConfigError, match=f"gate = '{name}'"):
            _runs(_circuit(wrong))
        with pytest.raises(ConfigError, match=f"gate = '{name}'"):
            make_backend("default.qubit").expectations(
                _circuit(wrong), torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, 1, dtype=torch.float64)
            )


def test_incomplete_table_entries_are_rejected(monkeypatch):
    # an entry cannot be made without its matrix or action, or with one that is not a gate of its kind
    for generator in (None, np.eye(3), np.eye(2), [[0, 1], [1, 0]], [[0, "a"], [1, 0]]):
        with pytest.raises(ConfigError, match="gate RW.generator"):
            Rotation("RW", generator, pennylane="RX")
    with pytest.raises(ConfigError, match="gate RW.pennylane"):
        Rotation("RW", -1j * PAULIS["X"], pennylane="")
    with pytest.raises(ConfigError, match="gate SW.image"):
        Entangler("SW", image=(0, 1, 2, 2), sign=(1, 1, 1, 1), pennylane="SWAP")
    with pytest.raises(ConfigError, match="gate SW.image"):
        Entangler("SW", image=None, sign=(1, 1, 1, 1), pennylane="SWAP")
    with pytest.raises(ConfigError, match="gate SW.sign"):
        Entangler("SW", image=(0, 2, 1, 3), sign=(1, 1j, 1j, 1), pennylane="SWAP")  # iSWAP: not a signed permutation

    # an entry put in the table without being a complete gate is not a gate: not in the names the parser accepts,
    # and an error naming it wherever a circuit uses it
    monkeypatch.setitem(GATES, "RW", types.SimpleNamespace(name="RW", pennylane="RX"))
    monkeypatch.setitem(GATES, "SW", types.SimpleNamespace(name="SW", pennylane="SWAP"))
    monkeypatch.setitem(GATES, "RV", rotation("RX"))  # filed under another gate's name
    assert "RW" not in rotation_names() and "SW" not in entangler_names() and "RV" not in rotation_names()
    for name in ("RW", "RV"):
        with pytest.raises(ConfigError, match=name):
            parse_spec({"name": "bad", "block": [{"type": "layers", "gates": [name]}]})
        with pytest.raises(ConfigError, match=f"gate = '{name}'"):
            rotation(name)
        with pytest.raises(ConfigError, match=f"gate = '{name}'"):
            _runs(_circuit((Gate(name, (0,), "param", 0),)))
    with pytest.raises(ConfigError, match="SW"):
        parse_spec({"name": "bad", "block": [{"type": "layers", "gates": ["RY"], "entangler": "SW"}]})
    with pytest.raises(ConfigError, match="gate = 'SW'"):
        _runs(_circuit((Gate("RY", (0,), "param", 0), Gate("SW", (0, 1)))))


# A rotation about the (X + Z)/sqrt(2) axis: not a Pauli rotation, so its matrix entries are general terms.
_HADAMARD_AXIS = -1j * (PAULIS["X"] + PAULIS["Z"]) / math.sqrt(2)


def _hadamard_axis_matrix(angle: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_exp(angle / 2 * torch.as_tensor(_HADAMARD_AXIS, dtype=torch.complex128))


def _reference_loss(theta: torch.Tensor, circuit: Circuit, features: torch.Tensor) -> torch.Tensor:
    state = reference_state(circuit, theta, features, rotations={"RH": _hadamard_axis_matrix})
    return reference_expectations(circuit, state).sum()


def test_a_gate_added_to_the_table_alone_runs_through_every_engine_path(monkeypatch, tmp_path):
    monkeypatch.setitem(GATES, "RH", Rotation("RH", _HADAMARD_AXIS, pennylane="(no PennyLane operation)"))

    # one qubit: the rotated Bloch vector is known in closed form (Z alone: the product-state readout)
    spec = tmp_path / "rh.toml"
    spec.write_text('name = "rh"\nobservables = ["X", "Y", "Z"]\n[[block]]\ntype = "encode"\ngates = ["x:RH"]\n')
    a = torch.tensor([0.3, 1.2, 2.9], dtype=torch.float64)
    expected = torch.stack([(1 - torch.cos(a)) / 2, -torch.sin(a) / math.sqrt(2), (1 + torch.cos(a)) / 2], -1)
    for observables, columns in ((["X", "Y", "Z"], [0, 1, 2]), (["Z"], [2])):
        one = build_circuit(spec, 1, 0, observables=observables)
        out = simulate(one, torch.zeros(1, 0, dtype=torch.float64), a.reshape(3, 1, 1)).reshape(3, -1)
        assert torch.allclose(out, expected[:, columns], atol=1e-14)

    # several qubits, parameters and data, Z and X readouts, blocks (many samples), grids of points, gradients
    spec.write_text(
        'name = "rh"\nobservables = ["Z"]\n'
        '[[block]]\ntype = "encode"\ngates = ["RH", "x:RH"]\nentangler = "CZ"\npattern = "chain"\n'
        '[[block]]\ntype = "layers"\ngates = ["RH", "RZ"]\nentangler = "CNOT"\npattern = "ring"\n'
    )
    g = torch.Generator().manual_seed(3)
    for observables in (["Z"], ["X", "Z"]):
        circuit = build_circuit(spec, 3, 2, observables=observables)
        params = circuit.init_params((2,), g).requires_grad_(True)
        for n_samples in (1, 40):  # layered and block plans
            features = torch.rand(n_samples, 2, circuit.n_features, generator=g, dtype=torch.float64)
            outs = simulate(circuit, params, features)
            states = simulate_state(circuit, params.detach(), features)
            for b in (0, n_samples - 1):
                for p in range(2):
                    ref = reference_state(circuit, params[p], features[b, p], rotations={"RH": _hadamard_axis_matrix})
                    assert torch.allclose(states[b, p], ref, atol=1e-12)
                    assert torch.allclose(outs[b, p], reference_expectations(circuit, ref), atol=1e-12)
            (grad,) = torch.autograd.grad(outs[-1, 1].sum(), params)
            ref_grad = torch.func.grad(_reference_loss)(params[1].detach(), circuit, features[-1, 1])
            assert torch.allclose(grad[1], ref_grad, atol=1e-12)
            assert torch.all(grad[0] == 0)
        points = params.detach()[None] + 0.1 * torch.randn(3, *params.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            grid = simulate_patch_mean(circuit, points, features, n_outputs=1)
            singles = torch.stack([simulate(circuit, pt, features)[..., :1].mean(dim=-2) for pt in points])
        assert torch.allclose(grid, singles, atol=1e-12)
