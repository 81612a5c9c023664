"""The opt-in malloc setting (qlandscape.sim.allocator): the library leaves malloc alone unless asked, through
``retain_freed_memory()`` or ``QLANDSCAPE_MALLOC=retain``; the qlandscape command and the local sweep workers ask.

What each setting does to malloc is checked in a fresh process (it is process-wide and cannot be undone) against the
kernel's own count of page faults: ten fresh 40 MiB temporaries fault about 10 * 10240 pages when malloc hands them
back to the OS, and almost none when it keeps them. Which code asks for it (the command, the environment, repeated
calls) is checked in this process with mallopt itself replaced by a recorder.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from qlandscape.cli.app import main
from qlandscape.core.errors import ConfigError
from qlandscape.sim import allocator

# What opts in (or not), then one engine simulation, then the fault count of ten 40 MiB temporaries.
FAULTS = (
    "import resource, torch\n"
    "from qlandscape.sim.allocator import retains\n"
    "from qlandscape.sim.circuits import build_circuit\n"
    "from qlandscape.sim.engine import simulate\n"
    "{prelude}\n"
    "simulate(build_circuit('hea', 2, 1), torch.zeros(1, 4), torch.zeros(3, 1, 2))\n"
    "x = torch.ones(5 * 2 ** 20, dtype=torch.float64)\n"  # 40 MiB: always mmapped by default glibc
    "for _ in range(10): (x * 2).sum()\n"  # the heap settles within a few blocks
    "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "for _ in range(10): (x * 2).sum()\n"
    "print(retains(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n"
)
KEPT = 5 * 10240  # the heap can take a few blocks to settle (up to 4 re-faults were seen), hence the slack
RETURNED = 50_000

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


SETTINGS = {
    "library default": ("", None),
    "environment": ("", "retain"),
    "explicit call": ("from qlandscape.sim.allocator import retain_freed_memory; retain_freed_memory()", None),
    "explicit call, vetoed": (
        "from qlandscape.sim.allocator import retain_freed_memory; retain_freed_memory()",
        "system",
    ),
    "sweep worker": (
        "import os; from qlandscape.runs.sweep import _init_local_worker; _init_local_worker(1, os.getppid())",
        None,
    ),
}


@pytest.fixture(scope="module")
def probes() -> dict[str, tuple[bool, int]]:
    """Each setting's outcome in a fresh process: (malloc keeps freed memory, page faults), the processes run at
    once."""
    running = {}
    for name, (prelude, env_value) in SETTINGS.items():
        env = dict(os.environ)
        env.pop(allocator.ENV_VAR, None)
        if env_value is not None:
            env[allocator.ENV_VAR] = env_value
        code = FAULTS.format(prelude=prelude)
        running[name] = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        applied, faults = out.split()[-2:]
        results[name] = (applied == "True", int(faults))
    return results


@glibc_only
def test_the_library_leaves_malloc_alone_by_default(probes):
    applied, faults = probes["library default"]
    assert not applied
    assert faults > RETURNED


@glibc_only
def test_the_environment_opts_in_at_the_first_simulation(probes):
    applied, faults = probes["environment"]
    assert applied
    assert faults < KEPT


@glibc_only
def test_an_explicit_call_opts_in_and_the_environment_can_veto_it(probes):
    applied, faults = probes["explicit call"]
    assert applied
    assert faults < KEPT
    applied, faults = probes["explicit call, vetoed"]
    assert not applied
    assert faults > RETURNED


@pytest.mark.parametrize(("env_value", "expected"), [(None, True), ("retain", True), ("system", False)])
def test_the_command_opts_in_unless_the_environment_says_system(monkeypatch, env_value, expected):
    calls = []
    monkeypatch.setattr(allocator, "_state", {"applied": None, "environment_read": False})
    monkeypatch.setattr(allocator, "_mallopt", lambda limit: calls.append(limit) or True)
    monkeypatch.delenv(allocator.ENV_VAR, raising=False)
    if env_value is not None:
        monkeypatch.setenv(allocator.ENV_VAR, env_value)
    assert main(["circuits", "--qubits", "2"]) == 0
    assert (calls == [2**30]) is expected
    assert allocator.retains() is expected


@glibc_only
def test_local_sweep_workers_opt_in(probes):
    applied, faults = probes["sweep worker"]
    assert applied
    assert faults < KEPT


def test_the_environment_is_read_once_and_explicit_calls_act_once(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_state", {"applied": None, "environment_read": False})
    monkeypatch.setattr(allocator, "_mallopt", lambda limit: calls.append(limit) or True)
    monkeypatch.delenv(allocator.ENV_VAR, raising=False)
    assert allocator.apply_environment_setting() is False
    monkeypatch.setenv(allocator.ENV_VAR, "retain")
    assert allocator.apply_environment_setting() is False  # read once: the first simulation decided
    assert calls == []
    assert allocator.retain_freed_memory() is True
    assert allocator.retain_freed_memory() is True
    assert calls == [2**30]
    assert allocator.retains() is True


def test_system_vetoes_every_call(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {"applied": None, "environment_read": False})
    monkeypatch.setattr(allocator, "_mallopt", lambda limit: pytest.fail("mallopt called under 'system'"))
    monkeypatch.setenv(allocator.ENV_VAR, "System")
    assert allocator.malloc_setting() == "system"
    assert allocator.apply_environment_setting() is False
    assert allocator.retain_freed_memory() is False
    assert allocator.retains() is False


def test_bad_settings_are_named(monkeypatch):
    monkeypatch.setattr(allocator, "_state", {"applied": None, "environment_read": False})
    monkeypatch.setenv(allocator.ENV_VAR, "sytem")
    with pytest.raises(ConfigError, match="QLANDSCAPE_MALLOC.*sytem.*'retain', 'system' or unset"):
        allocator.apply_environment_setting()
    with pytest.raises(ConfigError, match="sytem"):
        allocator.apply_environment_setting()  # not taken as read: every simulation names the bad value
    monkeypatch.setenv(allocator.ENV_VAR, "system")
    with pytest.raises(ConfigError, match="limit_bytes"):
        allocator.retain_freed_memory(0)


def test_a_bad_setting_stops_the_command_with_exit_code_2(monkeypatch, capsys):
    monkeypatch.setattr(allocator, "_state", {"applied": None, "environment_read": False})
    monkeypatch.setenv(allocator.ENV_VAR, "sytem")
    assert main(["circuits", "--qubits", "2"]) == 2
    err = capsys.readouterr().err
    assert "qlandscape circuits: error: QLANDSCAPE_MALLOC = 'sytem' is not allowed" in err
    assert "Traceback" not in err
