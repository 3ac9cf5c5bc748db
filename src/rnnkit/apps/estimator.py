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
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnkit import _checks, checkpoint, optim
from rnnkit.apps.progress import Progress
from rnnkit.cells.base import Cell
from rnnkit.training import Trainer
from rnnkit.training import resume_checks as fields

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

    def training_config(self, **extra: Any) -> dict[str, Any]:
        """What a training checkpoint records of this estimator (its class, its scalar
        settings and ``extra``), so that a resume can check it continues the same run."""
        params = {
            k: v
            for k, v in self.get_params().items()
            if v is None or isinstance(v, (bool, int, float, str))
        }
        return {"estimator": type(self).__name__, "params": params, **extra}

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
        the file holds, ``RNNForecaster.load`` insists on that class.

        The file is untrusted input: the stored settings are checked as the estimator's
        :meth:`check_params` checks them, and the fitted state field by field, including that
        each stored parameter array has the shape the stored settings imply, before any model
        is built (a file claiming ``hidden_size=10**12`` is refused, never allocated). Any
        problem raises :class:`~rnnkit.checkpoint.CheckpointError` naming the file and the
        setting or field.
        """
        tree = checkpoint.load(path)
        if not isinstance(tree, dict) or tree.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: not a saved rnnkit estimator")
        version = tree.get("version")
        if type(version) is not int or version != VERSION:
            raise checkpoint.CheckpointError(
                f"{path}: estimator file version {version!r}, expected {VERSION}"
            )
        fields.check_keys(tree, path, "the file", ("kind", "version", "class", "params", "state"))
        name = tree["class"]
        if not isinstance(name, str) or name not in Estimator.registry:
            raise checkpoint.CheckpointError(
                f"{path}: unknown estimator class {fields.describe(name)}"
            )
        target = Estimator.registry[name]
        if cls is not Estimator and not issubclass(target, cls):
            raise checkpoint.CheckpointError(f"{path}: holds a {name}, not a {cls.__name__}")
        est = _stored_estimator(target, tree["params"], path)
        state = fields.check_dict(tree["state"], path, "state", "a dict (the fitted state)")
        for klass in target.__mro__:
            check = _STATE_CHECKS.get(f"{klass.__module__}.{klass.__qualname__}")
            if check is not None:
                check(est, state, str(path))
                break
        try:
            est._set_state(state)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as err:
            # MemoryError too: a layer's memory guard (rnnkit.limits) refuses a model too big
            raise checkpoint.CheckpointError(
                f"{path}: the stored state does not fit {name}: {err}"
            ) from None
        return est


# --------------------------------------------------------------------------------------------
# load: what a saved file may hold


def _stored_estimator(target: type[Estimator], params: Any, path: str | Path) -> Estimator:
    """The estimator with the stored settings, checked as :meth:`Estimator.check_params` checks
    a user's: unknown names and invalid values raise CheckpointError."""
    fields.check_dict(params, path, "params", "a dict of constructor arguments")
    valid = target._param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise checkpoint.CheckpointError(
            f"{path}: stored settings {unknown[:8]} are not arguments of {target.__name__} "
            f"(valid: {valid})"
        )
    est = target(**params)
    try:
        est.check_params()
    except NotImplementedError:  # a subclass without checks of its own
        pass
    except (ValueError, TypeError) as err:
        raise checkpoint.CheckpointError(
            f"{path}: invalid stored setting of {target.__name__}: {err}"
        ) from None
    return est


def _recurrent_shapes(
    cell: str, input_size: int, hidden_size: int, num_layers: int, directions: int
) -> dict[str, tuple[int, ...]]:
    """The parameters of ``make_recurrent(cell, ...)`` with a bias, by name under ``rnn.``."""
    D, H, K, G = input_size, hidden_size, directions, Cell.named(cell).num_gates
    shapes = {}
    for layer in range(num_layers):
        d_in = D if layer == 0 else H * K
        for direction in range(K):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            shapes[f"rnn.weight_ih{suffix}"] = (G * H, d_in)
            shapes[f"rnn.weight_hh{suffix}"] = (G * H, H)
            shapes[f"rnn.bias_ih{suffix}"] = (G * H,)
            shapes[f"rnn.bias_hh{suffix}"] = (G * H,)
    return shapes


