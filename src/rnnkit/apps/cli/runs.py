"""Run folders, their configuration and their plots for the ``rnnkit`` command.

Every training run gets one folder, ``<runs-dir>/<name>/``, holding:

- ``config.toml``: the resolved configuration (defaults < ``--config`` file < flags), which is
  what ``--resume`` and the other commands read back;
- ``metrics.csv``: the training log;
- ``checkpoint.ckpt``: the trainer's last checkpoint (for ``--resume``);
- ``model.rnnkit``: the trained estimator;
- the task's outputs (samples, forecasts, reports) and ``*.png`` plots, drawn by
  :func:`draw_plot` with :mod:`rnnkit.apps.plots` when matplotlib (the 'plot' extra) is
  installed, and skipped with one line of explanation when it is not.

Nothing already in a run folder is overwritten without ``--overwrite``, and even then the old
run is replaced only once the new one has a checkpoint or has finished (see :class:`RunFolder`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import errno
import glob
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG = "config.toml"
CHECKPOINT = "checkpoint.ckpt"
MODEL = "model.rnnkit"
METRICS = "metrics.csv"
#: The largest --config file read (a config holds a few dozen settings).
MAX_CONFIG_BYTES = 1 << 20


class CLIError(Exception):
    """An error the command reports as one line on stderr, with exit code 2."""


def read_config(path: str | Path, section: str, allowed: dict[str, Any]) -> dict[str, Any]:
    """The ``[section]`` table of a TOML file (or the top level when it has no such table),
    checked against ``allowed`` (name -> default, whose type the value must match)."""
    from rnnkit.data.files import regular_file

    path = Path(path)
    try:
        regular_file(path, "TOML config file")  # not /dev/zero, a FIFO or a folder
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CLIError(
                f"config file {path} has {path.stat().st_size:,} bytes; a config is at most "
                f"{MAX_CONFIG_BYTES:,}"
            )
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise CLIError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise CLIError(f"config file {path} is not valid TOML: {err}") from None
    table: dict = data  # [lm.train], or [lm], or plain keys at the top
    for part in section.split("."):
        if not isinstance(table.get(part), dict):
            break
        table = table[part]
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            continue  # another command's table
        name = key.replace("-", "_")
        if name not in allowed:
            raise CLIError(
                f"config {path}: unknown key {key!r} for 'rnnkit {section.replace('.', ' ')}' "
                f"(valid keys: {', '.join(sorted(allowed))})"
            )
        out[name] = _coerce(path, key, value, allowed[name])
    return out


def _coerce(path: Path, key: str, value: Any, default: Any) -> Any:
    """Check a config value against the type of its default (int promoted to float)."""
    if default is None or value is None:
        return value
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CLIError(
            f"config {path}: {key!r} must be a {kind.__name__}, got {type(value).__name__} "
            f"{value!r}"
        )
    return value


def resolve(defaults: dict[str, Any], config: dict[str, Any], flags: dict[str, Any]) -> dict:
    """Defaults, overridden by the config file, overridden by the flags given (not None)."""
    out = dict(defaults)
    out.update(config)
    out.update({k: v for k, v in flags.items() if v is not None})
    return out


def to_toml(values: dict[str, Any], section: str) -> str:
    """A TOML table of scalars and lists (what a resolved config holds)."""
    lines = [f"[{section}]"]
    for key, value in values.items():
        if value is None:
            continue  # TOML has no null: absent means the default
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise CLIError(f"cannot write {type(value).__name__} {value!r} to a TOML config")


def _a(word: str) -> str:
    """'an lm', 'a forecast'."""
    return f"{'an' if word[:1] in 'aeiou' or word == 'lm' else 'a'} {word}"


class RunFolder:
    """One run's folder: ``task`` (lm, forecast, classify) and its files.

    A new run is written where nothing of an earlier one can be lost: into the folder itself
    when it does not exist yet, else (``--overwrite``) into a hidden staging folder beside it,
    ``.<name>.new-<pid>``. :meth:`commit` puts the new run in place, swapping the two folders
    atomically where the system can (Linux's ``renameat2``), and deletes the old run only then.
    The training commands commit at the run's first checkpoint or when they finish; a command
    that fails before that removes what it wrote and leaves the old run as it was.

    Attributes:
        path: where the run's files are written now (the staging folder until committed).
        final: the run's folder, ``<runs-dir>/<name>``.
    """

    def __init__(self, path: str | Path, task: str) -> None:
        self.path = Path(path)
        self.final = self.path
        self.task = task
        self.committed = True
        self._created = False  # the command created `final` (and removes it if it fails)
        self.from_start = False  # resuming a run that has no checkpoint yet

    @classmethod
    def create(
        cls, runs_dir: str | Path, name: str | None, task: str, *, overwrite: bool, resume: bool
    ) -> RunFolder:
        """The run a training command is about to write (or continue, with ``resume``); checks
        the name and what is in the way, but writes nothing until :meth:`writing`."""
        if name is None:
            if resume:
                raise CLIError("--resume needs --name of the run to continue")
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            name = f"{task}-{stamp}"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
            raise CLIError(f"--name must be letters, digits, '.', '_' or '-', got {name!r}")
        runs_dir = Path(runs_dir)
        if runs_dir.exists() and not runs_dir.is_dir():
            raise CLIError(f"--runs-dir {runs_dir} is a file, not a folder")
        run = cls(runs_dir / name, task)
        run._recover()
        if resume:
            if not run.final.is_dir():
                raise CLIError(f"{run.final} does not exist: there is no run to resume")
            run.check_task()
            # A run stopped before its first checkpoint (killed in its first minute) has its
            # config only: it starts again from there, exactly as it first did.
            run.from_start = not (run.final / CHECKPOINT).exists()
            return run
        if run.final.exists() and not run.final.is_dir():
            raise CLIError(f"{run.final} is a file, not a run folder")
        if run.final.exists() and any(run.final.iterdir()):
            if not overwrite:
                raise CLIError(
                    f"{run.final} already exists; use --overwrite to replace it, or --resume to "
                    "continue it"
                )
            if not (run.final / CONFIG).is_file():
                raise CLIError(
                    f"{run.final} is not an rnnkit run folder (no {CONFIG}): --overwrite only "
                    "replaces run folders; choose another --name or --runs-dir"
                )
            run.path = runs_dir / f".{name}.new-{os.getpid()}"
        run.committed = False
        return run

    @contextlib.contextmanager
    def writing(self, config: dict[str, Any]) -> Iterator[RunFolder]:
        """Create the run's folder (or staging folder) with its ``config.toml`` and yield the
        run; commit when the block ends, or, if it fails before a commit, remove what it
        wrote so that everything is as it was before the command."""
        if self.committed:  # resuming: the folder is the run's own
            self.write_config(config)
            yield self
            return
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.write_config(config)
            yield self
        except BaseException:
            if not self.committed:
                self._discard()
            raise
        self.commit()

    def commit(self) -> None:
        """Put the new run in the place of ``final`` (once); the old run is deleted after."""
        if self.committed:
            return
        if self.path != self.final:
            if self.final.exists():
                try:
                    _exchange(self.path, self.final)  # the staging folder now holds the old run
                except OSError:  # no renameat2: two renames, undone by _recover if cut between
                    old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
                    os.rename(self.final, old)
                    os.rename(self.path, self.final)
                    self.path = old
                _fsync_dir(self.final.parent)
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                os.rename(self.path, self.final)
                _fsync_dir(self.final.parent)
            self.path = self.final
        self.committed = True

    def checkpointed(self, event: str, trainer: Any, row: dict[str, Any]) -> None:
        """A :class:`~rnnkit.Trainer` callback: the run commits at its first checkpoint, and the
        trainer writes its checkpoints and log into the committed folder from then on."""
        if event != "checkpoint" or self.committed:
            return
        moved = self.path != self.final
        self.commit()
        if moved:
            from rnnkit.training import MetricLog

            trainer.checkpoint_path = self.file(CHECKPOINT)
            if trainer.log is not None:
                trainer.log = MetricLog(self.file(trainer.log.path.name))

    def _discard(self) -> None:
        if self.path != self.final or self._created:
            shutil.rmtree(self.path, ignore_errors=True)
        else:  # the run's folder was there, empty: empty it again
            for item in self.path.iterdir():
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Clean up after a command killed while writing this run: staging folders of dead
        processes go; an old run cut off by a commit between its two renames comes back."""
        parent, name = self.final.parent, self.final.name
        if not parent.is_dir():
            return
        for item in parent.glob(f".{glob.escape(name)}.*-*"):
            kind, _, pid = item.name[len(name) + 2 :].rpartition("-")
            if kind not in ("new", "old") or not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "old" and not self.final.exists():
                os.rename(item, self.final)
            else:
                shutil.rmtree(item, ignore_errors=True)

    @classmethod
    def open(cls, path: str | Path, task: str) -> RunFolder:
        """An existing run folder of ``task``, for sample/eval/predict."""
        run = cls(path, task)
        if not run.path.is_dir():
            raise CLIError(f"run folder not found: {run.path}")
        run.check_task()
        if not (run.path / MODEL).exists():
            raise CLIError(f"{run.path} has no trained model ({MODEL}); did training finish?")
        return run

    def check_task(self) -> None:
        """The folder must belong to this task."""
        config = self.path / CONFIG
        if not config.exists():
            raise CLIError(f"{self.path} is not an rnnkit run folder (no {CONFIG})")
        with open(config, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise CLIError(f"{config} is not valid TOML: {err}") from None
        found = [k for k, v in data.items() if isinstance(v, dict)]
        if self.task not in found:
            other = found[0] if found else "unknown"
            raise CLIError(f"{self.path} is {_a(other)} run, not {_a(self.task)} run")

    def config(self) -> dict[str, Any]:
        with open(self.path / CONFIG, "rb") as f:
            return tomllib.load(f)[self.task]

    def write_config(self, values: dict[str, Any]) -> None:
        self.write_text(CONFIG, to_toml(values, self.task), replace=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str, *, replace: bool = False) -> Path:
        """Write a file of the run atomically; an existing one only with ``replace``."""
        target = self.path / name
        if target.exists() and not replace:
            raise CLIError(f"{target} already exists; use --overwrite to replace it")
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); OSError elsewhere."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a))


def _fsync_dir(path: Path) -> None:
    """Make a folder's renames durable (where folders can be opened: not on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- plots -----------------------------------------------------------------------------------------

_plots_skipped = False  # the "matplotlib is not installed" line is printed once per process


def draw_plot(
    run: RunFolder, name: str, plot: Callable[..., Any], *args: Any, quiet: bool, **kwargs: Any
) -> None:
    """Draw ``plot(*args, path=run/name, **kwargs)`` into the run folder if matplotlib is
    there; otherwise say once that plots are skipped."""
    global _plots_skipped
    from rnnkit.apps import plots

    if not plots.available():
        if not _plots_skipped and not quiet:
            click.echo("plots skipped: matplotlib is not installed (pip install 'rnnkit[plot]')")
        _plots_skipped = True
        return
    plot(*args, path=run.file(name), **kwargs)
    if not quiet:
        click.echo(f"plot: {run.final / name}")  # where it will be once the run is committed


def draw_training_curves(run: RunFolder, *, quiet: bool) -> None:
    """Plot the training and validation loss of the run's metrics log as ``training.png``."""
    from rnnkit.apps import plots
    from rnnkit.training import MetricLog

    rows = MetricLog(run.file(METRICS)).read()
    if rows:
        draw_plot(run, "training.png", plots.training_curves, rows, quiet=quiet)
