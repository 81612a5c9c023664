"""How a value typed on the command line is read (``--set key=VALUE`` and the metric subcommands' options): the
one syntax of :func:`parse_value`. Kept apart from :mod:`qlandscape.runs.config` so that the command line can read
values without loading the run configuration's parts (data, models, training)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

__all__ = ["integer_range", "parse_value"]

_RANGE = re.compile(r"-?\d+:-?\d+(:\d+)?")  # an integer range: START:STOP[:STEP], inclusive


def parse_value(text: str) -> Any:
    """A value given on the command line: TOML (``0.1``, ``"hea"``, ``true``, ``[0, 1]``, ``{grid = 31}``), else a
    comma-separated list whose items are each read so (``0,1`` is ``[0, 1]``, ``train,test`` is
    ``["train", "test"]``; an integer range ``START:STOP[:STEP]`` is its integers, inclusive: ``0:3`` is
    ``[0, 1, 2, 3]``), else the text itself (``default.qubit``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in text:
        items: list[Any] = []
        for item in (part.strip() for part in text.split(",")):
            if item:
                span = integer_range(item)
                items += [parse_value(item)] if span is None else span
        return items
    span = integer_range(text)
    return text if span is None else span


def integer_range(text: str) -> list[int] | None:
    """The integers of an inclusive range ``START:STOP`` or ``START:STOP:STEP`` (``2:12:2``), or None when
    ``text`` is not one (not of that form, STOP below START, or a STEP below 1)."""
    if not _RANGE.fullmatch(text.strip()):
        return None
    start, stop, *step = (int(part) for part in text.split(":"))
    if stop < start or (step and step[0] < 1):
        return None
    return list(range(start, stop + 1, step[0] if step else 1))
