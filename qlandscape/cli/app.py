"""The ``qlandscape`` command: one subcommand per module of :mod:`qlandscape.cli`, and one per registered run
metric (:mod:`qlandscape.cli.metric`)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Sequence

import matplotlib
import torch

import qlandscape
from qlandscape.cli import circuits, gradvar, metric, report, run, show, spawn, sweep
from qlandscape.core.errors import ConfigError
from qlandscape.core.io import WRITE_ERRNOS, check_output_dir
from qlandscape.core.memory import BUDGET_ENV

# The subcommands of their own; every registered run metric adds one more (hessian, landscape, ntk, ...).
COMMANDS = ("run", "circuits", "spawn", "gradvar", "sweep", "report", "show")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="qlandscape",
        description="Loss-landscape geometry of quantum neural networks and classical nets: "
        "train a run, then add Hessian, landscape, NTK and connectivity metrics to its run directory.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is fastest for small models)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    circuits.add_parser(sub)
    metric.add_parsers(sub, reserved=set(COMMANDS))
    spawn.add_parser(sub)
    gradvar.add_parser(sub)
    sweep.add_parser(sub)
    report.add_parser(sub)
    show.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlandscape`` console script.

    The one error boundary of the command: an expected failure (a :class:`ConfigError`, a size refused by its
    estimate, an output folder that cannot take the files, memory running out) prints one line and exits 2; any
    other exception is a bug: it prints the error, where to report it and a crash report file, and exits 1.
    ``-v`` prints the traceback too."""
    matplotlib.use("Agg")  # the command writes figures to files; it never opens a window
    try:
        parser = build_parser()
    except ConfigError as exc:  # a registered metric named like a command
        print(f"qlandscape: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        print(f"qlandscape: error: --threads = {args.threads} is not allowed; expected >= 1", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    label = f"qlandscape {args.command}"
    try:
        _check_output_folder(args)
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
        if args.verbose:
            traceback.print_exc()
        if message is not None:
            print(f"{label}: error: {message}", file=sys.stderr)
            return 2
        print(f"{label}: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(bug_report_hint(argv, exc, shown=args.verbose), file=sys.stderr)
        return 1


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
