"""Time the compiled time loops (rnnkit.runtime.kernels) against the NumPy reference loops.

What it measures: the two time loops alone, forward then backward, as a layer's ``time_loop`` runs
them (the input projection and the parameter gradients around them are not included;
benchmarks/bench_layers.py times whole layers against PyTorch), for the LSTM, the GRU in both reset
forms and the tanh and ReLU RNN. Inputs are random pre-activations xg (T, B, G H), weights W_hh ~
N(0, 1/H), random biases (the reset-after GRU keeps b_hh in the loop), zero initial state, random
dhs; each implementation gets the parameters as it prepares them (``loop.prepare``; the reference:
``cell.prepare``), outside the timing. Each configuration is first checked: the compiled loops must
match the reference run in float64 to ``RTOL`` (float32 results, relative to each tensor's
magnitude). Then each implementation is timed in blocks of ``--repeats`` runs after a warm-up, the
blocks alternating over ``ROUNDS`` rounds, and the median is reported with ratio = compiled /
reference (< 1: the kernel is faster), for every instruction-set variant the CPU has (or the best
one, ``--best-isa``) and for 1 and the default number of threads.

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

from rnnkit.cells import CellParams, GRUCell, LSTMCell, RNNCell, StepCell, TimeLoop
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import loops

RTOL = 1e-5
ROUNDS = 2
#: (T, B, H): bench_layers.py's LSTM sizes, streaming-like batches of 1, and a large one.
SIZES = ((50, 32, 128), (100, 64, 256), (200, 16, 64), (100, 1, 128), (100, 1, 512))
SIZES += ((100, 128, 512),)
QUICK_SIZES = ((8, 4, 16),)

#: Cell name (the name of its compiled loops, ``cell.kernel``) -> the cell.
CELLS: dict[str, StepCell] = {
    "lstm": LSTMCell(),
    "gru_after": GRUCell("after"),
    "gru_before": GRUCell("before"),
    "rnn_tanh": RNNCell("tanh"),
    "rnn_relu": RNNCell("relu"),
}


def problem(cell: StepCell, T: int, B: int, H: int) -> tuple:
    """The recurrent parameters (a CellParams without W_ih), xg, state0 and dhs."""
    rng = np.random.default_rng(0)
    G = cell.num_gates * H
    W = (rng.standard_normal((G, H)) / np.sqrt(H)).astype(np.float32)
    b = (0.1 * rng.standard_normal(G)).astype(np.float32)
    params = CellParams(None, W, b, b)
    xg = rng.standard_normal((T, B, G)).astype(np.float32)
    state0 = tuple(np.zeros((B, H), np.float32) for _ in cell.state_names)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)
    return params, xg, state0, dhs


def prepared(cell: StepCell, impl: TimeLoop, params: CellParams) -> object:
    """The parameters as ``impl`` reads them (its own ``prepare``, else the cell's)."""
    return (cell.prepare if impl.prepare is None else impl.prepare)(params)


def run(impl: TimeLoop, P, xg, state0, dhs) -> tuple:
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


def check(cell: StepCell, compiled: TimeLoop, params: CellParams, xg, state0, dhs) -> float:
    """Largest relative error of the compiled loops against the reference run in float64."""
    ours = run(compiled, prepared(cell, compiled, params), xg, state0, dhs)
    reference = cell.reference_loop()
    ref = run(reference, *up((prepared(cell, reference, params), xg, state0, dhs)))
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
    print(f"float32 forward + backward of the time loops; median of {ROUNDS} x {args.repeats}")
    print("cell           T    B    H  isa       threads  f32 err  compiled ms  numpy ms  ratio")
    for cell_name in args.cells:
        cell = CELLS[cell_name]
        compiled, numpy_loops = loops.compiled_loop(cell), cell.reference_loop()
        if compiled is None:
            sys.exit(f"the extension has no compiled loops for {cell_name}")
        for T, B, H in QUICK_SIZES if args.quick else SIZES:
            params, *data = problem(cell, T, B, H)
            P_ours, P_ref = prepared(cell, compiled, params), prepared(cell, numpy_loops, params)
            reference = functools.partial(run, numpy_loops, P_ref, *data)
            ours = functools.partial(run, compiled, P_ours, *data)
            for name in isas[:1] if args.best_isa else isas:
                native.isa(name)
                for threads in sorted({1, default_threads}):
                    kernels.set_num_threads(threads)
                    err = check(cell, compiled, params, *data)
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
