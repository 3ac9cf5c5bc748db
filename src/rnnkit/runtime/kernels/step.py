"""One compiled time step of a recurrent layer, for streaming inference: :func:`plan_for`.

A plan is the extension's ``StepPlan`` (``step_plan.h``, ``step_loops.h``): it borrows the
layer's live parameter arrays once (an optimiser's in-place updates and ``load_state_dict``
reach it; the arrays are never replaced, see :class:`rnnkit.nn.Recurrent`), and each call of
``plan.step(x, h_prev, c_prev, h, c)`` runs every layer for one step, in evaluation mode, into
the output arrays ``h`` and ``c`` that the caller allocates. The equations are those of the
cell modules; the reference is the layer's own :meth:`~rnnkit.nn.Recurrent.forward` over a
sequence of one step.

No plan (None: the layer takes the reference path) for what it does not cover: bidirectional
layers (which cannot stream), more than :data:`MAX_LAYERS` layers, zoneout (whose evaluation
mode blends the states), cells other than rnnkit's RNN, LSTM and GRU, or when the compiled
kernels are not in use (see :func:`rnnkit.runtime.kernels.use_compiled`).
"""

from __future__ import annotations

from typing import Any

from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import RNNCell
from rnnkit.runtime import kernels

#: The most stacked layers a plan runs (the extension holds 4 parameter buffers per layer).
MAX_LAYERS = 4

#: The extension's cell codes.
RNN_TANH, RNN_RELU, LSTM, GRU_AFTER, GRU_BEFORE = range(5)

PARAM_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def cell_code(cell: Any) -> int | None:
    """The extension's code of a cell, or None for a cell it does not know."""
    if type(cell) is LSTMCell:
        return LSTM
    if type(cell) is GRUCell:
        return GRU_AFTER if cell.reset == "after" else GRU_BEFORE
    if type(cell) is RNNCell:
        return RNN_TANH if cell.nonlinearity == "tanh" else RNN_RELU
    return None


def plan_for(layer: Any) -> Any:
    """A ``StepPlan`` over ``layer``'s parameters (a :class:`~rnnkit.nn.Recurrent`), or None
    when the layer takes the reference path (see the module docstring)."""
    code = cell_code(layer.cell)
    if (
        code is None
        or layer.bidirectional
        or layer.num_layers > MAX_LAYERS
        or any(layer.zoneout)
        or not kernels.use_compiled()
    ):
        return None
    weights = tuple(
        layer._params.get(layer._name(kind, n, 0))
        for n in range(layer.num_layers)
        for kind in PARAM_KINDS
    )
    return kernels.native().StepPlan(code, weights)
