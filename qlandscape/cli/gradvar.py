"""``qlandscape gradvar``: gradient variance against qubits and layers (barren plateaus), with fitted decay rates."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib.pyplot as plt

from qlandscape.cli.commands import help_of
from qlandscape.cli.lists import integers
from qlandscape.core.io import save_result
from qlandscape.metrics.gradients import COSTS, INITS, INPUTS, variance_curve
from qlandscape.plots import save_figure
from qlandscape.plots.gradients import plot_variance_curve

__all__ = ["add_parser", "run"]


def parse_int_range(field: str, text: str) -> list[int]:
    """``"2:12"`` (inclusive), ``"2:12:2"`` (with a step), ``"1,5,20"`` or a mix -> a list of integers (the command
    line's list syntax, :func:`qlandscape.cli.lists.integers`)."""
    return integers(field, text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradvar", help=help_of("gradvar"), description=help_of("gradvar"))
    p.add_argument("--ansatz", default="hea", help="catalogue name or path to a spec")
    p.add_argument("--qubits", default="2:12", help="qubit counts: a range 2:12 (inclusive), 2:12:2 or a list 2,4,8")
    p.add_argument("--layers", default="1,5,20", help="layer counts: a list 1,5,20 or a range 1:4")
    p.add_argument("--samples", type=int, default=200, help="random initialisations per point")
    p.add_argument(
        "--cost",
        default="global",
        choices=COSTS,
        help="global (Z...Z), local (mean Z_i) or projector (1 - p(0...0))",
    )
    p.add_argument(
        "--init", default="uniform", choices=INITS, help="uniform (angles in [0, 2pi)) or ansatz (the spec's init)"
    )
    p.add_argument("--inputs", default="zero", choices=INPUTS, help="data inputs: zero or random (one fixed draw)")
    p.add_argument("--fit-from", type=int, default=None, help="fit the decay on qubits >= this (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisations and inputs")
    p.add_argument("--out", default="gradvar", help="output folder")
    p.set_defaults(func=run)


def format_table(curve) -> str:
    """The (qubits x layers) table of mean variances ± SE and the fitted rates, as text."""
    head = f"{'n':>3} " + " ".join(f"{'L=' + str(int(L)):>22}" for L in curve.layers)
    lines = [f"gradient variance: {curve.ansatz}, {curve.cost} cost, {curve.samples} samples, {curve.init} init", head]
    for j, n in enumerate(curve.qubits):
        cells = " ".join(
            f"{curve.mean_variance[i, j]:>11.4e} ± {curve.standard_error[i, j]:<8.2e}" for i in range(len(curve.layers))
        )
        lines.append(f"{int(n):>3} {cells}")
    lines.append(
        f"fitted decay Var ~ exp(a - b n) on n >= {curve.fit_from}, "
        f"{100 * curve.confidence:.0f}% CI (2^-n is b = {math.log(2):.3f}):"
    )
    for i, L in enumerate(curve.layers):
        lines.append(
            f"  L={int(L):<3} b = {curve.rate[i]:.4f} [{curve.rate_low[i]:.4f}, {curve.rate_high[i]:.4f}]"
            f"  (reduced chi2 {curve.chi2_reduced[i]:.2f})"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    qubits = integers("--qubits", args.qubits)
    layers = integers("--layers", args.layers)
    curve = variance_curve(
        args.ansatz,
        qubits,
        layers,
        samples=args.samples,
        cost=args.cost,
        init=args.init,
        inputs=args.inputs,
        seed=args.seed,
        fit_from=args.fit_from,
        progress=args.progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_result(curve, out / "gradvar")
    fig = plot_variance_curve(curve)
    try:
        save_figure(fig, out / "gradvar")
    finally:
        plt.close(fig)
    print(format_table(curve))
    print(f"wrote {out / 'gradvar.json'}, gradvar.npz, gradvar.png, gradvar.pdf")
    return 0
