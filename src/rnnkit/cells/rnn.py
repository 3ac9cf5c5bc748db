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

from rnnkit import _checks
from rnnkit.cells.base import CellParams, StepCell, StepEquations

NONLINEARITIES = ("tanh", "relu")


class RNNPrepared(NamedTuple):
    W_hhT: np.ndarray  # (H, H)
    W_hh: np.ndarray  # (H, H)
    tanh: bool  # the nonlinearity: tanh (True) or ReLU (False)


def rnn_step_forward(xg_t, prev, h_in, P: RNNPrepared, out_states, out_saved) -> None:
    """h~ = phi(xg_t + h_in W_hh^T); saves h~ (the derivative of phi is a function of it)."""
    h = out_saved[0]  # (B, H)
    np.matmul(h_in, P.W_hhT, out=h)
    h += xg_t
    if P.tanh:
        np.tanh(h, out=h)
    else:
        np.maximum(h, 0.0, out=h)
    out_states[0][...] = h


def rnn_step_backward(d_cand, prev, h_in, saved_t, P: RNNPrepared):
    """da = dh~ * phi'(a), phi' = 1 - h~^2 (tanh) or [h~ > 0] (ReLU); dh_in = da W_hh."""
    (dh,) = d_cand
    (h,) = saved_t
    da = dh * (1.0 - h * h) if P.tanh else dh * (h > 0.0)  # (B, H)
    return da, None, da @ P.W_hh, (None,)


#: The vanilla RNN's step equations; they save each step's update h~ (H).
EQUATIONS = StepEquations(rnn_step_forward, rnn_step_backward, saved=(1,))


class RNNCell(StepCell):
    r"""Vanilla RNN cell, :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    The equations of the forward and backward passes are in the docstring of this module,
    :mod:`rnnkit.cells.rnn`. The layer that stacks this cell is :class:`rnnkit.RNN`.

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.

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

    name = "rnn"
    num_gates = 1
    state_names = ("h",)
    equations = EQUATIONS

    def __init__(self, nonlinearity: str = "tanh") -> None:
        self.nonlinearity = _checks.choice("nonlinearity", nonlinearity, NONLINEARITIES)

    @property
    def kernel(self) -> str:
        return f"rnn_{self.nonlinearity}"

    def prepare(self, params: CellParams) -> RNNPrepared:
        return RNNPrepared(params.W_hh.T, params.W_hh, self.nonlinearity == "tanh")
