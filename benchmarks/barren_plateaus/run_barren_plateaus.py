"""Barren plateaus: gradient-variance decay with qubits for the hardware-efficient ansatz, global vs local cost,
and the gradient variance of a PatchQNN loss against the number of patches on 8x8 digits.

Usage (from the repository root):

    .venv/bin/python benchmarks/barren_plateaus/run_barren_plateaus.py [--qubits 2:10] [--layers 1,5,20]
        [--samples 200] [--costs global,local] [--out benchmarks/barren_plateaus]

Writes ``gradvar_<cost>.json/.npz`` (VarianceCurve), ``patches_L<layers>.json/.npz`` (PatchVarianceCurve),
``variance_vs_qubits.png/.pdf``, ``variance_vs_patches.png/.pdf`` and ``summary.json`` (rates with CIs,
timings, versions). One torch thread.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from qlandscape.cli.gradvar import format_table, parse_int_range
from qlandscape.core import io
from qlandscape.data.datasets import load_dataset, to_torch
from qlandscape.metrics.fits import fit_decay
from qlandscape.metrics.gradients import DIGITS_GRIDS, patch_variance, variance_curve
from qlandscape.plots.gradients import plot_patch_variance, plot_variance_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--ansatz", default="hea")
    parser.add_argument("--qubits", default="2:10")
    parser.add_argument("--layers", default="1,5,20")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--costs", default="global,local,projector")
    parser.add_argument("--tail-from", type=int, default=6, help="also fit the exponential on n >= this")
    parser.add_argument("--patch-qubits", type=int, default=4)
    parser.add_argument("--patch-layers", default="1,5", help="layer counts of the patch circuits")
    parser.add_argument("--patch-samples", type=int, default=200)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    qubits, layers = parse_int_range("qubits", args.qubits), parse_int_range("layers", args.layers)
    costs = args.costs.split(",")
    summary: dict = {
        "torch": torch.__version__,
        "platform": platform.platform(),
        "threads": 1,
        "ansatz": args.ansatz,
        "samples": args.samples,
        "curves": {},
        "patches": {},
    }

    fig, axes = plt.subplots(1, len(costs), figsize=(5.5 * len(costs), 4.4), layout="constrained", sharey=True)
    for ax, cost in zip(np.atleast_1d(axes), costs):
        start = time.perf_counter()
        curve = variance_curve(args.ansatz, qubits, layers, samples=args.samples, cost=cost, progress=True)
        seconds = time.perf_counter() - start
        io.save_result(curve, out / f"gradvar_{cost}")
        plot_variance_curve(curve, ax=ax)
        print(format_table(curve), f"\n[{cost}: {seconds:.1f} s]\n", flush=True)
        # the same points fitted as a power law, Var ~ n^-p (log Var against log n), for comparison
        powers = [
            fit_decay(np.log(curve.qubits), curve.mean_variance[i], curve.standard_error[i])
            for i in range(len(curve.layers))
        ]
        for L, pw in zip(curve.layers, powers):
            print(
                f"  L={int(L):<3} power law Var ~ n^-p: p = {pw.rate:.3f} [{pw.rate_low:.3f}, {pw.rate_high:.3f}]"
                f"  (reduced chi2 {pw.chi2_reduced:.2f})"
            )
        q = curve.qubits >= args.tail_from
        tails = [
            fit_decay(curve.qubits[q], curve.mean_variance[i, q], curve.standard_error[i, q])
            for i in range(len(curve.layers))
        ]
        for L, tl in zip(curve.layers, tails):
            print(
                f"  L={int(L):<3} exponential on n >= {args.tail_from}: b = {tl.rate:.4f} [{tl.rate_low:.4f}, "
                f"{tl.rate_high:.4f}]  (reduced chi2 {tl.chi2_reduced:.2f})"
            )
        summary["curves"][cost] = {
            f"exponential_n>={args.tail_from}": {f"L={int(L)}": tl._asdict() for L, tl in zip(curve.layers, tails)},
            "qubits": qubits,
            "seconds": seconds,
            "power_law": {f"L={int(L)}": pw._asdict() for L, pw in zip(curve.layers, powers)},
            "rates": {
                f"L={int(L)}": {
                    "rate": curve.rate[i],
                    "low": curve.rate_low[i],
                    "high": curve.rate_high[i],
                    "chi2_reduced": curve.chi2_reduced[i],
                }
                for i, L in enumerate(curve.layers)
            },
            "mean_variance": curve.mean_variance.tolist(),
            "standard_error": curve.standard_error.tolist(),
        }
    fig.savefig(out / "variance_vs_qubits.png", dpi=150)
    fig.savefig(out / "variance_vs_qubits.pdf")
    plt.close(fig)

    # PatchQNN: 16 digits (classes 0-3: the mean rule reads one <Z_i> per class), pixels scaled to [0, pi]
    data = load_dataset("digits", classes=(0, 1, 2, 3), angle_range=(0.0, math.pi), max_train=args.images, seed=0)
    x, y, _, _ = to_torch(data)
    patch_layers = parse_int_range("patch-layers", args.patch_layers)
    fig, axes = plt.subplots(
        1, len(patch_layers), figsize=(5.5 * len(patch_layers), 4.4), layout="constrained", sharey=True
    )
    for ax, n_layers in zip(np.atleast_1d(axes), patch_layers):
        start = time.perf_counter()
        result = patch_variance(
            x,
            y,
            grids=DIGITS_GRIDS,
            n_qubits=args.patch_qubits,
            n_layers=n_layers,
            samples=args.patch_samples,
            progress=True,
        )
        seconds = time.perf_counter() - start
        io.save_result(result, out / f"patches_L{n_layers}")
        plot_patch_variance(result, ax=ax)
        rows = [
            f"  N={int(n):>2} (patch {int(p)}, stride {int(s)}): {v:.4e} ± {e:.1e}"
            for n, p, s, v, e in zip(
                result.n_patches, result.patch_size, result.stride, result.mean_variance, result.standard_error
            )
        ]
        print(
            f"PatchQNN {args.patch_qubits} qubits, L={n_layers}, {len(y)} images:",
            *rows,
            f"  exponent c (Var ~ N^-c) = {result.exponent:.3f} [{result.exponent_low:.3f}, "
            f"{result.exponent_high:.3f}]  [{seconds:.1f} s]",
            sep="\n",
            flush=True,
        )
        summary["patches"][f"L={n_layers}"] = {
            "n_patches": result.n_patches.tolist(),
            "mean_variance": result.mean_variance.tolist(),
            "standard_error": result.standard_error.tolist(),
            "exponent": result.exponent,
            "exponent_low": result.exponent_low,
            "exponent_high": result.exponent_high,
            "seconds": seconds,
        }
    fig.savefig(out / "variance_vs_patches.png", dpi=150)
    fig.savefig(out / "variance_vs_patches.pdf")
    plt.close(fig)
    io.write_json(out / "summary.json", summary)


if __name__ == "__main__":
    main()
