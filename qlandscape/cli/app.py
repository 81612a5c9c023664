"""The ``qlandscape`` command: one subcommand per module of :mod:`qlandscape.cli`, and one per registered run
metric (:mod:`qlandscape.cli.metric`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import matplotlib
import torch

from qlandscape.cli import circuits, gradvar, metric, report, run, spawn, sweep
from qlandscape.core.errors import ConfigError

# The subcommands of their own; every registered run metric adds one more (hessian, landscape, ntk, ...).
COMMANDS = ("run", "circuits", "spawn", "gradvar", "sweep", "report")


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlandscape`` console script."""
    matplotlib.use("Agg")  # the command writes figures to files; it never opens a window
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print(f"qlandscape: error: --threads = {args.threads} is not allowed; expected >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"qlandscape {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`qlandscape sweep ... --dry-run | head`); point stdout at devnull so that the
        # interpreter's final flush does not raise again (the recipe of Python's signal module docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
