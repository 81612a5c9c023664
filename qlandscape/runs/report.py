"""Reports over run directories: one table (CSV), aggregated series, power-law fits, figures and one page.

Rows come from :func:`qlandscape.sweep.load_runs`. Runs are grouped by whatever config fields vary among them;
``seed`` and ``data_seed`` are replicates, aggregated into mean, sample std, min and max. Model size has two derived
axes, the parameter count ``n_params`` and the patch count ``n_patches``: a size field (layers, patches, stride,
...) that these two determine is absorbed into them, any other varying field (ansatz, lr, backend, ...) splits
lines. The figures live in :mod:`qlandscape.plots.report`; :func:`write_report` draws them and writes the page.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from qlandscape.core import io
from qlandscape.runs.config import RunConfig
from qlandscape.core.errors import ConfigError
from qlandscape.metrics.ntk.kernel_machines import KernelMachineCurve
from qlandscape.metrics.landscape.slices import Slice2D
from qlandscape.metrics.ntk.kernels import KernelEvolution
from qlandscape.metrics.curvature.spectral_density import SpectralDensity
from qlandscape.metrics.fits import PowerLawFit, fit_power_law
from qlandscape.runs.tables import load_runs, write_csv

REPLICATE_AXES = ("seed", "data_seed")
SIZE_AXES = ("layers", "patches", "stride", "patch_size", "qubits", "width", "depth", "channels", "pool")
HEADLINE = {"hessian.lambda_max": "λ_max (top Hessian eigenvalue)", "hessian.trace": "trace of the Hessian",
            "test_accuracy": "test accuracy"}
SUMMARY_METRICS = ("test_accuracy", "train_loss", "hessian.lambda_max", "hessian.lambda_min", "hessian.trace",
                   "hessian.structure.lambda_max_normalised", "hessian.structure.n_outliers",
                   "landscape.center_loss", "ntk.final_distance_from_init", "ntk.kernel_accuracy_final")
AXIS_LABELS = {"n_params": "parameter count", "n_patches": "patch count N", "params_per_circuit": "params/circuit"}


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict, tuple)) else value


def _number(value: Any) -> float:
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
    return tuple((0, float(t)) if i % 2 else (1, t) for i, t in enumerate(re.split(r"(\d+(?:\.\d+)?)", str(value)))
                 if t)


def complete_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows of finished runs."""
    return [r for r in rows if r.get("status") == "complete"]


def varying_axes(rows: Sequence[dict], *, replicates: bool = False) -> list[str]:
    """Config fields whose value differs among ``rows`` (seeds excluded unless ``replicates``)."""
    out = []
    for name in RunConfig.fields():
        if not replicates and name in REPLICATE_AXES:
            continue
        if len({_hashable(r.get(name)) for r in rows}) > 1:
            out.append(name)
    return out


def _varies(rows: Sequence[dict], key: str) -> bool:
    return len({_hashable(r.get(key)) for r in rows if r.get(key) is not None}) > 1


def _determined(rows: Sequence[dict], axis: str, by: Sequence[str]) -> bool:
    seen: dict[tuple, Any] = {}
    for r in rows:
        key = tuple(_hashable(r.get(b)) for b in by)
        if seen.setdefault(key, _hashable(r.get(axis))) != _hashable(r.get(axis)):
            return False
    return True


def split_axes(rows: Sequence[dict], x_axis: str, line_axis: str | None) -> list[str]:
    """Varying config fields that split lines besides ``x_axis`` / ``line_axis`` (size fields they fix are not)."""
    fixed = [a for a in (x_axis, line_axis) if a]
    return [a for a in varying_axes(rows) if a not in fixed
            and not (a in SIZE_AXES and _determined(rows, a, fixed))]


def line_label(row: dict, line_axis: str | None, others: Sequence[str], rows: Sequence[dict] = ()) -> str:
    """Legend text of the line ``row`` belongs to."""
    parts = []
    if line_axis == "params_per_circuit" and "layers" in varying_axes(rows) \
            and _determined(rows, "layers", ["params_per_circuit"]):
        parts.append(f"L = {row.get('layers')} ({row.get('params_per_circuit')} params/circuit)")
    elif line_axis == "n_patches":
        parts.append(f"N = {row.get('n_patches')}")
    elif line_axis:
        parts.append(f"{AXIS_LABELS.get(line_axis, line_axis)} = {row.get(line_axis)}")
    parts += [f"{a} = {_hashable(row.get(a))}" for a in others]
    return ", ".join(parts) or "all runs"


