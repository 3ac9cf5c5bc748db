"""Loading time-series classification data: the UCR/UEA ``.ts`` format and plain CSV tables.

The ``.ts`` format is the text format of sktime and aeon, in which the UCR and UEA archives are
distributed::

    # comment lines
    @problemName BasicMotions
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    0.08,0.08,-0.90,...:1.34,0.59,...:...:Standing

One series per line after ``@data``: the values of a channel separated by commas, the channels
separated by colons, the class label last; ``?`` is a missing value. Header keys are
case-insensitive. Series may have different lengths (JapaneseVowels), but the channels of one
series may not.

N = number of series, T_i = length of series i, C = number of channels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnkit import limits
from rnnkit.data.files import MAX_TABLE_BYTES, bounded_file, count_bytes, read_bounded
from rnnkit.data.series import column_index, parse_float, read_csv_table


class TSDataset(NamedTuple):
    """A labelled time-series classification data set."""

    X: list[np.ndarray]  # N arrays (T_i, C) float64, NaN where a value is missing
    y: np.ndarray  # (N,) str, the class label of each series
    classes: list[str]  # the possible labels, in the file's order (.ts) or sorted (CSV)
    metadata: dict[str, Any]  # problemName, univariate, dimensions, equalLength, seriesLength, ...
    path: str  # the file it came from


#: What a ``.ts`` file takes in memory beside its text and values, per line (the line's str
#: and its list slot) and per byte of its longest line (that line's values as Python floats
#: and strings while it is parsed); measured with tracemalloc on CPython 3.11, rounded up.
TS_LINE_BYTES = 100
TS_LONGEST_FACTOR = 40

# Header keys as written in the format, by their lower-case form.
_BOOL_KEYS = {k.lower(): k for k in ("timeStamps", "missing", "univariate", "equalLength")}
_INT_KEYS = {k.lower(): k for k in ("dimensions", "seriesLength")}


def load_ts(path: str | os.PathLike[str], *, max_bytes: int | str | None = None) -> TSDataset:
    """Read a UCR/UEA classification file in the sktime/aeon ``.ts`` format.

    Args:
        path: a ``.ts`` file with a ``@classLabel true ...`` header line.
        max_bytes: the largest file to read: bytes, a size string (``"8G"``) or ``"off"``;
            None: ``RNNKIT_MAX_FILE_SIZE`` if set, else
            :data:`~rnnkit.data.files.MAX_TABLE_BYTES` (1 GiB).

    Returns:
        A :class:`TSDataset`: ``X`` a list of N float64 arrays (T_i, C) with NaN for ``?``,
        ``y`` (N,) the labels as strings, ``classes`` the labels of ``@classLabel`` in their
        order, ``metadata`` the header (``problemName``, ``univariate``, ``dimensions``,
        ``equalLength``, ``seriesLength``, ``missing``, ...; those the header leaves out are
        filled in from the data, ``seriesLength`` is None for unequal lengths; ``missing`` is
        True when any value is NaN).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        rnnkit.limits.MemoryLimitError: its series would not fit in the memory available.
        ValueError: for a device, a FIFO or a folder, or a file larger than ``max_bytes``;
            with the line number, for a malformed header, a data line before ``@data``
            or a header line after it, no ``@data`` or no series, a value that is not a number,
            a label not in ``@classLabel``, a number of channels that differs between lines or
            from ``@dimensions`` / ``@univariate``, channels of one series of different lengths,
            lengths that contradict ``@equalLength`` / ``@seriesLength``; and for the features
            not supported: time stamps, regression targets, unlabelled files.

    Example:
        >>> import tempfile, pathlib
        >>> from rnnkit.data.ts import load_ts
        >>> text = "@problemName Toy\\n@classLabel true a b\\n@data\\n1,2,3:4,5,6:b\\n7,?:8,9:a\\n"
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ts_path = pathlib.Path(tmp) / "Toy_TRAIN.ts"
        ...     _ = ts_path.write_text(text)
        ...     data = load_ts(ts_path)
        >>> [x.shape for x in data.X], data.y.tolist(), data.classes
        ([(3, 2), (2, 2)], ['b', 'a'], ['a', 'b'])
        >>> data.X[1][:, 0].tolist(), data.metadata["equalLength"]
        ([7.0, nan], False)
    """
    name, size, limit = bounded_file(path, ".ts file", max_bytes, MAX_TABLE_BYTES)
    (commas, colons, newlines), longest = count_bytes(name, b",:\n", limit)
    limits.check_memory(
        lambda: f"the series of {name} ({newlines + 1:,} lines)",
        2 * size  # the text, and its lines
        + TS_LINE_BYTES * (newlines + 1)
        + 8 * (commas + colons + newlines + 1)  # the values, as float64
        + TS_LONGEST_FACTOR * longest,  # one line as Python floats and strings while parsed
    )
    # Comments are free prose from old archives: undecodable bytes there must not stop the load.
    with open(name, encoding="utf-8-sig", errors="replace") as f:
        text = read_bounded(f, name, ".ts file", size, limit)
    lines = text.splitlines()
    del text

    meta: dict[str, Any] = {}
    classes: list[str] | None = None
    known: set[str] = set()  # the classes, for fast look-ups
    data_line = 0  # the line of @data, 0 before it
    X: list[np.ndarray] = []
    y: list[str] = []
    series_lines: list[int] = []  # the line of each series, for error messages
    channels = 0  # channels per series: from the header, else from the first series
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name} line {number}"
        if line.startswith("@"):
            if data_line:
                raise ValueError(f"{where}: header line {line.split()[0]!r} after @data")
            key = _parse_header(where, line, meta)
            if key == "classLabel":
                classes = meta.pop("_labels")
                known = set(classes)
            elif key == "data":
                data_line = number
                channels = _check_header(name, meta, classes)
            continue
        if not data_line:
            raise ValueError(f"{where}: series before the @data line")

        *fields, label = line.split(":")
        if not fields:
            raise ValueError(f"{where}: expected values and a class label separated by ':'")
        if not series_lines and not channels:
            channels = len(fields)
        if len(fields) != channels:
            if "dimensions" in meta:
                expected = f"@dimensions is {meta['dimensions']}"
            elif meta.get("univariate") is True:
                expected = "@univariate is true"
            else:
                expected = f"the first series (line {series_lines[0]}) has {channels}"
            raise ValueError(f"{where}: {len(fields)} channel(s), but {expected}")
        label = label.strip()
        if label not in known:
            raise ValueError(
                f"{where}: class label {label!r} is not one of @classLabel {' '.join(classes)}"
            )
        X.append(_parse_series(where, fields))
        y.append(label)
        series_lines.append(number)

    if not data_line:
        raise ValueError(f"{name}: no @data line, so no series")
    if not X:
        raise ValueError(f"{name}: no series after @data (line {data_line})")
    _check_lengths(name, series_lines, meta, X)
    _fill_metadata(meta, X, fallback_name=Path(name).stem)
    return TSDataset(X=X, y=np.asarray(y, dtype=str), classes=classes, metadata=meta, path=name)


def _parse_header(where: str, line: str, meta: dict[str, Any]) -> str:
    """Record one ``@key value`` line in ``meta``; returns the key's canonical name."""
    tokens = line.split()
    word = tokens[0][1:]
    key, args = word.lower(), tokens[1:]
    if key == "data":
        return "data"
    if key == "problemname":
        meta["problemName"] = " ".join(args)
        return "problemName"
    if key in _BOOL_KEYS:
        value = _parse_bool(where, tokens[0], args)
        if key == "timestamps" and value:
            raise ValueError(f"{where}: time-stamped series (@timeStamps true) are not supported")
        meta[_BOOL_KEYS[key]] = value
        return _BOOL_KEYS[key]
    if key in _INT_KEYS:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
            raise ValueError(f"{where}: {tokens[0]} needs a positive integer, got {line!r}")
        meta[_INT_KEYS[key]] = int(args[0])
        return _INT_KEYS[key]
    if key == "classlabel":
        if not _parse_bool(where, tokens[0], args[:1]):
            raise ValueError(
                f"{where}: unlabelled series (@classLabel false) are not supported, only "
                "classification files"
            )
        labels = args[1:]
        if not labels:
            raise ValueError(f"{where}: @classLabel true lists no class labels")
        if len(set(labels)) != len(labels):
            raise ValueError(f"{where}: @classLabel lists a class twice: {' '.join(labels)}")
        meta["classLabel"] = True
        meta["_labels"] = labels
        return "classLabel"
    if key == "targetlabel" and args[:1] and args[0].lower() == "true":
        raise ValueError(f"{where}: regression targets (@targetLabel true) are not supported")
    meta[word] = " ".join(args)  # a key this reader does not know: kept as written
    return word


