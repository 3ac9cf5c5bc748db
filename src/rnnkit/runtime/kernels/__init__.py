"""Compiled time loops: the C extension ``rnnkit.runtime.kernels._native`` and the choice of path.

The extension holds the time loops of the cells (the loops of :mod:`rnnkit.cells.timeloop`) with
no Python between steps, for the LSTM, the GRU (both reset forms) and the vanilla RNN (tanh and
ReLU). The per-step matrix products run on a register-tiled micro-kernel over weights packed once
per sequence, and the gate nonlinearities and state updates follow each tile of them while it is
in cache. The loops are compiled for several instruction sets and the best the CPU has is chosen
at import (see :func:`isa`). :mod:`~rnnkit.runtime.kernels.loops` wraps every one of them as a
:class:`~rnnkit.cells.TimeLoop` (one generic wrapper, laid out from the extension's own table of
arguments), tested against the NumPy reference, which stays the specification; each falls back
to it for what it does not cover (see :func:`covers`).

:func:`time_loop` is the one place that chooses a cell's path; the layers call it when they are
made. It reads the environment variable ``RNNKIT_KERNELS``:

- unset or ``auto``: the compiled loops when the extension loads and has the cell's loops, else
  the NumPy loops (with a one-line :class:`RuntimeWarning`, once per process, when the extension
  does not load);
- ``compiled``: the compiled loops, or ``RuntimeError`` saying why the extension is unavailable
  (a cell whose loops the extension does not have, such as one of your own, runs the NumPy ones);
- ``numpy``: the NumPy reference loops.

Threads: the rows of a batch are independent, so the compiled loops can split the batch
into blocks that run the whole time loop each, on up to :func:`get_num_threads` threads, with no
synchronisation between steps (:func:`threads_for` decides how many for a call). Set the most
with ``RNNKIT_NUM_THREADS`` or :func:`set_num_threads`.

The extension is built by ``pip install`` when a C compiler is there (see ``setup.py``); the
build is optional, so the package installs without one and takes the NumPy path.
"""

from __future__ import annotations

from typing import Any

from rnnkit.runtime.kernels import extension, loops
from rnnkit.runtime.kernels.extension import (
    CHOICES,
    ENV,
    ENV_THREADS,
    MIN_ROWS_PER_THREAD,
    MIN_WORK_PER_THREAD,
    covers,
    get_num_threads,
    isa,
    mask2d,
    native,
    reason,
    set_num_threads,
    threads_for,
    use_compiled,
)

__all__ = [
    "CHOICES",
    "ENV",
    "ENV_THREADS",
    "MIN_ROWS_PER_THREAD",
    "MIN_WORK_PER_THREAD",
    "covers",
    "get_num_threads",
    "isa",
    "mask2d",
    "matrix_product",
    "named_loop",
    "native",
    "reason",
    "set_num_threads",
    "threads_for",
    "time_loop",
    "use_compiled",
]


def matrix_product() -> Any:
    """The matrix product of the layers around the recurrences (:class:`~rnnkit.nn.Linear`'s
    forward and backward): :func:`rnnkit.runtime.kernels.gemm.matmul` (threaded, on the
    extension's micro-kernel) unless ``RNNKIT_KERNELS=numpy`` or the extension does not load,
    else None (NumPy's ``@``, whose BLAS the ``rnnkit`` command keeps on one thread). Decided
    at each call, without the warnings of :func:`use_compiled` (the recurrent layers give
    them)."""
    if extension.products() is None:
        return None
    from rnnkit.runtime.kernels import gemm

    return gemm.matmul


def time_loop(cell: Any) -> Any:
    """The time loops a layer runs ``cell`` with: its compiled :class:`~rnnkit.cells.TimeLoop`
    when the compiled path is chosen (see the module docstring) and the extension has loops for
    the cell (``cell.kernel``), else the cell's NumPy reference loops; None for a cell that runs
    its sequences itself (one that is not a :class:`~rnnkit.cells.StepCell`)."""
    if not hasattr(cell, "reference_loop"):
        return None
    if getattr(cell, "kernel", None) is not None and use_compiled():
        compiled = loops.compiled_loop(cell)
        if compiled is not None:
            return compiled
    return cell.reference_loop()


def named_loop(cell: Any, name: str) -> Any:
    """The time loops called ``name`` for ``cell`` (``"compiled"`` or ``"numpy"``), as
    :func:`time_loop` would choose them: for a layer restored from a pickle, which stores the
    name, so that a pickle made where the extension runs loads where it does not."""
    return time_loop(cell) if name == "compiled" else cell.reference_loop()
