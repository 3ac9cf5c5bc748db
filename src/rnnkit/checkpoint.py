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

Members carry a fixed timestamp, so the same tree always gives the same bytes. Nothing in a
checkpoint is pickled and reading one never unpickles (the manifest is JSON, arrays are read with
``allow_pickle=False``), so loading an untrusted file cannot run code.

Atomicity
---------
:func:`save` writes the whole archive to a new temporary file in the target's directory, flushes
it and ``os.fsync``\ s it, so that its bytes are on disk before anything else happens. Then
:func:`os.replace` renames it onto the target: within one file system (hence the same directory)
POSIX makes this rename atomic, and Windows' ``MoveFileEx`` behaves so on NTFS. Finally the
directory is fsynced (POSIX only) so that the rename itself survives a power cut. A crash before
the rename leaves the old file as it was (and, after a hard crash, possibly a stale
``.<name>.<random>.tmp`` beside it); a crash after it leaves the new file, complete. A reader
opens either the old file or the new one, never a mixture. When ``save`` fails with an
exception, it removes its temporary file and leaves the target untouched.

:func:`load` checks everything before it returns anything: the zip structure, the manifest, that
the members are exactly those listed, each member's CRC-32 and SHA-256, and each array's dtype and
shape against the manifest. Any failure raises :class:`CheckpointError`.

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
import struct
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple

import numpy as np

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "VERSION",
    "ArrayInfo",
    "CheckpointError",
    "load",
    "peek",
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
        zf.writestr(_zip_info(MANIFEST), text.encode("ascii"))


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
    with open(path, "rb") as f, _open_zip(f, path) as zf:
        manifest = _read_manifest(zf, path)
        leaves = {
            name: (
                _read_array(zf, name, entry, path)
                if with_arrays
                else ArrayInfo(np.dtype(entry["dtype"]), tuple(entry["shape"]))
            )
            for name, entry in manifest["arrays"].items()
        }
    return _decode(manifest["tree"], "tree", leaves.__getitem__, path)


def _error(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load checkpoint {path!r}: {what}")


def _open_zip(f: BinaryIO, path: str) -> zipfile.ZipFile:
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
    # A damaged directory can place a member outside the file, where zipfile would seek to a
    # negative offset (OSError) or read past the end; refuse it here instead.
    size = os.fstat(f.fileno()).st_size
    for info in zf.infolist():
        if not 0 <= info.header_offset <= info.header_offset + info.compress_size <= size:
            zf.close()
            raise _error(
                path,
                f"the file is truncated or damaged: the zip directory places member "
                f"{info.filename!r} outside the file",
            )
    return zf


def _read_manifest(zf: zipfile.ZipFile, path: str) -> dict[str, Any]:
    """The manifest, checked in full against itself and against the archive's member list."""
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
    try:
        raw = zf.read(MANIFEST)
    except _ZIP_ERRORS as e:
        raise _error(path, f"the manifest {MANIFEST!r} is corrupted or truncated ({e})") from None
    try:
        manifest = json.loads(
            raw.decode("ascii"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _error(path, f"the manifest {MANIFEST!r} is not valid JSON ({e})") from None

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
    # One reference per listed array: a tree that misses one or names one twice is damaged.
    refs: list[str] = []
    _decode(manifest["tree"], "tree", lambda name: refs.append(name), path)
    if sorted(refs) != sorted(entries):
        raise _error(path, "the manifest's tree and its array list disagree")
    return manifest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError(f"duplicate keys in a JSON object: {[k for k, _ in pairs]}")
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_entry(name: Any, entry: Any, path: str) -> None:
    if not name.endswith(".npy") or name == MANIFEST:
        raise _error(path, f"the manifest lists an array member named {name!r}")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "sha256"}:
        raise _error(path, f"the manifest entry of {name!r} is malformed: {entry!r}")
    sha, dtype, shape = entry["sha256"], entry["dtype"], entry["shape"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _error(path, f"the manifest entry of {name!r} has a malformed sha256 {sha!r}")
    if not isinstance(shape, list) or any(type(s) is not int or s < 0 for s in shape):
        raise _error(path, f"the manifest entry of {name!r} has a malformed shape {shape!r}")
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except TypeError:
        kind = None
    if kind is None or kind not in _ARRAY_KINDS:
        raise _error(
            path,
            f"the manifest entry of {name!r} has dtype {dtype!r}; checkpoints hold arrays of "
            "bool, integer, float or complex dtypes only",
        )


def _read_array(zf: zipfile.ZipFile, name: str, entry: dict[str, Any], path: str) -> np.ndarray:
    try:
        data = zf.read(name)
    except _ZIP_ERRORS as e:
        raise _error(path, f"member {name!r} is corrupted or truncated ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise _error(
            path,
            f"member {name!r} is corrupted: its SHA-256 is {digest[:16]}..., the manifest "
            f"says {entry['sha256'][:16]}...",
        )
    buffer = io.BytesIO(data)
    try:
        # allow_pickle=False: an object array raises here, before anything is unpickled
        array = np.lib.format.read_array(buffer, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise _error(path, f"member {name!r} is not a plain .npy array: {e}") from None
    if buffer.tell() != len(data):
        raise _error(
            path, f"member {name!r} has {len(data) - buffer.tell()} bytes of trailing data"
        )
    if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
        raise _error(
            path,
            f"member {name!r} holds dtype {array.dtype.str} and shape {list(array.shape)}, "
            f"the manifest says {entry['dtype']} and {entry['shape']}",
        )
    return array


def _decode(
    node: Any,
    where: str,
    resolve: Callable[[str], Any],
    path: str,
    depth: int = 0,
    in_list: bool = False,
) -> Any:
    """The tree node that the JSON ``node`` encodes; ``resolve`` maps member names to arrays.
    Lists hold scalars and lists only, as :func:`save` allows."""
    if isinstance(node, (dict, list)) and depth >= MAX_DEPTH:
        raise _error(path, f"the manifest's tree is nested deeper than {MAX_DEPTH} at {where}")
    if isinstance(node, dict):
        is_tag = any(k.startswith("$") and not k.startswith("$$") for k in node)
        if is_tag or in_list:
            return _decode_tag(node, where, None if in_list else resolve, path)
        out = {}
        for key, item in node.items():
            key = key[1:] if key.startswith("$") else key  # "$$x" is the escaped key "$x"
            out[key] = _decode(item, f"{where}[{key!r}]", resolve, path, depth + 1)
        return out
    if isinstance(node, list):
        return [
            _decode(item, f"{where}[{i}]", resolve, path, depth + 1, in_list=True)
            for i, item in enumerate(node)
        ]
    return node  # None, bool, str, int, float: json.loads yields nothing else


def _decode_tag(
    node: dict[str, Any], where: str, resolve: Callable[[str], Any] | None, path: str
) -> Any:
    """A one-key ``{"$tag": value}`` object; ``resolve`` is None where arrays cannot appear."""
    tag, value = next(iter(node.items())) if len(node) == 1 else (None, None)
    ok = tag in _TAGS and isinstance(value, str)
    if ok and tag == "$array" and resolve is not None:
        return resolve(value)
    if ok and tag == "$float" and _FLOAT_BITS.fullmatch(value):
        return struct.unpack(">d", bytes.fromhex(value))[0]
    if ok and tag == "$int" and _HEX_INT.fullmatch(value):
        return int(value, 16)
    raise _error(path, f"the manifest's tree is malformed at {where}: {node!r}")
