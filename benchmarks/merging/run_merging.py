"""Model merging and the four mode properties for patch QNNs (N = 4, 9, 25 patches) against an MLP and a CNN with
batch norm, on digits 0-3.

Usage (from the repository root):

    .venv/bin/python benchmarks/merging/run_merging.py [--out benchmarks/merging] [--seeds 3] [--epochs 10]

For each model family, with ``--seeds`` S:

* connectivity: S models trained from seeds 0..S-1 (initialisation and data order), every pair: the barrier along
  the straight line (naive), after alignment (weight matching / periodic images) and along a quadratic Bezier
  curve to the aligned model trained for ``--curve-epochs`` (61 points, batch-norm statistics recomputed at each);
* convexity and directedness: a parent trained for half the epochs, S children continuing from it for the other
  half with data-order seeds 101.. (a fresh Adam state each): the Jensen gap of the children, the uniform and greedy
  soups against the best child (chosen on a held-out fifth of the training split, scored on the test split), and
  the cosines and explained variance of the children's displacements from the parent; the same soups over the S
  independent models after aligning them to the first;
* determinism: S pairs of seeds (2i, 2i+1): barriers between a reference run and runs that differ in the
  initialisation seed, the data-order seed or both;
* redundancy: the QNN parameters no output depends on (the last RZ layer before the Z readout).

Writes ``merging.json`` (every number), ``table.md`` (the tables quoted in README.md), ``modes_<family>.png`` (the
four properties) and ``barriers.png`` (barriers by family and path). One torch thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.merging.parameters import flat_parameters
from qlandscape.merging.periodic import redundant_parameters
from qlandscape.metrics.modes.connectivity import mode_connectivity
from qlandscape.metrics.modes.convexity import mode_convexity
from qlandscape.metrics.modes.determinism import mode_determinism
from qlandscape.metrics.modes.directedness import mode_directedness
from qlandscape.metrics.modes.results import BARRIER_FIELDS
from qlandscape.models.classical import CNN, MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots import save_figure
from qlandscape.plots.modes import plot_mode_properties
from qlandscape.train.trainer import TrainConfig, train

CLASSES = (0, 1, 2, 3)  # a 4-qubit circuit with a Z readout has 4 outputs: the "mean" rule reads one per class
FAMILIES = {
    "QNN N=4": lambda s: PatchQNN((8, 8), 4, ansatz="hea", n_qubits=4, n_layers=2, patch_size=4, stride=4, seed=s),
    "QNN N=9": lambda s: PatchQNN((8, 8), 4, ansatz="hea", n_qubits=4, n_layers=2, patch_size=4, stride=2, seed=s),
    "QNN N=25": lambda s: PatchQNN((8, 8), 4, ansatz="hea", n_qubits=4, n_layers=2, patch_size=4, stride=1, seed=s),
    "MLP": lambda s: MLP((8, 8), 4, width=32, depth=2, seed=s),
    "CNN+BN": lambda s: CNN((8, 8), 4, channels=(4, 8), batch_norm=True, seed=s),
}


def ms(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def family_run(name, build, data, args):
    x_fit, y_fit, x_sel, y_sel, x_test, y_test = data
    config = TrainConfig(lr=args.lr, epochs=args.epochs, batch_size=32)
    start = time.perf_counter()
    models = []
    for s in range(args.seeds):
        models.append(
            train(build(s), x_fit, y_fit, x_test, y_test, TrainConfig(**{**asdict_config(config), "seed": s}))[0]
        )
    connectivity = mode_connectivity(
        models, x_fit, y_fit, x_test, y_test, curve="bezier", curve_epochs=args.curve_epochs, curve_lr=0.01
    )
    half = max(1, args.epochs // 2)
    parent = train(
        build(100), x_fit, y_fit, x_test, y_test, TrainConfig(lr=args.lr, epochs=half, batch_size=32, seed=100)
    )[0]
    children = [
        train(parent, x_fit, y_fit, x_test, y_test, TrainConfig(lr=args.lr, epochs=half, batch_size=32, seed=101 + i))[
            0
        ]
        for i in range(args.seeds)
    ]
    convexity_children = mode_convexity(children, x_test, y_test, x_select=x_sel, y_select=y_sel, x_stats=x_fit)
    convexity_seeds = mode_convexity(
        models, x_test, y_test, x_select=x_sel, y_select=y_sel, x_stats=x_fit, align_first=True
    )
    directedness = mode_directedness(children, parent)
    determinism = [
        mode_determinism(build, x_fit, y_fit, x_test, y_test, config, seeds=(2 * i, 2 * i + 1))
        for i in range(args.seeds)
    ]
    redundant = None
    if isinstance(models[0], PatchQNN):
        redundant = redundant_parameters(models[0], x_test[:20])
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.1f} s", flush=True)
    return {
        "connectivity": connectivity,
        "convexity_children": convexity_children,
        "convexity_seeds": convexity_seeds,
        "directedness": directedness,
        "determinism": determinism,
        "redundant": redundant,
        "n_params": int(flat_parameters(models[0]).numel()),
        "test_accuracy": [1.0 - float(e) for e in connectivity.errors[: len(models) - 1, 0, 0]],
        "seconds": seconds,
    }


def asdict_config(config: TrainConfig) -> dict:
    return dict(vars(config))


def summarise(name, r):
    c = r["connectivity"]
    out = {"n_params": r["n_params"], "seconds": r["seconds"]}
    for kind in c.kinds:
        for field in BARRIER_FIELDS:
            out[f"connectivity.{kind}.{field}"] = c.barrier(kind, field).tolist()
    out["connectivity.distance"] = {kind: c.distances[:, k].tolist() for k, kind in enumerate(c.kinds)}
    for key in ("convexity_children", "convexity_seeds"):
        v = r[key]
        out[key] = {
            "jensen_gap_loss": v.jensen_gap_loss,
            "jensen_gap_error": v.jensen_gap_error,
            "member_accuracy": (1 - v.member_error).tolist(),
            "best_ingredient_accuracy": v.best_ingredient_accuracy,
            "uniform_soup_accuracy": v.uniform_soup_accuracy,
            "greedy_soup_accuracy": v.greedy_soup_accuracy,
            "greedy_chosen": list(v.greedy_chosen),
        }
    d = r["directedness"]
    out["directedness"] = {
        "mean_cosine": d.mean_cosine,
        "explained_variance": d.explained_variance.tolist(),
        "norms": d.norms.tolist(),
    }
    out["determinism"] = {
        source: {
            "linear_loss_excess": [float(x.barrier(source)) for x in r["determinism"]],
            "aligned_loss_excess": [float(x.barrier(source, aligned=True)) for x in r["determinism"]],
            "linear_error_excess": [float(x.barrier(source, field="error_excess")) for x in r["determinism"]],
            "function_distance": [float(x.function_distance[i]) for x in r["determinism"]],
        }
        for i, source in enumerate(("init", "order", "both"))
    }
    out["determinism"]["reference_accuracy"] = [float(x.accuracies[0]) for x in r["determinism"]]
    if r["redundant"] is not None:
        out["redundant_parameters"] = {
            "count": int(r["redundant"].indices.size),
            "names": list(r["redundant"].names[:8]),
        }
    return out


def tables(summary, args) -> str:
    fams = list(summary)
    lines = [
        f"Digits {', '.join(map(str, CLASSES))}; {args.seeds} seeds; Adam lr {args.lr}, {args.epochs} epochs, "
        "batch 32; "
        f"curves: Bezier, {args.curve_epochs} epochs; 61 points; test split. Mean ± sd over the "
        f"{args.seeds * (args.seeds - 1) // 2} pairs (connectivity) or {args.seeds} repeats.",
        "",
        "**Connectivity** (loss barrier, excess over the endpoints' chord | max − mean of endpoints; "
        "error barrier, excess)",
        "",
        "| family | params | naive loss | aligned loss | Bezier loss | naive max−mean | aligned max−mean | "
        "naive error | aligned error | Bezier error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in fams:
        s = summary[f]

        def get(kind, field, s=s):
            return ms(s[f"connectivity.{kind}.{field}"])

        lines.append(
            f"| {f} | {s['n_params']} | {get('linear', 'loss_excess')} | {get('aligned', 'loss_excess')} | "
            f"{get('bezier', 'loss_excess')} | {get('linear', 'loss_max_minus_mean')} | "
            f"{get('aligned', 'loss_max_minus_mean')} | {get('linear', 'error_excess')} | "
            f"{get('aligned', 'error_excess')} | {get('bezier', 'error_excess')} |"
        )
    lines += [
        "",
        "**Convexity and soups** (test accuracy; soups and the best ingredient chosen on a held-out fifth of the "
        "training split)",
        "",
        "| family | set | Jensen gap (loss) | Jensen gap (error) | best ingredient | uniform soup | greedy soup |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in fams:
        for key, label in (("convexity_children", "children of one parent"), ("convexity_seeds", "seeds, aligned")):
            v = summary[f][key]
            lines.append(
                f"| {f} | {label} | {v['jensen_gap_loss']:.3f} | {v['jensen_gap_error']:.3f} | "
                f"{v['best_ingredient_accuracy']:.3f} | {v['uniform_soup_accuracy']:.3f} | "
                f"{v['greedy_soup_accuracy']:.3f} |"
            )
    lines += [
        "",
        "**Determinism** (linear loss barrier, excess, to the reference run | after alignment; fraction of test "
        "predictions that differ)",
        "",
        "| family | init seed differs | data order differs | both differ | aligned: init | aligned: order | "
        "aligned: both | disagreement (init / order / both) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in fams:
        d = summary[f]["determinism"]
        lines.append(
            f"| {f} | {ms(d['init']['linear_loss_excess'])} | {ms(d['order']['linear_loss_excess'])} | "
            f"{ms(d['both']['linear_loss_excess'])} | {ms(d['init']['aligned_loss_excess'])} | "
            f"{ms(d['order']['aligned_loss_excess'])} | {ms(d['both']['aligned_loss_excess'])} | "
            f"{np.mean(d['init']['function_distance']):.3f} / {np.mean(d['order']['function_distance']):.3f} / "
            f"{np.mean(d['both']['function_distance']):.3f} |"
        )
    lines += [
        "",
        "**Directedness** (children's displacements from the parent)",
        "",
        "| family | mean cosine | explained variance (first, second, ...) | displacement norms |",
        "| --- | ---: | --- | --- |",
    ]
    for f in fams:
        d = summary[f]["directedness"]
        lines.append(
            f"| {f} | {d['mean_cosine']:.3f} | {', '.join(f'{v:.3f}' for v in d['explained_variance'])} | "
            f"{', '.join(f'{v:.2f}' for v in d['norms'])} |"
        )
    return "\n".join(lines) + "\n"


def barrier_figure(summary):
    fams = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, field, label in (
        (axes[0], "loss_excess", "loss barrier (excess over the endpoints' chord)"),
        (axes[1], "error_excess", "error barrier (excess over the endpoints' chord)"),
    ):
        for k, kind in enumerate(("linear", "aligned", "bezier")):
            values = [np.asarray(summary[f][f"connectivity.{kind}.{field}"]) for f in fams]
            means = [v.mean() for v in values]
            sds = [v.std(ddof=1) if v.size > 1 else 0 for v in values]
            ax.bar(
                np.arange(len(fams)) + (k - 1) * 0.27,
                means,
                0.27,
                yerr=sds,
                capsize=3,
                label={"linear": "naive linear", "aligned": "aligned linear", "bezier": "Bezier (aligned)"}[kind],
            )
        ax.set_xticks(range(len(fams)), fams)
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    fig.suptitle("Mode connectivity on digits 0-3 (test split): mean ± sd over pairs of seeds")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--curve-epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y, x_test, y_test = to_torch(load_dataset("digits", classes=CLASSES))
    # a fixed fifth of the training split is held out to choose soups
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    n_sel = x.shape[0] // 5
    sel, fit = order[:n_sel], order[n_sel:]
    data = (x[fit], y[fit], x[sel], y[sel], x_test, y_test)
    print(f"digits {CLASSES}: {fit.numel()} fit, {n_sel} held out, {x_test.shape[0]} test", flush=True)
    start = time.perf_counter()
    results, summary = {}, {}
    for name in args.families.split(","):
        results[name] = family_run(name, FAMILIES[name], data, args)
        summary[name] = summarise(name, results[name])
        r = results[name]
        fig = plot_mode_properties(
            r["connectivity"], r["convexity_children"], r["determinism"][0], r["directedness"], title=name
        )
        save_figure(fig, out / f"modes_{name.replace(' ', '').replace('=', '').replace('+', '_').lower()}", dpi=80)
        plt.close(fig)
    save_figure(barrier_figure(summary), out / "barriers", dpi=90)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "seconds": time.perf_counter() - start,
        "args": vars(args),
        "n_fit": int(fit.numel()),
        "n_held_out": int(n_sel),
        "n_test": int(x_test.shape[0]),
    }
    (out / "merging.json").write_text(json.dumps({"meta": meta, "families": summary}, indent=1) + "\n")
    (out / "table.md").write_text(tables(summary, args))
    print(tables(summary, args))
    print(f"total {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
