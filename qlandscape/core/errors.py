"""The one exception type for bad configuration or input."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["ConfigError", "require", "check_choice", "check_positive_int", "is_integer", "is_finite_number"]


class ConfigError(ValueError):
    """Bad configuration or input, raised before any expensive work starts.

    The message names the field, the offending value and what is allowed.
    """

    def __init__(self, field: str, value: Any, allowed: str, *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field} = {value!r} is not allowed; {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source


def require(condition: bool, field: str, value: Any, allowed: str, *, source: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(field, value, allowed, source=source)


def check_choice(field: str, value: Any, choices: Any, *, source: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(field, value, f"expected one of {', '.join(map(repr, choices))}", source=source)


def check_positive_int(field: str, value: Any, *, minimum: int = 1, source: str | None = None) -> int:
    """Return ``value`` as an int, raising :class:`ConfigError` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (hasattr(value, "__index__")):
        raise ConfigError(field, value, f"expected an integer >= {minimum}", source=source)
    number = int(value)
    if number < minimum:
        raise ConfigError(field, number, f"expected an integer >= {minimum}", source=source)
    return number


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (Python or numpy, integers included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
