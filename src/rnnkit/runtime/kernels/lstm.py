"""The LSTM's recurrence, compiled: :data:`RECURRENCE`, a :class:`~rnnkit.cells.Recurrence`.

Same arguments, results and layouts as the NumPy reference loops run with the LSTM's step
(:mod:`rnnkit.cells.loop`, :mod:`rnnkit.cells.lstm`): states (h, c) each (T, B, H), saved
(activated gates (T, B, 4H) in the order i, f, g, o; tanh(c) (T, B, H)); backward returns
(da (T, B, 4H), None, (dh0, dc0)). The loops themselves are C (``_native.c``,
``lstm_loops.h``); this module checks and lays out the arrays (the large ones
recycled by :mod:`rnnkit.runtime.workspace`).

Falls back to the NumPy loops (silently: the result is the same) for what the kernel does not
cover: regularisation inside the recurrence (recurrent dropout, zoneout), dtypes other than
float32 and float64, and empty shapes (T, B or H zero).

Shapes: T = time steps, B = batch, H = hidden size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.cells import loop
from rnnkit.cells.base import Recurrence
from rnnkit.cells.lstm import STEP, LSTMPrepared
from rnnkit.runtime import kernels, workspace


def forward(
    xg: np.ndarray,
    state0: tuple[np.ndarray, ...],
    P: LSTMPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The forward time loop; see :class:`~rnnkit.cells.Recurrence`."""
    T, B, G = xg.shape
    H = G // 4
    if not kernels.covers(xg.dtype, (T, B, H), reg):
        return loop.forward(STEP, xg, state0, P, mask, reg)
    dt = xg.dtype
    hs, cs, tanh_c = (workspace.empty((T, B, H), dt) for _ in range(3))
    gates = workspace.empty((T, B, G), dt)
    kernels.native().lstm_forward(
        np.ascontiguousarray(xg),
        np.ascontiguousarray(state0[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(state0[1], dtype=dt),  # (B, H)
        np.ascontiguousarray(P.W_hh, dtype=dt),  # (4H, H)
        kernels.mask2d(mask, T, B),
        hs,
        cs,
        gates,
        tanh_c,
        kernels.threads_for(B, T * B * G * H),
    )
    return (hs, cs), (gates, tanh_c)


def backward(
    dhs: np.ndarray,
    dstate_T: tuple[np.ndarray, ...],
    states: tuple[np.ndarray, ...],
    state0: tuple[np.ndarray, ...],
    saved: tuple[np.ndarray, ...],
    P: LSTMPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[np.ndarray, None, tuple[np.ndarray, ...]]:
    """The backward time loop (BPTT); see :class:`~rnnkit.cells.Recurrence`."""
    T, B, H = dhs.shape
    gates, tanh_c = saved
    if not kernels.covers(gates.dtype, (T, B, H), reg):
        return loop.backward(STEP, dhs, dstate_T, states, state0, saved, P, mask, reg)
    dt = gates.dtype
    da = workspace.empty((T, B, 4 * H), dt)
    dh0, dc0 = np.empty((B, H), dtype=dt), np.empty((B, H), dtype=dt)
    kernels.native().lstm_backward(
        np.ascontiguousarray(dhs, dtype=dt),
        np.ascontiguousarray(dstate_T[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(dstate_T[1], dtype=dt),  # (B, H)
        np.ascontiguousarray(states[1], dtype=dt),  # c after every step (T, B, H)
        np.ascontiguousarray(state0[1], dtype=dt),  # (B, H)
        np.ascontiguousarray(gates),
        np.ascontiguousarray(tanh_c),
        np.ascontiguousarray(P.W_hh, dtype=dt),
        kernels.mask2d(mask, T, B),
        da,
        dh0,
        dc0,
        kernels.threads_for(B, T * B * 4 * H * H),
    )
    return da, None, (dh0, dc0)


#: The compiled LSTM recurrence.
RECURRENCE = Recurrence(forward, backward, "compiled")
