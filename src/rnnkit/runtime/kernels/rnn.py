"""The vanilla RNN's recurrence, compiled, tanh and ReLU: :data:`RECURRENCE`, a
:class:`~rnnkit.cells.Recurrence`.

Same arguments, results and layouts as the NumPy reference loops run with the RNN's step
(:mod:`rnnkit.cells.loop`, :mod:`rnnkit.cells.rnn`); the nonlinearity is that of the prepared
parameters (:class:`~rnnkit.cells.rnn.RNNPrepared`). The state h is (T, B, H); saved: each
step's update h~ = phi(a) (T, B, H), which differs from h only at masked steps; backward
returns (da (T, B, H), None, (dh0,)). The loops themselves are C (``_native.c``,
``rnn_loops.h``); this module checks and lays out the arrays (the large ones
recycled by :mod:`rnnkit.runtime.workspace`).

Falls back to the NumPy loops (silently: the result is the same) for what the kernel does not
cover (see :func:`rnnkit.runtime.kernels.covers`): regularisation inside the recurrence (recurrent
dropout, zoneout), dtypes other than float32 and float64, and empty shapes (T, B or H zero).

Shapes: T = time steps, B = batch, H = hidden size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.cells import loop
from rnnkit.cells.base import Recurrence
from rnnkit.cells.rnn import STEP, RNNPrepared
from rnnkit.runtime import kernels, workspace


def _name(P: RNNPrepared, direction: str) -> str:
    """The extension's function for P's nonlinearity."""
    return f"rnn_{'tanh' if P.tanh else 'relu'}_{direction}"


def forward(
    xg: np.ndarray,
    state0: tuple[np.ndarray, ...],
    P: RNNPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The forward time loop; see :class:`~rnnkit.cells.Recurrence`."""
    T, B, H = xg.shape
    if not kernels.covers(xg.dtype, (T, B, H), reg):
        return loop.forward(STEP, xg, state0, P, mask, reg)
    dt = xg.dtype
    hs, h_cand = workspace.empty((T, B, H), dt), workspace.empty((T, B, H), dt)
    getattr(kernels.native(), _name(P, "forward"))(
        np.ascontiguousarray(xg),
        np.ascontiguousarray(state0[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(P.W_hh, dtype=dt),  # (H, H)
        kernels.mask2d(mask, T, B),
        hs,
        h_cand,
        kernels.threads_for(B, T * B * H * H),
    )
    return (hs,), (h_cand,)


def backward(
    dhs: np.ndarray,
    dstate_T: tuple[np.ndarray, ...],
    states: tuple[np.ndarray, ...],
    state0: tuple[np.ndarray, ...],
    saved: tuple[np.ndarray, ...],
    P: RNNPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[np.ndarray, None, tuple[np.ndarray, ...]]:
    """The backward time loop (BPTT); see :class:`~rnnkit.cells.Recurrence`."""
    T, B, H = dhs.shape
    (h_cand,) = saved
    if not kernels.covers(h_cand.dtype, (T, B, H), reg):
        return loop.backward(STEP, dhs, dstate_T, states, state0, saved, P, mask, reg)
    dt = h_cand.dtype
    da, dh0 = workspace.empty((T, B, H), dt), np.empty((B, H), dtype=dt)
    getattr(kernels.native(), _name(P, "backward"))(
        np.ascontiguousarray(dhs, dtype=dt),
        np.ascontiguousarray(dstate_T[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(h_cand),
        np.ascontiguousarray(P.W_hh, dtype=dt),
        kernels.mask2d(mask, T, B),
        da,
        dh0,
        kernels.threads_for(B, T * B * H * H),
    )
    return da, None, (dh0,)


#: The compiled RNN recurrence, both nonlinearities.
RECURRENCE = Recurrence(forward, backward, "compiled")
