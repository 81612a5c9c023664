"""Keep freed memory in the process instead of returning it to the OS after every tensor.

glibc's malloc serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB at start) with fresh ``mmap`` pages and unmaps
them on free, so every multi-hundred-KB temporary of a forward or backward pass pays page faults again: at 8 qubits
(4 patches, batch 64) about 2,700 faults and 5 ms of system time per forward+backward, 1.9x the tuned time
(benchmarks/perf). Raising the mmap and trim thresholds makes freed blocks stay in the heap for the next tensor
of the same size: what ``MALLOC_MMAP_MAX_=0`` in the environment did, without the environment.

The engine calls :func:`retain_freed_memory` once, the first time it simulates. The cost is a resident size that
stays at its peak instead of shrinking between steps. Set ``QLANDSCAPE_MALLOC=system`` to leave malloc alone
(``retain``, the default, keeps the setting; anything else is an error).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

from qlandscape.core.errors import ConfigError

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_FALLBACK_MMAP_LIMIT = 32 * 2**20  # glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2 (32 MiB, 64-bit)

_state: dict[str, bool] = {}


def retain_freed_memory(limit_bytes: int = 2**30) -> bool:
    """Let malloc keep up to ``limit_bytes`` of freed memory and serve blocks below it from the heap.

    Returns True when the setting is in effect (glibc, and not switched off by ``QLANDSCAPE_MALLOC=system``), False
    otherwise; safe to call repeatedly (only the first call acts).
    """
    if "applied" in _state:
        return _state["applied"]
    setting = os.environ.get("QLANDSCAPE_MALLOC", "retain").lower() or "retain"
    if setting not in ("retain", "system"):
        raise ConfigError("QLANDSCAPE_MALLOC", setting, "expected 'retain' (the default) or 'system'")
    if not isinstance(limit_bytes, int) or limit_bytes <= 0:
        raise ConfigError("limit_bytes", limit_bytes, "expected a positive number of bytes")
    applied = False
    if setting == "retain" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(None)
            mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, limit_bytes) or libc.mallopt(
                _M_MMAP_THRESHOLD, min(limit_bytes, _FALLBACK_MMAP_LIMIT)
            )
            applied = bool(mmap_ok) and bool(libc.mallopt(_M_TRIM_THRESHOLD, limit_bytes))
        except (OSError, AttributeError):  # no mallopt in this process's C library
            applied = False
    logging.getLogger("qlandscape").debug("malloc retains freed memory: %s", applied)
    _state["applied"] = applied
    return applied
