"""The NumPy reference time loops, forward and backward, for any cell's step equations.

This is the only sequential code of the library's core and the reference the compiled loops of
:mod:`rnnkit.runtime.kernels` are tested against. It knows nothing of any particular cell: the
cell's :class:`~rnnkit.cells.base.StepEquations` compute one time step; the loop carries the states,
applies the length mask, recurrent dropout and zoneout (see :mod:`rnnkit.cells.base` for their
equations), and accumulates the gradients.

Shapes: T = time steps, B = batch, H = hidden size, G = gate pre-activations per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _zone_forward(new: np.ndarray, old: np.ndarray, u: np.ndarray) -> None:
    """new = u * new + (1 - u) * old in place: exact selection for a boolean (training) u."""
    if u.dtype == np.bool_:
        np.copyto(new, old, where=~u)
    else:
        new *= u
        new += (1.0 - u) * old


def forward(
    equations: Any,
    xg: np.ndarray,
    state0: tuple[np.ndarray, ...],
    prepared: Any,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Run a cell's step equations over every time step: the states after each step and what
    they saved.

    Args:
        equations: the cell's :class:`~rnnkit.cells.base.StepEquations`.
        xg: projected inputs (T, B, G).
        state0: initial states, each (B, H).
        prepared: the cell's prepared recurrent parameters, passed to the step.
        mask: (T, B, 1) boolean or None; False carries every state through the step.
        reg: a :class:`~rnnkit.cells.base.Regularisation` or None.

    Returns:
        ``(states, saved)``: each state after every step (T, B, H), and the step's saved values
        (T, B, n).
    """
    T, B, _ = xg.shape
    H = state0[0].shape[1]
    states = tuple(np.empty((T, B, H), dtype=xg.dtype) for _ in state0)
    saved = tuple(np.empty((T, B, n), dtype=xg.dtype) for n in equations.saved_sizes(H))
    h_drop = None if reg is None else reg.h_drop
    zone = None if reg is None else reg.zone
    prev = state0
    for t in range(T):
        new = tuple(s[t] for s in states)
        h_in = prev[0] if h_drop is None else prev[0] * h_drop
        equations.forward(xg[t], prev, h_in, prepared, new, tuple(s[t] for s in saved))
        if zone is not None:
            for out, old, u in zip(new, prev, zone):
                if u is not None:
                    _zone_forward(out, old, u[t])
        if mask is not None:
            padded = ~mask[t]
            for out, old in zip(new, prev):
                np.copyto(out, old, where=padded)
        prev = new
    return states, saved


def backward(
    equations: Any,
    dhs: np.ndarray,
    dstate_T: tuple[np.ndarray, ...],
    states: tuple[np.ndarray, ...],
    state0: tuple[np.ndarray, ...],
    saved: tuple[np.ndarray, ...],
    prepared: Any,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, ...]]:
    """BPTT through :func:`forward`.

    Args:
        equations: the cell's step equations.
        dhs: gradient from outside the recurrence at each step's hidden state (T, B, H).
        dstate_T: gradients at the final states, each (B, H).
        states, state0, saved, prepared, mask, reg: as in and from the forward pass.

    Returns:
        ``(da, dgh, dstate0)``: dL/d(gate pre-activations) (T, B, G), zero at masked steps;
        dL/d(recurrent products) (T, B, G), or None when the equations say it equals ``da``; and
        the gradients at the initial states.
    """
    T = dhs.shape[0]
    h_drop = None if reg is None else reg.h_drop
    zone = None if reg is None else reg.zone
    da_all = dgh_all = None
    d = list(dstate_T)  # dL/d(state after step t), running backwards
    for t in range(T - 1, -1, -1):
        prev = tuple(s[t - 1] for s in states) if t > 0 else state0
        d[0] = d[0] + dhs[t]
        d_cand = list(d)
        if zone is not None:
            d_cand = [dk if u is None else dk * u[t] for dk, u in zip(d_cand, zone)]
        if mask is not None:
            d_cand = [dk * mask[t] for dk in d_cand]
        h_in = prev[0] if h_drop is None else prev[0] * h_drop
        da, dgh, dh_in, d_prev = equations.backward(
            tuple(d_cand), prev, h_in, tuple(s[t] for s in saved), prepared
        )
        if da_all is None:
            da_all = np.empty((T, *da.shape), dtype=da.dtype)  # (T, B, G)
            dgh_all = None if dgh is None else np.empty_like(da_all)
        da_all[t] = da
        if dgh_all is not None:
            dgh_all[t] = dgh
        new = []
        for k, dk in enumerate(d):
            g = d_prev[k]
            if k == 0:
                through = dh_in if h_drop is None else dh_in * h_drop
                g = through if g is None else g + through
            if zone is not None and zone[k] is not None:
                u = zone[k][t]
                carried = dk * (~u if u.dtype == np.bool_ else 1.0 - u)
                g = carried if g is None else g + carried
            if g is None:
                g = np.zeros_like(dk)
            if mask is not None:
                g = np.where(mask[t], g, dk)  # a padded step passes the gradient straight on
            new.append(g)
        d = new
    return da_all, dgh_all, tuple(d)
