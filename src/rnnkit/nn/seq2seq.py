r"""The encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015): a sequence in,
a sequence of another length out, for translation and grapheme-to-phoneme conversion.

Shapes: S = source steps, T = target steps, B = batch, E = embedding size, H = hidden size,
K = encoder directions, L = decoder layers, V = target vocabulary, P = the attention's
projected key size. Sequences are time-major and padded with the id 0 (``rnnkit.data.PAD``).

Forward, for a source :math:`x_{1..S}` and the target input :math:`y_{0..T-1}` (``BOS`` and the
target: teacher forcing):

.. math::

    m_{1..S},\ s^{enc} &= \mathrm{Encoder}(\mathrm{Emb}_x(x_{1..S}))
        && \text{(any cell, layers, bidirectional; } m_s \in \mathbb{R}^H \text{: both
        directions, } H/K \text{ units each)} \\
    s_0 &= \tanh(W_b\, s^{enc}_{top} + b_b) \ \text{(bridge "linear"), or } 0
        && \text{(per state: } h \text{, and } c \text{ for the LSTM; all } L \text{ layers)} \\
    u_t &= [\mathrm{Emb}_y(y_{t-1});\ \tilde h_{t-1}] \ \text{(input feeding), or }
        \mathrm{Emb}_y(y_{t-1}), \qquad \tilde h_0 = 0 \\
    h_t,\ s_t &= \mathrm{Decoder}(u_t,\ s_{t-1}) \\
    c_t,\ a_t &= \mathrm{Attention}(h_t,\ m_{1..S}) \\
    \tilde h_t &= \tanh(W_c [c_t;\ h_t] + b_c) \\
    z_t &= W_o\, \mathrm{dropout}(\tilde h_t) + b_o
        && (W_o = \mathrm{Emb}_y \text{ when tied})

(dropout also on both embeddings' outputs and between stacked layers). The loss is the
masked cross-entropy of :math:`z_t` against :math:`y_t` (``rnnkit.losses.cross_entropy``, with
label smoothing if asked).

Backward. With :math:`\delta \tilde h_t` the gradient reaching :math:`\tilde h_t` from the
output layer plus, with input feeding, from :math:`u_{t+1}`:

.. math::

    \delta a^c_t &= \delta \tilde h_t \odot (1 - \tilde h_t^2), \qquad
    [\delta c_t;\ \delta h^{(c)}_t] = W_c^\top \delta a^c_t, \qquad
    \delta W_c \mathrel{+}= \delta a^c_t [c_t; h_t]^\top \\
    \delta h_t &= \delta h^{(c)}_t + \delta h^{(att)}_t, \qquad
    \delta m_s \mathrel{+}= \delta m^{(att)}_{s,t}
        && \text{(Attention's backward, from } \delta c_t \text{)} \\
    \delta u_t,\ \delta s_{t-1} &= \mathrm{Decoder}^\top(\delta h_t,\ \delta s_t)
        && \text{(BPTT through one step), } \delta \tilde h_{t-1} \mathrel{+}= \delta u_t[E{:}]

run from t = T down to 1; then :math:`\delta s_0` goes through the bridge,
:math:`\delta s^{enc}_{top} = W_b^\top (\delta s_0 \odot (1 - s_0^2))`, and the encoder
backpropagates :math:`\delta m` and :math:`\delta s^{enc}` through time. Without input feeding
the decoder, the attention and the combination run over all T steps at once (the decoder is
one call of the compiled layer); with it, step by step (each step one call of the layer over
one time step, so the compiled kernels still do the work).

Decoding (:meth:`Seq2Seq.encode`, :meth:`Seq2Seq.decode_step`, :meth:`Seq2Seq.select`) runs in
evaluation mode; the attention's source projection is computed once per source
(:meth:`~rnnkit.nn.Attention.prepare`) and the memory is kept once per input, the rows (beams)
pointing at their input's column (:class:`DecoderState`), never copied per row.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.cells.base import Cell
from rnnkit.nn.attention import Attention, AttentionMemory
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear, affine
from rnnkit.nn.models import Model, make_recurrent, prefixed, spawn_seeds
from rnnkit.nn.recurrent import Recurrent
from rnnkit.runtime.kernels.gemm import exact_rows

SCORES = ("dot", "general", "additive")
BRIDGES = ("linear", "zeros")
#: Token ids with a fixed meaning (as in :mod:`rnnkit.data.pairs`): padding, begin and end of a
#: sequence. Decoding never emits PAD or BOS.
PAD, BOS, EOS = 0, 1, 2


class Seq2SeqCache(NamedTuple):
    """What :meth:`Seq2Seq.backward` needs; shapes in the module docstring's legend."""

    source_embedding: Any
    drop_source: Any
    encoder: Any  # the encoder's RecurrentCache
    memory: AttentionMemory  # keys (S, B, H), mask (S, B), projected (S, B, P)
    memory_cache: Any
    bridge: tuple  # per state: (Linear cache, tanh output (L, B, H)) or None (zeros)
    target_embedding: Any
    drop_target: Any
    steps: Any  # the decoder's caches: all steps at once, or a list of per-step caches
    drop_out: Any
    generator: Any  # the output layer's input (T, B, H), for the tied case; or Linear's cache
    source_lengths: np.ndarray  # (B,)
    T: int


