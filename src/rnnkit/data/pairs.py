"""Sequence pairs for sequence-to-sequence models (translation, grapheme-to-phoneme): reading
``source<TAB>target`` files, tokens, a token vocabulary with special ids, alternative
references, a fixed development split, and the batches a :class:`~rnnkit.Trainer` trains on.

Shapes are time-major: S = source steps, T = target steps plus one (the decoder reads BOS then
the target, and predicts the target then EOS), B = batch, N = pairs.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.data.batching import Batch
from rnnkit.data.files import MAX_TEXT_BYTES, bounded_file, count_bytes, read_bounded

#: The id that pads sequences to the length of the longest in a batch.
PAD = 0
#: The id the decoder reads first: the beginning of a target.
BOS = 1
#: The id that ends a target: the decoder predicts it after the last token.
EOS = 2
#: The id of every token the vocabulary does not know.
UNK = 3
#: How the special ids 0..3 read, in order (what :meth:`TokenVocabulary.decode` gives for UNK).
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
#: The ways a side of a pair is cut into tokens (see :func:`tokenize`).
TOKEN_MODES = ("chars", "words")

# What one line of a pairs file costs in memory beside its characters: the line's str, the two
# sides' strs (49 bytes of header each), their tuple (56) and the list's pointers to both.
_LINE_OVERHEAD = 230


def read_pairs(
    path: str | os.PathLike[str], *, max_bytes: int | str | None = None
) -> list[tuple[str, str]]:
    r"""Read ``source<TAB>target`` pairs from a UTF-8 file, one pair a line.

    Each line holds exactly one TAB; the whitespace around each side is stripped (``"\r\n"``
    line endings thus read like ``"\n"``), and neither side may then be empty. Blank lines
    (nothing but spaces) are skipped; a leading byte order mark is dropped. Several lines with
    the same source are alternative references (see :func:`group_references`); they are all
    kept, in file order.

    Args:
        path: the file.
        max_bytes: the largest file to read: bytes, a size string (``"8G"``) or ``"off"``;
            None: ``RNNKIT_MAX_FILE_SIZE`` if set, else
            :data:`~rnnkit.data.files.MAX_TEXT_BYTES` (2 GiB).

    Returns:
        The pairs ``(source, target)`` in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is a device, a FIFO or a folder, or larger than ``max_bytes``; it
            is not UTF-8; a line has no TAB or several, or an empty side (the message names the
            file and the line number, counted from 1); there is no pair at all.
        rnnkit.limits.MemoryLimitError: the pairs would not fit in the memory available.

    Example:
        >>> import os, tempfile
        >>> from rnnkit.data.pairs import read_pairs
        >>> with tempfile.TemporaryDirectory() as d:
        ...     name = os.path.join(d, "g2p.tsv")
        ...     with open(name, "wb") as f:
        ...         _ = f.write(b"AACHEN\tAA K AH N\r\n\nABBE\tAE B IY\nABBE\tAE B\n")
        ...     read_pairs(name)
        [('AACHEN', 'AA K AH N'), ('ABBE', 'AE B IY'), ('ABBE', 'AE B')]
    """
    what = "file of source<TAB>target pairs"
    name, size, limit = bounded_file(path, what, max_bytes, MAX_TEXT_BYTES)
    (newlines,), _ = count_bytes(name, b"\n", limit)
    lines = newlines + 1
    # the bytes, the text and its lines (1 byte a character until wider ones show), the sides
    limits.check_memory(
        lambda: f"reading {name} ({size:,} bytes, {lines:,} lines)",
        4 * size + _LINE_OVERHEAD * lines,
    )
    with open(name, "rb") as f:
        raw = read_bounded(f, name, what, size, limit)
    top = int(np.frombuffer(raw, np.uint8).max()) if raw else 0
    width = 1 if top < 0xC4 else 2 if top < 0xF0 else 4  # bytes a character of the str takes
    if width > 1:
        limits.check_memory(
            lambda: f"the text of {name} ({width} bytes a character)",
            (1 + 3 * width) * size + _LINE_OVERHEAD * lines,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"{name}, line {line}: not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at byte "
            f"offset {err.start})"
        ) from None
    del raw
    pairs = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if "\t" not in line and not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            found = "none" if len(fields) == 1 else f"{len(fields) - 1}"
            raise ValueError(
                f"{name}, line {number}: expected one TAB between source and target, found "
                f"{found}: {_clip(line)!r}"
            )
        source, target = fields[0].strip(), fields[1].strip()
        for side, value in (("source", source), ("target", target)):
            if not value:
                raise ValueError(f"{name}, line {number}: the {side} is empty: {_clip(line)!r}")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{name}: no source<TAB>target pair (the file is empty or blank)")
    return pairs


def _clip(line: str, n: int = 60) -> str:
    return line if len(line) <= n else line[:n] + "..."


def _mode(mode: Any, name: str = "mode") -> str:
    if mode not in TOKEN_MODES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, TOKEN_MODES))}, got {mode!r}")
    return mode


def tokenize(text: str, mode: str) -> list[str]:
    """Cut ``text`` into tokens: ``"chars"``, every character (spaces included, as tokens of
    their own: a sentence read by characters keeps its word boundaries), or ``"words"``, the
    pieces between runs of whitespace.

    Example:
        >>> from rnnkit.data.pairs import tokenize
        >>> tokenize("ABBE", "chars"), tokenize("AE  B IY", "words"), tokenize("a b", "chars")
        (['A', 'B', 'B', 'E'], ['AE', 'B', 'IY'], ['a', ' ', 'b'])
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return list(text) if _mode(mode) == "chars" else text.split()


