"""Adversarial training and loss-landscape geometry (Prabhu et al. 2019; Yao et al. 2018) for patch QNNs and
classical nets on digits.

Usage (from the repository root):

    .venv/bin/python benchmarks/adversarial/run.py [--out runs/adversarial] [--workers 2]

Runs ``sweep.toml`` (36 runs: {QNN N=4, QNN N=9, MLP, CNN} x {standard, PGD mix 0.5, PGD mix 1.0} x 3 seeds; finished
runs are kept), then writes into ``benchmarks/adversarial/``:

* ``table.md`` and ``summary.json``: per model and training, the mean and seed standard deviation of the clean and
  PGD test accuracy, the Hessian's lambda_max and trace (dense, training loss, final point), the slice sharpness
  (mean over an 11 x 11 filter-normalised random slice of L - L(centre); per-patch rows for the QNNs), lambda_max of
  the loss on a fixed PGD set made at the final point (eps 0.4, 10 steps; the adversarial loss), the input
  curvature (mean top eigenvalue of the per-sample input Hessian) and the input-gradient norm; and per model kind
  whether adversarial training (mix 1.0 against standard) made each weight-space measure larger ("sharper"),
  smaller ("flatter") or neither (the difference within twice its standard error over seeds);
* ``slices_<model>.png``: seed 0's standard and mix-1.0 models, 2-D slices on one colour scale and the 1-D slices
  through the centre on one axis (the same random directions, normalised to each model);
* ``robust_accuracy.png``: PGD accuracy against eps, per model, one curve per training (mean +- seed s.d.).

The run directories and the tool's own report (``qlandscape report``) go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from qlandscape.core import io
from qlandscape.metrics.landscape.results import Slice1D, Slice2D
from qlandscape.metrics.robustness.results import RobustnessCurve
from qlandscape.plots import colour, save_figure
from qlandscape.plots.robustness import plot_landscape_comparison
from qlandscape.runs.report import write_report
from qlandscape.runs.run import run_metric
from qlandscape.runs.sweep import load_sweep, run_sweep

HERE = Path(__file__).parent
TRAININGS = ("standard", "mix 0.5", "mix 1.0")
KINDS = ("QNN N=4", "QNN N=9", "MLP", "CNN")
COLUMNS = (
    ("test_accuracy", "clean acc"),
    ("pgd_accuracy", "PGD acc (eps 0.4)"),
    ("hessian.lambda_max", "λ_max"),
    ("hessian.trace", "tr H"),
    ("adv_lambda_max", "λ_max (adv. loss)"),
    ("slice_sharpness", "slice sharpness"),
    ("robustness.input_curvature", "input λ_max"),
    ("robustness.input_gradient_norm", "|∇_x ℓ|"),
)
GEOMETRY = ("hessian.lambda_max", "hessian.trace", "slice_sharpness", "adv_lambda_max")
BENCH_EPS = 0.4
# the Hessian of the loss on a fixed PGD set made at the final point (the robust loss's curvature, frozen inputs)
ADVERSARIAL_HESSIAN = {
    "method": "dense",
    "density": False,
    "adversarial": {"attack": "pgd", "eps": BENCH_EPS, "steps": 10, "alpha": 0.1},
}
ADVERSARIAL_VARIANT = "hessian_dense_adv_pgd_linf_eps0.4"


def _kind(config: dict) -> str:
    return f"QNN N={config['patches']}" if config["model"] == "qnn" else config["model"].upper()


def _training(config: dict) -> str:
    adversarial = config.get("adversarial")
    return "standard" if adversarial is None else f"mix {adversarial['mix']:.1f}"


def _variant(info: dict, metric: str) -> str:
    return info["metrics"][f"{metric}.variant"]


def collect(runs: Path) -> list[dict]:
    """One record per run: its kind, training, seed, scalars, slice and robustness curve."""
    records = []
    for path in sorted(p for p in runs.iterdir() if (p / "run.json").exists()):
        info = json.loads((path / "run.json").read_text())
        if info.get("status") != "complete":
            continue
        config = info["config"]
        landscape = io.load_result(Slice2D, path / "results" / _variant(info, "landscape"))
        curve = io.load_result(RobustnessCurve, path / "results" / f"{_variant(info, 'robustness')}_curve")
        grid = np.asarray(landscape.losses[0])
        values = {k: info["metrics"].get(k) for k, _ in COLUMNS}
        values["pgd_accuracy"] = info["metrics"][f"robustness.pgd_accuracy_eps{BENCH_EPS:g}"]
        values["slice_sharpness"] = float(grid.mean() - landscape.center_losses[0])
        # run.json's hessian scalars are the variant computed last: read each variant's own summary
        clean = io.read_json(path / "results" / "hessian_dense_summary.json")
        adversarial = io.read_json(path / "results" / f"{ADVERSARIAL_VARIANT}_summary.json")
        values["hessian.lambda_max"], values["hessian.trace"] = float(clean["lambda_max"]), float(clean["trace"])
        values["adv_lambda_max"] = float(adversarial["lambda_max"])
        records.append(
            {
                "path": path,
                "kind": _kind(config),
                "training": _training(config),
                "seed": config["seed"],
                "values": values,
                "slice": landscape,
                "curve": curve,
            }
        )
    return records


def summarise(records: list[dict]) -> dict:
    """Mean, seed s.d. and count per (kind, training, column); and each kind's verdicts."""
    summary: dict = {}
    for kind in KINDS:
        for training in TRAININGS:
            group = [r for r in records if r["kind"] == kind and r["training"] == training]
            row = {}
            for key, _ in COLUMNS:
                values = np.array([r["values"][key] for r in group], dtype=np.float64)
                row[key] = {
                    "mean": float(values.mean()) if values.size else math.nan,
                    "sd": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                    "n": int(values.size),
                }
            summary.setdefault(kind, {})[training] = row
        verdicts = {}
        for key in GEOMETRY:
            a, b = summary[kind]["standard"][key], summary[kind]["mix 1.0"][key]
            diff = b["mean"] - a["mean"]
            se = math.sqrt(a["sd"] ** 2 / max(a["n"], 1) + b["sd"] ** 2 / max(b["n"], 1))
            word = "sharper" if diff > 2 * se else "flatter" if diff < -2 * se else "neither"
            verdicts[key] = {
                "ratio": b["mean"] / a["mean"] if a["mean"] else math.nan,
                "diff": diff,
                "se": se,
                "verdict": word,
            }
        summary[kind]["verdicts"] = verdicts
    return summary


