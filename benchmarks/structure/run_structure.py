"""Structured curvature H = G + R: outliers against class count, and lambda_max against patch count N.

Usage (from the repository root):

    .venv/bin/python benchmarks/structure/run_structure.py [--out benchmarks/structure] [--seeds 0,1,2]

Part 1 (outliers vs classes): PatchQNNs and a small MLP trained on digits with 2, 4 and 10 classes; at the trained
point, ``decompose`` of the mean cross-entropy on the first ``N_EVAL`` training samples and ``structure_summary``
(outlier counts of H and G, top eigenvalues, spectra of H, G, R).

Part 2 (lambda_max vs N): PatchQNN (hea, 4 qubits, 2 layers, 4x4 patches, mean rule, c = 5) on digits 0 vs 1 with
N = 1, 4, 9, 16, 25 count-based patch grids; lambda_max of H and G at the trained point, raw and divided by the
aggregation scale c²/N, with power-law fits (``fit_power_law``, 95% CI on the exponent).

Writes ``structure.json`` (every number), ``table.md`` (the tables quoted in README.md), ``spectra.png``,
``top_eigenvalues.png`` and ``lambda_max_vs_patches.png``. One torch thread and one BLAS thread; about 2 minutes
on one shared core.
"""

from __future__ import annotations

import argparse
import os

# torch.set_num_threads(1) does not reach numpy's OpenBLAS: with torch's OpenMP pool alive, a multi-threaded
# OpenBLAS on a shared 2-core machine made a 200x200 np.vdot take ~8 ms instead of ~10 µs (measured), which
# dominated the kernel distances. One BLAS thread, set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import dataclasses
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from qlandscape.core import io
from qlandscape.core.objective import Objective
from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.metrics.curvature.results import StructureSummary
from qlandscape.metrics.curvature.structured import decompose, structure_summary
from qlandscape.metrics.fits import fit_power_law
from qlandscape.models.classical import MLP
from qlandscape.models.qnn import PatchQNN
from qlandscape.train.trainer import TrainConfig, train

CLASS_COUNTS = (2, 4, 10)
PATCH_COUNTS = (1, 4, 9, 16, 25)
N_EVAL = 300  # training samples in the evaluation set of the Hessian
TOP = 40  # eigenvalues kept per spectrum in the JSON (4 x the largest class count)

QNN_CIRCUIT = dict(ansatz="hea", n_qubits=4, n_layers=2, patch_size=4)


def families() -> dict[str, dict]:
    """Models of part 1. The 'mean' QNN reads Z, then X, then Y on 4 qubits (12 outputs), so its 2- and 4-class
    logits are exactly the default Z readout and 10 classes add X0..X3, Y0, Y1; the 'linear' QNN reads Z only
    and maps the 4 patch-mean outputs to the classes with a trainable head."""
    return {
        "qnn_mean": dict(
            label="PatchQNN, mean rule (Z,X,Y readout), 9 patches",
            make=lambda shape, c, seed: PatchQNN(
                shape, c, n_patches=9, aggregation="mean", observables=["Z", "X", "Y"], seed=seed, **QNN_CIRCUIT
            ),
            config=dict(optimizer="adam", lr=0.05, epochs=15, batch_size=32),
            angle_range=(0.0, np.pi),
            output_scale=5.0,
        ),
        "qnn_linear": dict(
            label="PatchQNN, linear head (Z readout), 9 patches",
            make=lambda shape, c, seed: PatchQNN(shape, c, n_patches=9, aggregation="linear", seed=seed, **QNN_CIRCUIT),
            config=dict(optimizer="adam", lr=0.05, epochs=15, batch_size=32),
            angle_range=(0.0, np.pi),
            output_scale=None,
        ),
        "mlp": dict(
            label="MLP 64-16-C (ReLU)",
            make=lambda shape, c, seed: MLP(shape, c, width=16, depth=1, seed=seed),
            config=dict(optimizer="adam", lr=0.01, epochs=30, batch_size=32),
            angle_range=(0.0, 1.0),
            output_scale=None,
        ),
    }


