"""Loading a univariate time series from a CSV file, for forecasting.

The file needs a header row; columns are chosen by their header name. Only the standard library's
:mod:`csv` module is used (no pandas). Every problem with the file raises an error that is one
short line naming the file, the line and what is wrong, fit to be printed as a command-line error.

N = number of points.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from rnnkit import limits
from rnnkit.data.files import MAX_TABLE_BYTES, bounded_file, count_bytes

#: Cell values read as "missing" (compared after stripping spaces, case-insensitively).
MISSING_TOKENS = frozenset({"", "na", "nan", "?"})

#: What a CSV file takes in memory once read, per row and per cell, beside its text: the row's
#: list and line number, each cell's str and its slot (tracemalloc on CPython 3.11 measures
#: about 150 bytes a row and 50 to 75 a cell, the values parsed included; rounded up).
CSV_ROW_BYTES = 200
CSV_CELL_BYTES = 100

# ISO 8601 dates as they appear in series files: 1949, 1949-01, 1949-01-31, 1949-01-31T12:00[:00]
_ISO_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?)?")


class Series(NamedTuple):
    """A univariate time series read from a file."""

    values: np.ndarray  # (N,) float64, no NaN
    dates: np.ndarray | None  # (N,) str, as written in the file; None without a date column
    name: str  # the name of the target column
    path: str  # the file it came from


def load_csv_series(
    path: str | os.PathLike[str],
    target: str,
    date: str | None = None,
    interpolate: bool = False,
    *,
    max_bytes: int | str | None = None,
) -> Series:
    """Read one column of a CSV file as a time series.

    Args:
        path: a UTF-8 CSV file (a byte-order mark is allowed) with a header row.
        target: the header name of the column holding the values.
        date: the header name of a column of dates or times, kept as strings exactly as written.
            When all of them are ISO dates of one format (``1949``, ``1949-01``, ``1949-01-31``,
            optionally with a time), they must be strictly increasing.
        interpolate: how to treat missing values (empty cells, ``NA``, ``NaN``, ``?``): by
            default they are an error; with ``True`` they are filled by linear interpolation
            between the neighbouring values, and a gap at either end takes the nearest value.
        max_bytes: the largest file to read: bytes, a size string (``"8G"``) or ``"off"``;
            None: ``RNNKIT_MAX_FILE_SIZE`` if set, else
            :data:`~rnnkit.data.files.MAX_TABLE_BYTES` (1 GiB).

    Returns:
        A :class:`Series` ``(values (N,) float64, dates (N,) str or None, name, path)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is a device, a FIFO or a folder, or larger than ``max_bytes``; it
            is empty, not UTF-8 or has no header; ``target`` or ``date`` is not a column; a row
            has the wrong number of fields; a value is not a number; values are missing and
            ``interpolate`` is False; fewer than 2 values; dates out of order.
        rnnkit.limits.MemoryLimitError: its rows would not fit in the memory available.

    Example:
        >>> import tempfile, pathlib
        >>> from rnnkit.data.series import load_csv_series
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     csv_path = pathlib.Path(tmp) / "sales.csv"
        ...     _ = csv_path.write_text("month,sales\\n2001-01,3\\n2001-02,\\n2001-03,5\\n")
        ...     s = load_csv_series(csv_path, "sales", date="month", interpolate=True)
        >>> s.values.tolist(), s.dates.tolist(), s.name
        ([3.0, 4.0, 5.0], ['2001-01', '2001-02', '2001-03'], 'sales')
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be a column name (str), got {type(target).__name__}")
    if date is not None and not isinstance(date, str):
        raise TypeError(f"date must be a column name (str) or None, got {type(date).__name__}")
    if not isinstance(interpolate, bool):
        raise TypeError(f"interpolate must be True or False, got {interpolate!r}")
    name = os.fspath(path)
    header, rows = read_csv_table(path, max_bytes)
    i_target = column_index(name, header, target, "target")
    i_date = None if date is None else column_index(name, header, date, "date")

    values: list[float] = []
    dates: list[str] = []
    missing_lines: list[int] = []
    for line, row in rows:
        values.append(parse_float(name, line, row[i_target], target))
        if math.isnan(values[-1]):
            missing_lines.append(line)
        if i_date is not None:
            dates.append(row[i_date].strip())

    if missing_lines and not interpolate:
        raise ValueError(
            f"{name}: {len(missing_lines)} missing {target!r} value(s), the first at line "
            f"{missing_lines[0]}; pass interpolate=True to fill them"
        )
    observed = len(values) - len(missing_lines)
    if observed < 2:
        raise ValueError(f"{name}: a series needs at least 2 {target!r} values, got {observed}")
    y = np.asarray(values, dtype=np.float64)  # (N,)
    if missing_lines:
        y = _interpolate_nan(y)
    if i_date is not None:
        _check_increasing(name, [line for line, _ in rows], dates)
    return Series(
        values=y,
        dates=None if i_date is None else np.asarray(dates, dtype=str),
        name=target,
        path=name,
    )


