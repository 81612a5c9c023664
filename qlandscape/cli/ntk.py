"""``qlandscape ntk RUN_DIR``: empirical NTK evolution and kernel-machine accuracy along the trajectory."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ntk", help="neural tangent kernel evolution of a run (added to its run directory)")
    p.add_argument("run_dir", help="a run directory written by 'qlandscape run'")
    p.add_argument("--subset", type=int, default=100, help="training inputs for the kernel (default 100)")
    p.add_argument("--every", type=int, default=1, help="use every k-th recorded point (default 1)")
    p.add_argument("--form", choices=["trace", "full"], default="trace")
    p.add_argument("--ridge", type=float, default=1e-6, help="kernel ridge (relative to the mean diagonal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qlandscape.runs.metric_hooks import run_metric

    scalars = run_metric(
        args.run_dir, "ntk", {"subset": args.subset, "every": args.every, "form": args.form, "ridge": args.ridge}
    )
    print(f"kernel distance from initialisation at the end: {scalars['ntk.final_distance_from_init']:.4f}")
    print(
        f"kernel-machine test accuracy: initial kernel {scalars['ntk.kernel_accuracy_init']:.4f}, "
        f"final kernel {scalars['ntk.kernel_accuracy_final']:.4f}"
    )
    print(f"figures written to {args.run_dir}/figures")
    return 0
