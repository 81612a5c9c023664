"""``qlandscape run CONFIG.toml``: train one model and write its run directory.

It prints the run's status and headline numbers; a diverged run prints where training stopped and exits with 1 (no
metric was computed), a complete one exits with 0.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from qlandscape.core.errors import ConfigError
from qlandscape.examples import example_names, example_path
from qlandscape.runs.config import RunConfig, load_config, parse_override
from qlandscape.runs.layout import describe_divergence, require_run
from qlandscape.runs.registry import get
from qlandscape.runs.run import execute_run

__all__ = ["FLAGS", "add_config_arguments", "add_parser", "config_from_args", "run"]

# Common fields with their own flags; any other field goes through --set key=value.
FLAGS = {
    "model": str,
    "ansatz": str,
    "qubits": int,
    "layers": int,
    "patch_size": int,
    "stride": int,
    "patches": int,
    "backend": str,
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "seed": int,
}


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The optional CONFIG.toml (or --example NAME) plus the override flags that :func:`config_from_args` reads."""
    p.add_argument("config", nargs="?", help="run config (TOML); defaults are used when omitted")
    p.add_argument(
        "--example",
        choices=example_names(),
        help="a run config shipped with qlandscape, instead of CONFIG (demo: the README's quick start)",
    )
    for name, kind in FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=f"override '{name}'")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field (value read as TOML, e.g. classes=[0,1])",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train one model from a config and write its run directory")
    add_config_arguments(p)
    p.add_argument("--out", default="runs", help="parent folder of run directories (default: runs)")
    p.add_argument("--force", action="store_true", help="rerun even if the run is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run config from a file (optional) plus command-line overrides, validated."""
    if args.config and args.example:
        raise ConfigError("--example", args.example, f"expected either a config file ({args.config}) or --example")
    path = example_path(args.example) if args.example else args.config
    base = load_config(path) if path else RunConfig()
    changes = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
    changes.update(dict(parse_override(item) for item in args.set))
    return base.replace(**changes) if changes else base


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    path = execute_run(config, args.out, force=args.force, progress=not args.quiet and sys.stderr.isatty())
    info = require_run(path, ("complete", "diverged"))
    m = info.get("metrics", {})
    print(f"run directory: {path}")
    print(f"status: {info['status']}")
    if "description" in info.get("data", {}):
        print(f"data: {info['data']['description']}")
    print(f"model: {config.model} ({info['model']['n_params']} parameters)")
    seconds = info.get("timings", {}).get("train_seconds")
    if info["status"] == "diverged":
        print(f"training diverged: {describe_divergence(info.get('divergence', {}))}")
        print(f"no metric was computed; a lower learning rate than lr = {config.lr:g} may train")
        return 1
    print(
        f"train accuracy: {_fixed(m.get('train_accuracy'), 4)}   test accuracy: {_fixed(m.get('test_accuracy'), 4)}   "
        f"test loss: {_fixed(m.get('test_loss'), 4)}   training time: {_fixed(seconds, 1)} s"
    )
    for name in config.metrics:
        parts = [f"{h.axis_label} {_format(m[h.key])}" for h in get(name).headline if h.key in m]
        if parts:
            print(f"{name}: " + ", ".join(parts))
    if (path / "figures").exists():
        print(f"figures: {path / 'figures'}")
    return 0


def _fixed(value: Any, digits: int) -> str:
    # a value the run did not record (or recorded as null: NaN in JSON) is said, not formatted
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.5g}"
    return str(value)
