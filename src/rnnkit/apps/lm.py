r"""Character-level language modelling: :class:`CharLM` learns to predict the next character of
a text, then scores new text and writes text of its own.

Quality is measured in nats (or bits) per character: for a text :math:`x_1 \dots x_N` the model
predicts each character from those before it,

.. math::

    \mathrm{nats/char} = -\frac{1}{N - 1} \sum_{t=1}^{N-1} \log p(x_{t+1} \mid x_{\le t}),
    \qquad \mathrm{bits/char} = \frac{\mathrm{nats/char}}{\ln 2},
    \qquad \mathrm{perplexity} = e^{\mathrm{nats/char}}.

A model that knows nothing but the character frequencies scores the unigram entropy
:math:`-\sum_c f_c \log_2 f_c` bits/char (about 4.4 for English prose); a good character LSTM
on prose scores well under 2.

(Over 500 lines because :class:`CharLM` is one estimator whose training, scoring, sampling and
saving all read the same vocabulary and network, and the helpers below it serve it alone.)

Shapes: T = time steps, B = batch rows, V = vocabulary size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks, checkpoint, losses
from rnnkit.apps.estimator import Estimator, train_model
from rnnkit.cells.base import Cell
from rnnkit.data.batching import StreamData, reset_rows
from rnnkit.data.text import UNKNOWN_ID, Vocabulary
from rnnkit.nn.models import LanguageModel
from rnnkit.training.metric_log import decode_columns, encode_columns

#: The longest sample :meth:`CharLM.sample` writes: 10 million characters take some minutes.
MAX_SAMPLE_LENGTH = 10_000_000


class CharLM(Estimator):
    """A character-level language model: embedding, a stack of LSTM (or GRU, or plain RNN)
    layers and a softmax over the characters, trained with truncated backpropagation through
    time on one long text.

    Args:
        hidden_size: units per recurrent layer.
        num_layers: stacked recurrent layers.
        embedding_dim: size of the character embedding.
        cell: "lstm", "gru" or "rnn".
        dropout: dropout probability on the embedding, between layers and before the softmax.
        bptt: characters per truncated-BPTT chunk (the state is carried across chunks, the
            gradient is not).
        batch_size: parallel rows the text is cut into.
        lr: Adam's learning rate.
        epochs: passes over the training text (ignored when ``steps`` is set).
        steps: optimiser steps to train for, across epochs as needed; None: train ``epochs``.
        val_fraction: the last part of the text held out for validation, in [0, 1).
        clip_norm: global gradient-norm clipping (None: none).
        seed: initialisation (and dropout) seed; None for fresh entropy.
        dtype: "float32" or "float64".
        quiet: no progress report.

    Attributes (after :meth:`fit`):
        vocabulary_: the :class:`~rnnkit.data.text.Vocabulary` of the text given to ``fit``.
        model_: the trained :class:`~rnnkit.LanguageModel`.
        char_counts_: (V,) how often each id occurs in the training part of the text.
        history_: the trainer's metrics, column by column (``step``, ``kind``, ``loss`` ...;
            training loss and ``val`` rows in nats/char).
        val_loss_: the final validation loss in nats/char (None without validation).
        n_steps_: optimiser steps taken in total (including those before a resume).

    Example:
        >>> from rnnkit.apps.lm import CharLM
        >>> lm = CharLM(hidden_size=16, num_layers=1, embedding_dim=8, bptt=16, batch_size=4,
        ...             lr=0.03, steps=40, quiet=True).fit("abcd" * 100)
        >>> lm.sample("ab", length=6, top_k=1)
        'cdabcd'
        >>> lm.evaluate("abcdabcd")["bits_per_char"] < 0.5
        True
    """

    def __init__(
        self,
        *,
        hidden_size: int = 256,
        num_layers: int = 2,
        embedding_dim: int = 64,
        cell: str = "lstm",
        dropout: float = 0.1,
        bptt: int = 100,
        batch_size: int = 32,
        lr: float = 2e-3,
        epochs: int = 1,
        steps: int | None = None,
        val_fraction: float = 0.05,
        clip_norm: float | None = 1.0,
        seed: int | None = 0,
        dtype: str = "float32",
        quiet: bool = False,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding_dim = embedding_dim
        self.cell = cell
        self.dropout = dropout
        self.bptt = bptt
        self.batch_size = batch_size
        self.lr = lr
        self.epochs = epochs
        self.steps = steps
        self.val_fraction = val_fraction
        self.clip_norm = clip_norm
        self.seed = seed
        self.dtype = dtype
        self.quiet = quiet

    # -- training -------------------------------------------------------------------------------

    def fit(
        self,
        text: str,
        *,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        checkpoint_seconds: float | None = 60.0,
        log: str | Path | None = None,
        callbacks: tuple = (),
    ) -> CharLM:
        """Learn to predict ``text`` one character after another.

        The vocabulary is every character of ``text``. The last ``val_fraction`` of the text is
        held out: the model validates on it at the end of every epoch and once when training
        ends (``val_loss_``); the rest is cut into ``batch_size`` rows read in chunks of
        ``bptt`` characters, the state carried from one chunk to the next.

        Args:
            text: the training text.
            checkpoint: a path to checkpoint the run to (after every validation, every
                ``checkpoint_seconds``, at the end and on Ctrl-C: see :class:`~rnnkit.Trainer`).
            resume: continue from ``checkpoint`` if that file exists (the same text and
                parameters are expected: the step count, optimiser and carried state go on
                from where they were, so ``steps``/``epochs`` count from the start of the first
                run); without the file, training starts afresh.
            checkpoint_seconds: the longest time between two checkpoints (None: no timed ones).
            log: a ``.csv`` or ``.jsonl`` path for the metrics.
            callbacks: :class:`~rnnkit.Trainer` callbacks, ``callback(event, trainer, row)``.

        Returns:
            self.
        """
        self.check_params()
        text = _check_text(text)
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path> to resume from")
        vocab = Vocabulary.from_text(text)
        ids = vocab.encode(text)  # (N,)
        n_val = int(len(ids) * self.val_fraction)
        n_train = len(ids) - n_val
        if n_train < self.batch_size + 1:
            raise ValueError(
                f"text is too short to train on: {n_train} training characters for "
                f"batch_size={self.batch_size} rows (each row needs 2); lower batch_size"
            )
        if self.val_fraction > 0 and n_val < 2:
            raise ValueError(
                f"val_fraction={self.val_fraction} of {len(ids)} characters holds out {n_val}; "
                "validation needs at least 2: give more text or set val_fraction=0"
            )
        train_ids, val_ids = ids[:n_train], ids[n_train:]
        train = StreamData(train_ids, self.batch_size, self.bptt)
        val = self._stream(val_ids) if n_val else None

        model = self._build_model(len(vocab))
        config = self.training_config(vocabulary=vocab.chars)
        if resume and Path(checkpoint).exists():
            stored = _checkpoint_vocabulary(checkpoint)
            if stored is None:
                raise ValueError(f"checkpoint {checkpoint} is not a CharLM training checkpoint")
            if stored != vocab.chars:
                raise ValueError(
                    f"checkpoint {checkpoint} was trained on a text with a different vocabulary "
                    f"({len(stored)} characters, this text has {len(vocab.chars)}): resume with "
                    "the same text"
                )
        trainer = train_model(
            model,
            train,
            loss="cross_entropy",
            val=val,
            epochs=self.epochs if self.steps is None else None,
            steps=self.steps,
            lr=self.lr,
            clip_norm=self.clip_norm,
            stateful=True,
            seed=self.seed,
            checkpoint_path=checkpoint,
            checkpoint_seconds=checkpoint_seconds,
            resume=resume,
            log=log,
            quiet=self.quiet,
            desc=type(self).__name__,
            unit="char",
            config=config,
            callbacks=tuple(callbacks),
        )
        model.eval()
        self.vocabulary_ = vocab
        self.model_ = model
        self.char_counts_ = np.bincount(train_ids, minlength=len(vocab)).astype(np.int64)
        self.history_ = {k: list(v) for k, v in trainer.history.items()}
        self.n_steps_ = int(trainer.result.step)
        self.stopped_ = trainer.result.stopped  # "steps", "epochs" or "interrupted" (Ctrl-C)
        self.val_loss_ = None
        if val is not None:
            rows = self.history_.get("kind", [])
            if rows and rows[-1] == "val" and self.history_["step"][-1] == self.n_steps_:
                self.val_loss_ = float(self.history_["loss"][-1])  # validated at this very step
            else:
                total, count = self._nll(val)
                self.val_loss_ = total / count
        return self

    def check_params(self) -> None:
        for name in ("hidden_size", "num_layers", "embedding_dim", "bptt", "batch_size", "epochs"):
            _checks.positive_int(name, getattr(self, name))
        if self.steps is not None:
            _checks.positive_int("steps", self.steps)
        Cell.named(self.cell)  # ValueError naming the known cells
        _checks.probability("dropout", self.dropout)
        _positive_number("lr", self.lr)
        _checks.probability("val_fraction", self.val_fraction)
        if self.clip_norm is not None:
            _positive_number("clip_norm", self.clip_norm)
        _checks.rng(self.seed)  # type and sign
        _checks.float_dtype(self.dtype)
        _checks.boolean("quiet", self.quiet)

    def _build_model(self, vocab_size: int) -> LanguageModel:
        return LanguageModel(
            vocab_size,
            self.embedding_dim,
            self.hidden_size,
            self.num_layers,
            cell=self.cell,
            dropout=self.dropout,
            dtype=_checks.float_dtype(self.dtype),
            seed=self.seed,
        )

    def _stream(self, ids: np.ndarray) -> StreamData:
        """The stream used to score ids (validation, :meth:`evaluate`): every target exactly
        once, in up to ``batch_size`` rows of at least ``bptt`` characters each (so that few
        predictions start from a cold, zero state)."""
        rows = max(1, min(self.batch_size, (len(ids) - 1) // self.bptt))
        cuts = np.linspace(0, len(ids) - 1, rows + 1).astype(np.intp)
        # Consecutive parts share one character: the last input of one is the first of the next.
        parts = [ids[cuts[r] : cuts[r + 1] + 1] for r in range(rows)]
        return StreamData(parts, rows, self.bptt)

    # -- scoring --------------------------------------------------------------------------------

    def _nll(self, data: StreamData) -> tuple[float, int]:
        """Summed negative log-likelihood (nats) of the known targets of ``data``, and their
        number, in evaluation mode with the state carried across chunks."""
        total, count, state = 0.0, 0, None
        with self.model_.evaluation() as model:
            for i in range(len(data)):
                batch = data.batch(data.order(None), i)
                if state is not None:
                    state = reset_rows(state, batch.reset)
                logits, state, _ = model.forward(batch.x, state)  # (T, B, V)
                mask = batch.mask & (batch.y != UNKNOWN_ID)  # (T, B): no loss for unknowns
                loss, _ = losses.cross_entropy(logits, batch.y, mask=mask, reduction="sum")
                total += loss
                count += int(mask.sum())
        return total, count

    def evaluate(self, text: str) -> dict[str, Any]:
        """How well the model predicts ``text``, each character from those before it.

        Characters the vocabulary does not know (absent from the training text) cannot be
        predicted: they are left out of the averages and counted in ``unknown_chars``. As
        inputs they still feed the model (as the unknown id), so the characters after them are
        scored.

        Returns:
            ``nats_per_char``, ``bits_per_char``, ``perplexity`` (averages over the known
            characters predicted), ``chars`` (how many were predicted: every known character
            but the first of the text) and ``unknown_chars`` (characters of ``text`` the
            vocabulary does not know).
        """
        self._check_fitted()
        text = _check_text(text)
        if len(text) < 2:
            raise ValueError(
                "text must have at least 2 characters to score (one to read, one to predict), "
                f"got {len(text)}"
            )
        ids = self.vocabulary_.encode(text)  # (N,)
        total, count = self._nll(self._stream(ids))
        if count == 0:
            raise ValueError(
                "text has no character the model knows to predict: every character after the "
                "first is outside the vocabulary"
            )
        nats = total / count
        return {
            "nats_per_char": nats,
            "bits_per_char": nats / math.log(2),
            "perplexity": perplexity(nats),
            "chars": count,
            "unknown_chars": int((ids == UNKNOWN_ID).sum()),
        }

    def score(self, text: str) -> float:
        """Minus the nats per character of ``text`` (scikit-learn's convention: higher is
        better); see :meth:`evaluate`."""
        return -self.evaluate(text)["nats_per_char"]

    # -- generation -----------------------------------------------------------------------------

    def sample(
        self,
        prime: str = "",
        length: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: Any = None,
    ) -> str:
        r"""Write ``length`` characters that continue ``prime``.

        The prime is read by the model (characters it does not know as the unknown id); then
        each character is drawn from the model's next-character distribution, sharpened or
        flattened by the temperature and cut to the ``top_k`` most likely,

        .. math::

            p_c \propto \exp(z_c / \tau) \quad \text{for } c \text{ among the top } k,

        and fed back, the state carried along, in evaluation mode (no dropout). The unknown id
        is never drawn. Without a prime, the first character is drawn from the character
        frequencies of the training text.

        Args:
            prime: text to continue ("" for none).
            length: characters to write, from 0 to :data:`MAX_SAMPLE_LENGTH` (10 million,
                some minutes of sampling: more is almost certainly a typo).
            temperature: :math:`\tau > 0`: below 1 more conservative, above 1 more adventurous;
                towards 0 it approaches greedy decoding.
            top_k: draw only among the k most likely characters (1: greedy, deterministic;
                ties go to the lower id); None: among all.
            seed: an int, a ``numpy.random.Generator`` or None (fresh entropy).

        Returns:
            The ``length`` characters written, without the prime.
        """
        self._check_fitted()
        check_sampling(prime, length, temperature, top_k)
        rng = _checks.rng(seed)
        if length == 0:
            return ""
        vocab = self.vocabulary_
        out = np.zeros(length, dtype=np.intp)  # the ids written
        with self.model_.evaluation() as model:
            state = None
            if prime:
                logits, state, _ = model.forward(vocab.encode(prime)[:, None], state)  # (T, 1, V)
                z = logits[-1, 0].astype(np.float64)  # (V,)
            else:
                counts = self.char_counts_.astype(np.float64)
                with np.errstate(divide="ignore"):
                    z = np.log(counts)  # -inf for characters never seen in training
            for t in range(length):
                out[t] = _draw(z, temperature, top_k, rng)
                if t + 1 < length:
                    logits, state = model.step(out[t : t + 1], state)  # (1, V)
                    z = logits[0].astype(np.float64)
        return vocab.decode(out)

    # -- fitted state ---------------------------------------------------------------------------

    def _get_state(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary_.chars,
            "char_counts": self.char_counts_,
            "model": self.model_.state_dict(),
            "history": encode_columns(self.history_),
            "val_loss": self.val_loss_,
            "n_steps": self.n_steps_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        vocab = Vocabulary(state["vocabulary"])
        model = self._build_model(len(vocab))
        model.load_state_dict(state["model"])
        model.eval()
        counts = np.asarray(state["char_counts"])
        if counts.shape != (len(vocab),):
            raise ValueError(
                f"char_counts must have shape ({len(vocab)},) (the vocabulary size), "
                f"got {counts.shape}"
            )
        self.vocabulary_ = vocab
        self.model_ = model
        self.char_counts_ = counts
        self.history_ = decode_columns(state["history"])
        self.val_loss_ = state["val_loss"]
        self.n_steps_ = state["n_steps"]


def perplexity(nats: float) -> float:
    """:math:`e^{\\mathrm{nats/char}}`, inf where that overflows (a diverged model).

    Example:
        >>> from rnnkit.apps.lm import perplexity
        >>> round(perplexity(1.0), 4), perplexity(3.6e6)
        (2.7183, inf)
    """
    return math.inf if nats >= 709.0 else math.exp(nats)


def _draw(z: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One id from logits ``z`` (V,) at ``temperature``, among the ``top_k`` most likely,
    never the unknown id."""
    z = z.copy()
    z[UNKNOWN_ID] = -np.inf
    if top_k is not None and top_k < len(z) - 1:
        keep = np.argsort(-z, kind="stable")[:top_k]  # ties: the lower id first
        cut = np.full_like(z, -np.inf)
        cut[keep] = z[keep]
        z = cut
    # Shift before dividing, so a tiny temperature sends the others to -inf, not max to +inf.
    with np.errstate(over="ignore"):
        z = (z - z.max()) / temperature
    p = np.exp(z)  # the maximum gives exp(0) = 1: never all zero
    cdf = np.cumsum(p)
    u = rng.random() * cdf[-1]
    # The first index whose cdf exceeds u: an id of zero probability never qualifies.
    return int(min(np.searchsorted(cdf, u, side="right"), len(z) - 1))


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty")
    return text


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_sampling(prime: Any, length: Any, temperature: Any, top_k: Any = None) -> None:
    """The checks :meth:`CharLM.sample` makes of its arguments (the command makes them before
    it trains)."""
    if not isinstance(prime, str):
        raise TypeError(f"prime must be a str, got {type(prime).__name__}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"length must be an int, got {type(length).__name__} {length!r}")
    if not 0 <= length <= MAX_SAMPLE_LENGTH:
        raise ValueError(f"length must be in [0, {MAX_SAMPLE_LENGTH:,}] characters, got {length:,}")
    if isinstance(temperature, bool) or not isinstance(
        temperature, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"temperature must be a number, got {type(temperature).__name__} {temperature!r}"
        )
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__} {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")


def _checkpoint_vocabulary(path: str | Path) -> list[str] | None:
    """The vocabulary stored in a CharLM training checkpoint's config (None if there is none)."""
    config = checkpoint.peek(path).get("config")
    if not isinstance(config, dict):
        return None
    return config.get("vocabulary")
