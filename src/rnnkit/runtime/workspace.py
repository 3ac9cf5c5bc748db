"""Recycled buffers for the large arrays of a training step: :func:`empty`.

A training step allocates and frees the same large arrays again and again: the input
projection, the states and gates saved for the backward pass, the gate gradients, the input
gradient. Freed, they go back to the C library, which (glibc's defaults) returns the top of
the heap and every array above its mmap threshold to the system; the next step then touches
fresh pages, paying a page fault and the zeroing of every 4 KiB, and finds none of its arrays
in the cache. Recycling the buffers removes those page faults, and shortens a training step
(``docs/performance.md``).

:func:`empty` is ``np.empty`` over buffers that rnnkit keeps between calls. A buffer is handed
out again only when nothing refers to it any more: every array made from a buffer, and every
view of such an array, holds a reference to the buffer (NumPy's ``base``), so the buffer's
reference count tells whether anything still uses it. The arrays returned to the caller (a
layer's outputs, its gradients, a cache kept for later) stay theirs for as long as they hold
them; only what nobody holds is reused.

Its callers: the compiled code of :mod:`rnnkit.runtime.kernels`, for the outputs of its time
loops and matrix products; and, on the NumPy path as well, :meth:`rnnkit.nn.Recurrent.forward`
for the layer's output and :func:`rnnkit.cells.base.previous_states` for the states entering
each step in the backward pass. The NumPy reference time loops (:mod:`rnnkit.cells.timeloop`)
and NumPy's own products allocate as usual, and so does :func:`empty` below :data:`MIN_BYTES`.
The workspace keeps at most :func:`limit` bytes of buffers, the least recently used dropped
first, and :func:`release` gives every buffer nothing uses back to the C library (at the end of
training, say). Unlike :func:`rnnkit.keep_freed_memory` it changes nothing for the rest of the
process.
"""

from __future__ import annotations

import sys
import threading
from math import prod
from typing import Any

import numpy as np

#: Arrays smaller than this are plain ``np.empty``: the C library reuses small blocks itself.
MIN_BYTES = 256 << 10
#: A free buffer serves a request of up to this many times fewer bytes (sequences of varying
#: length reuse the buffers of longer ones).
MAX_SLACK = 2
#: The default of :func:`limit`.
DEFAULT_LIMIT = 1 << 30


class _Workspace:
    """The buffers (1-D uint8 arrays), least recently handed out first; one per process, behind
    a lock."""

    def __init__(self, limit: int) -> None:
        self.buffers: list[np.ndarray] = []
        self.limit = limit
        self.lock = threading.Lock()
        # the references a buffer nobody uses has, as counted by _is_free (the list's, and
        # whatever this interpreter's calls add): counted on a buffer that has no other
        self.buffers.append(np.empty(1, dtype=np.uint8))
        self.free_references = sys.getrefcount(self.buffers[0])
        self.buffers.clear()

    def _is_free(self, i: int) -> bool:
        return sys.getrefcount(self.buffers[i]) <= self.free_references

    def take(self, nbytes: int) -> np.ndarray:
        """A buffer of at least ``nbytes`` that nothing else refers to (made if none)."""
        if nbytes > self.limit:  # never kept: the C library's, as for np.empty
            return np.empty(nbytes, dtype=np.uint8)
        with self.lock:
            best = -1
            for i in range(len(self.buffers)):
                size = self.buffers[i].nbytes
                if nbytes <= size <= MAX_SLACK * nbytes and (
                    best < 0 or size < self.buffers[best].nbytes
                ):
                    if self._is_free(i):
                        best = i
            if best < 0:
                self._make_room(nbytes)
                buffer = np.empty(nbytes, dtype=np.uint8)
            else:
                buffer = self.buffers.pop(best)
            self.buffers.append(buffer)  # the most recently used, last
            return buffer

    def _make_room(self, nbytes: int) -> None:
        """Drop the least recently used buffers until ``nbytes`` more fit under the limit.
        A dropped buffer still in use lives on with its arrays; it is just not reused."""
        total = sum(b.nbytes for b in self.buffers)
        drop = 0
        while drop < len(self.buffers) and total + nbytes > self.limit:
            total -= self.buffers[drop].nbytes
            drop += 1
        del self.buffers[:drop]

    def _free_bytes(self) -> tuple[list[bool], int]:
        free = [self._is_free(i) for i in range(len(self.buffers))]
        return free, sum(b.nbytes for b, f in zip(self.buffers, free) if f)

    def release(self) -> int:
        """Forget every buffer nothing uses; the bytes released."""
        with self.lock:
            free, released = self._free_bytes()
            self.buffers = [b for b, f in zip(self.buffers, free) if not f]
            return released

    def held(self) -> tuple[int, int]:
        with self.lock:
            return sum(b.nbytes for b in self.buffers), self._free_bytes()[1]


_workspace = _Workspace(DEFAULT_LIMIT)


def empty(shape: Any, dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, like ``np.empty(shape, dtype)``, over a recycled
    buffer when it has at least :data:`MIN_BYTES` (see the module docstring)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    return _workspace.take(nbytes)[:nbytes].view(dtype).reshape(shape)


def release() -> int:
    """Give every buffer nothing uses back to the C library; returns the bytes released.

    Example:
        >>> from rnnkit import workspace
        >>> a_bytes = 1024 * 1024 * 4
        >>> a = workspace.empty((1024, 1024), "float32")  # 4 MiB: from the workspace
        >>> a.shape, a.dtype
        ((1024, 1024), dtype('float32'))
        >>> del a  # its buffer is now unused
        >>> workspace.release() >= a_bytes
        True
    """
    return _workspace.release()


def limit(nbytes: int | None = None) -> int:
    """The most bytes of buffers the workspace keeps (default 1 GiB); with ``nbytes``, set it
    first (0: keep none, every array is then allocated afresh). Returns the limit."""
    if nbytes is not None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}")
        with _workspace.lock:
            _workspace.limit = nbytes
        if nbytes == 0:
            release()
    return _workspace.limit


def held() -> tuple[int, int]:
    """``(total, unused)``: the bytes of the buffers the workspace keeps, and of those nothing
    uses."""
    return _workspace.held()
