r"""The translation task :class:`Translator`: an attentional encoder-decoder
(:class:`~rnnkit.nn.Seq2Seq`) trained on ``(source, target)`` string pairs, decoded by beam
search, with a scikit-learn interface. Its defaults suit grapheme-to-phoneme conversion
(characters in, space-separated phonemes out); ``source_tokens`` / ``target_tokens`` switch
either side to words or characters.

The pipeline:

- ``fit``: without a given development set, ``dev_fraction`` of the distinct sources are held
  out with all their pairs (:func:`~rnnkit.data.pairs.split_by_source`: a fixed SHA-256 choice,
  no development source is ever trained on). Both vocabularies come from the training pairs
  only (tokens they lack read as UNK). Every pair is trained on, alternative references of a
  source included, by teacher forcing with the masked, label-smoothed cross-entropy
  (:func:`rnnkit.losses.cross_entropy`), Adam and gradient clipping. A further
  ``validation_fraction`` of the training sources (another fixed choice,
  :data:`VALIDATION_SALT`) is held out as the validation set that early stopping (the
  parameters of the best validation loss are kept) and the "plateau" learning-rate schedule
  (halved when the validation loss stops improving) watch, so the development set is scored
  once, at the end, and chooses nothing. With ``validation_fraction=0`` the development set
  plays that part. The "cosine" schedule instead anneals the rate to 0 over ``epochs``: the
  choice for a fixed time budget.
- ``predict``: sources are tokenised, batched by length, sources of one length together so
  that nothing is padded (:func:`~rnnkit.data.pairs.source_batches`), and decoded by beam
  search (:func:`~rnnkit.nn.decoding.beam_search`; greedy for ``beam=1``); the results come
  back in input order and do not depend, bit for bit (scores included), on the batching or on
  the other sources: the decoder's products compute each row alike in any batch
  (:func:`rnnkit.runtime.kernels.gemm.exact_rows`).
- ``evaluate``: one prediction per distinct source, scored against all its references
  (:mod:`rnnkit.apps.translate.metrics`).

The maximum output length: an output of a source of S tokens has at most
:math:`M = \lfloor r S \rfloor + c` tokens (r = ``max_length_ratio``, 2 by default, and
c = ``max_length_offset``, 10), i.e. :math:`2S + 10` by default; a hypothesis that reaches
M tokens without predicting the end of the sequence is cut there and ranked with the finished
ones (:class:`~rnnkit.nn.decoding.Hypothesis` ``finished=False``).

(Over 500 lines because :class:`Translator` is one estimator whose training, decoding,
evaluation and saving all read the same vocabularies, settings and network.)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks, checkpoint, losses, optim
from rnnkit.apps.estimator import Estimator, train_model
from rnnkit.apps.translate import metrics
from rnnkit.cells.base import Cell
from rnnkit.data.pairs import (
    EOS,
    SPECIAL_TOKENS,
    TOKEN_MODES,
    PairData,
    TokenVocabulary,
    detokenize,
    group_references,
    source_batches,
    split_by_source,
    tokenize,
)
from rnnkit.nn.decoding import LENGTH_PENALTIES, Hypothesis, beam_search, greedy_decode
from rnnkit.nn.seq2seq import BRIDGES, SCORES, Seq2Seq
from rnnkit.training.metric_log import decode_columns, encode_columns

#: Sources decoded together (each with ``beam`` rows): enough to keep the matrix products
#: busy, few enough that a batch's memory stays small.
DECODE_BATCH = 64
#: The learning-rate schedules (and None: constant).
LR_SCHEDULES = ("plateau", "cosine")
#: Pairs per batch when the development loss is computed.
EVAL_BATCH = 256
#: The salt of the validation hold-out (:func:`~rnnkit.data.pairs.split_by_source`): another
#: fixed choice of sources than the development set's (salt "rnnkit"), so that it can be
#: carved out of what remains after the development hold-out.
VALIDATION_SALT = "rnnkit-validation"


def validation_split(
    pairs: list[tuple[str, str]], fraction: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, validation)``: ``fraction`` of the distinct sources of ``pairs``, with all
    their pairs, held out as :class:`Translator` holds out its validation set (whole sources,
    the fixed SHA-256 choice of :data:`VALIDATION_SALT`)."""
    try:
        return split_by_source(pairs, fraction, salt=VALIDATION_SALT, held_out_name="validation")
    except ValueError as err:
        raise ValueError(f"validation_fraction={fraction}: {err}") from None


