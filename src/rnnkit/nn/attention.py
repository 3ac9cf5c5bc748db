r"""Attention of a decoder over a source sequence: the global attention of Luong et al. (2015),
scores ``"dot"`` and ``"general"``, and the additive attention of Bahdanau et al. (2015),
score ``"additive"`` (Luong's ``"concat"`` is the same function).

Shapes: S = source positions, B = batch, T = decoder steps attended at once, K = key size,
Q = query size, A = attention size ("additive"), P = size of the projected keys (K for "dot",
Q for "general", A for "additive"). Layout is time-major, as everywhere in rnnkit: keys
(S, B, K), mask (S, B), queries (B, Q) for one decoder step or (T, B, Q) for T steps. In
decoding (:meth:`Attention.apply_grouped`): R = query rows, G = groups of rows sharing a memory
column, w = rows per group (R = G w).

Forward, for one batch column (b dropped), query :math:`q_t`, keys :math:`k_s` and mask
:math:`m_s \in \{0, 1\}` (1 at valid positions, at least one per column). The source side is
projected once per sequence (:meth:`Attention.prepare`):

.. math::

    p_s = k_s \ (\text{dot}), \qquad p_s = W k_s \ (\text{general}), \qquad
    p_s = W_k k_s \ (\text{additive})

then each decoder step (:meth:`Attention.forward`) scores every position, normalises the scores
over the valid positions only, and averages the keys:

.. math::

    e_{ts} &= q_t^\top p_s \ (\text{dot, general}), \qquad
    e_{ts} = v^\top u_{ts}, \quad u_{ts} = \tanh(W_q q_t + p_s + b) \ (\text{additive}) \\
    a_{ts} &= \frac{m_s \exp(e_{ts} - \mu_t)}{\sum_{s'} m_{s'} \exp(e_{ts'} - \mu_t)}, \qquad
    \mu_t = \max_{s': m_{s'} = 1} e_{ts'} \\
    c_t &= \sum_s a_{ts} k_s

Padded positions get weight exactly 0 (their score is replaced by :math:`-\infty` before the
exponential), so their keys, which must be finite, change nothing.

Backward, from :math:`\delta c_t = \partial L / \partial c_t` and, when a loss is put on the
weights, :math:`\delta a_{ts} = \partial L / \partial a_{ts}` (else 0):

.. math::

    \delta a_{ts} &\mathrel{+}= \delta c_t^\top k_s, \qquad
    \delta e_{ts} = a_{ts} \Big(\delta a_{ts} - \sum_{s'} a_{ts'} \delta a_{ts'}\Big), \qquad
    \delta k_s = \sum_t a_{ts} \delta c_t \\
    \text{dot, general:} \quad \delta q_t &= \sum_s \delta e_{ts} p_s, \qquad
    \delta p_s = \sum_t \delta e_{ts} q_t \\
    \text{additive:} \quad \delta z_{ts} &= \delta e_{ts}\, v \odot (1 - u_{ts}^2), \qquad
    \delta q_t = W_q^\top \sum_s \delta z_{ts}, \qquad \delta p_s = \sum_t \delta z_{ts} \\
    \frac{\partial L}{\partial W_q} &= \sum_{t,s} \delta z_{ts} q_t^\top, \qquad
    \frac{\partial L}{\partial b} = \sum_{t,s} \delta z_{ts}, \qquad
    \frac{\partial L}{\partial v} = \sum_{t,s} \delta e_{ts} u_{ts}

(:math:`\delta e_{ts} = 0` at padded positions, since :math:`a_{ts} = 0` there).
:meth:`Attention.backward` returns :math:`\delta k` and :math:`\delta p` as the memory's
gradient, :class:`AttentionMemoryGrad`; the caller sums it over the decoder steps and
:meth:`Attention.prepare_backward` closes the projection:

.. math::

    \frac{\partial L}{\partial k_s} = \delta k_s + \delta p_s \ (\text{dot}), \qquad
    \frac{\partial L}{\partial k_s} = \delta k_s + W^\top \delta p_s, \quad
    \frac{\partial L}{\partial W} = \sum_s \delta p_s k_s^\top \ (\text{general; } W_k
    \text{ for additive})

Every sum also runs over the batch columns.

Decoding (inference only, :meth:`Attention.apply_grouped`) attends R query rows to a memory
kept once per *input*: row r attends memory column :math:`\sigma_r` (``source``), with the
same equations as above for :math:`q_r` against the keys, mask and projected keys of column
:math:`\sigma_r`. When the rows come in G groups of w, ``source == repeat(cols, w)`` with
``cols`` (G,) strictly increasing (the beams of each input, as beam search keeps them; greedy
search is w = 1), the scores and the contexts are batched matrix products over the groups,

.. math::

    E_g &= Q_g P_{c_g}^\top \ (\text{dot, general}), \qquad
    (E_g)_{js} = v^\top \tanh(W_q (Q_g)_j + (P_{c_g})_s + b) \ (\text{additive}) \\
    a_g &= \mathrm{softmax}_{m_{c_g}}(E_g) \ (w \times S, \text{ each row over the valid
    positions of } c_g), \qquad C_g = a_g K_{c_g} \ (w \times K)

(:math:`Q_g` the w queries (w, Q) of group g, :math:`P_c` (S, P) and :math:`K_c` (S, K) the
projected keys and keys of column c), straight from views of the memory: nothing is copied
(columns between the first and the last group's that no row uses get zero queries, their
results dropped). Any other pattern is computed per row over a gathered copy of the columns
(a group of one row each). A group's results depend only on its queries, its column and w,
bit for bit, when the memory is laid out column by column (:meth:`AttentionMemory.columns`).

Parameters: "dot" has none; "general" ``weight`` W (Q, K); "additive" ``query_weight`` W_q
(A, Q), ``key_weight`` W_k (A, K), ``bias`` b (A,), ``v`` (A,).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.nn.linear import affine, affine_backward
from rnnkit.nn.module import Module

SCORES = ("dot", "general", "additive")


class AttentionMemory(NamedTuple):
    """The source side of attention, prepared once per source sequence by ``prepare``."""

    keys: np.ndarray  # (S, B, K) the source memory (encoder outputs), averaged into the context
    mask: np.ndarray  # (S, B) bool, True at valid positions
    projected: np.ndarray  # (S, B, P) p = k ("dot": the keys themselves), W k, or W_k k

    def columns(self, cols: np.ndarray) -> AttentionMemory:
        """The memory of the batch columns ``cols`` (N,) int, in that order: a copy laid out
        column by column, each column's (S, K) keys and (S, P) projected keys contiguous ((S, N,
        K) views of (N, S, K) arrays). Decoding keeps its memory so: a column's matrix
        products then see the same strides whatever N, so the same BLAS path and the same bits
        (with the time-major layout, one column alone, N = 1, can round differently). The
        projected keys of "dot" stay the keys themselves."""

        def gather(x: np.ndarray) -> np.ndarray:  # (S, B, F) -> (S, N, F), column by column
            return np.ascontiguousarray(x.transpose(1, 0, 2)[cols]).transpose(1, 0, 2)

        keys = gather(self.keys)
        projected = keys if self.projected is self.keys else gather(self.projected)
        return AttentionMemory(keys, self.mask[:, cols], projected)


class AttentionMemoryGrad(NamedTuple):
    """dL/d(memory) of the differentiable fields: sum it over decoder steps (``add_memory_grad``)
    and hand the total to ``prepare_backward``."""

    keys: np.ndarray  # (S, B, K) through the context, sum_t a_ts dc_t
    projected: np.ndarray  # (S, B, P) through the scores


class AttentionPrepareCache(NamedTuple):
    keys: np.ndarray  # (S, B, K) kept for dL/dW of the projection


class AttentionCache(NamedTuple):
    query: np.ndarray  # (T, B, Q) the queries (T = 1 for one step given as (B, Q))
    memory: AttentionMemory  # the source memory attended over
    weights: np.ndarray  # (T, B, S) attention weights, exactly 0 at padded positions
    hidden: np.ndarray | None  # (T, B, S, A) u = tanh(W_q q + p + b) ("additive"), else None
    single: bool  # the query was one step (B, Q): outputs and gradients have no T axis


class AttendCache(NamedTuple):
    prepare: AttentionPrepareCache  # of the source side
    step: AttentionCache  # of the queries


# -- the mathematics ---------------------------------------------------------------------------


def masked_softmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax of scores (T, B, S) over the positions where ``mask`` (S, B) is True, the maximum
    subtracted; exactly 0 elsewhere. Every column of ``mask`` needs a True."""
    return _softmax_where(scores, mask.T)


