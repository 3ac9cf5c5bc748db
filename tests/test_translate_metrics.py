"""The metrics of translation: the edit distance against a plain dynamic-programming reference,
token and sequence error rates against alternative references (hand cases and edge cases),
BLEU and chrF by hand and against sacreBLEU (skipped where it is not installed)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from rnnkit.apps.translate import (
    corpus_bleu,
    corpus_chrf,
    edit_distance,
    sequence_error_rate,
    token_error_rate,
)


def levenshtein(a, b) -> int:
    """The textbook dynamic programme, one row at a time: the reference of edit_distance."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def bleu_by_hand(precisions, hyp_len, ref_len) -> float:
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(sum(math.log(p) for p in precisions) / len(precisions))


# -- edit distance ---------------------------------------------------------------------------------


def test_edit_distance_hand_cases():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance([], []) == 0 and edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance(["AA", "K", "AH", "N"], ["AA", "K", "AH", "N"]) == 0
    assert edit_distance(["AA", "K"], ["IY", "Z"]) == 2  # all wrong: substitutions
    assert edit_distance([1, 2, 3], (1, 3)) == 1  # any hashable tokens, any sequence


@pytest.mark.parametrize("alphabet", [1, 2, 4, 30])
def test_edit_distance_matches_the_dynamic_programme(alphabet):
    rng = np.random.default_rng(alphabet)
    for _ in range(1500):
        n, m = rng.integers(0, 14, 2)
        a = [f"t{i}" for i in rng.integers(0, alphabet, n)]
        b = [f"t{i}" for i in rng.integers(0, alphabet, m)]
        d = levenshtein(a, b)
        assert edit_distance(a, b) == d == edit_distance(b, a), (a, b)


def test_edit_distance_of_long_sequences_spans_several_machine_words():
    rng = np.random.default_rng(7)
    for n, m in [(64, 64), (65, 63), (130, 200), (300, 1), (1, 300)]:
        a, b = rng.integers(0, 5, n).tolist(), rng.integers(0, 5, m).tolist()
        assert edit_distance(a, b) == levenshtein(a, b)


def test_edit_distance_is_fast_for_a_g2p_test_set():
    """12,000 word pairs of G2P length: about 0.1 s here; the bound leaves room for a slow,
    shared machine."""
    rng = np.random.default_rng(0)
    phones = [f"P{i}" for i in range(40)]
    pairs = [
        ([phones[i] for i in rng.integers(0, 40, rng.integers(3, 12))],
         [phones[i] for i in rng.integers(0, 40, rng.integers(3, 12))])
        for _ in range(12_000)
    ]  # fmt: skip
    start = time.perf_counter()
    distances = [edit_distance(a, b) for a, b in pairs]
    assert time.perf_counter() - start < 1.0
    assert distances[:300] == [levenshtein(a, b) for a, b in pairs[:300]]


# -- error rates -----------------------------------------------------------------------------------


def test_token_error_rate_uses_the_closest_reference():
    hyps = [["AE", "B", "IY"], ["K", "AE", "T"]]
    refs = [
        [["AE", "B"], ["AE", "B", "EY"], ["AE", "B", "IY", "Z"]],  # 1 edit each: the shortest
        [["K", "AE", "T"]],
    ]
    assert token_error_rate(hyps, refs) == 1 / (2 + 3)
    assert sequence_error_rate(hyps, refs) == 0.5
    refs[0].append(["AE", "B", "IY"])  # an exact match among the alternatives
    assert token_error_rate(hyps, refs) == 0.0 and sequence_error_rate(hyps, refs) == 0.0


def test_token_error_rate_is_summed_edits_over_summed_reference_lengths():
    """As G2P papers report PER: not the mean of the per-word rates."""
    hyps = [["A"], ["B", "C", "D", "E"]]
    refs = [[["X"]], [["B", "C", "D", "F", "G", "H", "I", "J"]]]
    assert token_error_rate(hyps, refs) == (1 + 5) / (1 + 8)  # the per-word mean would be 0.8125


