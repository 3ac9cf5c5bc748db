"""Ready models for the three tasks, composed of the blocks: a language model, a sequence
regressor and a sequence classifier. Their parameters, ``state_dict`` and ``load_state_dict``
use dotted names (``rnn.weight_ih_l0``, ``head.bias``); their ``forward`` and ``backward``
follow the recurrent layer's: ``forward(x, state=None, lengths=None) -> (out, state_T, cache)``
and ``backward(dout, cache, dstate=None) -> (dx, dstate0, grads)``.

Each also has ``step(x_t, state=None) -> (out_t, state)``, one time step for streaming
inference in evaluation mode (see :meth:`rnnkit.nn.Recurrent.step`), on a unidirectional stack.

Inputs are time-major: (T, B, ...). Shapes: T = time steps, B = batch, V = vocabulary size,
E = embedding size, D = input size, H = hidden size, K = directions, O = outputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.cells.base import Cell
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.module import Module
from rnnkit.nn.pooling import Pooling
from rnnkit.nn.recurrent import Recurrent, cell_options


def make_recurrent(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    **options: Any,
) -> Recurrent:
    """A recurrent layer of the cell registered under the name ``cell`` (``"rnn"``, ``"lstm"``,
    ``"gru"``, or any :class:`~rnnkit.cells.Cell` subclass with a ``name``): its layer class
    (``RNN``, ``LSTM``, ``GRU``) when it has one, else :class:`Recurrent` with the cell.
    ``options`` go to the cell (its own, such as ``nonlinearity`` or ``reset``) and to the layer
    (``bidirectional``, ``dropout``, ...)."""
    cell_class = Cell.named(cell)
    layer = Recurrent.layer_class(cell_class)
    if layer is not None:
        return layer(input_size, hidden_size, num_layers, **options)
    chosen = {k: options.pop(k) for k in list(options) if k in cell_options(cell_class)}
    return Recurrent(cell_class(**chosen), input_size, hidden_size, num_layers, **options)


def check_size(
    what: str,
    dtype: Any,
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    layer_options: dict[str, Any],
    **blocks: int,
) -> None:
    """Refuse a model that cannot fit in memory before any of its blocks is made (each block
    checks itself too, but not the sum of them): the parameters of its recurrent stack (of
    ``cell``, with ``bidirectional`` and ``bias`` from ``layer_options``) and of the other
    ``blocks`` (name -> parameter count), as :func:`rnnkit.limits.check_parameters` counts them.
    """
    H = _checks.positive_int("hidden_size", hidden_size)
    K = 2 if layer_options.get("bidirectional") else 1
    count = Recurrent.count_parameters(
        Cell.named(cell).num_gates,
        _checks.positive_int("input_size", input_size),
        H,
        _checks.positive_int("num_layers", num_layers),
        K,
        bool(layer_options.get("bias", True)),
    )
    limits.check_parameters(what, count + sum(blocks.values()), _checks.float_dtype(dtype).itemsize)


def spawn_seeds(seed: Any, n: int) -> list[np.random.Generator]:
    """n independent generators from one seed (an int, a Generator or None)."""
    return _checks.rng(seed).spawn(n)


def prefixed(prefix: str, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{name}": value for name, value in grads.items()}


class Model(Module):
    """Base of composed models: children are assigned as attributes; gradients are collected
    under the children's dotted names, in :meth:`parameters` order."""

    def _ordered(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: grads[name] for name in self.parameters()}

    def _head_step(self, y: np.ndarray) -> np.ndarray:
        """The Linear head on one step's outputs (B, K*H) -> (B, O), in evaluation mode."""
        return self.head.apply(y)


class LanguageModelCache(NamedTuple):
    embedding: Any
    drop_in: Any
    rnn: Any
    drop_out: Any
    head: Any


