"""What ``qlandscape <metric> RUN_DIR`` does: compute the metric into the run directory and print its headline
scalars. :mod:`qlandscape.cli.metric` builds the subcommands and loads this module when one runs."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from qlandscape.cli.metric import settings_from_args
from qlandscape.runs.layout import FIGURES_DIR, RESULTS_DIR
from qlandscape.runs.metric_spec import MetricSpec
from qlandscape.runs.run import run_metric

__all__ = ["headline_lines", "run"]


def headline_lines(spec: MetricSpec, scalars: dict[str, Any]) -> list[str]:
    """``label value`` for each of the metric's headline scalars that ``scalars`` holds."""
    return [f"{h.label:<48} {_format(scalars[h.key])}" for h in spec.headline if h.key in scalars]


def run(spec: MetricSpec, args: argparse.Namespace) -> int:
    """Compute ``spec`` on ``args.run_dir`` with the settings of the command line and print its headline."""
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
