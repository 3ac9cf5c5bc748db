r"""Evaluation metrics for sequence-to-sequence models: error rates against alternative
references, BLEU and chrF.

Each hypothesis :math:`h_i`, i = 1..n, has one or more alternative references
:math:`R_i = \{r_{i1}, r_{i2}, \dots\}` (a word with several pronunciations, a sentence with
several translations); all are token lists except for chrF, which reads strings.

Token error rate (TER) and sequence error rate (SER):

.. math::

    \mathrm{TER} = \frac{\sum_i d(h_i, r_i^*)}{\sum_i |r_i^*|}, \quad
    r_i^* = \operatorname*{arg\,min}_{r \in R_i} \bigl(d(h_i, r), |r|\bigr), \qquad
    \mathrm{SER} = \tfrac1n \,\bigl|\{i : h_i \notin R_i\}\bigr|

with :math:`d` the Levenshtein distance (:func:`edit_distance`: insertions, deletions and
substitutions of tokens, each costing 1) and :math:`r_i^*` the closest reference: the fewest
edits, on a tie the shorter (then the first). TER sums the edits over the corpus and divides
by the summed lengths of the references used, as grapheme-to-phoneme papers report the
phoneme error rate (PER); it may exceed 1 (a hypothesis longer than its reference). For G2P,
PER is TER over phonemes and the word error rate (WER, a word is right only if its whole
pronunciation is one of its references) is SER. Both are fractions in [0, 1] (TER: [0, inf)).

BLEU and chrF follow sacreBLEU's defaults (Post 2018, ``sacrebleu.corpus_bleu`` and
``sacrebleu.corpus_chrf`` 2.x) and are on its scale, 0 to 100:

- :func:`corpus_bleu`: BLEU-4, the geometric mean of the clipped n-gram precisions
  :math:`p_n`, n = 1..4, of the whole corpus (reference counts: the largest in any one
  reference) times the brevity penalty :math:`\min(1, e^{1 - \rho / c})`, c the hypotheses'
  length and :math:`\rho` the summed lengths of the references closest in length to each
  hypothesis (ties: the shorter), with sacreBLEU's ``exp`` smoothing (an order with no match
  counts :math:`1 / (2^k \cdot \text{total}_n)`, k = 1, 2, ... for each such order). It
  reads tokens: it equals ``sacrebleu.corpus_bleu`` given the tokens joined with spaces and
  ``tokenize="none"`` (tokens must then hold no whitespace, as :func:`~rnnkit.data.tokenize`'s
  ``"words"`` give). For scores comparable with published ones, tokenise as they did
  (sacreBLEU's default ``13a``, for instance) before calling it.
- :func:`corpus_chrf`: chrF2, the character n-gram F-score (n = 1..6, whitespace removed,
  :math:`\beta = 2`) of precision and recall averaged over the orders that occur in both
  hypothesis and reference; per sentence the reference with the best F-score counts, and the
  n-gram statistics are summed over the corpus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """The Levenshtein distance between two token sequences: the fewest insertions, deletions
    and substitutions (each costing 1) that turn ``a`` into ``b``.

    Computed with the bit-parallel algorithm of Myers (1999) in Hyyrö's (2001) form for the
    global distance: one column of the dynamic-programming table is held as bit vectors of its
    vertical differences (+1/-1) in Python ints, each token of the longer sequence updates it in
    a dozen integer operations, so the cost is O(len(a) * ceil(len(b) / 64)) machine words
    rather than O(len(a) * len(b)) Python steps. Tokens are compared with ``==`` (and hashed).

    Example:
        >>> edit_distance("kitten", "sitting"), edit_distance(["AA", "K"], ["AA", "K"])
        (3, 0)
        >>> edit_distance([], ["AH", "N"]), edit_distance(["AE", "B"], ["B", "AE"])
        (2, 2)
    """
    if len(a) < len(b):
        a, b = b, a  # the bit vectors hold the shorter one
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[Hashable, int] = {}  # token -> the positions where b holds it, as bits
    for i, token in enumerate(b):
        peq[token] = peq.get(token, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m  # vertical deltas of column 0 (all +1); D[m][0] = m
    for token in a:
        eq = peq.get(token, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)  # horizontal +1 ...
        mh = pv & xh  # ... and -1 deltas
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full  # row 0 grows by 1 a column: a global distance
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def _tokens(name: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(
            f"{name} must be a list of tokens, got {type(value).__name__} {_clip(value)!r} "
            "(tokenize strings first)"
        )
    return list(value)


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _corpus(
    hypotheses: Any, references: Any, *, strings: bool = False
) -> tuple[list[Any], list[list[Any]]]:
    """The hypotheses and their lists of alternative references, checked: token lists (or
    strings, for chrF), as many of each, at least one reference each."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} "
            f"hypotheses and {len(references)} lists of references"
        )
    if len(hypotheses) == 0:
        raise ValueError("hypotheses must not be empty")
    hyps: list[Any] = []
    refs: list[list[Any]] = []
    for i, (h, rs) in enumerate(zip(hypotheses, references)):
        if isinstance(rs, (str, bytes)) or not hasattr(rs, "__len__"):
            raise TypeError(
                f"references[{i}] must be a list of alternative references, got "
                f"{type(rs).__name__} {_clip(rs)!r}"
            )
        if len(rs) == 0:
            raise ValueError(f"references[{i}] is empty: each hypothesis needs a reference")
        if strings:
            named = [(f"hypotheses[{i}]", h)]
            named += [(f"references[{i}][{j}]", r) for j, r in enumerate(rs)]
            for name, value in named:
                if not isinstance(value, str):
                    raise TypeError(f"{name} must be a str, got {type(value).__name__}")
            hyps.append(h)
            refs.append(list(rs))
        else:
            hyps.append(_tokens(f"hypotheses[{i}]", h))
            refs.append([_tokens(f"references[{i}][{j}]", r) for j, r in enumerate(rs)])
    return hyps, refs


