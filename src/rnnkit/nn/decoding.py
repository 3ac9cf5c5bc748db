r"""Decoding for sequence-to-sequence models: greedy search and beam search, batched over inputs.

Shapes: B = inputs, S = source steps (padded), V = target vocabulary, k = beam width, M = the
largest maximum length, A = inputs still being searched, w = live hypotheses per input at a step
(1 at the first step, then min(k, w V) for the previous w), N = A * w rows handed to the model.

The model
    Any object with this protocol (:class:`rnnkit.nn.Seq2Seq` has it):

    - ``target_vocab_size``: V;
    - ``encode(source, source_lengths) -> state``: the decoder state of each input, for source
      ids (S, B) padded with PAD and lengths (B,);
    - ``decode_step(tokens, state) -> (log_probs, state, weights)``: one decoder step for the
      previous tokens (N,) (BOS at the first step): normalised log-probabilities (N, V) of the
      next token and attention weights (N, S);
    - ``select(state, rows) -> state``: the state of rows ``rows`` (R,), in that order, repeats
      allowed.

    The state is opaque: decoding never looks inside it, it only hands it back to the model,
    expanded and reordered with ``select``.

Hypotheses, lengths and scores
    A hypothesis is a token sequence :math:`y_1 \dots y_n` that either *finished* (the decoder
    predicted EOS after :math:`y_n`) or was *cut* at the maximum length M (:math:`n = M`, no
    EOS). Its length :math:`L` counts the decoder steps spent on it: :math:`L = n + 1` when
    finished (the EOS counts), :math:`L = n = M` when cut; so a finished hypothesis has at most
    M - 1 tokens. With :math:`y_L` = EOS when finished, its log-probability and its score (what
    hypotheses are ranked by) are

    .. math::

        \log p(y \mid x) = \sum_{t=1}^{L} \log p(y_t \mid y_{<t}, x), \qquad
        s(y) = \frac{\log p(y \mid x)}{\ell(L)}, \qquad
        \ell(L) = \begin{cases}
            1 & \text{"none"} \\
            L & \text{"average"} \\
            \left(\frac{5 + L}{6}\right)^{\alpha} & \text{"gnmt" (Wu et al., 2016)}
        \end{cases}

    (GNMT's coverage penalty is not included.) With :math:`\alpha \ge 0`, :math:`\ell` never
    decreases with :math:`L`, which the stopping rule "bound" relies on.

    PAD and BOS are never generated: their log-probabilities are set to :math:`-\infty` before
    every choice, and the others are *not* renormalised, so ``log_prob`` is the model's own.
    UNK may be generated. Log-probabilities are summed in float64 whatever the model's dtype.
    A hypothesis of log-probability :math:`-\infty` (the model ruled a token out) is never
    returned.

Beam search
    Every input keeps up to k live (unfinished) hypotheses. At step t all live hypotheses of all
    inputs are advanced by one ``decode_step`` call on N rows, and each input ranks its w V
    candidates (a live hypothesis and a next token) by log-probability (all have length t, so
    the length normalisation cannot change that order); ties go to the lower beam, then the
    lower token id. Of this ranking, as in fairseq:

    - each EOS candidate among the first k *finishes*: it joins the input's finished pool;
    - the first k candidates that are not EOS are the next live hypotheses (the beam stays full
      even when some finish; there are at most w <= k EOS candidates, so the first 2k always
      hold enough).

    At the input's maximum length the live hypotheses are *cut* and join the pool as
    unfinished, ranked together with the finished ones by the same score. The n-best list is
    the ``nbest`` best of the pool by score (ties: found earlier first).

Stopping (``stopping``)
    An input also stops, its live hypotheses dropped, when

    - ``"beam"`` (default; fairseq and OpenNMT-py): ``beam`` hypotheses have finished;
    - ``"bound"``: ``nbest`` have finished and the ``nbest``-th best score among them is at
      least the best score any live hypothesis could still reach. Adding tokens never raises a
      log-probability (:math:`\log p \le 0`) and :math:`\ell` grows with the length, so a
      descendant of a live hypothesis of log-probability :math:`\lambda \le 0` scores at most
      :math:`\lambda / \ell(M)` (:math:`\lambda` for "none"): this is that bound. Since
      everything the search would add later descends from the live hypotheses, stopping then
      returns the same n-best list as ``"never"``;
    - ``"never"``: only at its maximum length (the "canonical" beam search).

    Whatever the rule, an input stops when no live hypothesis has a finite log-probability.

Exactness
    With ``beam`` at least the number of hypotheses an input can have (finished with at most
    M - 1 tokens, or cut with M; :math:`\sum_{n<M} R^n + R^M` for R generable tokens besides
    EOS), beam search is exhaustive under every rule: a step never has more than k candidates
    (:math:`R^{t-1} (R + 1) \le` that number), so none is pruned and every EOS candidate ranks
    among the first k; fewer than k hypotheses can ever finish, so "beam" runs to the maximum
    length like "never", and "bound" stops only when nothing left can enter the n-best list.
    The pool then holds every hypothesis and the n-best list is the exhaustive one.

Batch independence
    An input's candidates, ranking, stopping and state rows depend only on that input, and the
    width w at step t only on k, V and t (dead beams, of log-probability :math:`-\infty`, keep
    their rows: always ranked last, they are never chosen), so the rows ranked for an input are
    the same whatever else is in the batch, ties included. Its results therefore do not depend
    on the batch size or on the other inputs (given a model whose rows do not depend on each
    other). Inputs that stop are removed from the batch (``select`` keeps only the rows of the
    others), so they cost no further work.

Example: a bigram model, where greedy search misses the more probable output.

    >>> import numpy as np
    >>> from rnnkit.nn.decoding import beam_search, greedy_decode
    >>> class Bigram:  # the state is the previous token; ids 0..4: PAD BOS EOS a b
    ...     target_vocab_size = 5
    ...     table = np.log([[0.2] * 5,
    ...                     [0.01, 0.01, 0.08, 0.5, 0.4],   # after BOS: a 0.5, b 0.4
    ...                     [0.2] * 5,
    ...                     [0.01, 0.01, 0.38, 0.3, 0.3],   # after a: EOS 0.38
    ...                     [0.01, 0.01, 0.9, 0.04, 0.04]]) # after b: EOS 0.9
    ...     def encode(self, source, source_lengths):
    ...         return np.full(source.shape[1], 1)
    ...     def decode_step(self, tokens, state):
    ...         return self.table[tokens], tokens, np.ones((len(tokens), 1))
    ...     def select(self, state, rows):
    ...         return state[rows]
    >>> source, lengths = np.array([[5]]), np.array([1])
    >>> [h.tokens for h in greedy_decode(Bigram(), source, lengths, max_length=4)]
    [[3]]
    >>> [best] = beam_search(Bigram(), source, lengths, beam=2, max_length=4, nbest=2,
    ...                      length_penalty="none")
    >>> [(h.tokens, round(float(np.exp(h.log_prob)), 2), h.finished) for h in best]
    [([4], 0.36, True), ([3], 0.19, True)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks
from rnnkit.data.pairs import BOS, EOS, PAD

#: The length normalisations (see the module docstring).
LENGTH_PENALTIES = ("none", "average", "gnmt")
#: The stopping rules of :func:`beam_search`.
STOPPING_RULES = ("beam", "bound", "never")


class Hypothesis(NamedTuple):
    """One decoded output (see the module docstring for lengths and scores)."""

    tokens: list[int]  # the ids, without BOS and without the final EOS
    score: float  # log_prob / l(L): what the n-best list is ranked by
    log_prob: float  # sum of the token log-probs, the EOS's included when finished
    finished: bool  # True: ended with EOS; False: cut at the maximum length
    attention: np.ndarray | None = None  # (L, S_b) weights of each step (return_attention)


def length_normaliser(lengths: Any, length_penalty: str, alpha: float = 0.6) -> np.ndarray:
    r"""The divisor :math:`\ell(L)` of the score, float64, shaped like ``lengths``.

    ``"none"``: 1; ``"average"``: L; ``"gnmt"``: ((5 + L) / 6) ** alpha. L counts the EOS.

        >>> length_normaliser([1, 7], "gnmt", alpha=1.0).tolist()
        [1.0, 2.0]
    """
    penalty = _checks.choice("length_penalty", length_penalty, LENGTH_PENALTIES)
    L = np.asarray(lengths, dtype=np.float64)
    if penalty == "none":
        return np.ones_like(L)
    if penalty == "average":
        return L
    return ((5.0 + L) / 6.0) ** alpha


# -- checks ------------------------------------------------------------------------------------


def _vocab_size(model: Any) -> int:
    for name in ("target_vocab_size", "encode", "decode_step", "select"):
        if not hasattr(model, name):
            raise TypeError(
                f"model must have target_vocab_size, encode, decode_step and select, "
                f"{type(model).__name__} has no {name}"
            )
    V = model.target_vocab_size
    if isinstance(V, (bool, np.bool_)) or not isinstance(V, (int, np.integer)) or V <= EOS:
        raise ValueError(
            f"model.target_vocab_size must be an int > {EOS} (PAD, BOS and EOS are ids "
            f"{PAD}, {BOS}, {EOS}), got {V!r}"
        )
    return int(V)


def _source(source: Any, source_lengths: Any) -> tuple[np.ndarray, np.ndarray]:
    src = _checks.regular_array(source, "source must be an integer array of shape (S, B)")
    if src.dtype == np.bool_ or not np.issubdtype(src.dtype, np.integer):
        raise TypeError(f"source must be an integer array of shape (S, B), got dtype {src.dtype}")
    if src.ndim != 2:
        raise ValueError(f"source must have shape (S, B), got {_checks.fmt_shape(src.shape)}")
    S, B = src.shape
    lens = _checks.regular_array(
        source_lengths, f"source_lengths must be an integer array of shape ({B},)"
    )
    if lens.dtype == np.bool_ or not np.issubdtype(lens.dtype, np.integer):
        raise TypeError(
            f"source_lengths must be an integer array of shape ({B},), got dtype {lens.dtype}"
        )
    if lens.shape != (B,):
        raise ValueError(
            f"source_lengths must have shape ({B},) (one per source column), got "
            f"{_checks.fmt_shape(lens.shape)}"
        )
    bad = (lens < 0) | (lens > S)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"source_lengths must lie in [0, {S}] (S = {S}), got source_lengths[{i}] = {lens[i]}"
        )
    return src, lens


def _max_lengths(value: Any, B: int) -> np.ndarray:
    """max_length as (B,) intp: one int for all inputs, or one per input."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if value < 1:
            raise ValueError(f"max_length must be >= 1, got {value}")
        return np.full(B, int(value), dtype=np.intp)
    arr = _checks.regular_array(value, f"max_length must be an int or an int array ({B},)")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"max_length must be an int or an integer array of shape ({B},), got "
            f"{type(value).__name__} {value!r}"
        )
    if arr.shape != (B,):
        raise ValueError(
            f"max_length must be an int or have shape ({B},) (one per input), got "
            f"{_checks.fmt_shape(arr.shape)}"
        )
    if (arr < 1).any():
        raise ValueError(f"max_length must be >= 1, got {arr.min()} at {int(np.argmin(arr))}")
    return arr.astype(np.intp)


