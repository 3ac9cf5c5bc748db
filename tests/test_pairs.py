"""Source/target pairs: reading TSV files (bad lines named by number, CRLF, what is refused),
tokens and their round trips, the token vocabulary and its special ids, alternative
references, the fixed development split (on CMUdict when it is present), and the batches of
PairData and source_batches."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data import (
    BOS,
    EOS,
    PAD,
    UNK,
    PairData,
    Seq2SeqInput,
    TokenVocabulary,
    detokenize,
    group_references,
    read_pairs,
    source_batches,
    split_by_source,
    tokenize,
)
from rnnkit.data.files import SIZE_ENV
from rnnkit.data.pairs import SPECIAL_TOKENS, held_out
from rnnkit.limits import MemoryLimitError, memory_limit

CMUDICT = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "g2p" / "cmudict-train.tsv"
)


def write(tmp_path, data: bytes, name: str = "pairs.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- reading ---------------------------------------------------------------------------------------


def test_read_pairs_crlf_blank_lines_bom_and_alternatives(tmp_path):
    path = write(
        tmp_path,
        "\ufeffAACHEN\tAA K AH N\r\n\r\n  \nABBE\tAE B IY\r\nABBE\tAE B\nÉTÉ\té t é \n".encode(),
    )
    assert read_pairs(path) == [
        ("AACHEN", "AA K AH N"),
        ("ABBE", "AE B IY"),
        ("ABBE", "AE B"),
        ("ÉTÉ", "é t é"),
    ]
    assert read_pairs(str(path)) == read_pairs(path)  # str or PathLike


@pytest.mark.parametrize(
    ("body", "line", "pattern"),
    [
        (b"a\tb\nno tab here\n", 2, "expected one TAB between source and target, found none"),
        (b"a\tb\n\nx\ty\tz\n", 3, r"expected one TAB .*, found 2: 'x\\ty\\tz'$"),
        (b"a\tb\n\tb\n", 2, "the source is empty"),
        (b"a\tb\r\nc\t  \r\n", 2, "the target is empty"),
        (b"\t\n", 1, "the source is empty"),
        (b"a\tb\nc\td\xff\n", 2, "not UTF-8 text \\(invalid byte 0xff at byte offset 7\\)"),
    ],
)
def test_read_pairs_names_the_file_and_line_of_a_bad_line(tmp_path, body, line, pattern):
    path = write(tmp_path, body)
    with pytest.raises(ValueError, match=rf"pairs\.tsv, line {line}: {pattern}"):
        read_pairs(path)


def test_read_pairs_refuses_empty_files_devices_fifos_and_big_files(tmp_path, monkeypatch):
    monkeypatch.delenv(SIZE_ENV, raising=False)
    with pytest.raises(ValueError, match=r"pairs\.tsv: no source<TAB>target pair"):
        read_pairs(write(tmp_path, b"\n \r\n"))
    with pytest.raises(FileNotFoundError, match=r"missing\.tsv: no such file"):
        read_pairs(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="is a directory"):
        read_pairs(tmp_path)
    start = time.perf_counter()
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match="/dev/zero: is a character device"):
            read_pairs("/dev/zero")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")  # nobody writes to it: opening it would block for ever
        with pytest.raises(ValueError, match=r"pipe: is a FIFO"):
            read_pairs(tmp_path / "pipe")
    assert time.perf_counter() - start < 1.0
    path = write(tmp_path, b"a\tb\n" * 750)  # 3,000 bytes
    with pytest.raises(ValueError, match=r"3,000 bytes \(2\.9 KiB\), more than the 1\.0 KiB"):
        read_pairs(path, max_bytes="1K")
    assert len(read_pairs(path, max_bytes=3000)) == 750
    monkeypatch.setenv(SIZE_ENV, "2K")
    with pytest.raises(ValueError, match=r"more than the 2\.0 KiB"):
        read_pairs(path)


def test_read_pairs_checks_the_memory_it_needs_before_reading(tmp_path):
    path = write(tmp_path, b"a\tb\n" * 100_000)
    with memory_limit("1M"), pytest.raises(MemoryLimitError, match=r"reading .*pairs\.tsv"):
        read_pairs(path)


# -- tokens and vocabulary -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["AACHEN", "ÉTÉ", "a sentence,  with spaces", "x", "ß\u0301 ☃ 𝄞"])
def test_chars_round_trip_exactly(text):
    tokens = tokenize(text, "chars")
    assert len(tokens) == len(text) and detokenize(tokens, "chars") == text


def test_words_split_on_whitespace_and_join_with_one_space():
    assert tokenize("  AA  K\tAH N ", "words") == ["AA", "K", "AH", "N"]
    assert detokenize(tokenize("AA K AH N", "words"), "words") == "AA K AH N"
    assert tokenize("", "words") == [] and detokenize([], "words") == ""
    with pytest.raises(ValueError, match="mode must be one of 'chars', 'words', got 'bpe'"):
        tokenize("a", "bpe")
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize(["a"], "chars")


def test_vocabulary_specials_order_and_encoding():
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    vocab = TokenVocabulary.from_sequences([["B", "A", "C"], ["C", "A"], ["C"]])
    assert vocab.to_list() == ["C", "A", "B"]  # by falling frequency, ties by token
    assert len(vocab) == 7 and "A" in vocab and "<unk>" not in vocab and 4 not in vocab
    assert vocab.encode(["C", "A", "B", "Z"]).tolist() == [4, 5, 6, UNK]
    assert vocab.encode([]).dtype == np.intp and vocab.encode([]).shape == (0,)
    assert TokenVocabulary.from_list(vocab.to_list()) == vocab
    limited = TokenVocabulary.from_sequences([["B", "A", "C"], ["C", "A"], ["C"]], min_count=2)
    assert limited.to_list() == ["C", "A"]
    assert TokenVocabulary.from_sequences([list("abcabc")], max_tokens=2).to_list() == ["a", "b"]


def test_decode_stops_at_eos_and_drops_pad_and_bos():
    vocab = TokenVocabulary(["AA", "K"])
    assert vocab.decode([BOS, 4, PAD, 5, UNK, EOS, 4, 4]) == ["AA", "K", SPECIAL_TOKENS[UNK]]
    assert vocab.decode(np.array([EOS, 4])) == []
    assert vocab.decode([]) == [] and vocab.decode([4, 5]) == ["AA", "K"]
    assert vocab.decode([4, EOS, 99]) == ["AA"]  # what follows EOS is not read
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 6\).*got 6 at index 1"):
        vocab.decode([4, 6])
    with pytest.raises(ValueError, match=r"ids must have shape \(N,\)"):
        vocab.decode([[4]])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode([4.0])


def test_vocabulary_refuses_bad_tokens():
    with pytest.raises(ValueError, match="tokens must be distinct, got 'a' more than once"):
        TokenVocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match=r"tokens\[1\] must be a non-empty str, got ''"):
        TokenVocabulary(["a", ""])
    with pytest.raises(TypeError, match="got a str"):
        TokenVocabulary("abc")
    with pytest.raises(TypeError, match=r"sequences\[0\] must be a list of tokens, got a str"):
        TokenVocabulary.from_sequences(["AA K"])
    with pytest.raises(ValueError, match="no token occurs at least min_count=3"):
        TokenVocabulary.from_sequences([["a", "b"]], min_count=3)
    with pytest.raises(TypeError, match="tokenize it first"):
        TokenVocabulary(["a"]).encode("a")


def test_group_references_keeps_first_seen_order():
    pairs = [("B", "b1"), ("A", "a1"), ("B", "b2"), ("B", "b1"), ("C", "c"), ("A", "a2")]
    groups = group_references(pairs)
    assert list(groups) == ["B", "A", "C"]
    assert groups == {"B": ["b1", "b2"], "A": ["a1", "a2"], "C": ["c"]}


# -- the development split -------------------------------------------------------------------------


def test_split_holds_out_whole_sources_independently_of_order():
    rng = np.random.default_rng(0)
    pairs = [(f"W{i}", f"t{j}") for i in range(2000) for j in range(1 + i % 3)]
    train, dev = split_by_source(pairs, 0.1)
    assert len(train) + len(dev) == len(pairs)
    assert Counter(train) + Counter(dev) == Counter(pairs)
    train_sources, dev_sources = {s for s, _ in train}, {s for s, _ in dev}
    assert train_sources.isdisjoint(dev_sources)
    for s in dev_sources:  # every target of a held-out source is held out with it
        assert sum(p[0] == s for p in dev) == 1 + int(s[1:]) % 3
    assert abs(len(dev_sources) / 2000 - 0.1) < 0.02
    assert [p for p in pairs if p in set(dev)] == dev  # file order kept
    shuffled = [pairs[i] for i in rng.permutation(len(pairs))]
    assert {s for s, _ in split_by_source(shuffled, 0.1)[1]} == dev_sources
    fewer = [p for p in pairs if p[0] in dev_sources or p[0] < "W5"]
    assert {s for s, _ in split_by_source(fewer, 0.1)[1]} == dev_sources
    assert {s for s, _ in split_by_source(pairs, 0.1, salt="other")[1]} != dev_sources
    bigger = {s for s, _ in split_by_source(pairs, 0.2)[1]}
    assert dev_sources < bigger  # a larger fraction holds out a superset


def test_split_is_a_documented_hash_of_the_source():
    """The rule in the docstring, spelt out: the same in any process, with any hash seed."""
    import hashlib

    for word in ["AACHEN", "ÉTÉ", "A", "ZYWICKI"]:
        h = int.from_bytes(hashlib.sha256(("rnnkit" + word).encode()).digest(), "big")
        for fraction in (0.01, 0.05, 0.5):
            assert held_out(word, fraction) == (h < fraction * 2**256)


def test_split_refuses_bad_fractions_and_empty_sides():
    pairs = [("a", "b"), ("c", "d")]
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction must lie strictly between 0 and 1"):
            split_by_source(pairs, bad)
    with pytest.raises(TypeError, match="fraction must be a float"):
        split_by_source(pairs, "0.1")
    with pytest.raises(ValueError, match="leaves the development set empty"):
        split_by_source(pairs, 1e-9)
    with pytest.raises(ValueError, match="leaves the training set empty"):
        split_by_source(pairs, 1 - 1e-12)


@pytest.mark.skipif(not CMUDICT.exists(), reason="CMUdict's training file is not here")
def test_split_of_cmudict_holds_out_five_percent_of_its_words():
    pairs = read_pairs(CMUDICT)
    assert len(pairs) == 113_438
    train, dev = split_by_source(pairs, 0.05)
    words, dev_words = {s for s, _ in pairs}, {s for s, _ in dev}
    assert len(words) == 106_837
    assert abs(len(dev_words) / len(words) - 0.05) <= 0.005
    assert dev_words.isdisjoint(s for s, _ in train)
    assert (len(dev_words), len(dev)) == (5_382, 5_718)  # the fixed split the docs cite


# -- batches ---------------------------------------------------------------------------------------


def random_pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sources = [rng.integers(4, 30, rng.integers(1, 15)) for _ in range(n)]
    targets = [rng.integers(4, 40, rng.integers(0, 12)) for _ in range(n)]
    return sources, targets


def test_batch_layout_bos_eos_pad_and_masks():
    sources, targets = random_pairs(37)
    data = PairData(sources, targets, batch_size=8, shuffle=False)
    order = data.order(None)
    seen = []
    for i in range(len(data)):
        b = data.batch(order, i)
        idx = order[i * 8 : (i + 1) * 8]
        seen.extend(idx.tolist())
        assert isinstance(b.x, Seq2SeqInput)
        source, source_lengths, target_in = b.x
        B = len(idx)
        S, T = source.shape[0], target_in.shape[0]
        assert source.shape == (S, B) and target_in.shape == (T, B) == b.y.shape == b.mask.shape
        assert b.lengths.shape == source_lengths.shape == (B,)
        assert S == max(len(sources[j]) for j in idx)
        assert T == max(len(targets[j]) for j in idx) + 1
        for dtype_of in (source, source_lengths, target_in, b.y, b.lengths):
            assert dtype_of.dtype == np.intp
        assert b.mask.dtype == np.bool_ and b.reset is None
        for col, j in enumerate(idx):
            s, t = sources[j], targets[j]
            n = len(t)
            assert source_lengths[col] == len(s) and b.lengths[col] == n + 1
            assert source[: len(s), col].tolist() == s.tolist()
            assert (source[len(s) :, col] == PAD).all()
            assert target_in[:, col].tolist() == [BOS, *t.tolist()] + [PAD] * (T - n - 1)
            assert b.y[:, col].tolist() == [*t.tolist(), EOS] + [PAD] * (T - n - 1)
            assert b.mask[:, col].tolist() == [True] * (n + 1) + [False] * (T - n - 1)
        assert (target_in[1:] == b.y[:-1])[b.mask[1:]].all()  # teacher forcing: y shifted
    assert sorted(seen) == list(range(37))


def test_every_pair_once_per_epoch_with_similar_lengths_together():
    sources, targets = random_pairs(1000, seed=1)
    data = PairData(sources, targets, batch_size=16, pool_batches=8)
    assert len(data) == 63
    order = data.order(np.random.default_rng(5))
    assert sorted(order.tolist()) == list(range(1000))
    batches = [data.batch(order, i) for i in range(len(data))]
    assert sum(len(b.lengths) for b in batches) == 1000 and len(batches[-1].lengths) == 8
    # within a batch the source lengths spread far less than in random batches
    spread = np.mean([np.ptp(b.x.source_lengths) for b in batches[:-1]])
    random = np.mean([np.ptp(data.source_lengths[p]) for p in np.arange(992).reshape(62, 16)])
    assert spread <= 2 and random >= 10
    padded = sum(b.x.source.size for b in batches)
    assert padded < 1.2 * data.source_lengths.sum()
    # the epoch's order is the generator's: the same seed, the same order; another, another
    assert (data.order(np.random.default_rng(5)) == order).all()
    other = data.order(np.random.default_rng(6))
    assert not (other == order).all() and sorted(other.tolist()) == list(range(1000))
    # the batches themselves differ between epochs (pools of new pairs), not just their order
    first = {tuple(sorted(order[i * 16 : (i + 1) * 16])) for i in range(62)}
    second = {tuple(sorted(other[i * 16 : (i + 1) * 16])) for i in range(62)}
    assert len(first & second) < 10


def test_order_without_shuffling_is_sorted_by_length_and_stable():
    sources = [[5] * n for n in (3, 1, 2, 1, 3)]
    targets = [[6] * n for n in (0, 2, 1, 1, 0)]
    data = PairData(sources, targets, batch_size=2, shuffle=False)
    assert data.order(np.random.default_rng(0)).tolist() == [3, 1, 2, 0, 4]
    shuffled = PairData(sources, targets, batch_size=2)
    assert shuffled.order(None).tolist() == [3, 1, 2, 0, 4]  # evaluation: no generator
    whole = PairData(sources, targets, batch_size=2, pool_batches=None)
    order = whole.order(np.random.default_rng(0))
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4] and order[-1] in (0, 4)  # longest last


def test_from_pairs_encodes_with_the_vocabularies():
    pairs = [("ABBE", "AE B IY"), ("AB", "AE B")]
    src = TokenVocabulary.from_sequences(tokenize(s, "chars") for s, _ in pairs)
    tgt = TokenVocabulary.from_sequences(tokenize(t, "words") for _, t in pairs)
    data = PairData.from_pairs(pairs, src, tgt, batch_size=4, shuffle=False)
    b = data.batch(data.order(None), 0)
    assert [src.decode(b.x.source[:, c]) for c in range(2)] == [list("AB"), list("ABBE")]
    assert [tgt.decode(b.y[:, c]) for c in range(2)] == [["AE", "B"], ["AE", "B", "IY"]]
    with pytest.raises(ValueError, match="target_tokens must be one of"):
        PairData.from_pairs(pairs, src, tgt, batch_size=4, target_tokens="phones")


def test_pair_data_refuses_bad_inputs():
    with pytest.raises(ValueError, match=r"sources\[1\] is empty"):
        PairData([[4], []], [[4], [4]], batch_size=2)
    with pytest.raises(ValueError, match="same length, got 2 sources and 1 targets"):
        PairData([[4], [5]], [[4]], batch_size=2)
    with pytest.raises(TypeError, match=r"targets\[0\] must hold integer ids, got dtype float64"):
        PairData([[4]], [[4.5]], batch_size=2)
    with pytest.raises(ValueError, match=r"sources\[0\] must hold ids >= 0, got -1"):
        PairData([[-1]], [[4]], batch_size=2)
    with pytest.raises(ValueError, match=r"sources\[0\] must have shape \(L,\), got \(1, 1\)"):
        PairData([[[4]]], [[4]], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        PairData([[4]], [[4]], batch_size=0)
    with pytest.raises(ValueError, match="sources must not be empty"):
        PairData([], [], batch_size=2)
    data = PairData([[4]], [[4]], batch_size=2)
    with pytest.raises(IndexError, match="batch 1 is past the end of the epoch"):
        data.batch(data.order(None), 1)


def test_batches_check_memory_before_allocating():
    data = PairData([np.full(5000, 4)] * 4, [np.full(5000, 5)] * 4, batch_size=4)
    with memory_limit("64K"), pytest.raises(MemoryLimitError, match="a batch of 4 pairs"):
        data.batch(data.order(None), 0)


def test_source_batches_cover_every_source_sorted_or_in_order():
    sources, _ = random_pairs(50, seed=2)
    got = list(source_batches(sources, 8))
    indices = np.concatenate([b.indices for b in got])
    assert sorted(indices.tolist()) == list(range(50))
    assert np.all(np.diff([len(sources[i]) for i in indices]) >= 0)
    for b in got:
        for col, j in enumerate(b.indices):
            n = len(sources[j])
            assert b.source_lengths[col] == n and b.source[:n, col].tolist() == sources[j].tolist()
            assert (b.source[n:, col] == PAD).all()
    plain = list(source_batches(sources, 8, sort=False))
    assert np.concatenate([b.indices for b in plain]).tolist() == list(range(50))
    assert [len(b.indices) for b in plain] == [8] * 6 + [2]
