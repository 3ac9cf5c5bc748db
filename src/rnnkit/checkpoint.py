r"""Training checkpoints: one file per checkpoint, written atomically, read without pickle.

(Over 500 lines because it is one file format: its specification below, the writer and the
reader that validates every byte of it belong together.)

A checkpoint stores a *tree*: a dict with str keys whose values are trees or leaves. A leaf is

- a ``numpy.ndarray`` of a bool or numeric dtype (bool, signed and unsigned ints, floats,
  complex), of any shape including 0-d and empty, any byte order and memory layout;
- an ``int``, ``float``, ``bool``, ``str`` or ``None``, of exactly these types: a NumPy scalar
  such as ``np.float32(0.5)`` is refused rather than silently turned into a Python float (keep
  its dtype with ``np.asarray(x)``, a 0-d array, or convert it with ``float(x)``);
- a list of such scalars, or of such lists (tuples are refused: they would come back as lists).

Dicts and lists nest at most :data:`MAX_DEPTH` (100) levels deep. Arrays are stored one per
place in the tree: two places holding the same array come back as two independent arrays.

:func:`load` gives back an identical tree: the same key order and types, arrays with the same
dtype, shape and bytes, floats bit for bit (``-0.0``, ``inf``, every NaN payload). What goes into
a training checkpoint (parameters, optimiser state, step, RNG state) is the trainer's business;
this module only stores trees.

File format, version 1
----------------------
An uncompressed zip archive, which :func:`numpy.load` also opens as an ``.npz``:

- ``arr_0.npy``, ``arr_1.npy``, ...: one member per array, in the ``.npy`` format of
  :mod:`numpy.lib.format`, numbered in the depth-first order of the tree;
- ``__rnnkit__.json``, the last member, the manifest (ASCII JSON)::

      {"format": "rnnkit.checkpoint", "version": 1,
       "tree": {"step": 1200, "lr": 0.001, "best": {"$float": "7ff0000000000000"},
                "params": {"weight_ih_l0": {"$array": "arr_0.npy"}}},
       "arrays": {"arr_0.npy": {"dtype": "<f4", "shape": [32, 8], "sha256": "9f86d0..."}}}

  ``tree`` mirrors the tree. Dicts are JSON objects and lists are JSON arrays; ``None``, bools,
  strings, finite floats and ints within +-2**53 are written as themselves (Python writes a float
  as the shortest decimal that reads back to the same bits). Everything else is a one-key
  object: ``{"$array": member}``; ``{"$float": bits}`` for a non-finite float, ``bits`` being the
  16 hex digits of its IEEE-754 binary64 encoding, so a NaN keeps its sign and payload; and
  ``{"$int": "0x..."}`` for a larger int, which other JSON readers would round to a double. A
  dict key that starts with ``$`` is written with one more ``$`` in front, so no key reads as a
  tag. ``arrays`` lists each member's dtype, shape and the SHA-256 of its bytes.

Members are stored, never compressed (``ZIP_STORED``), unencrypted, and carry a fixed timestamp,
so the same tree always gives the same bytes. Nothing in a checkpoint is pickled and reading one
never unpickles (the manifest is JSON, an ``.npy`` header is parsed as a Python literal, never
executed), so loading an untrusted file cannot run code.

Limits, which :func:`save` enforces too, so that every file it writes can be read back:

- at most :data:`MAX_MEMBERS` (10,000) members, and a zip directory of at most 256 bytes per
  member;
- a manifest of at most :data:`MAX_MANIFEST_BYTES` (64 MiB) holding at most
  :data:`MAX_MANIFEST_VALUES` (2**22) JSON values, counted in its text before it is parsed: a
  comma counts 1, a ``"`` 1, a ``[`` 3 and a ``{`` 8, for what a number, a string, a list and a
  dict cost once parsed (so parsing any manifest takes at most about 200 MB and two seconds);
- an ``.npy`` header of at most 10,000 bytes (NumPy's own default), format version 1.0 or 2.0.

Reading untrusted files
-----------------------
Nothing is allocated from a file's say-so beyond these limits: a reader only ever allocates what
the file's own bytes hold. Before anything is decompressed or parsed, the zip's end record must
list few enough members in a small enough directory, and every member must be stored (a
deflate, bzip2 or lzma member, the vehicle of a decompression bomb, is refused by its type,
without reading it), unencrypted, with equal stored and declared sizes, inside the file. The
manifest's size and value count are checked before it is parsed, and every array entry's size
against its member's: an entry declaring a shape of 10**12 elements is refused by :func:`peek`
and :func:`load` alike, from the zip directory alone. :func:`load` then parses each member's
``.npy`` header (bounded), compares its dtype, shape and size with the manifest, and only then
allocates the array, which it fills in chunks while hashing.

Atomicity
---------
:func:`save` writes the whole archive to a new temporary file in the target's directory, flushes
it and ``os.fsync``\ s it, so that its bytes are on disk before anything else happens. Then
:func:`os.replace` renames it onto the target: within one file system (hence the same directory)
POSIX makes this rename atomic, and Windows' ``MoveFileEx`` behaves so on NTFS. Finally the
directory is fsynced (POSIX only) so that the rename itself survives a power cut. A crash before
the rename leaves the old file as it was (and, after a hard crash, possibly a stale
``.<name>.<12 hex digits>.tmp`` beside it); a crash after it leaves the new file, complete. A
reader opens either the old file or the new one, never a mixture. When ``save`` fails with an
exception, it removes its temporary file and leaves the target untouched.

Stale temporaries: after a successful rename, ``save`` removes the siblings named exactly
``.<name>.<12 hex digits>.tmp`` of the same target, which only a save killed before its rename
leaves behind; :func:`remove_stale_temporaries` does the same on its own (for a command to call
when it starts or resumes a run). No other file is ever touched. Two processes saving to the
same path at the same time are not supported: one may find its temporary removed and fail with
``FileNotFoundError``, and the file on disk is one complete checkpoint either way.

:func:`load` checks everything before it returns anything: the zip structure and the limits
above, the manifest, that the members are exactly those listed, each member's size, CRC-32 and
SHA-256, and each array's dtype and shape against the manifest. Any failure raises
:class:`CheckpointError`.

Example
-------
>>> import os, tempfile
>>> import numpy as np
>>> from rnnkit import checkpoint
>>> tree = {"step": 3, "loss": float("nan"), "params": {"w": np.eye(2, dtype=np.float32)}}
>>> with tempfile.TemporaryDirectory() as d:
...     path = os.path.join(d, "run.ckpt")
...     checkpoint.save(path, tree)
...     back = checkpoint.load(path)
...     info = checkpoint.peek(path)
>>> back["step"], back["loss"], back["params"]["w"].dtype
(3, nan, dtype('float32'))
>>> info["params"]["w"]
ArrayInfo(dtype=dtype('float32'), shape=(2, 2))
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import zipfile
from typing import Any, BinaryIO, NamedTuple

import numpy as np

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_VALUES",
    "MAX_MEMBERS",
    "VERSION",
    "ArrayInfo",
    "CheckpointError",
    "load",
    "peek",
    "remove_stale_temporaries",
    "save",
]

FORMAT = "rnnkit.checkpoint"
VERSION = 1
MANIFEST = "__rnnkit__.json"

#: dtype kinds a checkpoint may hold: bool, signed int, unsigned int, float, complex.
_ARRAY_KINDS = "biufc"
#: Ints beyond this magnitude are written as hex strings: JSON readers other than Python's
#: (JavaScript, jq) parse every number as a double, exact only up to 2**53.
_MAX_JSON_INT = 2**53
#: A fixed member timestamp (the earliest zip can store) makes the output deterministic.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_MAGIC = b"PK\x03\x04"
_TAGS = ("$array", "$float", "$int")
#: Nesting of dicts and lists allowed in a tree: far beyond any training state, and well within
#: Python's recursion limit, so neither save nor load ever fails with a RecursionError.
MAX_DEPTH = 100
#: Members an archive may hold, the manifest included: far beyond any training state (a model of
#: 100 parameter arrays with Adam and early stopping needs about 400), and few enough that
#: zipfile's record of each (about 500 bytes) stays small.
MAX_MEMBERS = 10_000
#: Bytes of zip directory allowed per member: an rnnkit member's record is under 100 bytes. The
#: directory, not its stated member count, decides how many records zipfile parses.
_DIRECTORY_BYTES_PER_MEMBER = 256
#: Largest manifest, in bytes (a trainer's history of 400,000 logged steps fits).
MAX_MANIFEST_BYTES = 64 * 2**20
#: Most JSON values a manifest may hold, counted in its text (see :func:`_json_values`) so
#: that parsing a manifest takes at most about 200 MB, whatever its content (a trainer's history
#: of 400,000 logged steps fits).
MAX_MANIFEST_VALUES = 2**22
#: Longest .npy header read (NumPy's default ``max_header_size``); the header's fixed prefix
#: (magic, version, length field) adds at most 12 bytes.
_MAX_NPY_HEADER = 10_000
_NPY_PREFIX = (10, 12)  # the fixed prefix of format versions 1.0 and 2.0
_MAX_NDIM = 64  # NumPy's limit on dimensions
_CHUNK = 2**20  # arrays are read and hashed in chunks of this many bytes
_COMPRESSION_NAMES = {8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstandard"}
_DTYPE = re.compile(r"[<>|][biufc][0-9]{1,2}")  # dtype.str of a bool or numeric dtype
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLOAT_BITS = re.compile(r"[0-9a-f]{16}")
_HEX_INT = re.compile(r"-?0x[0-9a-f]+")
#: What zipfile raises on a damaged archive (unknown compression, encryption flag, bad sizes).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OverflowError,
    struct.error,
)

Tree = dict[str, Any]


class CheckpointError(ValueError):
    """A file is not a valid rnnkit checkpoint: truncated, corrupted, of an unknown format version,
    or not a checkpoint at all. The message names the file and what is wrong with it."""


class ArrayInfo(NamedTuple):
    """What :func:`peek` shows in place of an array, read from the manifest alone."""

    dtype: np.dtype
    shape: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# save


def save(path: str | os.PathLike[str], tree: Tree) -> None:
    """Write ``tree`` to the checkpoint file ``path``, atomically, replacing any file there.

    ``path`` is used as given (no extension is added). The whole tree is checked before anything
    is written: an unsupported leaf raises ``TypeError`` naming its place in the tree, e.g.
    ``tree['optim']['state']['w']``, and leaves any existing file untouched. The module docstring
    describes the format and why a crash never leaves a partial file.
    """
    path = _fspath(path)
    if not isinstance(tree, dict):
        raise TypeError(f"tree must be a dict with str keys, got {type(tree).__name__}")
    arrays: list[tuple[str, np.ndarray]] = []
    encoded = _encode(tree, "tree", arrays)
    if len(arrays) >= MAX_MEMBERS:
        raise ValueError(
            f"tree holds {len(arrays)} arrays; a checkpoint holds at most MAX_MEMBERS - 1 = "
            f"{MAX_MEMBERS - 1} (one member per array, plus the manifest)"
        )
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            _write_archive(f, encoded, arrays)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    with contextlib.suppress(OSError):  # tidying up must never fail a save that succeeded
        remove_stale_temporaries(path)


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files that a :func:`save` to ``path`` killed before its rename left
    beside it: the files named exactly ``.<name>.<12 hex digits>.tmp`` in the directory of
    ``path``, ``<name>`` being its base name. Returns the paths removed, sorted. Nothing else is
    touched; a missing directory removes nothing. :func:`save` calls this after every
    successful save.
    """
    path = _fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)[:200]}.") + r"[0-9a-f]{12}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):  # another process removed it first
                os.unlink(entry.path)
                removed.append(entry.path)
    return sorted(removed)


