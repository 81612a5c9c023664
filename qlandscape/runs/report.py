"""The report over run directories: one table of every run (CSV), a summary over seeds, the standard figures and
one page (Markdown linking the PNGs, self-contained HTML).

Rows come from :func:`qlandscape.runs.tables.load_runs`, which checks every run directory; the aggregation is
:mod:`qlandscape.metrics.sweeps`, the figures :mod:`qlandscape.plots.sweeps`. Which scalars the summary and the figures
show, and which further figures a metric adds, come from the registered run metrics (:mod:`qlandscape.runs.registry`).

Only complete runs are plotted and averaged. Diverged, failed (or unfinished) and damaged runs are listed in sections
of their own, with where training diverged, the error, or the damaged file and what is wrong with it; a group of the
summary counts them among its runs (``2/3``) when their config can be read. A figure that cannot be drawn (a metric's
figure reading a result file, say) is named in a section too, and the rest of the report is written.

The summary table labels its columns as the figures do (``λ_max``, ``test accuracy``, ``parameter count``; a legend
below it names each column's key in ``summary.csv``) and shows mean ± sample std over the seeds of a group with their
number ``n``; a group of one run shows its value and ``n = 1``. The config field ``metrics`` (a table of settings) is
never a varying axis. A run that holds several variants of a metric (landscapes on several planes, Hessians at
several points, kernels of several subsets: :mod:`qlandscape.runs.variants`) is shown by its *default* variant, the
one its own config computed (with the run, by ``qlandscape run`` or the sweep), or the latest where the metric was
only added later (:func:`qlandscape.runs.variants.default`): ``runs.csv``, the summary, the figures against model
size, the power-law fits, the spectral densities and the kernel curves read that variant's numbers and files, so
that a result added to one run by hand does not change what the report shows of a sweep. Landscapes are drawn as one
contour grid per variant, the variant most runs hold as ``landscape_grid``
(:mod:`qlandscape.runs.metric_hooks.landscape`). Power-law fits need three distinct patch counts; a line with fewer
says so. Spawning experiments (``spawn-*/`` folders written by ``qlandscape spawn``) below the folder get a section
of their own with the barrier-against-spawn-time figure.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from qlandscape.core import io
from qlandscape.core.errors import ConfigError
from qlandscape.core.progress import logged_step, progress_bar
from qlandscape.metrics.landscape.results import SpawnResult
from qlandscape.metrics.sweeps import (
    AXIS_LABELS,
    REPLICATE_AXES,
    complete_rows,
    natural_key,
    number,
    plot_axes,
    scaling_fit,
    series,
    summary_table,
    varies,
    varying_axes,
)
from qlandscape.plots import save_figure
from qlandscape.plots.spawning import plot_barrier_vs_spawn_time
from qlandscape.plots.sweeps import plot_scaling_panels, plot_series_panels
from qlandscape.runs.config import SETTINGS
from qlandscape.runs.metric_spec import Headline, SweepView
from qlandscape.runs.registry import specs
from qlandscape.runs.tables import has_config, load_runs, write_csv
from qlandscape.runs.variants import Variant, default

__all__ = [
    "TRAINING_HEADLINE",
    "default_variants",
    "summary_metrics",
    "run_summary",
    "ReportFiles",
    "write_report",
    "ReportPage",
    "report_page",
]

log = logging.getLogger(__name__)

# The training scalars every run has, shown beside the metrics' headline scalars.
TRAINING_HEADLINE = (
    Headline("test_accuracy", "test accuracy", "test accuracy", plot=True),
    Headline("train_loss", "training loss", "train loss"),
)


def summary_metrics() -> list[str]:
    """The scalars of the summary table: training first, then each registered metric's, in registry order."""
    return [h.key for h in TRAINING_HEADLINE if h.summary] + [
        h.key for spec in specs() for h in spec.headline if h.summary
    ]


def column_labels() -> dict[str, str]:
    """Readable names of the summary's columns: the headline scalars' short labels and the model facts'."""
    labels = {h.key: h.axis_label for h in TRAINING_HEADLINE}
    labels |= {h.key: h.axis_label for spec in specs() for h in spec.headline}
    return labels | dict(AXIS_LABELS)


