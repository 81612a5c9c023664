"""The ``qlandscape`` command: one module per subcommand."""

from qlandscape.cli.app import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