def table(summary: dict) -> str:
    """The findings table (Markdown): mean ± seed s.d. over 3 seeds."""
    head = "| model | training | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for kind in KINDS:
        for training in TRAININGS:
            row = summary[kind][training]
            cells = [f"{row[k]['mean']:.3g} ± {row[k]['sd']:.2g}" for k, _ in COLUMNS]
            lines.append(f"| {kind} | {training} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | λ_max (mix 1.0 / standard) | tr H | slice sharpness | λ_max (adv. loss) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        v = summary[kind]["verdicts"]
        cells = [f"{v[k]['ratio']:.2f}x, {v[k]['verdict']}" for k in GEOMETRY]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _row(result: Slice2D) -> Slice1D:
    mid = int(np.argmin(np.abs(result.betas)))
    return Slice1D(
        alphas=result.alphas,
        losses=np.asarray(result.losses)[:, mid, :],
        errors=np.asarray(result.errors)[:, mid, :],
        center_losses=result.center_losses,
        splits=result.splits,
        direction_kind=result.direction_kind,
        normalization=result.normalization,
        direction_norm=float(result.direction_norms[0]),
        loss_name=result.loss_name,
    )


def figures(records: list[dict], out: Path) -> None:
    """Side-by-side slices per model kind (seed 0) and PGD accuracy against eps."""
    for kind in KINDS:
        pick = {r["training"]: r for r in records if r["kind"] == kind and r["seed"] == 0}
        if "standard" not in pick or "mix 1.0" not in pick:
            continue
        a, b = pick["standard"]["slice"], pick["mix 1.0"]["slice"]
        fig = plot_landscape_comparison(a, b, labels=("standard", "PGD mix 1.0"))
        fig.suptitle(f"{kind}, seed 0: training loss around the final point")
        stem = kind.lower().replace(" ", "_").replace("=", "")
        save_figure(fig, out / f"slices_{stem}_2d", dpi=80)
        plt.close(fig)
        fig = plot_landscape_comparison(_row(a), _row(b), labels=("standard", "PGD mix 1.0"))
        fig.suptitle(f"{kind}, seed 0: 1-D slice through the centre (β = 0)")
        save_figure(fig, out / f"slices_{stem}_1d", dpi=80)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(KINDS), figsize=(14, 3.6), sharey=True, layout="constrained")
    for ax, kind in zip(axes, KINDS, strict=True):
        for i, training in enumerate(TRAININGS):
            curves = [r["curve"] for r in records if r["kind"] == kind and r["training"] == training]
            if not curves:
                continue
            acc = np.stack([c.pgd_accuracy for c in curves])
            sd = acc.std(0, ddof=1) if len(curves) > 1 else np.zeros(acc.shape[1])
            ax.errorbar(
                curves[0].eps, acc.mean(0), yerr=sd, color=colour(i), marker="o", ms=3, capsize=2, label=training
            )
        ax.axvline(BENCH_EPS, color="0.6", ls=":", lw=0.8)
        ax.set_title(kind, fontsize="medium")
        ax.set_xlabel("eps, linf (rad; 1 rad = 5.1 grey levels)")
    axes[0].set_ylabel("PGD test accuracy (10 steps; mean ± s.d., 3 seeds)")
    axes[0].legend(fontsize="small")
    save_figure(fig, out / "robust_accuracy", dpi=80)
    plt.close(fig)
    for pdf in out.glob("*.pdf"):  # PNGs only in the repository
        pdf.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/adversarial")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    rows = run_sweep(load_sweep(HERE / "sweep.toml"), out, workers=args.workers, progress=True)
    sweep_seconds = time.perf_counter() - start
    for path in sorted(p for p in out.iterdir() if (p / "run.json").exists()):  # the adversarial loss's Hessian
        if not (path / "results" / f"{ADVERSARIAL_VARIANT}_summary.json").exists():
            run_metric(path, "hessian", ADVERSARIAL_HESSIAN)
    previous = HERE / "summary.json"
    if not any(row.get("computed") for row in rows) and previous.exists():  # every run kept: keep the measured time
        sweep_seconds = json.loads(previous.read_text())["_meta"]["sweep_seconds"]
    write_report(out, pdf=False)
    records = collect(out)
    summary = summarise(records)
    summary["_meta"] = {"runs": len(records), "sweep_seconds": sweep_seconds, "workers": args.workers}
    (HERE / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (HERE / "table.md").write_text(table(summary))
    figures(records, HERE)
    print(table(summary))
    print(f"{len(records)} runs; sweep {sweep_seconds:.0f} s on {args.workers} workers")


if __name__ == "__main__":
    main()
