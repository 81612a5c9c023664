"""NTK evolution during training (Fort et al. 2020) for the digits CNN and a patch QNN.

Usage (from the repository root):

    .venv/bin/python benchmarks/ntk/run_ntk.py [--out benchmarks/ntk] [--seed 0]

For each model: train while recording the parameters at EVERY optimiser step, then

* ``kernel_evolution`` of the trace-form empirical NTK on a fixed subset of training inputs, every
  ``KERNEL_EVERY`` steps (uniform Δt, so velocities at different times are comparable: S grows like Δt² for a
  kernel rotating at a constant rate, so log-spaced times would bias the velocity up at late times);
* ``kernel_machine_curve``: test accuracy of kernel ridge regression with Θ_t (trained on a subset of the training
  inputs) at log-spread times, beside the network's own accuracy at t and at the end of training.

Writes ``summary.json`` (the numbers quoted in README.md), ``results/*.json|npz`` (the result objects) and
``ntk_<model>.png`` figures. One torch thread and one BLAS thread; about 4-5 minutes on one shared CPU core.
"""

from __future__ import annotations

import argparse
import os

# torch.set_num_threads(1) does not reach numpy's OpenBLAS: with torch's OpenMP pool alive, a multi-threaded
# OpenBLAS on a shared 2-core machine made a 200x200 np.vdot take ~8 ms instead of ~10 µs (measured), which
# dominated the kernel distances. One BLAS thread, set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
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
from qlandscape.metrics.ntk.kernel_machines import kernel_machine_curve
from qlandscape.metrics.ntk.kernels import kernel_evolution
from qlandscape.metrics.ntk.results import KernelEvolution, KernelMachineCurve
from qlandscape.models.classical import CNN
from qlandscape.models.qnn import PatchQNN
from qlandscape.plots.ntk import (
    plot_kernel_alignment,
    plot_kernel_distance_from_init,
    plot_kernel_distance_matrix,
    plot_kernel_machine_accuracy,
    plot_kernel_velocity,
)
from qlandscape.train.trainer import TrainConfig, train

# Epochs at which the kernel machine is built (snapped to the nearest recorded step).
MACHINE_EPOCHS = (0, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 10)
# Kernel machines per model: (training inputs, ridge relative to the mean diagonal of the training kernel).
# The first is the main curve; a larger ridge and a 100-input machine (where a learned kernel should help most)
# are checks.
MACHINES = ((None, 1e-6), (None, 1e-3), (100, 1e-6))
TABLE_TIMES = (0, 0.5, 1, 3, 4)


def settings() -> dict[str, dict]:
    """The models compared: the 10-class digits CNN (SGD with momentum, and Adam) and a 4-class patch QNN."""
    cnn = dict(
        data=dict(classes=None, angle_range=(0.0, 1.0)),
        kernel_every=2,
        n_kernel=200,
        n_machine_train=500,
        model=lambda shape, n_classes, seed: CNN(shape, n_classes, channels=(8, 16), seed=seed),
    )
    return {
        "cnn": dict(
            cnn,
            label="CNN (8, 16), digits 10 classes, SGD lr 0.05 momentum 0.9",
            config=dict(optimizer="sgd", lr=0.05, momentum=0.9, epochs=10, batch_size=32),
        ),
        "cnn_adam": dict(
            cnn,
            label="CNN (8, 16), digits 10 classes, Adam lr 0.01",
            config=dict(optimizer="adam", lr=0.01, epochs=10, batch_size=32),
        ),
        "qnn": dict(
            label="PatchQNN hea 4q 2L, 9 patches 4x4, mean rule, digits 0-3",
            data=dict(classes=(0, 1, 2, 3), angle_range=(0.0, np.pi)),
            model=lambda shape, n_classes, seed: PatchQNN(
                shape,
                n_classes,
                ansatz="hea",
                n_qubits=4,
                n_layers=2,
                patch_size=4,
                n_patches=9,
                aggregation="mean",
                seed=seed,
            ),
            config=dict(optimizer="adam", lr=0.05, epochs=10, batch_size=32),
            kernel_every=1,
            n_kernel=200,
            n_machine_train=400,
        ),
    }


