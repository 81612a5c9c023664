"""``qlandscape <metric> RUN_DIR``: one subcommand per registered run metric (hessian, landscape, ntk, and any a
user registers), adding the metric to a finished run directory. The options are the metric's settings: each
``--option`` is a setting (``--top-k 3`` sets ``top_k``), a true/false setting is ``--name`` / ``--no-name``, a
list setting takes comma-separated items (``--splits train,test``) and any other value is read as TOML
(``--range "[-1, 2]"``), as ``--set`` does."""

from __future__ import annotations

import argparse
import functools
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

from qlandscape.core.errors import ConfigError
from qlandscape.runs.layout import FIGURES_DIR, RESULTS_DIR
from qlandscape.runs.metric_spec import CONFIG_DEFAULT, MetricSpec, settings_of
from qlandscape.runs.registry import specs
from qlandscape.runs.run import run_metric

__all__ = ["add_parsers", "add_parser", "run"]

_DEST = "setting:"  # argparse destinations of settings, apart from the command's own arguments


def add_parsers(sub: argparse._SubParsersAction, reserved: set[str]) -> None:
    """A subcommand for every registered metric; a metric named like another command (``reserved``) is an error."""
    for spec in specs():
        if spec.name in reserved:
            raise ConfigError(
                "metric", spec.name, f"is a qlandscape command; expected another name than {sorted(reserved)}"
            )
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
            kwargs["type"] = _parse_list if isinstance(f.default, tuple) else _parse_value
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kwargs["help"] = f"{text}(default: {'none' if shown is None else shown})"
            kwargs["metavar"] = f.name.upper()
            if meta is not None and meta.choices is not None:
                kwargs["choices"], kwargs["metavar"] = meta.choices, None
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    p.set_defaults(func=functools.partial(run, spec))


def settings_from_args(spec: MetricSpec, args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, the subcommand's own defaults, and ``progress`` on a terminal."""
    given = {k[len(_DEST) :]: v for k, v in vars(args).items() if k.startswith(_DEST)}
    for f, meta in settings_of(spec.settings):
        if f.name in given:
            continue
        if meta is not None and meta.cli_default is not CONFIG_DEFAULT:
            given[f.name] = meta.cli_default
        elif f.name == "progress":
            given[f.name] = sys.stderr.isatty()
    return given


def headline_lines(spec: MetricSpec, scalars: dict[str, Any]) -> list[str]:
    """``label value`` for each of the metric's headline scalars that ``scalars`` holds."""
    return [f"{h.label:<48} {_format(scalars[h.key])}" for h in spec.headline if h.key in scalars]


def run(spec: MetricSpec, args: argparse.Namespace) -> int:
    scalars = run_metric(args.run_dir, spec.name, settings_from_args(spec, args))
    print(f"{spec.name} of {args.run_dir}:")
    for line in headline_lines(spec, scalars):
        print(f"  {line}")
    run_dir = Path(args.run_dir)
    print(f"results and figures written to {run_dir / RESULTS_DIR} and {run_dir / FIGURES_DIR}")
    return 0


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_list(text: str) -> list[Any]:
    return [_parse_value(item.strip()) for item in text.split(",") if item.strip()]