def _check_model_params(
    params: Any,
    path: str,
    field: str,
    settings: dict[str, Any],
    count: int,
    shapes: Callable[[], dict[str, tuple[int, ...]]],
    dtype: np.dtype,
) -> None:
    """The stored parameter arrays ``params`` are exactly those the stored ``settings`` imply:
    ``count`` arrays (checked first, so that an absurd ``num_layers`` is refused before
    ``shapes()`` lists them), each of the shape ``shapes()`` gives and of ``dtype``. Building the
    model afterwards allocates no more than the file holds."""
    said = ", ".join(f"{k}={v!r}" for k, v in settings.items())
    fields.check_arrays(params, path, field)
    if len(params) != count:
        raise checkpoint.CheckpointError(
            f"{path}: the stored settings ({said}) imply {count} parameter arrays, "
            f"{field} holds {len(params)}"
        )
    expected = shapes()
    for name, shape in expected.items():
        value = params.get(name)
        if value is None:
            raise checkpoint.CheckpointError(
                f"{path}: the stored settings ({said}) imply a parameter {name!r}, which "
                f"{field} lacks (it holds {list(params)[:8]})"
            )
        if value.shape != shape or value.dtype != dtype:
            raise checkpoint.CheckpointError(
                f"{path}: the stored settings ({said}) imply {field}[{name!r}] of shape {shape} "
                f"and dtype {dtype}, the file holds {fields.describe(value)}"
            )


def _stored_dtype(est: Estimator, path: str, dtype: Any) -> np.dtype:
    try:
        return _checks.float_dtype(dtype)
    except TypeError as err:
        raise checkpoint.CheckpointError(f"{path}: invalid stored setting: {err}") from None


def _check_lm_state(est: Any, state: dict[str, Any], path: str) -> None:
    """:class:`~rnnkit.apps.CharLM`: its vocabulary, counts, history and network."""
    keys = ("vocabulary", "char_counts", "model", "history", "val_loss", "n_steps")
    fields.check_keys(state, path, "state", keys)
    chars = state["vocabulary"]
    if type(chars) is not list or not all(type(c) is str and len(c) == 1 for c in chars):
        raise checkpoint.CheckpointError(
            f"{path}: state.vocabulary must be a list of single characters"
        )
    V = len(chars) + 1  # id 0 is the unknown character
    counts = state["char_counts"]
    if not isinstance(counts, np.ndarray) or counts.dtype.kind not in "iu" or counts.shape != (V,):
        raise checkpoint.CheckpointError(
            f"{path}: state.char_counts must be an integer array of shape ({V},) (the "
            f"vocabulary size), got {fields.describe(counts)}"
        )
    fields.check_history(state["history"], path, "state.history")
    fields.check_optional_float(state["val_loss"], path, "state.val_loss")
    fields.check_count(state["n_steps"], path, "state.n_steps")
    E, H, L = est.embedding_dim, est.hidden_size, est.num_layers
    settings = {
        "hidden_size": H,
        "num_layers": L,
        "embedding_dim": E,
        "cell": est.cell,
        "vocabulary size": V,
    }
    _check_model_params(
        state["model"],
        path,
        "state.model",
        settings,
        4 * L + 3,
        lambda: {
            "embedding.weight": (V, E),
            **_recurrent_shapes(est.cell, E, H, L, 1),
            "head.weight": (V, H),
            "head.bias": (V,),
        },
        _stored_dtype(est, path, est.dtype),
    )


#: The dtypes classes may be saved as (numpy's dtype.str), and the most bytes their array takes.
_CLASSES_DTYPE = re.compile(r"\|b1|[<>|][iuf][0-9]{1,2}|[<>|]U[0-9]{1,6}|\|S[0-9]{1,6}")
_CLASSES_BYTES = 2**26


