"""The ``qlandscape`` command: one subcommand per module of :mod:`qlandscape.cli`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from qlandscape.core.errors import ConfigError

COMMANDS = ("run", "circuits", "hessian", "landscape", "ntk", "spawn", "gradvar", "sweep", "report")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
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
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"qlandscape.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cli.{name}"):
                continue  # a command that is not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlandscape`` console script."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print(f"qlandscape: error: --threads = {args.threads} is not allowed; expected >= 1", file=sys.stderr)
            return 2
        import torch

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
