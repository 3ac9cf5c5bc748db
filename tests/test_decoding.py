"""Greedy and beam search (rnnkit.nn.decoding) on a small fake sequence-to-sequence model.

The fake model implements only the decoding protocol, in float64, with a real dependence on the
source (pooled embedding and attention) and on the history (a recurrent state): its state has
fields with the batch on axis 0 and on axis 1, so a decoder that indexed it would fail. The
checks: beam search with a width that prunes nothing equals a brute-force decoder that scores
every hypothesis, for the three length normalisations and the three stopping rules; a plain
one-input-at-a-time reference beam search for small widths; greedy equals beam 1; results do not
depend on the batch; maximum lengths; attention; PAD/BOS never generated; errors.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest

from rnnkit.data.pairs import BOS, EOS, PAD
from rnnkit.nn import Hypothesis, beam_search, greedy_decode
from rnnkit.nn.decoding import length_normaliser

# S = source steps, B = batch, H = hidden size, V = target vocabulary

PENALTIES = ("none", "average", "gnmt")


class FakeState(NamedTuple):
    h: np.ndarray  # (B, H) recurrent state
    keys: np.ndarray  # (S, B, H) embedded source: batch on axis 1
    mask: np.ndarray  # (S, B) valid source positions
    pooled: np.ndarray  # (B, H) mean of the valid keys


def source_sum(x):
    """x summed over axis 0 (the source), term after term."""
    total = x[0].copy()
    for term in x[1:]:
        total += term
    return total


class FakeSeq2Seq:
    """h' = tanh(A h + E[y]), attention over the source keys, log_softmax((h' + c + pooled) W + b).

    Products are written as broadcast sums, and sums over the source as sequential additions,
    so that a row's result does not depend on the other rows, the batch size or the padding,
    to the last bit (BLAS blocks by the number of rows; NumPy's pairwise summation of a
    single column groups the terms by its length)."""

    def __init__(self, V: int = 5, H: int = 4, source_vocab: int = 7, seed: int = 0, scale=1.5):
        rng = np.random.default_rng(seed)
        self.target_vocab_size = V
        self.E_source = rng.normal(size=(source_vocab, H))
        self.E = rng.normal(size=(V, H))
        self.A = rng.normal(size=(H, H)) / np.sqrt(H)
        self.W = rng.normal(size=(H, V)) * scale
        self.b = rng.normal(size=V)
        self.rows_per_step: list[int] = []  # rows of each decode_step call
        self.encodes = 0

    def encode(self, source, source_lengths):
        self.encodes += 1
        S = source.shape[0]
        keys = self.E_source[source]  # (S, B, H)
        mask = np.arange(S)[:, None] < source_lengths[None, :]  # (S, B)
        pooled = source_sum(keys * mask[:, :, None]) / source_lengths[:, None]  # (B, H)
        return FakeState(np.tanh(pooled), keys, mask, pooled)

    def decode_step(self, tokens, state):
        self.rows_per_step.append(tokens.shape[0])
        h = np.tanh((state.h[:, None, :] * self.A[None]).sum(axis=-1) + self.E[tokens])  # (B, H)
        scores = np.where(state.mask, (state.keys * h[None]).sum(axis=-1), -np.inf)  # (S, B)
        a = np.exp(scores - scores.max(axis=0))
        a /= source_sum(a)  # (S, B)
        context = source_sum(a[:, :, None] * state.keys)  # (B, H)
        z = h + context + state.pooled  # (B, H)
        logits = (z[:, :, None] * self.W[None]).sum(axis=1) + self.b  # (B, V)
        m = logits.max(axis=1, keepdims=True)
        log_probs = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return log_probs, state._replace(h=h), a.T

    def select(self, state, rows):
        rows = np.asarray(rows)
        return FakeState(
            state.h[rows], state.keys[:, rows], state.mask[:, rows], state.pooled[rows]
        )


def make_batch(B: int, seed: int, S_max: int = 5, source_vocab: int = 7):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, S_max + 1, size=B)
    source = np.full((int(lengths.max()), B), PAD)
    for b, n in enumerate(lengths):
        source[:n, b] = rng.integers(4, source_vocab, size=n)
    return source, lengths


def column(source, lengths, b):
    """Input b alone, its padding cut."""
    n = int(lengths[b])
    return source[:n, b : b + 1], lengths[b : b + 1]


def norm(L, penalty, alpha):
    """The score divisors, written out again (not the module's function)."""
    return {"none": 1.0, "average": float(L), "gnmt": ((5.0 + L) / 6.0) ** alpha}[penalty]


def brute_force(model, source, lengths, b, max_length, penalty, alpha):
    """Every hypothesis of input b (finished with < max_length tokens, or cut with max_length
    tokens), each scored by running the model on it alone; sorted by score descending."""
    state0 = model.select(model.encode(source, lengths), [b])
    generable = [v for v in range(model.target_vocab_size) if v not in (PAD, BOS)]
    out = []

    def visit(prefix, log_prob, state):
        t = len(prefix) + 1
        log_probs, state, _ = model.decode_step(np.array([prefix[-1] if prefix else BOS]), state)
        for v in generable:
            lp = log_prob + log_probs[0, v]
            if v == EOS:
                out.append((prefix, lp, True, lp / norm(t, penalty, alpha)))
            elif t == max_length:
                out.append(([*prefix, v], lp, False, lp / norm(t, penalty, alpha)))
            else:
                visit([*prefix, v], lp, state)

    visit([], 0.0, state0)
    return sorted(out, key=lambda h: -h[3])


def n_hypotheses(V: int, max_length: int) -> int:
    R = V - 3  # generable tokens besides EOS (PAD and BOS never are)
    return sum(R**n for n in range(max_length)) + R**max_length


def assert_same(a: Hypothesis, b: Hypothesis, exact: bool = True):
    assert a.tokens == b.tokens
    assert a.finished == b.finished
    if exact:
        assert a.score == b.score and a.log_prob == b.log_prob
    else:
        np.testing.assert_allclose([a.score, a.log_prob], [b.score, b.log_prob], rtol=1e-12)
    if a.attention is None or b.attention is None:
        assert a.attention is None and b.attention is None
    else:
        assert a.attention.shape == b.attention.shape
        if exact:
            np.testing.assert_array_equal(a.attention, b.attention)
        else:
            np.testing.assert_allclose(a.attention, b.attention, rtol=1e-12, atol=1e-15)


# -- exhaustive search ---------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("stopping", ["beam", "bound", "never"])
@pytest.mark.parametrize(("V", "max_length"), [(5, 4), (6, 3), (5, 1)])
def test_wide_beam_equals_brute_force(penalty, stopping, V, max_length):
    total = n_hypotheses(V, max_length)  # 31, 40, 3
    alpha = 0.8
    kinds = set()
    for seed in range(4):
        model = FakeSeq2Seq(V=V, seed=seed)
        source, lengths = make_batch(5, seed=10 + seed)
        for beam in (total, total + 7):
            nbests = beam_search(
                model,
                source,
                lengths,
                beam=beam,
                max_length=max_length,
                length_penalty=penalty,
                alpha=alpha,
                nbest=beam,
                stopping=stopping,
            )
            for b in range(5):
                expected = brute_force(model, source, lengths, b, max_length, penalty, alpha)
                got = nbests[b]
                if stopping == "bound":  # only the n-best list is exhaustive: check a prefix
                    got = got[:1]
                    again = beam_search(
                        model,
                        source,
                        lengths,
                        beam=beam,
                        max_length=max_length,
                        length_penalty=penalty,
                        alpha=alpha,
                        nbest=min(5, beam),
                        stopping=stopping,
                    )[b]
                    for h, (tokens, _, finished, _) in zip(again, expected[:5], strict=True):
                        assert (h.tokens, h.finished) == (tokens, finished)
                else:
                    assert len(got) == total
                assert [(h.tokens, h.finished) for h in got] == [
                    (e[0], e[2]) for e in expected[: len(got)]
                ]
                np.testing.assert_allclose(
                    [(h.score, h.log_prob) for h in got],
                    [(e[3], e[1]) for e in expected[: len(got)]],
                    rtol=1e-12,
                )
                kinds.add((expected[0][2], len(expected[0][0])))
    if max_length > 1:  # the winners were finished for some inputs, cut for others
        assert {finished for finished, _ in kinds} == {True, False}


def test_bound_stops_early_and_never_runs_to_the_end():
    model = FakeSeq2Seq(V=5, seed=3)
    source, lengths = make_batch(4, seed=1)
    rows = {}
    for rule in ("bound", "never"):
        model.rows_per_step.clear()
        beam_search(
            model, source, lengths, beam=31, max_length=4, length_penalty="none", stopping=rule
        )
        rows[rule] = list(model.rows_per_step)
    # inputs 0 and 1 prefer EOS at once (p > 0.96): "bound" proves it after one step
    assert rows["never"] == [4, 4 * 5, 4 * 25, 4 * 31]  # width min(k, w V)
    assert rows["bound"] == [4, 2 * 5, 2 * 25, 2 * 31]


# -- a reference beam search, one input at a time ------------------------------------------------


def reference_beam(model, source, lengths, b, *, beam, max_length, penalty, alpha, nbest, rule):
    """The algorithm of the module docstring, written with Python lists for one input."""
    V = model.target_vocab_size
    state = model.select(model.encode(source, lengths), [b])
    live = [([], 0.0)]  # (tokens, log_prob)
    pool = []  # (score, order, tokens, log_prob, finished)
    for t in range(1, max_length + 1):
        tokens = np.array([h[-1] if h else BOS for h, _ in live])
        log_probs, state, _ = model.decode_step(tokens, state)
        cands = []
        for j, (_, lp) in enumerate(live):
            for v in range(V):
                value = -np.inf if v in (PAD, BOS) else lp + log_probs[j, v]
                cands.append((-value, j * V + v, j, v, value))
        cands.sort()
        finished_now = [c for c in cands[:beam] if c[3] == EOS and c[4] > -np.inf]
        for c in finished_now:
            h, _ = live[c[2]]
            pool.append((c[4] / norm(t, penalty, alpha), len(pool), h, c[4], True))
        nxt = [c for c in cands if c[3] != EOS][:beam]
        nxt = [c for c in nxt if c[4] > -np.inf]
        new_live = [([*live[c[2]][0], c[3]], c[4]) for c in nxt]
        if t == max_length:
            for h, lp in new_live:
                pool.append((lp / norm(t, penalty, alpha), len(pool), h, lp, False))
            break
        if not new_live:
            break
        finished = [p for p in pool if p[4]]
        if rule == "beam" and len(finished) >= beam:
            break
        if rule == "bound" and len(finished) >= nbest:
            nth = sorted(p[0] for p in finished)[-nbest]
            if nth >= max(lp for _, lp in new_live) / norm(max_length, penalty, alpha):
                break
        live = new_live
        state = model.select(state, [c[2] for c in nxt])
    pool.sort(key=lambda p: (-p[0], p[1]))
    return [Hypothesis(p[2], p[0], p[3], p[4]) for p in pool[:nbest]]


@pytest.mark.parametrize("rule", ["beam", "bound", "never"])
@pytest.mark.parametrize("penalty", PENALTIES)
def test_small_beams_equal_the_reference(rule, penalty):
    for seed, (V, beam, nbest, max_length) in enumerate(
        [(5, 1, 1, 6), (5, 2, 2, 7), (6, 3, 2, 6), (8, 4, 3, 8), (9, 5, 5, 5)]
    ):
        model = FakeSeq2Seq(V=V, seed=seed, scale=0.7)
        source, lengths = make_batch(6, seed=100 + seed)
        got = beam_search(
            model,
            source,
            lengths,
            beam=beam,
            max_length=max_length,
            length_penalty=penalty,
            alpha=0.6,
            nbest=nbest,
            stopping=rule,
        )
        for b in range(6):
            expected = reference_beam(
                model,
                source,
                lengths,
                b,
                beam=beam,
                max_length=max_length,
                penalty=penalty,
                alpha=0.6,
                nbest=nbest,
                rule=rule,
            )
            assert len(got[b]) == len(expected) == nbest
            for h, e in zip(got[b], expected, strict=True):
                assert_same(h, e, exact=False)


@pytest.mark.parametrize("penalty", PENALTIES)
def test_bound_returns_the_nbest_of_never(penalty):
    for seed in range(6):
        model = FakeSeq2Seq(V=7, seed=seed, scale=0.8)
        source, lengths = make_batch(5, seed=seed)
        kw = dict(beam=3, max_length=7, length_penalty=penalty, alpha=1.2, nbest=2)
        for h, e in zip(
            itertools.chain(*beam_search(model, source, lengths, stopping="bound", **kw)),
            itertools.chain(*beam_search(model, source, lengths, stopping="never", **kw)),
            strict=True,
        ):
            assert_same(h, e)


def test_nbest_lists_sorted_and_scored():
    model = FakeSeq2Seq(V=8, seed=5, scale=0.7)
    source, lengths = make_batch(4, seed=5)
    for penalty in PENALTIES:
        for b, hyps in enumerate(
            beam_search(
                model,
                source,
                lengths,
                beam=6,
                nbest=6,
                max_length=6,
                length_penalty=penalty,
                alpha=0.7,
                return_attention=True,
            )
        ):
            assert len(hyps) == 6
            assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
            assert len({(tuple(h.tokens), h.finished) for h in hyps}) == 6  # no duplicates
            src, lens = column(source, lengths, b)
            for h in hyps:
                # teacher-force the hypothesis through the model
                state = model.encode(src, lens)
                inputs = [BOS, *h.tokens]
                targets = [*h.tokens, EOS] if h.finished else h.tokens
                lp, att = 0.0, []
                for x, y in zip(inputs, targets):
                    log_probs, state, weights = model.decode_step(np.array([x]), state)
                    lp += log_probs[0, y]
                    att.append(weights[0])
                L = len(targets)
                assert L <= 6 and (h.finished or L == 6)
                assert PAD not in h.tokens and BOS not in h.tokens and EOS not in h.tokens
                np.testing.assert_allclose(h.log_prob, lp, rtol=1e-12)
                np.testing.assert_allclose(h.score, lp / norm(L, penalty, 0.7), rtol=1e-12)
                np.testing.assert_allclose(h.attention, np.array(att), rtol=1e-12, atol=1e-15)


# -- greedy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", PENALTIES)
def test_greedy_equals_beam_one(penalty):
    for seed in range(5):
        model = FakeSeq2Seq(V=6, seed=seed, scale=0.8)
        source, lengths = make_batch(7, seed=seed)
        kw = dict(max_length=6, length_penalty=penalty, alpha=0.9, return_attention=True)
        greedy = greedy_decode(model, source, lengths, **kw)
        beams = beam_search(model, source, lengths, beam=1, **kw)
        assert len(greedy) == 7
        for g, [h] in zip(greedy, beams, strict=True):
            assert_same(g, h)


def test_greedy_is_the_argmax_path():
    model = FakeSeq2Seq(V=6, seed=2)
    source, lengths = make_batch(3, seed=4)
    for b, g in enumerate(greedy_decode(model, source, lengths, max_length=5)):
        state = model.encode(*column(source, lengths, b))
        y, path, lp = BOS, [], 0.0
        for _ in range(5):
            log_probs, state, _ = model.decode_step(np.array([y]), state)
            y = int(np.argmax(log_probs[0, 2:])) + 2
            lp += log_probs[0, y]
            if y == EOS:
                break
            path.append(y)
        assert g.tokens == path and g.finished == (y == EOS)
        assert g.score == g.log_prob and np.isclose(g.log_prob, lp, rtol=1e-12)


# -- batch independence --------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["beam", "bound", "never"])
def test_results_do_not_depend_on_the_batch(rule):
    model = FakeSeq2Seq(V=7, seed=8, scale=0.8)
    source, lengths = make_batch(6, seed=8, S_max=6)
    kw = dict(
        beam=3, nbest=3, max_length=7, length_penalty="gnmt", stopping=rule, return_attention=True
    )
    full = beam_search(model, source, lengths, **kw)
    greedy = greedy_decode(model, source, lengths, max_length=7, return_attention=True)
    for b in range(6):  # alone, its padding cut
        assert_all_same(beam_search(model, *column(source, lengths, b), **kw)[0], full[b])
        [g] = greedy_decode(model, *column(source, lengths, b), max_length=7, return_attention=True)
        assert_same(g, greedy[b])
    for subset in ([3, 0], [5, 5, 1, 2], [4]):  # other batches, repeats, other padding
        sub = beam_search(model, source[:, subset], lengths[subset], **kw)
        for i, b in enumerate(subset):
            assert_all_same(sub[i], full[b])
    other_source, other_lengths = make_batch(9, seed=99, S_max=9)  # with strangers, more padding
    S = other_source.shape[0]
    mixed = np.full((S, 15), PAD)
    mixed[:, :9] = other_source
    mixed[: source.shape[0], 9:] = source
    mixed_lengths = np.concatenate([other_lengths, lengths])
    for i, hyps in enumerate(beam_search(model, mixed, mixed_lengths, **kw)[9:]):
        assert_all_same(hyps, full[i])


def assert_all_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert_same(x, y)


def test_one_decode_step_per_step_and_stopped_inputs_leave_the_batch():
    model = FakeSeq2Seq(V=8, seed=1, scale=0.8)
    source, lengths = make_batch(8, seed=3)
    max_length = np.array([1, 2, 3, 9, 9, 9, 9, 9])
    model.rows_per_step.clear()
    beam_search(model, source, lengths, beam=4, max_length=max_length, stopping="never")
    assert model.encodes == 1
    rows = model.rows_per_step
    assert len(rows) == 9 and rows[0] == 8  # one call per step; 1 row per input at step 1
    assert rows[1] == 7 * 4 and rows[2] == 6 * 4 and rows[3:] == [5 * 4] * 6
    model.rows_per_step.clear()
    greedy_decode(model, source, lengths, max_length=max_length)
    rows = model.rows_per_step
    assert rows[0] == 8 and rows[1] <= 7 and rows[2] <= 6  # and those that said EOS
    assert rows == sorted(rows, reverse=True)


# -- lengths, masking, attention -----------------------------------------------------------------


def test_max_length_cut():
    model = FakeSeq2Seq(V=6, seed=0)
    model.b[EOS] = -60.0  # EOS is (almost) never the best
    source, lengths = make_batch(3, seed=0)
    for max_length in (1, 2, 5):
        for h in greedy_decode(model, source, lengths, max_length=max_length):
            assert not h.finished and len(h.tokens) == max_length
        for hyps in beam_search(model, source, lengths, beam=3, nbest=3, max_length=max_length):
            for h in hyps:
                assert not h.finished and len(h.tokens) == max_length
                assert h.score == pytest.approx(h.log_prob / max_length, rel=1e-12)


def test_per_input_max_length_equals_decoding_alone():
    model = FakeSeq2Seq(V=6, seed=4, scale=0.6)
    source, lengths = make_batch(4, seed=6)
    max_length = np.array([2, 5, 1, 3])
    kw = dict(beam=3, nbest=2, length_penalty="average")
    full = beam_search(model, source, lengths, max_length=max_length, **kw)
    for b in range(4):
        alone = beam_search(model, *column(source, lengths, b), max_length=int(max_length[b]), **kw)
        assert_all_same(alone[0], full[b])
        assert all(len(h.tokens) + h.finished <= max_length[b] for h in full[b])


def test_pad_and_bos_are_never_generated():
    model = FakeSeq2Seq(V=6, seed=2)
    model.b[PAD] = model.b[BOS] = 30.0  # the model prefers them by far
    source, lengths = make_batch(3, seed=2)
    for h in greedy_decode(model, source, lengths, max_length=4):
        assert PAD not in h.tokens and BOS not in h.tokens
        assert h.log_prob < -20  # not renormalised: the model's own log-probs
    for hyps in beam_search(model, source, lengths, beam=4, nbest=4, max_length=4):
        for h in hyps:
            assert PAD not in h.tokens and BOS not in h.tokens
    [hyps] = beam_search(model, *column(source, lengths, 0), beam=40, nbest=40, max_length=3)
    assert len(hyps) == n_hypotheses(6, 3)  # PAD and BOS hypotheses are not in the pool


def test_impossible_tokens_are_never_returned():
    class OnlyEos(FakeSeq2Seq):
        def decode_step(self, tokens, state):
            log_probs, state, weights = super().decode_step(tokens, state)
            log_probs[:, 3:] = -np.inf
            log_probs[:, EOS] = 0.0
            return log_probs, state, weights

    model = OnlyEos(V=6)
    source, lengths = make_batch(2, seed=0)
    for hyps in beam_search(model, source, lengths, beam=3, nbest=3, max_length=4):
        assert hyps == [Hypothesis([], 0.0, 0.0, True)]


def test_attention_shapes():
    model = FakeSeq2Seq(V=6, seed=3, scale=0.8)
    source, lengths = make_batch(5, seed=7, S_max=7)
    for hyps in [
        [[h] for h in greedy_decode(model, source, lengths, max_length=5, return_attention=True)],
        beam_search(model, source, lengths, beam=3, nbest=3, max_length=5, return_attention=True),
    ]:
        for b, hs in enumerate(hyps):
            for h in hs:
                L = len(h.tokens) + h.finished
                assert h.attention.shape == (L, lengths[b])
                np.testing.assert_allclose(h.attention.sum(axis=1), 1.0, rtol=1e-12)
    assert all(h.attention is None for h in beam_search(model, source, lengths, max_length=3)[0])


def test_float32_model():
    class Float32(FakeSeq2Seq):
        def decode_step(self, tokens, state):
            log_probs, state, weights = super().decode_step(tokens, state)
            return log_probs.astype(np.float32), state, weights.astype(np.float32)

    model = Float32(V=6, seed=1)
    source, lengths = make_batch(3, seed=1)
    for hyps in beam_search(model, source, lengths, beam=2, max_length=4, return_attention=True):
        assert isinstance(hyps[0].score, float) and hyps[0].attention.dtype == np.float32
    for h in greedy_decode(model, source, lengths, max_length=4, return_attention=True):
        assert isinstance(h.log_prob, float) and h.attention.dtype == np.float32


def test_length_normaliser():
    L = np.array([1, 3, 7])
    np.testing.assert_array_equal(length_normaliser(L, "none"), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(length_normaliser(L, "average"), [1.0, 3.0, 7.0])
    np.testing.assert_allclose(length_normaliser(L, "gnmt", 0.6), ((5 + L) / 6) ** 0.6)


def test_empty_batch():
    model = FakeSeq2Seq()
    source, lengths = np.zeros((3, 0), dtype=int), np.zeros(0, dtype=int)
    assert beam_search(model, source, lengths, max_length=3) == []
    assert greedy_decode(model, source, lengths, max_length=3) == []


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(beam=0), ValueError, "beam must be a positive int, got 0"),
        (dict(beam=2.0), TypeError, "beam must be an int"),
        (dict(beam=2, nbest=3), ValueError, r"nbest must be <= beam \(2\), got 3"),
        (dict(nbest=0), ValueError, "nbest must be a positive int"),
        (dict(max_length=0), ValueError, "max_length must be >= 1, got 0"),
        (dict(max_length=np.array([3, 0, 2])), ValueError, "max_length must be >= 1"),
        (dict(max_length=np.array([3, 2])), ValueError, r"max_length must be an int or have "),
        (dict(max_length=2.5), TypeError, "max_length must be an int"),
        (dict(length_penalty="avg"), ValueError, "length_penalty must be 'none' or 'average'"),
        (dict(alpha=-0.1), ValueError, "alpha must be a finite float >= 0"),
        (dict(stopping="early"), ValueError, "stopping must be 'beam' or 'bound' or 'never'"),
        (dict(return_attention=1), TypeError, "return_attention must be True or False"),
    ],
)
def test_argument_errors(kwargs, error, match):
    model = FakeSeq2Seq()
    source, lengths = make_batch(3, seed=0)
    kwargs = {"max_length": 3, **kwargs}
    with pytest.raises(error, match=match):
        beam_search(model, source, lengths, **kwargs)
    if {"beam", "nbest", "stopping"} & set(kwargs):  # beam search's own arguments
        return
    with pytest.raises(error, match=match):
        greedy_decode(model, source, lengths, **kwargs)