def _check_classifier_state(est: Any, state: dict[str, Any], path: str) -> None:
    """:class:`~rnnkit.apps.RNNClassifier`: its classes, normaliser and every network."""
    keys = ("classes", "classes_dtype", "n_features_in", "mean", "scale", "params")
    fields.check_keys(state, path, "state", keys, optional=("more_params",))
    classes, dtype = state["classes"], state["classes_dtype"]
    if type(classes) is not list or not classes:
        raise checkpoint.CheckpointError(f"{path}: state.classes must be a non-empty list")
    if not all(type(c) in (str, int, float, bool) for c in classes):
        raise checkpoint.CheckpointError(
            f"{path}: state.classes must hold str, int, float or bool labels"
        )
    if not isinstance(dtype, str) or not _CLASSES_DTYPE.fullmatch(dtype):
        raise checkpoint.CheckpointError(
            f"{path}: state.classes_dtype must be a bool, number or string dtype, got "
            f"{fields.describe(dtype)}"
        )
    itemsize = np.dtype(dtype).itemsize
    longest = max(len(c) if type(c) is str else 0 for c in classes)
    if dtype[1] in "US" and itemsize // (4 if dtype[1] == "U" else 1) < longest:
        raise checkpoint.CheckpointError(
            f"{path}: state.classes_dtype {dtype} is too short for the label of {longest} "
            "characters in state.classes"
        )
    if len(classes) * itemsize > _CLASSES_BYTES:
        raise checkpoint.CheckpointError(
            f"{path}: state.classes_dtype {dtype} makes the {len(classes)} classes take "
            f"{len(classes) * itemsize} bytes, more than {_CLASSES_BYTES}"
        )
    C = fields.check_count(state["n_features_in"], path, "state.n_features_in", low=1)
    for name in ("mean", "scale"):
        value = state[name]
        if est.normalize != "global" and value is None:
            continue
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == (C,)):
            raise checkpoint.CheckpointError(
                f"{path}: state.{name} must be "
                + ("" if est.normalize == "global" else "None or ")
                + f"a float array of shape ({C},) (one per channel), got "
                f"{fields.describe(value)}"
            )
    more = state.get("more_params", {})
    fields.check_dict(more, path, "state.more_params", "a dict of networks by number")
    # The count first: the names of an absurd ensemble would not fit in memory.
    wanted = [str(k) for k in range(1, est.ensemble)] if len(more) == est.ensemble - 1 else None
    if wanted is None or sorted(more, key=_number) != wanted:
        shown = [str(k) for k in range(1, min(est.ensemble, 4))] + ["..."] * (est.ensemble > 4)
        raise checkpoint.CheckpointError(
            f"{path}: the stored setting ensemble={est.ensemble} implies networks {shown} in "
            f"state.more_params, the file holds {sorted(more, key=_number)[:8]}"
        )
    K = 2 if est.bidirectional else 1
    H, L, D = est.hidden_size, est.num_layers, C * est.window
    settings = {
        "hidden_size": H,
        "num_layers": L,
        "cell": est.cell,
        "bidirectional": est.bidirectional,
        "window": est.window,
        "n_features_in": C,
        "classes": len(classes),
    }
    dtype = _stored_dtype(est, path, est.dtype)
    for field, params in [("state.params", state["params"])] + [
        (f"state.more_params[{k!r}]", more[k]) for k in wanted
    ]:
        _check_model_params(
            params,
            path,
            field,
            settings,
            4 * L * K + 2,
            lambda: {
                **_recurrent_shapes(est.cell, D, H, L, K),
                "head.weight": (len(classes), K * H),
                "head.bias": (len(classes),),
            },
            dtype,
        )


