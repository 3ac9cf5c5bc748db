"""Time the compiled LSTM recurrence (rnnkit.kernels) against the NumPy reference loops.

What it measures: the two time loops alone, forward then backward, as ``cell.recurrence``
runs them inside a layer (the input projection and the parameter gradients around them are
not included; benchmarks/bench_layers.py times whole layers against PyTorch). Inputs are random
pre-activations xg (T, B, 4H), weights W_hh ~ N(0, 1/H), zero initial state, random dhs. Each
configuration is first checked: the compiled loops must match the reference run in float64 to
``RTOL`` (float32 results, relative to each tensor's magnitude). Then each implementation is
timed in blocks of ``--repeats`` runs after a warm-up, the blocks alternating over ``ROUNDS``
rounds, and the median is reported with ratio = compiled / reference (< 1: the kernel is
faster), for every instruction-set variant the CPU has and for 1 and the default number of
threads.

Run from the repository root::

    python benchmarks/bench_recurrence.py [--quick] [--repeats N]

Shapes: T = time steps, B = batch, H = hidden size.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from rnnkit import kernels
from rnnkit.cells import CellParams, LSTMCell, loop
from rnnkit.cells.base import numpy_recurrence
from rnnkit.cells.lstm import STEP
from rnnkit.kernels import lstm as compiled

RTOL = 1e-5
ROUNDS = 2
#: (T, B, H): bench_layers.py's LSTM sizes, streaming-like batches of 1, and a large one.
SIZES = ((50, 32, 128), (100, 64, 256), (200, 16, 64), (100, 1, 128), (100, 1, 512))
SIZES += ((100, 128, 512),)
QUICK_SIZES = ((8, 4, 16),)


def problem(T: int, B: int, H: int) -> tuple:
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(np.float32)
    P = LSTMCell(recurrence=numpy_recurrence(STEP)).prepare(CellParams(None, W, None, None))
    xg = rng.standard_normal((T, B, 4 * H)).astype(np.float32)
    zeros = np.zeros((B, H), np.float32)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)
    return P, xg, (zeros, zeros), dhs


#: The two implementations: (forward, backward).
COMPILED = (compiled.forward, compiled.backward)
REFERENCE = (functools.partial(loop.forward, STEP), functools.partial(loop.backward, STEP))


def run(impl: tuple[Callable, Callable], P, xg, state0, dhs) -> tuple:
    fwd, bwd = impl
    states, saved = fwd(xg, state0, P, None, None)
    da, _, dstate0 = bwd(dhs, state0, states, state0, saved, P, None, None)
    return (*states, *saved, da, *dstate0)


def check(P, xg, state0, dhs) -> float:
    """Largest relative error of the compiled loops against the reference run in float64."""
    ours = run(COMPILED, P, xg, state0, dhs)

    def up(a):
        return a.astype(np.float64)

    P64 = P._replace(W_hhT=up(P.W_hhT), W_hh=up(P.W_hh))
    ref = run(REFERENCE, P64, up(xg), tuple(map(up, state0)), up(dhs))
    errs = [float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(ours, ref)]
    if max(errs) > RTOL:
        raise AssertionError(f"compiled loops differ from the reference: {max(errs):.1e}")
    return max(errs)


def median_times(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(ROUNDS):
        for fn, times in zip(fns, samples):
            fn()  # warm-up
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return [statistics.median(t) for t in samples]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny size: a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per block")
    args = parser.parse_args(argv)
    native = kernels.native()
    if native is None:
        sys.exit(f"compiled kernels unavailable: {kernels.reason()}")
    best, isas = native.isa()
    default_threads = kernels.get_num_threads()
    print(f"float32 forward + backward of the recurrence; median of {ROUNDS} x {args.repeats}")
    print("   T    B    H  isa       threads  f32 err  compiled ms  numpy ms  ratio")
    for T, B, H in QUICK_SIZES if args.quick else SIZES:
        data = problem(T, B, H)
        reference = functools.partial(run, REFERENCE, *data)
        ours = functools.partial(run, COMPILED, *data)
        for name in isas:
            native.isa(name)
            for threads in sorted({1, default_threads}):
                kernels.set_num_threads(threads)
                err = check(*data)
                t_ours, t_ref = median_times([ours, reference], args.repeats)
                print(
                    f"{T:4d} {B:4d} {H:4d}  {name:8s}  {threads:7d}  {err:7.0e}  "
                    f"{1e3 * t_ours:11.2f}  {1e3 * t_ref:8.2f}  {t_ours / t_ref:5.2f}",
                    flush=True,
                )
    native.isa(best)
    kernels.set_num_threads(None)


if __name__ == "__main__":
    main()
