"""How a parsed ``qlandscape`` command runs: torch threads, logging, progress bars and the one error boundary.

:func:`qlandscape.cli.app.main` loads this module only when a command runs (it imports torch and matplotlib).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence

import matplotlib
import torch
from tqdm.contrib.logging import logging_redirect_tqdm

import qlandscape
from qlandscape.core.errors import ConfigError
from qlandscape.core.io import WRITE_ERRNOS, check_output_dir
from qlandscape.core.memory import BUDGET_ENV
from qlandscape.core.threads import command_threads, set_threads
from qlandscape.sim.allocator import retain_freed_memory

__all__ = ["bug_report_hint", "expected_failure", "run_command"]

VERBOSE_FORMAT = "%(asctime)s %(message)s"  # -v: each step with the time it started
QUIET_FORMAT = "%(message)s"  # warnings only: the message alone


def run_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run a parsed command: figures to files only, torch on ``--threads`` threads (default 1:
    :mod:`qlandscape.core.threads`), INFO logging with ``-v``, ``args.progress`` set when progress bars are wanted
    (not ``--quiet``, and stderr a terminal); then the command's function inside the error boundary.

    The one error boundary of the command: an expected failure (a :class:`ConfigError`, a size refused by its
    estimate, an output folder that cannot take the files, memory running out) prints one line and exits 2; any
    other exception is a bug: it prints the error, where to report it and a crash report file, and exits 1.
    ``-v`` prints the traceback too."""
    matplotlib.use("Agg")  # the command writes figures to files; it never opens a window
    label = f"qlandscape {args.command}"
    verbose = bool(args.verbose)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=VERBOSE_FORMAT if verbose else QUIET_FORMAT,
        datefmt="%H:%M:%S",
    )
    args.progress = not args.quiet and sys.stderr.isatty()
    try:
        set_threads(command_threads(args.threads))
        retain_freed_memory()  # a process of our own: malloc keeps freed memory (qlandscape.sim.allocator)
        logging.getLogger(__name__).info("%s on %d torch thread(s)", label, torch.get_num_threads())
        _check_output_folder(args)
        with _bars_and_logs(args.progress):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished work is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`qlandscape sweep ... --dry-run | head`); point stdout at devnull so that the
        # interpreter's final flush does not raise again (the recipe of Python's signal module docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        message = expected_failure(exc)
        if verbose:
            traceback.print_exc()
        if message is not None:
            print(f"{label}: error: {message}", file=sys.stderr)
            return 2
        print(f"{label}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(bug_report_hint(argv, exc, shown=verbose), file=sys.stderr)
        return 1


@contextlib.contextmanager
def _bars_and_logs(progress: bool) -> Iterator[None]:
    # A log line written while a progress bar is drawn would be cut by the bar's next redraw: route the log
    # through tqdm, which clears the bar, writes the line and draws the bar again.
    if progress:
        with logging_redirect_tqdm():
            yield
    else:
        yield


def _check_output_folder(args: argparse.Namespace) -> None:
    # Every subcommand's --out is the folder it writes into: a file, a read-only or a full disk there must stop
    # the command before it trains or computes anything. A dry run writes nothing.
    out = getattr(args, "out", None)
    if out is not None and not getattr(args, "dry_run", False):
        check_output_dir(out, "--out")


def expected_failure(exc: BaseException) -> str | None:
    """The one-line message of an expected failure (bad input, a refused size, an output folder that cannot take
    the files, memory running out), or None for an unexpected one (a bug)."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        hint = "; free space or choose another --out" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        return f"{exc.strerror or exc}{where}{hint}"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    ):
        return (
            f"out of memory ({str(exc).strip() or type(exc).__name__}); use smaller sizes (qubits, batch_size, "
            f"grid, subset) or set {BUDGET_ENV} below the free memory so that the size checks refuse earlier"
        )
    return None


def bug_report_hint(argv: Sequence[str] | None, exc: BaseException, *, shown: bool) -> str:
    """What to do about an unexpected error: a crash report file (the command, versions and traceback) to attach
    to a bug report, and ``-v`` for the traceback on screen."""
    command = " ".join(["qlandscape", *(sys.argv[1:] if argv is None else argv)])
    report = "".join(traceback.format_exception(exc))
    text = (
        f"command: {command}\nqlandscape {qlandscape.__version__}, python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.platform()}\n\n{report}"
    )
    try:
        fd, name = tempfile.mkstemp(prefix="qlandscape-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        saved = f"; the details are in {name}: please attach that file"
    except OSError:  # a crash report that cannot be written must not hide the error itself
        saved = "; please include the command and the traceback (-v)"
    more = "" if shown else " (run again with -v to see the traceback)"
    return f"this is a bug in qlandscape; please report it to the qlandscape maintainers{saved}{more}"
