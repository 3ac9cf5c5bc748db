"""The ``rnnkit`` command (click). Importing this package registers every subcommand; the
library itself never imports it, so NumPy stays the only dependency of ``import rnnkit``."""

from rnnkit.apps.cli import (  # noqa: F401  (registers the subcommands)
    classify_command,
    diagnose_command,
    forecast_command,
    lm_command,
    translate_command,
)
from rnnkit.apps.cli.app import cli, main

__all__ = ["cli", "main"]
