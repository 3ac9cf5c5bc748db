"""Compiled matrix products for the sequence passes: :func:`matmul`.

The three products of a cell's sequence passes around its time loops (the input projection
``x W_ih^T + b``, the input gradient ``da W_ih`` and the weight gradients ``da^T x``; see
:mod:`rnnkit.cells.base`) take most of a training step once the loops are compiled. The
extension computes them with the register-tiled micro-kernel of its loops over packed, cache-
blocked operands (``gemm.h``), on the instruction set chosen at import, and splits the rows of
the result between threads, beyond NumPy's BLAS (which runs AVX2 kernels on some AVX-512 CPUs).

:func:`matmul` falls back to NumPy (silently: the result is the same up to rounding) for what
the kernel does not cover (dtypes other than float32 and float64 or mixed dtypes, empty
shapes, rows that are not contiguous) and for the small or narrow products where NumPy's BLAS
is as fast (:func:`worth_it`). Within :func:`exact_rows` it computes on the kernel whatever the
sizes: the kernel's rows are independent of each other (each element's sum runs in the same
order whatever the number of rows, the row offset and the threads), so a row of the result
has the same bits in any batch, which NumPy's BLAS, choosing its path by the shape, does not
promise. Decoding relies on that: an input's translation must not depend on the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from rnnkit.runtime import workspace
from rnnkit.runtime.kernels import extension

#: Multiply-adds worth a second thread: a product splits its rows between threads with no
#: synchronisation, so threads pay off much earlier than in the time loops.
MIN_WORK_PER_THREAD = 4_000_000
#: Below these, NumPy's BLAS is as fast or faster (measurements: docs/performance.md).
MIN_COLUMNS = 32
MIN_WORK = 3_000_000

_REALS = (np.float32, np.float64)


def _rows_contiguous(a: np.ndarray) -> bool:
    """Whether a 2-D array's rows are contiguous (the kernel takes any row stride)."""
    s0, s1 = a.strides
    return s1 == a.itemsize and s0 >= a.shape[1] * a.itemsize and s0 % a.itemsize == 0


def covers(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    row_sums: np.ndarray | None = None,
) -> bool:
    """Whether the kernel computes a product of these operands (2-D, float32 or float64, one
    dtype, non-empty, contiguous rows; a contiguous bias and a contiguous, writable row_sums
    of the same dtype)."""
    if extension.native() is None or a.ndim != 2 or b.ndim != 2:
        return False
    if a.dtype not in _REALS or b.dtype != a.dtype or not (a.size and b.size):
        return False
    for vector in (bias, row_sums):
        if vector is not None and (vector.dtype != a.dtype or not vector.flags.c_contiguous):
            return False
    if row_sums is not None and not row_sums.flags.writeable:
        return False
    return _rows_contiguous(a) and _rows_contiguous(b)


_mode = threading.local()


@contextmanager
def exact_rows() -> Iterator[None]:
    """Within (in this thread): :func:`matmul` computes on the kernel whenever it covers the
    operands, also below :func:`worth_it`'s sizes, so that each row of a result has the same
    bits whatever the other rows (see the module docstring)."""
    before = getattr(_mode, "exact", False)
    _mode.exact = True
    try:
        yield
    finally:
        _mode.exact = before


class Packed(NamedTuple):
    """``op(b)`` packed once for the kernel (:func:`pack`), for many products with the same
    ``b``: :func:`matmul` takes it in place of ``b`` and skips the packing that each product
    otherwise starts with (a copy of all of ``op(b)`` into the kernel's panels, as long as the
    multiply-adds themselves when ``a`` has a few dozen rows, as in a decoder run one step at a
    time). The result has the same bits as with ``b`` itself. Valid while ``b`` does not change:
    the kernel reads the packed copy, NumPy's product (small sizes) ``b`` itself, so after a
    change (an optimiser step) pack again."""

    b: np.ndarray  # b as given (not copied): for the products the kernel does not compute
    trans_b: bool
    kernel: Any  # the extension's packed op(b), or None where the kernel does not cover b


