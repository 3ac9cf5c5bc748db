r"""The vanilla (Elman) recurrent cell with a tanh or ReLU nonlinearity.

Forward, for t = 1 .. T:

.. math::

    a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \qquad h_t = \phi(a_t)

with :math:`\phi = \tanh` or :math:`\phi = \max(0, \cdot)`.

Backward (BPTT). Write :math:`\delta h_t` for the total gradient reaching :math:`h_t`: the
gradient from outside the recurrence (``dhs[t]``, for a layer dL/dy_t) plus the one coming back
from step t + 1. With :math:`\delta h_T` = dL/d(final state), for t = T .. 1:

.. math::

    \delta a_t &= \delta h_t \odot \phi'(a_t), \qquad
        \phi'(a_t) = 1 - h_t^2 \;(\tanh), \quad \mathbb{1}[h_t > 0] \;(\mathrm{ReLU}) \\
    \delta h_{t-1} &= \mathrm{dhs}_{t-1} + W_{hh}^\top \delta a_t

and after the loop

.. math::

    \frac{\partial L}{\partial x_t} = W_{ih}^\top \delta a_t, \quad
    \frac{\partial L}{\partial W_{ih}} = \sum_t \delta a_t x_t^\top, \quad
    \frac{\partial L}{\partial W_{hh}} = \sum_t \delta a_t h_{t-1}^\top, \quad
    \frac{\partial L}{\partial b_{ih}} = \frac{\partial L}{\partial b_{hh}} = \sum_t \delta a_t.

Shapes: T = time steps, B = batch, D = input size, H = hidden size.
Parameters (PyTorch layout): W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.cells.base import (
    Cell,
    CellGrads,
    CellParams,
    Recurrence,
    input_grads,
    outer_sum,
    previous_states,
    project,
)

NONLINEARITIES = ("tanh", "relu")


class RNNCache(NamedTuple):
    """What the backward pass of :class:`RNNCell` needs; nothing is recomputed."""

    x: np.ndarray  # (T, B, D) inputs
    h0: np.ndarray  # (B, H) initial state
    hs: np.ndarray  # (T, B, H) state after each step
    params: CellParams
    mask: np.ndarray | None  # (T, B, 1) valid steps, None when all are valid


def rnn_recurrence_forward(
    xg: np.ndarray, h0: np.ndarray, W_hh: np.ndarray, mask: np.ndarray | None, nonlinearity: str
) -> np.ndarray:
    """The recurrence of the vanilla RNN: h_t = phi(xg_t + h_{t-1} W_hh^T).

    Args:
        xg: the projected inputs with both biases folded in, x_t W_ih^T + b_ih + b_hh, (T, B, H).
        h0: initial state (B, H).
        W_hh: recurrent weights (H, H).
        mask: (T, B, 1) boolean or None; False carries the state through the step.
        nonlinearity: "tanh" or "relu".

    Returns:
        hs (T, B, H): the state after each step.
    """
    T = xg.shape[0]
    hs = np.empty_like(xg)  # (T, B, H)
    W_hhT = W_hh.T
    h_prev = h0
    for t in range(T):
        h = hs[t]
        np.matmul(h_prev, W_hhT, out=h)
        h += xg[t]
        if nonlinearity == "tanh":
            np.tanh(h, out=h)
        else:
            np.maximum(h, 0.0, out=h)
        if mask is not None:
            np.copyto(h, h_prev, where=~mask[t])
        h_prev = h
    return hs


def rnn_recurrence_backward(
    dhs: np.ndarray,
    dh_T: np.ndarray,
    hs: np.ndarray,
    W_hh: np.ndarray,
    mask: np.ndarray | None,
    nonlinearity: str,
) -> tuple[np.ndarray, np.ndarray]:
    """BPTT through :func:`rnn_recurrence_forward`.

    Args:
        dhs: gradient from outside the recurrence at each step's state, (T, B, H).
        dh_T: gradient at the final state, (B, H).
        hs: the states returned by the forward recurrence, (T, B, H).
        W_hh: recurrent weights (H, H).
        mask: as in the forward pass.
        nonlinearity: "tanh" or "relu".

    Returns:
        ``(da, dh0)``: dL/da_t for every step (T, B, H), zero at masked steps, and dL/dh0 (B, H).
    """
    T = hs.shape[0]
    da = np.empty_like(hs)  # (T, B, H)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        dh = dh_next + dhs[t]  # (B, H)
        if nonlinearity == "tanh":
            np.multiply(dh, 1.0 - hs[t] * hs[t], out=da[t])
        else:
            np.multiply(dh, hs[t] > 0.0, out=da[t])
        if mask is not None:
            da[t] *= mask[t]
            dh_next = np.where(mask[t], da[t] @ W_hh, dh)
        else:
            dh_next = da[t] @ W_hh
    return da, dh_next


#: The NumPy reference loops of the vanilla RNN.
RECURRENCE = Recurrence(rnn_recurrence_forward, rnn_recurrence_backward)


class RNNCell(Cell):
    r"""Vanilla RNN cell, :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    The equations of the forward and backward passes are in the docstring of this module,
    :mod:`rnnkit.cells.rnn`. The layer that stacks this cell is :class:`rnnkit.RNN`.

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        recurrence: the time loops, by default :data:`RECURRENCE` (NumPy); see
            :class:`~rnnkit.cells.base.Recurrence`.

    Example:
        >>> import numpy as np
        >>> from rnnkit.cells import CellParams, RNNCell
        >>> rng = np.random.default_rng(0)
        >>> p = CellParams(rng.normal(size=(3, 2)), rng.normal(size=(3, 3)), None, None)
        >>> hs, (h_T,), cache = RNNCell("tanh").forward(rng.normal(size=(5, 4, 2)),
        ...                                           (np.zeros((4, 3)),), p)
        >>> hs.shape, bool(np.all(hs[-1] == h_T))
        ((5, 4, 3), True)
    """

    num_gates = 1
    state_names = ("h",)

    def __init__(self, nonlinearity: str = "tanh", recurrence: Recurrence | None = None) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.recurrence = RECURRENCE if recurrence is None else recurrence

    def forward(self, x, state0, params, mask=None):
        (h0,) = state0
        b = None if params.b_ih is None else params.b_ih + params.b_hh
        xg = project(x, params.W_ih, b)  # (T, B, H)
        hs = self.recurrence.forward(xg, h0, params.W_hh, mask, self.nonlinearity)
        return hs, (hs[-1],), RNNCache(x, h0, hs, params, mask)

    def backward(self, dhs, dstate_T, cache):
        (dh_T,) = dstate_T
        p = cache.params
        da, dh0 = self.recurrence.backward(
            dhs, dh_T, cache.hs, p.W_hh, cache.mask, self.nonlinearity
        )
        dx, dW_ih, db_ih = input_grads(da, cache.x, p.W_ih, p.b_ih is not None)
        dW_hh = outer_sum(da, previous_states(cache.h0, cache.hs))  # (H, H)
        db_hh = None if db_ih is None else db_ih.copy()
        return dx, (dh0,), CellGrads(dW_ih, dW_hh, db_ih, db_hh)

    def __repr__(self) -> str:
        return f"RNNCell(nonlinearity={self.nonlinearity!r})"
