"""Progress reports for training and evaluation: a one-line bar with loss, throughput and ETA on a
terminal, plain periodic lines when the output is not a terminal (logs, CI), nothing when quiet.

:class:`Progress` is a :class:`~rnnkit.Trainer` callback (``callbacks=[Progress(total)]``) and
can also be driven by hand (``update``/``close``) for evaluation loops.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Report progress towards ``total`` steps.

    Args:
        total: the number of steps expected (None if unknown: no ETA).
        desc: a label in front of the bar.
        unit: what the throughput counts ("example", "char", ...), shown as "N units/s".
        quiet: report nothing.
        stream: where to write (default ``sys.stderr``).
        every: on a non-terminal stream, print a line every this many seconds (and at the end).
        tty: force terminal (True) or plain (False) output; default: ``stream.isatty()``.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = Progress(4, desc="train", stream=out, tty=False, every=0)
        >>> for step in range(1, 5):
        ...     bar.update(step, loss=1.0 / step)
        >>> bar.close()
        >>> out.getvalue().splitlines()[-1].split(" | ")[:2]
        ['train 4/4 (100%)', 'loss 0.2500']
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "train",
        unit: str = "example",
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        every: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.every = every
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.start = time.perf_counter()
        self.first: int | None = None  # the step the bar started at (a resumed run)
        self.count = 0
        self.values: dict[str, float] = {}
        self._last_print = -math.inf
        self._width = 0
        self._closed = False

    def update(self, count: int, **values: float) -> None:
        """Now at step ``count`` (absolute); ``values`` (loss=..., examples_per_s=...) shown."""
        if self.first is None:
            self.first = count - 1 if count > 0 else 0
        self.count = count
        rate = values.pop("rate", None)
        if rate is not None:  # smoothed: one slow or fast step should not make the figure jump
            old = self.values.get("rate")
            self.values["rate"] = rate if old is None else 0.9 * old + 0.1 * rate
        self.values.update({k: v for k, v in values.items() if v is not None})
        if self.quiet:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_print >= 0.1 or count == self.total:
                self._write_bar()
                self._last_print = now
        elif now - self._last_print >= self.every:
            self._write_line()
            self._last_print = now

    def message(self, text: str) -> None:
        """A line of its own (a validation result, say) that does not disturb the bar."""
        if self.quiet:
            return
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
        self.stream.write(text + "\n")
        if self.tty and self._width:
            self._write_bar()
        self.stream.flush()

    def close(self) -> None:
        """Finish: the bar's last state on its own line."""
        if self._closed or self.quiet:
            self._closed = True
            return
        self._closed = True
        if self.tty:
            self._write_bar()
            self.stream.write("\n")
        else:
            self._write_line()
        self.stream.flush()

    # -- pickling -------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """A bar on ``sys.stderr`` or ``sys.stdout`` (the default) pickles with the stream's
        name, as a trainer holding it as a callback must: a copy writes to that stream of the
        process that loads it. Other streams pickle as themselves (a ``StringIO`` does)."""
        state = self.__dict__.copy()
        for name in ("stderr", "stdout"):
            if any(state["stream"] is getattr(sys, n) for n in (name, f"__{name}__")):
                state["stream"] = name  # a stream is never a str
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["stream"], str):
            state["stream"] = getattr(sys, state["stream"])
        self.__dict__.update(state)

    # -- trainer callback -----------------------------------------------------------------------

    def __call__(self, event: str, trainer: Any, row: dict[str, Any]) -> None:
        if event == "step":
            self.update(row["step"], loss=row.get("loss"), rate=row.get("examples_per_s"))
        elif event == "validation":
            self.message(f"{self.desc} step {row['step']}: validation loss {row['loss']:.4f}")
        elif event == "skip":
            self.message(f"{self.desc} step {row['step']}: {row.get('note', 'step skipped')}")
        elif event == "end":
            self.close()

    # -- rendering ------------------------------------------------------------------------------

    def _text(self) -> str:
        elapsed = time.perf_counter() - self.start
        done = self.count - (self.first or 0)
        parts = []
        if self.total:
            pct = 100.0 * self.count / self.total
            parts.append(f"{self.desc} {self.count}/{self.total} ({pct:.0f}%)")
        else:
            parts.append(f"{self.desc} {self.count}")
        if "loss" in self.values:
            parts.append(f"loss {self.values['loss']:.4f}")
        if "rate" in self.values:
            parts.append(f"{self.values['rate']:.0f} {self.unit}s/s")
        speed = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / speed if self.total and speed > 0 else math.inf
        parts.append(f"{_duration(elapsed)} elapsed")
        if self.total:
            parts.append(f"ETA {_duration(eta)}")
        return " | ".join(parts)

    def _write_bar(self) -> None:
        text = self._text()
        if self.total:
            width = 20
            filled = int(width * min(self.count / self.total, 1.0))
            text = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self._width = len(text)
        self.stream.flush()

    def _write_line(self) -> None:
        self.stream.write(self._text() + "\n")
        self.stream.flush()
