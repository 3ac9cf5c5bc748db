r"""Time-series classification: :class:`RNNClassifier`, a recurrent network over whole series
with a scikit-learn interface.

Input: N series, each (T_n, C), prepared as :mod:`rnnkit.apps.classify.inputs` describes
(missing values filled, normalised, cut into windows that the network reads as steps), at
``fit`` and at prediction alike.

Then a :class:`~rnnkit.nn.SequenceClassifier` (recurrent stack, pooling over the valid steps,
dropout, linear head) is trained with cross-entropy and Adam by :func:`~rnnkit.apps.train_model`.

**Ensembles** (``ensemble = m``): m such networks are trained on the same data, the k-th with
seed ``seed + k`` (its own initialisation, batch order and dropout masks), and the predicted
probabilities are their mean. On small data sets the seed alone moves test accuracy by several
points (ArrowHead, 36 training series: 0.71 to 0.83 over 15 seeds); the mean of 5 networks
varies far less and is better than the typical single one, the reason InceptionTime (Ismail
Fawaz et al. 2020) is an ensemble of 5. Training and prediction cost m times as much.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks, limits
from rnnkit.apps import metrics
from rnnkit.apps.classify import inputs
from rnnkit.apps.estimator import Estimator, train_model
from rnnkit.cells.base import Cell
from rnnkit.data.batching import SequenceData, pad_sequences
from rnnkit.nn.models import SequenceClassifier
from rnnkit.nn.pooling import MODES as POOLING_MODES
from rnnkit.optim.schedules import WarmupCosine

NORMALIZE = ("series", "global", None)
LR_SCHEDULES = (None, "cosine")
_PREDICT_BATCH = 256  # series per forward pass at prediction time


class RNNClassifier(Estimator):
    """A recurrent network that classifies whole time series.

    Args:
        hidden_size: H, features of the recurrent state (per direction).
        num_layers: stacked recurrent layers.
        cell: "lstm" (default), "gru" or "rnn".
        bidirectional: read each series both ways (the head sees both directions).
        pooling: how the per-step outputs become one vector per series: "last" (each
            direction's final state), "mean" or "max" over the valid steps.
        normalize: "series" (default), "global" or None: step 2 of the preparation in
            :mod:`rnnkit.apps.classify.inputs`.
        window: w >= 1, values per network step (step 3 of the preparation); 1: raw steps.
        stride: s >= 1, steps between the starts of consecutive windows; None: ``window``.
        dropout: probability of dropout between stacked layers and before the head.
        zoneout: probability that a unit of the recurrent state keeps its previous value at a
            step, in training (Krueger et al. 2016); "lstm" and "gru" only.
        epochs: passes over the training set.
        batch_size: series per optimiser step.
        lr: Adam's learning rate.
        lr_schedule: None (constant ``lr``) or "cosine": half a cosine from ``lr`` at the first
            step down to 0 after the last (less seed-to-seed variance on small data sets).
        weight_decay: Adam's L2 penalty.
        val_fraction: hold out this fraction of the training series (stratified by class) to
            report a validation loss after every epoch; 0: train on everything.
        patience: with ``val_fraction``, stop after this many epochs without a better
            validation loss and keep the best parameters; None: train all ``epochs``.
        clip_norm: clip the global gradient norm to this value (None: no clipping).
        ensemble: m >= 1, networks trained with seeds ``seed`` .. ``seed + m - 1`` whose
            probabilities are averaged (see the module docstring).
        seed: an int: the initialisation, the batch order, dropout, zoneout and the validation
            split (the same split for every network of an ensemble).
        dtype: "float32" (default) or "float64", for the network.
        quiet: no progress report.

    Attributes (after ``fit``):
        classes_: the sorted distinct labels; ``predict`` returns them, ``predict_proba``'s
            columns follow them.
        n_features_in_: C, the number of channels.
        mean_, scale_: per-channel mean and standard deviation (C,) with
            ``normalize="global"``, else None.
        models_: the trained :class:`~rnnkit.nn.SequenceClassifier` networks, ``ensemble`` of
            them; ``model_`` is the first.
        history_: the training metrics, column by column (``step``, ``epoch``, ``kind``,
            ``loss``, ...), with a column ``member`` (0 .. ensemble - 1) saying which network.

    Example:
        >>> import numpy as np
        >>> from rnnkit.apps.classify import RNNClassifier
        >>> rng = np.random.default_rng(0)
        >>> t = np.linspace(0, 4 * np.pi, 40)
        >>> X = [np.sin(t * f) + 0.1 * rng.normal(size=40) for f in [1, 3] * 20]  # (T,) each
        >>> y = ["slow", "fast"] * 20
        >>> clf = RNNClassifier(hidden_size=8, epochs=30, lr=0.02, quiet=True).fit(X, y)
        >>> clf.classes_.tolist(), clf.score(X, y)
        (['fast', 'slow'], 1.0)
        >>> clf.predict_proba(X[:2]).shape
        (2, 2)
    """

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        pooling: str = "last",
        normalize: str | None = "series",
        window: int = 1,
        stride: int | None = None,
        dropout: float = 0.0,
        zoneout: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 3e-3,
        lr_schedule: str | None = None,
        weight_decay: float = 0.0,
        val_fraction: float = 0.0,
        patience: int | None = None,
        clip_norm: float | None = 1.0,
        ensemble: int = 1,
        seed: int = 0,
        dtype: str = "float32",
        quiet: bool = False,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.normalize = normalize
        self.window = window
        self.stride = stride
        self.dropout = dropout
        self.zoneout = zoneout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.clip_norm = clip_norm
        self.ensemble = ensemble
        self.seed = seed
        self.dtype = dtype
        self.quiet = quiet

    # -- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        checkpoint_seconds: float | None = 60.0,
        callbacks: tuple = (),
    ) -> RNNClassifier:
        """Learn the classes of ``y`` from the series ``X`` (the forms ``X`` may take:
        :mod:`rnnkit.apps.classify.inputs`); returns ``self``.

        Args:
            X, y: the training series and their labels.
            checkpoint: a path to checkpoint training to (see :class:`~rnnkit.Trainer` for
                when); the k-th network of an ensemble (k >= 1) uses ``<stem>-<k><suffix>``
                beside it.
            resume: continue from the checkpoints that exist (the same data and parameters
                are expected); a network whose checkpoint marks it finished is not trained
                again, and a killed fit ends exactly as the uninterrupted one would.
            checkpoint_seconds: the longest time between two checkpoints (None: no timed ones).
            callbacks: :class:`~rnnkit.Trainer` callbacks, ``callback(event, trainer, row)``.
        """
        self.check_params()
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path> to resume from")
        series = inputs.as_series(X)
        labels = inputs.as_labels(y, len(series))
        try:
            classes, targets = np.unique(labels, return_inverse=True)
        except TypeError as err:  # labels of kinds that do not compare: 1 and "a"
            raise TypeError(f"y must hold labels of one kind that sort: {err}") from None
        if len(classes) < 2:
            raise ValueError(
                f"y has a single class {classes.tolist()[0]!r}: a classifier needs at least 2"
            )
        C = series[0].shape[1]
        longest = max(len(x) for x in series)
        if self.window > longest:
            raise ValueError(
                f"window must be at most the length of the longest series ({longest} steps), "
                f"got {self.window}"
            )
        self.n_features_in_ = C
        self.classes_ = classes
        self.mean_ = self.scale_ = None
        if self.normalize == "global":
            self.mean_, self.scale_ = inputs.global_stats(series)
        prepared = self._transform(series)
        targets = targets.reshape(-1).astype(np.intp)

        train_idx, val_idx = _split(targets, self.val_fraction, self.seed)
        dtype = _checks.float_dtype(self.dtype)
        train = SequenceData(
            [prepared[i] for i in train_idx], targets[train_idx], self.batch_size, dtype=dtype
        )
        val = None
        if len(val_idx):
            val = SequenceData(
                [prepared[i] for i in val_idx],
                targets[val_idx],
                _PREDICT_BATCH,
                shuffle=False,
                dtype=dtype,
            )
        self.models_, history = [], {}
        for member in range(self.ensemble):
            seed = self.seed + member
            model = self._build_model(C * self.window, len(classes), seed)
            if member == 0 and self.ensemble > 1:
                # the networks trained so far are kept while the next one trains
                size = sum(p.nbytes for p in model.parameters().values())
                limits.check_memory(
                    f"an ensemble of {self.ensemble:,} networks of {size:,} bytes each",
                    size * (self.ensemble - 1 + limits.TRAINING_COPIES),
                )
            desc = type(self).__name__
            trainer = train_model(
                model,
                train,
                loss="cross_entropy",
                val=val,
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
                clip_norm=self.clip_norm,
                patience=self.patience,
                seed=seed,
                checkpoint_path=member_checkpoint(checkpoint, member),
                checkpoint_seconds=checkpoint_seconds,
                resume=resume,
                quiet=self.quiet,
                desc=desc if self.ensemble == 1 else f"{desc} {member + 1}/{self.ensemble}",
                unit="series",
                schedule=_cosine(self.epochs * len(train)) if self.lr_schedule else None,
                callbacks=tuple(callbacks),
            )
            model.eval()
            self.models_.append(model)
            columns = trainer.result.history
            rows = len(next(iter(columns.values()), []))
            for name, values in {**columns, "member": [member] * rows}.items():
                history.setdefault(name, []).extend(values)
            # "epochs", "early_stopping" or "interrupted" (Ctrl-C: the networks after this one
            # are not trained; fit again with resume=True to go on)
            self.stopped_ = trainer.result.stopped
            if self.stopped_ == "interrupted":
                break
        self.model_ = self.models_[0]
        self.history_ = history
        return self

    def check_params(self) -> None:
        _checks.positive_int("hidden_size", self.hidden_size)
        _checks.positive_int("num_layers", self.num_layers)
        Cell.named(self.cell)  # ValueError naming the known cells
        _checks.boolean("bidirectional", self.bidirectional)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        _checks.positive_int("window", self.window)
        if self.stride is not None:
            _checks.positive_int("stride", self.stride)
        _checks.probability("dropout", self.dropout)
        _checks.probability("zoneout", self.zoneout)
        if self.zoneout and self.cell == "rnn":
            raise ValueError('zoneout needs cell "lstm" or "gru", got cell "rnn"')
        _checks.positive_int("epochs", self.epochs)
        _checks.positive_int("batch_size", self.batch_size)
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        _checks.probability("val_fraction", self.val_fraction)
        if self.patience is not None:
            _checks.positive_int("patience", self.patience)
            if not self.val_fraction:
                raise ValueError(
                    "patience needs a validation set: set val_fraction > 0 (e.g. 0.2) as well"
                )
        _checks.positive_int("ensemble", self.ensemble)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        _checks.boolean("quiet", self.quiet)
        _checks.float_dtype(self.dtype)

    def _build_model(self, input_size: int, num_classes: int, seed: int) -> SequenceClassifier:
        options = {"zoneout": self.zoneout} if self.zoneout else {}
        return SequenceClassifier(
            input_size,
            self.hidden_size,
            num_classes,
            self.num_layers,
            cell=self.cell,
            bidirectional=self.bidirectional,
            pooling=self.pooling,
            dropout=self.dropout,
            dtype=_checks.float_dtype(self.dtype),
            seed=seed,
            **options,
        )

    def _transform(self, series: list[np.ndarray]) -> list[np.ndarray]:
        """Clean series (T_n, C) -> network inputs: normalised, then cut into windows."""
        stats = (self.mean_, self.scale_) if self.normalize == "global" else (None, None)
        normalised = inputs.normalise(series, self.normalize, *stats)
        stride = self.stride or self.window
        return [inputs.network_steps(x, self.window, stride) for x in normalised]

    # -- predicting -----------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, number of classes), columns in the order of ``classes_``."""
        self._check_fitted()
        series = inputs.as_series(X)
        C = series[0].shape[1]
        if C != self.n_features_in_:
            raise ValueError(
                f"X has {C} channels, but this {type(self).__name__} was fitted on "
                f"{self.n_features_in_}"
            )
        prepared = self._transform(series)
        dtype = _checks.float_dtype(self.dtype)
        # Batches of similar lengths waste little work on padding; masking makes the order moot.
        order = np.argsort([len(x) for x in prepared], kind="stable")
        proba = np.empty((len(prepared), len(self.classes_)), dtype=np.float64)
        for start in range(0, len(order), _PREDICT_BATCH):
            idx = order[start : start + _PREDICT_BATCH]
            x, lengths = pad_sequences([prepared[i] for i in idx], dtype=dtype)  # (T, B, C)
            proba[idx] = np.mean(
                [model.predict_proba(x, lengths=lengths) for model in self.models_], axis=0
            )
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each series, as labels from ``classes_`` (N,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)`` (scikit-learn's convention for classifiers). Labels never seen
        in training are allowed: they just count as errors."""
        pred = self.predict(X)
        labels = inputs.as_labels(y, len(pred))
        return float(np.mean(_equal(labels, pred)))

    def evaluate(self, X: Any, y: Any) -> dict[str, Any]:
        """Accuracy, macro-F1 and the confusion matrix on ``(X, y)``.

        Returns a dict: ``accuracy`` and ``macro_f1`` (floats); ``confusion_matrix``, counts
        (K, K) with rows the true and columns the predicted class; ``classes``, the K labels of
        its rows and columns: ``classes_``, followed by any label of ``y`` unseen in training.
        """
        pred = self.predict(X).tolist()
        labels = inputs.as_labels(y, len(pred)).tolist()
        known = self.classes_.tolist()
        names = known + [c for c in dict.fromkeys(labels) if not _member(c, known)]
        index = {_key(c): i for i, c in enumerate(names)}
        true_ids = [index[_key(c)] for c in labels]
        pred_ids = [index[_key(c)] for c in pred]
        ids = list(range(len(names)))
        return {
            "accuracy": metrics.accuracy(true_ids, pred_ids),
            "macro_f1": metrics.macro_f1(true_ids, pred_ids, labels=ids),
            "confusion_matrix": metrics.confusion_matrix(true_ids, pred_ids, labels=ids),
            "classes": names,
        }

    # -- saving ---------------------------------------------------------------------------------

    def _get_state(self) -> dict[str, Any]:
        classes = self.classes_.tolist()
        if not all(isinstance(c, (str, int, float, bool)) for c in classes):
            raise TypeError(
                "classes_ must be strings, ints, floats or bools to be saved, got "
                f"{sorted({type(c).__name__ for c in classes})}"
            )
        return {
            "classes": classes,
            "classes_dtype": self.classes_.dtype.str,
            "n_features_in": int(self.n_features_in_),
            "mean": self.mean_,
            "scale": self.scale_,
            "params": self.models_[0].state_dict(),  # the only or first network
            "more_params": {str(k): m.state_dict() for k, m in enumerate(self.models_) if k},
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        dtype = np.dtype(state["classes_dtype"])
        classes = np.empty(len(state["classes"]), dtype=dtype)
        classes[:] = state["classes"]
        more = state.get("more_params", {})
        if sorted(more, key=int) != [str(k) for k in range(1, self.ensemble)]:
            raise ValueError(
                f"the file holds {1 + len(more)} network(s), but ensemble is {self.ensemble}"
            )
        self.models_ = []
        for k, params in enumerate(
            [state["params"], *(more[str(k)] for k in range(1, self.ensemble))]
        ):
            model = self._build_model(
                state["n_features_in"] * self.window, len(classes), self.seed + k
            )
            model.load_state_dict(params)
            model.eval()
            self.models_.append(model)
        self.classes_ = classes
        self.n_features_in_ = state["n_features_in"]
        self.mean_ = state["mean"]
        self.scale_ = state["scale"]
        self.history_ = {}
        self.model_ = self.models_[0]


def _cosine(total: int) -> Callable[[Any], WarmupCosine]:
    """The "cosine" schedule: the learning rate decays along half a cosine from ``lr`` at the
    first step to 0 after ``total`` steps (:class:`~rnnkit.optim.WarmupCosine`)."""
    return lambda optimizer: WarmupCosine(optimizer, 0, max(total, 1))


def member_checkpoint(path: str | Path | None, member: int) -> Path | None:
    """The checkpoint of an ensemble's ``member``-th network: ``path`` itself for the first,
    ``<stem>-<member><suffix>`` beside it for the others."""
    if path is None:
        return None
    path = Path(path)
    return path if member == 0 else path.with_name(f"{path.stem}-{member}{path.suffix}")


def _split(targets: np.ndarray, fraction: float, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): ``fraction`` of each class held out, at least one series
    in all when ``fraction`` > 0, and at least one of each class left for training."""
    if not fraction:
        return np.arange(len(targets)), np.array([], dtype=np.intp)
    rng = np.random.default_rng(seed)
    val = []
    for k in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == k))
        take = min(round(fraction * len(members)), len(members) - 1)
        val.extend(members[:take].tolist())
    if not val:
        largest = np.argmax(np.bincount(targets))
        members = np.flatnonzero(targets == largest)
        if len(members) < 2:
            raise ValueError("val_fraction leaves no series to train on")
        val.append(int(rng.choice(members)))
    val_idx = np.sort(np.array(val, dtype=np.intp))
    train_idx = np.setdiff1d(np.arange(len(targets)), val_idx)
    return train_idx, val_idx


# -- comparing labels of any type ---------------------------------------------------------------


def _key(label: Any) -> tuple[str, Any]:
    """A dict key under which equal labels of any kind meet and others stay apart ("1" != 1)."""
    return ("s", label) if isinstance(label, str) else ("v", label)


def _member(label: Any, labels: list[Any]) -> bool:
    key = _key(label)
    return any(_key(c) == key for c in labels)


def _equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise label equality that never fails on mismatched kinds (str vs int: False)."""
    return np.array([_key(u) == _key(v) for u, v in zip(a.tolist(), b.tolist())], dtype=bool)
