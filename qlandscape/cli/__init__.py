"""The ``qlandscape`` command: one module per subcommand."""

from qlandscape.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
