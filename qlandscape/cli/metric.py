"""``qlandscape <metric> RUN_DIR``: one subcommand per registered run metric (hessian, landscape, ntk, and any a
user registers), adding the metric to a finished run directory. The options are the metric's settings: each
``--option`` is a setting (``--top-k 3`` sets ``top_k``), a true/false setting is ``--name`` / ``--no-name``, and a
value is read as ``--set`` reads one (:func:`qlandscape.runs.values.parse_value`): TOML, or comma-separated items
(``--splits train,test``, ``--range=-1,2``).

This module builds the subcommands from the registry and the settings alone; the work of one
(:mod:`qlandscape.cli.metric_run`, which loads the run and its data) is loaded when it runs, so that listing or
parsing them costs no more than the registry."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from qlandscape.cli.app import load
from qlandscape.core.errors import ConfigError
from qlandscape.runs.metric_spec import CONFIG_DEFAULT, MetricSpec, settings_of
from qlandscape.runs.registry import specs
from qlandscape.runs.values import parse_value

RUN_MODULE = "qlandscape.cli.metric_run"  # what a metric subcommand does, loaded when one runs

__all__ = ["add_parsers", "add_parser", "run"]

_DEST = "setting:"  # argparse destinations of settings, apart from the command's own arguments


def registered() -> tuple[MetricSpec, ...]:
    """The registered run metrics, one subcommand each."""
    return specs()


def check_names(reserved: set[str]) -> None:
    """A metric named like another command (``reserved``) raises :class:`ConfigError`."""
    for spec in specs():
        if spec.name in reserved:
            raise ConfigError(
                "metric", spec.name, f"is a qlandscape command; expected another name than {sorted(reserved)}"
            )


def add_parsers(sub: argparse._SubParsersAction, reserved: set[str]) -> None:
    """A subcommand for every registered metric; a metric named like another command (``reserved``) is an error."""
    check_names(reserved)
    for spec in specs():
        add_parser(sub, spec)


def add_parser(sub: argparse._SubParsersAction, spec: MetricSpec) -> None:
    """The subcommand of ``spec``: the run directory and one option per setting."""
    p = sub.add_parser(spec.name, help=spec.help, description=f"{spec.help}; settings as in [metrics.{spec.name}].")
    p.add_argument("run_dir", help="a run directory written by 'qlandscape run'")
    for f, meta in settings_of(spec.settings):
        if meta is not None and not meta.cli:
            continue
        default = f.default if meta is None or meta.cli_default is CONFIG_DEFAULT else meta.cli_default
        kwargs: dict[str, Any] = {"dest": _DEST + f.name, "default": argparse.SUPPRESS}
        text = f"{meta.help} " if meta is not None else ""
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = f"{text}(default: {'on' if default else 'off'})"
        else:
            kwargs["type"] = _parse_list if isinstance(f.default, tuple) else parse_value
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kwargs["help"] = f"{text}(default: {'none' if shown is None else shown})"
            kwargs["metavar"] = f.name.upper()
            if meta is not None and meta.choices is not None:
                kwargs["choices"], kwargs["metavar"] = meta.choices, None
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    p.set_defaults(func=functools.partial(run, spec))


def settings_from_args(spec: MetricSpec, args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, the subcommand's own defaults, and ``progress`` when bars are wanted
    (``args.progress``: a terminal, no ``--quiet``)."""
    given = {k[len(_DEST) :]: v for k, v in vars(args).items() if k.startswith(_DEST)}
    for f, meta in settings_of(spec.settings):
        if f.name in given:
            continue
        if meta is not None and meta.cli_default is not CONFIG_DEFAULT:
            given[f.name] = meta.cli_default
        elif f.name == "progress":
            given[f.name] = bool(getattr(args, "progress", False))
    return given


def run(spec: MetricSpec, args: argparse.Namespace) -> int:
    """Compute the metric on the run directory and print its headline (:func:`qlandscape.cli.metric_run.run`)."""
    return int(load(RUN_MODULE).run(spec, args))


def _parse_list(text: str) -> list[Any]:
    value = parse_value(text)
    return value if isinstance(value, list) else [value]
