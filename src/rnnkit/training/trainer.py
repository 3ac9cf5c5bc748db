"""The training loop: steps and epochs over a data source, gradient accumulation, clipping,
schedules, validation with early stopping, metric logs, callbacks, truncated BPTT with carried
states, checkpoints that resume bit for bit, and Ctrl-C that saves before it stops.

(Over 500 lines because these parts are one loop over one shared state: the model, optimiser,
schedule, RNGs, counters, carried state and log, which a checkpoint captures together to
resume bit for bit.)

One optimiser step::

    for each of `accumulate` batches:                       (a stateful run carries its state)
        out, state_T, cache = model.forward(x, state, lengths)
        loss, dout = loss_fn(out, y, mask=mask)
        _, _, grads = model.backward(dout, cache)             (no gradient across chunk borders)
    grads /= accumulate
    if the loss or a gradient is not finite: skip the step, count it, never apply it
    norm = clip_grad_norm(grads, clip_norm); optimizer.step(grads); schedule.step()
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks, checkpoint, losses
from rnnkit.data.batching import Batch, reset_rows
from rnnkit.optim.clip import clip_grad_norm
from rnnkit.optim.optimizers import Optimizer
from rnnkit.optim.schedules import ReduceLROnPlateau
from rnnkit.training.metric_log import MetricLog, decode_columns, encode_columns
from rnnkit.training.resume_checks import check_trainer_tree

LOSSES = {
    "cross_entropy": losses.cross_entropy,
    "bce_with_logits": losses.bce_with_logits,
    "mse": losses.mse,
    "mae": losses.mae,
    "huber": losses.huber,
}
KIND = "rnnkit.trainer"
#: 2: the metric columns as arrays (:func:`~rnnkit.training.metric_log.encode_columns`); version
#: 1 checkpoints (plain lists) are still read.
VERSION = 2


class TrainingError(RuntimeError):
    """Training cannot go on (for example: the loss keeps being non-finite)."""


@dataclass
class TrainResult:
    """How :meth:`Trainer.fit` ended."""

    step: int  # optimiser steps taken in total (including before a resume)
    epoch: int  # completed epochs
    stopped: str  # "steps", "epochs", "early_stopping" or "interrupted"
    best: float | None  # best monitored validation loss, if validated
    history: dict[str, list] = field(default_factory=dict)  # the metrics, column by column


@dataclass
class _Progress:
    """Everything about where a run is that a checkpoint must hold to resume exactly."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # index of the next batch in the current epoch's order
    order: np.ndarray | None = None  # the current epoch's order
    nonfinite: int = 0  # consecutive skipped steps
    skipped: int = 0  # skipped steps in total
    best: float | None = None
    bad: int = 0  # validations without improvement
    best_params: dict[str, np.ndarray] | None = None
    first_loss: float | None = None  # the loss of the first step applied (for `divergence`)