def _parse_bool(where: str, key: str, args: list[str]) -> bool:
    if not args or args[0].lower() not in ("true", "false"):
        got = repr(args[0]) if args else "nothing"
        raise ValueError(f"{where}: {key} must be followed by true or false, got {got}")
    return args[0].lower() == "true"


def _check_header(name: str, meta: dict[str, Any], classes: list[str] | None) -> int:
    """Header facts that must agree once it is complete; returns the known channel count or 0."""
    if classes is None:
        raise ValueError(
            f"{name}: no '@classLabel true ...' line before @data; only labelled classification "
            "files are supported"
        )
    dims = meta.get("dimensions", 0)
    if meta.get("univariate") is True:
        if dims not in (0, 1):
            raise ValueError(f"{name}: @univariate true contradicts @dimensions {dims}")
        return 1
    return dims


def _parse_series(where: str, fields: list[str]) -> np.ndarray:
    """The channels of one line as a (T, C) array."""
    try:  # fast path: plain numbers (float() also reads "nan", "1e-5", surrounding spaces)
        rows = [[float(v) for v in field.split(",")] for field in fields]  # C lists of T
    except ValueError:
        rows = [_parse_channel(where, c, field) for c, field in enumerate(fields, start=1)]
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"{where}: the channels of a series must have the same length, got lengths "
            f"{', '.join(map(str, lengths))}"
        )
    series = np.array(rows, dtype=np.float64).T  # (T, C)
    if np.isinf(series).any():
        raise ValueError(f"{where}: infinite value in the series")
    return np.ascontiguousarray(series)