def pack(b: np.ndarray, trans_b: bool = False) -> Packed:
    """``op(b)`` (``b.T`` when ``trans_b``) packed for :func:`matmul` (see :class:`Packed`)."""
    module = extension.native()
    ok = module is not None and covers(b, b)
    return Packed(b, bool(trans_b), module.pack_b(b, bool(trans_b)) if ok else None)


def worth_it(M: int, K: int, N: int) -> bool:
    """Whether the kernel is expected to beat NumPy's BLAS on a (M, K) x (K, N) product."""
    return N >= MIN_COLUMNS and M * K * N >= MIN_WORK


def threads_for(work: int) -> int:
    """Threads for a product of ``work`` multiply-adds."""
    return max(1, min(extension.get_num_threads(), work // MIN_WORK_PER_THREAD))


def matmul(
    a: np.ndarray,
    b: np.ndarray | Packed,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    bias: np.ndarray | None = None,
    row_sums: np.ndarray | None = None,
) -> np.ndarray:
    r"""``op(a) @ op(b) (+ bias)``, with ``op(x) = x.T`` when ``trans_x``, else ``x``; and,
    into ``row_sums`` when given, the sums of the rows of ``op(a)``:

    .. math::

        c_{ij} = \sum_k \mathrm{op}(a)_{ik} \mathrm{op}(b)_{kj} (+ \mathrm{bias}_j),
        \qquad \mathrm{row\_sums}_i = \sum_k \mathrm{op}(a)_{ik}

    For the weight gradient ``dW = da^T x`` (``trans_a``) the row sums are the bias gradient
    ``db = sum over time and batch of da``: the kernel adds them up as it brings each block of
    ``op(a)`` into cache for the product (while it packs it, or just before its tiles read it
    in place), in float64, so that a float32 sum over a long ``K = T B`` loses nothing; no
    other pass over ``da`` from memory. NumPy's fallback computes ``op(a).sum(axis=1)``.

    Args: a (M, K) or (K, M) transposed, b (K, N) or (N, K) transposed, or op(b) packed by
    :func:`pack` (then ``trans_b`` False), bias (N,) or None, row_sums (M,) of a's dtype,
    written in place, or None.
    Returns (M, N), a new C-contiguous array.
    """
    packed = None
    if isinstance(b, Packed):
        if trans_b:
            raise ValueError("trans_b must be False with a Packed b (it holds op(b))")
        packed, b, trans_b = b.kernel, b.b, b.trans_b
    A = a.T if trans_a else a  # (M, K)
    Bm = b.T if trans_b else b  # (K, N)
    if A.shape[1] != Bm.shape[0]:
        raise ValueError(f"op(a) {A.shape} and op(b) {Bm.shape} do not multiply")
    M, K, N = A.shape[0], A.shape[1], Bm.shape[1]
    if row_sums is not None:
        if not isinstance(row_sums, np.ndarray) or row_sums.dtype != a.dtype:
            got = row_sums.dtype if isinstance(row_sums, np.ndarray) else type(row_sums).__name__
            raise TypeError(f"row_sums must be a {a.dtype} array, got {got}")
        if row_sums.shape != (M,):
            raise ValueError(f"row_sums must have shape ({M},), got {row_sums.shape}")
    if not ((worth_it(M, K, N) or getattr(_mode, "exact", False)) and covers(a, b, bias, row_sums)):
        out = A @ Bm
        if bias is not None:
            out += bias
        if row_sums is not None:
            A.sum(axis=1, out=row_sums)
        return out
    out = workspace.empty((M, N), a.dtype)
    if packed is not None:
        b, trans_b = packed, False
    extension.native().gemm(a, trans_a, b, trans_b, bias, out, threads_for(M * K * N), row_sums)
    return out
