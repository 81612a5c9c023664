"""The table of the ``qlandscape`` command's own subcommands: name, the module that implements it and its one-line
help. :mod:`qlandscape.cli.app` lists them from here without importing those modules, so that ``qlandscape --help``
and one command's start do not load every other command's code; each module takes its help from here too. The
metric subcommands (hessian, landscape, ntk, ...) come from the metric registry instead
(:mod:`qlandscape.cli.metric`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILTIN", "Command", "METRICS_AFTER", "help_of"]


@dataclass(frozen=True)
class Command:
    """One subcommand: ``module`` offers ``add_parser(subparsers)``, which adds the subcommand with its options and
    sets ``func``, the function that runs it."""

    name: str
    module: str
    help: str


BUILTIN: tuple[Command, ...] = (
    Command("run", "qlandscape.cli.run", "train one model from a config and write its run directory"),
    Command("circuits", "qlandscape.cli.circuits", "list the ansatz catalogue with parameter counts"),
    Command("spawn", "qlandscape.cli.spawn", "parent-child spawning: error barrier between children vs spawn time"),
    Command("gradvar", "qlandscape.cli.gradvar", "gradient variance against qubits and layers (barren plateaus)"),
    Command("sweep", "qlandscape.cli.sweep", "run a sweep ([base] config + [grid] axes); finished runs are skipped"),
    Command("report", "qlandscape.cli.report", "CSV, figures and a Markdown/HTML page over the runs below a folder"),
    Command(
        "show",
        "qlandscape.cli.show",
        "what a run directory holds: status, config, each metric's results (every variant) with their settings, "
        "numbers and files",
    ),
)
# Where the metric subcommands go in the listing: after these.
METRICS_AFTER = "circuits"


def help_of(name: str) -> str:
    """The one-line help of the subcommand ``name``."""
    return next(c.help for c in BUILTIN if c.name == name)
