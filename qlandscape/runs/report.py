"""The report over run directories: one table of every run (CSV), a summary over seeds, the standard figures and
one page (Markdown linking the PNGs, self-contained HTML).

Rows come from :func:`qlandscape.runs.tables.load_runs`, which checks every run directory; the aggregation is
:mod:`qlandscape.metrics.sweeps`, the figures :mod:`qlandscape.plots.sweeps`. Which scalars the summary and the figures
show, and which further figures a metric adds, come from the registered run metrics (:mod:`qlandscape.runs.registry`).

Only complete runs are plotted and averaged. Diverged, failed (or unfinished) and damaged runs are listed in sections
of their own, with where training diverged, the error, or the damaged file and what is wrong with it; a group of the
summary counts them among its runs (``2/3``) when their config can be read. A figure that cannot be drawn (a metric's
figure reading a result file, say) is named in a section too, and the rest of the report is written.
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
from qlandscape.metrics.sweeps import (
    AXIS_LABELS,
    REPLICATE_AXES,
    complete_rows,
    number,
    plot_axes,
    scaling_fit,
    series,
    summary_table,
    varies,
    varying_axes,
)
from qlandscape.plots import save_figure
from qlandscape.plots.sweeps import plot_scaling_panels, plot_series_panels
from qlandscape.runs.config import RunConfig
from qlandscape.runs.metric_spec import Headline, SweepView
from qlandscape.runs.registry import specs
from qlandscape.runs.tables import has_config, load_runs, write_csv

__all__ = [
    "TRAINING_HEADLINE",
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


def _panel_headlines() -> list[Headline]:
    return [h for spec in specs() for h in spec.headline if h.plot] + [h for h in TRAINING_HEADLINE if h.plot]


def run_summary(rows: Sequence[dict]) -> list[dict]:
    """The summary table of :func:`qlandscape.metrics.sweeps.summary_table` over the run config's fields and the
    registered scalars."""
    return summary_table(rows, summary_metrics(), fields=RunConfig.fields())


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
    fields = RunConfig.fields()
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
            io.write_json(out / "fits.json", fits)
    qnn = varies(done, "n_patches")
    row_axis = "params_per_circuit" if qnn else next(iter(varying_axes(done, fields)), None)
    col_axis = "n_patches" if qnn else None
    if row_axis and not varies(done, row_axis):
        row_axis = None
    view = SweepView(directory, tuple(done), fields, row_axis, col_axis)
    problems: list[str] = []
    for spec in specs():
        if spec.sweep_figures is not None:
            try:
                for name, caption, fig in spec.sweep_figures(view):
                    save(fig, name, caption)
            except Exception as exc:  # one metric's figures must not cost the whole report; the page names it
                log.warning("the %s figures of the report could not be drawn: %s", spec.name, exc)
                problems.append(f"{spec.name} figures: {type(exc).__name__}: {exc}")
    bar.close()
    page = report_page(directory, rows, summary, figures, fits)
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
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


@dataclass
class ReportPage:
    """The report page: intro lines, figures (caption, PNG path), the summary table, and the runs outside it:
    failed or unfinished (id, error), diverged (id, where), damaged (id, file and reason); figures that could not
    be drawn."""

    title: str
    intro: list[str]
    header: list[str]
    table: list[list[str]]
    figures: list[tuple[str, Path]]
    failures: list[tuple[str, str]]
    diverged: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    figure_problems: list[str] = field(default_factory=list)

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The lists below the summary: (title, [(run id or "", text)]), the empty ones left out."""
        listed = [
            ("Diverged runs (not plotted)", self.diverged),
            ("Failed or unfinished runs", self.failures),
            ("Damaged runs (recompute them: a resumed sweep does)", self.damaged),
            ("Figures that could not be drawn", [("", p) for p in self.figure_problems]),
        ]
        return [(title, items) for title, items in listed if items]

    def markdown(self, base: Path) -> str:
        """Markdown with the figures linked relative to ``base``."""
        lines = [f"# {self.title}", "", *self.intro, ""]
        for caption, png in self.figures:
            lines += [f"## {caption}", "", f"![{caption}]({png.relative_to(base).as_posix()})", ""]
        lines += [
            "## Summary (mean ± std over seeds)",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "---|" * len(self.header),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.table]
        for title, items in self.sections():
            lines += ["", f"## {title}", ""] + [f"- `{rid}`: {text}" if rid else f"- {text}" for rid, text in items]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """One self-contained HTML file: the PNGs embedded as base64."""
        esc = html.escape
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
            "</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        parts += [f"<p>{esc(p)}</p>" for p in self.intro]
        for caption, png in self.figures:
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<h2>{esc(caption)}</h2><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>")
        parts.append(
            "<h2>Summary (mean ± std over seeds)</h2><table><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in self.header)
            + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.table]
        parts.append("</table>")
        for title, items in self.sections():
            parts.append(
                f"<h2>{esc(title)}</h2><ul>"
                + "".join(f"<li><code>{esc(r)}</code>: {esc(t)}</li>" if r else f"<li>{esc(t)}</li>" for r, t in items)
                + "</ul>"
            )
        return "".join(parts) + "</body></html>\n"


def report_page(
    directory: Path, rows: list[dict], summary: list[dict], figures: list[tuple[str, Path]], fits: dict
) -> ReportPage:
    """The page of :func:`write_report` (rendered with ``.markdown(base)`` / ``.html()``)."""
    fields = RunConfig.fields()
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
    for metric, per_line in fits.items():
        text = "; ".join(
            f"{lab}: exponent {f['exponent']:.3f} [{f['exponent_low']:.3f}, {f['exponent_high']:.3f}]"
            for lab, f in per_line.items()
            if f is not None
        )
        if text:
            intro.append(f"Power law {metric} ∝ N^b (95% CI): {text}.")
    facts = [f for f in ("n_params", "n_patches") if any(s.get(f) is not None for s in summary)]
    metrics = [m for m in summary_metrics() if any(f"{m}.mean" in s for s in summary)]
    header = axes + facts + ["runs"] + metrics
    table = []
    for s in summary:
        cells = [_fmt(s.get(a)) for a in axes + facts] + [f"{s['n_complete']}/{s['n_runs']}"]
        cells += [
            f"{_fmt(s[m + '.mean'])} ± {_fmt(s[m + '.std'])}" if not math.isnan(s[m + ".mean"]) else "" for m in metrics
        ]
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
    )
