"""Seq2Seq, the attentional encoder-decoder: gradient checks in float64 of the whole model
under teacher forcing (every score, input feeding on and off, both bridges, tied embeddings,
every cell, padded sources, dropout with fixed masks), parity with an independent PyTorch
autograd implementation of the same equations, padding invariance, training steps, and the
decoding interface (encode / decode_step / select) against the training forward."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.data.pairs import Seq2SeqInput
from rnnkit.gradcheck import relative_error
from rnnkit.nn import attention as attention_module
from rnnkit.nn.decoding import beam_search, greedy_decode
from rnnkit.nn.seq2seq import Seq2Seq

F64 = np.float64


def batch(rng, Vs=9, Vt=8, S=6, T=5, B=3, lengths=(6, 3, 1)):
    """Source ids padded with PAD after each length, and a target input (BOS first)."""
    lengths = np.array(lengths)
    source = rng.integers(4, Vs, (S, B))
    source[np.arange(S)[:, None] >= lengths[None, :]] = 0
    target = rng.integers(3, Vt, (T, B))
    target[0] = 1
    return Seq2SeqInput(source, lengths, target)


def model(**kw):
    options = {"embedding_dim": 5, "hidden_size": 6, "dtype": F64, "seed": 0} | kw
    m = Seq2Seq(9, 8, **options)
    rng = np.random.default_rng(7)
    for name, value in m.parameters().items():  # non-zero, distinct biases
        if "bias" in name:
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return m


def check_gradients(m, x, *, samples=12, eps=1e-3, tol=1e-7):
    """Fourth-order central differences of L = sum(logits * R) for a sample of every
    parameter's entries, each evaluation from the same generator states (the same dropout
    masks)."""
    rng = np.random.default_rng(3)
    saved = m.rng_state()
    logits, _, cache = m.forward(x)
    R = rng.standard_normal(logits.shape)
    _, _, grads = m.backward(R, cache)
    assert list(grads) == list(m.parameters())
    scale = max(float(np.abs(g).max()) for g in grads.values())

    def loss():
        m.set_rng_state(saved)
        return float((m.forward(x)[0] * R).sum())

    worst = {}
    for name, p in m.parameters().items():
        flat = p.reshape(-1)
        picks = rng.choice(flat.size, min(samples, flat.size), replace=False)
        numeric = np.empty(len(picks))
        for j, i in enumerate(picks):
            old = flat[i]
            at = {}
            for k in (-2, -1, 1, 2):
                flat[i] = old + k * eps
                at[k] = loss()
            flat[i] = old
            numeric[j] = (8 * (at[1] - at[-1]) - (at[2] - at[-2])) / (12 * eps)
        analytic = grads[name].reshape(-1)[picks]
        # Relative error, but a tensor whose whole gradient is tiny (the additive score's
        # query weight: 1e-5) is judged by its absolute error against the model's largest
        # gradient: there the differences are mostly rounding noise (it grows as eps shrinks,
        # a wrong term would not).
        absolute = float(np.abs(analytic - numeric).max()) / scale
        worst[name] = min(relative_error(analytic, numeric), absolute * 100)
    bad = {k: v for k, v in worst.items() if v > tol}
    assert not bad, bad
    return worst


@pytest.mark.parametrize("score", ["general", "dot", "additive"])
@pytest.mark.parametrize("input_feeding", [True, False], ids=["feeding", "no-feeding"])
def test_gradients_every_score(score, input_feeding):
    m = model(attention=score, input_feeding=input_feeding, num_layers=2)
    check_gradients(m, batch(np.random.default_rng(0)))


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "gru", "bridge": "zeros"},
        {"cell": "rnn", "bidirectional": False, "encoder_layers": 2},
        {"tie_embeddings": True, "embedding_dim": 6},
        {"dropout": 0.3, "num_layers": 2},
        {"cell": "lstm", "bidirectional": False, "bridge": "zeros", "input_feeding": False},
        {"scheduled_sampling": 0.5, "dropout": 0.2},
        {
            "scheduled_sampling": 0.7,
            "input_feeding": False,
            "tie_embeddings": True,
            "embedding_dim": 6,
            "seed": 1,
        },
    ],
    ids=["gru-zeros", "rnn-uni", "tied", "dropout", "lstm-plain", "sampling", "sampling-plain"],
)
def test_gradients_every_variant(options):
    # (with scheduled sampling, a perturbation must not flip a greedy choice: the seed of the
    # "sampling-plain" case has no near-tie within the differences' steps)
    m = model(**options)
    check_gradients(m, batch(np.random.default_rng(1)))


def test_padding_changes_nothing():
    """What stands in padded source positions changes no logit and no gradient."""
    m = model(num_layers=2)
    x = batch(np.random.default_rng(2))
    other = x.source.copy()
    other[np.arange(6)[:, None] >= x.source_lengths[None, :]] = 5
    R = np.random.default_rng(0).standard_normal((5, 3, 8))
    a, _, ca = m.forward(x)
    b, _, cb = m.forward(Seq2SeqInput(other, x.source_lengths, x.target_in))
    assert np.array_equal(a, b)
    ga, gb = m.backward(R, ca)[2], m.backward(R, cb)[2]
    assert all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_a_row_does_not_depend_on_the_others():
    m = model()
    x = batch(np.random.default_rng(3))
    logits, _, _ = m.forward(x)
    alone, _, _ = m.forward(
        Seq2SeqInput(x.source[:3, 1:2], x.source_lengths[1:2], x.target_in[:, 1:2])
    )
    np.testing.assert_allclose(alone[:, 0], logits[:, 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("input_feeding", [True, False])
def test_decoding_steps_equal_the_teacher_forced_forward(input_feeding):
    """encode + decode_step over the target input give the forward's log-probabilities (in
    evaluation mode), whatever the rows' order (select)."""
    m = model(input_feeding=input_feeding, num_layers=2).eval()
    x = batch(np.random.default_rng(4))
    logits, _, _ = m.forward(x)
    expected = logits - logits.max(-1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(-1, keepdims=True))
    state = m.encode(x.source, x.source_lengths)
    rows = np.array([2, 0, 1, 1])
    state = m.select(state, rows)
    for t in range(x.target_in.shape[0]):
        log_probs, state, weights = m.decode_step(x.target_in[t, rows], state)
        np.testing.assert_allclose(log_probs, expected[t, rows], rtol=1e-10, atol=1e-12)
        assert weights.shape == (4, 6)
        np.testing.assert_allclose(weights.sum(-1), 1.0)
        assert (weights[0, 1:] == 0).all()  # row 2 has a source of length 1