@dataclass(frozen=True)
class SweepSeries:
    """One metric aggregated over seeds: group g sits on line ``line[g]`` at ``x[g]`` with its statistics."""

    metric: str
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


def series(rows: Sequence[dict], metric: str, x_axis: str, line_axis: str | None = None) -> SweepSeries:
    """Mean, sample std, min and max of ``metric`` over replicates, per (line, x) group of complete runs."""
    rows = [r for r in complete_rows(rows) if not math.isnan(_number(r.get(metric)))
            and not math.isnan(_number(r.get(x_axis)))]
    if not rows:
        raise ConfigError("metric", metric, f"no complete run has both {metric} and {x_axis}")
    others = split_axes(rows, x_axis, line_axis)
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((line_label(r, line_axis, others, rows), _number(r[x_axis])), []).append(
            _number(r[metric]))
    labels = sorted({k[0] for k in groups}, key=natural_key)
    keys = sorted(groups, key=lambda k: (labels.index(k[0]), k[1]))
    values = [np.asarray(groups[k]) for k in keys]
    return SweepSeries(
        metric=metric, x_axis=x_axis, line_axis=line_axis or "", line_labels=tuple(labels),
        line=np.array([labels.index(k[0]) for k in keys]), x=np.array([k[1] for k in keys]),
        mean=np.array([v.mean() for v in values]),
        std=np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in values]),
        low=np.array([v.min() for v in values]), high=np.array([v.max() for v in values]),
        n=np.array([v.size for v in values]))


def plot_axes(rows: Sequence[dict]) -> list[tuple[str, str | None]]:
    """(x axis, line axis) pairs worth drawing: against parameter count and against patch count when they vary."""
    rows = complete_rows(rows)
    if _varies(rows, "n_patches"):
        return [("n_params", "n_patches"), ("n_patches", "params_per_circuit")]
    if _varies(rows, "n_params"):
        return [("n_params", None)]
    numeric = [a for a in varying_axes(rows) if all(isinstance(r.get(a), (int, float)) for r in rows)]
    return [(numeric[0], None)] if numeric else []


@dataclass(frozen=True)
class ScalingFit:
    """``metric`` against ``x_axis`` for every run, per line, with a power law fitted on each line's points."""

    metric: str
    x_axis: str
    line_labels: tuple[str, ...]
    line: np.ndarray
    x: np.ndarray
    y: np.ndarray
    fits: tuple[PowerLawFit | None, ...]


def scaling_fit(rows: Sequence[dict], metric: str, x_axis: str = "n_patches",
                line_axis: str | None = "params_per_circuit") -> ScalingFit:
    """Fit ``metric ≈ a · x^b`` per line (all replicates as points; a line needs two distinct x values)."""
    rows = [r for r in complete_rows(rows) if _number(r.get(metric)) > 0 and _number(r.get(x_axis)) > 0]
    if not rows:
        raise ConfigError("metric", metric, f"no complete run has a positive {metric} and {x_axis}")
    others = split_axes(rows, x_axis, line_axis)
    labels = [line_label(r, line_axis, others, rows) for r in rows]
    order = sorted(set(labels), key=natural_key)
    line = np.array([order.index(lab) for lab in labels])
    x = np.array([_number(r[x_axis]) for r in rows])
    y = np.array([_number(r[metric]) for r in rows])
    fits = []
    for i in range(len(order)):
        keep = line == i
        fits.append(fit_power_law(x[keep], y[keep]) if np.unique(x[keep]).size >= 2 else None)
    return ScalingFit(metric=metric, x_axis=x_axis, line_labels=tuple(order), line=line, x=x, y=y,
                      fits=tuple(fits))


