"""The metrics log of a training run: one row per event, as CSV or JSON lines (by file suffix)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

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
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if tmp.exists():
            tmp.unlink()
        keep = MetricLog(tmp.with_suffix(self.path.suffix))
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
