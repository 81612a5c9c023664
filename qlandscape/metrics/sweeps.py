"""Aggregating many runs: the result types of a sweep report and the pure functions that build them from run rows.

A row is one run's flat record (``qlandscape.runs.tables.run_row``): its config fields, model facts (``n_params``,
``n_patches``, ``params_per_circuit``), scalar metrics and a ``status``. Runs are grouped by the config fields
(``fields``) whose value differs among them; ``seed`` and ``data_seed`` are replicates, aggregated into mean, sample
std, min and max. Model size has two derived axes, the parameter count and the patch count: a size field (layers,
patches, stride, ...) that these determine is absorbed into them, any other varying field (ansatz, lr, backend,
...) splits lines. A field whose value is a table of settings (``metrics``: which metrics a run computed, and how)
is never an axis: runs of a folder that computed different metrics are one group when nothing else differs. A
power law is fitted on a line only with three or more distinct x values (:data:`MIN_POWER_LAW_POINTS`); a line with
fewer says so instead. The figures of these results are in :mod:`qlandscape.plots.sweeps`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qlandscape.core.errors import ConfigError
from qlandscape.metrics.fits import MIN_POWER_LAW_POINTS, PowerLawFit, distinct_power_law_ns, fit_power_law

__all__ = [
    "REPLICATE_AXES",
    "SIZE_AXES",
    "AXIS_LABELS",
    "number",
    "natural_key",
    "complete_rows",
    "varying_axes",
    "varies",
    "split_axes",
    "line_label",
    "SweepSeries",
    "series",
    "plot_axes",
    "ScalingFit",
    "scaling_fit",
    "summary_table",
    "KernelCurves",
    "kernel_curves",
    "ResultGrid",
    "result_grid",
]

REPLICATE_AXES = ("seed", "data_seed")
SIZE_AXES = ("layers", "patches", "stride", "patch_size", "qubits", "width", "depth", "channels", "pool")
AXIS_LABELS = {"n_params": "parameter count", "n_patches": "patch count N", "params_per_circuit": "params/circuit"}


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict, tuple)) else value


def number(value: Any) -> float:
    """``value`` as a finite float, NaN where it is missing, not a number or not finite."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def natural_key(value: Any) -> tuple:
    """Sort key that orders numbers inside text numerically ("N = 2" before "N = 10") and None last."""
    if value is None:
        return ((2, ""),)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ((0, float(value)),)
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(t)) if i % 2 else (1, t) for i, t in enumerate(parts) if t)