def _panel_headlines() -> list[Headline]:
    return [h for spec in specs() for h in spec.headline if h.plot] + [h for h in TRAINING_HEADLINE if h.plot]


def run_summary(rows: Sequence[dict]) -> list[dict]:
    """The summary table of :func:`qlandscape.metrics.sweeps.summary_table` over the run config's fields and the
    registered scalars."""
    return summary_table(rows, summary_metrics(), fields=SETTINGS)


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
    n_diverged: int = 0
    n_failed: int = 0  # failed, interrupted or unfinished
    n_damaged: int = 0
    figure_problems: tuple[str, ...] = ()
    n_spawns: int = 0


def write_report(
    directory: str | Path, out: str | Path | None = None, *, pdf: bool = True, progress: bool = False
) -> ReportFiles:
    """Read every run below ``directory``; write ``runs.csv``, ``summary.csv``, ``fits.json``, figures and the
    page (``report.md`` linking the PNGs, ``report.html`` with them embedded) into ``out`` (default
    ``directory/report``). ``progress``: a progress bar over the figures as they are drawn."""
    directory = Path(directory)
    with logged_step(log, f"reading the runs below {directory}"):
        rows = load_runs(directory)
    if not rows:
        raise ConfigError("directory", str(directory), "holds no run directories (no run.json below it)")
    chosen = default_variants(directory, rows)
    fields = SETTINGS
    out = Path(out) if out is not None else directory / "report"
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    runs_csv = write_csv(rows, out / "runs.csv")
    summary = run_summary([r for r in rows if has_config(r)])
    summary_csv = write_csv(summary, out / "summary.csv")
    done = complete_rows(rows)
    figures: list[tuple[str, Path]] = []
    bar = progress_bar(None, "report figures", enabled=progress, unit="figure")

    def save(fig: Figure, name: str, caption: str) -> None:
        png, pdf_path = save_figure(fig, figures_dir / name)
        if not pdf:
            pdf_path.unlink()
        plt.close(fig)
        figures.append((caption, png))
        bar.update(1)
        log.info("report figure %s", png)

    panel_headlines = _panel_headlines()
    for x_axis, line_axis in plot_axes(done, fields=fields):
        panels = [
            series(done, h.key, x_axis, line_axis, fields=fields, label=h.axis_label)
            for h in panel_headlines
            if any(not math.isnan(number(r.get(h.key))) for r in done)
        ]
        if panels:
            what = AXIS_LABELS.get(x_axis, x_axis)
            titles = {h.key: h.label for h in panel_headlines}
            save(
                plot_series_panels(panels, titles),
                f"metrics_vs_{x_axis}",
                f"Headline metrics against {what} (mean over seeds; bars: min–max)",
            )
    fits: dict[str, Any] = {}
    fit_notes: dict[str, dict[str, str]] = {}
    if varies(done, "n_patches"):
        scalings = [
            scaling_fit(done, h.key, fields=fields, label=h.axis_label)
            for spec in specs()
            for h in spec.headline
            if h.power_law and any(number(r.get(h.key)) > 0 for r in done)
        ]
        if scalings:
            # the file keeps the name of the first reports, which fitted λ_max only
            save(
                plot_scaling_panels(scalings),
                "lambda_max_vs_patches_fit",
                f"{' and '.join(s.label for s in scalings)} against N with power-law fits (one per parameter count "
                "per circuit)",
            )
            fits = {
                s.metric: {
                    lab: (None if f is None else asdict(f)) for lab, f in zip(s.line_labels, s.fits, strict=True)
                }
                for s in scalings
            }
            fit_notes = {
                s.metric: {lab: s.reason(i) for i, lab in enumerate(s.line_labels) if s.reason(i)} for s in scalings
            }
            io.write_json(out / "fits.json", fits)
    qnn = varies(done, "n_patches")
    row_axis = "params_per_circuit" if qnn else next(iter(varying_axes(done, fields)), None)
    col_axis = "n_patches" if qnn else None
    if row_axis and not varies(done, row_axis):
        row_axis = None
    view = SweepView(directory, tuple(done), fields, row_axis, col_axis, chosen)
    problems: list[str] = []
    for spec in specs():
        if spec.sweep_figures is not None:
            try:
                for name, caption, fig in spec.sweep_figures(view):
                    save(fig, name, caption)
            except Exception as exc:  # one metric's figures must not cost the whole report; the page names it
                log.warning("the %s figures of the report could not be drawn: %s", spec.name, exc)
                problems.append(f"{spec.name} figures: {type(exc).__name__}: {exc}")
    spawns = find_spawns(directory, exclude=out)
    if spawns:
        try:
            save(
                plot_barrier_vs_spawn_time([r for _, r, _ in spawns], [label for _, _, label in spawns]),
                "spawn_barriers",
                "Parent-child spawning: test error barrier between the two children, their function distance and "
                "their test accuracies against the spawn time (one line per spawn folder)",
            )
        except Exception as exc:  # the spawn figure must not cost the report; the page names it
            log.warning("the spawning figure of the report could not be drawn: %s", exc)
            problems.append(f"spawn figure: {type(exc).__name__}: {exc}")
    bar.close()
    page = report_page(directory, rows, summary, figures, fits, fit_notes=fit_notes, spawns=spawns)
    page.figure_problems = problems
    md_path, html_path = out / "report.md", out / "report.html"
    io.atomic_write_bytes(md_path, page.markdown(out).encode())
    io.atomic_write_bytes(html_path, page.html().encode())
    return ReportFiles(
        out=out,
        runs_csv=runs_csv,
        summary_csv=summary_csv,
        figures=tuple(p for _, p in figures),
        markdown=md_path,
        html=html_path,
        n_runs=len(rows),
        n_complete=len(done),
        n_diverged=len(page.diverged),
        n_failed=len(page.failures),
        n_damaged=len(page.damaged),
        figure_problems=tuple(problems),
        n_spawns=len(spawns),
    )