def _softmax_where(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of ``scores`` (..., S) where ``valid`` (broadcast to it) is
    True, the maximum subtracted; exactly 0 elsewhere."""
    shifted = np.where(valid, scores, -np.inf)  # (..., S); exp(-inf) is exactly 0
    shifted -= shifted.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def masked_softmax_backward(dweights: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """dL/de (T, B, S) from dL/da and a (T, B, S); 0 at padded positions, where a = 0."""
    return weights * (dweights - (weights * dweights).sum(axis=-1, keepdims=True))


def project_keys(score: str, params: Mapping[str, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """p (S, B, P) from keys (S, B, K): the keys themselves for "dot", else one matrix product."""
    if score == "dot":
        return keys
    W = params["weight" if score == "general" else "key_weight"]  # (P, K)
    return affine(keys, W, None)  # (S, B, P)


def project_keys_backward(
    score: str, params: Mapping[str, np.ndarray], dmemory: AttentionMemoryGrad, keys: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """dL/dkeys (S, B, K) and the projection's weight gradient, from the memory's gradient
    summed over every decoder step."""
    if score == "dot":
        return dmemory.keys + dmemory.projected, {}
    name = "weight" if score == "general" else "key_weight"
    W = params[name]  # (P, K)
    dkeys, dW = affine_backward(dmemory.projected, keys, W)  # (S, B, K), (P, K)
    dkeys += dmemory.keys
    return dkeys, {name: dW}


def attention_forward(
    score: str, params: Mapping[str, np.ndarray], query: np.ndarray, memory: AttentionMemory
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """context (T, B, K), weights (T, B, S) and, for "additive", u (T, B, S, A) (else None),
    from queries (T, B, Q). The products are batched over B with time-major views written
    straight into time-major outputs: no loop and no transposed copy."""
    keys, mask, projected = memory
    T, B = query.shape[:2]
    S, K = keys.shape[0], keys.shape[2]
    scores = np.empty((T, B, S), dtype=keys.dtype)
    hidden = None
    if score == "additive":
        zq = query @ params["query_weight"].T + params["bias"]  # (T, B, A)
        hidden = zq[:, :, None, :] + projected.transpose(1, 0, 2)[None]  # (T, B, S, A)
        np.tanh(hidden, out=hidden)
        np.matmul(hidden, params["v"], out=scores)
    else:
        np.matmul(
            query.transpose(1, 0, 2),  # (B, T, Q)
            projected.transpose(1, 2, 0),  # (B, Q, S)
            out=scores.transpose(1, 0, 2),  # (B, T, S)
        )
    weights = masked_softmax(scores, mask)  # (T, B, S)
    context = np.empty((T, B, K), dtype=keys.dtype)
    np.matmul(
        weights.transpose(1, 0, 2),  # (B, T, S)
        keys.transpose(1, 0, 2),  # (B, S, K)
        out=context.transpose(1, 0, 2),  # (B, T, K)
    )
    return context, weights, hidden


def row_groups(source: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(cols (G,), w)`` when ``source`` (R,), R >= 1, is ``repeat(cols, w)`` with ``cols``
    strictly increasing: G groups of w rows, group g attending memory column ``cols[g]``; else
    None. w is the length of the first run of equal entries."""
    change = np.flatnonzero(source[1:] != source[:-1])  # (runs - 1,)
    w = int(change[0]) + 1 if change.size else source.size
    if source.size % w:
        return None
    cols = source[::w]  # (G,)
    if (np.diff(cols) <= 0).any() or not np.array_equal(np.repeat(cols, w), source):
        return None
    return cols, w


def attention_grouped(
    score: str,
    params: Mapping[str, np.ndarray],
    query: np.ndarray,
    memory: AttentionMemory,
    cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """context (G, w, K) and weights (G, w, S) of queries (G, w, Q), group g against memory
    column ``cols[g]`` (``cols`` (G,) strictly increasing); inference only, no cache.

    The groups are batched over the columns ``cols[0] .. cols[-1]`` of the memory, views of
    it: the unused columns of that span (when ``cols`` has gaps) get zero queries and their
    results are dropped, so nothing of the memory is copied. Each group is its own matrix
    product of (w, P) by (P, S), then (w, S) by (S, K), whatever the other groups: with a
    memory laid out by :meth:`AttentionMemory.columns` (the strides of a column then do not
    depend on the number of columns), a group's results depend only on its queries, its
    column and w, bit for bit."""
    keys, mask, projected = memory
    G, w, Q = query.shape
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    n = hi - lo  # groups computed: G, or more when cols has gaps
    if n > G:
        padded = np.zeros((n, w, Q), dtype=query.dtype)  # (n, w, Q)
        padded[cols - lo] = query
        query = padded
    if score == "additive":
        zq = query @ params["query_weight"].T + params["bias"]  # (n, w, A)
        hidden = zq[:, :, None, :] + projected[:, lo:hi].transpose(1, 0, 2)[:, None]
        np.tanh(hidden, out=hidden)  # (n, w, S, A)
        scores = hidden @ params["v"]  # (n, w, S)
    else:
        scores = query @ projected[:, lo:hi].transpose(1, 2, 0)  # (n, w, P) @ (n, P, S)
    weights = _softmax_where(scores, mask[:, lo:hi].T[:, None, :])  # (n, w, S)
    context = weights @ keys[:, lo:hi].transpose(1, 0, 2)  # (n, w, S) @ (n, S, K)
    if n > G:
        context, weights = context[cols - lo], weights[cols - lo]  # (G, w, K), (G, w, S)
    return context, weights


def _sum_over_steps(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[s, b] = sum_t x[t, b, s] y[t, b]``: (T, B, S) and (T, B, F) -> (S, B, F). One step
    is an outer product, which np.matmul does about 4x slower than einsum (its inner size 1
    misses BLAS); from two steps on, the batched matrix product is much the faster."""
    if x.shape[0] == 1:
        return np.einsum("bs,bf->sbf", x[0], y[0], out=out)
    np.matmul(x.transpose(1, 2, 0), y.transpose(1, 0, 2), out=out.transpose(1, 0, 2))  # (B, S, F)
    return out


def attention_backward(
    score: str,
    params: Mapping[str, np.ndarray],
    dcontext: np.ndarray,
    dweights: np.ndarray | None,
    cache: AttentionCache,
) -> tuple[np.ndarray, AttentionMemoryGrad, dict[str, np.ndarray]]:
    """dL/dquery (T, B, Q), dL/d(memory) and the gradients of the step's parameters (those of
    "additive": query_weight, bias, v) from dL/dcontext (T, B, K) and optional dL/dweights
    (T, B, S); see the module docstring."""
    query, memory, weights, hidden, _ = cache
    keys, _, projected = memory
    dcB = dcontext.transpose(1, 0, 2)  # (B, T, K)
    dw = np.empty_like(weights)  # (T, B, S)
    np.matmul(dcB, keys.transpose(1, 2, 0), out=dw.transpose(1, 0, 2))  # (B, T, S)
    if dweights is not None:
        dw += dweights
    dkeys = _sum_over_steps(weights, dcontext, np.empty(keys.shape, keys.dtype))  # (S, B, K)
    dscores = masked_softmax_backward(dw, weights)  # (T, B, S)
    grads: dict[str, np.ndarray] = {}
    if score == "additive":
        W_q, v = params["query_weight"], params["v"]  # (A, Q), (A,)
        A, Q = W_q.shape
        dz = hidden * hidden  # (T, B, S, A)
        np.subtract(1, dz, out=dz)
        dz *= dscores[..., None]
        dz *= v
        dzq = dz.sum(axis=2)  # (T, B, A)
        dprojected = np.ascontiguousarray(dz.sum(axis=0).transpose(1, 0, 2))  # (S, B, A)
        dquery = dzq @ W_q  # (T, B, Q)
        grads["query_weight"] = dzq.reshape(-1, A).T @ query.reshape(-1, Q)  # (A, Q)
        grads["bias"] = dzq.sum(axis=(0, 1))  # (A,)
        grads["v"] = dscores.reshape(-1) @ hidden.reshape(-1, A)  # (A,)
    else:
        dsB = dscores.transpose(1, 0, 2)  # (B, T, S)
        dquery = np.empty(query.shape, query.dtype)  # (T, B, Q)
        np.matmul(dsB, projected.transpose(1, 0, 2), out=dquery.transpose(1, 0, 2))
        dprojected = np.empty(projected.shape, projected.dtype)  # (S, B, Q)
        _sum_over_steps(dscores, query, dprojected)
    return dquery, AttentionMemoryGrad(dkeys, dprojected), grads


# -- the block ---------------------------------------------------------------------------------


class Attention(Module):
    r"""Attention of decoder queries over a masked source memory; see the module docstring for
    the forward and backward equations.

    The source side is prepared once per sequence, then attended by any number of decoder
    steps, one at a time or all at once:

    - ``memory, mcache = prepare(keys, mask)``: keys (S, B, K), mask (S, B) bool or None
      (all valid) -> :class:`AttentionMemory` (keys, mask, projected keys p (S, B, P)).
    - ``context, weights, cache = forward(query, memory)``: query (B, Q) -> context (B, K),
      weights (B, S); or query (T, B, Q) -> context (T, B, K), weights (T, B, S).
    - ``dquery, dmemory, grads = backward(dcontext, cache, dweights=None)``: dmemory is an
      :class:`AttentionMemoryGrad`; sum it over the steps with ``add_memory_grad`` into
      ``zero_memory_grad(memory)``, then
    - ``dkeys, grads = prepare_backward(dmemory, mcache)``.
    - ``attend(query, keys, mask)`` / ``attend_backward(dcontext, cache, dweights=None)`` do
      both halves at once; ``apply(query, memory) -> (context, weights)`` keeps no cache
      (inference, step-by-step decoding); ``apply_grouped(query, memory, source)`` neither:
      row r against memory column ``source[r]`` (decoding with a memory kept once per input).

    Every ``grads`` dict (of ``backward``, ``prepare_backward`` and ``attend_backward``) has
    every parameter name, in ``state_dict`` order, with zeros for the parameters the call did
    not use ("general" uses ``weight`` only in ``prepare``): the gradient of each parameter is
    the sum of the dicts of all the calls.

    Args:
        query_size: Q.
        key_size: K (default Q).
        score: ``"dot"`` (needs Q == K; no parameters), ``"general"`` (``weight`` (Q, K)) or
            ``"additive"`` (``query_weight`` (A, Q), ``key_weight`` (A, K), ``bias`` (A,),
            ``v`` (A,)).
        attention_size: A, for ``"additive"`` only (default Q).
        dtype: ``np.float32`` (default) or ``np.float64``.
        seed: int, Generator or None. PyTorch's Linear initialisation, each matrix from
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in its number of columns: ``weight``
            and ``key_weight`` 1/sqrt(K), ``query_weight`` and ``bias`` 1/sqrt(Q) (as the
            weight and bias of a Linear(Q, A)), ``v`` 1/sqrt(A) (as a Linear(A, 1)).

    Example:
        >>> import numpy as np, rnnkit
        >>> attn = rnnkit.Attention(4, 3, score="additive", dtype=np.float64, seed=0)
        >>> rng = np.random.default_rng(1)
        >>> keys = rng.standard_normal((5, 2, 3))  # (S, B, K) encoder outputs
        >>> mask = np.arange(5)[:, None] < np.array([5, 3])  # (S, B): lengths 5 and 3
        >>> memory, mcache = attn.prepare(keys, mask)  # once per source sequence
        >>> context, weights, cache = attn.forward(rng.standard_normal((2, 4)), memory)
        >>> context.shape, weights.shape, weights[1, 3:].tolist(), np.allclose(weights.sum(1), 1)
        ((2, 3), (2, 5), [0.0, 0.0], True)
        >>> dmemory = attn.zero_memory_grad(memory)
        >>> dquery, dmem, grads = attn.backward(np.ones_like(context), cache)
        >>> dmemory = attn.add_memory_grad(dmemory, dmem)  # summed over the decoder steps
        >>> dkeys, pgrads = attn.prepare_backward(dmemory, mcache)
        >>> dquery.shape, dkeys.shape, list(grads)
        ((2, 4), (5, 2, 3), ['query_weight', 'key_weight', 'bias', 'v'])
    """

    def __init__(
        self,
        query_size: int,
        key_size: int | None = None,
        score: str = "general",
        attention_size: int | None = None,
        *,
        dtype: Any = np.float32,
        seed: Any = None,
    ) -> None:
        super().__init__()
        self.query_size = _checks.positive_int("query_size", query_size)
        self.key_size = (
            self.query_size if key_size is None else _checks.positive_int("key_size", key_size)
        )
        self.score = _checks.choice("score", score, SCORES)
        if self.score == "dot" and self.query_size != self.key_size:
            raise ValueError(
                f"score='dot' needs query_size == key_size (it multiplies the query and the keys "
                f"directly), got query_size={self.query_size}, key_size={self.key_size}; "
                "score='general' learns a (Q, K) map between them"
            )
        if attention_size is not None and self.score != "additive":
            raise ValueError(
                f"attention_size applies to score='additive' only, got attention_size="
                f"{attention_size!r} with score={self.score!r}"
            )
        self.attention_size = (
            None
            if self.score != "additive"
            else self.query_size
            if attention_size is None
            else _checks.positive_int("attention_size", attention_size)
        )
        self.dtype = _checks.float_dtype(dtype)
        limits.check_parameters(
            repr(self),
            self.count_parameters(self.query_size, self.key_size, self.score, attention_size),
            self.dtype.itemsize,
        )
        rng = _checks.rng(seed)
        Q, K, A = self.query_size, self.key_size, self.attention_size

        def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(self.dtype)

        if self.score == "general":
            self._params["weight"] = uniform((Q, K), K)
        elif self.score == "additive":
            self._params["query_weight"] = uniform((A, Q), Q)
            self._params["key_weight"] = uniform((A, K), K)
            self._params["bias"] = uniform((A,), Q)
            self._params["v"] = uniform((A,), A)

    @staticmethod
    def count_parameters(
        query_size: int,
        key_size: int | None = None,
        score: str = "general",
        attention_size: int | None = None,
    ) -> int:
        """The number of parameters of an Attention of these sizes: 0 ("dot"), ``Q*K``
        ("general") or ``A*(Q + K + 2)`` ("additive"), a Python int."""
        Q = int(query_size)
        K = Q if key_size is None else int(key_size)
        if score == "dot":
            return 0
        if score == "general":
            return Q * K
        A = Q if attention_size is None else int(attention_size)
        return A * (Q + K + 2)

    @property
    def projected_size(self) -> int:
        """P, the size of the projected keys: K ("dot"), Q ("general") or A ("additive")."""
        return {"dot": self.key_size, "general": self.query_size}.get(
            self.score, self.attention_size
        )

    # -- the source side -----------------------------------------------------------------------

    def prepare(
        self, keys: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[AttentionMemory, AttentionPrepareCache]:
        """keys (S, B, K), mask (S, B) bool (None: all valid) -> (memory, cache): the source
        side, projected once for every decoder step that attends to it."""
        keys = _checks.array("keys", keys, ("S", "B", self.key_size), self.dtype)
        S, B = keys.shape[:2]
        mask = self._mask(mask, S, B)
        if self.score != "dot":
            limits.check_memory(
                lambda: f"the projected keys of {self!r} for keys of shape {keys.shape}",
                limits.array_bytes((S, B, self.projected_size), self.dtype.itemsize),
            )
        projected = project_keys(self.score, self._params, keys)  # (S, B, P)
        return AttentionMemory(keys, mask, projected), AttentionPrepareCache(keys)

    def prepare_backward(
        self, dmemory: AttentionMemoryGrad, cache: AttentionPrepareCache
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """dL/d(memory), summed over every decoder step -> (dL/dkeys (S, B, K), grads)."""
        if not isinstance(cache, AttentionPrepareCache):
            raise TypeError(
                "cache must be the AttentionPrepareCache returned by prepare(keys, mask), "
                f"got {type(cache).__name__}"
            )
        self._memory_grad("dmemory", dmemory, cache.keys.shape[:2])
        dkeys, grads = project_keys_backward(self.score, self._params, dmemory, cache.keys)
        return dkeys, self._all_grads(grads)

    def zero_memory_grad(self, memory: AttentionMemory) -> AttentionMemoryGrad:
        """Zeros shaped like the memory's gradient: the total that ``add_memory_grad`` adds
        each decoder step's ``dmemory`` into."""
        keys, _, projected = self._memory(memory)
        return AttentionMemoryGrad(np.zeros_like(keys), np.zeros_like(projected))

    def add_memory_grad(
        self, total: AttentionMemoryGrad, dmemory: AttentionMemoryGrad
    ) -> AttentionMemoryGrad:
        """Add one call's ``dmemory`` into ``total`` in place (no new arrays); returns ``total``."""
        S, B = self._memory_grad("total", total, ("S", "B"))
        self._memory_grad("dmemory", dmemory, (S, B))
        for acc, part in zip(total, dmemory):
            np.add(acc, part, out=acc)
        return total

    # -- the queries -----------------------------------------------------------------------------

    def forward(
        self, query: np.ndarray, memory: AttentionMemory
    ) -> tuple[np.ndarray, np.ndarray, AttentionCache]:
        """query (B, Q) -> context (B, K), weights (B, S); or (T, B, Q) -> (T, B, K), (T, B, S)."""
        memory = self._memory(memory)
        query3, single = self._query(query, memory.keys.shape[1])
        T, B = query3.shape[:2]
        S = memory.keys.shape[0]
        per_score = S * (3 + (2 * self.attention_size if self.score == "additive" else 0))
        limits.check_memory(
            lambda: f"the forward pass of {self!r} for T={T} queries over S={S} positions, B={B}",
            limits.array_bytes((T, B, per_score + self.key_size), self.dtype.itemsize),
        )
        context, weights, hidden = attention_forward(self.score, self._params, query3, memory)
        cache = AttentionCache(query3, memory, weights, hidden, single)
        if single:
            return context[0], weights[0], cache
        return context, weights, cache

    def backward(
        self, dcontext: np.ndarray, cache: AttentionCache, dweights: np.ndarray | None = None
    ) -> tuple[np.ndarray, AttentionMemoryGrad, dict[str, np.ndarray]]:
        """dL/dcontext (B, K) or (T, B, K), optional dL/dweights (B, S) or (T, B, S) ->
        (dL/dquery, dL/d(memory) (an AttentionMemoryGrad), grads)."""
        if not isinstance(cache, AttentionCache):
            raise TypeError(
                f"cache must be the AttentionCache returned by forward, got {type(cache).__name__}"
            )
        T, B, S = cache.weights.shape
        lead = (B,) if cache.single else (T, B)
        dcontext = _checks.array("dcontext", dcontext, (*lead, self.key_size), self.dtype)
        if dweights is not None:
            dweights = _checks.array("dweights", dweights, (*lead, S), self.dtype)
        if cache.single:
            dcontext = dcontext[None]  # (1, B, K)
            dweights = None if dweights is None else dweights[None]  # (1, B, S)
        dquery, dmemory, grads = attention_backward(
            self.score, self._params, dcontext, dweights, cache
        )
        return (dquery[0] if cache.single else dquery), dmemory, self._all_grads(grads)

    def apply(self, query: np.ndarray, memory: AttentionMemory) -> tuple[np.ndarray, np.ndarray]:
        """(context, weights) with no cache: inference, for example one step of decoding."""
        memory = self._memory(memory)
        query3, single = self._query(query, memory.keys.shape[1])
        context, weights, _ = attention_forward(self.score, self._params, query3, memory)
        return (context[0], weights[0]) if single else (context, weights)

    def apply_grouped(
        self, query: np.ndarray, memory: AttentionMemory, source: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(context (R, K), weights (R, S)) of queries (R, Q), row r against memory column
        ``source[r]`` (``source`` (R,) int; memory of any number of columns), with no cache:
        decoding, where the memory is kept once per input and rows (beams) index it.

        Rows grouped as ``repeat(cols, w)``, ``cols`` strictly increasing, are batched per group
        over views of the memory (:func:`attention_grouped`; module docstring); any other
        pattern is computed per row (groups of one) over a gathered copy of its columns. With
        the memory laid out by :meth:`AttentionMemory.columns`, a row's results depend only on
        its query, its column and its group's w, bit for bit.
        """
        memory = self._memory(memory)
        S, B = memory.mask.shape
        if not isinstance(source, np.ndarray) or source.ndim != 1:
            shape = _checks.fmt_shape(source.shape) if isinstance(source, np.ndarray) else None
            raise ValueError(
                f"source must be a 1-D integer numpy.ndarray (R,) of memory columns, got "
                f"{shape or type(source).__name__}"
            )
        if source.dtype == np.bool_ or not np.issubdtype(source.dtype, np.integer):
            raise TypeError(f"source must be an integer array (R,), got dtype {source.dtype}")
        R = source.size
        if R and (source.min() < 0 or source.max() >= B):
            raise ValueError(
                f"source must lie in [0, {B}) (the memory's columns), got values in "
                f"[{source.min()}, {source.max()}]"
            )
        query = _checks.array("query", query, (R, self.query_size), self.dtype)
        if R == 0:
            return np.empty((0, self.key_size), self.dtype), np.empty((0, S), self.dtype)
        groups = row_groups(source)
        if groups is None:  # any other pattern: one row per group, over a gathered copy
            memory, groups = memory.columns(source), (np.arange(R), 1)
        cols, w = groups
        query3 = query.reshape(cols.size, w, self.query_size)  # (G, w, Q)
        context, weights = attention_grouped(self.score, self._params, query3, memory, cols)
        return context.reshape(R, self.key_size), weights.reshape(R, S)

    # -- both halves at once -------------------------------------------------------------------

    def attend(
        self, query: np.ndarray, keys: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, AttendCache]:
        """``prepare(keys, mask)`` then ``forward(query, memory)``: (context, weights, cache)."""
        memory, mcache = self.prepare(keys, mask)
        context, weights, cache = self.forward(query, memory)
        return context, weights, AttendCache(mcache, cache)

    def attend_backward(
        self, dcontext: np.ndarray, cache: AttendCache, dweights: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The backward of :meth:`attend`: (dL/dquery, dL/dkeys (S, B, K), grads)."""
        if not isinstance(cache, AttendCache):
            raise TypeError(
                f"cache must be the AttendCache returned by attend, got {type(cache).__name__}"
            )
        dquery, dmemory, grads = self.backward(dcontext, cache.step, dweights)
        dkeys, pgrads = self.prepare_backward(dmemory, cache.prepare)
        return dquery, dkeys, {name: grads[name] + pgrads[name] for name in grads}

    # -- checks --------------------------------------------------------------------------------

    def _all_grads(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every parameter's gradient in state_dict order, zeros for those the call did not use."""
        return {
            name: grads[name] if name in grads else np.zeros_like(value)
            for name, value in self._params.items()
        }

    def _mask(self, mask: Any, S: int, B: int) -> np.ndarray:
        if mask is None:
            return np.ones((S, B), dtype=bool)
        want = f"a bool numpy.ndarray of shape (S, B) = ({S}, {B}) (True at valid positions)"
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask must be {want}, got {type(mask).__name__}")
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be {want}, got dtype {mask.dtype}")
        if mask.shape != (S, B):
            raise ValueError(f"mask must be {want}, got shape {_checks.fmt_shape(mask.shape)}")
        empty = np.flatnonzero(~mask.any(axis=0))
        if empty.size:
            raise ValueError(
                f"mask[:, {empty[0]}] has no valid position ({empty.size} of {B} batch columns "
                f"have none: {empty[:10].tolist()}): every column needs at least one True, a "
                "source position to attend to"
            )
        return mask

    def _memory(self, memory: Any) -> AttentionMemory:
        if not isinstance(memory, AttentionMemory):
            raise TypeError(
                "memory must be the AttentionMemory returned by prepare(keys, mask), "
                f"got {type(memory).__name__}"
            )
        keys = _checks.array("memory.keys", memory.keys, ("S", "B", self.key_size), self.dtype)
        S, B = keys.shape[:2]
        if not isinstance(memory.mask, np.ndarray) or memory.mask.dtype != np.bool_:
            raise TypeError("memory.mask must be a bool numpy.ndarray: use prepare(keys, mask)")
        if memory.mask.shape != (S, B):
            raise ValueError(
                f"memory.mask must have shape ({S}, {B}) like the keys, "
                f"got {_checks.fmt_shape(memory.mask.shape)}"
            )
        P = self.projected_size
        _checks.array("memory.projected", memory.projected, (S, B, P), self.dtype)
        return memory

    def _memory_grad(self, name: str, value: Any, lead: tuple[Any, ...]) -> tuple[int, int]:
        """Check a gradient of the memory whose (S, B) are ``lead`` (sizes, or names of free
        sizes); returns its (S, B)."""
        if not isinstance(value, AttentionMemoryGrad):
            raise TypeError(
                f"{name} must be an AttentionMemoryGrad (from backward, or zero_memory_grad), "
                f"got {type(value).__name__}"
            )
        keys = _checks.array(f"{name}.keys", value.keys, (*lead, self.key_size), self.dtype)
        S, B = keys.shape[:2]
        P = self.projected_size
        _checks.array(f"{name}.projected", value.projected, (S, B, P), self.dtype)
        return S, B

    def _query(self, query: Any, B: int) -> tuple[np.ndarray, bool]:
        """The query as (T, B, Q), and whether it was one step (B, Q)."""
        Q = self.query_size
        if isinstance(query, np.ndarray) and query.ndim not in (2, 3):
            raise ValueError(
                f"query must have shape ({B}, {Q}) (one decoder step) or (T, {B}, {Q}) (T steps "
                f"at once), got {_checks.fmt_shape(query.shape)}"
            )
        if isinstance(query, np.ndarray) and query.ndim == 3:
            lead = ("T",) if query.shape[0] else (0,)  # T = 0 steps is allowed
            return _checks.array("query", query, (*lead, B, Q), self.dtype), False
        return _checks.array("query", query, (B, Q), self.dtype)[None], True

    def __repr__(self) -> str:
        keys = "" if self.key_size == self.query_size else f", {self.key_size}"
        size = "" if self.score != "additive" else f", attention_size={self.attention_size}"
        return (
            f"Attention({self.query_size}{keys}, score={self.score!r}{size}, "
            f"dtype={self.dtype.name})"
        )
