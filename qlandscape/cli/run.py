"""``qlandscape run CONFIG.toml``: train one model and write its run directory.

It prints the run's status and headline numbers; a diverged run prints where training stopped and exits with 1 (no
metric was computed), a complete one exits with 0.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from qlandscape.cli.commands import help_of
from qlandscape.core.errors import ConfigError
from qlandscape.examples import example_names, example_path
from qlandscape.runs.config import RunConfig, load_config, parse_override, with_overrides
from qlandscape.runs.layout import describe_divergence, require_run
from qlandscape.runs.registry import get
from qlandscape.runs.run import execute

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
FLAG_HELP = {
    "model": "the network: qnn, mlp or cnn",
    "ansatz": "the circuit: a catalogue name (see 'qlandscape circuits') or a spec file",
    "qubits": "qubits per patch circuit",
    "layers": "ansatz layers",
    "patch_size": "side of a square image patch, in pixels",
    "stride": "step between patches, in pixels; none: the patch size",
    "patches": "number of patches, instead of a stride",
    "backend": "the simulator: torch (the built-in engine) or a PennyLane device name",
    "epochs": "training epochs",
    "lr": "learning rate",
    "batch_size": "samples per optimiser step",
    "seed": "seed of the initialisation and of the data order",
}


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The optional CONFIG.toml (or --example NAME) plus the override flags that :func:`config_from_args` reads."""
    p.add_argument("config", nargs="?", help="run config (TOML); the defaults are used when it is omitted")
    p.add_argument(
        "--example",
        choices=example_names(),
        help="a run config shipped with qlandscape, instead of CONFIG (demo: the README's quick start) (default: none)",
    )
    defaults = RunConfig()
    for name, kind in FLAGS.items():
        shown = getattr(defaults, name)
        p.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            metavar=name.upper(),
            help=f"{FLAG_HELP[name]} (default: the config's, else {'none' if shown is None else shown})",
        )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, once per --set; the value is read as TOML, a list is comma-separated "
        "(classes=0,1), a metric setting is metrics.NAME.SETTING (metrics.landscape.grid=31) (default: none)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help=help_of("run"), description=help_of("run"))
    add_config_arguments(p)
    p.add_argument("--out", default="runs", help="parent folder of run directories")
    p.add_argument("--force", action="store_true", help="train again even if the run is complete")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run config from a file or a shipped example (optional) plus command-line overrides (the flags, then each
    ``--set`` in order), validated."""
    if args.config and args.example:
        raise ConfigError("--example", args.example, f"expected either a config file ({args.config}) or --example")
    if args.config and "=" in args.config and not Path(args.config).exists():
        raise ConfigError(
            "config", args.config, "expected a TOML file; a key=value override goes after --set, one per --set"
        )
    path = example_path(args.example) if args.example else args.config
    base = load_config(path) if path else RunConfig()
    changes = [(name, getattr(args, name)) for name in FLAGS if getattr(args, name, None) is not None]
    changes += [parse_override(item) for item in args.set]
    return with_overrides(base, changes) if changes else base


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    done = execute(config, args.out, force=args.force, progress=args.progress)
    path = done.path
    info = require_run(path, ("complete", "diverged"))
    m = info.get("metrics", {})
    print(f"run directory: {path}")
    if not done.computed:
        print(f"already {info['status']}, skipped (--force trains it again)")
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