def measure(
    model, x_train, y_train, x_test, y_test, config: TrainConfig, output_scale: float | None, *, at_init: bool = False
) -> dict:
    """Train, then the structured curvature at the final point on the first N_EVAL training samples (and, with
    ``at_init``, at the initial point too: there every model sits at a comparable loss)."""
    start = time.perf_counter()
    trained, result = train(model, x_train, y_train, x_test, y_test, config)
    t_train = time.perf_counter() - start
    objective = Objective(trained, x_train[:N_EVAL], y_train[:N_EVAL])
    start = time.perf_counter()
    dec = decompose(objective)
    summary = structure_summary(dec, output_scale=output_scale)
    t_curv = time.perf_counter() - start
    init: dict = {}
    if at_init:
        theta0 = Objective(model, x_train[:1], y_train[:1]).theta0
        s0 = structure_summary(decompose(objective, theta0), output_scale=output_scale)
        init = dict(
            init_eval_loss=float(objective.loss(theta0)),
            init_lambda_max=s0.lambda_max,
            init_lambda_max_gauss_newton=s0.lambda_max_gauss_newton,
            init_lambda_max_normalised=s0.lambda_max_normalised,
            init_lambda_max_gauss_newton_normalised=s0.lambda_max_gauss_newton / s0.aggregation_scale,
            init_n_outliers_hessian=s0.n_outliers,
            init_n_outliers_gauss_newton=s0.n_outliers_gauss_newton,
            init_top_hessian=s0.eigenvalues_hessian[::-1][:TOP].tolist(),
            init_top_gauss_newton=s0.eigenvalues_gauss_newton[::-1][:TOP].tolist(),
        )
    return dict(
        summary=summary,
        record=dict(
            **init,
            n_params=objective.n_params,
            n_eval=objective.n_samples,
            method=dec.method,
            train_seconds=t_train,
            curvature_seconds=t_curv,
            final_train_loss=float(result.train_loss[-1]),
            final_test_accuracy=result.final_test_accuracy,
            train_loss_per_epoch=result.train_loss.tolist(),
            eval_loss=float(objective.loss()),
            eval_grad_norm=float(objective.grad().norm()),
            n_outliers_hessian=summary.n_outliers,
            n_outliers_gauss_newton=summary.n_outliers_gauss_newton,
            lambda_max=summary.lambda_max,
            lambda_min=summary.lambda_min,
            lambda_max_gauss_newton=summary.lambda_max_gauss_newton,
            lambda_max_residual=summary.lambda_max_residual,
            lambda_min_residual=summary.lambda_min_residual,
            aggregation_scale=summary.aggregation_scale,
            lambda_max_normalised=summary.lambda_max_normalised,
            lambda_max_gauss_newton_normalised=summary.lambda_max_gauss_newton / summary.aggregation_scale,
            top_hessian=summary.eigenvalues_hessian[::-1][:TOP].tolist(),
            top_gauss_newton=summary.eigenvalues_gauss_newton[::-1][:TOP].tolist(),
            top_residual_abs=np.sort(np.abs(summary.eigenvalues_residual))[::-1][:TOP].tolist(),
            negative_fraction_hessian=float(np.mean(summary.eigenvalues_hessian < 0)),
            gap_at_classes_minus_one_hessian=gap_ratio(summary.eigenvalues_hessian, summary.n_classes - 1),
            gap_at_classes_minus_one_gauss_newton=gap_ratio(summary.eigenvalues_gauss_newton, summary.n_classes - 1),
            largest_gap_hessian=gap_ratio(summary.eigenvalues_hessian, summary.n_outliers),
            largest_gap_gauss_newton=gap_ratio(summary.eigenvalues_gauss_newton, summary.n_outliers_gauss_newton),
        ),
    )