def _step_log_probs(log_probs: Any, N: int, V: int, t: int) -> np.ndarray:
    """The model's log-probs (N, V) as a float64 copy, PAD and BOS set to -inf."""
    if not isinstance(log_probs, np.ndarray) or not np.issubdtype(log_probs.dtype, np.floating):
        raise TypeError(
            f"model.decode_step must return log_probs as a float numpy.ndarray ({N}, {V}), got "
            f"{type(log_probs).__name__} at step {t}"
        )
    if log_probs.shape != (N, V):
        raise ValueError(
            f"model.decode_step must return log_probs of shape ({N}, {V}), got "
            f"{_checks.fmt_shape(log_probs.shape)} at step {t}"
        )
    out = log_probs.astype(np.float64)  # (N, V)
    if not (out < np.inf).all():
        raise ValueError(f"model.decode_step returned NaN or +inf log-probabilities at step {t}")
    out[:, PAD] = -np.inf
    out[:, BOS] = -np.inf
    return out


def _step_weights(weights: Any, N: int, S: int, t: int) -> np.ndarray:
    if not isinstance(weights, np.ndarray) or weights.shape != (N, S):
        shape = _checks.fmt_shape(weights.shape) if isinstance(weights, np.ndarray) else None
        raise ValueError(
            f"model.decode_step must return attention weights of shape ({N}, {S}) for "
            f"return_attention, got {shape or type(weights).__name__} at step {t}"
        )
    return weights


