"""``qlandscape report DIR``: one table and the standard figures over every run directory below DIR; runs that are
not complete (diverged, failed, damaged) are counted here and listed on the page."""

from __future__ import annotations

import argparse

from qlandscape.cli.commands import help_of
from qlandscape.runs.report import write_report

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=help_of("report"), description=help_of("report"))
    p.add_argument("directory", help="a folder of run directories (e.g. a sweep's --out)")
    p.add_argument("--out", default=None, help="report folder (default: DIRECTORY/report)")
    p.add_argument("--no-pdf", action="store_true", help="write PNG figures only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    files = write_report(args.directory, args.out, pdf=not args.no_pdf, progress=args.progress)
    print(f"{files.n_runs} runs ({files.n_complete} complete); {len(files.figures)} figures")
    if files.n_runs > files.n_complete:
        print(
            f"not in the summary: {files.n_diverged} diverged, {files.n_failed} failed or unfinished, "
            f"{files.n_damaged} damaged (each listed on the page)"
        )
    for problem in files.figure_problems:
        print(f"not drawn: {problem}")
    print(f"table: {files.runs_csv}\nsummary: {files.summary_csv}\npage: {files.markdown} and {files.html}")
    return 0
