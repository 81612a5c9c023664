"""``qlandscape hessian RUN_DIR``: Hessian spectrum, trace and density of a finished run."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hessian", help="Hessian metrics of a run (added to its run directory)")
    p.add_argument("run_dir", help="a run directory written by 'qlandscape run'")
    p.add_argument("--top-k", type=int, default=5, help="largest eigenvalues by Lanczos when the Hessian is not dense")
    p.add_argument("--density", action="store_true", help="spectral density by stochastic Lanczos quadrature")
    p.add_argument("--trajectory", action="store_true", help="also at every recorded point of the trajectory")
    p.add_argument("--structure", action="store_true", help="also the Gauss-Newton + residual decomposition")
    p.add_argument(
        "--point",
        choices=["final", "best", "init"],
        default="final",
        help="where: final parameters, lowest-training-loss epoch, or initialisation",
    )
    p.add_argument("--method", choices=["auto", "dense", "lanczos"], default="auto")
    p.add_argument("--split", choices=["train", "test"], default="train", help="evaluation set (default train)")
    p.add_argument("--chunk-size", type=int, default=None, help="samples per chunk for large evaluation sets")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qlandscape.runs.metric_hooks import run_metric

    settings = {
        "top_k": args.top_k,
        "density": args.density,
        "trajectory": args.trajectory,
        "point": args.point,
        "method": args.method,
        "split": args.split,
        "chunk_size": args.chunk_size,
        "progress": sys.stderr.isatty(),
        "structure": args.structure,
    }
    scalars = run_metric(args.run_dir, "hessian", settings)
    print(
        f"Hessian of the mean {args.split} loss at the {args.point} point ({scalars['hessian.method']}, "
        f"{scalars['hessian.n_params']} parameters)"
    )
    for key in ("lambda_max", "lambda_min", "trace", "trace_stderr", "ratio", "fraction_negative"):
        print(f"  {key:<18} {scalars[f'hessian.{key}']:.6g}")
    print(f"results and figures written to {args.run_dir}/results and {args.run_dir}/figures")
    return 0
