"""Values typed on the command line (``--set key=VALUE`` and the metric subcommands' options), and ``--set`` with
nested keys (``metrics.landscape.grid=31``)."""

from __future__ import annotations

import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.runs.config import RunConfig, parse_override, with_overrides
from qlandscape.runs.values import integer_range, parse_value


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0.1", 0.1),
        ("3", 3),
        ("true", True),
        ('"hea"', "hea"),
        ("hea", "hea"),
        ("default.qubit", "default.qubit"),
        ("[0, 1]", [0, 1]),
        ("0,1", [0, 1]),
        ("train,test", ["train", "test"]),
        ("-0.5,1", [-0.5, 1]),
        ("0:3", [0, 1, 2, 3]),
        ("0,4:6", [0, 4, 5, 6]),
        ("{grid = 31}", {"grid": 31}),
        ("{hessian={top_k=3,density=false}}", {"hessian": {"top_k": 3, "density": False}}),
        ('"a,b"', "a,b"),
        ("5:2", "5:2"),
    ],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected and type(value) is type(expected)


def test_integer_range():
    assert integer_range("2:12:5") == [2, 7, 12]
    assert integer_range("2:2") == [2]
    assert integer_range("3:2") is None and integer_range("1:3:0") is None and integer_range("a:b") is None


def test_parse_override_reads_lists_and_nested_keys():
    assert parse_override("classes=0,1") == ("classes", [0, 1])
    assert parse_override("metrics.landscape.grid=31") == ("metrics.landscape.grid", 31)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("lr")


def test_with_overrides_sets_metric_settings_by_their_dotted_names():
    base = RunConfig.from_dict({"qubits": 2, "metrics": {"hessian": {"top_k": 3}}})
    config = with_overrides(
        base,
        [
            ("lr", 0.1),
            ("metrics.landscape.grid", 31),
            ("metrics.hessian.density", False),
            ("metrics.ntk", {"subset": 5}),
        ],
    )
    assert config.lr == 0.1 and config.qubits == 2
    assert config.metrics == {
        "hessian": {"top_k": 3, "density": False},
        "landscape": {"grid": 31},
        "ntk": {"subset": 5},
    }
    assert base.metrics == {"hessian": {"top_k": 3}}  # the base is not changed
    # applied in order: a whole table, then one of its settings
    config = with_overrides(base, [("metrics", {"ntk": {}}), ("metrics.ntk.every", 2)])
    assert config.metrics == {"ntk": {"every": 2}}
    assert config.run_id() == RunConfig.from_dict({"qubits": 2, "metrics": {"ntk": {"every": 2}}}).run_id()


@pytest.mark.parametrize(
    "changes,needle",
    [
        ([("metrics.landscape.grid", 1)], "metrics.landscape.grid = 1 is not allowed"),
        ([("metrics.landscap.grid", 5)], "metrics = 'landscap' is not allowed"),
        ([("metrics.landscape.gird", 5)], "metrics.landscape.gird = 5 is not allowed"),
        ([("training.lr", 0.1)], "training.lr = 0.1 is not allowed; expected a run setting"),
        ([("metrics.a.b.c", 1)], "metrics.a.b.c = 1 is not allowed"),
        ([("metrics", 3)], "metrics = 3 is not allowed"),
    ],
)
def test_with_overrides_names_a_bad_key_or_value(changes, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        with_overrides(RunConfig(), changes)
