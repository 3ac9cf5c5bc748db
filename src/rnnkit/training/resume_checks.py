"""Checks of a trainer checkpoint's tree, field by field, before anything of it is used.

:func:`rnnkit.checkpoint.load` guarantees a well-formed tree (dicts, lists, scalars and numeric
arrays, nothing larger than the file's own bytes) but not that it is the tree
:meth:`rnnkit.Trainer.save_checkpoint` writes: a damaged or forged file can hold a step of
``-3``, ``1e300`` or ``"7"``, an epoch order that repeats an index, or a generator state that
makes NumPy raise an ``OverflowError`` half way through a resume. :func:`check_trainer_tree`
checks every field's type and range, and raises :class:`~rnnkit.checkpoint.CheckpointError`
naming the file, the field (``progress.step``), what was expected and what was found, so that
``Trainer.load_checkpoint`` changes nothing unless the whole tree is sound.

The tree, as version 2 of the trainer writes it::

    kind "rnnkit.trainer", version 2, config {...}
    model      {"class": str, "params": {name: array}}
    optimizer  {...}                 (the optimiser's state_dict; it checks its own entries)
    schedule   None | {...}          (the schedule's state_dict; likewise)
    rng        {"trainer": bit generator state, "model": {name: bit generator state}}
    progress   {"step", "epoch", "batch", "nonfinite", "skipped", "bad": int in [0, 2**62),
                "order": None | 1-D int array, a permutation of range(len),
                "best": None | float, "best_params": None | {name: array} (as model.params),
                "first_loss": None | float > 0 (optional: absent before rnnkit 0.2),
                "stopped": None | str (optional)}
    state      None | {"s0": array, "s1": array, ...}
    history    {column: encoded column}, see rnnkit.training.metric_log.encode_columns
               (version 1: {column: list of None, bool, int, float or str}), of one length

The helpers (:func:`check_count`, :func:`check_arrays`, :func:`check_history`, ...) serve the
estimators' ``load`` as well.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from rnnkit.checkpoint import CheckpointError
from rnnkit.training.metric_log import check_encoded_columns

__all__ = [
    "BIT_GENERATORS",
    "MAX_COUNT",
    "check_arrays",
    "check_count",
    "check_dict",
    "check_history",
    "check_keys",
    "check_optional_float",
    "check_rng_state",
    "check_trainer_tree",
    "describe",
]

#: The trainer's ``KIND`` and ``VERSION`` (trainer.py imports this module, not the reverse).
TRAINER_KIND = "rnnkit.trainer"
TRAINER_VERSION = 2
#: The versions read: 1 stored the metric columns as lists, 2 as arrays.
TRAINER_VERSIONS = (1, 2)
#: Bound of every counter (steps, epochs, batches): far beyond any run, and small enough that
#: arithmetic on it stays exact in an int64.
MAX_COUNT = 2**62
#: Bit generators whose state a checkpoint may hold (NumPy's own).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")

_TOP = (
    "kind",
    "version",
    "config",
    "model",
    "optimizer",
    "schedule",
    "rng",
    "progress",
    "state",
    "history",
)
_COUNTS = ("step", "epoch", "batch", "nonfinite", "skipped", "bad")
_PROGRESS = (*_COUNTS, "order", "best", "best_params")
_PROGRESS_OPTIONAL = ("first_loss", "stopped")


def check_trainer_tree(
    tree: Any, path: str | os.PathLike[str], *, bit_generator: str | None = None
) -> None:
    """Check that ``tree``, read from the checkpoint file ``path``, is a trainer checkpoint as
    :meth:`rnnkit.Trainer.save_checkpoint` writes it (see the module docstring), every field of
    it; raise :class:`~rnnkit.checkpoint.CheckpointError` naming the file, the field, what was
    expected and what was found.

    ``bit_generator``, the name of the resuming trainer's bit generator
    (``type(trainer.rng.bit_generator).__name__``), makes ``rng.trainer`` a state of that one:
    NumPy refuses another's state only when it is assigned. Whether the rest fits a given
    trainer (its model's parameter names, its optimiser) is for ``Trainer.load_checkpoint`` to
    check."""
    path = os.fspath(path)
    check_dict(tree, path, "the checkpoint", "a dict (a trainer checkpoint's tree)")
    if tree.get("kind") != TRAINER_KIND:
        raise _error(
            path, "kind", f"{TRAINER_KIND!r} (not an rnnkit trainer checkpoint)", tree.get("kind")
        )
    version = tree.get("version")
    if type(version) is not int or version not in TRAINER_VERSIONS:
        raise _error(
            path,
            "version",
            f"one of {list(TRAINER_VERSIONS)} (this rnnkit's trainer checkpoints)",
            version,
        )
    check_keys(tree, path, "the checkpoint", _TOP)
    check_dict(tree["config"], path, "config", "a dict")

    model = tree["model"]
    check_dict(model, path, "model", "a dict")
    check_keys(model, path, "model", ("class", "params"))
    if not isinstance(model["class"], str):
        raise _error(path, "model.class", "a class name (str)", model["class"])
    params = check_arrays(model["params"], path, "model.params")

    check_dict(tree["optimizer"], path, "optimizer", "a dict (the optimiser's state_dict)")
    if tree["schedule"] is not None:
        check_dict(tree["schedule"], path, "schedule", "None or a dict (the schedule's state_dict)")

    rng = tree["rng"]
    check_dict(rng, path, "rng", "a dict")
    check_keys(rng, path, "rng", ("trainer", "model"))
    check_rng_state(rng["trainer"], path, "rng.trainer")
    if bit_generator is not None and rng["trainer"]["bit_generator"] != bit_generator:
        raise _error(
            path,
            "rng.trainer.bit_generator",
            f"{bit_generator!r} (the generator of the trainer that resumes)",
            rng["trainer"]["bit_generator"],
        )
    check_dict(rng["model"], path, "rng.model", "a dict of bit generator states by module name")
    for name, state in rng["model"].items():
        check_rng_state(state, path, f"rng.model[{name!r}]")

    _check_progress(tree["progress"], params, path)
    _check_state(tree["state"], path)
    check_history(tree["history"], path, "history")


def _check_progress(progress: Any, params: dict[str, np.ndarray], path: str) -> None:
    check_dict(progress, path, "progress", "a dict")
    check_keys(progress, path, "progress", _PROGRESS, optional=_PROGRESS_OPTIONAL)
    for name in _COUNTS:
        check_count(progress[name], path, f"progress.{name}")
    order = progress["order"]
    if order is not None:
        field = "progress.order"
        if not isinstance(order, np.ndarray) or order.ndim != 1 or order.dtype.kind not in "iu":
            raise _error(path, field, "None or a 1-D integer array", order)
        n = order.size
        if n and (int(order.min()) < 0 or int(order.max()) >= n):
            raise _error(
                path,
                field,
                f"a permutation of range({n})",
                _Said(f"values from {int(order.min())} to {int(order.max())}"),
            )
        counts = np.bincount(order.astype(np.intp), minlength=n)  # (n,)
        if (counts != 1).any():
            twice = int(np.flatnonzero(counts > 1)[0])
            raise _error(
                path, field, f"a permutation of range({n})", _Said(f"{twice} twice or more")
            )
    check_optional_float(progress["best"], path, "progress.best")  # NaN when nothing validated
    first = progress.get("first_loss")
    if first is not None and not (type(first) is float and math.isfinite(first) and first > 0):
        raise _error(path, "progress.first_loss", "None or a finite float > 0", first)
    stopped = progress.get("stopped")
    if stopped is not None and not isinstance(stopped, str):
        raise _error(path, "progress.stopped", "None or a str", stopped)
    best = progress["best_params"]
    if best is not None:
        best = check_arrays(best, path, "progress.best_params")
        if list(best) != list(params):
            raise _error(
                path,
                "progress.best_params",
                f"the names of model.params {list(params)[:8]}",
                _Said(f"{list(best)[:8]}"),
            )
        for name, value in best.items():
            if value.shape != params[name].shape or value.dtype != params[name].dtype:
                raise _error(
                    path,
                    f"progress.best_params[{name!r}]",
                    f"shape {params[name].shape} and dtype {params[name].dtype} "
                    "(as in model.params)",
                    value,
                )


def _check_state(state: Any, path: str) -> None:
    if state is None:
        return
    check_arrays(state, path, "state", "None or a dict of arrays s0, s1, ...")
    names = [f"s{i}" for i in range(len(state))]
    if not state or list(state) != names:
        raise _error(path, "state", f"arrays named {names or ['s0']}", _Said(f"{list(state)[:8]}"))


# --------------------------------------------------------------------------------------------
# field checks, shared with the estimators' load


def check_dict(value: Any, path: str, field: str, expected: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _error(path, field, expected, value)
    return value


def check_keys(
    value: dict[str, Any],
    path: str,
    field: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> None:
    """``value`` holds every key of ``required``, maybe some of ``optional``, and nothing else."""
    required, optional = list(required), list(optional)
    missing = [k for k in required if k not in value]
    extra = [k for k in value if k not in required and k not in optional]
    if missing or extra:
        found = ", ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {extra[:8]}" if extra else "",
            )
            if part
        )
        wanted = f"the keys {required}" + (f" (and optionally {optional})" if optional else "")
        raise CheckpointError(f"{path}: {field} must have {wanted}, got {found}")


def check_count(value: Any, path: str, field: str, low: int = 0) -> int:
    """An int (not a bool) in ``[low, MAX_COUNT)``."""
    if type(value) is not int or not low <= value < MAX_COUNT:
        raise _error(path, field, f"an int in [{low}, 2**62)", value)
    return value


def check_optional_float(value: Any, path: str, field: str) -> float | None:
    if value is not None and type(value) is not float:
        raise _error(path, field, "None or a float", value)
    return value


def check_arrays(
    value: Any, path: str, field: str, expected: str = "a dict of arrays by name"
) -> dict[str, np.ndarray]:
    """A dict whose values are all arrays (the checkpoint format allows only numeric ones)."""
    check_dict(value, path, field, expected)
    for name, item in value.items():
        if not isinstance(item, np.ndarray):
            raise _error(path, f"{field}[{name!r}]", "an array", item)
    return value


def check_history(value: Any, path: str, field: str) -> dict[str, Any]:
    """Metric columns: a dict of columns as :func:`~rnnkit.training.metric_log.encode_columns`
    writes them, or (older files) of lists of None, bool, int, float or str; all of one
    length."""
    check_dict(value, path, field, "a dict of metric columns")
    if any(type(column) is not list for column in value.values()):
        why = check_encoded_columns(value)
        if why is not None:
            raise CheckpointError(f"{path}: {field} is malformed: {why}")
        return value
    length = None
    for name, column in value.items():
        where = f"{field}[{name!r}]"
        if type(column) is not list:
            raise _error(path, where, "a list", column)
        if length is None:
            length = len(column)
        elif len(column) != length:
            raise _error(
                path, where, f"{length} values long (as the other columns)", _Said(str(len(column)))
            )
        for i, item in enumerate(column):
            if not (item is None or type(item) in (bool, int, float, str)):
                raise _error(path, f"{where}[{i}]", "None, a bool, int, float or str", item)
    return value


def check_rng_state(value: Any, path: str, field: str) -> None:
    """A NumPy bit generator's ``state`` dict (``{"bit_generator": "PCG64", "state": {...},
    ...}``), of one of :data:`BIT_GENERATORS`, that such a generator accepts: tried on a fresh
    one, so that assigning it later cannot fail."""
    if type(value) is not dict or not isinstance(value.get("bit_generator"), str):
        raise _error(path, field, "a bit generator state (a dict with 'bit_generator')", value)
    name = value["bit_generator"]
    if name not in BIT_GENERATORS:
        raise _error(path, f"{field}.bit_generator", f"one of {list(BIT_GENERATORS)}", name)
    _check_rng_leaves(value, path, field)
    trial = getattr(np.random, name)(0)
    try:
        trial.state = value
    except Exception as err:  # NumPy raises any of several types here
        raise CheckpointError(
            f"{path}: {field} is not a valid {name} state ({type(err).__name__}: {err})"
        ) from None


def _check_rng_leaves(value: Any, path: str, field: str) -> None:
    """Ints (not bools: NumPy would take True for 1) and integer arrays, in nested dicts."""
    for key, item in value.items():
        where = f"{field}.{key}"
        if type(item) is dict:
            _check_rng_leaves(item, path, where)
        elif key == "bit_generator" and isinstance(item, str):
            continue
        elif not (type(item) is int or (isinstance(item, np.ndarray) and item.dtype.kind in "iu")):
            raise _error(path, where, "an int or an integer array", item)


# --------------------------------------------------------------------------------------------
# messages


def _error(path: str, field: str, expected: str, found: Any) -> CheckpointError:
    """``found`` is the value found, or a :class:`_Said` that says what was found."""
    said = found if type(found) is _Said else describe(found)
    return CheckpointError(f"{path}: {field} must be {expected}, got {said}")


class _Said(str):
    """A description of what was found, shown as is."""


def describe(value: Any) -> str:
    """A short description of a value found in a tree, for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...'"
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
