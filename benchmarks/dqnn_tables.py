"""Print the Markdown tables of benchmarks/README.md from a finished DQNN sweep.

.venv/bin/python benchmarks/dqnn_tables.py runs/dqnn
"""

from __future__ import annotations

import sys

import numpy as np

from qlandscape.metrics.sweeps import complete_rows, scaling_fit
from qlandscape.runs.config import RunConfig
from qlandscape.runs.tables import load_runs

FIELDS = RunConfig.fields()


def cell(values: list[float]) -> str:
    v = np.asarray(values)
    return f"{v.mean():.3g} ± {v.std(ddof=1):.2g} [{v.min():.3g}, {v.max():.3g}]"


def table(rows: list[dict], metric: str, title: str) -> None:
    ns = sorted({r["n_patches"] for r in rows})
    ls = sorted({r["layers"] for r in rows})
    print(f"\n{title} (mean ± std [min, max] over seeds; P = parameter count)\n")
    print("| L (params/circuit) | " + " | ".join(f"N = {n}" for n in ns) + " |")
    print("|---|" + "---:|" * len(ns))
    for layers in ls:
        line = [r for r in rows if r["layers"] == layers]
        cells = []
        for n in ns:
            group = [r for r in line if r["n_patches"] == n]
            cells.append(f"{cell([r[metric] for r in group])} (P = {group[0]['n_params']})" if group else "")
        print(f"| {layers} ({line[0]['params_per_circuit']}) | " + " | ".join(cells) + " |")


def main(directory: str) -> None:
    rows = complete_rows(load_runs(directory))
    print(f"{len(rows)} complete runs")
    for metric, title in [
        ("hessian.lambda_max", "λ_max"),
        ("hessian.trace", "tr H"),
        ("test_accuracy", "test accuracy"),
        ("train_loss", "final training loss"),
        ("hessian.structure.lambda_max_normalised", "λ_max / (c²/N)"),
    ]:
        table(rows, metric, title)
    for metric in ("hessian.lambda_max", "hessian.structure.lambda_max_normalised"):
        fit = scaling_fit(rows, metric, fields=FIELDS)
        print(f"\npower law {metric} ∝ N^b, per L (all seeds as points, 95% CI):")
        for label, f in zip(fit.line_labels, fit.fits, strict=True):
            print(
                f"  {label}: b = {f.exponent:.2f} [{f.exponent_low:.2f}, {f.exponent_high:.2f}], "
                f"a = {f.prefactor:.3g}, {f.n_points} points"
            )
    fit = scaling_fit(rows, "hessian.lambda_max", "n_params", "n_patches", fields=FIELDS)
    print("\npower law hessian.lambda_max ∝ P^b per N (P = parameter count):")
    for label, f in zip(fit.line_labels, fit.fits, strict=True):
        print(f"  {label}: b = {f.exponent:.2f} [{f.exponent_low:.2f}, {f.exponent_high:.2f}]")
    seconds = [r["time.total_seconds"] for r in rows]
    print(f"\nrun time: {sum(seconds):.0f} s in all, {min(seconds):.1f}–{max(seconds):.1f} s per run")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/dqnn")
