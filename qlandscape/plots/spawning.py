"""Figures for parent-child spawning: error barrier, function distance and the children's test accuracies against the
spawn time."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.plots import colour

__all__ = ["plot_barrier_vs_spawn_time"]


def _groups(results: SpawnResult | Sequence[SpawnResult], labels: Sequence[str] | None) -> dict[str, list[SpawnResult]]:
    """Results grouped by label (in first-seen order); results sharing a label are seeds of one setting."""
    if isinstance(results, SpawnResult):
        results = [results]
    results = list(results)
    if labels is None:
        labels = [f"parent seed {r.parent_seed}" if len(results) > 1 else r.model for r in results]
    if len(labels) != len(results):
        raise ConfigError("labels", len(labels), f"expected one label per result ({len(results)} results)")
    groups: dict[str, list[SpawnResult]] = {}
    for result, label in zip(results, labels, strict=True):
        groups.setdefault(label, []).append(result)
    return groups


def _linthresh(groups: dict[str, list[SpawnResult]]) -> float:
    positive = [t for rs in groups.values() for r in rs for t in r.spawn_epochs if t > 0]
    return float(min(positive)) if positive else 1.0


def _times(label: str, results: list[SpawnResult]) -> np.ndarray:
    times = results[0].spawn_epochs
    if any(r.spawn_epochs.shape != times.shape or not np.allclose(r.spawn_epochs, times) for r in results):
        raise ConfigError(
            "labels",
            label,
            "results sharing a label are seeds of one setting and need the same spawn times; give them distinct labels",
        )
    return times


def _spawn_axis(ax: Axes, groups: dict[str, list[SpawnResult]], linthresh: float) -> None:
    # symlog: linear on [0, linthresh] so that spawning at t_s = 0 is drawn, logarithmic above.
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
    ticks = np.unique(np.concatenate([r.spawn_epochs for rs in groups.values() for r in rs]))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel(f"spawn time t_s (epochs; symlog axis, linear below {linthresh:g})")
    ax.grid(True, alpha=0.3)


def _draw(ax: Axes, groups: dict[str, list[SpawnResult]], key: str, ylabel: str, linthresh: float) -> None:
    for i, (label, results) in enumerate(groups.items()):
        times = _times(label, results)
        values = np.stack([getattr(r, key) for r in results])
        mean = values.mean(0)
        if len(results) > 1:
            std = values.std(0)
            ax.plot(times, mean, marker="o", color=colour(i), label=f"{label} (mean ± std, n = {len(results)} seeds)")
            ax.fill_between(times, mean - std, mean + std, color=colour(i), alpha=0.2, linewidth=0)
        else:
            ax.plot(times, mean, marker="o", color=colour(i), label=f"{label} (n = 1)")
    _spawn_axis(ax, groups, linthresh)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))


def _draw_accuracies(ax: Axes, groups: dict[str, list[SpawnResult]], linthresh: float) -> None:
    """Each child's final test accuracy (solid: child 1, dashed: child 2; the mean over results sharing a label)
    and the parent's (dotted)."""
    for i, (label, results) in enumerate(groups.items()):
        times = _times(label, results)
        accuracies = np.stack([r.child_test_accuracy for r in results]).mean(0)  # (S, 2)
        for child, style in ((0, "-"), (1, "--")):
            ax.plot(times, accuracies[:, child], marker="o", ms=4, ls=style, color=colour(i))
        parent = float(np.mean([r.parent_test_accuracy for r in results]))
        ax.axhline(parent, color=colour(i), ls=":", lw=1.0)
    _spawn_axis(ax, groups, linthresh)
    ax.set_ylabel("test accuracy (solid: child 1, dashed: child 2; dotted: parent)", fontsize="small")
    lowest = min(min(float(r.child_test_accuracy.min()), r.parent_test_accuracy) for rs in groups.values() for r in rs)
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)


def plot_barrier_vs_spawn_time(
    results: SpawnResult | Sequence[SpawnResult],
    labels: Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Test error barrier between the two children, their function distance and their test accuracies against the
    spawn time.

    ``results`` is one :class:`SpawnResult` or several; results with the same label are drawn as mean ± std
    (e.g. several parent seeds of one setting). The x axis is symlog, linear below the smallest positive spawn
    time, so t_s = 0 is shown. With ``ax=None`` a figure with three panels is made (error barrier, function
    distance, the children's and the parent's test accuracies); with one ``Axes`` only the barrier is drawn on it;
    with two or three, one panel each.
    """
    groups = _groups(results, labels)
    linthresh = _linthresh(groups)
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    elif isinstance(ax, Axes):
        axes = [ax]
        fig = ax.figure
    else:
        axes = list(ax)
        fig = axes[0].figure
    _draw(axes[0], groups, "error_barrier", "test error barrier between children", linthresh)
    axes[0].legend(fontsize="small")
    if len(axes) > 1:
        _draw(axes[1], groups, "function_distance", "function distance (fraction of test inputs)", linthresh)
    if len(axes) > 2:
        _draw_accuracies(axes[2], groups, linthresh)
    return fig