def _interpolate_nan(y: np.ndarray) -> np.ndarray:
    """Fill the NaN of ``y`` (N,) linearly from their neighbours; ends take the nearest value."""
    known = ~np.isnan(y)
    steps = np.arange(len(y))
    # np.interp holds the end values constant beyond the first and last known points.
    return np.interp(steps, steps[known], y[known])


def _check_increasing(name: str, lines: list[int], dates: list[str]) -> None:
    """Dates that are all ISO dates of one format must increase (ISO sorts as text)."""
    if not dates or len({len(d) for d in dates}) != 1:
        return
    if not all(_ISO_DATE.fullmatch(d) for d in dates):
        return
    for k in range(1, len(dates)):
        if dates[k] <= dates[k - 1]:
            raise ValueError(
                f"{name} line {lines[k]}: dates must increase, got {dates[k]!r} "
                f"after {dates[k - 1]!r}"
            )


# Helpers shared with rnnkit.data.ts (its classification CSVs use the same rules).


def read_csv_table(
    path: str | os.PathLike[str], max_bytes: Any = None
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (names stripped of spaces) and the data rows with their file line numbers.

    Blank lines are skipped; every other row must have as many fields as the header. The file
    must be a regular file within ``max_bytes`` (see :func:`rnnkit.data.files.bounded_file`),
    and its rows must fit in memory (:data:`CSV_ROW_BYTES`, :data:`CSV_CELL_BYTES`, counted by
    a quick scan of the file before it is parsed).
    """
    name, size, limit = bounded_file(path, "CSV file", max_bytes, MAX_TABLE_BYTES)
    (commas, newlines), _ = count_bytes(name, b",\n", limit)
    rows, cells = newlines + 1, commas + newlines + 1
    limits.check_memory(
        lambda: f"the rows of {name} ({rows:,} lines, {cells:,} cells)",
        size + rows * CSV_ROW_BYTES + cells * CSV_CELL_BYTES,
    )
    try:
        # utf-8-sig drops a byte-order mark, which would otherwise stick to the first column name
        with open(name, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(_non_blank(reader), None)
            if header is None:
                raise ValueError(f"{name}: the file is empty, expected a header row")
            header = [h.strip() for h in header]
            rows = []
            for row in _non_blank(reader):
                if len(row) != len(header):
                    raise ValueError(
                        f"{name} line {reader.line_num}: {len(row)} field(s), but the header "
                        f"has {len(header)}"
                    )
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{name}: malformed CSV ({e})") from None
    return header, rows


def _non_blank(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    for row in reader:
        # a row of empty fields ("," ) is kept: it holds missing values, not nothing
        if len(row) > 1 or (row and row[0].strip()):
            yield row


def column_index(name: str, header: list[str], column: str, argument: str) -> int:
    """The position of ``column`` in ``header``, or an error listing the columns there are."""
    hits = [i for i, h in enumerate(header) if h == column]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ValueError(f"{name}: column {column!r} (the {argument}) appears {len(hits)} times")
    hint = ""
    if all(_is_number(h) for h in header):
        hint = " (the first row looks like data: the file needs a header row)"
    raise ValueError(
        f"{name}: no column {column!r} for {argument}; the columns are "
        f"{', '.join(repr(h) for h in header)}{hint}"
    )


def parse_float(name: str, line: int, cell: str, column: str) -> float:
    """A cell as a float: NaN for a missing value, an error naming the line for anything else
    that is not a finite number."""
    text = cell.strip()
    if text.lower() in MISSING_TOKENS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} line {line}: {column!r} value {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} line {line}: {column!r} value {cell!r} is not finite")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
