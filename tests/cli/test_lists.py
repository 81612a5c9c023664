"""The command line's one list syntax: comma-separated items, and inclusive integer ranges."""

from __future__ import annotations

import pytest

from qlandscape.cli.lists import integers, numbers
from qlandscape.core.errors import ConfigError


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1,5,20", [1, 5, 20]),
        ("2:12", list(range(2, 13))),
        ("2:12:2", list(range(2, 13, 2))),
        ("1,4:6", [1, 4, 5, 6]),
        ("-2:1", [-2, -1, 0, 1]),
        ("3", [3]),
        ("1, 5,", [1, 5]),
    ],
)
def test_integers(text, expected):
    assert integers("--layers", text) == expected


@pytest.mark.parametrize("text", ["", "1 5 20", "1,x", "5:2", "2:12:0", "1:2:3:4", "1.5", "1;2"])
def test_integers_refuse_anything_else_naming_the_option(text):
    with pytest.raises(ConfigError, match="--layers = .* is not allowed; expected comma-separated integers"):
        integers("--layers", text)


def test_numbers():
    assert numbers("--spawn-epochs", "0,0.25,1e-1,2") == [0.0, 0.25, 0.1, 2.0]
    with pytest.raises(ConfigError, match="--spawn-epochs = 'x' is not allowed; expected a number"):
        numbers("--spawn-epochs", "0,x")
    with pytest.raises(ConfigError, match="not spaces"):
        numbers("--spawn-epochs", "0 1")