# -- greedy ------------------------------------------------------------------------------------


def greedy_decode(
    model: Any,
    source: Any,
    source_lengths: Any,
    *,
    max_length: Any,
    length_penalty: str = "none",
    alpha: float = 0.6,
    return_attention: bool = False,
) -> list[Hypothesis]:
    """The most probable next token at every step, until EOS or the maximum length.

    Args:
        model: a sequence-to-sequence model (the protocol of the module docstring).
        source: (S, B) int source ids, padded with PAD.
        source_lengths: (B,) int valid steps of each source column.
        max_length: the most decoder steps of an input (EOS included): an int, or (B,) ints.
        length_penalty, alpha: how ``score`` is computed (it does not change the search):
            ``"none"``, ``"average"`` or ``"gnmt"``.
        return_attention: fill ``attention`` (L, S_b) of each hypothesis (S_b: its source
            length; the padding columns are dropped).

    Returns:
        One :class:`Hypothesis` per input, in input order: the same as :func:`beam_search` with
        ``beam=1`` and the default ``stopping="beam"`` (ties go to the lower token id). PAD and
        BOS are never generated.
    """
    V = _vocab_size(model)
    src, lens = _source(source, source_lengths)
    S, B = src.shape
    max_len = _max_lengths(max_length, B)
    _checks.choice("length_penalty", length_penalty, LENGTH_PENALTIES)
    alpha = _checks.real("alpha", alpha, low=0.0)
    attend = _checks.boolean("return_attention", return_attention)
    if B == 0:
        return []
    state = model.encode(src, lens)
    M = int(max_len.max())
    out = np.full((B, M), PAD, dtype=np.intp)  # (B, M) the tokens chosen, EOS included
    steps = np.zeros(B, dtype=np.intp)  # (B,) L
    log_prob = np.zeros(B)  # (B,)
    finished = np.zeros(B, dtype=bool)  # (B,)
    attention = None  # (B, M, S) in the weights' dtype, made at the first step
    active = np.arange(B)  # (A,) the inputs still decoding, in input order
    tokens = np.full(B, BOS, dtype=np.intp)  # (A,)
    for t in range(1, M + 1):
        A = active.size
        log_probs, state, weights = model.decode_step(tokens, state)
        step_lp = _step_log_probs(log_probs, A, V, t)  # (A, V)
        tokens = step_lp.argmax(axis=1)  # (A,) the first maximum: the lowest id on ties
        out[active, t - 1] = tokens
        log_prob[active] += step_lp[np.arange(A), tokens]
        steps[active] = t
        if attend:
            weights = _step_weights(weights, A, S, t)
            if attention is None:
                attention = np.zeros((B, M, S), dtype=weights.dtype)
            attention[active, t - 1] = weights
        eos = tokens == EOS  # (A,)
        finished[active] = eos
        keep = ~eos & (max_len[active] > t)  # (A,)
        if not keep.any():
            break
        if not keep.all():  # stopped inputs leave the batch
            rows = np.flatnonzero(keep)
            state = model.select(state, rows)
            active, tokens = active[keep], tokens[keep]
    norm = length_normaliser(steps, length_penalty, alpha)  # (B,)
    results = []
    for b in range(B):
        L = int(steps[b])
        results.append(
            Hypothesis(
                tokens=out[b, : L - 1 if finished[b] else L].tolist(),
                score=float(log_prob[b] / norm[b]),
                log_prob=float(log_prob[b]),
                finished=bool(finished[b]),
                attention=None if attention is None else attention[b, :L, : lens[b]].copy(),
            )
        )
    return results