def nearest_indices(times: np.ndarray, wanted: tuple[float, ...]) -> np.ndarray:
    """Indices of the recorded times nearest to each wanted epoch (deduplicated, increasing)."""
    return np.unique([int(np.argmin(np.abs(times - w))) for w in wanted if w <= times[-1] + 1e-12])


def window_mean(t: np.ndarray, v: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the finite values v at times lo <= t <= hi (NaN when there are none)."""
    keep = (t >= lo) & (t <= hi) & np.isfinite(v)
    return float(np.mean(v[keep])) if keep.any() else float("nan")


def at_time(t: np.ndarray, v: np.ndarray, when: float) -> tuple[float, float]:
    """(the recorded time nearest ``when``, the value there)."""
    i = int(np.argmin(np.abs(t - when)))
    return float(t[i]), float(v[i])


def lagged_velocity(evo: KernelEvolution, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """S(t_i, t_{i+lag}) / (t_{i+lag} - t_i) from the pairwise distance matrix (a coarser Δt, as a check)."""
    m = len(evo.times)
    s = np.array([evo.distance[i, i + lag] for i in range(m - lag)])
    dt = evo.times[lag:] - evo.times[:-lag]
    return (evo.times[lag:] + evo.times[:-lag]) / 2, s / dt


def loglog_slope(t: np.ndarray, v: np.ndarray, lo: float, hi: float) -> float:
    """Least-squares slope of log v against log t over lo <= t <= hi (positive values only)."""
    keep = (t >= lo) & (t <= hi) & (v > 0)
    return float(np.polyfit(np.log(t[keep]), np.log(v[keep]), 1)[0]) if keep.sum() >= 3 else float("nan")


def run_model(name: str, spec: dict, seed: int, out: Path, *, first: bool) -> dict:
    """Train one model, measure the kernel evolution and the kernel machines; for the first seed also the checks
    (larger ridge) and the figure."""
    data = load_dataset("digits", test_fraction=0.25, seed=0, **spec["data"])
    x_train, y_train, x_test, y_test = to_torch(data)
    model = spec["model"](data.image_shape, data.n_classes, seed)
    n_params = sum(p.numel() for p in model.parameters())
    config = TrainConfig(seed=seed, record_every=1, **spec["config"])
    start = time.perf_counter()
    _, result = train(model, x_train, y_train, x_test, y_test, config)
    t_train = time.perf_counter() - start
    tag = f"{name}_seed{seed}"
    print(
        f"[{tag}] {n_params} params, trained in {t_train:.1f} s, test acc {result.final_test_accuracy:.4f}", flush=True
    )

    objective = Objective(model, x_train, y_train)
    start = time.perf_counter()
    evo = kernel_evolution(
        objective,
        result.trajectory,
        result.times,
        spec["n_kernel"],
        every=spec["kernel_every"],
        form="trace",
        pairwise=True,
        store_kernels=False,
    )
    t_evo = time.perf_counter() - start
    io.save_result(evo, out / "results" / f"{tag}_evolution")
    print(f"[{tag}] kernel evolution at {len(evo.times)} times in {t_evo:.1f} s", flush=True)

    idx = nearest_indices(result.times, MACHINE_EPOCHS)
    n_mt = spec["n_machine_train"]
    curves: dict[str, KernelMachineCurve] = {}
    start = time.perf_counter()
    for k, (n_inputs, ridge) in enumerate(MACHINES):
        if not first and ridge != MACHINES[0][1]:
            continue
        n = n_mt if n_inputs is None else n_inputs
        key = f"n{n}_ridge{ridge:g}"
        # the residual NTK regression solves an (n·C)² system: affordable for the 4-output QNN only
        curves[key] = kernel_machine_curve(
            objective,
            result.trajectory,
            result.times,
            x_train[:n],
            y_train[:n],
            x_test,
            y_test,
            times_to_use=result.times[idx],
            ridge=ridge,
            ridge_relative=True,
            linearised=(name == "qnn" and k == 0),
        )
        io.save_result(curves[key], out / "results" / f"{tag}_kernel_machine_{key}")
    t_km = time.perf_counter() - start
    print(f"[{tag}] {len(curves)} kernel machines at {len(idx)} times in {t_km:.1f} s", flush=True)

    # ---- numbers
    t_end = float(result.times[-1])
    vt, v = evo.velocity_times, evo.velocity
    vt4, v4 = lagged_velocity(evo, 4)
    summary: dict = dict(
        label=spec["label"],
        n_params=n_params,
        n_classes=data.n_classes,
        n_train=int(len(y_train)),
        n_test=int(len(y_test)),
        config=dict(vars(config)),
        steps_per_epoch=int(round(1 / result.times[1])),
        train_seconds=t_train,
        evolution_seconds=t_evo,
        kernel_machine_seconds=t_km,
        n_kernel_inputs=evo.n_inputs,
        kernel_every_steps=spec["kernel_every"],
        n_kernel_times=len(evo.times),
        n_machine_train=n_mt,
        final_test_accuracy=result.final_test_accuracy,
        final_train_accuracy=float(result.train_accuracy[-1]),
        test_accuracy_per_epoch=result.test_accuracy.tolist(),
        train_loss_per_epoch=result.train_loss.tolist(),
        train_accuracy_per_epoch=result.train_accuracy.tolist(),
        param_distance_from_init_final=float(evo.param_distance_from_init[-1]),
    )
    summary["distance_from_init"] = {
        f"{w:g}": at_time(evo.times, evo.distance_from_init, w) for w in (0.1, 0.25, 0.5, 1, 2, 3, 4, 6, 8, t_end)
    }
    summary["alignment"] = {f"{w:g}": at_time(evo.times, evo.alignment, w) for w in (0, 0.5, 1, 2, 4, t_end)}
    summary["kernel_norm_ratio_final_to_init"] = float(evo.kernel_norms[-1] / evo.kernel_norms[0])
    windows = ((0, 0.25), (0.25, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 7), (7, t_end), (4, t_end))
    summary["velocity_window_means"] = {f"{lo:g}-{hi:g}": window_mean(vt, v, lo, hi) for lo, hi in windows}
    summary["velocity_window_means_lag4"] = {f"{lo:g}-{hi:g}": window_mean(vt4, v4, lo, hi) for lo, hi in windows}
    summary["velocity_loglog_slope"] = {
        "early 0-0.5": loglog_slope(vt, v, 0, 0.5),
        "mid 0.5-3": loglog_slope(vt, v, 0.5, 3),
        "late 3-end": loglog_slope(vt, v, 3, t_end),
    }
    summary["kernel_machine"] = {
        key: dict(
            times=c.times.tolist(),
            kernel_accuracy=c.kernel_accuracy.tolist(),
            kernel_train_accuracy=c.kernel_train_accuracy.tolist(),
            network_accuracy=c.network_accuracy.tolist(),
            linearised_accuracy=c.linearised_accuracy.tolist(),
            final_network_accuracy=c.final_network_accuracy,
        )
        for key, c in curves.items()
    }
    summary["kernel_machine_at"] = {
        key: {f"{w:g}": at_time(c.times, c.kernel_accuracy, w) for w in TABLE_TIMES + (t_end,)}
        for key, c in curves.items()
    }

    if first:
        figure(name, spec, evo, curves, result.final_test_accuracy, n_params, out)
    return summary


def figure(
    name: str,
    spec: dict,
    evo: KernelEvolution,
    curves: dict[str, KernelMachineCurve],
    final_accuracy: float,
    n_params: int,
    out: Path,
) -> None:
    """Six panels: velocity (two Δt), distance from init, kernel machines, distance matrix, alignment, log-time
    distance with the kernel norm."""
    curve = next(iter(curves.values()))
    vt4, v4 = lagged_velocity(evo, 4)
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout="constrained")
    plot_kernel_velocity(evo, ax=axes[0, 0])
    keep = (vt4 > 0) & (v4 > 0)
    axes[0, 0].loglog(
        vt4[keep], v4[keep], color="tab:orange", alpha=0.7, linewidth=1, label=f"Δt = 4 × {spec['kernel_every']} steps"
    )
    axes[0, 0].lines[0].set_label(f"Δt = {spec['kernel_every']} step(s)")
    axes[0, 0].legend(fontsize="small")
    plot_kernel_distance_from_init(evo, ax=axes[0, 1])
    plot_kernel_machine_accuracy(curve, ax=axes[0, 2])
    for (key, other), color in zip(list(curves.items())[1:], ("tab:purple", "tab:brown")):
        axes[0, 2].plot(
            other.times,
            other.kernel_accuracy,
            marker="x",
            markersize=3,
            color=color,
            linewidth=1,
            label=f"kernel machine, {other.n_train} inputs, ridge {other.ridge:g}",
        )
    axes[0, 2].set_xscale("symlog", linthresh=0.1)
    axes[0, 2].legend(fontsize="x-small")
    axes[0, 2].set_title(f"Kernel machines from Θ_t ({curve.n_train} train inputs, ridge {MACHINES[0][1]:g} rel.)")
    plot_kernel_distance_matrix(evo, ax=axes[1, 0])
    plot_kernel_alignment(evo, ax=axes[1, 1])
    ax = axes[1, 2]
    ax.semilogx(evo.times[1:], evo.distance_from_init[1:], marker="o", markersize=2, label="S(t₀, t)")
    ax.set_xlabel("time t (epochs, log)")
    ax.set_ylabel("kernel distance from init")
    ax2 = ax.twinx()
    ax2.semilogx(
        evo.times[1:], evo.kernel_norms[1:] / evo.kernel_norms[0], color="tab:red", linewidth=1, label="‖Θ_t‖ / ‖Θ_0‖"
    )
    ax2.set_ylabel("‖Θ_t‖_F / ‖Θ_0‖_F", color="tab:red")
    ax.set_title("distance from init (log time) and kernel norm")
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"{spec['label']}: {n_params} params, NTK on {evo.n_inputs} training inputs "
        f"(trace form), final test acc {final_accuracy:.3f}"
    )
    fig.savefig(out / f"ntk_{name}.png", dpi=110)
    plt.close(fig)


def _ms(values: list[float], fmt: str = ".3f") -> str:
    a = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return f"{a.mean():{fmt}}" if a.size == 1 else f"{a.mean():{fmt}} ± {a.std():{fmt}}"


def tables(record: dict) -> str:
    """Markdown tables of the summary (mean ± std over seeds)."""
    seeds = record["seeds"]
    lines = [
        f"Mean ± std over seeds {seeds} (population std).",
        "",
        "### Kernel distance from initialisation S(Θ_0, Θ_t)",
        "",
        "| model | t = 0.25 | 0.5 | 1 | 2 | 4 | 10 (end) | ‖Θ_T‖/‖Θ_0‖ | ‖θ_T − θ_0‖ | final test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_seed in record["models"].items():
        runs = list(by_seed.values())
        cells = [_ms([r["distance_from_init"][w][1] for r in runs], ".4f") for w in ("0.25", "0.5", "1", "2", "4")]
        end = _ms([list(r["distance_from_init"].values())[-1][1] for r in runs], ".4f")
        lines.append(
            f"| {name} | {' | '.join(cells)} | {end} | "
            f"{_ms([r['kernel_norm_ratio_final_to_init'] for r in runs], '.3g')} | "
            f"{_ms([r['param_distance_from_init_final'] for r in runs], '.3g')} | "
            f"{_ms([r['final_test_accuracy'] for r in runs])} |"
        )
    lines += [
        "",
        "### Kernel velocity S(t_i, t_i+1)/Δt (per epoch), window means",
        "",
        "| model | Δt (steps) | 0-0.25 | 0.25-0.5 | 0.5-1 | 1-2 | 2-4 | 4-7 | 7-10 | early/late (0-0.25 vs 4-10) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_seed in record["models"].items():
        runs = list(by_seed.values())
        for key, lag in (("velocity_window_means", 1), ("velocity_window_means_lag4", 4)):
            wins = list(runs[0][key])
            cells = [_ms([r[key][w] for r in runs], ".2e") for w in wins[:-1]]
            ratio = _ms([r[key]["0-0.25"] / r[key][wins[-1]] for r in runs], ".2f")
            lines.append(f"| {name} | {lag * runs[0]['kernel_every_steps']} | {' | '.join(cells)} | {ratio} |")
    lines += ["", "### Kernel-machine test accuracy with Θ_t against t (epochs), beside the network", ""]
    header = " | ".join(f"t = {w:g}" for w in TABLE_TIMES)
    lines += [
        f"| model | machine | {header} | t = 10 (end) | network at end |",
        "|---|---|" + "---:|" * (len(TABLE_TIMES) + 2),
    ]
    for name, by_seed in record["models"].items():
        runs = list(by_seed.values())
        for key in runs[0]["kernel_machine_at"]:
            have = [r for r in runs if key in r["kernel_machine_at"]]
            cells = [_ms([r["kernel_machine_at"][key][f"{w:g}"][1] for r in have]) for w in TABLE_TIMES]
            end = _ms([list(r["kernel_machine_at"][key].values())[-1][1] for r in have])
            n_note = f" ({len(have)} seed{'s' if len(have) > 1 else ''})" if len(have) != len(runs) else ""
            lines.append(
                f"| {name} | {key}{n_note} | {' | '.join(cells)} | {end} | "
                f"{_ms([r['final_test_accuracy'] for r in have])} |"
            )
        if "linearised_accuracy" in runs[0]["kernel_machine"][next(iter(runs[0]["kernel_machine"]))]:
            key = next(iter(runs[0]["kernel_machine"]))
            lin = [r["kernel_machine"][key] for r in runs]
            if lin[0]["linearised_accuracy"][0] is not None and not np.isnan(lin[0]["linearised_accuracy"][0]):
                cells = [
                    _ms([c["linearised_accuracy"][int(np.argmin(np.abs(np.array(c["times"]) - w)))] for c in lin])
                    for w in TABLE_TIMES
                ]
                lines.append(
                    f"| {name} | linearised at t, {key} | {' | '.join(cells)} | "
                    f"{_ms([c['linearised_accuracy'][-1] for c in lin])} | "
                    f"{_ms([r['final_test_accuracy'] for r in runs])} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--seeds", default="0,1,2", help="initialisation and data-order seeds; figures: the first")
    parser.add_argument("--models", default="cnn,cnn_adam,qnn")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seeds = [int(v) for v in args.seeds.split(",")]
    record: dict = dict(
        seeds=seeds,
        torch=torch.__version__,
        platform=platform.platform(),
        machine_epochs=list(MACHINE_EPOCHS),
        machines=[list(m) for m in MACHINES],
        models={},
    )
    specs = settings()
    for name in args.models.split(","):
        record["models"][name] = {
            str(seed): run_model(name, specs[name], seed, out, first=(k == 0)) for k, seed in enumerate(seeds)
        }
    record["total_seconds"] = time.perf_counter() - start
    io.write_json(out / "summary.json", record)
    (out / "table.md").write_text(tables(record))
    print(f"done in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