class DecoderState(NamedTuple):
    """The state of a decoding: rows are inputs, or beams of inputs, and the attention memory
    is kept once per input (M columns, M = B from :meth:`Seq2Seq.encode`, fewer after a
    compaction by :meth:`Seq2Seq.select`); ``source`` maps each row to its column."""

    memory: AttentionMemory  # keys (S, M, H), mask (S, M), projected (S, M, P)
    source: np.ndarray  # (R,) intp: row r attends memory column source[r]
    state: Any  # the decoder's recurrent state: (L, R, H), or the pair (h, c) for the LSTM
    feed: np.ndarray | None  # (R, H) the last attentional state (input feeding), else None
    #: the weights of the decoder and of the combination packed for their products
    #: (Recurrent.packed_weights, Linear.packed), made once by ``encode`` for every step of the
    #: decoding; None: packed at each step
    packed: DecodingWeights | None = None


class DecodingWeights(NamedTuple):
    """The weights a decoder run step by step reads at every step, packed once."""

    decoder: tuple[Any, ...] | None  # Recurrent.packed_weights()
    combine: Any  # Linear.packed()


class Seq2Seq(Model):
    """An attentional encoder-decoder: source ids (S, B) and target input ids (T, B) -> logits
    over the target vocabulary at every target step (T, B, V).

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes, the special ids included.
        embedding_dim: E, both embeddings.
        hidden_size: H, the decoder's units and the size of the source memory (a bidirectional
            encoder has H/K units per direction, so H must be even then).
        num_layers: decoder layers; ``encoder_layers``: encoder layers (default: the same).
        cell: "lstm" (default), "gru" or "rnn" (any registered cell), for both.
        bidirectional: a bidirectional encoder (default True).
        attention: the score: "general" (default), "dot" or "additive";
            ``attention_size``: A of the additive score.
        input_feeding: feed the last attentional state into the next decoder step (Luong et
            al. 2015): needs the decoder to run step by step in training.
        bridge: "linear" (a learned map of the encoder's final state, per state kind and
            decoder layer, through tanh) or "zeros".
        tie_embeddings: the output layer's weight is the target embedding (E must equal H).
        dropout: on both embeddings' outputs, between stacked layers and before the output
            layer.
        scheduled_sampling: in training, the probability that a row's decoder input at step
            t > 1 is the model's own greedy prediction from step t - 1 instead of the reference
            token (Bengio et al. 2015); 0 is pure teacher forcing. A prediction is a choice, not
            a function of the parameters: no gradient flows through it. Above 0 the decoder
            runs step by step.
        dtype, seed: as for the layers; one seed initialises every block reproducibly.

    Parameters: ``source_embedding.weight``, ``encoder.*`` and ``decoder.*`` (the recurrent
    layers' PyTorch names), ``bridge_h.*``, ``bridge_c.*`` (LSTM), ``attention.*``,
    ``combine.*`` (:math:`W_c, b_c`), ``target_embedding.weight`` and ``generator.*`` (when
    tied, ``generator_bias`` only: :math:`W_o` is the target embedding).

    Example:
        >>> import numpy as np, rnnkit
        >>> from rnnkit.data.pairs import Seq2SeqInput
        >>> model = rnnkit.nn.Seq2Seq(12, 9, embedding_dim=8, hidden_size=16, seed=0)
        >>> rng = np.random.default_rng(0)
        >>> x = Seq2SeqInput(rng.integers(4, 12, (7, 3)), np.array([7, 5, 2]),
        ...                  rng.integers(4, 9, (5, 3)))
        >>> logits, _, cache = model.forward(x)
        >>> logits.shape
        (5, 3, 9)
        >>> _, _, grads = model.backward(np.ones_like(logits), cache)
        >>> grads["attention.weight"].shape
        (16, 16)
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        *,
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
        dropout: float = 0.0,
        scheduled_sampling: float = 0.0,
        dtype: Any = np.float32,
        seed: Any = None,
    ) -> None:
        super().__init__()
        Vs = _checks.positive_int("source_vocab_size", source_vocab_size)
        Vt = _checks.positive_int("target_vocab_size", target_vocab_size)
        E = _checks.positive_int("embedding_dim", embedding_dim)
        H = _checks.positive_int("hidden_size", hidden_size)
        L = _checks.positive_int("num_layers", num_layers)
        Le = L if encoder_layers is None else _checks.positive_int("encoder_layers", encoder_layers)
        self.bidirectional = _checks.boolean("bidirectional", bidirectional)
        K = 2 if self.bidirectional else 1
        if H % K:
            raise ValueError(
                f"hidden_size must be even with a bidirectional encoder (H/2 units each way), "
                f"got {H}"
            )
        self.attention_score = _checks.choice("attention", attention, SCORES)
        self.input_feeding = _checks.boolean("input_feeding", input_feeding)
        self.bridge = _checks.choice("bridge", bridge, BRIDGES)
        self.tie_embeddings = _checks.boolean("tie_embeddings", tie_embeddings)
        if self.tie_embeddings and E != H:
            raise ValueError(f"tie_embeddings needs embedding_dim == hidden_size, got {E} and {H}")
        _checks.probability("dropout", dropout)
        self.scheduled_sampling = _checks.probability(
            "scheduled_sampling", scheduled_sampling, upper_inclusive=True
        )
        dtype = _checks.float_dtype(dtype)
        cell_class = Cell.named(cell)
        n_states = len(cell_class.state_names)
        G = cell_class.num_gates
        D_dec = E + (H if self.input_feeding else 0)
        count = (
            Embedding.count_parameters(Vs, E)
            + Embedding.count_parameters(Vt, E)
            + Recurrent.count_parameters(G, E, H // K, Le, K)
            + Recurrent.count_parameters(G, D_dec, H, L)
            + (n_states * Linear.count_parameters(H, L * H) if self.bridge == "linear" else 0)
            + Attention.count_parameters(H, H, self.attention_score, attention_size)
            + Linear.count_parameters(2 * H, H)
            + (Vt if self.tie_embeddings else Linear.count_parameters(H, Vt))
        )
        limits.check_parameters(
            f"Seq2Seq({Vs}, {Vt}, embedding_dim={E}, hidden_size={H}, num_layers={L}, "
            f"encoder_layers={Le})",
            count,
            dtype.itemsize,
        )
        self.cell = cell
        self.source_vocab_size, self.target_vocab_size = Vs, Vt
        self.embedding_dim, self.hidden_size = E, H
        self.num_layers, self.encoder_layers = L, Le
        self.dtype = dtype
        rngs = spawn_seeds(seed, 13)
        self.source_embedding = Embedding(Vs, E, dtype=dtype, seed=rngs[0])
        self.drop_source = Dropout(dropout, seed=rngs[1])
        self.encoder = make_recurrent(
            cell,
            E,
            H // K,
            Le,
            bidirectional=self.bidirectional,
            dropout=dropout,
            dtype=dtype,
            seed=rngs[2],
        )
        if self.bridge == "linear":
            self.bridge_h = Linear(H, L * H, dtype=dtype, seed=rngs[3])
            if n_states == 2:
                self.bridge_c = Linear(H, L * H, dtype=dtype, seed=rngs[4])
        self.target_embedding = Embedding(Vt, E, dtype=dtype, seed=rngs[5])
        self.drop_target = Dropout(dropout, seed=rngs[6])
        self.decoder = make_recurrent(cell, D_dec, H, L, dropout=dropout, dtype=dtype, seed=rngs[7])
        self.attention = Attention(
            H, H, self.attention_score, attention_size, dtype=dtype, seed=rngs[8]
        )
        self.combine = Linear(2 * H, H, dtype=dtype, seed=rngs[9])
        self.drop_out = Dropout(dropout, seed=rngs[10])
        if self.tie_embeddings:  # W_o is the target embedding; only b_o is the generator's
            bound = 1.0 / np.sqrt(H)
            self._params["generator_bias"] = rngs[11].uniform(-bound, bound, Vt).astype(dtype)
        else:
            self.generator = Linear(H, Vt, dtype=dtype, seed=rngs[11])
        self.dropout = float(dropout)
        self._n_states = n_states
        self.rng = rngs[12]  # the draws of scheduled sampling

    def __repr__(self) -> str:
        return (
            f"Seq2Seq({self.source_vocab_size}, {self.target_vocab_size}, "
            f"embedding_dim={self.embedding_dim}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, cell={self.cell!r})"
        )

    # -- pieces shared by training and decoding -------------------------------------------------

    def _generator(self) -> tuple[np.ndarray, np.ndarray]:
        """W_o (V, H) and b_o (V,): the generator's, or with tied embeddings the target
        embedding and the model's own ``generator_bias``."""
        if self.tie_embeddings:
            return self.target_embedding.parameters()["weight"], self._params["generator_bias"]
        params = self.generator.parameters()
        return params["weight"], params["bias"]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        """z = x W_o^T + b_o over the last axis."""
        weight, bias = self._generator()
        return affine(x, weight, bias)

    def _check_input(self, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source (S, B), source lengths (B,), target input (T, B) from a Seq2SeqInput."""
        if not isinstance(x, tuple) or len(x) != 3:
            raise TypeError(
                "x must be a Seq2SeqInput (source (S, B), source_lengths (B,), target_in (T, B)),"
                f" got {type(x).__name__}"
            )
        source, lengths, target_in = x
        source = _checks.token_ids("x.source", source, self.source_vocab_size)
        target_in = _checks.token_ids("x.target_in", target_in, self.target_vocab_size)
        if source.ndim != 2 or target_in.ndim != 2 or source.shape[1] != target_in.shape[1]:
            raise ValueError(
                f"x.source must be (S, B) and x.target_in (T, B) with one B, got shapes "
                f"{source.shape} and {target_in.shape}"
            )
        S, B = source.shape
        lengths = _checks.lengths(lengths, S, B)
        if (lengths < 1).any():
            raise ValueError("x.source_lengths must be >= 1: every source needs a token")
        return source, lengths, target_in

    def _source_mask(self, lengths: np.ndarray, S: int) -> np.ndarray:
        return np.arange(S)[:, None] < lengths[None, :]  # (S, B)

    def _top_state(self, state_T: Any) -> tuple[np.ndarray, ...]:
        """The encoder's top layer's final states, both directions joined: per state (B, H)."""
        K = self.encoder.num_directions
        parts = state_T if isinstance(state_T, tuple) else (state_T,)
        return tuple(np.concatenate(list(s[-K:]), axis=-1) for s in parts)  # (B, H) each

    def _bridges(self) -> tuple[Linear, ...]:
        return (self.bridge_h, self.bridge_c) if self._n_states == 2 else (self.bridge_h,)

    def _initial_state(self, top: tuple[np.ndarray, ...]) -> tuple[Any, tuple]:
        """The decoder's initial state from the encoder's top states, and the bridge caches."""
        L, H = self.num_layers, self.hidden_size
        B = top[0].shape[0]
        if self.bridge == "zeros":
            zeros = tuple(np.zeros((L, B, H), dtype=self.dtype) for _ in top)
            return self._as_state(zeros), (None,) * len(top)
        states, caches = [], []
        for bridge, s in zip(self._bridges(), top):
            pre, cache = bridge.forward(s)  # (B, L*H)
            s0 = np.tanh(pre).reshape(B, L, H).transpose(1, 0, 2)  # (L, B, H)
            states.append(np.ascontiguousarray(s0))
            caches.append((cache, states[-1]))
        return self._as_state(tuple(states)), tuple(caches)

    def _as_state(self, parts: tuple[np.ndarray, ...]) -> Any:
        return parts if self._n_states == 2 else parts[0]

    # -- training -------------------------------------------------------------------------------

    def forward(self, x: Any, state: Any = None, lengths: Any = None):
        """``x`` a :class:`~rnnkit.data.pairs.Seq2SeqInput` -> ``(logits (T, B, V), None,
        cache)``. ``state`` must be None (each batch starts from its sources); ``lengths`` (the
        target lengths, from the data source) are not needed: the loss masks padded steps."""
        if state is not None:
            raise ValueError("state must be None: a Seq2Seq starts every batch from its sources")
        source, src_lengths, target_in = self._check_input(x)
        S = source.shape[0]
        T = target_in.shape[0]
        e, c_semb = self.source_embedding.forward(source)  # (S, B, E)
        e, c_sdrop = self.drop_source.forward(e)
        mem, enc_T, c_enc = self.encoder.forward(e, None, src_lengths)  # (S, B, H)
        memory, c_mem = self.attention.prepare(mem, self._source_mask(src_lengths, S))
        s0, c_bridge = self._initial_state(self._top_state(enc_T))
        f, c_temb = self.target_embedding.forward(target_in)  # (T, B, E)
        f, c_tdrop = self.drop_target.forward(f)
        if self._stepwise():
            ht, steps, used = self._decode_steps(f, s0, memory, target_in, c_tdrop.scale)
            if used is not None:  # scheduled sampling fed some predictions: their embeddings
                _, c_temb = self.target_embedding.forward(used)  # get the gradient
        else:
            ht, steps = self._decode_all(f, s0, memory)
        d, c_out = self.drop_out.forward(ht)  # (T, B, H)
        if self.tie_embeddings:
            logits, c_gen = self._logits(d), d
        else:
            logits, c_gen = self.generator.forward(d)  # (T, B, V)
        cache = Seq2SeqCache(
            c_semb, c_sdrop, c_enc, memory, c_mem, c_bridge, c_temb, c_tdrop, steps, c_out,
            c_gen, src_lengths, T,
        )  # fmt: skip
        return logits, None, cache

    def _decode_all(self, f: np.ndarray, s0: Any, memory: AttentionMemory):
        """Decoder, attention and combination over all T steps at once (no input feeding)."""
        hs, _, c_dec = self.decoder.forward(f, s0)  # (T, B, H)
        ctx, _, c_att = self.attention.forward(hs, memory)  # (T, B, H)
        pre, c_comb = self.combine.forward(np.concatenate([ctx, hs], axis=-1))
        ht = np.tanh(pre)  # (T, B, H)
        return ht, (c_dec, c_att, c_comb, ht)

    def _decoding_weights(self, backward: bool = False) -> DecodingWeights:
        """The decoder's and the combination's weights packed for the products of a decoding
        or a step-by-step forward pass (and of its backward pass, with ``backward``)."""
        return DecodingWeights(self.decoder.packed_weights(backward), self.combine.packed(backward))

    def _stepwise(self) -> bool:
        """Whether training runs the decoder step by step (input feeding, scheduled sampling)."""
        return self.input_feeding or (self.training and self.scheduled_sampling > 0)

    def _decode_steps(
        self,
        f: np.ndarray,
        s0: Any,
        memory: AttentionMemory,
        target_in: np.ndarray,
        scale: np.ndarray | None,
    ):
        """Decoder, attention and combination step by step, feeding each attentional state
        into the next step (input feeding) and, with scheduled sampling, some of the model's
        own predictions in place of the reference tokens (then ``f`` is changed in place and
        the ids fed are returned, else None). ``scale`` is the target dropout's (T, B, E)."""
        T, B, _ = f.shape
        H = self.hidden_size
        feed = np.zeros((B, H), dtype=self.dtype) if self.input_feeding else None
        state = s0
        ht = np.empty((T, B, H), dtype=self.dtype)
        caches = []
        used = None
        sampling = self.training and self.scheduled_sampling > 0
        weight = self.target_embedding.parameters()["weight"]
        # the weights packed once for every step's products (forward, and in training, where
        # the backward pass follows, backward)
        packed = self._decoding_weights(backward=self.training)
        for t in range(T):
            if sampling and t > 0:
                rows = np.flatnonzero(self.rng.random(B) < self.scheduled_sampling)
                if rows.size:
                    used = target_in.copy() if used is None else used
                    used[t, rows] = self._logits(ht[t - 1, rows]).argmax(axis=-1)
                    f[t, rows] = weight[used[t, rows]] * (1 if scale is None else scale[t, rows])
            u = f[t] if feed is None else np.concatenate([f[t], feed], axis=-1)
            h, state, c_dec = self.decoder.forward(u[None], state, packed=packed.decoder)
            ctx, _, c_att = self.attention.forward(h[0], memory)  # (B, H)
            pre, c_comb = self.combine.forward(np.concatenate([ctx, h[0]], axis=-1), packed.combine)
            ht[t] = np.tanh(pre)  # (B, H)
            feed = None if feed is None else ht[t]
            caches.append((c_dec, c_att, c_comb))
        return ht, (caches, ht), used

    def backward(self, dlogits: np.ndarray, cache: Seq2SeqCache, dstate: Any = None):
        """``dlogits`` (T, B, V) -> ``(None, None, grads)``: token ids have no gradient."""
        if not isinstance(cache, Seq2SeqCache):
            raise TypeError(f"cache must be a Seq2SeqCache, got {type(cache).__name__}")
        V = self.target_vocab_size
        B = cache.source_lengths.shape[0]
        dlogits = _checks.array("dlogits", dlogits, (cache.T, B, V), self.dtype)
        grads: dict[str, np.ndarray] = {}
        if self.tie_embeddings:
            d = cache.generator  # (T, B, H)
            dd = dlogits @ self._generator()[0]  # (T, B, H)
            dW_o = dlogits.reshape(-1, V).T @ d.reshape(-1, d.shape[-1])  # (V, H)
            grads["generator_bias"] = dlogits.reshape(-1, V).sum(axis=0)
        else:
            dd, g = self.generator.backward(dlogits, cache.generator)
            grads.update(prefixed("generator", g))
            dW_o = None
        dht, _ = self.drop_out.backward(dd, cache.drop_out)  # (T, B, H)
        dmem = self.attention.zero_memory_grad(cache.memory)
        if isinstance(cache.steps[0], list):  # run step by step
            df, ds0 = self._backward_steps(dht, cache.steps, dmem, grads)
        else:
            df, ds0 = self._backward_all(dht, cache.steps, dmem, grads)
        df, _ = self.drop_target.backward(df, cache.drop_target)
        _, g = self.target_embedding.backward(df, cache.target_embedding)
        if dW_o is not None:
            g = {"weight": g["weight"] + dW_o}
        grads.update(prefixed("target_embedding", g))
        # the bridge: dL/d(encoder's top states)
        ds0 = ds0 if isinstance(ds0, tuple) else (ds0,)
        K, He = self.encoder.num_directions, self.hidden_size // self.encoder.num_directions
        d_top = []
        for i, (bcache, ds) in enumerate(zip(cache.bridge, ds0)):
            if bcache is None:
                d_top.append(None)
                continue
            c_lin, s0 = bcache
            dpre = (ds * (1.0 - s0 * s0)).transpose(1, 0, 2).reshape(B, -1)  # (B, L*H)
            dtop, g = self._bridges()[i].backward(dpre, c_lin)
            grads.update(prefixed(("bridge_h", "bridge_c")[i], g))
            d_top.append(dtop)  # (B, H)
        dstate_enc = None
        if any(d is not None for d in d_top):
            parts = []
            for d in d_top:
                full = np.zeros((self.encoder_layers * K, B, He), dtype=self.dtype)
                for k in range(K):
                    full[-K + k] = d[:, k * He : (k + 1) * He]
                parts.append(full)
            dstate_enc = tuple(parts) if len(parts) == 2 else parts[0]
        dkeys, g = self.attention.prepare_backward(dmem, cache.memory_cache)
        _accumulate(grads, prefixed("attention", g))  # + the per-step (query-side) parts
        de, _, g = self.encoder.backward(dkeys, cache.encoder, dstate_enc)
        grads.update(prefixed("encoder", g))
        de, _ = self.drop_source.backward(de, cache.drop_source)
        _, g = self.source_embedding.backward(de, cache.source_embedding)
        grads.update(prefixed("source_embedding", g))
        return None, None, self._ordered(grads)

    def _backward_all(self, dht, steps, dmem, grads):
        c_dec, c_att, c_comb, ht = steps
        H = self.hidden_size
        dpre = dht * (1.0 - ht * ht)
        dcat, g = self.combine.backward(dpre, c_comb)
        grads.update(prefixed("combine", g))
        dctx, dhs = dcat[..., :H], dcat[..., H:]
        dq, dm, g = self.attention.backward(np.ascontiguousarray(dctx), c_att)
        self.attention.add_memory_grad(dmem, dm)
        _accumulate(grads, prefixed("attention", g))
        df, ds0, g = self.decoder.backward(dhs + dq, c_dec)
        grads.update(prefixed("decoder", g))
        return df, ds0

    def _backward_steps(self, dht, steps, dmem, grads):
        caches, ht = steps
        T, B, H = ht.shape
        E = self.embedding_dim
        df = np.empty((T, B, E), dtype=self.dtype)
        dfeed = np.zeros((B, H), dtype=self.dtype)
        dstate = None
        sums: dict[str, np.ndarray] = {}
        # the weight gradients of the combination and the decoder: deferred, then one matrix
        # product each over all T steps (not T small products and a sum)
        comb_work, dec_work = [], []
        for t in range(T - 1, -1, -1):
            c_dec, c_att, c_comb = caches[t]
            dpre = (dht[t] + dfeed) * (1.0 - ht[t] * ht[t])  # (B, H)
            dcat, work = self.combine.backward(dpre, c_comb, defer=True)
            comb_work.append(work)
            dq, dm, g = self.attention.backward(np.ascontiguousarray(dcat[:, :H]), c_att)
            self.attention.add_memory_grad(dmem, dm)
            _accumulate(sums, prefixed("attention", g))
            du, dstate, work = self.decoder.backward(
                (dcat[:, H:] + dq)[None], c_dec, dstate, defer=True
            )
            dec_work.append(work)
            df[t] = du[0, :, :E]
            if self.input_feeding:
                dfeed = du[0, :, E:]
        sums.update(prefixed("combine", self.combine.weight_grads(comb_work)))
        sums.update(prefixed("decoder", self.decoder.weight_grads(dec_work)))
        grads.update(sums)
        return df, dstate

    # -- decoding -------------------------------------------------------------------------------

    def encode(self, source: Any, source_lengths: Any) -> DecoderState:
        """The start of decoding (evaluation mode, no cache): source (S, B) ids padded with
        PAD, its lengths (B,) -> the rows' :class:`DecoderState`, one row per input.

        An input's state does not depend on the other inputs, bit for bit: a single source is
        encoded as two, as :meth:`decode_step` computes a single row (the projection of the
        keys and the bridge would otherwise be matrix-vector products, rounded differently).
        """
        source = _checks.token_ids("source", source, self.source_vocab_size)
        if source.ndim != 2:
            raise ValueError(f"source must be 2-D (S, B), got shape {source.shape}")
        S, B = source.shape
        lengths = _checks.lengths(source_lengths, S, B)
        if (lengths < 1).any():
            raise ValueError("source_lengths must be >= 1: every source needs a token")
        if B == 1:
            twins = self.encode(np.repeat(source, 2, axis=1), np.repeat(lengths, 2))
            return DecoderState(
                twins.memory.columns([0]), np.arange(1), *self._rows(twins, [0]), twins.packed
            )
        with self.evaluation(), exact_rows():
            e, _ = self.source_embedding.forward(source)
            mem, enc_T, _ = self.encoder.forward(e, None, lengths)  # (S, B, H)
            memory, _ = self.attention.prepare(mem, self._source_mask(lengths, S))
            s0, _ = self._initial_state(self._top_state(enc_T))
        feed = np.zeros((B, self.hidden_size), dtype=self.dtype) if self.input_feeding else None
        # the memory laid out column by column: each input's results the same bits in any batch
        packed = self._decoding_weights()  # once for every step of the decoding
        return DecoderState(memory.columns(np.arange(B)), np.arange(B), s0, feed, packed)

    def decode_step(
        self, tokens: Any, dstate: DecoderState
    ) -> tuple[np.ndarray, DecoderState, np.ndarray]:
        """One decoding step for every row: the previous tokens (R,) (BOS first) -> the
        next token's log-probabilities (R, V), the new state and the attention weights (R, S).

        A row's results do not depend on the other rows, bit for bit. The decoder runs as its
        layer's forward over one time step (the compiled loop, whose matrix products take all R
        rows at once; the streaming :meth:`~rnnkit.nn.Recurrent.step` is built for a few rows
        and its cost grows with each), and a single row is computed as two: a matrix product of
        one row takes another path (a matrix-vector product) whose rounding differs. The
        attention (:meth:`~rnnkit.nn.Attention.apply_grouped`) reads the memory of each input
        where it is, without copies per row: the rows of beam search, the beams of each input
        side by side, are groups of w rows on one memory column, each group its own matrix
        products (so a row depends on its group's w, which beam search fixes for an input at a
        step whatever the batch). The single row's twin gets its own copy of the memory column,
        so that it is a group of its own too, as in a batch of greedy search.
        """
        tokens = _checks.token_ids("tokens", tokens, self.target_vocab_size)
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D (R,), got shape {tokens.shape}")
        if len(tokens) == 1:
            twins = DecoderState(
                dstate.memory.columns(np.repeat(dstate.source, 2)), np.arange(2),
                *self._rows(dstate, [0, 0]), dstate.packed,
            )  # fmt: skip
            log_probs, state, weights = self.decode_step(np.repeat(tokens, 2), twins)
            return (
                log_probs[:1],
                DecoderState(dstate.memory, dstate.source, *self._rows(state, [0]), state.packed),
                weights[:1],
            )
        with exact_rows():  # each row's products the same bits in any batch
            f = self.target_embedding.parameters()["weight"][tokens]  # (R, E)
            u = f if dstate.feed is None else np.concatenate([f, dstate.feed], axis=-1)
            packed = dstate.packed or DecodingWeights(None, None)
            with self.decoder.evaluation():
                h, state, _ = self.decoder.forward(u[None], dstate.state, packed=packed.decoder)
            ctx, weights = self.attention.apply_grouped(h[0], dstate.memory, dstate.source)
            cat = np.concatenate([ctx, h[0]], axis=-1)  # (R, 2 H)
            ht = np.tanh(self.combine.apply(cat, packed.combine))  # (R, H)
            z = self._logits(ht)  # (R, V)
            z = z - z.max(axis=-1, keepdims=True)
            log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        return (
            log_probs,
            DecoderState(
                dstate.memory,
                dstate.source,
                state,
                ht if self.input_feeding else None,
                dstate.packed,
            ),
            weights,
        )

    def select(self, dstate: DecoderState, rows: Any) -> DecoderState:
        """The decoding state of ``rows`` (N,) (repeats allowed): beams made and reordered.

        The rows' decoder states and input feeding are gathered; the memory is not copied,
        only ``source`` is indexed, unless the rows use at most half of its columns (inputs
        finished): then the memory keeps only those columns, in their order, and ``source``
        is renumbered. Each compaction at least halves the memory, so a whole decoding copies
        at most the memory's size once more.
        """
        rows = np.asarray(rows, dtype=np.intp)
        memory, source = dstate.memory, dstate.source[rows]  # (N,)
        in_use = np.bincount(source, minlength=memory.mask.shape[1]) > 0  # (M,)
        if 2 * np.count_nonzero(in_use) <= in_use.size:
            memory = memory.columns(np.flatnonzero(in_use))  # (S, M', ...), M' <= M / 2
            source = (np.cumsum(in_use) - 1)[source]  # (N,) the kept columns renumbered
        return DecoderState(memory, source, *self._rows(dstate, rows), dstate.packed)

    def _rows(self, dstate: DecoderState, rows: Any) -> tuple[Any, np.ndarray | None]:
        """The decoder state and the input feeding of ``rows``, gathered (contiguous)."""
        parts = dstate.state if isinstance(dstate.state, tuple) else (dstate.state,)
        state = tuple(np.ascontiguousarray(s[:, rows]) for s in parts)
        feed = None if dstate.feed is None else dstate.feed[rows]
        return self._as_state(state), feed


def _accumulate(total: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
    for name, value in grads.items():
        if name in total:
            total[name] += value
        else:
            total[name] = value.copy()