def summary_table(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> list[dict]:
    """One row per group of replicates (varying config fields): model size, runs, mean/std/min/max per metric."""
    axes = varying_axes(rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(_hashable(r.get(a)) for a in axes), []).append(r)
    present = [m for m in metrics if any(not math.isnan(_number(r.get(m))) for r in rows)]
    table = []
    for key in sorted(groups, key=lambda k: tuple((v is None, str(type(v)), v) for v in k)):
        members = groups[key]
        done = complete_rows(members)
        entry: dict[str, Any] = dict(zip(axes, key))
        for fact in ("n_params", "n_patches", "params_per_circuit"):
            facts = {r.get(fact) for r in done if r.get(fact) is not None}
            entry[fact] = facts.pop() if len(facts) == 1 else None
        entry["n_runs"], entry["n_complete"] = len(members), len(done)
        for m in present:
            v = np.array([_number(r.get(m)) for r in done])
            v = v[~np.isnan(v)]
            stats = (v.mean(), v.std(ddof=1) if v.size > 1 else 0.0, v.min(), v.max()) if v.size else (math.nan,) * 4
            entry.update({f"{m}.{s}": float(x) for s, x in zip(("mean", "std", "min", "max"), stats)})
        table.append(entry)
    return table


@dataclass(frozen=True)
class KernelCurves:
    """NTK evolution (and kernel-machine accuracy) of every run that has them, with a legend label each."""

    labels: tuple[str, ...]
    evolutions: tuple[KernelEvolution, ...]
    machines: tuple[KernelMachineCurve | None, ...]


def kernel_curves(rows: Sequence[dict], directory: Path) -> KernelCurves | None:
    """Load ``results/ntk_evolution`` (+ ``ntk_kernel_machine``) of every complete run; None when none has it."""
    rows = [r for r in complete_rows(rows) if (directory / r["path"] / "results" / "ntk_evolution.json").exists()]
    if not rows:
        return None
    others = varying_axes(rows)
    rows.sort(key=lambda r: [natural_key(_hashable(r.get(a))) for a in others + ["seed"]])
    machines = []
    for r in rows:
        path = directory / r["path"] / "results" / "ntk_kernel_machine"
        machines.append(io.load_result(KernelMachineCurve, path) if path.with_suffix(".json").exists() else None)
    return KernelCurves(labels=tuple(line_label(r, None, others, rows) for r in rows),
                        evolutions=tuple(io.load_result(KernelEvolution, directory / r["path"] / "results" /
                                                        "ntk_evolution") for r in rows),
                        machines=tuple(machines))


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    out: Path
    runs_csv: Path
    summary_csv: Path
    figures: tuple[Path, ...]
    markdown: Path
    html: Path
    n_runs: int
    n_complete: int


def _representative(rows: Sequence[dict]) -> dict:
    return min(rows, key=lambda r: (_number(r.get("seed")), _number(r.get("data_seed")), r["id"]))


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


def result_grid(rows: Sequence[dict], directory: Path, name: str, cls: type, row_axis: str | None,
                col_axis: str | None) -> ResultGrid | None:
    """Load ``results/<name>`` (a ``cls``) of one run per (row, column) cell; None when no run has it."""
    rows = [r for r in complete_rows(rows) if (directory / r["path"] / "results" / f"{name}.json").exists()]
    if not rows:
        return None

    def values(axis: str | None) -> list:
        return sorted({_hashable(r.get(axis)) for r in rows}, key=natural_key) if axis else [None]

    def label(axis: str | None, members: list[dict]) -> str:
        return line_label(members[0], axis, [], rows) if axis and members else ""

    row_values, col_values = values(row_axis), values(col_axis)
    cells = [[None] * len(col_values) for _ in row_values]
    notes = [[""] * len(col_values) for _ in row_values]
    for i, rv in enumerate(row_values):
        for j, cv in enumerate(col_values):
            members = [r for r in rows if (not row_axis or _hashable(r.get(row_axis)) == rv)
                       and (not col_axis or _hashable(r.get(col_axis)) == cv)]
            if members:
                rep = _representative(members)
                cells[i][j] = io.load_result(cls, directory / rep["path"] / "results" / name)
                notes[i][j] = f"P = {rep.get('n_params')}, seed {rep.get('seed')}"
    row_labels = [label(row_axis, [r for r in rows if _hashable(r.get(row_axis)) == v]) for v in row_values]
    col_labels = [label(col_axis, [r for r in rows if _hashable(r.get(col_axis)) == v]) for v in col_values]
    return ResultGrid(name=name, row_axis=row_axis or "", col_axis=col_axis or "", row_labels=tuple(row_labels),
                      col_labels=tuple(col_labels), cells=tuple(map(tuple, cells)), notes=tuple(map(tuple, notes)))


def write_report(directory: str | Path, out: str | Path | None = None, *, pdf: bool = True) -> ReportFiles:
    """Read every run below ``directory``; write ``runs.csv``, ``summary.csv``, ``fits.json``, figures and the
    page (``report.md`` linking the PNGs, ``report.html`` with them embedded) into ``out`` (default
    ``directory/report``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qlandscape.plots import report as rplots
    from qlandscape.plots import save_figure

    directory = Path(directory)
    rows = load_runs(directory)
    if not rows:
        raise ConfigError("directory", str(directory), "holds no run directories (no run.json below it)")
    out = Path(out) if out is not None else directory / "report"
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs_csv = write_csv(rows, out / "runs.csv")
    summary = summary_table(rows)
    summary_csv = write_csv(summary, out / "summary.csv")
    done = complete_rows(rows)
    figures: list[tuple[str, Path]] = []

    def save(fig, name: str, caption: str) -> None:
        png, pdf_path = save_figure(fig, figures_dir / name)
        if not pdf:
            pdf_path.unlink()
        plt.close(fig)
        figures.append((caption, png))

    for x_axis, line_axis in plot_axes(done):
        panels = [series(done, m, x_axis, line_axis) for m in HEADLINE
                  if any(not math.isnan(_number(r.get(m))) for r in done)]
        if panels:
            what = AXIS_LABELS.get(x_axis, x_axis)
            save(rplots.plot_series_panels(panels, HEADLINE), f"metrics_vs_{x_axis}",
                 f"Headline metrics against {what} (mean over seeds; bars: min–max)")
    fits: dict[str, Any] = {}
    if _varies(done, "n_patches"):
        scalings = [scaling_fit(done, m) for m in ("hessian.lambda_max", "hessian.structure.lambda_max_normalised")
                    if any(_number(r.get(m)) > 0 for r in done)]
        if scalings:
            save(rplots.plot_scaling_panels(scalings), "lambda_max_vs_patches_fit",
                 "λ_max and λ_max / (c²/N) against N with power-law fits (one per parameter count per circuit)")
            fits = {s.metric: {lab: (None if f is None else asdict(f)) for lab, f in zip(s.line_labels, s.fits)}
                    for s in scalings}
            io.write_json(out / "fits.json", fits)
    qnn = _varies(done, "n_patches")
    row_axis = "params_per_circuit" if qnn else next(iter(varying_axes(done)), None)
    col_axis = "n_patches" if qnn else None
    if row_axis and not _varies(done, row_axis):
        row_axis = None
    grid = result_grid(done, directory, "landscape", Slice2D, row_axis, col_axis)
    if grid:
        save(rplots.plot_landscape_grid(grid), "landscape_grid",
             "Loss landscape contours (one run per cell: the lowest seed)")
    grid = result_grid(done, directory, "hessian_density", SpectralDensity, row_axis, col_axis)
    if grid:
        save(rplots.plot_density_grid(grid), "spectral_densities",
             "Hessian spectral densities (SLQ; one run per line: the lowest seed)")
    curves = kernel_curves(done, directory)
    if curves:
        save(rplots.plot_kernel_curves(curves), "ntk_curves",
             "NTK distance from initialisation, kernel velocity and kernel-machine accuracy during training")
    page = rplots.report_page(directory, rows, summary, figures, fits)
    md_path, html_path = out / "report.md", out / "report.html"
    io.atomic_write_bytes(md_path, page.markdown(out).encode())
    io.atomic_write_bytes(html_path, page.html().encode())
    return ReportFiles(out=out, runs_csv=runs_csv, summary_csv=summary_csv, figures=tuple(p for _, p in figures),
                       markdown=md_path, html=html_path, n_runs=len(rows), n_complete=len(done))
