"""The ``rnnkit`` command (click). Importing this package registers every subcommand; the
library itself never imports it, so NumPy stays the only dependency of ``import rnnkit``."""

from rnnkit.cli import classify, diagnose, forecast, lm  # noqa: F401  (registers the subcommands)
from rnnkit.cli.app import cli, main

__all__ = ["cli", "main"]
