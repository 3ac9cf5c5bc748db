"""The metrics of a training run: the log file (one row per event, as CSV or JSON lines, by file
suffix) and the columns' encoding in a checkpoint (:func:`encode_columns`)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

#: The CSV columns, in order; JSON lines carry the same keys (missing ones omitted).
COLUMNS = ("step", "epoch", "kind", "loss", "lr", "grad_norm", "seconds", "examples_per_s", "note")


class MetricLog:
    """Append rows to ``path``: ``.csv`` (a header, then :data:`COLUMNS`) or ``.jsonl``.

    Each row is flushed as written, so the log is complete up to the last event even after a
    crash. :meth:`keep_rows` drops the rows written after a checkpoint, so a resumed run does
    not log those events twice.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise ValueError(f"log must be a .csv or .jsonl file, got {str(self.path)!r}")
        self.format = suffix[1:]
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown log columns {sorted(unknown)}; expected some of {COLUMNS}")
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            if self.format == "csv":
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                if new:
                    writer.writeheader()
                writer.writerow({k: _plain(v) for k, v in row.items()})
            else:
                f.write(json.dumps({k: _plain(v) for k, v in row.items()}, allow_nan=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """The rows written so far (CSV values come back as strings; empty cells omitted)."""
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            if self.format == "csv":
                return [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            return [json.loads(line) for line in f if line.strip()]

    def keep_rows(self, n: int) -> None:
        """Keep only the first ``n`` rows (rewritten atomically)."""
        rows = self.read()[:n]
        # a fixed name, so one left by a process killed here is found and replaced
        tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        tmp.unlink(missing_ok=True)
        keep = MetricLog(tmp)
        for r in rows:
            keep.write(r)
        if keep.path.exists():
            os.replace(keep.path, self.path)
        elif self.path.exists():
            self.path.unlink()


def _plain(value: Any) -> Any:
    """JSON-safe: floats stay floats, non-finite ones become strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):  # NumPy scalars
        return _plain(value.item())
    return value


# -- metric columns in a checkpoint -------------------------------------------------------------
#
# A run's history holds a row per logged step: 10**6 rows for a long run. As JSON lists in a
# checkpoint's manifest that would be millions of JSON values (rnnkit.checkpoint refuses
# manifests past 2**22 of them: a file is untrusted input). So each column is stored as arrays:
#
#     numbers  {"int": int64 (n,) | "float": float64 (n,), "missing": bool (n,)}
#     strings  {"codes": int32 (n,), -1 for None, "strings": [distinct values]}
#     other    {"values": [...]}                          (bools, mixed kinds: a plain list)
#
# and comes back as the same list of Python values (floats bit for bit, None where missing).


def encode_columns(history: dict[str, list]) -> dict[str, dict]:
    """Metric columns (name -> list of None, int, float or str) as checkpoint trees of arrays."""
    return {name: _encode_column(list(values)) for name, values in history.items()}


def decode_columns(encoded: dict[str, Any]) -> dict[str, list]:
    """The columns :func:`encode_columns` encoded; also takes plain lists (older checkpoints)."""
    return {
        name: list(column) if isinstance(column, list) else _decode_column(column)
        for name, column in encoded.items()
    }


def _encode_column(values: list) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    missing = np.array([v is None for v in values], dtype=bool)
    if all(type(v) is int and -(2**63) <= v < 2**63 for v in present):
        ints = np.array([0 if v is None else v for v in values], dtype=np.int64)
        return {"int": ints, "missing": missing}
    if all(type(v) in (int, float) or isinstance(v, np.floating) for v in present):
        floats = np.array([0.0 if v is None else float(v) for v in values], dtype=np.float64)
        return {"float": floats, "missing": missing}
    if all(type(v) is str for v in present):
        strings = list(dict.fromkeys(present))
        index = {s: i for i, s in enumerate(strings)}
        codes = np.array([-1 if v is None else index[v] for v in values], dtype=np.int32)
        return {"codes": codes, "strings": strings}
    return {"values": [_plain_scalar(v) for v in values]}


def _plain_scalar(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    return float(value)


def _decode_column(column: dict[str, Any]) -> list:
    if "values" in column:
        return list(column["values"])
    if "codes" in column:
        strings = column["strings"]
        return [None if c < 0 else strings[c] for c in column["codes"].tolist()]
    kind = "int" if "int" in column else "float"
    return [
        None if gone else value
        for value, gone in zip(column[kind].tolist(), column["missing"].tolist())
    ]


def check_encoded_columns(value: Any) -> str | None:
    """Why ``value`` is not what :func:`encode_columns` writes (or plain lists of one length),
    or None if it is; for the checks of a checkpoint read from an untrusted file."""
    if type(value) is not dict:
        return f"a dict of metric columns, got {type(value).__name__}"
    length = None
    for name, column in value.items():
        where = f"[{name!r}]"
        n, why = _column_length(column)
        if why is not None:
            return f"{where}: {why}"
        if length is None:
            length = n
        elif n != length:
            return f"{where}: {n} rows, the other columns have {length}"
    return None


def _column_length(column: Any) -> tuple[int, str | None]:
    if type(column) is list:
        bad = [v for v in column if not (v is None or type(v) in (bool, int, float, str))]
        return len(column), (f"holds {type(bad[0]).__name__}" if bad else None)
    if type(column) is not dict:
        return 0, f"a list or an encoded column, got {type(column).__name__}"
    keys = set(column)
    if keys == {"values"}:
        return _column_length(column["values"])
    if keys == {"codes", "strings"}:
        codes, strings = column["codes"], column["strings"]
        if not (isinstance(codes, np.ndarray) and codes.ndim == 1 and codes.dtype == np.int32):
            return 0, "codes must be a 1-D int32 array"
        if type(strings) is not list or any(type(s) is not str for s in strings):
            return 0, "strings must be a list of str"
        if codes.size and (codes.min() < -1 or codes.max() >= len(strings)):
            return 0, f"codes must lie in [-1, {len(strings)})"
        return codes.size, None
    for kind, dtype in (("int", np.int64), ("float", np.float64)):
        if keys == {kind, "missing"}:
            values, missing = column[kind], column["missing"]
            ok = (
                isinstance(values, np.ndarray)
                and values.ndim == 1
                and values.dtype == dtype
                and isinstance(missing, np.ndarray)
                and missing.dtype == bool
                and missing.shape == values.shape
            )
            if not ok:
                return 0, f"{kind} must be a 1-D {np.dtype(dtype)} array with a bool 'missing'"
            return values.size, None
    return 0, f"unknown column encoding with keys {sorted(keys)}"