def default_variants(directory: Path, rows: list[dict]) -> dict[str, dict[str, Variant | None]]:
    """For each complete row (by its ``path``) and registered metric, the variant the report shows
    (:func:`qlandscape.runs.variants.default`); the row's scalars of that metric become the variant's (in place:
    they are the latest variant's as ``run.json`` holds them)."""
    chosen: dict[str, dict[str, Variant | None]] = {}
    for row in rows:
        if row.get("status") != "complete":
            continue
        folder = directory / row["path"]
        try:
            info = io.read_json(folder / "run.json")
        except (OSError, ValueError):  # checked when the rows were read; a file changed since is left as read
            continue
        chosen[row["path"]] = {spec.name: default(info, spec.name, folder) for spec in specs()}
        for name, variant in chosen[row["path"]].items():
            if variant is not None and not variant.latest:
                for key in [k for k in row if k.startswith(f"{name}.")]:
                    del row[key]
                row.update(variant.scalars)
    return chosen


def find_spawns(directory: Path, exclude: Path | None = None) -> list[tuple[str, SpawnResult, str]]:
    """The spawning experiments below ``directory`` (``spawn-*/spawn.json`` folders written by ``qlandscape
    spawn``): (folder relative to ``directory``, result, legend label), ordered by folder. The label names the
    config fields that differ among them and the parent seed; a folder that cannot be read is skipped with a
    warning."""
    found: list[tuple[str, SpawnResult, dict]] = []
    for file in sorted(directory.rglob("spawn.json")):
        folder = file.parent
        if not folder.name.startswith("spawn-") or any(p.startswith(".") for p in folder.relative_to(directory).parts):
            continue
        if exclude is not None and exclude.resolve() in folder.resolve().parents:
            continue
        try:
            result = io.load_result(SpawnResult, folder / "spawn")
            config = io.read_json(folder / "config.json") if (folder / "config.json").exists() else {}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("spawn folder %s could not be read: %s", folder, exc)
            continue
        found.append((folder.relative_to(directory).as_posix(), result, config if isinstance(config, dict) else {}))
    configs = [c for _, _, c in found]
    differ = varying_axes(configs, sorted({k for c in configs for k in c}))
    out = []
    for name, result, config in found:
        parts = [f"{k} = {config.get(k)}" for k in differ if k != "seed"]
        parts.append(f"parent seed {result.parent_seed}")
        out.append((name, result, f"{result.model} ({result.n_params} params), " + ", ".join(parts)))
    labels = [label for _, _, label in out]
    # the figure averages results that share a label: spawns told apart only by their folder keep it in the label
    return [(n, r, f"{label} ({n})" if labels.count(label) > 1 else label) for n, r, label in out]


