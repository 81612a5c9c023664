"""``qlandscape sweep CONFIG.toml --out DIR``: every grid point of a sweep, resumable, locally or on Dask."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qlandscape.runs.layout import is_complete
from qlandscape.runs.sweep import load_sweep, run_sweep


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a sweep ([base] config + [grid] axes); finished runs are skipped")
    p.add_argument("config", help="sweep config (TOML with [base] and [grid])")
    p.add_argument("--out", default="runs", help="folder of the run directories and sweep.json (default: runs)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes, one torch thread each (default: one per core; 1 = in-process)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run on a Dask cluster (scheduler address, or 'local' for a LocalCluster of --workers "
        "processes); needs the extra qlandscape[dask] and an --out every worker can reach",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs without running any")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):  # Dask logs every worker start and stop at INFO; read at its import
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    sweep = load_sweep(args.config)
    if args.dry_run:
        done = sum(is_complete(Path(args.out) / rid) for rid in sweep.run_ids())
        print(
            f"{len(sweep.runs)} runs ({done} already complete in {args.out}); axes: "
            + ", ".join(f"{k} ({len(v)})" for k, v in sweep.grid.items())
        )
        for rid, point in zip(sweep.run_ids(), sweep.points, strict=True):
            print(f"  {rid}  " + ", ".join(f"{k}={v}" for k, v in point.items()))
        return 0
    rows = run_sweep(
        sweep, args.out, workers=args.workers, dask=args.dask, progress=not args.quiet and sys.stderr.isatty()
    )
    failed = [r for r in rows if r["status"] != "complete"]
    print(
        f"{len(rows)} runs in {args.out}: {len(rows) - len(failed)} complete, {len(failed)} failed; "
        f"manifest {Path(args.out) / 'sweep.json'}"
    )
    for r in failed:
        print(f"  failed {r['id']}: {r.get('error')}", file=sys.stderr)
    return 1 if failed else 0
