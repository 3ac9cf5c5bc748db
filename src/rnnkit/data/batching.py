"""Batches for training: padding variable-length sequences, shuffled mini-batches of a sequence
dataset, and the streams of truncated backpropagation through time.

Every source has the same small interface the :class:`~rnnkit.Trainer` drives, chosen so that an
interrupted run resumes exactly: ``order(rng)`` draws the order of one epoch (the trainer keeps
it in its checkpoints), ``batch(order, i)`` builds the i-th batch of that order, and ``len()`` is
the number of batches per epoch.

Shapes are time-major: T = time steps, B = batch, D = input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits


class Batch(NamedTuple):
    """One training batch.

    ``x`` goes to the model's forward with ``lengths``; ``y`` and ``mask`` go to the loss;
    ``reset`` (B,) marks the rows that start a new sequence, whose carried state a stateful
    (truncated-BPTT) trainer zeroes before the forward pass.
    """

    x: np.ndarray  # (T, B, D) inputs, or (T, B) token ids
    y: np.ndarray  # targets: (B, ...) per sequence, or (T, B, ...) per step
    lengths: np.ndarray | None = None  # (B,) valid steps
    mask: np.ndarray | None = (
        None  # weights of the targets for the loss, shaped like y's leading axes
    )
    reset: np.ndarray | None = None  # (B,) bool: rows whose carried state starts afresh


def pad_sequences(
    sequences: Sequence[Any], dtype: Any = None, pad_value: float = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of different lengths, time-major, padding the ends.

    Args:
        sequences: B arrays of shape (T_b, ...) with the same trailing shape.
        dtype: the result's dtype (default: NumPy's common type of the sequences).
        pad_value: the value of the padded steps.

    Returns:
        ``(padded, lengths)``: (max T_b, B, ...) and the lengths (B,).

    Example:
        >>> import numpy as np
        >>> from rnnkit.data import pad_sequences
        >>> x, lengths = pad_sequences([np.ones((3, 2)), np.ones((1, 2))])
        >>> x.shape, lengths.tolist(), x[:, 1, 0].tolist()
        ((3, 2, 2), [3, 1], [1.0, 0.0, 0.0])
    """
    if len(sequences) == 0:
        raise ValueError("sequences must not be empty")
    arrays = [np.asarray(s) for s in sequences]
    tail = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[1:] != tail:
            raise ValueError(
                f"sequences[{i}] must have shape (T, {', '.join(map(str, tail))}"
                f"{',' if len(tail) == 1 else ''}) like sequences[0], got {a.shape}"
            )
    lengths = np.array([len(a) for a in arrays], dtype=np.intp)
    dtype = np.result_type(*arrays) if dtype is None else dtype
    shape = (max(int(lengths.max()), 1), len(arrays), *tail)
    limits.check_memory(
        lambda: f"a padded batch of shape {shape}",
        limits.array_bytes(shape, np.dtype(dtype).itemsize),
    )
    out = np.full(shape, pad_value, dtype=dtype)
    for b, a in enumerate(arrays):
        out[: len(a), b] = a
    return out, lengths


