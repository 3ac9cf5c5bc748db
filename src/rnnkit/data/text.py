"""Text for character-level language models: reading UTF-8 files, a corpus that every Python
installation ships, and the character vocabulary that turns text into token ids and back.

Shapes: N = characters, V = vocabulary size (the known characters plus the unknown id 0).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rnnkit import limits
from rnnkit.data.files import MAX_TEXT_BYTES, bounded_file, read_bounded

#: The id of every character the vocabulary does not know.
UNKNOWN_ID = 0
#: How the unknown id decodes: U+FFFD REPLACEMENT CHARACTER.
UNKNOWN_CHAR = "\ufffd"


def load_text(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    max_bytes: int | str | None = None,
) -> str:
    r"""Read one or more UTF-8 text files and join them with ``"\n"``.

    Line endings are normalised to ``"\n"`` as Python's text mode does (``"\r\n"`` and a lone
    ``"\r"`` both become ``"\n"``), and a leading byte order mark is dropped from each file.

    Args:
        paths: a path, or an iterable of paths (read in the order given).
        max_bytes: the largest file to read: bytes, a size string (``"8G"``) or ``"off"``;
            None: ``RNNKIT_MAX_FILE_SIZE`` if set, else
            :data:`~rnnkit.data.files.MAX_TEXT_BYTES` (2 GiB). Every file is checked (a regular
            file, within the limit) before any is read.

    Returns:
        The text of all files, joined with ``"\n"``.

    Raises:
        FileNotFoundError: a file does not exist (the message names it).
        ValueError: a file is a device, a FIFO or a folder, or larger than ``max_bytes``; a
            file is not valid UTF-8 (the message names it and the byte offset), no path is
            given, or the text of all files together is empty ("text is empty").
        rnnkit.limits.MemoryLimitError: the text would not fit in the memory available (it
            takes 1, 2 or 4 bytes per character, twice while the files are joined).

    Example:
        >>> import os, tempfile
        >>> from rnnkit.data.text import load_text
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for name, body in [("a.txt", "one\r\ntwo"), ("b.txt", "three")]:
        ...         with open(os.path.join(d, name), "wb") as f:
        ...             _ = f.write(body.encode())
        ...     load_text([os.path.join(d, "a.txt"), os.path.join(d, "b.txt")])
        'one\ntwo\nthree'
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, bytes):
        raise TypeError("paths must be a path or an iterable of paths, got bytes")
    paths = list(paths)
    if not paths:
        raise ValueError("paths must name at least one file, got none")
    files = [bounded_file(p, "text file", max_bytes, MAX_TEXT_BYTES) for p in paths]
    total = sum(size for _, size, _ in files)
    # the bytes of one file, and the text of all twice (the parts, then joined), at 1 byte a
    # character until a file shows wider characters
    limits.check_memory(lambda: f"reading {len(files)} text file(s) of {total:,} bytes", 3 * total)
    parts = [_read_utf8(name, size, limit, total) for name, size, limit in files]
    text = "\n".join(parts)
    if not text:
        raise ValueError("text is empty")
    return text


def _read_utf8(name: str, size: int, limit: int | None, total: int) -> str:
    with open(name, "rb") as f:
        raw = read_bounded(f, name, "text file", size, limit)
    width = _char_width(raw)
    if width > 1:
        limits.check_memory(
            lambda: f"the text of {name} ({width} bytes a character)", 2 * width * total
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{name}: not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at byte offset "
            f"{err.start})"
        ) from None
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _char_width(raw: bytes) -> int:
    """The bytes a character takes in the str Python decodes from UTF-8 ``raw``: 1 up to
    U+00FF (lead bytes below 0xC4), 2 up to U+FFFF (below 0xF0), else 4."""
    top = int(np.frombuffer(raw, np.uint8).max()) if raw else 0
    return 1 if top < 0xC4 else 2 if top < 0xF0 else 4


@functools.lru_cache(maxsize=1)
def default_corpus() -> str:
    """About 465,000 characters of English prose and code that every Python installation has,
    with nothing to download: the documentation topics CPython ships for ``help()``
    (``pydoc_data.topics.topics``, one entry per statement, operator and concept), joined with
    ``"\\n"`` in the order of their keys.

    The text is the same on every call and every machine with the same Python version; other
    Python versions ship revised documentation, hence a slightly different corpus.

    Example:
        >>> from rnnkit.data.text import default_corpus
        >>> text = default_corpus()
        >>> len(text) > 100_000, text == default_corpus()
        (True, True)
    """
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


