"""The ``rnnkit`` command: the group, the run a training command writes, and the error
handling that turns bad input into one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from rnnkit.apps.cli.options import pop_run_options
from rnnkit.apps.cli.runs import CHECKPOINT, METRICS, CLIError, RunFolder, read_config, resolve

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rnnkit", prog_name="rnnkit")
def cli() -> None:
    """rnnkit: recurrent networks (RNN, LSTM, GRU) with hand-derived backpropagation through
    time, trained on real data from the command line.

    \b
    Tasks:
      rnnkit lm train          character language model (default: a built-in corpus)
      rnnkit forecast train    time-series forecasting from a CSV column
      rnnkit classify train    sequence classification (UCR/UEA .ts or CSV)
      rnnkit translate train   sequence to sequence with attention (e.g. letters to phonemes)
      rnnkit diagnose          gradient flow: why LSTMs remember and tanh RNNs forget

    Every training run writes one folder, runs/<name>/, with its resolved config, metrics,
    checkpoints, model and plots. Options may also come from --config FILE.toml; flags win.
    """


def prepare_run(
    task: str,
    defaults: dict[str, Any],
    kw: dict[str, Any],
    paths: tuple[str, ...] = (),
) -> tuple[RunFolder, dict[str, Any], dict[str, Any]]:
    """The run folder, the resolved configuration and the options of
    :func:`~rnnkit.apps.cli.options.run_options` of a training command, whose keyword arguments
    ``kw`` are its flags and those options; writes nothing (the command checks its input, then
    writes inside ``with run.writing(config):``).

    A new run resolves defaults < --config < flags, with the files named by the ``paths`` keys
    made absolute (so --resume and the other commands find them from any folder); --resume
    reads the stored config back, and only ``steps``/``epochs`` may change then.
    """
    common = pop_run_options(kw)
    run = RunFolder.create(
        common["runs_dir"],
        common["name"],
        task,
        overwrite=common["overwrite"],
        resume=common["resume"],
    )
    flags = _absolute_paths(kw, paths)
    if common["resume"]:
        stored = run.config()
        given = {**flags, "seed": common["seed"]}
        changed = [
            k
            for k, v in given.items()
            if v is not None and k not in ("steps", "epochs") and stored.get(k) != v
        ]
        if changed or common["config_file"]:
            got = ", ".join("--" + k.replace("_", "-") for k in changed) or "--config"
            raise CLIError(
                f"--resume continues {run.final} with its stored config; only --steps/--epochs "
                f"may change (got {got})"
            )
        config = resolve(defaults, stored, {k: flags.get(k) for k in ("steps", "epochs")})
        return run, config, common
    from_file = {}
    if common["config_file"]:
        from_file = read_config(common["config_file"], f"{task}.train", defaults)
    config = resolve(defaults, from_file, flags)
    if common["seed"] is not None:
        config["seed"] = common["seed"]
    return run, _absolute_paths(config, paths), common


def _absolute_paths(values: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """``values`` with the files named by its ``paths`` keys (a path or a list) absolute."""
    out = dict(values)
    for key in paths:
        value = out.get(key)
        if isinstance(value, (list, tuple)):
            out[key] = [os.path.abspath(os.path.expanduser(v)) for v in value]
        elif value:
            out[key] = os.path.abspath(os.path.expanduser(value))
    return out


def fit_options(run: RunFolder, common: dict[str, Any]) -> dict[str, Any]:
    """What a training command passes to its estimator's ``fit``: the run's checkpoint, written
    after every validation, every ``--checkpoint-seconds`` and at the end (so a crash loses
    at most that much work), whether to resume from it, and the run folder's callback."""
    from rnnkit import checkpoint

    path = run.file(CHECKPOINT)
    if common["resume"]:
        # A run killed while writing a checkpoint leaves a temporary file beside it.
        checkpoint.remove_stale_temporaries(path)
        if run.from_start:
            run.file(METRICS).unlink(missing_ok=True)  # the rows of the run that was cut off
            report(
                f"{run.final} has no checkpoint yet: training from the start with its config",
                quiet=common["quiet"],
            )
    return {
        "checkpoint": path,
        "resume": common["resume"],
        "checkpoint_seconds": common["checkpoint_seconds"],
        "callbacks": (run.checkpointed,),
    }


@contextlib.contextmanager
def training(run: RunFolder, task: str) -> Iterator[None]:
    """Around a command's ``fit``: a :class:`TrainingError` (divergence) gets the state of the
    run folder appended, so the one-line error says where to go on from."""
    from rnnkit.training import TrainingError

    try:
        yield
    except TrainingError as err:
        raise TrainingError(f"{err} {last_checkpoint(run)}") from None


def exit_if_interrupted(run: RunFolder, task: str, stopped: str | None, step: int | None) -> None:
    """After Ctrl-C (the trainer checkpointed, then stopped): say how to go on, exit 130."""
    if stopped != "interrupted":
        return
    at = f" at step {step}" if step is not None else ""
    click.echo(
        f"rnnkit: interrupted{at}; the checkpoint is in {run.final}; continue with: rnnkit "
        f"{task} train --name {run.final.name} --runs-dir {run.final.parent} --resume",
        err=True,
    )
    sys.exit(EXIT_INTERRUPTED)


def last_checkpoint(run: RunFolder) -> str:
    """Where a failed run can go on from, for the error message."""
    from rnnkit import checkpoint

    path = run.final / CHECKPOINT
    if not run.committed or not path.exists():
        return f"No checkpoint was written; {run.final} is as it was before this command."
    step = checkpoint.peek(path).get("progress", {}).get("step")
    return f"The last good checkpoint (step {step}) is intact in {run.final}."


def report(message: str, *, quiet: bool = False) -> None:
    """A line of the command's normal output (stdout), unless quiet."""
    if not quiet:
        click.echo(message)


def handle_errors(func: Callable) -> Callable:
    """Expected failures become one line on stderr and exit code 2 (bad input) or 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rnnkit.checkpoint import CheckpointError
        from rnnkit.training import TrainingError

        try:
            return func(*args, **kwargs)
        except (CLIError, CheckpointError, OSError, ValueError, TypeError) as err:
            click.echo(f"rnnkit: error: {_one_line(err)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except MemoryError as err:
            detail = f" ({err})" if str(err) else ""
            click.echo(
                f"rnnkit: error: not enough memory{detail}: use smaller sizes or less data",
                err=True,
            )
            sys.exit(EXIT_BAD_INPUT)
        except TrainingError as err:
            click.echo(f"rnnkit: training failed: {err}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


def _one_line(err: Exception) -> str:
    """An error as one line: the system's own errors as 'what: which file'."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        if isinstance(err, FileNotFoundError):
            return f"file not found: {err.filename}"
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rnnkit`` console script and ``python -m rnnkit``."""
    if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        from rnnkit.runtime.threads import set_blas_threads

        set_blas_threads(1)  # small per-step products: threads cost more than they bring
    from rnnkit.runtime.memory import keep_freed_memory

    keep_freed_memory()  # no page faults on every step's fresh arrays (see rnnkit.runtime.memory)
    try:
        cli.main(args=argv, prog_name="rnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rnnkit: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as err:
        click.echo(f"rnnkit: error: {err.format_message()}", err=True)
        if isinstance(err, click.UsageError) and err.ctx is not None:
            click.echo(f"(see '{err.ctx.command_path} --help')", err=True)
        sys.exit(err.exit_code if err.exit_code else EXIT_BAD_INPUT)