class SequenceData:
    """Shuffled mini-batches of variable-length sequences with per-sequence or per-step targets.

    Args:
        inputs: N sequences (T_n, D) (a list, or an array (N, T, D) of equal lengths), or token
            id sequences (T_n,) of integers. Every sequence has the trailing shape and the kind
            (integer ids or real values) of the first non-empty one, and real values must be
            finite. A sequence may be empty (T_n = 0): the layers take zero lengths (its
            outputs are zeros and its final state the initial one; pooling gives zeros), so it
            is batched with length 0 (and, per step, no valid target); ``[]`` stands for an
            empty sequence of any shape. Not every sequence may be empty.
        targets: N targets: per sequence (a scalar class, or a vector), or per step (T_n, ...)
            with ``per_step=True``; of one shape (per step: one trailing shape) and, if real,
            finite.
        batch_size: B; the last batch of an epoch may be smaller (unless ``drop_last``).
        shuffle: draw a new order each epoch.
        per_step: whether targets are per step (then ``mask`` marks the valid steps).
        dtype: dtype of the padded float inputs (token ids stay integers).
        drop_last: drop an incomplete last batch.

    Example:
        >>> import numpy as np
        >>> from rnnkit.data import SequenceData
        >>> data = SequenceData([np.ones((5, 2)), np.ones((3, 2)), np.ones((4, 2))], [0, 1, 0],
        ...                     batch_size=2, shuffle=False)
        >>> len(data), data.batch(data.order(None), 0).x.shape
        (2, (5, 2, 2))
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        per_step: bool = False,
        dtype: Any = np.float32,
        drop_last: bool = False,
    ) -> None:
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.shuffle = _checks.boolean("shuffle", shuffle)
        self.per_step = _checks.boolean("per_step", per_step)
        self.drop_last = _checks.boolean("drop_last", drop_last)
        self.dtype = np.dtype(dtype)
        self.inputs = _sequences("inputs", inputs)
        if not any(len(x) for x in self.inputs):
            raise ValueError(
                f"inputs: every one of the {len(self.inputs)} sequences is empty (length 0)"
            )
        self.targets = _sequences("targets", targets) if per_step else _targets(targets)
        if len(self.inputs) != len(self.targets):
            raise ValueError(
                f"inputs and targets must have the same length, got {len(self.inputs)} inputs "
                f"and {len(self.targets)} targets"
            )
        if per_step:
            for i, (x, y) in enumerate(zip(self.inputs, self.targets)):
                if len(y) != len(x):
                    raise ValueError(
                        f"targets[{i}] must have one entry per step ({len(x)}), got {len(y)}"
                    )
        if drop_last and len(self.inputs) < self.batch_size:
            raise ValueError(
                f"drop_last with batch_size {batch_size} leaves no batch of {len(self.inputs)}"
            )

    def __len__(self) -> int:
        n, b = len(self.inputs), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, rng: np.random.Generator | None) -> np.ndarray:
        """The order of one epoch: a permutation when shuffling (drawn from ``rng``)."""
        n = len(self.inputs)
        return rng.permutation(n) if self.shuffle and rng is not None else np.arange(n)

    def batch(self, order: np.ndarray, i: int) -> Batch:
        """The i-th batch of an epoch in ``order``."""
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        xs = [self.inputs[j] for j in idx]
        is_ids = np.issubdtype(xs[0].dtype, np.integer)
        x, lengths = pad_sequences(xs, dtype=None if is_ids else self.dtype)
        ys = [self.targets[j] for j in idx]
        if self.per_step:
            y, _ = pad_sequences(ys)
            mask = np.arange(x.shape[0])[:, None] < lengths  # (T, B)
        else:
            y, mask = np.stack(ys), None
        if np.issubdtype(y.dtype, np.floating):
            y = y.astype(self.dtype)
        return Batch(x, y, lengths, mask)


def _as_arrays(name: str, values: Any) -> list[np.ndarray]:
    """``values`` as a list of arrays (an array's rows are views of it)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list of arrays, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        a = _checks.regular_array(v, f"{name}[{i}] must be an array")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{i}] must hold integers or real numbers, got dtype {a.dtype}")
        out.append(a)
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def _first_not_finite(name: str, arrays: list[np.ndarray], whole: Any) -> None:
    """ValueError naming the first array (and the index in it) holding a NaN or Inf; ``whole``
    is the array they are the rows of, if they are, checked in one pass."""
    start = 0
    if isinstance(whole, np.ndarray) and whole.dtype.kind == "f" and whole.ndim >= 1:
        if np.isfinite(whole).all():
            return
        start = int(np.argwhere(~np.isfinite(whole))[0][0])
        arrays = arrays[start : start + 1]
    for i, a in enumerate(arrays, start=start):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = tuple(int(j) for j in np.argwhere(~np.isfinite(a))[0])
            where = f" at index {bad}" if bad else ""
            raise ValueError(f"{name}[{i}] must be finite, got {a[bad]}{where}")


def _sequences(name: str, values: Any) -> list[np.ndarray]:
    """Sequences (T_n, ...) of one kind (integer or real) and one trailing shape, finite: the
    checks of :class:`SequenceData`'s inputs and per-step targets. An empty one takes the
    trailing shape and dtype of the first non-empty one."""
    arrays = _as_arrays(name, values)
    first = next((i for i, a in enumerate(arrays) if a.ndim >= 1 and len(a)), None)
    if first is None:
        return arrays  # all empty: the caller decides
    ref = arrays[first]
    tail, ids = ref.shape[1:], ref.dtype.kind in "iu"
    want = _checks.fmt_shape(("T", *tail))
    for i, a in enumerate(arrays):
        if a.ndim >= 1 and len(a) == 0:
            arrays[i] = np.zeros((0, *tail), dtype=ref.dtype)  # an empty one, [] included
            continue
        if a.ndim == 0 or a.shape[1:] != tail:
            raise ValueError(
                f"{name}[{i}] must have shape {want} like {name}[{first}], got "
                f"{_checks.fmt_shape(a.shape)}"
            )
        if (a.dtype.kind in "iu") != ids:
            kind = "integer ids" if ids else "real values"
            raise TypeError(
                f"{name}[{i}] must hold {kind} like {name}[{first}] ({ref.dtype}), got {a.dtype}"
            )
    _first_not_finite(name, arrays, values)
    return arrays


def _targets(values: Any) -> list[np.ndarray]:
    """Per-sequence targets: one shape, finite."""
    arrays = _as_arrays("targets", values)
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise ValueError(
                f"targets[{i}] must have shape {_checks.fmt_shape(shape)} like targets[0] (one "
                f"target per sequence), got {_checks.fmt_shape(a.shape)}"
            )
    _first_not_finite("targets", arrays, values)
    return arrays


class StreamData:
    """Truncated-BPTT chunks of token streams: language modelling over long texts.

    Each of the ``batch_size`` rows reads its own part of the data, in chunks of ``bptt`` steps;
    the trainer carries each row's final state into its next chunk without back-propagating
    across the boundary. Given one long stream, it is cut into ``batch_size`` contiguous rows
    (the classic layout). Given several documents, they are dealt to the rows in turn, each
    starting on a chunk boundary (the rest of the chunk before it is padding, masked out of the
    loss), and ``reset`` marks the rows whose chunk starts a new document, so no state leaks
    from one document into the next.

    Args:
        tokens: one integer array (N,), or a list of them (documents).
        batch_size: B, the number of parallel rows.
        bptt: k, steps per chunk.

    Example:
        >>> import numpy as np
        >>> from rnnkit.data import StreamData
        >>> data = StreamData(np.arange(21), batch_size=2, bptt=4)
        >>> b = data.batch(data.order(None), 0)
        >>> b.x[:, 0].tolist(), b.y[:, 0].tolist(), len(data)
        ([0, 1, 2, 3], [1, 2, 3, 4], 3)
    """

    def __init__(self, tokens: Any, batch_size: int, bptt: int) -> None:
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.bptt = _checks.positive_int("bptt", bptt)
        docs = [np.asarray(tokens)] if isinstance(tokens, np.ndarray) else list(tokens)
        docs = [np.asarray(d) for d in docs]
        for i, d in enumerate(docs):
            if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
                raise TypeError(f"tokens[{i}] must be a 1-D integer array, got {d.dtype} {d.shape}")
        B, k = self.batch_size, self.bptt
        if len(docs) == 1:
            stream = docs[0]
            per_row = (len(stream) - 1) // B  # each row needs one extra token as last target
            if per_row < 1:
                raise ValueError(
                    f"tokens are too short: {len(stream)} tokens for {B} rows of at least 2"
                )
            rows_x = [stream[r * per_row : (r + 1) * per_row] for r in range(B)]
            rows_y = [stream[r * per_row + 1 : (r + 1) * per_row + 1] for r in range(B)]
            starts = [[0] for _ in range(B)]
        else:
            rows_x, rows_y, starts = self._deal(docs, B, k)
        n_chunks = -(-max(len(r) for r in rows_x) // k)
        T = n_chunks * k
        limits.check_memory(  # x and y (intp), valid (bool); padding included
            lambda: f"the token rows of StreamData ({T:,} steps x {B} rows)", T * B * 17
        )
        self.x = np.zeros((T, B), dtype=np.intp)
        self.y = np.zeros((T, B), dtype=np.intp)
        self.valid = np.zeros((T, B), dtype=bool)
        self.reset = np.zeros((n_chunks, B), dtype=bool)
        for r in range(B):
            n = len(rows_x[r])
            self.x[:n, r], self.y[:n, r], self.valid[:n, r] = rows_x[r], rows_y[r], True
            for s in starts[r]:
                self.reset[s // k, r] = True
        self.n_chunks = n_chunks

    @staticmethod
    def _deal(docs, B, k):
        """Documents to rows, each starting on a chunk boundary: (inputs, targets, starts)."""
        rows_x = [[] for _ in range(B)]
        rows_y = [[] for _ in range(B)]
        starts = [[] for _ in range(B)]
        length = [0] * B
        for d in docs:
            if len(d) < 2:
                continue  # nothing to predict
            r = int(np.argmin(length))
            pad = -length[r] % k
            if pad:  # views, no memory: padding may dwarf the documents (a large k)
                rows_x[r].append(np.broadcast_to(np.intp(0), pad))
                rows_y[r].append(np.broadcast_to(np.intp(-1), pad))  # -1: padding, masked
                length[r] += pad
            starts[r].append(length[r])
            rows_x[r].append(d[:-1])
            rows_y[r].append(d[1:])
            length[r] += len(d) - 1
        if not any(length):
            raise ValueError("tokens: no document has the 2 tokens needed for one target")
        T = -(-max(length) // k) * k
        limits.check_memory(  # the rows joined (intp, twice), then x, y and valid over (T, B)
            lambda: f"the token rows of StreamData ({T:,} steps x {B} rows)",
            16 * sum(length) + 17 * T * B,
        )
        cat = [np.concatenate(p) if p else np.zeros(0, dtype=np.intp) for p in rows_x]
        cat_y = [np.concatenate(p) if p else np.zeros(0, dtype=np.intp) for p in rows_y]
        return cat, cat_y, starts

    def __len__(self) -> int:
        return self.n_chunks

    def order(self, rng: np.random.Generator | None) -> np.ndarray:
        """Chunks in stream order: the carried state needs them in sequence."""
        return np.arange(self.n_chunks)

    def batch(self, order: np.ndarray, i: int) -> Batch:
        c = int(order[i])
        rows = slice(c * self.bptt, (c + 1) * self.bptt)
        valid = self.valid[rows] & (self.y[rows] >= 0)  # (k, B)
        return Batch(
            self.x[rows], np.where(valid, self.y[rows], 0), None, valid, self.reset[c].copy()
        )


def reset_rows(state: Any, rows: np.ndarray) -> Any:
    """A copy of ``state`` (an array (L*K, B, H), or a tuple of them) with the batch rows where
    ``rows`` (B,) is True set to zero: those sequences start afresh."""
    rows = np.asarray(rows, dtype=bool)
    if isinstance(state, tuple):
        return tuple(reset_rows(s, rows) for s in state)
    out = state.copy()
    out[:, rows] = 0.0
    return out
