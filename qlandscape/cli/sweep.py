"""``qlandscape sweep CONFIG.toml --out DIR``: every grid point of a sweep, resumable, locally or on Dask.

The summary counts complete, diverged and failed (or unfinished) runs and lists each run that is not complete on
stderr. The exit status is 0 when every run is finished (complete or diverged: a diverging configuration is a
result), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from qlandscape.cli.commands import help_of
from qlandscape.runs.layout import FINISHED, is_finished
from qlandscape.runs.sweep import MANIFEST, ClusterLost, load_sweep, run_sweep

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help=help_of("sweep"), description=help_of("sweep"))
    p.add_argument("config", help="sweep config (TOML with [base] and [grid])")
    p.add_argument("--out", default="runs", help="folder of the run directories and sweep.json")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes, one torch thread each (default: one per CPU this process may use, its "
        "affinity and cgroup quota; 1 = in this process, on --threads threads)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run on a Dask cluster (scheduler address, or 'local' for a LocalCluster of --workers "
        "processes); needs the extra qlandscape[dask] and an --out every worker can reach (default: local "
        "processes, see --workers)",
    )
    p.add_argument(
        "--worker-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --dask: stop when every worker has been gone this long",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs without running any")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # Dask logs every worker start and stop, and a lost scheduler or worker as tracebacks and retries; the sweep
        # says itself what went wrong, in one message (-v shows Dask's own account). Read at Dask's import.
        os.environ.setdefault("DASK_LOGGING", repr(dict.fromkeys(_DASK_LOGGERS, "critical")))
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # Dask's tasks cut short when its client closes
    sweep = load_sweep(args.config)
    if args.dry_run:
        done = sum(is_finished(Path(args.out) / rid) for rid in sweep.run_ids())
        print(
            f"{len(sweep.runs)} runs ({done} already complete or diverged in {args.out}); axes: "
            + ", ".join(f"{k} ({len(v)})" for k, v in sweep.grid.items())
        )
        for rid, point in zip(sweep.run_ids(), sweep.points, strict=True):
            print(f"  {rid}  " + ", ".join(f"{k}={v}" for k, v in point.items()))
        return 0
    try:
        rows = run_sweep(
            sweep,
            args.out,
            workers=args.workers,
            dask=args.dask,
            progress=args.progress,
            worker_timeout=args.worker_timeout,
        )
    except ClusterLost as exc:
        print(f"qlandscape sweep: error: {exc}", file=sys.stderr)
        return 2
    print(summary_line(rows, Path(args.out)))
    kept = sum(r["status"] in FINISHED and not r.get("computed") for r in rows)
    if kept:
        print(f"{kept} of {len(rows)} runs already complete or diverged in {args.out}: skipped")
    for r in rows:
        if r["status"] not in FINISHED:
            print(
                f"  {r['status']} {r['id']}: {r.get('error') or _UNFINISHED.get(r['status'], r['status'])}",
                file=sys.stderr,
            )
        elif r["status"] == "diverged":
            print(f"  diverged {r['id']}: {r.get('divergence')}", file=sys.stderr)
    return 0 if all(r["status"] in FINISHED for r in rows) else 1


_DASK_LOGGERS = (
    "distributed",
    "distributed.client",
    "distributed.scheduler",
    "distributed.nanny",
    "distributed.worker",
)
_UNFINISHED = {
    "missing": "not run (the sweep stopped before it)",
    "running": "not finished (the process computing it stopped)",
}


def summary_line(rows: list[dict], out: Path) -> str:
    """``12 runs in OUT: 10 complete, 1 failed, 1 diverged (7 computed by this sweep); manifest OUT/sweep.json``
    (failed counts every run that is not finished)."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("complete", "diverged")}
    others = len(rows) - sum(counts.values())
    computed = sum(bool(r.get("computed")) for r in rows)
    return (
        f"{len(rows)} runs in {out}: {counts['complete']} complete, {others} failed, {counts['diverged']} diverged "
        f"({computed} computed by this sweep); manifest {out / MANIFEST}"
    )
