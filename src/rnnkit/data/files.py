"""The checks every data loader makes before it reads a file: it must be a regular file, and
not larger than a limit.

Reading a device (``/dev/zero``), a FIFO or a socket as data never ends or blocks; a folder is
not data. Symbolic links are followed, so a link to a device is refused too.

Sizes: a file larger than its loader's limit is refused, by its size on disk, before it is
read: :data:`MAX_TEXT_BYTES` (2 GiB) for :func:`~rnnkit.data.load_text`,
:data:`MAX_TABLE_BYTES` (1 GiB) for the CSV and ``.ts`` loaders, whose parsed rows take several
times the file's size. Each loader takes ``max_bytes=``: a number of bytes, a size string
(``"8G"``), or ``"off"`` for no limit; the environment variable ``RNNKIT_MAX_FILE_SIZE``
(:data:`SIZE_ENV`, the same forms) replaces the defaults. What a file decodes to in memory is
estimated and checked against the memory available as well (:mod:`rnnkit.limits`).
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any

import numpy as np

from rnnkit import limits

#: The largest text file :func:`~rnnkit.data.load_text` reads unless told otherwise.
MAX_TEXT_BYTES = 2 * 2**30
#: The largest CSV or ``.ts`` file the table loaders read unless told otherwise.
MAX_TABLE_BYTES = 2**30
#: The environment variable that replaces the default limits (bytes, K/M/G/T, or "off").
SIZE_ENV = "RNNKIT_MAX_FILE_SIZE"
#: Bytes read at a time when a file is scanned.
CHUNK_BYTES = 2**20


def regular_file(path: str | os.PathLike[str], what: str = "file") -> str:
    """``path`` as a string, if it names a regular file; FileNotFoundError or ValueError naming
    it (and ``what`` was expected) otherwise.

    Example:
        >>> from rnnkit.data.files import regular_file
        >>> regular_file("/dev/zero", "text file")
        Traceback (most recent call last):
        ...
        ValueError: /dev/zero: is a character device, expected a text file
    """
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file") from None
    except NotADirectoryError:
        raise FileNotFoundError(f"{name}: no such file (a part of the path is a file)") from None
    if stat.S_ISREG(mode):
        return name
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise ValueError(f"{name}: is {kind}, expected a {what}")


def size_limit(max_bytes: Any, default: int) -> int | None:
    """The size limit a loader applies: ``max_bytes`` (bytes, a size string, or "off" for none)
    when given, else ``RNNKIT_MAX_FILE_SIZE`` when set, else ``default``."""
    if max_bytes is not None:
        return limits.parse_size(max_bytes, "max_bytes")
    text = os.environ.get(SIZE_ENV)
    if text is None or not text.strip():
        return default
    return limits.parse_size(text, SIZE_ENV)


def bounded_file(
    path: str | os.PathLike[str], what: str, max_bytes: Any, default: int
) -> tuple[str, int, int | None]:
    """``(name, size, limit)`` for a regular file (see :func:`regular_file`) no larger than its
    limit (see :func:`size_limit`); ValueError naming the file, its size and the limit
    otherwise.

    Example:
        >>> import tempfile
        >>> from rnnkit.data.files import bounded_file
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     _ = f.write(b"x" * 2000)
        ...     f.flush()
        ...     try:
        ...         bounded_file(f.name, "text file", "1K", 0)
        ...     except ValueError as err:
        ...         print(str(err).split(": ", 1)[1][:60])
        2,000 bytes (2.0 KiB), more than the 1.0 KiB a text file may
    """
    limit = size_limit(max_bytes, default)
    name = regular_file(path, what)
    size = os.stat(name).st_size
    if limit is not None and size > limit:
        raise ValueError(
            f"{name}: {size:,} bytes ({limits.format_size(size)}), more than the "
            f"{limits.format_size(limit)} a {what} may have; pass max_bytes= (bytes, '8G', "
            f"or 'off') or set {SIZE_ENV} to read it"
        )
    return name, size, limit


def read_bounded(f: IO[Any], name: str, what: str, size: int, limit: int | None) -> Any:
    """The contents of the open file ``f`` (bytes, or str in text mode), whose size was
    ``size`` when :func:`bounded_file` checked it: ValueError if it has grown past ``limit``
    since. (``f.read(n)`` of a binary file allocates n bytes at once, so n is never more than
    the size, or a chunk.)"""
    data = f.read(size + 1)  # one more than the size, to see whether the file has grown
    if len(data) > size:  # it has (or it is a /proc file, which says 0): read on, up to limit
        parts, n = [data], len(data)
        while (limit is None or n <= limit) and (chunk := f.read(CHUNK_BYTES)):
            parts.append(chunk)
            n += len(chunk)
        data = data[:0].join(parts)
    if limit is not None and len(data) > limit:
        raise ValueError(
            f"{name}: more than the {limits.format_size(limit)} a {what} may have (more than "
            f"its size on disk said); pass max_bytes= (bytes, '8G', or 'off') or set {SIZE_ENV} "
            "to read it"
        )
    return data


def count_bytes(name: str, targets: bytes, limit: int | None = None) -> tuple[list[int], int]:
    """How often each byte of ``targets`` occurs in the file ``name``, and the length of its
    longest line in bytes; read in chunks of :data:`CHUNK_BYTES`, at most ``limit`` bytes
    (None: all). Fast (``bytes.count``, NumPy) beside parsing, and it holds one chunk."""
    counts = [0] * len(targets)
    longest = run = 0  # the longest line, and the length of the current one so far
    read = 0
    with open(name, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            read += len(chunk)
            if limit is not None and read > limit:
                break
            for i, byte in enumerate(targets):
                counts[i] += chunk.count(byte)
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord("\n"))
            if len(ends) == 0:
                run += len(chunk)
                continue
            longest = max(longest, run + int(ends[0]))
            if len(ends) > 1:
                longest = max(longest, int(np.diff(ends).max()) - 1)
            run = len(chunk) - int(ends[-1]) - 1
    return counts, max(longest, run)
