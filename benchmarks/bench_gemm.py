"""Time the compiled matrix products (rnnkit.runtime.kernels.gemm) against NumPy's BLAS (``a @ b``).

What it measures: the three products of a layer's sequence passes, each alone, at the shapes of
``benchmarks/suite.py``'s matrix (T = 100; LSTM and GRU) and at one large shape: the input
projection ``x W_ih^T + b`` (TB, D) x (D, G), the input gradient ``da W_ih`` (TB, G) x (G, D)
and the weight gradients ``da^T x`` (G, TB) x (TB, D) and ``da^T h_prev`` (G, TB) x (TB, H);
and ``outer_sum x+db``, the first weight gradient with the bias gradient ``db`` (the row sums
of ``da^T``, ``row_sums``) beside it, against NumPy's ``da.T @ x`` and ``da.sum(axis=0)``
(GFLOP/s counted on the product alone: what the row sums cost shows against ``outer_sum x``).
NumPy's BLAS runs on 2 threads (``set_blas_threads``), the kernel on the default number of
threads. Each product is first
checked against NumPy in float64 (relative error of the result, to ``RTOL``), then both are
timed in float32 (``--dtype`` to change) in blocks alternating over rounds; reported: the
median GFLOP/s of each and ratio = kernel time / NumPy time (< 1: the kernel is faster), and
which of the two :func:`rnnkit.runtime.kernels.gemm.matmul` runs at that shape ("routed").

Run from the repository root::

    python benchmarks/bench_gemm.py [--quick] [--dtype float32|float64] [--only TEXT]

(``--only "B32 "`` runs the rows whose shape and product contain TEXT.)

Shapes: T = time steps, B = batch, D = input size, H = hidden size, G = gates x H.
"""

from __future__ import annotations

import argparse
import functools
import sys

import numpy as np

from common import adaptive_repeats, median_times, relative_error
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import gemm
from rnnkit.runtime.threads import set_blas_threads

RTOL = 1e-12
T = 100
#: (B, D, H) of suite.py's matrix
SIZES = [(1, 64, 128), (16, 32, 64), (32, 64, 128), (64, 256, 256), (20, 650, 650), (128, 512, 512)]
GATES = {"LSTM": 4, "GRU": 3}


def products(B: int, D: int, H: int, G: int) -> list[tuple[str, tuple, dict, tuple]]:
    """(name, operand shapes, matmul keywords, (M, K, N)) of one layer's three products."""
    TB = T * B
    return [
        ("project", ((TB, D), (G, D)), {"trans_b": True}, (TB, D, G)),
        ("input_grads", ((TB, G), (G, D)), {}, (TB, G, D)),
        ("outer_sum x", ((TB, G), (TB, D)), {"trans_a": True}, (G, TB, D)),
        ("outer_sum h", ((TB, G), (TB, H)), {"trans_a": True}, (G, TB, H)),
        ("outer_sum x+db", ((TB, G), (TB, D)), {"trans_a": True, "sums": True}, (G, TB, D)),
    ]


def numpy_product(a: np.ndarray, b: np.ndarray, kw: dict) -> np.ndarray | tuple:
    out = (a.T if kw.get("trans_a") else a) @ (b.T if kw.get("trans_b") else b)
    if kw.get("sums"):
        return out, (a.T if kw.get("trans_a") else a).sum(axis=1)
    return out


def kernel_product(a: np.ndarray, b: np.ndarray, kw: dict) -> np.ndarray | tuple:
    """The kernel itself, also where :func:`gemm.matmul` would leave the product to NumPy."""
    ta, tb = kw.get("trans_a", False), kw.get("trans_b", False)
    M, N = a.shape[1 if ta else 0], b.shape[0 if tb else 1]
    out = np.empty((M, N), dtype=a.dtype)
    row_sums = np.empty(M, dtype=a.dtype) if kw.get("sums") else None
    work = M * a.shape[0 if ta else 1] * N
    kernels.native().gemm(a, ta, b, tb, None, out, gemm.threads_for(work), row_sums)
    return out if row_sums is None else (out, row_sums)


def check(a: np.ndarray, b: np.ndarray, kw: dict) -> float:
    """The largest relative error of the kernel's results (product, row sums) against NumPy's."""
    mine, ref = kernel_product(a, b, kw), numpy_product(a, b, kw)
    if isinstance(mine, tuple):
        return max(relative_error(x, y) for x, y in zip(mine, ref, strict=True))
    return relative_error(mine, ref)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter blocks")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--only", default="", help="only the rows whose shape and product contain this"
    )
    args = parser.parse_args(argv)
    if kernels.native() is None:
        print(f"no compiled kernels: {kernels.reason()}")
        return 1
    set_blas_threads(2)
    dtype = np.dtype(args.dtype)
    rounds, target = (3, 0.05) if args.quick else (5, 0.2)
    cases = [("big", "project", ((12800, 512), (2048, 512)), {"trans_b": True}, (12800, 512, 2048))]
    for B, D, H in SIZES:
        for cell, g in GATES.items():
            for name, shapes, kw, mkn in products(B, D, H, g * H):
                if cell == "LSTM" or not kw.get("sums"):
                    cases.append((f"{cell} B{B} D{D} H{H}", name, shapes, kw, mkn))
    cases = [case for case in cases if args.only in f"{case[0]} {case[1]}"]
    print(f"isa {kernels.isa()}, threads {kernels.get_num_threads()}, {dtype}, T={T}")
    print(
        f"{'shape':26} {'product':14} {'M K N':>18} {'kernel':>8} {'numpy':>8} {'ratio':>6} "
        f"{'routed':>7}"
    )
    rng = np.random.default_rng(0)
    failed = 0
    for label, name, shapes, kw, (M, K, N) in cases:
        a64, b64 = (rng.standard_normal(s) for s in shapes)
        err = check(a64, b64, kw)
        if not err <= RTOL:
            print(f"{label:26} {name:14} FAILED: relative error {err:.1e} > {RTOL:.0e}")
            failed += 1
            continue
        a, b = a64.astype(dtype), b64.astype(dtype)
        fns = [
            functools.partial(kernel_product, a, b, kw),
            functools.partial(numpy_product, a, b, kw),
        ]
        estimate = min(median_times(fns, 1, 1, 1))
        reps = adaptive_repeats(estimate, target)
        mine, ref = median_times(fns, reps, 1, rounds)
        flop = 2 * M * K * N / 1e9
        print(
            f"{label:26} {name:14} {f'{M} {K} {N}':>18} {flop / mine:8.1f} {flop / ref:8.1f} "
            f"{mine / ref:6.2f} {'kernel' if gemm.worth_it(M, K, N) else 'numpy':>7}"
        )
    print("GFLOP/s; ratio = kernel / numpy time; routed: what gemm.matmul runs (worth_it)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
