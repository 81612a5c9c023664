"""Keep freed memory in the process instead of returning it to the OS after every tensor: an opt-in setting.

glibc's malloc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB at start) with fresh ``mmap`` pages and unmaps
them on free, so every multi-hundred-KB temporary of a forward or backward pass pays page faults again: at 8 qubits
(4 patches, 2 layers, batch 64) about 2,000 page faults per forward+backward. Raising the mmap and trim
thresholds makes freed blocks stay in the heap for the next tensor of the same size (what ``MALLOC_MMAP_MAX_=0`` in
the environment did, without the environment). Measured with ``benchmarks/perf/run_perf.py --quick --sections
malloc`` (qlandscape 0.2.0, 2 CPU cores, one thread): median 6.8-7.5 ms with malloc left alone against 3.6-3.8 ms
kept, 1.8-2.0x (the least-disturbed calls: 1.04-1.24x); 2,000 page faults per call against 4-5.

The setting changes malloc for the whole process and cannot be undone, and its cost is a resident size that
stays at its peak instead of shrinking between steps. So the library never applies it on its own:

* :func:`retain_freed_memory` applies it: the ``qlandscape`` command and the local sweep workers call it at
  start-up (processes qlandscape owns), a script may call it (``qlandscape.retain_freed_memory()``);
* ``QLANDSCAPE_MALLOC=retain`` in the environment applies it at the engine's first simulation in any process;
* ``QLANDSCAPE_MALLOC=system`` leaves malloc alone everywhere, the explicit calls included;
* unset (the default): only processes that call :func:`retain_freed_memory` keep freed memory.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

from qlandscape.core.errors import ConfigError

__all__ = ["ENV_VAR", "SETTINGS", "apply_environment_setting", "malloc_setting", "retain_freed_memory", "retains"]

ENV_VAR = "QLANDSCAPE_MALLOC"
SETTINGS = ("retain", "system")
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_FALLBACK_MMAP_LIMIT = 32 * 2**20  # glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2 (32 MiB, 64-bit)

# "applied": the outcome of the one mallopt attempt (None before it); "environment_read": whether the engine's
# environment check has run. Process-wide state, as the malloc setting itself is.
_state: dict[str, bool | None] = {"applied": None, "environment_read": False}


def malloc_setting() -> str | None:
    """The ``QLANDSCAPE_MALLOC`` setting: ``"retain"``, ``"system"``, or None when it is unset or empty.

    Raises:
        ConfigError: for any other value, naming it.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return None
    if value not in SETTINGS:
        raise ConfigError(ENV_VAR, value, "expected 'retain', 'system' or unset")
    return value


def retain_freed_memory(limit_bytes: int = 2**30) -> bool:
    """Let malloc keep up to ``limit_bytes`` of freed memory and serve blocks below it from the heap, for the rest
    of this process (unless ``QLANDSCAPE_MALLOC=system``).

    Returns True when the setting is in effect (glibc), False otherwise; safe to call repeatedly (only the first
    call that gets past the opt-out acts).
    """
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes <= 0:
        raise ConfigError("limit_bytes", limit_bytes, "expected a positive number of bytes")
    if malloc_setting() == "system":
        return False
    if _state["applied"] is None:
        _state["applied"] = _mallopt(limit_bytes)
        logging.getLogger("qlandscape").debug("malloc retains freed memory: %s", _state["applied"])
    return bool(_state["applied"])


def apply_environment_setting() -> bool:
    """Apply :func:`retain_freed_memory` when ``QLANDSCAPE_MALLOC=retain``; otherwise leave malloc as it is.

    The engine calls this at every simulation; the environment is read once per process, so later calls cost a
    dictionary look-up. Returns whether malloc keeps freed memory now.
    """
    if not _state["environment_read"]:
        setting = malloc_setting()  # a bad value raises here, at the first simulation, and again at the next
        _state["environment_read"] = True
        if setting == "retain":
            retain_freed_memory()
    return bool(_state["applied"])


def retains() -> bool:
    """Whether malloc keeps freed memory in this process (set by this module)."""
    return bool(_state["applied"])


def _mallopt(limit_bytes: int) -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, limit_bytes) or libc.mallopt(
            _M_MMAP_THRESHOLD, min(limit_bytes, _FALLBACK_MMAP_LIMIT)
        )
        return bool(mmap_ok) and bool(libc.mallopt(_M_TRIM_THRESHOLD, limit_bytes))
    except (OSError, AttributeError):  # no mallopt in this process's C library
        return False