# -- beam search -------------------------------------------------------------------------------


def _ranked(cand: np.ndarray, C: int) -> np.ndarray:
    """The flat indices (A, C) of the C best candidates of each row of ``cand`` (A, wV), best
    first, ties to the lower index (among candidates tied at the C-th place, argpartition
    picks, deterministically for a given row)."""
    n = cand.shape[1]
    if C < n:
        top = np.argpartition(cand, n - C, axis=1)[:, n - C :]  # (A, C) unordered
    else:
        top = np.broadcast_to(np.arange(n), cand.shape)  # (A, wV)
    values = np.take_along_axis(cand, top, axis=1)  # (A, C)
    order = np.lexsort((top, -values), axis=1)  # by value descending, then index
    return np.take_along_axis(top, order, axis=1)


class _Pool(NamedTuple):
    """Hypotheses that left the beam at one step, finished or cut: a hypothesis is identified
    by the row that fed ``decode_step`` at that step and the token it then chose."""

    inputs: np.ndarray  # (F,) input index
    log_prob: np.ndarray  # (F,) float64
    row: np.ndarray  # (F,) row of decode_step at the step
    token: np.ndarray  # (F,) the token chosen (EOS when finished)
    finished: bool
    step: int  # t = L


def beam_search(
    model: Any,
    source: Any,
    source_lengths: Any,
    *,
    beam: int = 5,
    max_length: Any,
    length_penalty: str = "average",
    alpha: float = 0.6,
    nbest: int = 1,
    stopping: str = "beam",
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    r"""Beam search of width ``beam``, batched over inputs (algorithm in the module docstring).

    Args:
        model: a sequence-to-sequence model (the protocol of the module docstring).
        source: (S, B) int source ids, padded with PAD.
        source_lengths: (B,) int valid steps of each source column.
        beam: k, the live hypotheses kept per input.
        max_length: the most decoder steps of an input (EOS included): an int, or (B,) ints.
        length_penalty: ``"none"`` (score = log_prob), ``"average"`` (log_prob / L) or
            ``"gnmt"`` (log_prob / ((5 + L) / 6) ** alpha); L counts the EOS.
        alpha: GNMT's exponent, >= 0 (used by ``"gnmt"`` only).
        nbest: the length of each n-best list, <= beam.
        stopping: ``"beam"`` (stop an input once ``beam`` hypotheses finished), ``"bound"``
            (once no live hypothesis can enter the n-best list) or ``"never"`` (run to the
            maximum length).
        return_attention: fill ``attention`` (L, S_b) of each hypothesis: the weights of each
            of its steps, the EOS step included (S_b: its source length, padding dropped).

    Returns:
        For each input, in input order, its n-best list, best score first: ``nbest``
        hypotheses (fewer only if fewer have a finite log-probability). Hypotheses cut at the
        maximum length compete with the finished ones and have ``finished=False``.

    Cost: one ``model.decode_step`` on the N = A w live rows and one ``model.select`` per step;
    the ranking is one ``argpartition`` and one sort of (A, 2k) per step. Python loops only
    assemble the n-best lists at the end.
    """
    V = _vocab_size(model)
    src, lens = _source(source, source_lengths)
    S, B = src.shape
    k = _checks.positive_int("beam", beam)
    nbest = _checks.positive_int("nbest", nbest)
    if nbest > k:
        raise ValueError(f"nbest must be <= beam ({k}), got {nbest}")
    max_len = _max_lengths(max_length, B)
    _checks.choice("length_penalty", length_penalty, LENGTH_PENALTIES)
    alpha = _checks.real("alpha", alpha, low=0.0)
    rule = _checks.choice("stopping", stopping, STOPPING_RULES)
    attend = _checks.boolean("return_attention", return_attention)
    if B == 0:
        return []

    state = model.encode(src, lens)
    bound_norm = length_normaliser(max_len, length_penalty, alpha)  # (B,) l(M_b)
    n_finished = np.zeros(B, dtype=np.intp)  # (B,) for "beam"
    best = np.full((B, nbest), -np.inf)  # (B, nbest) best finished scores, for "bound"
    active = np.arange(B)  # (A,) inputs still searched, in input order
    lp = np.zeros((B, 1))  # (A, w) log-probs of the live hypotheses
    tokens = np.full(B, BOS, dtype=np.intp)  # (N,) row a w + j: input active[a], beam j
    # Back-pointers: chosen[t-1][r] and parent[t-1][r] are the token chosen at step t and the
    # row of step t that row r of step t + 1 continues; weights_at[t-1] (N_t, S) of step t.
    chosen: list[np.ndarray] = []
    parent: list[np.ndarray] = []
    weights_at: list[np.ndarray] = []
    pools: list[_Pool] = []
    for t in range(1, int(max_len.max()) + 1):
        A, w = lp.shape
        log_probs, state, weights = model.decode_step(tokens, state)
        step_lp = _step_log_probs(log_probs, A * w, V, t)  # (N, V)
        if attend:
            weights_at.append(_step_weights(weights, A * w, S, t))
        step_lp += lp.reshape(A * w, 1)  # our float64 copy: the candidates' log-probs
        cand = step_lp.reshape(A, w * V)  # (A, wV)
        top = _ranked(cand, min(2 * k, w * V))  # (A, C)
        top_lp = np.take_along_axis(cand, top, axis=1)  # (A, C)
        is_eos = top % V == EOS  # (A, C)

        # EOS among the first k: finished
        done = is_eos[:, :k] & (top_lp[:, :k] > -np.inf)  # (A, min(k, C))
        a_done, c_done = np.nonzero(done)  # in input order, then rank order
        if a_done.size:
            pools.append(
                _Pool(
                    inputs=active[a_done],
                    log_prob=top_lp[a_done, c_done],
                    row=a_done * w + top[a_done, c_done] // V,
                    token=np.full(a_done.size, EOS, dtype=np.intp),
                    finished=True,
                    step=t,
                )
            )
        # the first k that are not EOS (a stable sort moves the EOS ones back): live
        live = np.argsort(is_eos, axis=1, kind="stable")[:, : min(k, top.shape[1])]  # (A, w')
        live_idx = np.take_along_axis(top, live, axis=1)  # (A, w')
        live_lp = np.take_along_axis(top_lp, live, axis=1)  # (A, w')
        live_lp[live_idx % V == EOS] = -np.inf  # fewer non-EOS than w' candidates: dead beams
        live_rows = np.arange(A)[:, None] * w + live_idx // V  # (A, w') rows of this step
        live_tok = live_idx % V  # (A, w')

        alive = live_lp > -np.inf  # (A, w')
        at_max = max_len[active] == t  # (A,)
        a_cut, j_cut = np.nonzero(at_max[:, None] & alive)
        if a_cut.size:  # cut at the maximum length
            pools.append(
                _Pool(
                    inputs=active[a_cut],
                    log_prob=live_lp[a_cut, j_cut],
                    row=live_rows[a_cut, j_cut],
                    token=live_tok[a_cut, j_cut],
                    finished=False,
                    step=t,
                )
            )

        stop = at_max | ~alive.any(axis=1)  # (A,)
        if rule == "beam":
            n_finished[active] += done.sum(axis=1)
            stop |= n_finished[active] >= k
        elif rule == "bound":
            scores = top_lp[:, :k] / length_normaliser(t, length_penalty, alpha)  # (A, k)
            merged = np.concatenate([best[active], np.where(done, scores, -np.inf)], axis=1)
            best[active] = -np.sort(-merged, axis=1)[:, :nbest]
            reachable = live_lp.max(axis=1) / bound_norm[active]  # (A,) live_lp <= 0
            stop |= best[active, -1] >= reachable

        keep = ~stop  # (A,)
        if not keep.any():
            break
        rows = live_rows[keep].ravel()  # (N',) stopped inputs leave the batch
        tokens = live_tok[keep].ravel()
        chosen.append(tokens)
        parent.append(rows)
        state = model.select(state, rows)
        active, lp = active[keep], live_lp[keep]

    return _nbest_lists(
        pools, chosen, parent, weights_at, B, lens, nbest, length_penalty, alpha, attend
    )


def _nbest_lists(
    pools: list[_Pool],
    chosen: list[np.ndarray],
    parent: list[np.ndarray],
    weights_at: list[np.ndarray],
    B: int,
    lens: np.ndarray,
    nbest: int,
    length_penalty: str,
    alpha: float,
    attend: bool,
) -> list[list[Hypothesis]]:
    """The nbest best of each input's pool, traced back through the back-pointers."""
    results: list[list[Hypothesis]] = [[] for _ in range(B)]
    if not pools:
        return results
    inputs = np.concatenate([p.inputs for p in pools])  # (F,)
    log_prob = np.concatenate([p.log_prob for p in pools])  # (F,)
    step = np.concatenate([np.full(p.inputs.size, p.step) for p in pools])  # (F,)
    index = np.concatenate([np.arange(p.inputs.size) for p in pools])  # (F,) within its pool
    which = np.concatenate([np.full(p.inputs.size, i) for i, p in enumerate(pools)])  # (F,)
    score = log_prob / length_normaliser(step, length_penalty, alpha)  # (F,)
    # by input, then score descending, then the order found (pools are in step order)
    order = np.lexsort((np.arange(inputs.size), -score, inputs))
    first = np.searchsorted(inputs[order], np.arange(B + 1))  # (B + 1,)
    for b in range(B):
        for f in order[first[b] : min(first[b] + nbest, first[b + 1])]:
            pool = pools[which[f]]
            t, row = pool.step, int(pool.row[index[f]])
            toks: list[int] = [] if pool.finished else [int(pool.token[index[f]])]
            att = [weights_at[t - 1][row]] if attend else []
            for s in range(t - 1, 0, -1):  # from step t back to step 1
                toks.append(int(chosen[s - 1][row]))
                row = int(parent[s - 1][row])
                if attend:
                    att.append(weights_at[s - 1][row])
            results[b].append(
                Hypothesis(
                    tokens=toks[::-1],
                    score=float(score[f]),
                    log_prob=float(log_prob[f]),
                    finished=pool.finished,
                    attention=np.stack(att[::-1])[:, : lens[b]] if attend else None,
                )
            )
    return results
