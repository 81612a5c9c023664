"""The ``qlandscape`` command: its parser and its entry point.

One subcommand per module of :mod:`qlandscape.cli` (the table in :mod:`qlandscape.cli.commands`) and one per
registered run metric (:mod:`qlandscape.cli.metric`). The global options ``-v``, ``-q``/``--quiet`` and
``--threads`` go before or after the subcommand (``qlandscape -v run ...`` or ``qlandscape run ... -v``); every
``--help`` shows each option's default; lists are comma-separated (:mod:`qlandscape.cli.lists`).

Startup: this module imports nothing heavy. The modules that implement the subcommands, and
:mod:`qlandscape.cli.runtime` (threads, logging, the error boundary), import torch, matplotlib and the metrics, so
they are loaded with :func:`importlib.import_module` by :func:`load`, when the command they implement runs or its
options are asked for: the one exception to "imports at module level" of the command line, kept in this one
function. The metric subcommands' names, help and options come from the metric registry, whose specs are
declarations that load their computation only when it runs (:class:`qlandscape.runs.metric_spec.Hook`), so that
``qlandscape --help`` and ``qlandscape <metric> --help`` load neither torch nor matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence
from types import ModuleType
from typing import Any

import qlandscape
from qlandscape.cli.commands import BUILTIN, METRICS_AFTER
from qlandscape.core.errors import ConfigError

__all__ = ["COMMANDS", "build_parser", "load", "main"]

# The subcommands of their own; every registered run metric adds one more (hessian, landscape, ntk, ...).
COMMANDS = tuple(c.name for c in BUILTIN)
METRIC_MODULE = "qlandscape.cli.metric"
RUNTIME_MODULE = "qlandscape.cli.runtime"
_GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")
_GLOBAL_WITH_VALUE = ("--threads",)


def load(module: str) -> ModuleType:
    """Import a subcommand's module (or the runtime) when it is needed: the command line's one function-level
    import, so that a command's start loads only its own code (see the module docstring)."""
    return importlib.import_module(module)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, with each option's default added to its help unless the help states it already
    (a list default is shown comma-separated, as it is typed)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or not action.option_strings
            or action.nargs == 0
            or default is None
            or default is argparse.SUPPRESS
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v``, ``-q``/``--quiet`` and ``--threads``: on the top-level parser with their defaults, on a subcommand's
    parser without (so that an option given before the subcommand is not reset by the subcommand's parser)."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log each step and its duration"
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress bars (they are shown only when stderr is a terminal)",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=default(None),
        metavar="N",
        help="torch CPU threads (default: 1, or OMP_NUM_THREADS when it is set; 1 is fastest for small models)",
    )


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of the ``qlandscape`` command.

    ``commands``: the subcommands to build with their options (default: every one); the others are listed by name
    and help only. :func:`main` builds just the subcommand it runs, so that it loads no other command's code. A
    registered metric named like a command raises :class:`ConfigError`."""
    parser = argparse.ArgumentParser(
        prog="qlandscape",
        description="Loss-landscape geometry of quantum neural networks and classical nets: "
        "train a run, then add Hessian, landscape, NTK and connectivity metrics to its run directory.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"qlandscape {qlandscape.__version__}", help="print the version"
    )
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    wanted = None if commands is None else set(commands)
    metric = load(METRIC_MODULE) if wanted is None or not wanted or not wanted <= set(COMMANDS) else None
    if metric is not None:
        metric.check_names(set(COMMANDS))
    for command in BUILTIN:
        if wanted is None or command.name in wanted:
            load(command.module).add_parser(sub)
            _finish(sub.choices[command.name])
        elif metric is not None or not wanted:
            sub.add_parser(command.name, help=command.help)
        if command.name == METRICS_AFTER and metric is not None:
            for spec in metric.registered():
                if wanted is None or spec.name in wanted:
                    metric.add_parser(sub, spec)
                    _finish(sub.choices[spec.name])
                else:
                    sub.add_parser(spec.name, help=spec.help)
    return parser


def _finish(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    add_global_options(parser, top=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qlandscape`` console script (and of ``python -m qlandscape``).

    Parses the command line, loading only the subcommand it names, and runs it through the error boundary of
    :func:`qlandscape.cli.runtime.run_command`: an expected failure prints one line and exits 2, a bug prints where
    to report it and exits 1. Values typed with spaces where one comma-separated argument is expected
    (``--layers 1 5 20``) exit 2 with the comma form."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command, version = scan(args_list)
    if version:
        print(f"qlandscape {qlandscape.__version__}")
        return 0
    try:
        parser = build_parser([] if command is None else [command])
        args, extras = parser.parse_known_args(args_list)
        if getattr(args, "func", None) is None:  # a subcommand that scan() did not find (after an unknown option)
            parser = build_parser([args.command])
            args, extras = parser.parse_known_args(args_list)
    except ConfigError as exc:  # a registered metric named like a command
        print(f"qlandscape: error: {exc}", file=sys.stderr)
        return 2
    if extras:
        stray = stray_values(args_list, extras)
        if stray is None:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        print(f"qlandscape {args.command}: error: {stray}", file=sys.stderr)
        return 2
    return int(load(RUNTIME_MODULE).run_command(args, args_list))


def scan(argv: Sequence[str]) -> tuple[str | None, bool]:
    """The subcommand named on the command line (the first argument that is neither a global option nor its
    value; None when there is none before another option) and whether ``--version`` comes before it."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--version":
            return None, True
        if token in _GLOBAL_WITH_VALUE:
            i += 2
        elif token in _GLOBAL_FLAGS or token.startswith("--threads="):
            i += 1
        elif token.startswith("-"):
            return None, False
        else:
            return token, False
    return None, False


def stray_values(argv: Sequence[str], extras: Sequence[str]) -> ConfigError | None:
    """For values that follow an option's one value (``--layers 1 5 20``), the error giving the comma-separated
    form; None when the unrecognised arguments are something else (an unknown option)."""
    if not extras or extras[0].startswith("-"):
        return None
    for i in range(2, len(argv)):
        option, value = argv[i - 2], argv[i - 1]
        if argv[i] != extras[0] or not option.startswith("--") or "=" in option or value.startswith("-"):
            continue
        values = [value]
        for token, extra in zip(argv[i:], extras, strict=False):
            if token != extra or token.startswith("-"):
                break
            values.append(token)
        if option == "--set":
            return ConfigError(option, " ".join(values), "expected one key=value per --set: repeat --set for each")
        return ConfigError(
            option,
            " ".join(values),
            f"expected one argument; list items are comma-separated, without spaces: {option} {','.join(values)}",
        )
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
