"""The command's plots: drawn with :mod:`rnnkit.apps.plots` when matplotlib (the 'plot' extra) is
installed, skipped with one line of explanation when it is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from rnnkit.apps.cli.runs import METRICS, RunFolder
from rnnkit.training import MetricLog

_warned = False


def draw(
    run: RunFolder, name: str, plot: Callable[..., Any], *args: Any, quiet: bool, **kwargs: Any
) -> None:
    """Draw ``plot(*args, path=run/name, **kwargs)`` if matplotlib is there."""
    global _warned
    from rnnkit.apps import plots

    if not plots.available():
        if not _warned and not quiet:
            click.echo("plots skipped: matplotlib is not installed (pip install 'rnnkit[plot]')")
        _warned = True
        return
    plot(*args, path=run.file(name), **kwargs)
    if not quiet:
        click.echo(f"plot: {run.final / name}")  # where it will be once the run is committed


def training_curves(run: RunFolder, *, quiet: bool) -> None:
    """Training and validation loss from the run's metrics log."""
    from rnnkit.apps import plots

    rows = MetricLog(run.file(METRICS)).read()
    if rows:
        draw(run, "training.png", plots.training_curves, rows, quiet=quiet)
