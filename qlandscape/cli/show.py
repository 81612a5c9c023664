"""``qlandscape show RUN_DIR``: what a run directory holds, read without changing it.

It prints the run's status (checked as every reader checks it: a damaged file is named), a summary of its config
and model, the training numbers, and for each metric every result the directory keeps (each variant: landscapes on
several planes, Hessians at several points, kernels of several subsets: :mod:`qlandscape.runs.variants`) with the
settings it was computed with, its headline numbers and its files; the latest variant (whose numbers ``run.json``
shows) and, where it is another, the one computed with the run (which the report shows) are marked. Run
directories written by qlandscape 0.1 (no manifest; files named after the metric) are listed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qlandscape.cli.commands import help_of
from qlandscape.core.errors import ConfigError
from qlandscape.runs.layout import RUN_FILE, check_run, describe
from qlandscape.runs.metric_spec import MetricSpec
from qlandscape.runs.metric_specs.hessian import epoch_of
from qlandscape.runs.registry import specs
from qlandscape.runs.variants import Variant, default, variants

__all__ = ["add_parser", "describe_run", "run"]

# The settings that change how a result is computed or drawn, never what it is: left out of the listing.
_QUIET_SETTINGS = ("progress", "figures", "chunk_size", "batch", "memory_budget", "dask", "workers")
_MODEL_FIELDS = {
    "qnn": ("ansatz", "qubits", "layers", "patch_size", "stride", "patches", "aggregation", "backend"),
    "mlp": ("width", "depth", "activation"),
    "cnn": ("channels", "batch_norm", "dropout"),
}
_TRAINING_FIELDS = ("optimizer", "lr", "epochs", "batch_size", "seed")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help=help_of("show"), description=help_of("show"))
    p.add_argument("run_dir", help="a run directory written by 'qlandscape run' (or by qlandscape 0.1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("\n".join(describe_run(Path(args.run_dir))))
    return 0


def _value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # a table setting (an adversarial attack), as a config writes it
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _fields(config: Mapping[str, Any], names: tuple[str, ...]) -> str:
    return ", ".join(f"{n} {_value(config[n])}" for n in names if config.get(n) is not None)


def _settings(spec: MetricSpec | None, settings: Mapping[str, Any]) -> str:
    """The settings of a result, the ones at their default marked so (all of them when the metric is unknown)."""
    defaults = {f.name: f.default for f in dataclasses.fields(spec.settings)} if spec is not None else {}
    shown, at_default = [], []
    for key, value in settings.items():
        if key in _QUIET_SETTINGS:
            continue
        default = defaults.get(key, dataclasses.MISSING)
        same = default is not dataclasses.MISSING and _value(default) == _value(value)
        (at_default if same else shown).append(f"{key} = {_value(value)}")
    text = ", ".join(shown) or "all at their defaults"
    return text + (f" (default: {', '.join(at_default)})" if shown and at_default else "")


def _files(files: tuple[str, ...]) -> list[str]:
    """``results/x.{json,npz}``, ``figures/y.{png,pdf}``: one entry per stem."""
    stems: dict[str, list[str]] = {}
    for file in files:
        stem, _, suffix = file.rpartition(".")
        stems.setdefault(stem or file, []).append(suffix)
    return [f"{stem}.{{{','.join(sorted(s))}}}" if len(s) > 1 else f"{stem}.{s[0]}" for stem, s in stems.items()]


def _headline(spec: MetricSpec | None, variant: Variant) -> list[str]:
    scalars = dict(variant.scalars)
    if variant.metric == "hessian" and "hessian.epoch" not in scalars and epoch_of(scalars) is not None:
        scalars["hessian.epoch"] = epoch_of(scalars)  # qlandscape 0.2.0 and earlier wrote hessian.time
    if spec is None:
        return [f"{k}: {_value(v)}" for k, v in scalars.items()]
    return [f"{h.label}: {_value(scalars[h.key])}" for h in spec.headline if h.key in scalars]


def _metric_lines(name: str, found: list[Variant], spec: MetricSpec | None, shown: Variant | None) -> list[str]:
    lines = [f"  {name}: {len(found)} result{'s' if len(found) != 1 else ''}" + ("" if spec else " (not registered)")]
    for variant in found:
        when = f", computed {variant.finished}" if variant.finished else ""
        mark = ""
        if variant.latest and len(found) > 1:
            mark = " [latest: run.json shows its numbers]"
        elif shown is not None and variant.name == shown.name and len(found) > 1:
            mark = " [computed with the run: the report shows it]"
        lines.append(f"    {variant.name}{when}{mark}")
        lines.append(f"      settings: {_settings(spec, variant.settings)}")
        lines += [f"      {line}" for line in _headline(spec, variant)]
        if variant.files:
            lines.append("      files: " + ", ".join(_files(variant.files)))
    return lines


def describe_run(path: Path) -> list[str]:
    """The lines ``qlandscape show`` prints for the run directory ``path``; a folder without ``run.json`` raises
    :class:`ConfigError`."""
    if not (path / RUN_FILE).is_file():
        raise ConfigError("run directory", str(path), f"expected a folder containing {RUN_FILE}")
    state = check_run(path)
    lines = [f"run directory: {path}", f"status: {describe(state)}"]  # "complete", or what is wrong
    info = state.info
    if info is None:
        return lines
    config = info.get("config") or {}
    written = (info.get("versions") or {}).get("qlandscape", "unknown")
    lines.append(f"id: {info.get('id')}, written by qlandscape {written}, run-directory schema {info.get('schema', 1)}")
    data = info.get("data") or {}
    classes = config.get("classes")
    described = f"{config.get('dataset')}" + (f", classes {_value(classes)}" if classes is not None else "")
    lines.append(f"data: {data.get('description') or described}")
    model = info.get("model") or {}
    kind = config.get("model", "?")
    details = _fields(config, _MODEL_FIELDS.get(kind, ()))
    lines.append(f"model: {kind} ({model.get('n_params', '?')} parameters{'; ' + details if details else ''})")
    lines.append(f"training: {_fields(config, _TRAINING_FIELDS)}")
    m = info.get("metrics") or {}
    seconds = (info.get("timings") or {}).get("train_seconds")
    numbers = [
        f"{k.replace('_', ' ')} {_value(m[k])}"
        for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
        if k in m
    ]
    if seconds is not None:
        numbers.append(f"training time {seconds:.3g} s")
    if numbers:
        lines.append("  " + ", ".join(numbers))
    known = {spec.name: spec for spec in specs()}
    names = list(dict.fromkeys([*(info.get("manifest") or {}), *(config.get("metrics") or {}), *known]))
    listed = [(name, variants(info, name, path)) for name in names]
    listed = [(name, found) for name, found in listed if found]
    lines.append("metrics:" if listed else "metrics: none computed")
    for name, found in listed:
        lines += _metric_lines(name, found, known.get(name), default(info, name, path))
    return lines
