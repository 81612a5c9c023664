"""The malloc setting the engine applies once per process (see qlandscape.sim.allocator)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from qlandscape.core.errors import ConfigError
from qlandscape.sim import allocator

PROBE = (
    "import resource, torch\n"
    "from qlandscape.sim.allocator import retain_freed_memory\n"
    "print(retain_freed_memory())\n"
    "x = torch.ones(5 * 2 ** 20, dtype=torch.float64)\n"  # 40 MiB: always mmapped by default glibc
    "for _ in range(10): (x * 2).sum()\n"  # the heap settles within a few blocks
    "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "for _ in range(10): (x * 2).sum()\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n"
)


def _probe(env_value: str | None) -> tuple[str, int]:
    env = dict(os.environ)
    env.pop("QLANDSCAPE_MALLOC", None)
    if env_value is not None:
        env["QLANDSCAPE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_tensors_are_reused_without_page_faults():
    applied, faults = _probe(None)
    assert applied == "True"
    # 10 fresh 40 MiB temporaries fault about 10 * 10240 pages; kept memory is reused. The heap can take a few
    # blocks to settle (up to 4 re-faults in the first iterations were seen), hence the warm-up and the slack.
    assert faults < 5 * 10240
    applied, faults = _probe("system")
    assert applied == "False"
    assert faults > 50_000


def test_opt_out_and_repeat_calls(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.setenv("QLANDSCAPE_MALLOC", "system")
    assert allocator.retain_freed_memory() is False
    monkeypatch.delenv("QLANDSCAPE_MALLOC")
    assert allocator.retain_freed_memory() is False  # only the first call acts


def test_bad_settings_are_named(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {})
    monkeypatch.setenv("QLANDSCAPE_MALLOC", "sytem")
    with pytest.raises(ConfigError, match="sytem"):
        allocator.retain_freed_memory()
    monkeypatch.setenv("QLANDSCAPE_MALLOC", "system")
    with pytest.raises(ConfigError, match="limit_bytes"):
        allocator.retain_freed_memory(0)