def _number(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (-1, key)


_FITTED = ("window", "outputs", "lag", "log", "horizon", "hidden_size", "num_layers", "cell")


def _check_forecaster_state(est: Any, state: dict[str, Any], path: str) -> None:
    """:class:`~rnnkit.apps.RNNForecaster`: the settings frozen at fit, the scaler, the tail of
    the series and the network."""
    keys = ("fitted", "scaler", "scaler_end", "tail", "n_windows", "n_epochs", "model")
    fields.check_keys(state, path, "state", keys)
    cfg = fields.check_dict(state["fitted"], path, "state.fitted", "a dict")
    fields.check_keys(cfg, path, "state.fitted", (*_FITTED, "dtype"))
    for name in ("window", "outputs", "horizon", "hidden_size", "num_layers"):
        fields.check_count(cfg[name], path, f"state.fitted.{name}", low=1)
    lag = fields.check_count(cfg["lag"], path, "state.fitted.lag")
    if type(cfg["log"]) is not bool:
        raise checkpoint.CheckpointError(
            f"{path}: state.fitted.log must be True or False, got {fields.describe(cfg['log'])}"
        )
    try:
        Cell.named(cfg["cell"])
    except (ValueError, TypeError) as err:
        raise checkpoint.CheckpointError(f"{path}: state.fitted.cell: {err}") from None
    dtype = _stored_dtype(est, path, cfg["dtype"])
    if cfg["outputs"] not in (1, cfg["horizon"]):
        raise checkpoint.CheckpointError(
            f"{path}: state.fitted.outputs must be 1 or the horizon {cfg['horizon']}, got "
            f"{cfg['outputs']}"
        )
    scaler = fields.check_dict(state["scaler"], path, "state.scaler", "a dict")
    fields.check_keys(scaler, path, "state.scaler", ("center", "scale"))
    for name, value in scaler.items():
        if type(value) is not float or not math.isfinite(value) or (name == "scale" and value <= 0):
            raise checkpoint.CheckpointError(
                f"{path}: state.scaler.{name} must be a finite float"
                + (" > 0" if name == "scale" else "")
                + f", got {fields.describe(value)}"
            )
    fields.check_count(state["scaler_end"], path, "state.scaler_end")
    tail, need = state["tail"], cfg["window"] + lag
    if not (isinstance(tail, np.ndarray) and tail.dtype.kind == "f" and tail.shape == (need,)):
        raise checkpoint.CheckpointError(
            f"{path}: state.tail must be a float array of shape ({need},) (window + lag), got "
            f"{fields.describe(tail)}"
        )
    windows = state["n_windows"]
    if type(windows) is not list or len(windows) != 2:
        raise checkpoint.CheckpointError(
            f"{path}: state.n_windows must be a list of 2 counts, got {fields.describe(windows)}"
        )
    for i, n in enumerate(windows):
        fields.check_count(n, path, f"state.n_windows[{i}]")
    fields.check_count(state["n_epochs"], path, "state.n_epochs")
    H, L, O = cfg["hidden_size"], cfg["num_layers"], cfg["outputs"]
    settings = {f"fitted.{k}": cfg[k] for k in ("hidden_size", "num_layers", "cell", "outputs")}
    _check_model_params(
        state["model"],
        path,
        "state.model",
        settings,
        4 * L + 2,
        lambda: {
            **_recurrent_shapes(cfg["cell"], 1, H, L, 1),
            "head.weight": (O, H),
            "head.bias": (O,),
        },
        dtype,
    )


def _check_token_list(value: Any, path: str, field: str) -> int:
    """A stored :class:`~rnnkit.data.pairs.TokenVocabulary`: distinct non-empty strings; its
    size V (the four special ids included)."""
    if type(value) is not list or not all(type(t) is str and t for t in value):
        raise checkpoint.CheckpointError(
            f"{path}: {field} must be a list of non-empty strings (the known tokens)"
        )
    if len(set(value)) != len(value):
        raise checkpoint.CheckpointError(f"{path}: {field} must hold distinct tokens")
    return len(value) + 4  # PAD, BOS, EOS, UNK


def _check_translator_state(est: Any, state: dict[str, Any], path: str) -> None:
    """:class:`~rnnkit.apps.Translator`: its two vocabularies, history and network."""
    keys = ("source_vocabulary", "target_vocabulary", "model", "history", "dev_loss", "n_steps")
    fields.check_keys(state, path, "state", keys)
    Vs = _check_token_list(state["source_vocabulary"], path, "state.source_vocabulary")
    Vt = _check_token_list(state["target_vocabulary"], path, "state.target_vocabulary")
    fields.check_history(state["history"], path, "state.history")
    fields.check_optional_float(state["dev_loss"], path, "state.dev_loss")
    fields.check_count(state["n_steps"], path, "state.n_steps")
    E, H, L = est.embedding_dim, est.hidden_size, est.num_layers
    Le = L if est.encoder_layers is None else est.encoder_layers
    K = 2 if est.bidirectional else 1
    n_states = len(Cell.named(est.cell).state_names)
    D_dec = E + (H if est.input_feeding else 0)
    linear = est.bridge == "linear"
    A = H if est.attention_size is None else est.attention_size
    attention = {
        "dot": {},
        "general": {"weight": (H, H)},
        "additive": {"query_weight": (A, H), "key_weight": (A, H), "bias": (A,), "v": (A,)},
    }[est.attention]
    settings = {
        "embedding_dim": E,
        "hidden_size": H,
        "num_layers": L,
        "encoder_layers": Le,
        "cell": est.cell,
        "bidirectional": est.bidirectional,
        "attention": est.attention,
        "bridge": est.bridge,
        "input_feeding": est.input_feeding,
        "tie_embeddings": est.tie_embeddings,
        "source vocabulary size": Vs,
        "target vocabulary size": Vt,
    }

    def shapes() -> dict[str, tuple[int, ...]]:
        out = {"source_embedding.weight": (Vs, E)}
        for name, shape in _recurrent_shapes(est.cell, E, H // K, Le, K).items():
            out["encoder." + name[len("rnn.") :]] = shape
        if linear:
            for kind in ("h", "c")[:n_states]:
                out[f"bridge_{kind}.weight"] = (L * H, H)
                out[f"bridge_{kind}.bias"] = (L * H,)
        out["target_embedding.weight"] = (Vt, E)
        for name, shape in _recurrent_shapes(est.cell, D_dec, H, L, 1).items():
            out["decoder." + name[len("rnn.") :]] = shape
        out.update({f"attention.{k}": v for k, v in attention.items()})
        out["combine.weight"], out["combine.bias"] = (H, 2 * H), (H,)
        if est.tie_embeddings:
            out["generator_bias"] = (Vt,)
        else:
            out["generator.weight"], out["generator.bias"] = (Vt, H), (Vt,)
        return out

    count = (
        2
        + 4 * Le * K
        + (2 * n_states if linear else 0)
        + 4 * L
        + len(attention)
        + 2
        + (1 if est.tie_embeddings else 2)
    )
    _check_model_params(
        state["model"],
        path,
        "state.model",
        settings,
        count,
        shapes,
        _stored_dtype(est, path, est.dtype),
    )


#: The checks of each built-in estimator's fitted state (and of subclasses of it), by the
#: estimator's module and name: this module cannot import them (they import it).
_STATE_CHECKS: dict[str, Callable[[Any, dict[str, Any], str], None]] = {
    "rnnkit.apps.lm.CharLM": _check_lm_state,
    "rnnkit.apps.translate.estimator.Translator": _check_translator_state,
    "rnnkit.apps.classify.estimator.RNNClassifier": _check_classifier_state,
    "rnnkit.apps.forecast.estimator.RNNForecaster": _check_forecaster_state,
}


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
    checkpoint_seconds: float | None = 60.0,
    resume: bool = False,
    log: str | Path | None = None,
    quiet: bool = False,
    desc: str = "train",
    unit: str = "example",
    config: dict | None = None,
    callbacks: tuple = (),
    schedule: Callable[[optim.Optimizer], Any] | None = None,
) -> Trainer:
    """Train ``model`` with Adam, gradient clipping, optional validation and early stopping,
    a progress report, and (with ``checkpoint_path``) checkpoints that ``resume=True`` continues
    from (see :class:`~rnnkit.Trainer` for when they are written). ``schedule`` builds the
    learning-rate schedule from the optimiser. Returns the trainer (its ``history``,
    ``progress`` and final ``evaluate``)."""
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
        schedule=None if schedule is None else schedule(opt),
        checkpoint=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_seconds=checkpoint_seconds,
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
