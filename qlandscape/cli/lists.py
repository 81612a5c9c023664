"""The one list syntax of the command line: one argument, items separated by commas (``--layers 1,5,20``,
``--splits train,test``, ``--set classes=0,1``), and for integers also inclusive ranges ``START:STOP`` or
``START:STOP:STEP`` (``--qubits 2:12``, ``--qubits 2:12:2``, mixed: ``1,4:6``). Space-separated values
(``--layers 1 5 20``) are refused by :func:`qlandscape.cli.app.main` with a message giving the comma form."""

from __future__ import annotations

from qlandscape.core.errors import ConfigError
from qlandscape.runs.values import integer_range

__all__ = ["integers", "numbers"]

INTEGERS = "comma-separated integers and inclusive ranges START:STOP[:STEP], e.g. 1,5,20 or 2:12 or 2:12:2"
NUMBERS = "comma-separated numbers, e.g. 0,0.5,1"


def integers(option: str, text: str) -> list[int]:
    """``"1,5,20"``, ``"2:12"`` (inclusive), ``"2:12:2"`` or a mix (``"1,4:6"``) -> a list of integers; anything
    else raises :class:`ConfigError` naming ``option`` and the text."""
    out: list[int] = []
    for item in _items(option, text, INTEGERS):
        span = integer_range(item)
        if span is not None:
            out += span
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise ConfigError(option, text, f"expected {INTEGERS}") from None
    return out


def numbers(option: str, text: str) -> list[float]:
    """``"0,0.5,1"`` -> a list of floats; anything else raises :class:`ConfigError` naming ``option`` and the
    item that is not a number."""
    out = []
    for item in _items(option, text, NUMBERS):
        try:
            out.append(float(item))
        except ValueError:
            raise ConfigError(option, item, f"expected a number ({NUMBERS})") from None
    return out


def _items(option: str, text: str, allowed: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(option, text, f"expected {allowed}")
    if any(any(ch.isspace() for ch in item) for item in items):
        raise ConfigError(option, text, f"expected {allowed}; separate items with commas, not spaces")
    return items
