"""What the task estimators share: scikit-learn's conventions (without depending on it), saving
and loading, and one training routine on top of :class:`~rnnkit.Trainer`.

Conventions, as in scikit-learn: ``__init__`` only stores its keyword arguments, unchanged, as
attributes of the same names; :meth:`Estimator.get_params` and :meth:`Estimator.set_params` read
and write them (so estimators work in scikit-learn pipelines and grid searches); what ``fit``
learns lives in attributes ending with ``_``; ``fit`` returns ``self``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnkit import checkpoint, optim
from rnnkit.apps.progress import Progress
from rnnkit.training import Trainer

KIND = "rnnkit.estimator"
VERSION = 1


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit`` (a ValueError and an AttributeError, as in
    scikit-learn)."""


class Estimator:
    """Base class of :class:`~rnnkit.apps.CharLM`, :class:`~rnnkit.apps.RNNForecaster` and
    :class:`~rnnkit.apps.RNNClassifier`.

    Subclasses implement ``fit`` and their predictions, and :meth:`_get_state` /
    :meth:`_set_state` (the fitted state as a tree of arrays and JSON-able values) for
    :meth:`save` and :meth:`load`.
    """

    #: Every estimator class by name, for :meth:`load`.
    registry: ClassVar[dict[str, type[Estimator]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Estimator.registry[cls.__name__] = cls

    # -- scikit-learn's parameter protocol ------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as currently set (``deep`` is accepted for
        scikit-learn; these estimators hold no nested estimators)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set constructor arguments by name; unknown names raise ``ValueError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if value is not sig.parameters[name].default and value != sig.parameters[name].default
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def check_params(self) -> None:
        """Check the constructor's arguments as ``fit`` would (ValueError/TypeError naming the
        argument), without fitting: what a caller does before committing to a run."""
        raise NotImplementedError

    # -- fitted state ---------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not getattr(self, "model_", None):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(...) first"
            )

    def _get_state(self) -> dict[str, Any]:
        """The fitted state: a tree of arrays and JSON-able values (see rnnkit.checkpoint)."""
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to one file, atomically and without pickle."""
        self._check_fitted()
        params = self.get_params()
        try:
            json.dumps(params, allow_nan=True)
        except TypeError as err:
            raise TypeError(
                f"{type(self).__name__} parameters must be JSON-able to save: {err}"
            ) from None
        tree = {
            "kind": KIND,
            "version": VERSION,
            "class": type(self).__name__,
            "params": _jsonable(params),
            "state": self._get_state(),
        }
        path = Path(path)
        checkpoint.save(path, tree)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Estimator:
        """Read an estimator written by :meth:`save`; ``Estimator.load`` returns whatever class
        the file holds, ``RNNForecaster.load`` insists on that class."""
        tree = checkpoint.load(path)
        if not isinstance(tree, dict) or tree.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: not a saved rnnkit estimator")
        if tree.get("version") != VERSION:
            raise checkpoint.CheckpointError(
                f"{path}: estimator file version {tree.get('version')}, expected {VERSION}"
            )
        name = tree["class"]
        if name not in Estimator.registry:
            raise checkpoint.CheckpointError(f"{path}: unknown estimator class {name!r}")
        target = Estimator.registry[name]
        if cls is not Estimator and not issubclass(target, cls):
            raise checkpoint.CheckpointError(f"{path}: holds a {name}, not a {cls.__name__}")
        est = target(**tree["params"])
        est._set_state(tree["state"])
        return est


def _jsonable(value: Any) -> Any:
    """Tuples to lists, recursively, so parameters round-trip through a checkpoint."""
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def train_model(
    model: Any,
    train: Any,
    *,
    loss: str,
    val: Any = None,
    epochs: int | None = None,
    steps: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    clip_norm: float | None = 1.0,
    patience: int | None = None,
    stateful: bool = False,
    seed: Any = 0,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    log: str | Path | None = None,
    quiet: bool = False,
    desc: str = "train",
    unit: str = "example",
    config: dict | None = None,
    callbacks: tuple = (),
) -> Trainer:
    """Train ``model`` with Adam, gradient clipping, optional validation and early stopping,
    a progress report, and (with ``checkpoint_path``) checkpoints that ``resume=True`` continues
    from. Returns the trainer (its ``history``, ``progress`` and final ``evaluate``)."""
    opt = optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = steps if steps is not None else (epochs or 0) * len(train)
    bar = Progress(total or None, desc=desc, unit=unit, quiet=quiet)
    trainer = Trainer(
        model,
        opt,
        loss,
        clip_norm=clip_norm,
        stateful=stateful,
        seed=seed,
        checkpoint=checkpoint_path,
        checkpoint_every=checkpoint_every,
        log=log,
        callbacks=(bar, *callbacks),
        config=config,
    )
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        trainer.load_checkpoint(checkpoint_path)
    result = trainer.fit(train, epochs=epochs, steps=steps, val=val, patience=patience)
    trainer.result = result
    return trainer


def as_float_array(name: str, value: Any) -> np.ndarray:
    """A finite float array from array-like input, or a ValueError naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or Inf)")
    return arr