def _parse_channel(where: str, c: int, field: str) -> list[float]:
    """One channel, value by value: ``?`` is missing, anything else not a number is an error."""
    values = []
    for t, text in enumerate(field.split(","), start=1):
        text = text.strip()
        if text == "?":
            values.append(math.nan)
            continue
        try:
            values.append(float(text))
        except ValueError:
            what = "empty value" if not text else f"value {text!r}"
            raise ValueError(f"{where}: channel {c}, {what} at step {t} is not a number") from None
    return values


def _check_lengths(
    name: str, series_lines: list[int], meta: dict[str, Any], X: list[np.ndarray]
) -> None:
    """Lengths must agree with @seriesLength, and with each other under @equalLength true."""
    expected = meta.get("seriesLength")
    if meta.get("equalLength") is False or (expected is None and not meta.get("equalLength")):
        return
    if expected is None:
        expected = len(X[0])
    for i, x in enumerate(X):
        if len(x) != expected:
            source = "@seriesLength" if "seriesLength" in meta else "the first series"
            raise ValueError(
                f"{name}: series {i + 1} (line {series_lines[i]}) has length {len(x)}, "
                f"but {source} says {expected}"
            )


def _fill_metadata(meta: dict[str, Any], X: list[np.ndarray], fallback_name: str) -> None:
    lengths = {len(x) for x in X}
    meta.setdefault("problemName", fallback_name)
    meta.setdefault("timeStamps", False)
    meta["missing"] = any(np.isnan(x).any() for x in X)
    meta.setdefault("dimensions", X[0].shape[1])
    meta.setdefault("univariate", X[0].shape[1] == 1)
    meta.setdefault("equalLength", len(lengths) == 1)
    meta.setdefault("seriesLength", lengths.pop() if len(lengths) == 1 else None)


def load_classification_csv(
    path: str | os.PathLike[str], label: str = "label", *, max_bytes: int | str | None = None
) -> TSDataset:
    """Read univariate classification data from a CSV file, one series per row.

    Args:
        path: a UTF-8 CSV file with a header row.
        label: the header name of the class-label column. When the default ``"label"`` is not
            a column, the last column holds the labels.
        max_bytes: the largest file to read: bytes, a size string (``"8G"``) or ``"off"``;
            None: ``RNNKIT_MAX_FILE_SIZE`` if set, else
            :data:`~rnnkit.data.files.MAX_TABLE_BYTES` (1 GiB).

    Returns:
        A :class:`TSDataset` whose ``X`` are (T, 1) arrays of the other columns in file order
        (empty cells, ``NA``, ``NaN`` and ``?`` are NaN), ``y`` the labels as strings
        (stripped of spaces) and ``classes`` the distinct labels sorted, numerically when they
        are all numbers.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        rnnkit.limits.MemoryLimitError: its rows would not fit in the memory available.
        ValueError: the file is a device, a FIFO or a folder, or larger than ``max_bytes``; it
            is empty, has no value column or no data row; ``label`` is not a
            column; a row has the wrong number of fields, an empty label or a value that is not
            a number.

    Example:
        >>> import tempfile, pathlib
        >>> from rnnkit.data.ts import load_classification_csv
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     csv_path = pathlib.Path(tmp) / "toy.csv"
        ...     _ = csv_path.write_text("t0,t1,t2,label\\n1,2,3,10\\n4,,6,9\\n")
        ...     data = load_classification_csv(csv_path)
        >>> data.X[1].ravel().tolist(), data.y.tolist(), data.classes
        ([4.0, nan, 6.0], ['10', '9'], ['9', '10'])
    """
    if not isinstance(label, str):
        raise TypeError(f"label must be a column name (str), got {type(label).__name__}")
    name = os.fspath(path)
    header, rows = read_csv_table(path, max_bytes)
    if len(header) < 2:
        raise ValueError(
            f"{name}: need a label column and at least one value column, got {len(header)} column"
        )
    if label in header or label != "label":
        i_label = column_index(name, header, label, "label")
    else:
        i_label = len(header) - 1
    value_columns = [i for i in range(len(header)) if i != i_label]
    if not rows:
        raise ValueError(f"{name}: no data rows after the header")

    X: list[np.ndarray] = []
    y: list[str] = []
    for line, row in rows:
        cls = row[i_label].strip()
        if not cls:
            raise ValueError(f"{name} line {line}: empty class label in column {header[i_label]!r}")
        values = [parse_float(name, line, row[i], header[i]) for i in value_columns]
        X.append(np.asarray(values, dtype=np.float64)[:, None])  # (T, 1)
        y.append(cls)

    classes = sorted(set(y))
    try:
        classes.sort(key=float)
    except ValueError:
        pass  # not all numbers: text order
    meta = {"problemName": Path(name).stem, "classLabel": True}
    _fill_metadata(meta, X, fallback_name=Path(name).stem)
    return TSDataset(X=X, y=np.asarray(y, dtype=str), classes=classes, metadata=meta, path=name)