def token_error_rate(
    hypotheses: Sequence[Sequence[Hashable]],
    references: Sequence[Sequence[Sequence[Hashable]]],
) -> float:
    """The edits against the closest reference, summed, over the summed lengths of those
    references (see the module docstring): the phoneme error rate of G2P.

    Args:
        hypotheses: n token lists.
        references: n lists of alternative references, each a token list.

    Raises:
        ValueError: the lengths differ, a hypothesis has no reference, or the references used
            hold no token at all (the rate is then undefined).

    Example:
        >>> hyps = [["AA", "K", "AH", "N"], ["AE", "B"]]
        >>> refs = [[["AA", "K", "AH", "N"]], [["AE", "B", "IY"], ["AE", "B", "EY"]]]
        >>> token_error_rate(hyps, refs)  # 0 + 1 edits over 4 + 3 reference tokens
        0.14285714285714285
    """
    hyps, refs = _corpus(hypotheses, references)
    edits = length = 0
    for h, rs in zip(hyps, refs):
        e, n = min((edit_distance(h, r), len(r)) for r in rs)
        edits += e
        length += n
    if length == 0:
        raise ValueError(
            "the token error rate is undefined: the closest references hold no token (every "
            "one used is empty)"
        )
    return edits / length


def sequence_error_rate(
    hypotheses: Sequence[Sequence[Hashable]],
    references: Sequence[Sequence[Sequence[Hashable]]],
) -> float:
    """The fraction of hypotheses equal to none of their references: the word error rate of
    G2P.

    Example:
        >>> sequence_error_rate([["AE", "B"], ["K"]], [[["AE", "B", "IY"], ["AE", "B"]], [["G"]]])
        0.5
    """
    hyps, refs = _corpus(hypotheses, references)
    return sum(h not in rs for h, rs in zip(hyps, refs)) / len(hyps)


def _ngrams(tokens: list[Any], max_order: int) -> Counter[tuple[Any, ...]]:
    """Every n-gram of ``tokens``, n = 1..max_order, with its count."""
    return Counter(
        tuple(tokens[i : i + n])
        for n in range(1, max_order + 1)
        for i in range(len(tokens) - n + 1)
    )