def detokenize(tokens: Iterable[str], mode: str) -> str:
    """The inverse of :func:`tokenize`: the tokens joined, with nothing between characters and
    one space between words.

    Example:
        >>> from rnnkit.data.pairs import detokenize
        >>> detokenize(["A", "B"], "chars"), detokenize(["AE", "B"], "words")
        ('AB', 'AE B')
    """
    tokens = list(tokens)
    for i, t in enumerate(tokens):
        if not isinstance(t, str):
            raise TypeError(f"tokens[{i}] must be a str, got {type(t).__name__}")
    return ("" if _mode(mode) == "chars" else " ").join(tokens)


class TokenVocabulary:
    """Tokens and their integer ids, after four special ids: :data:`PAD` = 0, :data:`BOS` = 1,
    :data:`EOS` = 2 and :data:`UNK` = 3 (every token the vocabulary does not know).

    Known tokens have ids 4 .. V-1 in the order of ``tokens``. :meth:`from_sequences` orders
    them by falling frequency, ties by token (code points), so the same data always gives the
    same ids. The special ids are fixed and not part of ``tokens``: a data token spelled like
    one of :data:`SPECIAL_TOKENS` is an ordinary token.

    Args:
        tokens: the known tokens, distinct non-empty strings (a list, JSON-able, is what
            :meth:`to_list` gives back for a checkpoint).

    Example:
        >>> from rnnkit.data.pairs import TokenVocabulary, tokenize
        >>> vocab = TokenVocabulary.from_sequences([tokenize("AE B IY", "words"), ["B"]])
        >>> vocab.to_list(), len(vocab)
        (['B', 'AE', 'IY'], 7)
        >>> ids = vocab.encode(["AE", "K", "B"])
        >>> ids.tolist(), vocab.decode([*ids, 2, 5])
        ([5, 3, 4], ['AE', '<unk>', 'B'])
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if isinstance(tokens, str):
            raise TypeError(
                "tokens must be a list of str, got a str (use TokenVocabulary.from_sequences("
                "[tokenize(text, mode), ...]) to build one from texts)"
            )
        tokens = list(tokens)
        index: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if not isinstance(t, str) or not t:
                raise ValueError(f"tokens[{i}] must be a non-empty str, got {t!r}")
            if t in index:
                raise ValueError(f"tokens must be distinct, got {t!r} more than once")
            index[t] = i + len(SPECIAL_TOKENS)
        self._tokens = tokens
        self._index = index
        self._words = [*SPECIAL_TOKENS, *tokens]  # (V,) what each id decodes to

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        min_count: int = 1,
        max_tokens: int | None = None,
    ) -> TokenVocabulary:
        """The tokens of ``sequences`` (token lists, e.g. the tokenised targets of the training
        pairs), most frequent first, ties by token; those seen fewer than ``min_count`` times
        left out, and at most ``max_tokens`` kept (None: all)."""
        min_count = _checks.positive_int("min_count", min_count)
        if max_tokens is not None:
            max_tokens = _checks.positive_int("max_tokens", max_tokens)
        if isinstance(sequences, str):
            raise TypeError("sequences must be a list of token lists, got a str")
        counts: Counter[str] = Counter()
        for i, seq in enumerate(sequences):
            if isinstance(seq, str):
                raise TypeError(
                    f"sequences[{i}] must be a list of tokens, got a str (tokenize it first)"
                )
            counts.update(seq)
        if not counts:
            raise ValueError("sequences hold no token")
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=_rank(counts))
        if not ranked:
            raise ValueError(
                f"no token occurs at least min_count={min_count} times (the most frequent "
                f"occurs {max(counts.values())} times)"
            )
        return cls(ranked[:max_tokens])

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> TokenVocabulary:
        """The vocabulary :meth:`to_list` saved."""
        return cls(tokens)

    def to_list(self) -> list[str]:
        """The known tokens in id order (id i + 4 for ``to_list()[i]``): a fresh, JSON-able
        list."""
        return list(self._tokens)

    def __len__(self) -> int:
        """V: the special ids and the known tokens."""
        return len(self._words)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenVocabulary):
            return NotImplemented
        return self._tokens == other._tokens

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = " ".join(self._tokens[:20])
        more = " ..." if len(self._tokens) > 20 else ""
        return f"TokenVocabulary({len(self._tokens)} tokens: {shown}{more})"

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Tokens (N,) -> ids (N,) of dtype intp; unknown tokens give :data:`UNK`. No BOS or
        EOS is added."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a list of str, got a str (tokenize it first)")
        get = self._index.get
        return np.fromiter((get(t, UNK) for t in tokens), dtype=np.intp, count=len(tokens))

    def decode(self, ids: Any) -> list[str]:
        """Ids (N,) -> tokens: up to the first :data:`EOS` (excluded), :data:`PAD` and
        :data:`BOS` dropped, :data:`UNK` read as ``"<unk>"``."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids must have shape (N,), got {_checks.fmt_shape(arr.shape)}")
        if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        ends = np.flatnonzero(arr == EOS)
        arr = arr[: ends[0]] if len(ends) else arr
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"ids must lie in [0, {len(self)}) (the vocabulary size), got {arr[i]} at index {i}"
            )
        words = self._words
        return [words[i] for i in arr.tolist() if i > BOS]