def test_float32_is_close_to_float64():
    m64 = model(num_layers=2)
    m32 = Seq2Seq(9, 8, embedding_dim=5, hidden_size=6, num_layers=2, dtype=np.float32, seed=0)
    m32.load_state_dict({k: v.astype(np.float32) for k, v in m64.state_dict().items()})
    x = batch(np.random.default_rng(5))
    a, _, _ = m64.forward(x)
    b, _, _ = m32.forward(x)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_trains_on_a_copy_task():
    """Reversing short sequences: the loss falls far in a few hundred steps."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(300):
        n = int(rng.integers(2, 6))
        word = "".join(rng.choice(list("abcdef"), n))
        pairs.append((word, " ".join(reversed(word))))
    src = rnnkit.data.TokenVocabulary.from_sequences([list(s) for s, _ in pairs])
    tgt = rnnkit.data.TokenVocabulary.from_sequences([t.split() for _, t in pairs])
    data = rnnkit.data.PairData.from_pairs(pairs, src, tgt, batch_size=16)
    m = Seq2Seq(len(src), len(tgt), embedding_dim=16, hidden_size=32, seed=0)
    trainer = rnnkit.Trainer(m, rnnkit.optim.Adam(m.parameters(), lr=0.01), "cross_entropy")
    result = trainer.fit(data, epochs=12)
    losses = [v for v, k in zip(result.history["loss"], result.history["kind"]) if k == "train"]
    assert np.mean(losses[:5]) > 1.5 and np.mean(losses[-10:]) < 0.15


def test_scheduled_sampling_feeds_predictions_in_training_only():
    """With ratio 1 every input after the first is the previous step's greedy prediction: the
    same logits as decoding greedily; in evaluation mode it is teacher forcing again."""
    m = model(scheduled_sampling=1.0, num_layers=2)
    x = batch(np.random.default_rng(6))
    logits, _, _ = m.forward(x)  # training mode, but no dropout: deterministic
    state = m.encode(x.source, x.source_lengths)
    tokens = x.target_in[0]
    for t in range(x.target_in.shape[0]):
        log_probs, state, _ = m.decode_step(tokens, state)
        z = logits[t] - logits[t].max(-1, keepdims=True)
        np.testing.assert_allclose(log_probs, z - np.log(np.exp(z).sum(-1, keepdims=True)))
        tokens = logits[t].argmax(-1)
    teacher, _, _ = model(num_layers=2).eval().forward(x)
    np.testing.assert_array_equal(m.eval().forward(x)[0], teacher)
    with pytest.raises(ValueError, match="scheduled_sampling must lie in"):
        Seq2Seq(5, 5, scheduled_sampling=1.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size must be even"):
        Seq2Seq(5, 5, hidden_size=7)
    with pytest.raises(ValueError, match="tie_embeddings needs embedding_dim == hidden_size"):
        Seq2Seq(5, 5, embedding_dim=4, hidden_size=8, tie_embeddings=True)
    with pytest.raises(ValueError, match="attention must be"):
        Seq2Seq(5, 5, attention="cosine")
    with pytest.raises(ValueError, match="bridge must be"):
        Seq2Seq(5, 5, bridge="mlp")
    with pytest.raises(rnnkit.MemoryLimitError):
        Seq2Seq(10**9, 5, embedding_dim=1024)
    m = model()
    with pytest.raises(TypeError, match="x must be a Seq2SeqInput"):
        m.forward(np.zeros((3, 2)))
    x = batch(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x\.source must lie in"):
        m.forward(Seq2SeqInput(x.source + 20, x.source_lengths, x.target_in))
    with pytest.raises(ValueError, match="source_lengths must be >= 1"):
        m.forward(Seq2SeqInput(x.source, np.array([6, 0, 1]), x.target_in))
    with pytest.raises(ValueError, match="state must be None"):
        m.forward(x, state=np.zeros(1))


def test_decode_step_of_a_row_is_the_same_in_any_batch_bit_for_bit():
    """float32, the compiled layers: a row decoded alone, or among 1, 6 or 63 others, gets the
    same bits (beam search relies on it for results that do not depend on the batch)."""
    m = Seq2Seq(9, 8, embedding_dim=8, hidden_size=16, num_layers=2, seed=0).eval()
    rng = np.random.default_rng(0)
    B = 64
    lengths = rng.integers(1, 7, B)
    source = rng.integers(4, 9, (6, B))
    source[np.arange(6)[:, None] >= lengths[None, :]] = 0
    tokens = rng.integers(3, 8, (4, B))
    every = m.encode(source, lengths)
    outs = []
    for t in range(4):
        log_probs, every, weights = m.decode_step(tokens[t], every)
        outs.append((log_probs, weights))
    for rows in ([5], [5, 9], list(range(3, 10)), list(range(B))):
        part = m.select(m.encode(source, lengths), rows)
        for t in range(4):
            log_probs, part, weights = m.decode_step(tokens[t, rows], part)
            assert np.array_equal(log_probs, outs[t][0][rows]), (rows, t)
            assert np.array_equal(weights, outs[t][1][rows]), (rows, t)


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_rows_sharing_an_input_decode_as_the_teacher_forced_forward(score):
    """Rows made by select point at their input's memory column: beams side by side (grouped,
    with gaps, compacted) and any other order (the per-row fallback) give the forward's
    log-probabilities, and select copies the memory only to compact it."""
    m = model(attention=score, num_layers=2).eval()
    x = batch(np.random.default_rng(8))
    logits, _, _ = m.forward(x)
    expected = logits - logits.max(-1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(-1, keepdims=True))
    encoded = m.encode(x.source, x.source_lengths)
    patterns = {
        "beams": (np.repeat(np.arange(3), 2), 3),
        "beams with a gap": (np.array([0, 0, 2, 2]), 3),  # 2 of 3 columns: not compacted
        "compacted": (np.array([1, 1, 1]), 1),  # 1 of 3 columns: compacted
        "other": (np.array([2, 0, 1, 1]), 3),
    }
    for name, (rows, columns) in patterns.items():
        state = m.select(encoded, rows)
        assert state.memory.mask.shape == (6, columns), name
        if columns == 3:
            assert state.memory is encoded.memory, name  # not copied
        else:
            assert np.array_equal(state.memory.keys, encoded.memory.keys[:, [1]]), name
        for t in range(x.target_in.shape[0]):
            log_probs, state, weights = m.decode_step(x.target_in[t, rows], state)
            np.testing.assert_allclose(log_probs, expected[t, rows], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
            assert (weights[x.source[:, rows].T == 0] == 0).all(), name  # padding
            state = m.select(state, np.arange(len(rows)))  # the same rows, kept


def test_beam_and_greedy_results_of_an_input_do_not_depend_on_the_batch_bit_for_bit(
    monkeypatch,
):
    """float32: an input decoded alone, or in batches of other sizes and company, gets the same
    tokens, scores and attention weights, bit for bit, by beam search and greedy search, with
    inputs stopping at different steps (gaps in the memory, compactions). Beam search always
    takes the grouped attention, with w > 1."""
    m = Seq2Seq(9, 8, embedding_dim=8, hidden_size=16, num_layers=2, seed=1).eval()
    m.generator.parameters()["bias"][2] -= 0.15  # EOS: some hypotheses finish, at any step
    rng = np.random.default_rng(2)
    B, S = 12, 7
    lengths = rng.integers(1, S + 1, B)
    source = rng.integers(4, 9, (S, B))
    source[np.arange(S)[:, None] >= lengths[None, :]] = 0
    max_length = rng.integers(2, 10, B)
    calls = []
    original = attention_module.attention_grouped

    def recording(score, params, query, memory, cols):
        calls.append((query.shape[1], cols.size, int(cols[-1] - cols[0]) + 1, memory.mask.shape[1]))
        return original(score, params, query, memory, cols)

    monkeypatch.setattr(attention_module, "attention_grouped", recording)
    fallbacks = []
    groups = attention_module.row_groups
    monkeypatch.setattr(attention_module, "row_groups", lambda s: fallbacks.append(s) or groups(s))

    def decode(cols):
        cols = np.asarray(cols)
        src, lens, maxl = source[:, cols], lengths[cols], max_length[cols]
        beams = [
            beam_search(
                m, src, lens, beam=3, nbest=2, max_length=maxl, stopping=rule,
                return_attention=True,
            )
            for rule in ("beam", "never")  # "never": inputs stop at their maximum lengths
        ]  # fmt: skip
        greedy = greedy_decode(m, src, lens, max_length=maxl, return_attention=True)
        return [*beams[0], *beams[1]], greedy

    full_beams, full_greedy = decode(np.arange(B))
    w, G, span, columns = np.array(calls).T
    assert (w > 1).any() and (span > G).any() and (columns < B).any()  # grouped, gaps, compacted
    for cols in ([4], [0], [9], [3, 7], [11, 5, 2, 8, 0], list(range(B))[::-1]):
        beams, greedy = decode(cols)
        pairs = [(beams[i], full_beams[b]) for i, b in enumerate(cols)]
        pairs += [(beams[len(cols) + i], full_beams[B + b]) for i, b in enumerate(cols)]
        pairs += [([greedy[i]], [full_greedy[b]]) for i, b in enumerate(cols)]
        for hyps, expected in pairs:
            for got, want in zip(hyps, expected, strict=True):
                assert got.tokens == want.tokens and got.finished == want.finished, cols
                assert got.score == want.score and got.log_prob == want.log_prob, cols
                assert np.array_equal(got.attention, want.attention), cols
    assert all(groups(s) is not None for s in fallbacks)  # beam and greedy never fall back
    assert any(h.finished for hyps in full_beams for h in hyps)
    assert not all(h.finished for hyps in full_beams for h in hyps)


def test_decoding_at_real_sizes_does_not_depend_on_the_batch_bit_for_bit():
    """float32, sizes where the products cross from NumPy's BLAS (a few rows) to the compiled
    kernel (hundreds of rows): an input decoded alone and among 64 gets the same tokens and
    scores, bit for bit, because decoding computes every product row by row alike
    (gemm.exact_rows)."""
    m = Seq2Seq(30, 40, embedding_dim=32, hidden_size=64, seed=0).eval()
    rng = np.random.default_rng(0)
    S, B = 6, 64
    source, lengths, max_length = rng.integers(4, 30, (S, B)), np.full(B, S), np.full(B, 14)
    batch = beam_search(m, source, lengths, beam=5, nbest=2, max_length=max_length)
    greedy = greedy_decode(m, source, lengths, max_length=max_length)
    for b in range(0, B, 9):
        alone = beam_search(m, source[:, b : b + 1], lengths[:1], beam=5, nbest=2,
                            max_length=max_length[:1])[0]  # fmt: skip
        assert [(h.tokens, h.score) for h in alone] == [(h.tokens, h.score) for h in batch[b]]
        (one,) = greedy_decode(m, source[:, b : b + 1], lengths[:1], max_length=max_length[:1])
        assert (one.tokens, one.score) == (greedy[b].tokens, greedy[b].score)
