"""Run folders and configuration for the ``rnnkit`` command.

Every training run gets one folder, ``<runs-dir>/<name>/``, holding:

- ``config.toml``: the resolved configuration (defaults < ``--config`` file < flags), which is
  what ``--resume`` and the other commands read back;
- ``metrics.csv``: the training log;
- ``checkpoint.ckpt``: the trainer's last checkpoint (for ``--resume``);
- ``model.rnnkit``: the trained estimator;
- the task's outputs (samples, forecasts, reports) and ``*.png`` plots.

Nothing already in a run folder is overwritten without ``--overwrite``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG = "config.toml"
CHECKPOINT = "checkpoint.ckpt"
MODEL = "model.rnnkit"
METRICS = "metrics.csv"


class CLIError(Exception):
    """An error the command reports as one line on stderr, with exit code 2."""


def read_config(path: str | Path, section: str, allowed: dict[str, Any]) -> dict[str, Any]:
    """The ``[section]`` table of a TOML file (or the top level when it has no such table),
    checked against ``allowed`` (name -> default, whose type the value must match)."""
    path = Path(path)
    try:
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
    """One run's folder: ``task`` (lm, forecast, classify) and its files."""

    def __init__(self, path: str | Path, task: str) -> None:
        self.path = Path(path)
        self.task = task

    @classmethod
    def create(
        cls, runs_dir: str | Path, name: str | None, task: str, *, overwrite: bool, resume: bool
    ) -> RunFolder:
        """The folder for a new run (or the existing one with ``resume``)."""
        if name is None:
            if resume:
                raise CLIError("--resume needs --name of the run to continue")
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            name = f"{task}-{stamp}"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
            raise CLIError(f"--name must be letters, digits, '.', '_' or '-', got {name!r}")
        run = cls(Path(runs_dir) / name, task)
        if resume:
            run.check_task()
            if not (run.path / CHECKPOINT).exists():
                raise CLIError(f"{run.path} has no checkpoint to resume from")
            return run
        if run.path.exists() and any(run.path.iterdir()):
            if not overwrite:
                raise CLIError(
                    f"{run.path} already exists; use --overwrite to replace it, or --resume to "
                    "continue it"
                )
            for item in run.path.iterdir():
                if item.is_file():
                    item.unlink()
        run.path.mkdir(parents=True, exist_ok=True)
        return run

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
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        return target
