"""Circuit spec validation: block fields, init tables, readouts and sizes are checked when a spec is parsed or
built, and a bad value is a ConfigError naming the field (not a TypeError, nor a silent default)."""

from __future__ import annotations

import numpy as np
import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.sim.circuits import build_circuit, parse_spec


def _spec(**layer_fields):
    return {
        "name": "t",
        "block": [
            {"type": "encode", "gates": ["x:RY"]},
            {"type": "layers", "gates": ["RY"], "entangler": "CZ", **layer_fields},
        ],
    }


@pytest.mark.parametrize("flag,value", [("reupload", "false"), ("skip_last_entangler", "no"), ("reupload", 1)])
def test_boolean_block_fields_must_be_booleans(flag, value):
    with pytest.raises(ConfigError, match=flag):
        parse_spec(_spec(**{flag: value}))


@pytest.mark.parametrize(
    "init,named",
    [
        ({"distribution": "uniform", "lo": 0.0, "hi": 0.1}, "init.hi"),  # typo: silently [0, 2 pi) before
        ({"distribution": "normal", "mean": 1.0}, "init.mean"),  # not a field: silently ignored before
        ({"distribution": "normal", "std": -1.0}, "init.std"),
        ({"low": 3.0, "high": 1.0}, "init"),
        ({"low": "a"}, "init.low"),
        ("uniform", "init"),  # AttributeError before
    ],
)
def test_init_table_is_validated(init, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_spec({**_spec(), "init": init})


def test_valid_init_tables_still_work():
    normal = parse_spec({**_spec(), "init": {"distribution": "normal", "std": 0.5}}).build(2, 1)
    uniform = parse_spec({**_spec(), "init": {"low": 0.0, "high": 1.0}}).build(2, 1)
    assert normal.init_params((3,)).shape == (3, 2)
    assert 0 <= float(uniform.init_params((50,)).min()) and float(uniform.init_params((50,)).max()) < 1


@pytest.mark.parametrize("mq", [[], ["a"], 0, [True]])
def test_spec_measure_qubits_are_validated(mq):
    # [] silently measured every qubit; strings and scalars crashed with a TypeError at build time
    with pytest.raises(ConfigError, match="measure_qubits"):
        parse_spec({**_spec(), "measure_qubits": mq})


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"measure_qubits": []}, "measure_qubits"),
        ({"observables": []}, "observables"),
        ({"observables": "XZ"}, "observables"),
    ],
)
def test_build_rejects_an_empty_or_string_readout(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        build_circuit("hea", 2, 1, **kwargs)


def test_encode_sequence_without_data_gate_is_rejected():
    # the block used up n features that no gate read: a 2-qubit circuit asked for 4 features and ignored two
    spec = {"name": "t", "block": [{"type": "encode", "gates": ["RY"]}, {"type": "layers", "gates": ["x:RY"]}]}
    with pytest.raises(ConfigError, match=r"block\[0\]\.gates"):
        parse_spec(spec)
    alternate = {"name": "t", "block": [{"type": "encode", "alternate": [["x:RY"], ["RX"]]}]}
    with pytest.raises(ConfigError, match=r"alternate\[1\]"):
        parse_spec(alternate)


def test_block_that_is_not_a_table_is_a_config_error():
    with pytest.raises(ConfigError, match=r"block\[0\]"):
        parse_spec({"name": "t", "block": ["encode"]})


def test_numpy_integer_sizes_are_accepted():
    circuit = build_circuit("hea", np.int64(3), np.int64(2))
    assert circuit == build_circuit("hea", 3, 2)
