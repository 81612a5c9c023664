"""``qlandscape gradvar``: gradient variance against qubits and layers (barren plateaus), with fitted decay rates."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from qlandscape.core.errors import ConfigError
from qlandscape.core.io import save_result
from qlandscape.metrics.gradients import variance_curve
from qlandscape.plots import save_figure
from qlandscape.plots.gradients import plot_variance_curve

__all__ = ["add_parser", "run"]


def parse_int_range(field: str, text: str) -> list[int]:
    """``"2:12"`` (inclusive), ``"2:12:2"`` (with a step) or ``"1,5,20"`` -> a list of integers."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            return list(range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1))
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(
            field, text, "expected START:STOP (inclusive), START:STOP:STEP or a list like 1,5,20"
        ) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradvar", help="gradient variance against qubits and layers (barren plateaus)")
    p.add_argument("--ansatz", default="hea", help="catalogue name or path to a spec (default: hea)")
    p.add_argument("--qubits", default="2:12", help="qubit counts: 2:12 (inclusive), 2:12:2 or 2,4,8")
    p.add_argument("--layers", default="1,5,20", help="layer counts, e.g. 1,5,20")
    p.add_argument("--samples", type=int, default=200, help="random initialisations per point (default 200)")
    p.add_argument("--cost", default="global", help="global (Z...Z), local (mean Z_i) or projector (1 - p(0...0))")
    p.add_argument("--init", default="uniform", help="uniform (angles in [0, 2pi)) or ansatz (the spec's init)")
    p.add_argument("--inputs", default="zero", help="data inputs: zero or random (one fixed draw)")
    p.add_argument("--fit-from", type=int, default=None, help="fit the decay on qubits >= this (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gradvar", help="output folder (default: gradvar)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
    qubits = parse_int_range("qubits", args.qubits)
    layers = parse_int_range("layers", args.layers)
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
        progress=not args.quiet and sys.stderr.isatty(),
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
