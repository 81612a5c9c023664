"""Memory budgets: how much one computation may allocate, and refusing a size before it is allocated.

The budget is, in this order: the ``budget`` a caller passes, the environment variable ``QLANDSCAPE_MEMORY_BUDGET``
(bytes, or a number with a unit: ``512M``, ``8G``, ``1.5TiB``), or half of the memory available when the check
runs (``MemAvailable`` of ``/proc/meminfo``, lowered to what a cgroup limit leaves; else ``os.sysconf``). Half,
because the checks estimate the largest array of a computation and the engine needs room for a few temporaries
of the same size beside it.

:func:`check_fits` raises :class:`SizeError` (a :class:`~qlandscape.core.errors.ConfigError`) naming the setting,
the estimate, the budget and what to change, before anything is allocated.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from qlandscape.core.errors import ConfigError

__all__ = [
    "BUDGET_ENV",
    "AVAILABLE_FRACTION",
    "SizeError",
    "format_bytes",
    "format_seconds",
    "parse_size",
    "available_memory",
    "memory_budget",
    "check_fits",
]

BUDGET_ENV = "QLANDSCAPE_MEMORY_BUDGET"
AVAILABLE_FRACTION = 0.5
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:I?B)?\s*", re.IGNORECASE)
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)


class SizeError(ConfigError):
    """A computation refused before it started because its estimated memory exceeds the budget."""

    def __init__(
        self, field: str, value: Any, allowed: str, *, estimate: int, budget: int, source: str | None = None
    ) -> None:
        super().__init__(field, value, allowed, source=source)
        self.estimate = estimate
        self.budget = budget


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``16.0 TiB``, ``74.5 GiB``, ``512 B``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_seconds(seconds: float) -> str:
    """A duration for a message: ``45 s``, ``12 min``, ``3.1 h``, ``4.2 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def parse_size(text: str, field: str = BUDGET_ENV) -> int:
    """Bytes from ``"8G"``, ``"512MiB"``, ``"1.5T"`` or a plain byte count; anything else raises ConfigError."""
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise ConfigError(field, text, "expected a size in bytes, optionally with a unit: 512M, 8G, 1.5TiB")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise ConfigError(field, text, "expected a positive size")
    return size


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) and unreadable files give None


def _cgroup_room() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and limit < 2**60:  # v1 writes a huge number for "no limit"
            return max(0, limit - (usage or 0))
    return None


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None where the system does not say."""
    found: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:  # macOS and BSDs: no /proc; their sysconf has the physical pages (Linux also the available ones)
            name = "SC_AVPHYS_PAGES" if "SC_AVPHYS_PAGES" in os.sysconf_names else "SC_PHYS_PAGES"
            found = os.sysconf(name) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    room = _cgroup_room()
    if room is not None:
        found = room if found is None else min(found, room)
    return found if found is None or found > 0 else None


def memory_budget(budget: int | str | None = None, *, available: int | None = None) -> tuple[int | None, str]:
    """The budget in bytes (None: unknown, nothing is refused) and where it comes from, for messages.

    ``budget``: a per-call budget (bytes or a size string); ``available``: the memory of the device the
    computation runs on when it is not this machine's (a GPU's), else this machine's is read."""
    if budget is not None:
        return (parse_size(budget, "budget") if isinstance(budget, str) else _positive(budget)), "the budget given"
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        return parse_size(env), f"{BUDGET_ENV}={env}"
    room = available_memory() if available is None else available
    if room is None:
        return None, "unknown"
    share = int(room * AVAILABLE_FRACTION)
    return share, f"half of the {format_bytes(room)} available; set {BUDGET_ENV} to change it"


def _positive(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0 or math.isinf(budget):
        raise ConfigError("budget", budget, "expected a positive number of bytes or a size such as '8G'")
    return int(budget)


def check_fits(
    estimate_bytes: float,
    what: str,
    allowed: str,
    *,
    field: str,
    value: Any,
    budget: int | str | None = None,
    available: int | None = None,
    source: str | None = None,
) -> None:
    """Raise :class:`SizeError` when ``estimate_bytes`` exceeds the memory budget (see :func:`memory_budget`).

    The message reads ``<field> = <value> is not allowed; <what> would take about <estimate>, over the budget
    of <budget> (<where it comes from>); <allowed>``: ``what`` says what was estimated, ``allowed`` what to change.
    """
    limit, origin = memory_budget(budget, available=available)
    if limit is None or estimate_bytes <= limit:
        return
    raise SizeError(
        field,
        value,
        f"{what} would take about {format_bytes(estimate_bytes)}, over the memory budget of {format_bytes(limit)} "
        f"({origin}); {allowed}",
        estimate=int(min(estimate_bytes, 2**63 - 1)),
        budget=limit,
        source=source,
    )
