"""Time the compiled recurrences (rnnkit.runtime.kernels) against the NumPy reference loops.

What it measures: the two time loops alone, forward then backward, as ``cell.recurrence``
runs them inside a layer (the input projection and the parameter gradients around them are
not included; benchmarks/bench_layers.py times whole layers against PyTorch), for the LSTM, the
GRU in both reset forms and the tanh and ReLU RNN. Inputs are random pre-activations xg
(T, B, G H), weights W_hh ~ N(0, 1/H), random biases (the reset-after GRU keeps b_hh in the
loop), zero initial state, random dhs. Each configuration is first checked: the compiled loops
must match the reference run in float64 to ``RTOL`` (float32 results, relative to each
tensor's magnitude). Then each implementation is timed in blocks of ``--repeats`` runs after a
warm-up, the blocks alternating over ``ROUNDS`` rounds, and the median is reported with
ratio = compiled / reference (< 1: the kernel is faster), for every instruction-set variant the
CPU has (or the best one, ``--best-isa``) and for 1 and the default number of threads.

Run from the repository root::

    python benchmarks/bench_recurrence.py [--quick] [--repeats N] [--cells NAME ...] [--best-isa]

Shapes: T = time steps, B = batch, H = hidden size, G = gates (LSTM 4, GRU 3, RNN 1).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from rnnkit.cells import CellParams, GRUCell, LSTMCell, RNNCell, gru, lstm, rnn
from rnnkit.cells.base import Recurrence, StepCell, numpy_recurrence
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import gru as compiled_gru
from rnnkit.runtime.kernels import lstm as compiled_lstm
from rnnkit.runtime.kernels import rnn as compiled_rnn

RTOL = 1e-5
ROUNDS = 2
#: (T, B, H): bench_layers.py's LSTM sizes, streaming-like batches of 1, and a large one.
SIZES = ((50, 32, 128), (100, 64, 256), (200, 16, 64), (100, 1, 128), (100, 1, 512))
SIZES += ((100, 128, 512),)
QUICK_SIZES = ((8, 4, 16),)

#: Cell name -> (the cell, running the NumPy reference loops; the compiled loops).
CELLS: dict[str, tuple[StepCell, Recurrence]] = {
    "lstm": (LSTMCell(numpy_recurrence(lstm.STEP)), compiled_lstm.RECURRENCE),
    "gru_after": (GRUCell("after", numpy_recurrence(gru.STEPS["after"])), compiled_gru.RECURRENCE),
    "gru_before": (
        GRUCell("before", numpy_recurrence(gru.STEPS["before"])),
        compiled_gru.RECURRENCE,
    ),
    "rnn_tanh": (RNNCell("tanh", numpy_recurrence(rnn.STEP)), compiled_rnn.RECURRENCE),
    "rnn_relu": (RNNCell("relu", numpy_recurrence(rnn.STEP)), compiled_rnn.RECURRENCE),
}


def problem(cell: StepCell, T: int, B: int, H: int) -> tuple:
    rng = np.random.default_rng(0)
    G = cell.num_gates * H
    W = (rng.standard_normal((G, H)) / np.sqrt(H)).astype(np.float32)
    b = (0.1 * rng.standard_normal(G)).astype(np.float32)
    P = cell.prepare(CellParams(None, W, b, b))
    xg = rng.standard_normal((T, B, G)).astype(np.float32)
    state0 = tuple(np.zeros((B, H), np.float32) for _ in cell.state_names)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)
    return P, xg, state0, dhs


def run(impl: Recurrence, P, xg, state0, dhs) -> tuple:
    states, saved = impl.forward(xg, state0, P, None, None)
    da, dgh, dstate0 = impl.backward(dhs, state0, states, state0, saved, P, None, None)
    return (*states, *saved, da, *(() if dgh is None else (dgh,)), *dstate0)


def up(value):
    """The float64 copy of an array, or of the arrays in a (named) tuple."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    if isinstance(value, tuple):
        fields = map(up, value)
        return type(value)(*fields) if hasattr(value, "_fields") else tuple(fields)
    return value


def check(cell: StepCell, compiled: Recurrence, P, xg, state0, dhs) -> float:
    """Largest relative error of the compiled loops against the reference run in float64."""
    ours = run(compiled, P, xg, state0, dhs)
    ref = run(cell.recurrence, *up((P, xg, state0, dhs)))
    errs = [float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(ours, ref)]
    if len(ours) != len(ref) or max(errs) > RTOL:
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
    parser.add_argument(
        "--cells", nargs="+", choices=list(CELLS), default=list(CELLS), help="cells to time"
    )
    parser.add_argument("--best-isa", action="store_true", help="only the best instruction set")
    args = parser.parse_args(argv)
    native = kernels.native()
    if native is None:
        sys.exit(f"compiled kernels unavailable: {kernels.reason()}")
    best, isas = native.isa()
    default_threads = kernels.get_num_threads()
    print(f"float32 forward + backward of the recurrence; median of {ROUNDS} x {args.repeats}")
    print("cell           T    B    H  isa       threads  f32 err  compiled ms  numpy ms  ratio")
    for cell_name in args.cells:
        cell, compiled = CELLS[cell_name]
        for T, B, H in QUICK_SIZES if args.quick else SIZES:
            data = problem(cell, T, B, H)
            reference = functools.partial(run, cell.recurrence, *data)
            ours = functools.partial(run, compiled, *data)
            for name in isas[:1] if args.best_isa else isas:
                native.isa(name)
                for threads in sorted({1, default_threads}):
                    kernels.set_num_threads(threads)
                    err = check(cell, compiled, *data)
                    t_ours, t_ref = median_times([ours, reference], args.repeats)
                    print(
                        f"{cell_name:10s} {T:4d} {B:4d} {H:4d}  {name:8s}  {threads:7d}  "
                        f"{err:7.0e}  {1e3 * t_ours:11.2f}  {1e3 * t_ref:8.2f}  "
                        f"{t_ours / t_ref:5.2f}",
                        flush=True,
                    )
    native.isa(best)
    kernels.set_num_threads(None)


if __name__ == "__main__":
    main()