def _replace(tmp: str, path: str) -> None:
    """Rename the complete temporary file onto the target: the one step that makes the new
    checkpoint visible. Tests replace this function to fail between writing and renaming."""
    os.replace(tmp, path)


def _fspath(path: Any) -> str:
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or os.PathLike[str], got {type(path).__name__}")
    return path


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new, empty file beside the target. Unlike ``tempfile.mkstemp`` (always mode 0o600), the
    process umask applies, so the checkpoint gets the permissions of any other new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename durable. Windows cannot open a directory for fsync; some file systems
    refuse to fsync one (EINVAL), in which case nothing more can be done."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _encode(value: Any, where: str, arrays: list[tuple[str, np.ndarray]], depth: int = 0) -> Any:
    """The JSON form of a tree node; arrays are appended to ``arrays`` under their member name.
    ``where`` is the node's place in the tree, for error messages."""
    kind = type(value)
    if kind is dict:
        _check_depth(where, depth)
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; "
                    "checkpoint dict keys must be str"
                )
            out["$" + key if key.startswith("$") else key] = _encode(
                item, f"{where}[{key!r}]", arrays, depth + 1
            )
        return out
    if kind is np.ndarray:
        if value.dtype.kind not in _ARRAY_KINDS:
            why = " (object arrays would need pickle)" if value.dtype.hasobject else ""
            raise TypeError(
                f"{where} is an array of dtype {value.dtype}{why}; checkpoints store arrays of "
                "bool, integer, float or complex dtypes only"
            )
        name = f"arr_{len(arrays)}.npy"
        arrays.append((name, value))
        return {"$array": name}
    return _encode_scalar(value, where, depth)


