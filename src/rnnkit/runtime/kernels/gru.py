"""The GRU's recurrence, compiled, both reset forms: :data:`RECURRENCE`, a
:class:`~rnnkit.cells.Recurrence`.

Same arguments, results and layouts as the NumPy reference loops run with the GRU's steps
(:mod:`rnnkit.cells.loop`, :mod:`rnnkit.cells.gru`); the form is that of the prepared
parameters (:class:`~rnnkit.cells.gru.GRUAfterPrepared` or
:class:`~rnnkit.cells.gru.GRUBeforePrepared`). The state h is (T, B, H); saved: the activated
gates (T, B, 3H) in the order r, z, n, and for reset "after" also W_hn h_prev + b_hn (T, B, H).
Backward returns (da (T, B, 3H), dgh, (dh0,)) with dgh the gradient of the recurrent product
(T, B, 3H) for reset "after" and None for reset "before". The loops themselves are C
(``_native.c``, ``gru_loops.h``); this module checks and lays out the arrays (the large ones
recycled by :mod:`rnnkit.runtime.workspace`).

Falls back to the NumPy loops (silently: the result is the same) for what the kernel does not
cover (see :func:`rnnkit.runtime.kernels.covers`): regularisation inside the recurrence (recurrent
dropout, zoneout), dtypes other than float32 and float64, and empty shapes (T, B or H zero).

Shapes: T = time steps, B = batch, H = hidden size, G = 3H.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.cells import loop
from rnnkit.cells.base import Recurrence, Step
from rnnkit.cells.gru import STEPS, GRUAfterPrepared, GRUBeforePrepared
from rnnkit.runtime import kernels, workspace

GRUPrepared = GRUAfterPrepared | GRUBeforePrepared


def _step(P: GRUPrepared) -> Step:
    return STEPS["after" if isinstance(P, GRUAfterPrepared) else "before"]


def _w_hh(P: GRUPrepared, dt: np.dtype) -> np.ndarray:
    """W_hh (3H, H) in dtype, C-contiguous: reset "before" holds it in two parts."""
    if isinstance(P, GRUAfterPrepared):
        return np.ascontiguousarray(P.W_hh, dtype=dt)
    return np.concatenate([P.W_rz, P.W_n]).astype(dt, copy=False)


def forward(
    xg: np.ndarray,
    state0: tuple[np.ndarray, ...],
    P: GRUPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The forward time loop; see :class:`~rnnkit.cells.Recurrence`."""
    T, B, G = xg.shape
    H = G // 3
    if not kernels.covers(xg.dtype, (T, B, H), reg):
        return loop.forward(_step(P), xg, state0, P, mask, reg)
    dt = xg.dtype
    hs = workspace.empty((T, B, H), dt)
    gates = workspace.empty((T, B, G), dt)
    inputs = (
        np.ascontiguousarray(xg),
        np.ascontiguousarray(state0[0], dtype=dt),  # (B, H)
        _w_hh(P, dt),  # (3H, H)
    )
    m, threads = kernels.mask2d(mask, T, B), kernels.threads_for(B, T * B * G * H)
    if isinstance(P, GRUBeforePrepared):
        kernels.native().gru_before_forward(*inputs, m, hs, gates, threads)
        return (hs,), (gates,)
    b_hh = np.zeros(G, dtype=dt) if P.b_hh is None else np.ascontiguousarray(P.b_hh, dtype=dt)
    hn = workspace.empty((T, B, H), dt)
    kernels.native().gru_after_forward(*inputs, b_hh, m, hs, gates, hn, threads)
    return (hs,), (gates, hn)


def backward(
    dhs: np.ndarray,
    dstate_T: tuple[np.ndarray, ...],
    states: tuple[np.ndarray, ...],
    state0: tuple[np.ndarray, ...],
    saved: tuple[np.ndarray, ...],
    P: GRUPrepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, ...]]:
    """The backward time loop (BPTT); see :class:`~rnnkit.cells.Recurrence`."""
    T, B, H = dhs.shape
    gates = saved[0]
    if not kernels.covers(gates.dtype, (T, B, H), reg):
        return loop.backward(_step(P), dhs, dstate_T, states, state0, saved, P, mask, reg)
    dt, G = gates.dtype, 3 * H
    da = workspace.empty((T, B, G), dt)
    dh0 = np.empty((B, H), dtype=dt)
    inputs = (
        np.ascontiguousarray(dhs, dtype=dt),
        np.ascontiguousarray(dstate_T[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(states[0], dtype=dt),  # h after every step (T, B, H)
        np.ascontiguousarray(state0[0], dtype=dt),  # (B, H)
        np.ascontiguousarray(gates),
    )
    m, threads = kernels.mask2d(mask, T, B), kernels.threads_for(B, T * B * G * H)
    if isinstance(P, GRUBeforePrepared):
        kernels.native().gru_before_backward(*inputs, _w_hh(P, dt), m, da, dh0, threads)
        return da, None, (dh0,)
    dgh = workspace.empty((T, B, G), dt)
    hn = np.ascontiguousarray(saved[1], dtype=dt)
    kernels.native().gru_after_backward(*inputs, hn, _w_hh(P, dt), m, da, dgh, dh0, threads)
    return da, dgh, (dh0,)


#: The compiled GRU recurrence, both reset forms.
RECURRENCE = Recurrence(forward, backward, "compiled")