def _rank(counts: Counter[str]) -> Any:
    return lambda t: (-counts[t], t)


def group_references(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each source with its targets (alternative references), sources in the order they first
    appear and targets in file order; a target repeated for the same source is kept once.

    Example:
        >>> from rnnkit.data.pairs import group_references
        >>> group_references([("ABBE", "AE B IY"), ("AB", "AE B"), ("ABBE", "AE B")])
        {'ABBE': ['AE B IY', 'AE B'], 'AB': ['AE B']}
    """
    groups: dict[str, list[str]] = {}
    for source, target in pairs:
        targets = groups.setdefault(source, [])
        if target not in targets:
            targets.append(target)
    return groups


def held_out(source: str, fraction: float, salt: str = "rnnkit") -> bool:
    """Whether :func:`split_by_source` holds ``source`` out: whether SHA-256 of the UTF-8 bytes
    of ``salt + source``, read as a big-endian integer h in [0, 2**256), is below
    ``fraction * 2**256``."""
    digest = hashlib.sha256((salt + source).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest, "big") < fraction * 2**256


def split_by_source(
    pairs: Sequence[tuple[str, str]],
    fraction: float,
    *,
    salt: str = "rnnkit",
    held_out_name: str = "development",
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out a fixed ``fraction`` of the distinct sources, with all their pairs, as a
    development set: ``(train_pairs, dev_pairs)``, each in the order of ``pairs``.

    A source is held out when SHA-256 of the UTF-8 bytes of ``salt + source``, read as a
    big-endian integer, is below ``fraction * 2**256`` (see :func:`held_out`). The choice thus
    depends on nothing but the source string and the salt: not on the order or the other lines
    of the file, nor on Python's hash seed; the same word is held out in every run, on every
    machine, and whatever else the file holds. All pronunciations (targets) of a word go to
    the same side, so no development word is ever trained on. Each source is held out with
    probability ``fraction``, so the share of held-out sources is ``fraction`` up to sampling
    noise: of the 106,837 words of CMUdict's training file (113,438 lines),
    ``fraction=0.05`` holds out 5,382 words (5.04 %) with their 5,718 lines. ``held_out_name``
    names the held-out set in the error below.

    Raises:
        ValueError: ``fraction`` is not in (0, 1), or one side would be empty.

    Example:
        >>> from rnnkit.data.pairs import split_by_source
        >>> pairs = [(f"W{i}", "X") for i in range(1000)] + [("W3", "Y")]
        >>> train, dev = split_by_source(pairs, 0.1)
        >>> len(train), len(dev), {s for s, _ in train}.isdisjoint(s for s, _ in dev)
        (891, 110, True)
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise TypeError(f"fraction must be a float, got {type(fraction).__name__} {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    if not isinstance(salt, str):
        raise TypeError(f"salt must be a str, got {type(salt).__name__}")
    decided: dict[str, bool] = {}
    train, dev = [], []
    for pair in pairs:
        source = pair[0]
        out = decided.get(source)
        if out is None:
            out = decided[source] = held_out(source, float(fraction), salt)
        (dev if out else train).append(pair)
    if not train or not dev:
        side = held_out_name if not dev else "training"
        raise ValueError(
            f"holding out {fraction} of {len(decided)} distinct sources leaves the {side} set "
            "empty; use more data or another fraction"
        )
    return train, dev


class Seq2SeqInput(NamedTuple):
    """What a sequence-to-sequence model reads: :attr:`Batch.x <rnnkit.data.Batch.x>` of the
    batches of :class:`PairData`. Its target lengths are :attr:`Batch.lengths`."""

    source: np.ndarray  # (S, B) source ids, padded with PAD
    source_lengths: np.ndarray  # (B,) valid source steps, >= 1
    target_in: np.ndarray  # (T, B) decoder inputs: BOS, then the target, padded with PAD


class SourceBatch(NamedTuple):
    """A batch of sources to decode (:func:`source_batches`)."""

    indices: np.ndarray  # (B,) the positions of the sources in the list given
    source: np.ndarray  # (S, B) source ids, padded with PAD
    source_lengths: np.ndarray  # (B,) valid source steps


def _id_sequences(name: str, values: Any, *, empty: bool) -> list[np.ndarray]:
    """``values`` as a list of 1-D integer arrays of ids >= 0 (none empty unless ``empty``)."""
    if isinstance(values, (str, bytes, np.ndarray)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list of 1-D id arrays, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        a = np.asarray(v)
        if a.ndim != 1:
            raise ValueError(f"{name}[{i}] must have shape (L,), got {_checks.fmt_shape(a.shape)}")
        if a.size == 0:
            if not empty:
                raise ValueError(f"{name}[{i}] is empty: every sequence needs a token")
            a = a.astype(np.intp)
        elif a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name}[{i}] must hold integer ids, got dtype {a.dtype}")
        elif a.min() < 0:
            raise ValueError(f"{name}[{i}] must hold ids >= 0, got {a.min()}")
        out.append(a)
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def _pad(seqs: Sequence[np.ndarray], steps: int, offset: int = 0) -> np.ndarray:
    """The sequences side by side, time-major (steps, B), from step ``offset``, padded with PAD."""
    out = np.full((steps, len(seqs)), PAD, dtype=np.intp)  # (steps, B)
    for b, s in enumerate(seqs):
        out[offset : offset + len(s), b] = s
    return out


class PairData:
    """Mini-batches of (source, target) id sequences for a sequence-to-sequence model, the
    data source of a :class:`~rnnkit.Trainer`.

    Batch i of an epoch is a :class:`~rnnkit.data.Batch` whose ``x`` is a
    :class:`Seq2SeqInput` (``source`` (S, B), ``source_lengths`` (B,), ``target_in`` (T, B) =
    BOS + target), ``y`` (T, B) = target + EOS (the ids to predict), ``lengths`` (B,) = the
    target lengths + 1 and ``mask`` (T, B) bool = the valid target steps; every id array is
    intp and padded with :data:`PAD`.

    The order of an epoch (``order(rng)``): with ``shuffle`` and a generator, the pairs are
    permuted, cut into pools of ``pool_batches`` batches, sorted within each pool by source
    length, then target length (stable: random among equal lengths), and cut into batches,
    which are then shuffled, except that a last, incomplete batch stays last. So a batch holds
    pairs of about the same length (little padding), and each epoch has new batches (as
    OpenNMT's pools and fairseq's length-sorted batches do). ``pool_batches=None`` sorts the
    whole data set at once. Without ``shuffle`` or without a generator (evaluation): all pairs
    sorted by source length, then target length, then position.

    Args:
        sources: N source id sequences (L_n,), none empty.
        targets: N target id sequences (L_n,), without BOS or EOS (they are added); may be empty.
        batch_size: B; the last batch of an epoch may be smaller.
        shuffle: draw new batches each epoch.
        pool_batches: the batches of a pool, or None for one pool.

    Example:
        >>> import numpy as np
        >>> from rnnkit.data.pairs import PairData
        >>> data = PairData([[5, 6, 7], [5], [6, 6]], [[8, 9], [9], []], batch_size=2)
        >>> b = data.batch(data.order(None), 0)
        >>> b.x.source.tolist(), b.x.target_in.tolist(), b.y.tolist(), b.lengths.tolist()
        ([[5, 6], [0, 6]], [[1, 1], [9, 0]], [[9, 2], [2, 0]], [2, 1])
    """

    def __init__(
        self,
        sources: Any,
        targets: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        pool_batches: int | None = 64,
    ) -> None:
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.shuffle = _checks.boolean("shuffle", shuffle)
        if pool_batches is not None:
            pool_batches = _checks.positive_int("pool_batches", pool_batches)
        self.pool_batches = pool_batches
        self.sources = _id_sequences("sources", sources, empty=False)
        self.targets = _id_sequences("targets", targets, empty=True)
        if len(self.sources) != len(self.targets):
            raise ValueError(
                f"sources and targets must have the same length, got {len(self.sources)} "
                f"sources and {len(self.targets)} targets"
            )
        self.source_lengths = np.array([len(s) for s in self.sources], dtype=np.intp)  # (N,)
        self.target_lengths = np.array([len(t) for t in self.targets], dtype=np.intp)  # (N,)

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str, str]],
        source_vocab: TokenVocabulary,
        target_vocab: TokenVocabulary,
        batch_size: int,
        *,
        source_tokens: str = "chars",
        target_tokens: str = "words",
        shuffle: bool = True,
        pool_batches: int | None = 64,
    ) -> PairData:
        """Tokenise and encode text pairs (by default as grapheme-to-phoneme data: characters
        in, space-separated phonemes out)."""
        _mode(source_tokens, "source_tokens")
        _mode(target_tokens, "target_tokens")
        pairs = list(pairs)
        chars = sum(len(s) + len(t) for s, t in pairs)  # at least as many as the tokens
        limits.check_memory(
            lambda: f"the ids of {len(pairs):,} pairs", 8 * chars + 2 * 112 * len(pairs)
        )
        sources = [source_vocab.encode(tokenize(s, source_tokens)) for s, _ in pairs]
        targets = [target_vocab.encode(tokenize(t, target_tokens)) for _, t in pairs]
        return cls(sources, targets, batch_size, shuffle=shuffle, pool_batches=pool_batches)

    def __len__(self) -> int:
        return -(-len(self.sources) // self.batch_size)

    def order(self, rng: np.random.Generator | None) -> np.ndarray:
        """The pairs of one epoch (N,), batch after batch (see the class docstring)."""
        src, tgt = self.source_lengths, self.target_lengths
        if not self.shuffle or rng is None:
            return np.lexsort((np.arange(len(src)), tgt, src))
        n, B = len(src), self.batch_size
        perm = rng.permutation(n)
        pool = n if self.pool_batches is None else self.pool_batches * B
        pools = [perm[a : a + pool] for a in range(0, n, pool)]
        by_length = np.concatenate([p[np.lexsort((tgt[p], src[p]))] for p in pools])  # stable
        full = n // B  # pools hold whole batches: only the last one can be incomplete
        batches = by_length[: full * B].reshape(full, B)[rng.permutation(full)]  # (full, B)
        return np.concatenate([batches.ravel(), by_length[full * B :]])

    def batch(self, order: np.ndarray, i: int) -> Batch:
        """The i-th batch of an epoch in ``order``."""
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        if len(idx) == 0:
            raise IndexError(f"batch {i} is past the end of the epoch ({len(self)} batches)")
        B = len(idx)
        sources = [self.sources[j] for j in idx]
        targets = [self.targets[j] for j in idx]
        source_lengths = self.source_lengths[idx]  # (B,)
        lengths = self.target_lengths[idx] + 1  # (B,) the target and EOS
        S, T = int(source_lengths.max()), int(lengths.max())
        limits.check_memory(
            lambda: f"a batch of {B} pairs ({S} source and {T} target steps)",
            8 * (S * B + 2 * T * B) + T * B,
        )
        source = _pad(sources, S)  # (S, B)
        target_in = _pad(targets, T, offset=1)  # (T, B)
        target_in[0] = BOS
        steps = np.arange(T)[:, None]  # (T, 1)
        mask = steps < lengths  # (T, B)
        target_out = _pad(targets, T)  # (T, B)
        target_out[steps == lengths - 1] = EOS  # (T, B) one True per column
        return Batch(Seq2SeqInput(source, source_lengths, target_in), target_out, lengths, mask)


def source_batches(
    sources: Sequence[Any], batch_size: int, *, sort: bool = True, equal_lengths: bool = False
) -> Iterator[SourceBatch]:
    """Batches of source id sequences to decode, each with the positions of its sources.

    With ``sort`` the sources are batched by length (stable: position order among equal
    lengths), so little is padded; ``indices`` tell where each result goes. Without it they
    come in the order given. With ``equal_lengths`` (and ``sort``) a batch holds sources of one
    length only, nothing padded: a source's results then cannot depend, even in their last
    bit, on the other sources decoded with it (padding changes the sums over source positions,
    which round differently).

    Example:
        >>> from rnnkit.data.pairs import source_batches
        >>> [(b.indices.tolist(), b.source.shape) for b in source_batches([[4, 5], [6], [7]], 2)]
        [([1, 2], (1, 2)), ([0], (2, 1))]
        >>> seqs = [[4, 5], [6], [7, 8], [9]]
        >>> [b.indices.tolist() for b in source_batches(seqs, 3, equal_lengths=True)]
        [[1, 3], [0, 2]]
    """
    seqs = _id_sequences("sources", sources, empty=False)
    batch_size = _checks.positive_int("batch_size", batch_size)
    lengths = np.array([len(s) for s in seqs], dtype=np.intp)  # (N,)
    order = np.argsort(lengths, kind="stable") if _checks.boolean("sort", sort) else None
    runs = [(0, len(seqs))]  # [start, end) of the sorted positions batched apart
    if _checks.boolean("equal_lengths", equal_lengths) and order is not None:
        cuts = np.flatnonzero(np.diff(lengths[order])) + 1
        edges = [0, *cuts.tolist(), len(seqs)]
        runs = list(itertools.pairwise(edges))
    chunks = [
        np.arange(start, min(start + batch_size, end))
        for first, end in runs
        for start in range(first, end, batch_size)
    ]
    for idx in chunks:
        idx = idx if order is None else order[idx]  # (B,)
        S, B = int(lengths[idx].max()), len(idx)
        limits.check_memory(lambda: f"a batch of {B} sources of {S} steps", 8 * S * B)  # noqa: B023
        yield SourceBatch(idx, _pad([seqs[j] for j in idx], S), lengths[idx])