def _check_depth(where: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where} is nested deeper than MAX_DEPTH = {MAX_DEPTH} dicts and lists")


def _encode_scalar(value: Any, where: str, depth: int) -> Any:
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if abs(value) <= _MAX_JSON_INT else {"$int": hex(value)}
    if kind is float:
        if math.isfinite(value):
            return value
        return {"$float": struct.pack(">d", value).hex()}
    if kind is list:
        _check_depth(where, depth)
        return [_encode_scalar(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"{where}: {_unsupported(value)}")


def _unsupported(value: Any) -> str:
    """Why ``value`` cannot be a leaf, and what to store instead."""
    if isinstance(value, np.generic):
        why = (
            f"got the NumPy scalar {type(value).__name__} {value!r}; store np.asarray(x), a 0-d "
            "array that keeps the dtype, or a Python scalar such as float(x)"
        )
    elif type(value) is np.ndarray or type(value) is dict:
        what = "an array" if type(value) is np.ndarray else "a dict"
        why = f"got {what} inside a list; arrays and dicts go in dicts"
    elif isinstance(value, np.ndarray):
        why = (
            f"got an array of subclass {type(value).__name__}, which would lose its extra state; "
            "store np.asarray(x) if a plain array is what you mean"
        )
    elif isinstance(value, tuple):
        why = "got a tuple, which would come back as a list; use a list"
    else:
        why = f"got {type(value).__name__}"
    return (
        f"{why} (checkpoint leaves are numeric or bool arrays, int, float, bool, str, None, "
        "and lists of those scalars)"
    )


class _HashingWriter:
    """A write-only file that hashes what passes through it on the way to ``raw``."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.raw.write(data)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16  # rw-r--r-- for anyone who unzips it
    return info


def _write_archive(f: BinaryIO, tree: Any, arrays: list[tuple[str, np.ndarray]]) -> None:
    entries = {}
    with zipfile.ZipFile(f, "w") as zf:
        for name, array in arrays:
            # zip64 records are needed past 2 GiB only (np.savez writes them for every member)
            big = array.nbytes >= zipfile.ZIP64_LIMIT - 2**20
            with zf.open(_zip_info(name), "w", force_zip64=big) as member:
                out = _HashingWriter(member)  # streamed: no second copy of the array in memory
                np.lib.format.write_array(out, array, allow_pickle=False)
            entries[name] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "sha256": out.sha256.hexdigest(),
            }
        manifest = {"format": FORMAT, "version": VERSION, "tree": tree, "arrays": entries}
        text = json.dumps(manifest, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        raw = text.encode("ascii")
        problem = _manifest_too_big(len(raw), _json_values(raw))
        if problem:  # refused here, so that every file save writes can be loaded
            raise ValueError(f"the tree is too big for a checkpoint: {problem}")
        zf.writestr(_zip_info(MANIFEST), raw)


def _json_values(raw: bytes) -> int:
    """An upper bound on the values a JSON text holds, counted without parsing it: every value
    but the first of a list or an object follows a comma. A string counts 2 more (its quotes),
    a list 3 and an object 8, for what they cost once parsed next to a number (a dict made by
    ``json.loads`` takes about eight times its memory), so that the count bounds the memory
    and time of parsing. Commas and quotes inside strings count too: the bound is
    conservative."""
    return raw.count(b",") + raw.count(b'"') + 3 * raw.count(b"[") + 8 * raw.count(b"{")


def _manifest_too_big(size: int, values: int) -> str | None:
    if size > MAX_MANIFEST_BYTES:
        return f"its manifest is {size} bytes, more than MAX_MANIFEST_BYTES = {MAX_MANIFEST_BYTES}"
    if values > MAX_MANIFEST_VALUES:
        return (
            f"its manifest holds up to {values} JSON values, more than MAX_MANIFEST_VALUES = "
            f"{MAX_MANIFEST_VALUES}"
        )
    return None


# --------------------------------------------------------------------------------------------
# load


def load(path: str | os.PathLike[str]) -> Tree:
    """Read the tree saved in the checkpoint file ``path``.

    Raises ``FileNotFoundError`` if there is no such file, and :class:`CheckpointError` if the
    file is truncated, corrupted (a member's CRC-32 or SHA-256 does not match), not a zip archive,
    a zip without an rnnkit manifest, of an unknown format version, or lists a member it lacks.
    Every array is read and verified before the tree is returned; nothing partial is returned.
    Arrays come back as new, writeable arrays, each owned by the tree.
    """
    return _read(path, with_arrays=True)


def peek(path: str | os.PathLike[str]) -> Tree:
    """The checkpoint's tree from its manifest alone, with an :class:`ArrayInfo` (dtype, shape)
    in place of each array: a cheap look at a run's step, settings and parameter shapes.

    No array is read, so their checksums are not verified here; :func:`load` verifies them.
    Raises as :func:`load` does for a missing file or a damaged archive or manifest.
    """
    return _read(path, with_arrays=False)


def _read(path: str | os.PathLike[str], with_arrays: bool) -> Tree:
    """The tree of the checkpoint ``path`` with its arrays read and verified or, without
    ``with_arrays``, an :class:`ArrayInfo` from the manifest in place of each (only the manifest
    is read)."""
    path = _fspath(path)
    _regular_file(path)
    with open(path, "rb") as f, _open_zip(f, path) as zf:
        entries, tree, places = _read_manifest(zf, path)
        for parent, key, name in places:
            entry = entries[name]
            parent[key] = (
                _read_array(zf, name, entry, path)
                if with_arrays
                else ArrayInfo(np.dtype(entry["dtype"]), tuple(entry["shape"]))
            )
    return tree


def _error(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load checkpoint {path!r}: {what}")


# The zip records that say where the directory is and how big (APPNOTE.TXT 4.3.14 to 4.3.16).
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record


def _open_zip(f: BinaryIO, path: str) -> zipfile.ZipFile:
    """The archive, its directory and every member's record checked before any member is read."""
    size = os.fstat(f.fileno()).st_size
    _check_directory(f, size, path)
    try:
        zf = zipfile.ZipFile(f)
    except _ZIP_ERRORS as e:
        f.seek(0)
        head = f.read(4)
        if not head:
            raise _error(path, "the file is empty") from None
        if _ZIP_MAGIC.startswith(head):
            raise _error(
                path,
                f"the file is truncated or damaged: it starts as a zip archive but its "
                f"directory cannot be read ({e})",
            ) from None
        raise _error(
            path, f"not a zip archive (it starts with {head!r}), so not an rnnkit checkpoint"
        ) from None
    try:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _error(
                path,
                f"the archive holds {len(infos)} members; rnnkit checkpoints hold at most "
                f"MAX_MEMBERS = {MAX_MEMBERS}",
            )
        for info in infos:
            _check_member(info, size, path)
    except BaseException:
        zf.close()
        raise
    return zf


def _check_directory(f: BinaryIO, size: int, path: str) -> None:
    """Refuse a zip directory that lists too many members, or is too big for those it lists,
    before zipfile parses it: zipfile keeps a record of every entry it finds in the directory's
    bytes, whatever count the end record states."""
    found = _directory_extent(f, size)
    if found is None:
        return  # no end record: zipfile refuses the file, and _open_zip says why
    count, nbytes = found
    if count > MAX_MEMBERS:
        raise _error(
            path,
            f"the zip directory lists {count} members; rnnkit checkpoints hold at most "
            f"MAX_MEMBERS = {MAX_MEMBERS}",
        )
    if nbytes > count * _DIRECTORY_BYTES_PER_MEMBER:
        raise _error(
            path,
            f"the zip directory takes {nbytes} bytes for {count} members, more than "
            f"{_DIRECTORY_BYTES_PER_MEMBER} bytes a member (an rnnkit member's record takes "
            "under 100): the file is damaged or not a checkpoint",
        )


def _directory_extent(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(members, bytes) of the zip directory as the end record states them, read the way
    zipfile reads them (zip64 included), or None when there is no end record."""
    tail_size = min(size, _END.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    if tail[-_END.size : -_END.size + 4] == b"PK\x05\x06" and tail[-2:] == b"\x00\x00":
        at = len(tail) - _END.size  # no comment: the last 22 bytes, as zipfile tries first
    else:
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END.size:
            return None
    fields = _END.unpack_from(tail, at)
    count, nbytes = fields[4], fields[5]
    end = size - tail_size + at  # the end record's offset in the file
    below = end - _END64_LOCATOR.size - _END64.size
    if below >= 0:
        f.seek(below)
        data = f.read(_END64.size + _END64_LOCATOR.size)
        record, locator = data[: _END64.size], data[_END64.size :]
        if locator[:4] == b"PK\x06\x07" and record[:4] == b"PK\x06\x06":
            fields = _END64.unpack(record)
            count, nbytes = fields[7], fields[8]
    return count, nbytes


def _check_member(info: zipfile.ZipInfo, size: int, path: str) -> None:
    """One member's directory record: stored, unencrypted, consistent sizes, inside the file."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        method = _COMPRESSION_NAMES.get(info.compress_type)
        how = f"{method}-compressed" if method else f"compressed (zip method {info.compress_type})"
        raise _error(
            path, f"member {name!r} is {how}; rnnkit checkpoints store members uncompressed"
        )
    if info.flag_bits & 0x1:
        raise _error(path, f"member {name!r} is encrypted; rnnkit checkpoints are not")
    if info.file_size != info.compress_size:
        raise _error(
            path,
            f"the file is damaged: member {name!r} is stored uncompressed in "
            f"{info.compress_size} bytes but declares a size of {info.file_size}",
        )
    # A damaged directory can place a member outside the file, where zipfile would seek to a
    # negative offset (OSError) or read past the end; refuse it here instead.
    if not 0 <= info.header_offset <= info.header_offset + info.compress_size <= size:
        raise _error(
            path,
            f"the file is truncated or damaged: the zip directory places member "
            f"{name!r} outside the file",
        )


class _Member(NamedTuple):
    """What the manifest's tree holds in place of an array while it is decoded."""

    name: str


def _regular_file(path: str) -> None:
    """A checkpoint is a regular file: reading a device (``/dev/zero``) never ends and opening
    a FIFO blocks, so both are refused before the file is opened (symbolic links followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", path) from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise _error(path, f"it is {what}, not a regular file")


def _read_manifest(
    zf: zipfile.ZipFile, path: str
) -> tuple[dict[str, Any], Tree, list[tuple[dict, str, str]]]:
    """The manifest's array entries, its decoded tree, and the places (dict, key, member) of
    the arrays in that tree, all checked in full against each other and against the archive."""
    names = zf.namelist()
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise _error(path, f"the archive holds several members named {dup}")
    if MANIFEST not in names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise _error(
            path,
            f"no {MANIFEST!r} manifest, so not an rnnkit checkpoint "
            f"(a plain .npz file?); members: {shown or 'none'}",
        )
    info = zf.getinfo(MANIFEST)
    problem = _manifest_too_big(info.file_size, 0)
    if problem:
        raise _error(path, problem)
    try:
        raw = zf.read(info)
    except _ZIP_ERRORS as e:
        raise _error(path, f"the manifest {MANIFEST!r} is corrupted or truncated ({e})") from None
    problem = _manifest_too_big(len(raw), _json_values(raw))
    if problem:
        raise _error(path, problem)
    try:
        text = raw.decode("ascii")
        del raw
        manifest = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _error(path, f"the manifest {MANIFEST!r} is not valid JSON ({e})") from None
    del text

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise _error(path, f"the manifest's format is {got!r}, not {FORMAT!r}")
    version = manifest.get("version")
    if type(version) is not int or version != VERSION:
        newer = " (written by a newer rnnkit?)" if type(version) is int and version > 1 else ""
        raise _error(
            path,
            f"unsupported format version {version!r}{newer}; this rnnkit reads version {VERSION}",
        )
    if not isinstance(manifest.get("tree"), dict):
        raise _error(path, "the manifest's 'tree' is missing or not a JSON object")
    entries = manifest.get("arrays")
    if not isinstance(entries, dict):
        raise _error(path, "the manifest's 'arrays' is missing or not a JSON object")
    for name, entry in entries.items():
        _check_entry(name, entry, path)

    members = set(names) - {MANIFEST}
    missing = [n for n in entries if n not in members]
    if missing:
        raise _error(path, f"members {missing} are listed in the manifest but missing")
    extra = sorted(members - set(entries))
    if extra:
        raise _error(path, f"members {extra} are in the archive but not in the manifest")
    for name, entry in entries.items():
        _check_member_size(zf.getinfo(name), entry, path)
    # One reference per listed array: a tree that misses one or names one twice is damaged.
    places: list[tuple[dict, str, str]] = []
    tree = _decode(manifest.pop("tree"), "tree", places, path)
    if type(tree) is not dict:
        raise _error(path, "the manifest's 'tree' is a tagged value, not a dict")
    if sorted(name for _, _, name in places) != sorted(entries):
        raise _error(path, "the manifest's tree and its array list disagree")
    return entries, tree, places


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError(f"duplicate keys in a JSON object: {[k for k, _ in pairs][:10]}")
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_entry(name: str, entry: Any, path: str) -> None:
    if not name.endswith(".npy") or name == MANIFEST:
        raise _error(path, f"the manifest lists an array member named {name!r}")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "sha256"}:
        raise _error(path, f"the manifest entry of {name!r} is malformed: {entry!r:.200}")
    sha, dtype, shape = entry["sha256"], entry["dtype"], entry["shape"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _error(path, f"the manifest entry of {name!r} has a malformed sha256 {sha!r:.80}")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or any(type(s) is not int or s < 0 for s in shape)
    ):
        raise _error(path, f"the manifest entry of {name!r} has a malformed shape {shape!r:.200}")
    try:
        ok = isinstance(dtype, str) and bool(_DTYPE.fullmatch(dtype))
        ok = ok and np.dtype(dtype).str == dtype
    except TypeError:  # a well-formed string that names no dtype, such as "<f3"
        ok = False
    if not ok:
        raise _error(
            path,
            f"the manifest entry of {name!r} has dtype {dtype!r:.80}; checkpoints hold arrays of "
            "bool, integer, float or complex dtypes only, written as numpy's dtype.str",
        )


def _check_member_size(info: zipfile.ZipInfo, entry: dict[str, Any], path: str) -> None:
    """The member must be as big as the entry's dtype and shape say, give or take its .npy
    header: checked from the zip directory alone, so an entry declaring a shape of 10**12
    elements is refused without reading anything."""
    nbytes = math.prod(entry["shape"]) * np.dtype(entry["dtype"]).itemsize
    low, high = _NPY_PREFIX[0], _NPY_PREFIX[1] + _MAX_NPY_HEADER
    if not low <= info.file_size - nbytes <= high:
        raise _error(
            path,
            f"member {info.filename!r} is {info.file_size} bytes, but the manifest's dtype "
            f"{entry['dtype']} and shape {entry['shape']} take {nbytes} bytes plus a .npy "
            f"header of {low} to {high} bytes",
        )


def _read_array(zf: zipfile.ZipFile, name: str, entry: dict[str, Any], path: str) -> np.ndarray:
    """The array of member ``name``: its .npy header is parsed and compared with ``entry``, and
    its size with the header's, before the array is allocated; then the data is read and
    hashed in chunks (no second copy of it), and its CRC-32 and SHA-256 verified."""
    info = zf.getinfo(name)
    nbytes = math.prod(entry["shape"]) * np.dtype(entry["dtype"]).itemsize
    try:
        member = zf.open(info)
    except _ZIP_ERRORS as e:
        raise _error(path, f"member {name!r} is corrupted or truncated ({e})") from None
    with member:
        head_size = min(info.file_size, _NPY_PREFIX[1] + _MAX_NPY_HEADER)
        head = _read_bytes(member, head_size, name, path)
        offset, fortran = _read_npy_header(head, name, entry, path)
        if info.file_size != offset + nbytes:
            more = info.file_size - offset - nbytes
            raise _error(
                path,
                f"member {name!r} has {more} bytes of trailing data"
                if more > 0
                else f"member {name!r} is {-more} bytes short of its dtype and shape",
            )
        sha256 = hashlib.sha256(head)
        data = np.empty(nbytes, np.uint8)  # (nbytes,): exactly what the member holds
        first = head[offset:]
        data[: len(first)] = np.frombuffer(first, np.uint8)
        done = len(first)
        while done < nbytes:
            # Reading the last byte makes zipfile check the member's CRC-32.
            chunk = _read_bytes(member, min(_CHUNK, nbytes - done), name, path)
            data[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
            sha256.update(chunk)
            done += len(chunk)
    digest = sha256.hexdigest()
    if digest != entry["sha256"]:
        raise _error(
            path,
            f"member {name!r} is corrupted: its SHA-256 is {digest[:16]}..., the manifest "
            f"says {entry['sha256'][:16]}...",
        )
    array = data.view(np.dtype(entry["dtype"]))  # (N,)
    shape = tuple(entry["shape"])
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_bytes(member: BinaryIO, n: int, name: str, path: str) -> bytes:
    try:
        data = member.read(n)
    except _ZIP_ERRORS as e:
        raise _error(path, f"member {name!r} is corrupted or truncated ({e})") from None
    if len(data) != n:
        raise _error(path, f"member {name!r} is truncated")
    return data


def _read_npy_header(head: bytes, name: str, entry: dict[str, Any], path: str) -> tuple[int, bool]:
    """(header length, Fortran order) of the .npy data starting ``head``, which must describe the
    manifest's dtype and shape. The header is a Python literal that NumPy parses with
    ``ast.literal_eval``: nothing in it is executed."""
    buffer = io.BytesIO(head)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(buffer)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"its .npy format version is {version}; rnnkit reads 1.0 and 2.0")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(buffer)
    except Exception as e:  # NumPy's parser raises ValueError, SyntaxError, TokenError ...
        raise _error(path, f"member {name!r} is not a plain .npy array: {e!r:.300}") from None
    if dtype.hasobject:
        raise _error(
            path,
            f"member {name!r} is not a plain .npy array: Object arrays cannot be loaded "
            "(they would need pickle)",
        )
    if dtype.str != entry["dtype"] or list(shape) != entry["shape"]:
        raise _error(
            path,
            f"member {name!r} holds dtype {dtype.str} and shape {list(shape)}, "
            f"the manifest says {entry['dtype']} and {entry['shape']}",
        )
    return buffer.tell(), bool(fortran)


#: A place in the tree: "tree", or (the parent's place, a key or an index). Built as a tuple on the
#: way down and written out only for an error message, which keeps decoding a long list cheap.
_Place = Any


def _where(place: _Place) -> str:
    parts = []
    while isinstance(place, tuple):
        place, key = place
        parts.append(f"[{key!r}]")
    return place + "".join(reversed(parts))


def _decode(
    node: Any,
    where: _Place,
    places: list[tuple[dict, str, str]],
    path: str,
    depth: int = 0,
    in_list: bool = False,
) -> Any:
    """The tree node that the JSON ``node`` encodes, with a :class:`_Member` in place of each
    array, whose place (dict, key, member name) is appended to ``places``. Lists hold scalars
    and lists only, as :func:`save` allows; they are decoded in place (no copy of a long
    list). ``where`` is the node's place, for error messages."""
    kind = type(node)
    if kind is not dict and kind is not list:
        return node  # None, bool, str, int, float: json.loads yields nothing else
    if depth >= MAX_DEPTH:
        raise _error(
            path, f"the manifest's tree is nested deeper than {MAX_DEPTH} at {_where(where)}"
        )
    if kind is list:
        for i, item in enumerate(node):
            if type(item) is dict or type(item) is list:
                node[i] = _decode(item, (where, i), places, path, depth + 1, True)
        return node
    if in_list or any(k.startswith("$") and not k.startswith("$$") for k in node):
        return _decode_tag(node, where, not in_list, path)
    out = {}
    for key, item in node.items():
        key = key[1:] if key.startswith("$") else key  # "$$x" is the escaped key "$x"
        value = _decode(item, (where, key), places, path, depth + 1)
        if type(value) is _Member:
            places.append((out, key, value.name))
        out[key] = value
    return out


def _decode_tag(node: dict[str, Any], where: _Place, arrays: bool, path: str) -> Any:
    """A one-key ``{"$tag": value}`` object; ``arrays`` is False where arrays cannot appear."""
    tag, value = next(iter(node.items())) if len(node) == 1 else (None, None)
    ok = tag in _TAGS and isinstance(value, str)
    if ok and tag == "$array" and arrays:
        return _Member(value)
    if ok and tag == "$float" and _FLOAT_BITS.fullmatch(value):
        return struct.unpack(">d", bytes.fromhex(value))[0]
    if ok and tag == "$int" and _HEX_INT.fullmatch(value):
        return int(value, 16)
    raise _error(path, f"the manifest's tree is malformed at {_where(where)}: {node!r:.200}")