class Translator(Estimator):
    """Sequence-to-sequence translation of strings: grapheme-to-phoneme conversion, sentence
    translation, any transduction learned from ``(source, target)`` examples.

    Args:
        source_tokens, target_tokens: how each side is cut into tokens, "chars" (every
            character) or "words" (between runs of whitespace); defaults: "chars" in,
            "words" out (G2P: letters in, space-separated phonemes out).
        embedding_dim: E, the size of both embeddings.
        hidden_size: H, the decoder's units and the size of the source memory (a
            bidirectional encoder has H/2 units each way, so H must then be even).
        num_layers: decoder layers.
        encoder_layers: encoder layers (None: ``num_layers``).
        cell: "lstm", "gru" or "rnn" (any registered cell), encoder and decoder alike.
        bidirectional: a bidirectional encoder.
        attention: the score, "general" (Luong), "dot" or "additive" (Bahdanau).
        attention_size: the additive score's hidden size (None: H); "additive" only.
        input_feeding: feed the last attentional state into the next decoder step (Luong).
        bridge: "linear" (the decoder starts from a learned map of the encoder's final
            states) or "zeros".
        tie_embeddings: the output layer's weight is the target embedding (needs E == H).
        dropout: on the embeddings, between stacked layers and before the output layer.
        label_smoothing: :math:`\\varepsilon` of the training loss (also in the
            development loss that early stopping watches).
        scheduled_sampling: in training, the probability of feeding the model's own previous
            prediction instead of the reference token (0: teacher forcing).
        epochs: passes over the training pairs (at most: see ``patience``).
        batch_size: pairs per optimiser step (batches hold pairs of similar lengths).
        lr: Adam's learning rate.
        clip_norm: clip the global gradient norm to this value (None: no clipping).
        lr_schedule: "plateau": the learning rate is multiplied by ``lr_decay`` when the
            validation loss has not improved for more than ``lr_patience`` epochs (PyTorch's
            ``ReduceLROnPlateau``; constant without a validation set); "cosine": half a cosine
            from ``lr`` at the first step to 0 after ``epochs`` epochs
            (:class:`~rnnkit.optim.WarmupCosine`); None: constant.
        lr_decay: "plateau"'s factor, in (0, 1).
        lr_patience: "plateau"'s epochs without a better validation loss before a cut.
        patience: stop after this many epochs without a better validation loss; training
            then ends with the parameters of the best validation loss, also when ``epochs``
            run out first (None: train all ``epochs`` and keep the last parameters). Needs a
            validation or development set.
        dev_fraction: without ``dev`` given to :meth:`fit`, the fraction of the distinct
            training sources held out as the development set, in [0, 1) (0: none).
        validation_fraction: the fraction of the distinct training sources (those left after
            the development hold-out) held out as the validation set, in [0, 1), with
            another fixed choice than the development set's (:func:`validation_split`); 0:
            none, the development set serves instead.
        beam: the beam width of :meth:`predict` and :meth:`evaluate` (1: greedy).
        length_penalty: how hypotheses of different lengths compare, "average" (log-probability
            per token, the EOS counted), "gnmt" (Wu et al. 2016, with ``alpha``) or "none".
        alpha: GNMT's exponent, >= 0.
        max_length_ratio, max_length_offset: r >= 0 and c >= 1: an output has at most
            floor(r S) + c tokens for a source of S tokens (see the module docstring).
        seed: initialisation, batch order, dropout (an int; None: fresh entropy).
        dtype: "float32" (default) or "float64", for the network.
        quiet: no progress report.

    Attributes (after :meth:`fit`):
        source_vocab_, target_vocab_: the :class:`~rnnkit.data.pairs.TokenVocabulary` of
            each side of the training pairs.
        model_: the trained :class:`~rnnkit.nn.Seq2Seq`, in evaluation mode.
        history_: the trainer's metrics, column by column (``step``, ``kind``, ``loss`` ...).
        dev_loss_: the best validation loss (the development set's with
            ``validation_fraction=0``; None without either set).
        n_steps_: optimiser steps taken (including those before a resume).
        stopped_: why training ended: "epochs", "early_stopping" or "interrupted" (Ctrl-C;
            fit again with ``resume=True`` to go on).

    Example:
        >>> from rnnkit.apps import Translator
        >>> words = ["ab", "ba", "abc", "cab", "bca", "acb", "ca", "bc", "cb", "ac", "a", "b"]
        >>> pairs = [(w, " ".join(w[::-1].upper())) for w in words]  # "abc" -> "C B A"
        >>> tr = Translator(embedding_dim=16, hidden_size=32, epochs=60, batch_size=4,
        ...                 lr=0.01, dropout=0.0, label_smoothing=0.0, patience=None,
        ...                 dev_fraction=0.0, validation_fraction=0.0, quiet=True).fit(pairs)
        >>> tr.predict(["abc", "cb"])
        ['C B A', 'B C']
        >>> tr.evaluate(pairs)["sequence_error_rate"]
        0.0
    """

    def __init__(
        self,
        *,
        source_tokens: str = "chars",
        target_tokens: str = "words",
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        encoder_layers: int | None = None,
        cell: str = "lstm",
        bidirectional: bool = True,
        attention: str = "general",
        attention_size: int | None = None,
        input_feeding: bool = True,
        bridge: str = "linear",
        tie_embeddings: bool = False,
        dropout: float = 0.2,
        label_smoothing: float = 0.1,
        scheduled_sampling: float = 0.0,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 2e-3,
        clip_norm: float | None = 5.0,
        lr_schedule: str | None = "plateau",
        lr_decay: float = 0.5,
        lr_patience: int = 0,
        patience: int | None = 3,
        dev_fraction: float = 0.05,
        validation_fraction: float = 0.05,
        beam: int = 5,
        length_penalty: str = "average",
        alpha: float = 0.6,
        max_length_ratio: float = 2.0,
        max_length_offset: int = 10,
        seed: int | None = 0,
        dtype: str = "float32",
        quiet: bool = False,
    ) -> None:
        self.source_tokens = source_tokens
        self.target_tokens = target_tokens
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.encoder_layers = encoder_layers
        self.cell = cell
        self.bidirectional = bidirectional
        self.attention = attention
        self.attention_size = attention_size
        self.input_feeding = input_feeding
        self.bridge = bridge
        self.tie_embeddings = tie_embeddings
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.scheduled_sampling = scheduled_sampling
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.clip_norm = clip_norm
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_patience = lr_patience
        self.patience = patience
        self.dev_fraction = dev_fraction
        self.validation_fraction = validation_fraction
        self.beam = beam
        self.length_penalty = length_penalty
        self.alpha = alpha
        self.max_length_ratio = max_length_ratio
        self.max_length_offset = max_length_offset
        self.seed = seed
        self.dtype = dtype
        self.quiet = quiet

    # -- settings -------------------------------------------------------------------------------

    def check_params(self) -> None:
        for name in ("source_tokens", "target_tokens"):
            _checks.choice(name, getattr(self, name), TOKEN_MODES)
        for name in ("embedding_dim", "hidden_size", "num_layers", "epochs", "batch_size"):
            _checks.positive_int(name, getattr(self, name))
        if self.encoder_layers is not None:
            _checks.positive_int("encoder_layers", self.encoder_layers)
        Cell.named(self.cell)  # ValueError naming the known cells
        if _checks.boolean("bidirectional", self.bidirectional) and self.hidden_size % 2:
            raise ValueError(
                f"hidden_size must be even with a bidirectional encoder (H/2 units each way), "
                f"got {self.hidden_size}"
            )
        _checks.choice("attention", self.attention, SCORES)
        if self.attention_size is not None:
            _checks.positive_int("attention_size", self.attention_size)
            if self.attention != "additive":
                raise ValueError(
                    f"attention_size applies to attention='additive' only, got attention_size="
                    f"{self.attention_size!r} with attention={self.attention!r}"
                )
        _checks.boolean("input_feeding", self.input_feeding)
        _checks.choice("bridge", self.bridge, BRIDGES)
        if _checks.boolean("tie_embeddings", self.tie_embeddings) and (
            self.embedding_dim != self.hidden_size
        ):
            raise ValueError(
                f"tie_embeddings needs embedding_dim == hidden_size, got {self.embedding_dim} "
                f"and {self.hidden_size}"
            )
        _checks.probability("dropout", self.dropout)
        _checks.probability("label_smoothing", self.label_smoothing)
        _checks.probability("scheduled_sampling", self.scheduled_sampling, upper_inclusive=True)
        _checks.positive("lr", self.lr)
        if self.clip_norm is not None:
            _checks.positive("clip_norm", self.clip_norm)
        if self.lr_schedule is not None:
            _checks.choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not 0 < _checks.positive("lr_decay", self.lr_decay) < 1:
            raise ValueError(f"lr_decay must lie in (0, 1), got {self.lr_decay}")
        _checks.integer("lr_patience", self.lr_patience, low=0)
        if self.patience is not None:
            _checks.positive_int("patience", self.patience)
        _checks.probability("dev_fraction", self.dev_fraction)
        _checks.probability("validation_fraction", self.validation_fraction)
        _checks.positive_int("beam", self.beam)
        _checks.choice("length_penalty", self.length_penalty, LENGTH_PENALTIES)
        _checks.nonnegative("alpha", self.alpha)
        _checks.nonnegative("max_length_ratio", self.max_length_ratio)
        _checks.positive_int("max_length_offset", self.max_length_offset)
        if isinstance(self.seed, np.random.Generator):
            raise TypeError("seed must be an int or None (it is saved with the model)")
        _checks.rng(self.seed)  # type and sign
        _checks.float_dtype(self.dtype)
        _checks.boolean("quiet", self.quiet)

    def max_length(self, source_length: Any) -> np.ndarray:
        """The most tokens of the output of a source of ``source_length`` tokens (or an array
        of lengths): ``floor(max_length_ratio * S) + max_length_offset``."""
        S = np.asarray(source_length, dtype=np.float64)
        return (np.floor(self.max_length_ratio * S) + self.max_length_offset).astype(np.intp)

    # -- training -------------------------------------------------------------------------------

    def fit(
        self,
        pairs: Any,
        *,
        dev: Any = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        checkpoint_seconds: float | None = 60.0,
        log: str | Path | None = None,
        callbacks: tuple = (),
    ) -> Translator:
        """Learn to turn each source into its target.

        Args:
            pairs: the training pairs, ``(source, target)`` strings (a list, as
                :func:`~rnnkit.data.pairs.read_pairs` gives); several pairs with the same
                source are alternative references, all trained on.
            dev: development pairs; None: ``dev_fraction`` of the sources of ``pairs`` (whole
                sources, :func:`~rnnkit.data.pairs.split_by_source`), or none if it is 0.
                ``fit`` uses them only when ``validation_fraction`` is 0: then the learning
                rate schedule and early stopping watch their loss.
            checkpoint: a path to checkpoint the run to (after every epoch, every
                ``checkpoint_seconds``, at the end and on Ctrl-C: see :class:`~rnnkit.Trainer`).
            resume: continue from ``checkpoint`` if that file exists (the same pairs and
                settings are expected; ``epochs`` counts from the start of the first run); a
                fit killed at any moment ends, resumed, bit for bit as the uninterrupted one.
            checkpoint_seconds: the longest time between two checkpoints (None: no timed ones).
            log: a ``.csv`` or ``.jsonl`` path for the metrics.
            callbacks: :class:`~rnnkit.Trainer` callbacks, ``callback(event, trainer, row)``.

        Returns:
            self.
        """
        self.check_params()
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path> to resume from")
        pairs = self._check_pairs("pairs", pairs)
        if dev is not None:
            dev = self._check_pairs("dev", dev)
        elif self.dev_fraction > 0:
            pairs, dev = split_by_source(pairs, self.dev_fraction)
        if self.validation_fraction > 0:
            pairs, dev = validation_split(pairs, self.validation_fraction)
        if self.patience is not None and dev is None:
            raise ValueError(
                "patience needs a validation set: set validation_fraction > 0, give dev=... or "
                "dev_fraction > 0, or set patience=None"
            )
        src_vocab = TokenVocabulary.from_sequences(
            tokenize(s, self.source_tokens) for s in dict.fromkeys(s for s, _ in pairs)
        )
        tgt_vocab = TokenVocabulary.from_sequences(
            [tokenize(t, self.target_tokens) for _, t in pairs]
        )
        train = self._pair_data(pairs, src_vocab, tgt_vocab, self.batch_size, shuffle=True)
        val = None
        if dev is not None:
            val = self._pair_data(dev, src_vocab, tgt_vocab, EVAL_BATCH, shuffle=False)
        model = self._build_model(len(src_vocab), len(tgt_vocab))
        vocabularies = {
            "source_vocabulary": src_vocab.to_list(),
            "target_vocabulary": tgt_vocab.to_list(),
        }
        config = self.training_config(**vocabularies)
        if resume and Path(checkpoint).exists():
            _check_resumed_vocabularies(checkpoint, vocabularies)
        trainer = train_model(
            model,
            train,
            loss=functools.partial(losses.cross_entropy, label_smoothing=self.label_smoothing),
            val=val,
            epochs=self.epochs,
            lr=self.lr,
            clip_norm=self.clip_norm,
            patience=self.patience,
            schedule=self._schedule(len(train), val is not None),
            seed=self.seed,
            checkpoint_path=checkpoint,
            checkpoint_seconds=checkpoint_seconds,
            resume=resume,
            log=log,
            quiet=self.quiet,
            desc=type(self).__name__,
            unit="target token",
            config=config,
            callbacks=tuple(callbacks),
        )
        result = trainer.result
        best = trainer.progress.best_params
        if result.stopped != "interrupted" and best is not None:
            model.load_state_dict(best)  # early stopping restored them; so does the last epoch
        model.eval()
        self.source_vocab_ = src_vocab
        self.target_vocab_ = tgt_vocab
        self.model_ = model
        self.history_ = {k: list(v) for k, v in trainer.history.items()}
        self.dev_loss_ = None if result.best is None else float(result.best)
        self.n_steps_ = int(result.step)
        self.stopped_ = result.stopped
        return self

    def _schedule(self, steps_per_epoch: int, validated: bool) -> Any:
        """The schedule's factory for :func:`~rnnkit.apps.estimator.train_model` (None:
        constant): "plateau" is stepped by the trainer after every validation, "cosine" after
        every step."""
        if self.lr_schedule == "cosine":
            total = max(self.epochs * steps_per_epoch, 1)
            return lambda opt: optim.WarmupCosine(opt, 0, total)
        if self.lr_schedule == "plateau" and validated:
            return lambda opt: optim.ReduceLROnPlateau(
                opt, factor=self.lr_decay, patience=self.lr_patience
            )
        return None

    def _check_pairs(self, name: str, pairs: Any) -> list[tuple[str, str]]:
        """``pairs`` as a non-empty list of (source, target) strings, each side with a token."""
        if isinstance(pairs, (str, bytes, dict)) or not hasattr(pairs, "__iter__"):
            raise TypeError(
                f"{name} must be a list of (source, target) string pairs, got "
                f"{type(pairs).__name__}"
            )
        out = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(
                    f"{name}[{i}] must be a (source, target) pair of strings, got {_clip(pair)}"
                )
            source, target = pair
            for side, value, mode in (
                ("source", source, self.source_tokens),
                ("target", target, self.target_tokens),
            ):
                if not isinstance(value, str):
                    raise TypeError(
                        f"{name}[{i}]: the {side} must be a str, got {type(value).__name__}"
                    )
                if not tokenize(value, mode):
                    raise ValueError(f"{name}[{i}]: the {side} {value!r} has no {mode[:-1]} token")
            out.append((source, target))
        if not out:
            raise ValueError(f"{name} holds no pair")
        return out

    def _pair_data(
        self,
        pairs: list[tuple[str, str]],
        src_vocab: TokenVocabulary,
        tgt_vocab: TokenVocabulary,
        batch_size: int,
        *,
        shuffle: bool,
    ) -> PairData:
        return PairData.from_pairs(
            pairs,
            src_vocab,
            tgt_vocab,
            batch_size,
            source_tokens=self.source_tokens,
            target_tokens=self.target_tokens,
            shuffle=shuffle,
        )

    def _build_model(self, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
        return Seq2Seq(
            source_vocab_size,
            target_vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            encoder_layers=self.encoder_layers,
            cell=self.cell,
            bidirectional=self.bidirectional,
            attention=self.attention,
            attention_size=self.attention_size,
            input_feeding=self.input_feeding,
            bridge=self.bridge,
            tie_embeddings=self.tie_embeddings,
            dropout=self.dropout,
            scheduled_sampling=self.scheduled_sampling,
            dtype=_checks.float_dtype(self.dtype),
            seed=self.seed,
        )

    # -- decoding -------------------------------------------------------------------------------

    def _sources(self, sources: Any) -> list[np.ndarray]:
        """The source strings as id arrays (unknown tokens: UNK), each with a token."""
        if isinstance(sources, (str, bytes)) or not hasattr(sources, "__iter__"):
            raise TypeError(
                f"sources must be a list of strings, got {type(sources).__name__}"
                + (" (wrap a single source in a list)" if isinstance(sources, str) else "")
            )
        ids = []
        for i, source in enumerate(sources):
            if not isinstance(source, str):
                raise TypeError(f"sources[{i}] must be a str, got {type(source).__name__}")
            tokens = tokenize(source, self.source_tokens)
            if not tokens:
                raise ValueError(
                    f"sources[{i}] {source!r} has no {self.source_tokens[:-1]} token to translate"
                )
            ids.append(self.source_vocab_.encode(tokens))
        return ids

    def _beam(self, beam: Any, nbest: Any = 1) -> tuple[int, int]:
        k = self.beam if beam is None else _checks.positive_int("beam", beam)
        nbest = _checks.positive_int("nbest", nbest)
        if nbest > k:
            raise ValueError(f"nbest must be <= beam ({k}), got {nbest}")
        return k, nbest

    def _decode(self, sources: Any, beam: int, nbest: int, attention: bool) -> list[list[Any]]:
        """The n-best :class:`~rnnkit.nn.decoding.Hypothesis` lists of ``sources``, in input
        order (decoded in batches of similar lengths)."""
        self._check_fitted()
        ids = self._sources(sources)
        results: list[list[Any]] = [[] for _ in ids]
        if not ids:
            return results
        for batch in source_batches(ids, DECODE_BATCH, equal_lengths=True):
            max_length = self.max_length(batch.source_lengths)
            if beam == 1:
                found = [
                    [h]
                    for h in greedy_decode(
                        self.model_,
                        batch.source,
                        batch.source_lengths,
                        max_length=max_length,
                        length_penalty=self.length_penalty,
                        alpha=self.alpha,
                        return_attention=attention,
                    )
                ]
            else:
                found = beam_search(
                    self.model_,
                    batch.source,
                    batch.source_lengths,
                    beam=beam,
                    max_length=max_length,
                    length_penalty=self.length_penalty,
                    alpha=self.alpha,
                    nbest=nbest,
                    return_attention=attention,
                )
            for index, hyps in zip(batch.indices.tolist(), found):
                results[index] = hyps
        return results

    def _text(self, tokens: list[int]) -> str:
        return detokenize(self.target_vocab_.decode(np.asarray(tokens, dtype=np.intp)),
                          self.target_tokens)  # fmt: skip

    def predict(self, sources: Any, *, beam: int | None = None, nbest: int = 1) -> list[Any]:
        """Translate each source.

        Args:
            sources: a list of source strings (tokens the training sources lacked read as
                UNK).
            beam: the beam width (None: the ``beam`` setting; 1: greedy search).
            nbest: how many outputs per source, best first (at most ``beam``).

        Returns:
            With ``nbest=1``, one target string per source, in input order; with ``nbest`` > 1,
            per source a list of ``(target, score)`` pairs, best first (the score is the
            log-probability normalised as ``length_penalty`` says; fewer than ``nbest`` only
            if the model rules the others out).
        """
        k, nbest = self._beam(beam, nbest)
        found = self._decode(sources, k, nbest, attention=False)
        if nbest == 1:
            return [self._text(hyps[0].tokens) if hyps else "" for hyps in found]
        return [[(self._text(h.tokens), h.score) for h in hyps] for hyps in found]

    def attention_weights(
        self, sources: Any, *, beam: int | None = None, tokens: bool = False
    ) -> list[Any]:
        """The attention weights of each source's best output (the method cannot be called
        ``attention``: that is the setting of the score): per source an array
        (T, S) of the weights each output step gave each source token (T = the output's
        tokens, plus one row for the end of the sequence when it finished; S = the source's
        tokens; each row sums to 1).

        With ``tokens=True``, per source ``(weights, source_tokens, target_tokens)``: the
        tokens label the columns and rows (``"</s>"`` for the end-of-sequence row, ``"<unk>"``
        for unknown tokens), as :func:`rnnkit.apps.plots.attention` takes them.
        """
        k, _ = self._beam(beam)
        if not isinstance(sources, (str, bytes)) and hasattr(sources, "__iter__"):
            sources = list(sources)  # read twice: decoded, then tokenised for the labels
        found = self._decode(sources, k, 1, attention=True)
        out = []
        for source, hyps in zip(sources, found):
            if not hyps:  # the model ruled every output out: nothing to show
                S = len(tokenize(source, self.source_tokens))
                hyps = [Hypothesis([], -np.inf, -np.inf, False, np.zeros((0, S)))]
            h = hyps[0]
            weights = np.asarray(h.attention, dtype=np.float64)  # (T, S)
            if not tokens:
                out.append(weights)
                continue
            src = [
                t if t in self.source_vocab_ else SPECIAL_TOKENS[3]
                for t in tokenize(source, self.source_tokens)
            ]
            ids = np.asarray(h.tokens + ([EOS] if h.finished else []), dtype=np.intp)
            tgt = [self.target_vocab_.decode(ids[i : i + 1]) or [SPECIAL_TOKENS[EOS]]
                   for i in range(len(ids))]  # fmt: skip
            out.append((weights, src, [t[0] for t in tgt]))
        return out

    # -- scoring --------------------------------------------------------------------------------

    def evaluate(self, pairs: Any, *, beam: int | None = None) -> dict[str, Any]:
        """Error rates (and BLEU and chrF for word targets) of the predictions of ``pairs``.

        Pairs with the same source are alternative references: each distinct source is
        translated once and scored against all its references
        (:func:`~rnnkit.data.pairs.group_references`).

        Returns:
            ``token_error_rate`` (edit distance to the closest reference over the reference
            lengths, summed over the corpus: G2P's phoneme error rate), ``sequence_error_rate``
            (the fraction of sources whose output is none of their references: G2P's word error
            rate), ``n`` (distinct sources), and with ``target_tokens="words"`` ``bleu`` and
            ``chrf`` (sacreBLEU's scale, 0 to 100). Rates are fractions.
        """
        self._check_fitted()
        k, _ = self._beam(beam)
        groups = group_references(self._check_pairs("pairs", pairs))
        sources = list(groups)
        outputs = self.predict(sources, beam=k)
        mode = self.target_tokens
        hyps = [tokenize(o, mode) for o in outputs]
        refs = [[tokenize(r, mode) for r in groups[s]] for s in sources]
        scores: dict[str, Any] = {
            "token_error_rate": metrics.token_error_rate(hyps, refs),
            "sequence_error_rate": metrics.sequence_error_rate(hyps, refs),
            "n": len(sources),
        }
        if mode == "words":
            scores["bleu"] = metrics.corpus_bleu(hyps, refs)
            scores["chrf"] = metrics.corpus_chrf(outputs, [groups[s] for s in sources])
        return scores

    def score(self, pairs: Any) -> float:
        """1 - the sequence error rate of ``pairs`` (the fraction of sources translated exactly
        as one of their references; higher is better, scikit-learn's convention)."""
        return 1.0 - self.evaluate(pairs)["sequence_error_rate"]

    # -- fitted state ---------------------------------------------------------------------------

    def _get_state(self) -> dict[str, Any]:
        return {
            "source_vocabulary": self.source_vocab_.to_list(),
            "target_vocabulary": self.target_vocab_.to_list(),
            "model": self.model_.state_dict(),
            "history": encode_columns(self.history_),
            "dev_loss": self.dev_loss_,
            "n_steps": self.n_steps_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        src = TokenVocabulary.from_list(state["source_vocabulary"])
        tgt = TokenVocabulary.from_list(state["target_vocabulary"])
        model = self._build_model(len(src), len(tgt))
        model.load_state_dict(state["model"])
        model.eval()
        self.source_vocab_ = src
        self.target_vocab_ = tgt
        self.model_ = model
        self.history_ = decode_columns(state["history"])
        self.dev_loss_ = state["dev_loss"]
        self.n_steps_ = state["n_steps"]


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _check_resumed_vocabularies(path: str | Path, vocabularies: dict[str, list[str]]) -> None:
    """A checkpoint is resumed only with the training pairs it was started on: the same
    vocabularies."""
    config = checkpoint.peek(path).get("config")
    if not isinstance(config, dict) or config.get("estimator") != "Translator":
        raise ValueError(f"checkpoint {path} is not a Translator training checkpoint")
    for side, tokens in vocabularies.items():
        stored = config.get(side)
        if stored != tokens:
            n = len(stored) if isinstance(stored, list) else "no"
            raise ValueError(
                f"checkpoint {path} was trained on pairs with a different "
                f"{side.replace('_', ' ')} ({n} tokens, these pairs have {len(tokens)}): "
                "resume with the same pairs"
            )