def gap_ratio(eigenvalues: np.ndarray, k: int) -> float:
    """λ_k / λ_{k+1} of the descending spectrum (1-based k): the multiplicative gap below the top k."""
    top = np.sort(eigenvalues)[::-1]
    return float(top[k - 1] / top[k]) if 1 <= k < top.size and top[k] > 0 else float("nan")


def part_classes(seeds: list[int], out: Path) -> tuple[dict, dict[tuple[str, int], StructureSummary]]:
    """Outlier counts and top eigenvalues against the class count, per model family and seed."""
    record: dict = {}
    spectra: dict[tuple[str, int], StructureSummary] = {}
    for name, fam in families().items():
        record[name] = dict(label=fam["label"], config=fam["config"], runs={})
        for c in CLASS_COUNTS:
            data = load_dataset("digits", classes=list(range(c)), angle_range=fam["angle_range"], seed=0)
            x_train, y_train, x_test, y_test = to_torch(data)
            runs = []
            for seed in seeds:
                config = TrainConfig(seed=seed, **fam["config"])
                res = measure(
                    fam["make"](data.image_shape, c, seed),
                    x_train,
                    y_train,
                    x_test,
                    y_test,
                    config,
                    fam["output_scale"],
                    at_init=True,
                )
                runs.append(res["record"])
                if seed == seeds[0]:
                    spectra[(name, c)] = res["summary"]
                r = res["record"]
                print(
                    f"[classes] {name} C={c} seed={seed}: P={r['n_params']} test acc "
                    f"{r['final_test_accuracy']:.3f} outliers H/G {r['n_outliers_hessian']}/"
                    f"{r['n_outliers_gauss_newton']} lmax H {r['lambda_max']:.4g} G "
                    f"{r['lambda_max_gauss_newton']:.4g} ({r['train_seconds']:.0f}+{r['curvature_seconds']:.0f} s)",
                    flush=True,
                )
            record[name]["runs"][str(c)] = runs
    return record, spectra


def part_patches(seeds: list[int]) -> dict:
    """lambda_max of H and G against the patch count N, raw and normalised by c²/N, with power-law fits."""
    data = load_dataset("digits", classes=[0, 1], angle_range=(0.0, np.pi), seed=0)
    x_train, y_train, x_test, y_test = to_torch(data)
    config_kw = dict(optimizer="adam", lr=0.05, epochs=20, batch_size=32)
    runs: dict[str, list[dict]] = {}
    for n in PATCH_COUNTS:
        runs[str(n)] = []
        for seed in seeds:
            model = PatchQNN(data.image_shape, 2, n_patches=n, aggregation="mean", seed=seed, **QNN_CIRCUIT)
            res = measure(
                model,
                x_train,
                y_train,
                x_test,
                y_test,
                TrainConfig(seed=seed, **config_kw),
                model.output_scale,
                at_init=True,
            )["record"]
            res["positions"] = [list(p) for p in model.grid.positions]
            runs[str(n)].append(res)
            print(
                f"[patches] N={n} seed={seed}: P={res['n_params']} test acc {res['final_test_accuracy']:.3f} "
                f"loss {res['final_train_loss']:.4f} lmax H {res['lambda_max']:.4g} G "
                f"{res['lambda_max_gauss_newton']:.4g} norm {res['lambda_max_normalised']:.4g} "
                f"({res['train_seconds']:.0f}+{res['curvature_seconds']:.0f} s)",
                flush=True,
            )
    ns = np.array([n for n in PATCH_COUNTS for _ in seeds], dtype=float)
    fits = {}
    for key in (
        "lambda_max",
        "lambda_max_gauss_newton",
        "lambda_max_normalised",
        "lambda_max_gauss_newton_normalised",
        "init_lambda_max",
        "init_lambda_max_gauss_newton",
        "init_lambda_max_normalised",
        "init_lambda_max_gauss_newton_normalised",
    ):
        values = np.array([r[key] for n in PATCH_COUNTS for r in runs[str(n)]])
        for label, keep in (("all N", ns > 0), ("N >= 4", ns >= 4)):
            fit = fit_power_law(ns[keep], values[keep])
            fits[f"{key} ({label})"] = dataclasses.asdict(fit)
    return dict(
        config=config_kw, circuit=QNN_CIRCUIT, output_scale=5.0, n_eval=N_EVAL, runs=runs, fits=fits, dataset=repr(data)
    )