class Vocabulary:
    """The characters a model knows, each with an integer id; id 0 is reserved for every
    character it does not know (decoded as ``"\\ufffd"``, U+FFFD).

    Known characters have ids 1 .. V-1 in the order of ``chars``. :meth:`from_text` sorts them
    by code point, so the same text always gives the same ids. U+FFFD itself is never a known
    character: in a text it stands for something that could not be decoded, so it is unknown.

    Args:
        chars: the known characters, distinct, each a string of length 1 (a list, JSON-able,
            is what :attr:`chars` gives back for saving).

    Example:
        >>> from rnnkit.data.text import Vocabulary
        >>> vocab = Vocabulary.from_text("hello")
        >>> vocab.chars, len(vocab)
        (['e', 'h', 'l', 'o'], 5)
        >>> ids = vocab.encode("hole!")
        >>> ids.tolist(), vocab.decode(ids)
        ([2, 4, 3, 1, 0], 'hole\\ufffd')
        >>> vocab.coverage("hole!")
        0.8
    """

    def __init__(self, chars: Sequence[str]) -> None:
        if isinstance(chars, str):
            raise TypeError(
                "chars must be a list of single characters, got a str (use "
                "Vocabulary.from_text(text) to build one from a text)"
            )
        chars = list(chars)
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars[{i}] must be a single character, got {c!r}")
            if c == UNKNOWN_CHAR:
                raise ValueError(
                    f"chars[{i}] is U+FFFD, which is reserved for the unknown id {UNKNOWN_ID}"
                )
        seen: set[str] = set()
        for c in chars:
            if c in seen:
                raise ValueError(f"chars must be distinct, got {c!r} more than once")
            seen.add(c)
        self._chars = chars
        # Code points of every id (id 0: U+FFFD), and a sorted view for encoding by binary search.
        self._points = _code_points(UNKNOWN_CHAR + "".join(chars))  # (V,)
        known = self._points[1:]
        self._order = np.argsort(known, kind="stable")  # known ids - 1, by code point
        self._sorted = known[self._order]

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """Every distinct character of ``text`` except U+FFFD, sorted by code point."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text is empty")
        # chunk by chunk: the code points of the whole text would take 4 bytes a character
        points = np.unique(np.concatenate([np.unique(_code_points(c)) for c in _chunks(text)]))
        points = points[points != ord(UNKNOWN_CHAR)]
        return cls(list(_from_code_points(points)))

    @property
    def chars(self) -> list[str]:
        """The known characters in id order (id i + 1 for ``chars[i]``): a fresh list."""
        return list(self._chars)

    def __len__(self) -> int:
        """V: the known characters plus the unknown id."""
        return len(self._chars) + 1

    def __contains__(self, char: object) -> bool:
        return isinstance(char, str) and len(char) == 1 and self.encode(char)[0] != UNKNOWN_ID

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._chars == other._chars

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = "".join(self._chars[:20])
        more = "..." if len(self._chars) > 20 else ""
        return f"Vocabulary({len(self._chars)} chars: {shown!r}{more})"

    def encode(self, text: str) -> np.ndarray:
        """``text`` (N characters) -> ids (N,) of dtype intp; unknown characters give 0."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        N = len(text)
        limits.check_memory(
            lambda: f"the ids of a text of {N:,} characters",
            N * np.dtype(np.intp).itemsize + 64 * min(N, CHUNK_CHARS),  # the ids; one chunk's
        )
        ids = np.zeros(N, dtype=np.intp)  # (N,)
        if not len(self._sorted):
            return ids
        start = 0
        for chunk in _chunks(text):  # the temporaries of one chunk only
            points = _code_points(chunk)  # (n,)
            pos = np.minimum(np.searchsorted(self._sorted, points), len(self._sorted) - 1)
            known = self._sorted[pos] == points
            ids[start : start + len(points)] = np.where(known, self._order[pos] + 1, UNKNOWN_ID)
            start += len(points)
        return ids

    def decode(self, ids: Any) -> str:
        """Ids (any shape, read in C order) -> text; id 0 decodes to ``"\\ufffd"``."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"ids must lie in [0, {len(self)}) (the vocabulary size), got {arr[index]} at "
                f"index {index}"
            )
        # the code points, their bytes, and a text of up to 4 bytes a character
        limits.check_memory(lambda: f"the text of {arr.size:,} ids", 12 * arr.size)
        return _from_code_points(self._points[arr.ravel()])

    def count_unknown(self, text: str) -> int:
        """How many characters of ``text`` the vocabulary does not know."""
        return int((self.encode(text) == UNKNOWN_ID).sum())

    def coverage(self, text: str) -> float:
        """The fraction of the characters of ``text`` that are known (1.0 for an empty text:
        nothing in it is unknown)."""
        ids = self.encode(text)
        return float((ids != UNKNOWN_ID).mean()) if len(ids) else 1.0


#: Characters processed at a time by :meth:`Vocabulary.encode` and :meth:`Vocabulary.from_text`.
CHUNK_CHARS = 2**20


def _chunks(text: str) -> Iterable[str]:
    return (text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS))


def _code_points(text: str) -> np.ndarray:
    """The code points of ``text``, (N,) uint32; lone surrogates pass through unchanged."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _from_code_points(points: np.ndarray) -> str:
    return np.asarray(points, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