@pytest.mark.parametrize("decode", [greedy_decode, beam_search])
def test_input_and_model_errors(decode):
    model = FakeSeq2Seq()
    source, lengths = make_batch(3, seed=0)
    with pytest.raises(ValueError, match=r"source must have shape \(S, B\), got \(\d+,\)"):
        decode(model, source[:, 0], lengths, max_length=3)
    with pytest.raises(TypeError, match="source must be an integer array"):
        decode(model, source.astype(float), lengths, max_length=3)
    with pytest.raises(ValueError, match=r"source_lengths must have shape \(3,\)"):
        decode(model, source, lengths[:2], max_length=3)
    with pytest.raises(ValueError, match=r"source_lengths must lie in \[0, "):
        decode(model, source, lengths + 10, max_length=3)
    with pytest.raises(TypeError, match=r"model must have .* object has no target_vocab_size"):
        decode(object(), source, lengths, max_length=3)

    class NoStep:
        target_vocab_size = 5
        encode = select = FakeSeq2Seq.encode

    with pytest.raises(TypeError, match=r"model must have .* NoStep has no decode_step"):
        decode(NoStep(), source, lengths, max_length=3)

    class BadVocab(FakeSeq2Seq):
        target_vocab_size = 2

    bad = BadVocab()
    bad.target_vocab_size = 2
    with pytest.raises(ValueError, match=r"model\.target_vocab_size must be an int > 2"):
        decode(bad, source, lengths, max_length=3)

    class WrongShape(FakeSeq2Seq):
        def decode_step(self, tokens, state):
            log_probs, state, weights = super().decode_step(tokens, state)
            return log_probs[:, :-1], state, weights

    with pytest.raises(ValueError, match=r"log_probs of shape \(3, 5\), got \(3, 4\) at step 1"):
        decode(WrongShape(), source, lengths, max_length=3)

    class NaNs(FakeSeq2Seq):
        def decode_step(self, tokens, state):
            log_probs, state, weights = super().decode_step(tokens, state)
            return np.full_like(log_probs, np.nan), state, weights

    with pytest.raises(ValueError, match="NaN or \\+inf log-probabilities at step 1"):
        decode(NaNs(), source, lengths, max_length=3)

    class NoWeights(FakeSeq2Seq):
        def decode_step(self, tokens, state):
            log_probs, state, _ = super().decode_step(tokens, state)
            return log_probs, state, None

    decode(NoWeights(), source, lengths, max_length=3)  # weights are only read when asked
    with pytest.raises(ValueError, match=r"attention weights of shape \(3, 5\) for return_atte"):
        decode(NoWeights(), source, lengths, max_length=3, return_attention=True)
