r"""The long short-term memory cell (Hochreiter & Schmidhuber 1997, with the forget gate of
Gers et al. 2000), exactly as PyTorch writes it, gates fused in the order i, f, g, o.

Forward, for t = 1 .. T:

.. math::

    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    h_t &= o_t \odot \tanh(c_t)

Backward (BPTT). :math:`\delta h_t` and :math:`\delta c_t` are the total gradients reaching
:math:`h_t` and :math:`c_t`; :math:`\delta h_T`, :math:`\delta c_T` are dL/d(final state), and
``dhs[t]`` (for a layer dL/dy_t) is added to :math:`\delta h_t` at every step. Writing
:math:`\delta a^{(k)}_t` for the gradient of gate k's pre-activation, for t = T .. 1:

.. math::

    \delta o_t &= \delta h_t \odot \tanh(c_t), \qquad
    \delta c_t \mathrel{+}= \delta h_t \odot o_t \odot (1 - \tanh^2(c_t)) \\
    \delta a^{(i)}_t &= \delta c_t \odot g_t \odot i_t (1 - i_t), \qquad
    \delta a^{(f)}_t = \delta c_t \odot c_{t-1} \odot f_t (1 - f_t) \\
    \delta a^{(g)}_t &= \delta c_t \odot i_t \odot (1 - g_t^2), \qquad
    \delta a^{(o)}_t = \delta o_t \odot o_t (1 - o_t) \\
    \delta c_{t-1} &= \delta c_t \odot f_t, \qquad
    \delta h_{t-1} = \mathrm{dhs}_{t-1} + W_{hh}^\top \delta a_t

where :math:`\delta a_t = [\delta a^{(i)}_t; \delta a^{(f)}_t; \delta a^{(g)}_t; \delta a^{(o)}_t]`
(4H). After the loop, as for every cell: :math:`\partial L/\partial x_t = W_{ih}^\top \delta a_t`,
:math:`\partial L/\partial W_{ih} = \sum_t \delta a_t x_t^\top`,
:math:`\partial L/\partial W_{hh} = \sum_t \delta a_t h_{t-1}^\top`,
:math:`\partial L/\partial b_{ih} = \partial L/\partial b_{hh} = \sum_t \delta a_t`.

Shapes: T = time steps, B = batch, D = input size, H = hidden size.
Parameters (PyTorch layout, rows in gate order i, f, g, o): W_ih (4H, D), W_hh (4H, H),
b_ih (4H,), b_hh (4H,).
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
    sigmoid,
)


class LSTMGates(NamedTuple):
    """Where each gate sits in the fused 4H axis."""

    i: slice
    f: slice
    g: slice
    o: slice

    @classmethod
    def of(cls, H: int) -> LSTMGates:
        return cls(slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, 4 * H))


class LSTMCache(NamedTuple):
    """What the backward pass of :class:`LSTMCell` needs. tanh(c_t) is recomputed, not stored."""

    x: np.ndarray  # (T, B, D) inputs
    h0: np.ndarray  # (B, H) initial hidden state
    c0: np.ndarray  # (B, H) initial cell state
    hs: np.ndarray  # (T, B, H) hidden state after each step
    cs: np.ndarray  # (T, B, H) cell state after each step
    gates: np.ndarray  # (T, B, 4H) activated gates i, f, g, o
    params: CellParams
    mask: np.ndarray | None  # (T, B, 1) valid steps, None when all are valid


def lstm_recurrence_forward(
    xg: np.ndarray, h0: np.ndarray, c0: np.ndarray, W_hh: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recurrence of the LSTM.

    Args:
        xg: projected inputs with both biases folded in, x_t W_ih^T + b_ih + b_hh, (T, B, 4H).
        h0, c0: initial states (B, H).
        W_hh: recurrent weights (4H, H).
        mask: (T, B, 1) boolean or None; False carries both states through the step.

    Returns:
        ``(hs, cs, gates)``: hidden and cell states after each step (T, B, H) and the activated
        gates i, f, g, o (T, B, 4H).
    """
    T, B, G = xg.shape
    H = G // 4
    s = LSTMGates.of(H)
    hs = np.empty((T, B, H), dtype=xg.dtype)
    cs = np.empty((T, B, H), dtype=xg.dtype)
    gates = np.empty_like(xg)  # (T, B, 4H)
    W_hhT = W_hh.T
    h_prev, c_prev = h0, c0
    for t in range(T):
        a = gates[t]  # (B, 4H)
        np.matmul(h_prev, W_hhT, out=a)
        a += xg[t]
        sigmoid(a[:, s.i.start : s.f.stop], out=a[:, s.i.start : s.f.stop])  # i and f together
        np.tanh(a[:, s.g], out=a[:, s.g])
        sigmoid(a[:, s.o], out=a[:, s.o])
        c, h = cs[t], hs[t]
        np.multiply(a[:, s.f], c_prev, out=c)
        c += a[:, s.i] * a[:, s.g]
        np.tanh(c, out=h)
        h *= a[:, s.o]
        if mask is not None:
            padded = ~mask[t]
            np.copyto(c, c_prev, where=padded)
            np.copyto(h, h_prev, where=padded)
        h_prev, c_prev = h, c
    return hs, cs, gates


