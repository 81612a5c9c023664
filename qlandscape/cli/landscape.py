"""``qlandscape landscape RUN_DIR``: a 2D loss-landscape slice of a finished run, with figures."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="2D loss-landscape slice of a run (added to its run directory)")
    p.add_argument("run_dir", help="a run directory written by 'qlandscape run'")
    p.add_argument("--directions", choices=["random", "hessian", "pca"], default="random")
    p.add_argument(
        "--normalization",
        choices=["filter", "patch", "layer", "none"],
        default="filter",
        help="for random directions (Li et al. 2018 filter normalisation by default)",
    )
    p.add_argument("--grid", type=int, default=21, help="points per axis (default 21)")
    p.add_argument("--range", type=float, default=1.0, help="half-width of the grid (random/hessian)")
    p.add_argument("--padding", type=float, default=5.0, help="radians beyond the trajectory (pca)")
    p.add_argument("--splits", default="train", help="comma-separated: train,test")
    p.add_argument("--point", choices=["final", "best", "init"], default="final")
    p.add_argument("--log-scale", action="store_true", help="log-scale contour levels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qlandscape.runs.metric_hooks import run_metric

    settings = {
        "directions": args.directions,
        "normalization": args.normalization,
        "grid": args.grid,
        "range": args.range,
        "padding": args.padding,
        "splits": args.splits.split(","),
        "point": args.point,
        "log_scale": args.log_scale,
        "seed": args.seed,
        "chunk_size": args.chunk_size,
        "progress": sys.stderr.isatty(),
    }
    scalars = run_metric(args.run_dir, "landscape", settings)
    print(
        f"{args.grid}x{args.grid} slice, {args.directions} directions: loss at centre "
        f"{scalars['landscape.center_loss']:.5g}, range [{scalars['landscape.min_loss']:.4g}, "
        f"{scalars['landscape.max_loss']:.4g}]"
    )
    print(f"figures written to {args.run_dir}/figures")
    return 0
