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
is as fast (:func:`worth_it`).
"""

from __future__ import annotations

import numpy as np

from rnnkit import kernels

#: Multiply-adds worth a second thread (about 0.1 ms on one core): a product splits its rows
#: between threads with no synchronisation, so the threads pay off much earlier than in the
#: time loops (see :data:`rnnkit.kernels.MIN_WORK_PER_THREAD`).
MIN_WORK_PER_THREAD = 10_000_000
#: Below these, NumPy's BLAS is as fast or faster (measured with benchmarks/bench_gemm.py): the
#: kernel's tiles are 4 vectors wide (64 float32 columns with AVX-512), so a narrower product
#: wastes most of each tile, and a small one is over before the packing pays off.
MIN_COLUMNS = 64
MIN_WORK = 50_000_000

_REALS = (np.float32, np.float64)


def _rows_contiguous(a: np.ndarray) -> bool:
    """Whether a 2-D array's rows are contiguous (the kernel takes any row stride)."""
    s0, s1 = a.strides
    return s1 == a.itemsize and s0 >= a.shape[1] * a.itemsize and s0 % a.itemsize == 0


def covers(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> bool:
    """Whether the kernel computes a product of these operands (2-D, float32 or float64, one
    dtype, non-empty, contiguous rows; a contiguous bias of the same dtype)."""
    if kernels.native() is None or a.ndim != 2 or b.ndim != 2:
        return False
    if a.dtype not in _REALS or b.dtype != a.dtype or not (a.size and b.size):
        return False
    if bias is not None and (bias.dtype != a.dtype or not bias.flags.c_contiguous):
        return False
    return _rows_contiguous(a) and _rows_contiguous(b)


def worth_it(M: int, K: int, N: int) -> bool:
    """Whether the kernel is expected to beat NumPy's BLAS on a (M, K) x (K, N) product."""
    return N >= MIN_COLUMNS and M * K * N >= MIN_WORK


def threads_for(work: int) -> int:
    """Threads for a product of ``work`` multiply-adds."""
    return max(1, min(kernels.get_num_threads(), work // MIN_WORK_PER_THREAD))


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """``op(a) @ op(b) (+ bias)``, with ``op(x) = x.T`` when ``trans_x``, else ``x``.

    Args: a (M, K) or (K, M) transposed, b (K, N) or (N, K) transposed, bias (N,) or None.
    Returns (M, N), a new C-contiguous array.
    """
    A = a.T if trans_a else a  # (M, K)
    Bm = b.T if trans_b else b  # (K, N)
    if A.shape[1] != Bm.shape[0]:
        raise ValueError(f"op(a) {A.shape} and op(b) {Bm.shape} do not multiply")
    M, K, N = A.shape[0], A.shape[1], Bm.shape[1]
    if not (worth_it(M, K, N) and covers(a, b, bias)):
        out = A @ Bm
        if bias is not None:
            out += bias
        return out
    out = np.empty((M, N), dtype=a.dtype)
    kernels.native().gemm(a, trans_a, b, trans_b, bias, out, threads_for(M * K * N))
    return out
