"""Click options the ``rnnkit`` commands share: those of every training command, the run folder
a command reads, and counts whose default the help shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

#: The parameter names of :func:`run_options`.
RUN_OPTIONS = (
    "name",
    "runs_dir",
    "config_file",
    "seed",
    "quiet",
    "overwrite",
    "resume",
    "checkpoint_seconds",
    "no_plot",
)


def run_options(func: Callable) -> Callable:
    """The options of every training command: run folder, config, seed, verbosity."""
    options = [
        click.option("--name", help="Run name: the folder runs/<name>/ (default: task and time)."),
        click.option(
            "--runs-dir",
            default="runs",
            show_default=True,
            type=click.Path(),
            help="Where run folders go.",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="A TOML file of options ([<task>.train] table or top-level keys); "
            "flags given on the command line override it.",
        ),
        click.option("--seed", type=int, help="Random seed (weights, batches, dropout)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
        click.option("--overwrite", is_flag=True, help="Replace an existing run folder."),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the interrupted run --name from its last checkpoint.",
        ),
        click.option(
            "--checkpoint-seconds",
            default=60.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Checkpoint at least this often (and after every validation); 0: every step.",
        ),
        click.option(
            "--no-plot",
            is_flag=True,
            help="Do not draw PNG plots (they need the 'plot' extra: pip install 'rnnkit[plot]').",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pop_run_options(kw: dict[str, Any]) -> dict[str, Any]:
    """Take the options of :func:`run_options` out of a command's keyword arguments."""
    return {k: kw.pop(k) for k in RUN_OPTIONS}


def run_dir_option(help: str) -> Callable:
    """``--run DIR`` (the parameter ``run_dir``), the folder of the trained run a command reads."""
    return click.option(
        "--run", "run_dir", required=True, type=click.Path(file_okay=False), help=help
    )


def count_option(name: str, default: int, help: str, *, min: int = 1) -> Callable:
    """An integer option of at least ``min``, whose default the help shows."""
    return click.option(
        name, default=default, show_default=True, type=click.IntRange(min=min), help=help
    )