def complete_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows of finished runs."""
    return [r for r in rows if r.get("status") == "complete"]


def is_table_field(rows: Sequence[dict], name: str) -> bool:
    """Whether ``name`` holds a table of settings (a dict) in any row: such a field is never an axis."""
    return any(isinstance(r.get(name), Mapping) for r in rows)


def varying_axes(rows: Sequence[dict], fields: Sequence[str], *, replicates: bool = False) -> list[str]:
    """The ``fields`` whose value differs among ``rows`` (seeds excluded unless ``replicates``, tables of settings
    always), in field order."""
    out = []
    for name in fields:
        if not replicates and name in REPLICATE_AXES:
            continue
        if is_table_field(rows, name):
            continue
        if len({_hashable(r.get(name)) for r in rows}) > 1:
            out.append(name)
    return out


def varies(rows: Sequence[dict], key: str) -> bool:
    """Whether ``key`` takes more than one value among the rows that have it."""
    return len({_hashable(r.get(key)) for r in rows if r.get(key) is not None}) > 1


def _determined(rows: Sequence[dict], axis: str, by: Sequence[str]) -> bool:
    seen: dict[tuple, Any] = {}
    for r in rows:
        key = tuple(_hashable(r.get(b)) for b in by)
        if seen.setdefault(key, _hashable(r.get(axis))) != _hashable(r.get(axis)):
            return False
    return True


def split_axes(rows: Sequence[dict], x_axis: str, line_axis: str | None, *, fields: Sequence[str]) -> list[str]:
    """Varying config fields that split lines besides ``x_axis`` / ``line_axis`` (size fields they fix are not)."""
    fixed = [a for a in (x_axis, line_axis) if a]
    return [
        a for a in varying_axes(rows, fields) if a not in fixed and not (a in SIZE_AXES and _determined(rows, a, fixed))
    ]


def line_label(row: dict, line_axis: str | None, others: Sequence[str], rows: Sequence[dict] = ()) -> str:
    """Legend text of the line ``row`` belongs to."""
    parts = []
    if (
        line_axis == "params_per_circuit"
        and len({_hashable(r.get("layers")) for r in rows}) > 1
        and _determined(rows, "layers", ["params_per_circuit"])
    ):
        parts.append(f"L = {row.get('layers')} ({row.get('params_per_circuit')} params/circuit)")
    elif line_axis == "n_patches":
        parts.append(f"N = {row.get('n_patches')}")
    elif line_axis:
        parts.append(f"{AXIS_LABELS.get(line_axis, line_axis)} = {row.get(line_axis)}")
    parts += [f"{a} = {_hashable(row.get(a))}" for a in others]
    return ", ".join(parts) or "all runs"


@dataclass(frozen=True)
class SweepSeries:
    """One metric aggregated over seeds: group g sits on line ``line[g]`` at ``x[g]`` with its statistics.
    ``label`` names the metric on an axis."""

    metric: str
    label: str
    x_axis: str
    line_axis: str
    line_labels: tuple[str, ...]
    line: np.ndarray
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def series(
    rows: Sequence[dict],
    metric: str,
    x_axis: str,
    line_axis: str | None = None,
    *,
    fields: Sequence[str],
    label: str | None = None,
) -> SweepSeries:
    """Mean, sample std, min and max of ``metric`` over replicates, per (line, x) group of complete runs."""
    rows = [
        r
        for r in complete_rows(rows)
        if not math.isnan(number(r.get(metric))) and not math.isnan(number(r.get(x_axis)))
    ]
    if not rows:
        raise ConfigError("metric", metric, f"no complete run has both {metric} and {x_axis}")
    others = split_axes(rows, x_axis, line_axis, fields=fields)
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        key = (line_label(r, line_axis, others, rows), number(r[x_axis]))
        groups.setdefault(key, []).append(number(r[metric]))
    labels = sorted({k[0] for k in groups}, key=natural_key)
    keys = sorted(groups, key=lambda k: (labels.index(k[0]), k[1]))
    values = [np.asarray(groups[k]) for k in keys]
    return SweepSeries(
        metric=metric,
        label=label or metric,
        x_axis=x_axis,
        line_axis=line_axis or "",
        line_labels=tuple(labels),
        line=np.array([labels.index(k[0]) for k in keys]),
        x=np.array([k[1] for k in keys]),
        mean=np.array([v.mean() for v in values]),
        std=np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in values]),
        low=np.array([v.min() for v in values]),
        high=np.array([v.max() for v in values]),
        n=np.array([v.size for v in values]),
    )


def plot_axes(rows: Sequence[dict], *, fields: Sequence[str]) -> list[tuple[str, str | None]]:
    """(x axis, line axis) pairs worth drawing: against parameter count and against patch count when they vary."""
    rows = complete_rows(rows)
    if varies(rows, "n_patches"):
        return [("n_params", "n_patches"), ("n_patches", "params_per_circuit")]
    if varies(rows, "n_params"):
        return [("n_params", None)]
    numeric = [a for a in varying_axes(rows, fields) if all(isinstance(r.get(a), (int, float)) for r in rows)]
    return [(numeric[0], None)] if numeric else []


@dataclass(frozen=True)
class ScalingFit:
    """``metric`` against ``x_axis`` for every run, per line, with a power law fitted on each line's points (None
    where the line has fewer than three distinct x values; ``reasons`` then says so, "" where it was fitted).
    ``label`` names the metric on an axis."""

    metric: str
    label: str
    x_axis: str
    line_labels: tuple[str, ...]
    line: np.ndarray
    x: np.ndarray
    y: np.ndarray
    fits: tuple[PowerLawFit | None, ...]
    reasons: tuple[str, ...] = ()

    def reason(self, line: int) -> str:
        """Why line ``line`` has no fit ("" when it has one)."""
        return self.reasons[line] if line < len(self.reasons) else ""


def scaling_fit(
    rows: Sequence[dict],
    metric: str,
    x_axis: str = "n_patches",
    line_axis: str | None = "params_per_circuit",
    *,
    fields: Sequence[str],
    label: str | None = None,
) -> ScalingFit:
    """Fit ``metric ≈ a · x^b`` per line (all replicates as points; a line needs three distinct x values, and one
    with fewer gets no fit and a reason)."""
    rows = [r for r in complete_rows(rows) if number(r.get(metric)) > 0 and number(r.get(x_axis)) > 0]
    if not rows:
        raise ConfigError("metric", metric, f"no complete run has a positive {metric} and {x_axis}")
    others = split_axes(rows, x_axis, line_axis, fields=fields)
    labels = [line_label(r, line_axis, others, rows) for r in rows]
    order = sorted(set(labels), key=natural_key)
    line = np.array([order.index(lab) for lab in labels])
    x = np.array([number(r[x_axis]) for r in rows])
    y = np.array([number(r[metric]) for r in rows])
    fits: list[PowerLawFit | None] = []
    reasons: list[str] = []
    for i in range(len(order)):
        keep = line == i
        distinct = distinct_power_law_ns(x[keep], y[keep])
        if distinct >= MIN_POWER_LAW_POINTS:
            fits.append(fit_power_law(x[keep], y[keep]))
            reasons.append("")
        else:
            fits.append(None)
            reasons.append(
                f"no fit: {distinct} distinct {AXIS_LABELS.get(x_axis, x_axis)} value{'s' if distinct != 1 else ''}, "
                f"a power law needs {MIN_POWER_LAW_POINTS}"
            )
    return ScalingFit(
        metric=metric,
        label=label or metric,
        x_axis=x_axis,
        line_labels=tuple(order),
        line=line,
        x=x,
        y=y,
        fits=tuple(fits),
        reasons=tuple(reasons),
    )


def summary_table(rows: Sequence[dict], metrics: Sequence[str], *, fields: Sequence[str]) -> list[dict]:
    """One row per group of replicates (varying config fields): model size, runs, and per metric its mean, sample
    std (0 for one value), min, max and ``n`` (how many runs had it)."""
    axes = varying_axes(rows, fields)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(_hashable(r.get(a)) for a in axes), []).append(r)
    present = [m for m in metrics if any(not math.isnan(number(r.get(m))) for r in rows)]
    table = []
    for key in sorted(groups, key=lambda k: tuple((v is None, str(type(v)), v) for v in k)):
        members = groups[key]
        done = complete_rows(members)
        entry: dict[str, Any] = dict(zip(axes, key, strict=True))
        for fact in ("n_params", "n_patches", "params_per_circuit"):
            facts = {r.get(fact) for r in done if r.get(fact) is not None}
            entry[fact] = facts.pop() if len(facts) == 1 else None
        entry["n_runs"], entry["n_complete"] = len(members), len(done)
        for m in present:
            v = np.array([number(r.get(m)) for r in done])
            v = v[~np.isnan(v)]
            stats = (v.mean(), v.std(ddof=1) if v.size > 1 else 0.0, v.min(), v.max()) if v.size else (math.nan,) * 4
            entry.update({f"{m}.{s}": float(x) for s, x in zip(("mean", "std", "min", "max"), stats, strict=True)})
            entry[f"{m}.n"] = int(v.size)
        table.append(entry)
    return table


@dataclass(frozen=True)
class KernelCurves:
    """NTK evolution (and kernel-machine accuracy) of every run that has them, with a legend label each:
    ``evolutions`` hold :class:`~qlandscape.metrics.ntk.results.KernelEvolution` objects, ``machines``
    :class:`~qlandscape.metrics.ntk.results.KernelMachineCurve` objects or None."""

    labels: tuple[str, ...]
    evolutions: tuple[Any, ...]
    machines: tuple[Any | None, ...]


def kernel_curves(
    rows: Sequence[dict],
    load_evolution: Callable[[dict], Any],
    load_machine: Callable[[dict], Any | None],
    *,
    fields: Sequence[str],
) -> KernelCurves | None:
    """The kernel curves of the complete ``rows`` (each must have an evolution), ordered by their varying fields
    and seed; None when there is no such row."""
    rows = complete_rows(rows)
    if not rows:
        return None
    others = varying_axes(rows, fields)
    rows.sort(key=lambda r: [natural_key(_hashable(r.get(a))) for a in others + ["seed"]])
    return KernelCurves(
        labels=tuple(line_label(r, None, others, rows) for r in rows),
        evolutions=tuple(load_evolution(r) for r in rows),
        machines=tuple(load_machine(r) for r in rows),
    )


@dataclass(frozen=True)
class ResultGrid:
    """Saved results of one run per cell (the lowest seed), cells indexed by (row value, column value)."""

    name: str
    row_axis: str
    col_axis: str
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    cells: tuple[tuple[Any, ...], ...]  # result objects, None where no run
    notes: tuple[tuple[str, ...], ...]  # per-cell text: parameter count and seed


def _representative(rows: Sequence[dict]) -> dict:
    return min(rows, key=lambda r: (number(r.get("seed")), number(r.get("data_seed")), r["id"]))


def result_grid(
    rows: Sequence[dict], name: str, load: Callable[[dict], Any], row_axis: str | None, col_axis: str | None
) -> ResultGrid | None:
    """The result ``name`` of one complete run per (row, column) cell, read by ``load`` (only the representative of
    each cell is read); ``rows`` are the runs that have it. None when there is none."""
    rows = complete_rows(rows)
    if not rows:
        return None

    def values(axis: str | None) -> list:
        return sorted({_hashable(r.get(axis)) for r in rows}, key=natural_key) if axis else [None]

    def label(axis: str | None, members: list[dict]) -> str:
        return line_label(members[0], axis, [], rows) if axis and members else ""

    row_values, col_values = values(row_axis), values(col_axis)
    cells: list[list[Any]] = [[None] * len(col_values) for _ in row_values]
    notes = [[""] * len(col_values) for _ in row_values]
    for i, rv in enumerate(row_values):
        for j, cv in enumerate(col_values):
            members = [
                r
                for r in rows
                if (not row_axis or _hashable(r.get(row_axis)) == rv)
                and (not col_axis or _hashable(r.get(col_axis)) == cv)
            ]
            if members:
                rep = _representative(members)
                cells[i][j] = load(rep)
                notes[i][j] = f"P = {rep.get('n_params')}, seed {rep.get('seed')}"
    row_labels = [label(row_axis, [r for r in rows if _hashable(r.get(row_axis)) == v]) for v in row_values]
    col_labels = [label(col_axis, [r for r in rows if _hashable(r.get(col_axis)) == v]) for v in col_values]
    return ResultGrid(
        name=name,
        row_axis=row_axis or "",
        col_axis=col_axis or "",
        row_labels=tuple(row_labels),
        col_labels=tuple(col_labels),
        cells=tuple(map(tuple, cells)),
        notes=tuple(map(tuple, notes)),
    )
