"""The circuit catalogue: loading, parameter counts, validation errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.sim.circuits import build_circuit, catalogue, load_spec, parse_spec


def test_catalogue_ships_required_ansatze():
    assert {"hea", "strongly_entangling", "reuploading"} <= set(catalogue())


@pytest.mark.parametrize("name,per_qubit_layer", [("hea", 2), ("strongly_entangling", 3), ("reuploading", 2)])
@pytest.mark.parametrize("qubits,layers", [(1, 1), (3, 2), (5, 4)])
def test_parameter_counts(name, per_qubit_layer, qubits, layers):
    circuit = build_circuit(name, qubits, layers)
    assert circuit.n_params == per_qubit_layer * qubits * layers
    assert circuit.n_features == qubits
    assert load_spec(name).n_params(qubits, layers) == circuit.n_params


def test_strongly_entangling_range_cycles():
    circuit = build_circuit("strongly_entangling", 4, 3)
    cnots = [g.wires for g in circuit.gates if g.name == "CNOT"]
    assert cnots[:4] == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert cnots[4:8] == [(0, 2), (1, 3), (2, 0), (3, 1)]
    assert cnots[8:12] == [(0, 3), (1, 0), (2, 1), (3, 2)]


def test_reuploading_reads_same_features_each_layer():
    circuit = build_circuit("reuploading", 3, 4)
    features = [g.index for g in circuit.gates if g.source == "feature"]
    assert features == [0, 1, 2] * 4


def test_user_spec_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nobservables = ["X", "Z"]\n[[block]]\ntype = "encode"\n'
        'gates = ["RY", "x:RX", "RY"]\nfeatures_per_qubit = 2\nentangler = "CZ"\npattern = "chain"\n'
    )
    circuit = build_circuit(str(path), 3, 1)
    assert circuit.n_params == 12 and circuit.n_features == 6 and circuit.n_outputs == 6


@pytest.mark.parametrize(
    "block,bad",
    [
        ({"type": "layers", "gates": ["RQ"]}, "RQ"),
        ({"type": "layers", "gates": ["RY"], "entangler": "SWAP"}, "SWAP"),
        ({"type": "layers", "gates": ["RY"], "pattern": "star"}, "star"),
        ({"type": "blob", "gates": ["RY"]}, "blob"),
        ({"type": "layers", "gates": ["RY"], "colour": "red"}, "colour"),
    ],
)
def test_bad_specs_name_file_and_field(block, bad):
    with pytest.raises(ConfigError) as err:
        parse_spec({"name": "bad", "block": [block]}, source="bad.toml")
    assert bad in str(err.value) and "bad.toml" in str(err.value)


def test_missing_field_and_unknown_ansatz(tmp_path):
    with pytest.raises(ConfigError, match="block"):
        parse_spec({"name": "x"}, source="x.toml")
    with pytest.raises(ConfigError, match="nonsense"):
        load_spec("nonsense")
    with pytest.raises(ConfigError, match="qubits"):
        build_circuit("hea", 0, 1)
    with pytest.raises(ConfigError, match="-1"):
        build_circuit("hea", 2, -1)


def test_catalogue_ships_in_the_wheel_as_package_data():
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    setuptools_cfg = project["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"]["qlandscape.circuits_catalogue"] == "circuits"
    assert "*.toml" in setuptools_cfg["package-data"]["qlandscape.circuits_catalogue"]
    assert (Path(__file__).parents[2] / "circuits" / "__init__.py").exists()  # a regular package, not a namespace
