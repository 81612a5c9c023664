"""``qlandscape report DIR``: one table and the standard figures over every run directory below DIR."""

from __future__ import annotations

import argparse

from qlandscape.runs.report import write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="CSV, figures and a Markdown/HTML page over the runs below a folder")
    p.add_argument("directory", help="a folder of run directories (e.g. a sweep's --out)")
    p.add_argument("--out", default=None, help="report folder (default: DIRECTORY/report)")
    p.add_argument("--no-pdf", action="store_true", help="write PNG figures only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = write_report(args.directory, args.out, pdf=not args.no_pdf)
    print(f"{files.n_runs} runs ({files.n_complete} complete); {len(files.figures)} figures")
    print(f"table: {files.runs_csv}\nsummary: {files.summary_csv}\npage: {files.markdown} and {files.html}")
    return 0
