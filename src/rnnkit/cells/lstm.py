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

from rnnkit.cells.base import StepCell, StepEquations, sigmoid


class LSTMGates(NamedTuple):
    """Where each gate sits in the fused 4H axis."""

    i: slice
    f: slice
    g: slice
    o: slice

    @classmethod
    def of(cls, H: int) -> LSTMGates:
        return cls(slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, 4 * H))


class LSTMPrepared(NamedTuple):
    W_hhT: np.ndarray  # (H, 4H)
    W_hh: np.ndarray  # (4H, H)
    gates: LSTMGates


def lstm_step_forward(xg_t, prev, h_in, P: LSTMPrepared, out_states, out_saved) -> None:
    """Gates, then c~ = f * c_prev + i * g and h~ = o * tanh(c~); saves the activated gates
    (B, 4H) and tanh(c~) (B, H)."""
    s = P.gates
    a, tanh_c = out_saved
    np.matmul(h_in, P.W_hhT, out=a)
    a += xg_t
    i_f = slice(s.i.start, s.f.stop)
    sigmoid(a[:, i_f], out=a[:, i_f])  # i and f together
    np.tanh(a[:, s.g], out=a[:, s.g])
    sigmoid(a[:, s.o], out=a[:, s.o])
    h, c = out_states
    np.multiply(a[:, s.f], prev[1], out=c)
    c += a[:, s.i] * a[:, s.g]
    np.tanh(c, out=tanh_c)
    np.multiply(a[:, s.o], tanh_c, out=h)


def lstm_step_backward(d_cand, prev, h_in, saved_t, P: LSTMPrepared):
    """The LSTM's step backward (equations in the module docstring)."""
    s = P.gates
    dh, dc = d_cand
    a, tanh_c = saved_t
    i, f, g, o = a[:, s.i], a[:, s.f], a[:, s.g], a[:, s.o]
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # (B, H)
    da = np.empty_like(a)  # (B, 4H)
    np.multiply(dc * g, i * (1.0 - i), out=da[:, s.i])
    np.multiply(dc * prev[1], f * (1.0 - f), out=da[:, s.f])
    np.multiply(dc * i, 1.0 - g * g, out=da[:, s.g])
    np.multiply(dh * tanh_c, o * (1.0 - o), out=da[:, s.o])
    return da, None, da @ P.W_hh, (None, dc * f)


#: The LSTM's step equations; they save the activated gates (4H) and tanh(c) (H).
EQUATIONS = StepEquations(lstm_step_forward, lstm_step_backward, saved=(4, 1))


class LSTMCell(StepCell):
    r"""LSTM cell: gates i, f, g, o, cell state c and hidden state h, as in PyTorch.

    The equations of the forward and backward passes are in the docstring of this module,
    :mod:`rnnkit.cells.lstm`. The layer that stacks this cell is :class:`rnnkit.LSTM`. Its state
    is the pair ``(h, c)``.

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

    name = "lstm"
    kernel_name = "lstm"
    num_gates = 4
    state_names = ("h", "c")
    equations = EQUATIONS

    def prepare(self, params) -> LSTMPrepared:
        H = params.W_hh.shape[1]
        return LSTMPrepared(params.W_hh.T, params.W_hh, LSTMGates.of(H))
