"""Figures for the four mode properties (:mod:`qlandscape.metrics.modes`): the paths between two models, barriers by
path kind, and one panel per property."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError, check_choice
from qlandscape.metrics.modes.results import (
    BARRIER_FIELDS,
    ConnectivityResult,
    ConvexityResult,
    DeterminismResult,
    DirectednessResult,
)
from qlandscape.plots import axes_or_new, colour
from qlandscape.plots.landscape import loss_label

__all__ = [
    "BARRIER_LABELS",
    "plot_mode_paths",
    "plot_connectivity_barriers",
    "plot_mode_properties",
    "plot_connectivity_across_runs",
]

BARRIER_LABELS = {
    "loss_excess": "loss barrier (excess over the endpoints' chord)",
    "loss_max_minus_mean": "loss barrier (max − mean of endpoints)",
    "error_excess": "error barrier (excess over the endpoints' chord)",
    "error_max_minus_mean": "error barrier (max − mean of endpoints)",
}
_KIND_LABELS = {
    "linear": "linear",
    "aligned": "aligned linear",
    "bezier": "Bezier (aligned)",
    "polychain": "polychain (aligned)",
}


def plot_mode_paths(
    result: ConnectivityResult, pair: int = 0, quantity: str = "loss", ax: Axes | None = None
) -> Figure:
    """Loss (or error) against t along every path kind between the models of pair ``pair``."""
    check_choice("quantity", quantity, ("loss", "error"))
    if not 0 <= pair < result.pairs.shape[0]:
        raise ConfigError("pair", pair, f"expected an index in [0, {result.pairs.shape[0]})")
    ax = axes_or_new(ax)
    values = result.losses if quantity == "loss" else result.errors
    for k, kind in enumerate(result.kinds):
        ax.plot(result.ts, values[pair, k], color=colour(k), label=_KIND_LABELS.get(kind, kind))
    a, b = result.pairs[pair]
    ax.set_xlabel(f"t  (0: model {a}, 1: model {b})")
    ax.set_ylabel(loss_label(result.loss_name) if quantity == "loss" else "error rate")
    reset = ", BN statistics recomputed per point" if result.bn_reset else ""
    ax.set_title(f"Paths between models {a} and {b} ({result.split} split{reset})", fontsize="medium")
    ax.legend(fontsize="small")
    return ax.get_figure()


def plot_connectivity_barriers(
    result: ConnectivityResult, field: str = "loss_excess", ax: Axes | None = None
) -> Figure:
    """Mean barrier per path kind over the pairs, with the standard deviation as error bars and each pair as a dot."""
    check_choice("field", field, BARRIER_FIELDS)
    ax = axes_or_new(ax)
    for k, kind in enumerate(result.kinds):
        values = result.barrier(kind, field)
        spread = values.std(ddof=1) if values.size > 1 else 0.0
        ax.bar(k, values.mean(), yerr=spread, color=colour(k), alpha=0.7, capsize=4)
        ax.plot(np.full(values.size, k), values, "k.", ms=4)
    ax.set_xticks(range(len(result.kinds)), [_KIND_LABELS.get(k, k) for k in result.kinds], fontsize="small")
    ax.set_ylabel(BARRIER_LABELS[field])
    ax.set_title(f"Mode connectivity: {result.pairs.shape[0]} pairs, mean ± sd ({result.split})", fontsize="medium")
    return ax.get_figure()


def plot_mode_properties(
    connectivity: ConnectivityResult,
    convexity: ConvexityResult,
    determinism: DeterminismResult,
    directedness: DirectednessResult,
    *,
    title: str = "",
) -> Figure:
    """One figure, one panel per property: barriers by path kind; Jensen gap and soups; barriers by source of
    randomness; cosines of displacements with the explained variance of their principal directions."""
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 8.5), layout="constrained")
    plot_connectivity_barriers(connectivity, ax=axes[0, 0])
    ax = axes[0, 1]
    names = ["best ingredient", "uniform soup", "greedy soup"]
    values = [convexity.best_ingredient_accuracy, convexity.uniform_soup_accuracy, convexity.greedy_soup_accuracy]
    ax.bar(range(3), values, color=[colour(i) for i in range(3)], alpha=0.7)
    ax.set_xticks(range(3), names, fontsize="small")
    ax.set_ylabel(f"accuracy ({convexity.split})")
    ax.set_ylim(max(0.0, min(values) - 0.1), min(1.0, max(values) + 0.05))
    ax.set_title(
        f"Convexity: Jensen gap L(mean) − mean L = {convexity.jensen_gap_loss:.3g} (k = {convexity.k}"
        f"{', aligned' if convexity.aligned else ''})",
        fontsize="medium",
    )
    ax = axes[1, 0]
    width = 0.38
    for p, label in enumerate(("linear", "aligned")):
        ax.bar(
            np.arange(len(determinism.sources)) + (p - 0.5) * width,
            determinism.barriers[:, p, 0],
            width,
            color=colour(p),
            alpha=0.7,
            label=label,
        )
    ax.set_xticks(range(len(determinism.sources)), [f"{s} seed differs" for s in determinism.sources], fontsize="small")
    ax.set_ylabel(BARRIER_LABELS["loss_excess"])
    ax.set_title(f"Determinism: barrier to the reference run ({determinism.split})", fontsize="medium")
    ax.legend(fontsize="small")
    ax = axes[1, 1]
    image = ax.imshow(directedness.cosines, vmin=-1, vmax=1, cmap="RdBu_r")
    fig.colorbar(image, ax=ax, label="cosine of displacements from the shared point")
    ev = ", ".join(f"{v:.2f}" for v in directedness.explained_variance[:3])
    ax.set_title(
        f"Directedness: mean cosine {directedness.mean_cosine:.2f}; explained variance {ev}", fontsize="medium"
    )
    ax.set_xlabel("model")
    ax.set_ylabel("model")
    if title:
        fig.suptitle(title)
    return fig


def plot_connectivity_across_runs(
    labels: list[str], results: list[ConnectivityResult], field: str = "loss_excess", ax: Axes | None = None
) -> Figure:
    """For each run (``labels[i]``, ``results[i]``): its mean barrier over pairs for every path kind, side by side."""
    check_choice("field", field, BARRIER_FIELDS)
    if len(labels) != len(results) or not results:
        raise ConfigError("labels, results", (len(labels), len(results)), "expected one label per result, at least one")
    ax = axes_or_new(ax, size=(max(5.0, 0.9 * len(results) + 2), 4.0))
    kinds = list(dict.fromkeys(kind for r in results for kind in r.kinds))
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        means = [float(np.mean(r.barrier(kind, field))) if kind in r.kinds else np.nan for r in results]
        ax.bar(np.arange(len(results)) + (k - (len(kinds) - 1) / 2) * width, means, width, color=colour(k),
               label=_KIND_LABELS.get(kind, kind))  # fmt: skip
    ax.set_xticks(range(len(results)), labels, rotation=30, ha="right", fontsize="small")
    ax.set_ylabel(BARRIER_LABELS[field])
    ax.set_title("Mode connectivity by run: mean barrier over pairs of seeds", fontsize="medium")
    ax.legend(fontsize="small")
    return ax.get_figure()