def _spawn_lines(spawns: Sequence[tuple[str, SpawnResult, str]]) -> list[tuple[str, str]]:
    lines = []
    for name, r, label in spawns:
        rows = "; ".join(
            f"t_s = {t:g}: error barrier {eb:.3f}, loss barrier {lb:.3f}, children's test accuracy "
            f"{acc[0]:.3f} / {acc[1]:.3f}"
            for t, eb, lb, acc in zip(
                r.spawn_epochs, r.error_barrier, r.loss_barrier, r.child_test_accuracy, strict=True
            )
        )
        lines.append((name, f"{label}; parent test accuracy {r.parent_test_accuracy:.3f}. {rows}"))
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


SUMMARY_TITLE = "Summary: mean ± sample std over the seeds of each group (n = runs averaged; one run: its value)"


@dataclass
class ReportPage:
    """The report page: intro lines, figures (caption, PNG path), the summary table (with a legend naming each
    column's key in ``summary.csv``), and the runs outside it: failed or unfinished (id, error), diverged (id,
    where), damaged (id, file and reason); spawning experiments (folder, numbers); figures that could not be
    drawn."""

    title: str
    intro: list[str]
    header: list[str]
    table: list[list[str]]
    figures: list[tuple[str, Path]]
    failures: list[tuple[str, str]]
    diverged: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    figure_problems: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (column label, key in summary.csv)
    spawns: list[tuple[str, str]] = field(default_factory=list)

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The lists below the summary: (title, [(run id or "", text)]), the empty ones left out."""
        listed = [
            ("Spawning experiments (qlandscape spawn)", self.spawns),
            ("Diverged runs (not plotted)", self.diverged),
            ("Failed or unfinished runs", self.failures),
            ("Damaged runs (recompute them: a resumed sweep does)", self.damaged),
            ("Figures that could not be drawn", [("", p) for p in self.figure_problems]),
        ]
        return [(title, items) for title, items in listed if items]

    def _legend_text(self) -> str:
        return "Columns and their keys in summary.csv: " + "; ".join(f"{lab} = {key}" for lab, key in self.legend)

    def markdown(self, base: Path) -> str:
        """Markdown with the figures linked relative to ``base``."""
        lines = [f"# {self.title}", "", *self.intro, ""]
        for caption, png in self.figures:
            lines += [f"## {caption}", "", f"![{caption}]({png.relative_to(base).as_posix()})", ""]
        lines += [
            f"## {SUMMARY_TITLE}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "---|" * len(self.header),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.table]
        if self.legend:
            lines += ["", self._legend_text() + "."]
        for title, items in self.sections():
            lines += ["", f"## {title}", ""] + [f"- `{rid}`: {text}" if rid else f"- {text}" for rid, text in items]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """One self-contained HTML file: the PNGs embedded as base64; a table wider than the page scrolls
        sideways inside its box, its headers wrap."""
        esc = html.escape
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}img{max-width:100%}"
            ".table{overflow-x:auto;max-width:100%}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
            "th{white-space:normal;vertical-align:bottom;max-width:10em}td{white-space:nowrap}"
            "</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        parts += [f"<p>{esc(p)}</p>" for p in self.intro]
        for caption, png in self.figures:
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<h2>{esc(caption)}</h2><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>")
        keys = dict(self.legend)
        parts.append(
            f"<h2>{esc(SUMMARY_TITLE)}</h2><div class='table'><table><tr>"
            + "".join(
                f"<th title='{esc(keys[h])}'>{esc(h)}</th>" if h in keys else f"<th>{esc(h)}</th>" for h in self.header
            )
            + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.table]
        parts.append("</table></div>")
        if self.legend:
            parts.append(f"<p><small>{esc(self._legend_text())}.</small></p>")
        for title, items in self.sections():
            parts.append(
                f"<h2>{esc(title)}</h2><ul>"
                + "".join(f"<li><code>{esc(r)}</code>: {esc(t)}</li>" if r else f"<li>{esc(t)}</li>" for r, t in items)
                + "</ul>"
            )
        return "".join(parts) + "</body></html>\n"


def _mean_cell(entry: dict, metric: str) -> str:
    mean = entry[metric + ".mean"]
    if math.isnan(mean):
        return ""
    n = int(entry.get(metric + ".n", 0))
    if n <= 1:
        return f"{_fmt(mean)} (n = 1)"
    return f"{_fmt(mean)} ± {_fmt(entry[metric + '.std'])} (n = {n})"


def _columns(axes: list[str], summary: list[dict]) -> tuple[list[str], list[str]]:
    """The config axes and model facts the table shows: a fact that repeats an axis (n_patches beside patches)
    only once."""
    facts = [f for f in ("n_params", "n_patches") if any(s.get(f) is not None for s in summary)]
    if "patches" in axes and "n_patches" in facts and all(s.get("patches") == s.get("n_patches") for s in summary):
        facts.remove("n_patches")
    return axes, facts


def _fit_text(per_line: dict, notes: dict[str, str]) -> str:
    parts = []
    for lab, f in per_line.items():
        if f is not None:
            parts.append(
                f"{lab}: exponent {f['exponent']:.3f} [{f['exponent_low']:.3f}, {f['exponent_high']:.3f}], "
                f"{f['n_points']} points"
            )
        else:
            parts.append(f"{lab}: {notes.get(lab) or 'no fit'}")
    return "; ".join(parts)


def report_page(
    directory: Path,
    rows: list[dict],
    summary: list[dict],
    figures: list[tuple[str, Path]],
    fits: dict,
    *,
    fit_notes: dict[str, dict[str, str]] | None = None,
    spawns: Sequence[tuple[str, SpawnResult, str]] = (),
) -> ReportPage:
    """The page of :func:`write_report` (rendered with ``.markdown(base)`` / ``.html()``)."""
    fields = SETTINGS
    readable = [r for r in rows if has_config(r)]
    axes = varying_axes(readable, fields)
    done = complete_rows(rows)
    diverged = [(r["id"], str(r.get("divergence") or "diverged")) for r in rows if r["status"] == "diverged"]
    damaged = [(r["id"], str(r.get("error"))) for r in rows if r["status"] == "damaged"]
    failures = [
        (r["id"], str(r.get("error") or r["status"]))
        for r in rows
        if r["status"] not in ("complete", "diverged", "damaged")
    ]
    not_complete = len(rows) - len(done)
    intro = [
        f"{len(rows)} runs below `{directory}` ({len(done)} complete, {not_complete} not: {len(diverged)} diverged, "
        f"{len(failures)} failed or unfinished, {len(damaged)} damaged); varying: "
        f"{', '.join(axes) or 'nothing'}; replicates: "
        f"{', '.join(a for a in REPLICATE_AXES if a in varying_axes(readable, fields, replicates=True)) or 'none'}. "
        "All runs: runs.csv; groups: summary.csv."
    ]
    labels = column_labels()
    for metric, per_line in fits.items():
        text = _fit_text(per_line, (fit_notes or {}).get(metric, {}))
        if text:
            intro.append(
                f"Power law {labels.get(metric, metric)} ∝ N^b (least squares on log-log axes, 95% CI on b): {text}."
            )
    if spawns:
        intro.append(f"{len(spawns)} spawning experiment(s): see their section and figure.")
    axes, facts = _columns(axes, summary)
    metrics = [m for m in summary_metrics() if any(f"{m}.mean" in s for s in summary)]
    header = axes + [labels.get(f, f) for f in facts] + ["runs (complete/all)"] + [labels.get(m, m) for m in metrics]
    legend = [(labels[k], k) for k in facts + metrics if labels.get(k, k) != k]
    table = []
    for s in summary:
        cells = [_fmt(s.get(a)) for a in axes + facts] + [f"{s['n_complete']}/{s['n_runs']}"]
        cells += [_mean_cell(s, m) for m in metrics]
        table.append(cells)
    return ReportPage(
        title=f"Sweep report: {directory.name}",
        intro=intro,
        header=header,
        table=table,
        figures=figures,
        failures=failures,
        diverged=diverged,
        damaged=damaged,
        legend=legend,
        spawns=_spawn_lines(sorted(spawns, key=lambda item: natural_key(item[0]))),
    )