class Trainer:
    """Train a model built from rnnkit blocks.

    Args:
        model: anything with ``forward(x, state, lengths) -> (out, state_T, cache)``,
            ``backward(dout, cache, dstate) -> (dx, dstate0, grads)``, ``parameters()``,
            ``state_dict()``, ``load_state_dict()``, ``train()``/``eval()`` and
            ``rng_state()``/``set_rng_state()`` (every :class:`rnnkit.nn.Model`).
        optimizer: an :mod:`rnnkit.optim` optimiser over ``model.parameters()``.
        loss: a name in :data:`LOSSES` or a function ``(out, y, mask=None, reduction=...) ->
            (loss, dout)`` like those of :mod:`rnnkit.losses`.
        schedule: an :mod:`rnnkit.optim` schedule, stepped after every optimiser step
            (``ReduceLROnPlateau`` instead after every validation, with the validation loss).
        clip_norm: clip the global gradient norm to this value (None: no clipping).
        accumulate: batches whose gradients are averaged into one optimiser step.
        stateful: carry each batch's final state into the next (truncated BPTT on a
            :class:`~rnnkit.data.StreamData`), zeroing the rows a batch marks in ``reset``.
        max_nonfinite: this many non-finite or divergent steps in a row stop training with
            :class:`TrainingError` (each one is skipped, never applied, and logged).
        divergence: a step whose loss is finite but above this many times the loss of the
            first step applied counts as divergent, like a non-finite one (None: no such check).
            A model that trains never gets there; one that diverges (a learning rate far too
            high) does within a few steps.
        log: a ``.csv`` or ``.jsonl`` path for the metrics, or None.
        log_every: log the training loss every this many steps.
        checkpoint: a path for checkpoints (written atomically), or None. With a path, the
            trainer checkpoints after every validation, at the end of :meth:`fit` and on
            Ctrl-C, plus as ``checkpoint_every`` and ``checkpoint_seconds`` say; a run killed
            at any moment (even during a write) resumes from the last one and ends bit for bit
            as the uninterrupted run would.
        checkpoint_every: also checkpoint every this many optimiser steps.
        checkpoint_seconds: also checkpoint after the first step that ends at least this many
            seconds after the last checkpoint (or the start), so a crash loses at most about
            that much work (None: no timed checkpoints; 0: after every step).
        callbacks: functions ``callback(event, trainer, row)`` called with event "step",
            "validation", "skip", "checkpoint" or "end" and the row logged for it.
        seed: seeds the trainer's generator (the order of the batches).
        config: a JSON-able dict stored in checkpoints (what built the model, say).

    Example:
        >>> import numpy as np, rnnkit
        >>> from rnnkit.data import SequenceData
        >>> rng = np.random.default_rng(0)
        >>> xs = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, 9, 40)]
        >>> data = SequenceData(xs, [x.sum(axis=0) for x in xs], batch_size=8)
        >>> model = rnnkit.SequenceRegressor(2, 8, output_size=2, seed=0)
        >>> trainer = rnnkit.Trainer(model, rnnkit.optim.Adam(model.parameters(), lr=1e-2), "mse")
        >>> result = trainer.fit(data, epochs=3)
        >>> result.step, result.stopped
        (15, 'epochs')
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        loss: str | Callable = "mse",
        *,
        schedule: Any = None,
        clip_norm: float | None = None,
        accumulate: int = 1,
        stateful: bool = False,
        max_nonfinite: int = 5,
        divergence: float | None = 1e3,
        log: str | Path | None = None,
        log_every: int = 1,
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = 60.0,
        callbacks: Iterable[Callable] = (),
        seed: Any = 0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(
                    f"loss must be one of {sorted(LOSSES)} or a function, got {loss!r}"
                )
            loss = LOSSES[loss]
        elif not callable(loss):
            raise TypeError(f"loss must be a name or a function, got {type(loss).__name__}")
        if clip_norm is not None and not (isinstance(clip_norm, (int, float)) and clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or None, got {clip_norm!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss
        self.schedule = schedule
        self.clip_norm = clip_norm
        self.accumulate = _checks.positive_int("accumulate", accumulate)
        self.stateful = _checks.boolean("stateful", stateful)
        self.max_nonfinite = _checks.positive_int("max_nonfinite", max_nonfinite)
        if divergence is not None and not (
            isinstance(divergence, (int, float))
            and not isinstance(divergence, bool)
            and math.isfinite(divergence)
            and divergence > 1
        ):
            raise ValueError(f"divergence must be a number > 1 or None, got {divergence!r}")
        self.divergence = divergence
        self.log = None if log is None else MetricLog(log)
        self.log_every = _checks.positive_int("log_every", log_every)
        self.checkpoint_path = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = (
            None
            if checkpoint_every is None
            else _checks.positive_int("checkpoint_every", checkpoint_every)
        )
        self.checkpoint_seconds = (
            None
            if checkpoint_seconds is None
            else _checks.nonnegative("checkpoint_seconds", checkpoint_seconds)
        )
        self.callbacks = list(callbacks)
        self.rng = _checks.rng(seed)
        self.config = dict(config or {})
        self.progress = _Progress()
        self.state: Any = None  # the carried state of a stateful run
        self.history: dict[str, list] = {}
        self._start = time.perf_counter()
        self._last_checkpoint = time.monotonic()
        self._interrupt = False

    # -- one step -------------------------------------------------------------------------------

    def _forward_backward(self, batch: Batch) -> tuple[float, dict[str, np.ndarray] | None, float]:
        """Loss and gradients of one batch (None when the model's output is not finite);
        updates the carried state of a stateful run."""
        state = None
        if self.stateful and self.state is not None:
            state = self.state if batch.reset is None else reset_rows(self.state, batch.reset)
        out, state_T, cache = self.model.forward(batch.x, state, batch.lengths)
        if not np.isfinite(out).all():
            return math.nan, None, _count(batch)
        loss, dout = self.loss_fn(out, batch.y, mask=batch.mask)
        _, _, grads = self.model.backward(dout, cache)  # dstate=None: no BPTT across batches
        if self.stateful:
            self.state = state_T
        return float(loss), grads, _count(batch)

    def _step(self, batches: list[Batch]) -> dict[str, Any]:
        """One optimiser step from ``accumulate`` batches; returns the row to log."""
        start = time.perf_counter()
        state_before = self.state
        total, grads, n = 0.0, {}, 0.0
        for batch in batches:
            loss, g, count = self._forward_backward(batch)
            total += loss
            n += count
            if g is None:
                break
            grads = g if not grads else {k: grads[k] + g[k] for k in grads}
        else:
            if len(batches) > 1:
                grads = {k: v / len(batches) for k, v in grads.items()}
        loss = total / len(batches)
        p = self.progress
        finite = math.isfinite(loss) and all(np.isfinite(v).all() for v in grads.values())
        runaway = (
            finite
            and self.divergence is not None
            and p.first_loss is not None
            and loss > self.divergence * p.first_loss
        )
        if not finite or runaway:
            self.state = state_before  # a skipped step leaves no trace, not even in the state
            p.nonfinite += 1
            p.skipped += 1
            what = (
                f"loss {loss:.4g} above {self.divergence:g} times the first step's"
                if runaway
                else "non-finite loss or gradient"
            )
            return self._row("skip", loss=loss, note=f"{what} ({p.nonfinite} in a row): skipped")
        p.nonfinite = 0
        if p.first_loss is None and loss > 0:
            p.first_loss = loss
        norm = None
        if self.clip_norm is not None:
            norm = clip_grad_norm(grads, self.clip_norm)
        lr = self.optimizer.lr
        self.optimizer.step(grads)
        p.step += 1
        if self.schedule is not None and not isinstance(self.schedule, ReduceLROnPlateau):
            self.schedule.step()
        now = time.perf_counter()
        return self._row(
            "train",
            loss=loss,
            lr=lr,
            grad_norm=norm,
            seconds=now - self._start,
            examples_per_s=n / max(now - start, 1e-9),
        )

    # -- evaluation -----------------------------------------------------------------------------

    def evaluate(self, data: Any) -> dict[str, float]:
        """Mean loss over every target of ``data`` (a source, or an iterable of batches), in
        evaluation mode, from a zero state; the model's mode is restored afterwards."""
        batches = (
            (data.batch(data.order(None), i) for i in range(len(data)))
            if hasattr(data, "batch")
            else data
        )
        training = self.model.training
        self.model.eval()
        total, count, state = 0.0, 0.0, None
        try:
            for batch in batches:
                if self.stateful and state is not None and batch.reset is not None:
                    state = reset_rows(state, batch.reset)
                out, state_T, _ = self.model.forward(
                    batch.x, state if self.stateful else None, batch.lengths
                )
                loss, _ = self.loss_fn(out, batch.y, mask=batch.mask, reduction="sum")
                total += float(loss)
                count += _count(batch)
                state = state_T
        finally:
            self.model.train(training)
        return {"loss": total / count if count else float("nan")}

    # -- the loop -------------------------------------------------------------------------------

    def fit(
        self,
        train: Any,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        val: Any = None,
        val_every: int | None = None,
        patience: int | None = None,
        restore_best: bool = True,
    ) -> TrainResult:
        """Train until ``steps`` optimiser steps in total or ``epochs`` epochs in total.

        Args:
            train: a data source (:class:`~rnnkit.data.SequenceData`,
                :class:`~rnnkit.data.StreamData`).
            epochs, steps: when to stop (at least one); counted from the start of the run, so
                a resumed run stops where the uninterrupted one would.
            val: a data source to validate on, or None.
            val_every: validate every this many steps (default: at the end of every epoch).
            patience: early stopping after this many validations without improvement.
            restore_best: with early stopping, end with the best validated parameters.
        """
        if epochs is None and steps is None:
            raise ValueError("fit needs epochs or steps (or both)")
        if epochs is not None:
            _checks.positive_int("epochs", epochs)
        if steps is not None:
            _checks.positive_int("steps", steps)
        if len(train) == 0:
            raise ValueError("train has no batches")
        p = self.progress
        self.model.train()
        self._last_checkpoint = time.monotonic()
        # A resumed run that had already stopped early stays stopped (more epochs do not undo
        # the patience that ran out).
        stopped = "early_stopping" if patience is not None and p.bad >= patience else None
        with _deferred_interrupt(self):
            while stopped is None:
                if p.order is not None and p.batch >= len(train):
                    # An epoch whose batches are all done ends here, also when its last step
                    # was checkpointed (or interrupted) before the epoch was counted.
                    p.epoch += 1
                    p.order = None
                    if val is not None and val_every is None:
                        stopped = self._validate(val, patience)
                        if stopped is None:
                            self._checkpoint_now()
                    if stopped is None and self._interrupt:
                        stopped = "interrupted"
                    if stopped is not None:
                        break
                if epochs is not None and p.epoch >= epochs:
                    stopped = "epochs"
                    break
                if p.order is None:
                    p.order, p.batch = train.order(self.rng), 0
                while p.batch < len(train):
                    if steps is not None and p.step >= steps:
                        stopped = "steps"
                        break
                    group = [
                        train.batch(p.order, i)
                        for i in range(p.batch, min(p.batch + self.accumulate, len(train)))
                    ]
                    p.batch += len(group)
                    row = self._step(group)
                    kind = row["kind"]
                    if kind == "skip" or p.step % self.log_every == 0:
                        self._record(row)
                    self._emit("skip" if kind == "skip" else "step", row)
                    if kind == "skip" and p.nonfinite >= self.max_nonfinite:
                        raise TrainingError(
                            f"training diverged: the loss or the gradients were non-finite"
                            f"{self._divergence_note()} in {p.nonfinite} steps in a row (step "
                            f"{p.step}, learning rate {self.optimizer.lr:g}); nothing of them "
                            "was applied. Lower the learning rate, clip the gradients "
                            "(clip_norm) or check the data for NaN/Inf."
                        )
                    validated = (
                        val is not None
                        and val_every is not None
                        and kind == "train"
                        and p.step % val_every == 0
                    )
                    if validated:
                        stopped = self._validate(val, patience)
                    if (
                        stopped is None
                        and kind == "train"
                        and (validated or self._checkpoint_due())
                    ):
                        self._checkpoint_now()
                    if stopped is None and self._interrupt:
                        stopped = "interrupted"
                    if stopped is not None:
                        break
        if stopped == "early_stopping" and restore_best and p.best_params is not None:
            self.model.load_state_dict(p.best_params)
        if self.checkpoint_path is not None:
            self.save_checkpoint()
        result = TrainResult(p.step, p.epoch, stopped, p.best, self.history)
        self._emit("end", {"step": p.step, "epoch": p.epoch, "kind": "end", "note": stopped})
        return result

    def _checkpoint_due(self) -> bool:
        """Whether the step just taken should be checkpointed (by count or by time)."""
        if self.checkpoint_path is None:
            return False
        if self.checkpoint_every and self.progress.step % self.checkpoint_every == 0:
            return True
        return (
            self.checkpoint_seconds is not None
            and time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds
        )

    def _checkpoint_now(self) -> None:
        if self.checkpoint_path is not None:
            self.save_checkpoint()

    def _divergence_note(self) -> str:
        if self.divergence is None or self.progress.first_loss is None:
            return ""
        return f" or above {self.divergence:g} times the first step's loss"

    def _validate(self, val: Any, patience: int | None) -> str | None:
        """Validate, log, step a plateau schedule, track the best; "early_stopping" or None."""
        p = self.progress
        loss = self.evaluate(val)["loss"]
        row = self._row(
            "val", loss=loss, lr=self.optimizer.lr, seconds=time.perf_counter() - self._start
        )
        self._record(row)
        self._emit("validation", row)
        if isinstance(self.schedule, ReduceLROnPlateau):
            self.schedule.step(loss)
        if p.best is None or loss < p.best:
            p.best, p.bad = loss, 0
            if patience is not None:
                p.best_params = self.model.state_dict()
            return None
        p.bad += 1
        if patience is not None and p.bad >= patience:
            return "early_stopping"
        return None

    # -- rows, logs, callbacks ------------------------------------------------------------------

    def _row(self, kind: str, **values: Any) -> dict[str, Any]:
        row = {"step": self.progress.step, "epoch": self.progress.epoch, "kind": kind}
        row.update({k: v for k, v in values.items() if v is not None})
        return row

    def _record(self, row: dict[str, Any]) -> None:
        """Append a row to the history (columns stay aligned: None where a row has no value)
        and to the log."""
        rows = len(next(iter(self.history.values()))) if self.history else 0
        for key in row:
            self.history.setdefault(key, [None] * rows)
        for key in self.history:
            self.history[key].append(row.get(key))
        if self.log is not None:
            self.log.write(row)

    def _emit(self, event: str, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(event, self, row)

    # -- pickling -------------------------------------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy's optimiser must update the copy's model. :mod:`pickle` keeps the arrays the
        two share shared, but ``joblib.load`` gives each reference to an array its own copy
        (joblib 1.6), which would leave the optimiser stepping arrays the model no longer holds:
        so an rnnkit optimiser is bound again (:meth:`~rnnkit.optim.Optimizer.rebind`; schedules
        and callbacks that hold it keep it) to the model's arrays, with its state as it was."""
        self.__dict__.update(state)
        opt, live = self.optimizer, self.model.parameters()
        if isinstance(opt, Optimizer) and set(opt.param_names) <= set(live):
            opt.rebind({name: live[name] for name in opt.param_names})

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write everything needed to resume exactly, atomically (see :mod:`rnnkit.checkpoint`)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint needs a path (or the trainer's checkpoint=...)")
        p = self.progress
        state = None
        if self.state is not None:
            parts = self.state if isinstance(self.state, tuple) else (self.state,)
            state = {f"s{i}": s for i, s in enumerate(parts)}
        tree = {
            "kind": KIND,
            "version": VERSION,
            "config": self.config,
            "model": {"class": type(self.model).__name__, "params": self.model.state_dict()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "rng": {"trainer": self.rng.bit_generator.state, "model": self.model.rng_state()},
            "progress": {
                "step": p.step,
                "epoch": p.epoch,
                "batch": p.batch,
                "order": p.order,
                "nonfinite": p.nonfinite,
                "skipped": p.skipped,
                "best": p.best,
                "bad": p.bad,
                "best_params": p.best_params,
                "first_loss": p.first_loss,
            },
            "state": state,
            "history": encode_columns(self.history),
        }
        checkpoint.save(path, tree)
        self._last_checkpoint = time.monotonic()
        self._emit(
            "checkpoint",
            {"step": p.step, "epoch": p.epoch, "kind": "checkpoint", "note": str(path)},
        )
        return path

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore a checkpoint written by :meth:`save_checkpoint` into this trainer, its model,
        optimiser and schedule; every part is checked before anything changes. Returns the
        stored ``config``. The metrics log, if any, loses the rows of later steps."""
        tree = checkpoint.load(path)
        # every field checked before anything is used: the file is untrusted input
        check_trainer_tree(tree, path, bit_generator=type(self.rng.bit_generator).__name__)
        model_class = tree["model"]["class"]
        if model_class != type(self.model).__name__:
            raise checkpoint.CheckpointError(
                f"{path}: holds a {model_class}, but this trainer's model is a "
                f"{type(self.model).__name__}"
            )
        if (tree["schedule"] is None) != (self.schedule is None):
            raise checkpoint.CheckpointError(
                f"{path}: {'has no' if tree['schedule'] is None else 'has a'} schedule, this "
                f"trainer {'has one' if self.schedule is not None else 'has none'}"
            )
        # Everything that can refuse goes first, on copies, so a mismatch changes nothing.
        before = (
            self.model.state_dict(),
            self.optimizer.state_dict(),
            None if self.schedule is None else self.schedule.state_dict(),
            self.model.rng_state(),
        )
        try:
            self.model.load_state_dict(tree["model"]["params"])
            self.optimizer.load_state_dict(tree["optimizer"])
            if self.schedule is not None:
                self.schedule.load_state_dict(tree["schedule"])
            self.model.set_rng_state(tree["rng"]["model"])
        except (ValueError, TypeError, KeyError) as err:
            self.model.load_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
            if self.schedule is not None:
                self.schedule.load_state_dict(before[2])
            self.model.set_rng_state(before[3])
            raise checkpoint.CheckpointError(f"{path}: does not fit this trainer: {err}") from err
        self.rng.bit_generator.state = tree["rng"]["trainer"]
        g = tree["progress"]
        self.progress = _Progress(
            g["step"],
            g["epoch"],
            g["batch"],
            g["order"],
            g["nonfinite"],
            g["skipped"],
            g["best"],
            g["bad"],
            g["best_params"],
            g.get("first_loss"),  # absent from checkpoints of rnnkit 0.1.0
        )
        s = tree["state"]
        self.state = (
            None
            if s is None
            else (s["s0"] if len(s) == 1 else tuple(s[f"s{i}"] for i in range(len(s))))
        )
        self.history = decode_columns(tree["history"])
        if self.log is not None:
            self.log.keep_rows(sum(1 for _ in next(iter(self.history.values()), [])))
        return tree["config"]


def _count(batch: Batch) -> float:
    """The number of targets a batch's mean loss averages over."""
    if batch.mask is None:
        return float(batch.y.size)
    return float(np.broadcast_to(batch.mask, batch.y.shape[: np.ndim(batch.mask)]).sum())


class _deferred_interrupt:
    """While training, the first Ctrl-C asks the loop to stop after the current step (it then
    checkpoints and returns); a second one interrupts at once. Outside the main thread, Ctrl-C
    is left alone."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous = None

    def _handler(self, signum, frame):
        if self.trainer._interrupt:
            raise KeyboardInterrupt
        self.trainer._interrupt = True

    def __enter__(self):
        self.trainer._interrupt = False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