def test_error_rate_edge_cases():
    refs = [[["AA", "K"]], [["N"]]]
    assert token_error_rate([["AA", "K"], ["N"]], refs) == 0.0  # all correct
    assert sequence_error_rate([["AA", "K"], ["N"]], refs) == 0.0
    assert token_error_rate([["IY", "Z"], ["M"]], refs) == 1.0  # all wrong, same lengths
    assert sequence_error_rate([["IY", "Z"], ["M"]], refs) == 1.0
    assert token_error_rate([[], []], refs) == 1.0  # empty hypotheses: every token deleted
    assert token_error_rate([["Z"] * 5, ["N"]], refs) == 5 / 3  # insertions: above 1
    assert token_error_rate([["Z"], ["N"]], [[[]], [["N"]]]) == 1.0  # an empty reference
    assert sequence_error_rate([[], ["Z"]], [[[]], [[]]]) == 0.5
    assert token_error_rate([[], ["Z"]], [[[], ["Q"]], [["N"]]]) == 1.0  # empty ref is closest
    with pytest.raises(ValueError, match="token error rate is undefined"):
        token_error_rate([["A"]], [[[]]])


def test_error_rates_refuse_malformed_input():
    with pytest.raises(TypeError, match=r"hypotheses\[0\] must be a list of tokens, got str"):
        token_error_rate(["AA K"], [[["AA", "K"]]])
    # references[i] must be a list of alternatives, not one token list
    with pytest.raises(TypeError, match=r"references\[0\]\[0\] must be a list of tokens, got str"):
        token_error_rate([["AA", "K"]], [["AA", "K"]])
    with pytest.raises(TypeError, match=r"references\[0\] must be a list of alternative refer"):
        sequence_error_rate([["AA"]], ["AA"])
    with pytest.raises(ValueError, match="same length, got 2 hypotheses and 1 lists"):
        sequence_error_rate([["A"], ["B"]], [[["A"]]])
    with pytest.raises(ValueError, match=r"references\[0\] is empty"):
        token_error_rate([["A"]], [[]])
    with pytest.raises(ValueError, match="hypotheses must not be empty"):
        token_error_rate([], [])


# -- BLEU and chrF by hand -------------------------------------------------------------------------


def test_bleu_hand_cases():
    ref = "a b c d f".split()
    assert corpus_bleu([ref], [[ref]]) == pytest.approx(100.0, abs=1e-12)
    assert corpus_bleu([["x", "y", "z", "w"]], [[ref]]) == 0.0  # nothing matches
    assert corpus_bleu([[]], [[ref]]) == 0.0  # an empty hypothesis
    assert corpus_bleu([["a", "b", "c"]], [[["a", "b", "c"]]]) == 0.0  # no 4-gram at all
    got = corpus_bleu(["a b c d e".split()], [[ref]])
    assert got == pytest.approx(bleu_by_hand([4 / 5, 3 / 4, 2 / 3, 1 / 2], 5, 5), rel=1e-12)
    # brevity: every n-gram right, 4 tokens for 6
    got = corpus_bleu(["a b c d".split()], [["a b c d e f".split()]])
    assert got == pytest.approx(100 * math.exp(1 - 6 / 4), rel=1e-12)
    # none of the two 4-grams matches: sacreBLEU's exp smoothing counts 1/2 a match of 2
    got = corpus_bleu(["a b c x y".split()], [["a b c d e".split()]])
    assert got == pytest.approx(bleu_by_hand([3 / 5, 2 / 4, 1 / 3, 1 / 4], 5, 5), rel=1e-12)


def test_bleu_with_several_references_clips_by_the_largest_count():
    hyp = "the the the the".split()
    refs = ["the cat".split(), "the the dog sat".split()]
    # unigrams: 2 of 4 (the second reference has "the" twice); bigrams 1 of 3 ("the the");
    # no trigram nor 4-gram matches: smoothed 1/(2*2) and 1/(4*1); the closest length is 4
    expected = bleu_by_hand([2 / 4, 1 / 3, 1 / 4, 1 / 4], 4, 4)
    assert corpus_bleu([hyp], [refs]) == pytest.approx(expected, rel=1e-12)