def corpus_bleu(
    hypotheses: Sequence[Sequence[Hashable]],
    references: Sequence[Sequence[Sequence[Hashable]]],
    *,
    max_order: int = 4,
) -> float:
    """Corpus BLEU on a 0-100 scale, as sacreBLEU computes it by default, of tokenised text
    (see the module docstring).

    Args:
        hypotheses: n token lists.
        references: n lists of alternative references (token lists); their number may vary.
        max_order: the longest n-gram (4: BLEU-4).

    Example:
        >>> hyp = "the cat sat on the mat".split()
        >>> refs = ["the cat sat on a mat".split(), "a cat sat on the mat".split()]
        >>> round(corpus_bleu([hyp], [refs]), 4)
        95.5443
    """
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive int, got {max_order!r}")
    hyps, refs = _corpus(hypotheses, references)
    correct = [0] * max_order
    total = [0] * max_order
    sys_len = ref_len = 0
    for h, rs in zip(hyps, refs):
        ref_counts: Counter[tuple[Any, ...]] = Counter()
        for r in rs:
            for gram, count in _ngrams(r, max_order).items():
                ref_counts[gram] = max(ref_counts[gram], count)
        sys_len += len(h)
        ref_len += _closest_length(len(h), rs)
        for gram, count in _ngrams(h, max_order).items():
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, ref_counts.get(gram, 0))
    return _bleu(correct, total, sys_len, ref_len)


def _closest_length(hyp_len: int, refs: list[list[Any]]) -> int:
    """The length of the reference closest in length to the hypothesis; ties: the shorter."""
    return min((abs(hyp_len - len(r)), len(r)) for r in refs)[1]


def _bleu(correct: list[int], total: list[int], sys_len: int, ref_len: int) -> float:
    """BLEU from corpus statistics, with sacreBLEU's ``exp`` smoothing."""
    if not any(correct):
        return 0.0
    if sys_len >= ref_len:
        penalty = 1.0
    else:
        penalty = math.exp(1 - ref_len / sys_len)
    log_sum, halvings = 0.0, 1.0
    for c, t in zip(correct, total):
        if t == 0:
            return 0.0  # no n-gram of this order at all: no precision, BLEU is 0
        if c == 0:
            halvings *= 2
            log_sum += math.log(100.0 / (halvings * t))
        else:
            log_sum += math.log(100.0 * c / t)
    return penalty * math.exp(log_sum / len(correct))


def _char_ngrams(text: str, max_order: int) -> list[Counter[str]]:
    """The character n-grams of ``text`` without its whitespace, one Counter per order."""
    text = "".join(text.split())
    return [
        Counter(text[i : i + n] for i in range(len(text) - n + 1)) for n in range(1, max_order + 1)
    ]


def _chrf_stats(hyp: list[Counter[str]], ref: list[Counter[str]]) -> list[int]:
    """[hypothesis n-grams, reference n-grams, matches] for each order, flattened; an order
    the reference lacks counts no hypothesis n-gram (as sacreBLEU)."""
    stats = []
    for h, r in zip(hyp, ref):
        matches = sum(min(c, r[g]) for g, c in h.items() if g in r)
        stats += [h.total() if r else 0, r.total(), matches]
    return stats


def _chrf(stats: list[int], beta: float) -> float:
    """The F-score of the precision and recall averaged over the orders present in both."""
    precisions, recalls = [], []
    for k in range(0, len(stats), 3):
        n_hyp, n_ref, n_match = stats[k : k + 3]
        if n_hyp > 0 and n_ref > 0:
            precisions.append(n_match / n_hyp)
            recalls.append(n_match / n_ref)
    if not precisions:
        return 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0
    factor = beta**2
    return 100 * ((1 + factor) * p * r / (factor * p + r))


def corpus_chrf(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    char_order: int = 6,
    beta: float = 2,
) -> float:
    """Corpus chrF on a 0-100 scale (chrF2 by default), as sacreBLEU computes it by default
    (see the module docstring).

    Args:
        hypotheses: n strings (detokenised text).
        references: n lists of alternative reference strings; their number may vary.
        char_order: the longest character n-gram.
        beta: the weight of recall against precision.

    Example:
        >>> round(corpus_chrf(["the cat sat"], [["the cat sat", "a cat"]]), 4)
        100.0
        >>> round(corpus_chrf(["the cat"], [["the cat sat"]]), 4)
        55.771
    """
    if isinstance(char_order, bool) or not isinstance(char_order, int) or char_order < 1:
        raise ValueError(f"char_order must be a positive int, got {char_order!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    hyps, refs = _corpus(hypotheses, references, strings=True)
    totals = [0] * (3 * char_order)
    for h, rs in zip(hyps, refs):
        hyp = _char_ngrams(h, char_order)
        best, best_f = None, -1.0
        for r in rs:
            stats = _chrf_stats(hyp, _char_ngrams(r, char_order))
            f = _chrf(stats, beta)
            if f > best_f:  # the first of equally good references
                best, best_f = stats, f
        totals = [a + b for a, b in zip(totals, best)]
    return _chrf(totals, beta)