class LanguageModel(Model):
    """Token ids -> Embedding -> dropout -> recurrent stack -> dropout -> Linear over the
    vocabulary: next-token logits at every step (Zaremba et al. 2014's layout; with ``dropout``
    also between stacked layers).

    Args:
        vocab_size: V.
        embedding_dim: E.
        hidden_size: H.
        num_layers: stacked recurrent layers.
        cell: "lstm" (default), "gru" or "rnn"; ``cell_options`` (``reset``, ``nonlinearity``)
            go to the recurrent layer.
        dropout: probability for the three dropouts (embedding output, between layers, before the
            head); 0 disables them.
        dtype, seed: as for the layers; one seed initialises every block reproducibly.

    Example:
        >>> import numpy as np, rnnkit
        >>> lm = rnnkit.LanguageModel(vocab_size=20, embedding_dim=8, hidden_size=16, seed=0)
        >>> ids = np.random.default_rng(0).integers(0, 20, size=(12, 3))  # (T, B)
        >>> logits, (h, c), cache = lm.forward(ids)
        >>> logits.shape, list(lm.state_dict())[:2]
        ((12, 3, 20), ['embedding.weight', 'rnn.weight_ih_l0'])
        >>> _, (dh0, dc0), grads = lm.backward(np.ones_like(logits), cache)
        >>> grads["head.weight"].shape
        (20, 16)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        cell: str = "lstm",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Any = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        V = _checks.positive_int("vocab_size", vocab_size)
        E = _checks.positive_int("embedding_dim", embedding_dim)
        K = 2 if cell_options.get("bidirectional") else 1
        H = _checks.positive_int("hidden_size", hidden_size)
        check_size(
            f"LanguageModel({V}, {E}, {H}, num_layers={num_layers})",
            dtype,
            cell,
            E,
            H,
            num_layers,
            cell_options,
            embedding=Embedding.count_parameters(V, E),
            head=Linear.count_parameters(K * H, V),
        )
        rngs = spawn_seeds(seed, 5)
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, seed=rngs[0])
        self.drop_in = Dropout(dropout, seed=rngs[1])
        self.rnn = make_recurrent(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout=dropout,
            dtype=dtype,
            seed=rngs[2],
            **cell_options,
        )
        self.drop_out = Dropout(dropout, seed=rngs[3])
        self.head = Linear(
            hidden_size * self.rnn.num_directions, vocab_size, dtype=dtype, seed=rngs[4]
        )

    def forward(self, ids: Any, state: Any = None, lengths: Any = None):
        """``ids`` (T, B) integers -> ``(logits (T, B, V), state_T, cache)``."""
        e, c_emb = self.embedding.forward(ids)  # (T, B, E)
        if e.ndim != 3:
            raise ValueError(f"ids must be 2-D (T, B), got shape {np.shape(ids)}")
        e, c_in = self.drop_in.forward(e)
        y, state_T, c_rnn = self.rnn.forward(e, state, lengths)  # (T, B, K*H)
        y, c_out = self.drop_out.forward(y)
        logits, c_head = self.head.forward(y)  # (T, B, V)
        return logits, state_T, LanguageModelCache(c_emb, c_in, c_rnn, c_out, c_head)

    def step(self, ids: Any, state: Any = None) -> tuple[np.ndarray, Any]:
        """One step of streaming inference: ``ids`` (B,) integers -> ``(logits (B, V), state)``,
        in evaluation mode (no dropout)."""
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D (B,), got shape {ids.shape}")
        e, _ = self.embedding.forward(ids)  # (B, E); checks the ids
        y, state = self.rnn.step(e, state)  # (B, H)
        return self._head_step(y), state

    def backward(self, dlogits: np.ndarray, cache: LanguageModelCache, dstate: Any = None):
        """``dlogits`` (T, B, V) -> ``(None, dstate0, grads)``; token ids have no gradient."""
        dy, g_head = self.head.backward(dlogits, cache.head)
        dy, _ = self.drop_out.backward(dy, cache.drop_out)
        de, dstate0, g_rnn = self.rnn.backward(dy, cache.rnn, dstate)
        de, _ = self.drop_in.backward(de, cache.drop_in)
        _, g_emb = self.embedding.backward(de, cache.embedding)
        grads = {
            **prefixed("embedding", g_emb),
            **prefixed("rnn", g_rnn),
            **prefixed("head", g_head),
        }
        return None, dstate0, self._ordered(grads)


class SequenceCache(NamedTuple):
    rnn: Any
    pool: Any
    drop: Any
    head: Any


class SequenceRegressor(Model):
    """(T, B, D) sequences -> recurrent stack -> pooling of the valid steps -> dropout ->
    Linear: one output vector per sequence (many-to-one), or, with ``pooling=None``, one per
    step (many-to-many).

    Args:
        input_size: D.
        hidden_size: H.
        output_size: O.
        num_layers: stacked recurrent layers.
        cell: "lstm" (default), "gru" or "rnn"; ``cell_options`` (``reset``, ``nonlinearity``)
            go to the recurrent layer.
        bidirectional: a bidirectional stack (the head sees both directions).
        pooling: "last" (each direction's final state), "mean" or "max" over valid steps, or
            None for per-step outputs.
        dropout: between stacked layers and before the head; 0 disables it.
        dtype, seed: as for the layers.

    Example:
        >>> import numpy as np, rnnkit
        >>> model = rnnkit.SequenceRegressor(3, 8, output_size=2, pooling="mean", seed=0)
        >>> x = np.ones((10, 4, 3), dtype=np.float32)
        >>> out, _, cache = model.forward(x, lengths=[10, 5, 1, 0])
        >>> out.shape
        (4, 2)
        >>> dx, dh0, grads = model.backward(np.ones_like(out), cache)
        >>> dx.shape, sorted(grads)[-2:]
        ((10, 4, 3), ['rnn.weight_hh_l0', 'rnn.weight_ih_l0'])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int = 1,
        num_layers: int = 1,
        *,
        cell: str = "lstm",
        bidirectional: bool = False,
        pooling: str | None = "last",
        dropout: float = 0.0,
        dtype: Any = np.float32,
        seed: Any = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        H = _checks.positive_int("hidden_size", hidden_size)
        K = 2 if _checks.boolean("bidirectional", bidirectional) else 1
        check_size(
            f"{type(self).__name__}({input_size}, {H}, {output_size}, num_layers={num_layers})",
            dtype,
            cell,
            input_size,
            H,
            num_layers,
            {**cell_options, "bidirectional": bidirectional},
            head=Linear.count_parameters(K * H, _checks.positive_int("output_size", output_size)),
        )
        rngs = spawn_seeds(seed, 3)
        self.rnn = make_recurrent(
            cell,
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            dtype=dtype,
            seed=rngs[0],
            **cell_options,
        )
        K = self.rnn.num_directions
        self.pool = None if pooling is None else Pooling(pooling, num_directions=K)
        self.drop = Dropout(dropout, seed=rngs[1])
        self.head = Linear(hidden_size * K, output_size, dtype=dtype, seed=rngs[2])

    def forward(self, x: np.ndarray, state: Any = None, lengths: Any = None):
        """``x`` (T, B, D) -> ``(out, state_T, cache)``, out (B, O), or (T, B, O) without pooling
        (zero at padded steps)."""
        y, state_T, c_rnn = self.rnn.forward(x, state, lengths)  # (T, B, K*H)
        c_pool = None
        if self.pool is not None:
            y, c_pool = self.pool.forward(y, lengths)  # (B, K*H)
        y, c_drop = self.drop.forward(y)
        out, c_head = self.head.forward(y)
        if self.pool is None and c_rnn.mask is not None:
            out = out * c_rnn.mask  # padded steps have no output
        return out, state_T, SequenceCache(c_rnn, c_pool, c_drop, c_head)

    def step(self, x: Any, state: Any = None) -> tuple[np.ndarray, Any]:
        """One step of streaming inference: ``x`` (B, D) -> ``(out (B, O), state)``, in
        evaluation mode: the step's output without pooling, or with ``pooling="last"`` the
        output for the sequence read so far. Mean and max pooling need the whole sequence."""
        if self.pool is not None and self.pool.mode != "last":
            raise ValueError(
                f'step() needs pooling "last" or None, got pooling {self.pool.mode!r}: '
                "mean and max pool over the whole sequence"
            )
        y, state = self.rnn.step(x, state)  # (B, H)
        return self._head_step(y), state

    def backward(self, dout: np.ndarray, cache: SequenceCache, dstate: Any = None):
        """``dout`` shaped like ``out`` -> ``(dx, dstate0, grads)``."""
        if self.pool is None and cache.rnn.mask is not None:
            dout = dout * cache.rnn.mask
        dy, g_head = self.head.backward(dout, cache.head)
        dy, _ = self.drop.backward(dy, cache.drop)
        if self.pool is not None:
            dy, _ = self.pool.backward(dy, cache.pool)
        dx, dstate0, g_rnn = self.rnn.backward(dy, cache.rnn, dstate)
        grads = {**prefixed("rnn", g_rnn), **prefixed("head", g_head)}
        return dx, dstate0, self._ordered(grads)


class SequenceClassifier(SequenceRegressor):
    """A :class:`SequenceRegressor` whose ``num_classes`` outputs are class logits (train it
    with :func:`rnnkit.losses.cross_entropy`); ``predict_proba`` gives the softmax.

    Example:
        >>> import numpy as np, rnnkit
        >>> clf = rnnkit.SequenceClassifier(3, 8, num_classes=4, bidirectional=True, seed=0)
        >>> p = clf.predict_proba(np.ones((10, 2, 3), dtype=np.float32))
        >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
        ((2, 4), True)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        num_layers: int = 1,
        **options: Any,
    ) -> None:
        num_classes = _checks.positive_int("num_classes", num_classes)
        super().__init__(input_size, hidden_size, num_classes, num_layers, **options)
        self.num_classes = num_classes

    def predict_proba(self, x: np.ndarray, state: Any = None, lengths: Any = None) -> np.ndarray:
        """Class probabilities (B, C), or (T, B, C) without pooling, computed in evaluation mode
        (no dropout) whatever the model's mode."""
        training = self.training
        try:
            logits, _, _ = self.eval().forward(x, state, lengths)
        finally:
            self.train(training)
        z = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