def lstm_recurrence_backward(
    dhs: np.ndarray,
    dh_T: np.ndarray,
    dc_T: np.ndarray,
    c0: np.ndarray,
    cs: np.ndarray,
    gates: np.ndarray,
    W_hh: np.ndarray,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BPTT through :func:`lstm_recurrence_forward`.

    Args:
        dhs: gradient from outside the recurrence at each step's hidden state, (T, B, H).
        dh_T, dc_T: gradients at the final hidden and cell state, (B, H).
        c0: initial cell state (B, H).
        cs, gates: as returned by the forward recurrence.
        W_hh: recurrent weights (4H, H).
        mask: as in the forward pass.

    Returns:
        ``(da, dh0, dc0)``: dL/d(gate pre-activations) (T, B, 4H), zero at masked steps, and the
        gradients at the initial states (B, H).
    """
    T, _, H = cs.shape
    s = LSTMGates.of(H)
    da_all = np.empty_like(gates)  # (T, B, 4H)
    dh_next, dc_next = dh_T, dc_T
    for t in range(T - 1, -1, -1):
        g = gates[t]
        i, f, gg, o = g[:, s.i], g[:, s.f], g[:, s.g], g[:, s.o]
        c_prev = cs[t - 1] if t > 0 else c0
        tanh_c = np.tanh(cs[t])  # recomputed rather than stored
        dh = dh_next + dhs[t]  # (B, H)
        dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)
        da = da_all[t]
        np.multiply(dc * gg, i * (1.0 - i), out=da[:, s.i])
        np.multiply(dc * c_prev, f * (1.0 - f), out=da[:, s.f])
        np.multiply(dc * i, 1.0 - gg * gg, out=da[:, s.g])
        np.multiply(dh * tanh_c, o * (1.0 - o), out=da[:, s.o])
        dc_prev = dc * f
        dh_prev = da @ W_hh  # (B, H)
        if mask is not None:
            m = mask[t]
            da *= m
            dh_prev = np.where(m, dh_prev, dh)
            dc_prev = np.where(m, dc_prev, dc_next)
        dh_next, dc_next = dh_prev, dc_prev
    return da_all, dh_next, dc_next


#: The NumPy reference loops of the LSTM.
RECURRENCE = Recurrence(lstm_recurrence_forward, lstm_recurrence_backward)


class LSTMCell(Cell):
    r"""LSTM cell: gates i, f, g, o, cell state c and hidden state h, as in PyTorch.

    The equations of the forward and backward passes are in the docstring of this module,
    :mod:`rnnkit.cells.lstm`. The layer that stacks this cell is :class:`rnnkit.LSTM`. Its state
    is the pair ``(h, c)``.

    Args:
        recurrence: the time loops, by default :data:`RECURRENCE` (NumPy); see
            :class:`~rnnkit.cells.base.Recurrence`.

    Example:
        >>> import numpy as np
        >>> from rnnkit.cells import CellParams, LSTMCell
        >>> rng = np.random.default_rng(0)
        >>> p = CellParams(*(rng.normal(size=s) for s in [(12, 2), (12, 3), (12,), (12,)]))
        >>> x, zeros = rng.normal(size=(5, 4, 2)), np.zeros((4, 3))
        >>> hs, (h_T, c_T), cache = LSTMCell().forward(x, (zeros, zeros), p)
        >>> dx, (dh0, dc0), grads = LSTMCell().backward(np.ones_like(hs), (h_T, c_T), cache)
        >>> dx.shape, grads.dW_hh.shape
        ((5, 4, 2), (12, 3))
    """

    num_gates = 4
    state_names = ("h", "c")

    def __init__(self, recurrence: Recurrence | None = None) -> None:
        self.recurrence = RECURRENCE if recurrence is None else recurrence

    def forward(self, x, state0, params, mask=None):
        h0, c0 = state0
        b = None if params.b_ih is None else params.b_ih + params.b_hh
        xg = project(x, params.W_ih, b)  # (T, B, 4H)
        hs, cs, gates = self.recurrence.forward(xg, h0, c0, params.W_hh, mask)
        cache = LSTMCache(x, h0, c0, hs, cs, gates, params, mask)
        return hs, (hs[-1], cs[-1]), cache

    def backward(self, dhs, dstate_T, cache):
        dh_T, dc_T = dstate_T
        p = cache.params
        da, dh0, dc0 = self.recurrence.backward(
            dhs, dh_T, dc_T, cache.c0, cache.cs, cache.gates, p.W_hh, cache.mask
        )
        dx, dW_ih, db_ih = input_grads(da, cache.x, p.W_ih, p.b_ih is not None)
        dW_hh = outer_sum(da, previous_states(cache.h0, cache.hs))  # (4H, H)
        db_hh = None if db_ih is None else db_ih.copy()
        return dx, (dh0, dc0), CellGrads(dW_ih, dW_hh, db_ih, db_hh)
