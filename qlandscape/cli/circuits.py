"""``qlandscape circuits``: list the ansatz catalogue with parameter counts."""

from __future__ import annotations

import argparse

from qlandscape.cli.commands import help_of
from qlandscape.cli.lists import integers
from qlandscape.core.errors import ConfigError
from qlandscape.sim.circuits import catalogue, load_spec

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("circuits", help=help_of("circuits"), description=help_of("circuits"))
    p.add_argument("--qubits", type=int, default=4, help="qubits for the counts")
    p.add_argument("--layers", default="1,2,4", help="layer counts to tabulate, comma-separated or a range 1:4")
    p.add_argument("--spec", help="also show a user's spec file (default: the catalogue only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layers = integers("--layers", args.layers)
    names = list(catalogue()) + ([args.spec] if args.spec else [])
    header = f"{'ansatz':<22} {'features':>8} " + " ".join(f"{'L=' + str(L):>7}" for L in layers)
    print(f"parameters per circuit at {args.qubits} qubits")
    print(header)
    for name in names:
        spec = load_spec(name)
        try:
            circuits = [spec.build(args.qubits, L) for L in layers]
        except ConfigError as exc:  # e.g. a readout on qubits this size does not have
            print(f"{spec.name:<22} {'-':>8} (not buildable at {args.qubits} qubits: {exc.field} = {exc.value})")
            continue
        counts = " ".join(f"{c.n_params:>7}" for c in circuits)
        print(f"{spec.name:<22} {circuits[0].n_features:>8} {counts}   {spec.description}")
    return 0