# --------------------------------------------------------------------------------------------------- figures
def figure_spectra(spectra: dict[tuple[str, int], StructureSummary], path: Path) -> None:
    """Sorted |eigenvalue| of H, G and R (log scale) for each family and class count."""
    names = sorted({k[0] for k in spectra}, key=list(families()).index)
    fig, axes = plt.subplots(
        len(names), len(CLASS_COUNTS), figsize=(15, 3.6 * len(names)), layout="constrained", squeeze=False
    )
    labels = {n: f["label"] for n, f in families().items()}
    for i, name in enumerate(names):
        for j, c in enumerate(CLASS_COUNTS):
            ax = axes[i, j]
            s = spectra[(name, c)]
            for vals, lab, style in (
                (s.eigenvalues_hessian, "H", "-"),
                (s.eigenvalues_gauss_newton, "G", "--"),
                (s.eigenvalues_residual, "R", ":"),
            ):
                mags = np.sort(np.abs(vals))[::-1]
                ax.semilogy(np.arange(1, mags.size + 1), np.maximum(mags, 1e-16), style, label=f"|eig {lab}|")
            ax.axvline(s.n_outliers + 0.5, color="tab:blue", alpha=0.4, linewidth=1)
            ax.axvline(s.n_outliers_gauss_newton + 0.5, color="tab:orange", alpha=0.4, linewidth=1, linestyle="--")
            ax.set_xscale("log")
            ax.set_ylim(bottom=max(1e-10, np.abs(s.eigenvalues_hessian).max() * 1e-8))
            ax.set_title(
                f"{labels[name]}\nC = {c}: outliers H {s.n_outliers}, G {s.n_outliers_gauss_newton}", fontsize="small"
            )
            ax.set_xlabel("rank (sorted by |eigenvalue|)")
            ax.set_ylabel("|eigenvalue|")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_top(spectra: dict[tuple[str, int], StructureSummary], path: Path) -> None:
    """The top 4C eigenvalues of H and G (linear rank), where the outlier gap is looked for."""
    names = sorted({k[0] for k in spectra}, key=list(families()).index)
    fig, axes = plt.subplots(
        len(names), len(CLASS_COUNTS), figsize=(15, 3.3 * len(names)), layout="constrained", squeeze=False
    )
    for i, name in enumerate(names):
        for j, c in enumerate(CLASS_COUNTS):
            ax = axes[i, j]
            s = spectra[(name, c)]
            k = 4 * c
            ax.semilogy(
                np.arange(1, k + 1), np.maximum(s.eigenvalues_hessian[::-1][:k], 1e-12), "o-", markersize=3, label="H"
            )
            ax.semilogy(
                np.arange(1, k + 1),
                np.maximum(s.eigenvalues_gauss_newton[::-1][:k], 1e-12),
                "s--",
                markersize=3,
                label="G",
            )
            ax.axvline(s.n_outliers + 0.5, color="tab:blue", alpha=0.5, linewidth=1)
            ax.axvline(s.n_outliers_gauss_newton + 0.5, color="tab:orange", alpha=0.5, linewidth=1, linestyle="--")
            ax.set_title(f"{name}, C = {c} (lines: outlier cut H / G)", fontsize="small")
            ax.set_xlabel("rank")
            ax.set_ylabel("eigenvalue")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_patches(patches: dict, path: Path) -> None:
    """log-log lambda_max of H and G against N, raw and normalised by c²/N, at the trained point (filled) and
    at initialisation (hollow), with the fitted power laws over all N."""
    fig, axes = plt.subplots(1, 3, figsize=(19, 5), layout="constrained")
    grid = np.geomspace(1, 25, 50)
    ns = [int(n) for n, rs in patches["runs"].items() for _ in rs]
    for ax, suffix, title in ((axes[0], "", "raw"), (axes[1], "_normalised", "divided by c²/N")):
        for where, filled, style in (("", True, "-"), ("init_", False, ":")):
            for base, color, marker, name in (
                ("lambda_max", "tab:blue", "o", "H"),
                ("lambda_max_gauss_newton", "tab:orange", "s", "G"),
            ):
                key = where + base + suffix
                vals = [r[key] for rs in patches["runs"].values() for r in rs]
                ax.loglog(
                    ns,
                    vals,
                    marker,
                    color=color,
                    alpha=0.7,
                    linestyle="none",
                    markerfacecolor=color if filled else "none",
                )
                fit = patches["fits"][f"{key} (all N)"]
                ax.loglog(
                    grid,
                    fit["prefactor"] * grid ** fit["exponent"],
                    color=color,
                    linestyle=style,
                    label=f"{'trained' if filled else 'init'}: λ_max({name}) ∝ N^{fit['exponent']:.2f} "
                    f"[{fit['exponent_low']:.2f}, {fit['exponent_high']:.2f}]",
                )
        if suffix:
            ax.axhline(1.0, color="grey", linewidth=0.5)
        ax.set_xlabel("patch count N")
        ax.set_ylabel("λ_max" + ("" if not suffix else " / (c²/N)"))
        ax.set_title(f"PatchQNN digits 0 vs 1: λ_max {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    # the trained points also differ in how far training got: curvature of cross-entropy falls with the loss
    ax = axes[2]
    cmap = plt.get_cmap("viridis")
    for k, (n, rs) in enumerate(patches["runs"].items()):
        color = cmap(k / max(1, len(patches["runs"]) - 1))
        ax.loglog(
            [r["final_train_loss"] for r in rs],
            [r["lambda_max_normalised"] for r in rs],
            "o",
            color=color,
            label=f"N = {n}, trained",
        )
        ax.loglog(
            [r["init_eval_loss"] for r in rs],
            [r["init_lambda_max_normalised"] for r in rs],
            "o",
            markerfacecolor="none",
            color=color,
        )
    ax.set_xlabel("training loss at the point (hollow: initialisation)")
    ax.set_ylabel("λ_max(H) / (c²/N)")
    ax.set_title("normalised λ_max against the loss reached")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------- tables
def tables(classes: dict, patches: dict) -> str:
    """Markdown tables of both parts (mean ± std over seeds)."""
    lines = [
        "### Outliers against the number of classes (mean ± std over seeds; counts listed per seed)",
        "",
        "| model | C | params | test acc | train loss | ‖∇L‖ | outliers H | outliers G | λ_max(H) "
        "| λ_max(G) | λ_max(R) | λ_min(H) | outliers H / G at init |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    gaps = [
        "",
        "### Gap ratios λ_k/λ_(k+1): at the detected outlier cut and at k = C − 1 (mean ± std over seeds)",
        "",
        "| model | C | H: largest gap (at the cut) | H: gap at C − 1 | G: largest gap | G: gap at C − 1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def ms(values: list[float], fmt: str = ".3g") -> str:
        a = np.asarray(values, dtype=float)
        return f"{a.mean():{fmt}} ± {a.std():{fmt}}"

    for name, fam in classes.items():
        for c, runs in fam["runs"].items():
            get = lambda k: [r[k] for r in runs]  # noqa: E731
            lines.append(
                f"| {name} | {c} | {runs[0]['n_params']} | {ms(get('final_test_accuracy'))} | "
                f"{ms(get('final_train_loss'))} | {ms(get('eval_grad_norm'), '.2g')} | "
                f"{', '.join(str(v) for v in get('n_outliers_hessian'))} | "
                f"{', '.join(str(v) for v in get('n_outliers_gauss_newton'))} | {ms(get('lambda_max'))} | "
                f"{ms(get('lambda_max_gauss_newton'))} | {ms(get('lambda_max_residual'))} | {ms(get('lambda_min'))} | "
                + (
                    f"{', '.join(str(v) for v in get('init_n_outliers_hessian'))} / "
                    f"{', '.join(str(v) for v in get('init_n_outliers_gauss_newton'))} |"
                    if "init_n_outliers_hessian" in runs[0]
                    else "- |"
                )
            )
            gaps.append(
                f"| {name} | {c} | {ms(get('largest_gap_hessian'))} | "
                f"{ms(get('gap_at_classes_minus_one_hessian'))} | {ms(get('largest_gap_gauss_newton'))} | "
                f"{ms(get('gap_at_classes_minus_one_gauss_newton'))} |"
            )
    lines += gaps
    lines += ["", "### Top eigenvalues (first seed): H, then G", ""]
    for name, fam in classes.items():
        for c, runs in fam["runs"].items():
            r = runs[0]
            top = ", ".join(f"{v:.3g}" for v in r["top_hessian"][: min(12, 2 * int(c) + 2)])
            topg = ", ".join(f"{v:.3g}" for v in r["top_gauss_newton"][: min(12, 2 * int(c) + 2)])
            lines.append(f"- {name}, C = {c}: H [{top}]; G [{topg}]")
    lines += [
        "",
        "### λ_max against the patch count N (PatchQNN, digits 0 vs 1, c = 5; mean ± std over seeds)",
        "",
        "| N | params | test acc | train loss | ‖∇L‖ | λ_max(H) | λ_max(G) | c²/N | λ_max(H)/(c²/N) "
        "| λ_max(G)/(c²/N) | λ_min(H) | init loss | init λ_max(H) | init λ_max(H)/(c²/N) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, runs in patches["runs"].items():
        get = lambda k: [r[k] for r in runs]  # noqa: E731
        lines.append(
            f"| {n} | {runs[0]['n_params']} | {ms(get('final_test_accuracy'))} | {ms(get('final_train_loss'))} | "
            f"{ms(get('eval_grad_norm'), '.2g')} | {ms(get('lambda_max'))} | {ms(get('lambda_max_gauss_newton'))} | "
            f"{runs[0]['aggregation_scale']:.3g} | {ms(get('lambda_max_normalised'))} | "
            f"{ms(get('lambda_max_gauss_newton_normalised'))} | {ms(get('lambda_min'))} | "
            f"{ms(get('init_eval_loss'))} | {ms(get('init_lambda_max'))} | {ms(get('init_lambda_max_normalised'))} |"
        )
    lines += [
        "",
        "### Power-law fits λ ≈ a · N^b (95% CI on b; every seed is a point)",
        "",
        "| quantity | points | exponent b | 95% CI | prefactor a |",
        "|---|---:|---:|---|---:|",
    ]
    for key, fit in patches["fits"].items():
        lines.append(
            f"| {key} | {fit['n_points']} | {fit['exponent']:.3f} | [{fit['exponent_low']:.3f}, "
            f"{fit['exponent_high']:.3f}] | {fit['prefactor']:.4g} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--parts", default="classes,patches")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = args.parts.split(",")
    start = time.perf_counter()
    record: dict = dict(seeds=seeds, n_eval=N_EVAL, torch=torch.__version__, platform=platform.platform())
    if "classes" in parts:
        record["classes"], spectra = part_classes(seeds, out)
        figure_spectra(spectra, out / "spectra.png")
        figure_top(spectra, out / "top_eigenvalues.png")
    if "patches" in parts:
        record["patches"] = part_patches(seeds)
        figure_patches(record["patches"], out / "lambda_max_vs_patches.png")
    record["total_seconds"] = time.perf_counter() - start
    io.write_json(out / "structure.json", record)
    if "classes" in parts and "patches" in parts:
        (out / "table.md").write_text(tables(record["classes"], record["patches"]))
    print(f"done in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