def test_chrf_hand_cases():
    assert corpus_chrf(["ab"], [["ab"]]) == 100.0
    assert corpus_chrf(["a b"], [["ab"]]) == 100.0  # whitespace is not read
    # unigrams: P = R = 1/2; bigrams: P = R = 0; no longer n-gram in both: F = 1/4
    assert corpus_chrf(["ab"], [["ac"]]) == pytest.approx(25.0, rel=1e-12)
    assert corpus_chrf([""], [["ab"]]) == 0.0 and corpus_chrf(["ab"], [[""]]) == 0.0
    assert corpus_chrf(["xy"], [["ab"]]) == 0.0
    assert corpus_chrf(["ab"], [["zz", "ac", "ab"]]) == 100.0  # the best reference counts
    with pytest.raises(TypeError, match=r"hypotheses\[0\] must be a str, got list"):
        corpus_chrf([["a", "b"]], [["ab"]])
    with pytest.raises(TypeError, match=r"references\[0\] must be a list of alternative"):
        corpus_chrf(["ab"], ["ab"])


# -- parity with sacreBLEU -------------------------------------------------------------------------


def random_corpus(seed: int, n: int = 60, vocab: int = 12):
    """Hypotheses and 1-3 references each of random words, some empty, overlapping enough for
    every n-gram order to match somewhere."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "über", "naïve", "x", "yz"]
    words = words[:vocab]

    def sentence():
        return [words[i] for i in rng.integers(0, len(words), rng.integers(0, 15))]

    hyps, refs = [], []
    for _ in range(n):
        rs = [sentence() for _ in range(rng.integers(1, 4))]
        h = list(rs[0])
        for _ in range(rng.integers(0, 4)):  # a few edits of the first reference
            if h and rng.random() < 0.5:
                h[rng.integers(len(h))] = words[rng.integers(len(words))]
            else:
                h.insert(rng.integers(len(h) + 1), words[rng.integers(len(words))])
        hyps.append(h)
        refs.append(rs)
    return hyps, refs


def streams(refs):
    """sacreBLEU's layout of a variable number of references: one stream per reference
    position, None where a sentence has fewer."""
    k = max(len(rs) for rs in refs)
    return [[rs[j] if j < len(rs) else None for rs in refs] for j in range(k)]


@pytest.mark.parametrize("seed", range(6))
def test_bleu_equals_sacrebleu_on_tokenised_text(seed):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = random_corpus(seed, vocab=4 + 2 * seed)
    ours = corpus_bleu(hyps, refs)
    joined = [[" ".join(r) for r in rs] for rs in refs]
    theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], streams(joined), tokenize="none")
    assert 0 < ours < 100
    assert ours == pytest.approx(theirs.score, rel=1e-12, abs=1e-12)


def test_bleu_equals_sacrebleu_defaults_after_its_13a_tokenisation():
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    hyps = ["The cat sat on the mat.", "It's raining, isn't it?", "Hello world!"]
    refs = [
        ["The cat is on the mat.", "There is a cat on the mat."],
        ["It is raining, isn't it?"],
        ["Hello, world!", "Hi world!"],
    ]
    ours = corpus_bleu(
        [tok(h).split() for h in hyps], [[tok(r).split() for r in rs] for rs in refs]
    )
    assert ours == pytest.approx(sacrebleu.corpus_bleu(hyps, streams(refs)).score, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_chrf_equals_sacrebleu(seed):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = random_corpus(100 + seed, vocab=4 + 2 * seed)
    hyp_text = [" ".join(h) for h in hyps]
    ref_text = [[" ".join(r) for r in rs] for rs in refs]
    ours = corpus_chrf(hyp_text, ref_text)
    theirs = sacrebleu.corpus_chrf(hyp_text, streams(ref_text))
    assert 0 < ours < 100
    assert ours == pytest.approx(theirs.score, rel=1e-12, abs=1e-12)


def test_bleu_and_chrf_edge_cases_equal_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    cases = [
        (["", "a b"], [["a b c d"], ["a b"]]),  # an empty hypothesis
        (["a b c d"], [[""]]),  # an empty reference
        (["a b c d e"], [["a b c d e"]]),  # all correct
        (["p q r s t"], [["a b c d e"]]),  # all wrong
        (["", ""], [["a"], ["b"]]),  # nothing at all
    ]
    for hyps, refs in cases:
        bleu = corpus_bleu([h.split() for h in hyps], [[r.split() for r in rs] for rs in refs])
        ref_bleu = sacrebleu.corpus_bleu(hyps, streams(refs), tokenize="none").score
        assert bleu == pytest.approx(ref_bleu, abs=1e-12), (hyps, refs)
        chrf = corpus_chrf(hyps, refs)
        assert chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, streams(refs)).score, abs=1e-12)
