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
mode blends the states), cells whose loops the extension does not have (the cell codes are the
positions of their :attr:`~rnnkit.cells.Cell.kernel` names in ``_native.CELLS``), or a layer
that runs the NumPy loops (see :func:`rnnkit.runtime.kernels.time_loop`).
"""

from __future__ import annotations

from typing import Any

from rnnkit.runtime.kernels import extension

#: The most stacked layers a plan runs (the extension holds 4 parameter buffers per layer).
MAX_LAYERS = 4


def cell_code(cell: Any) -> int | None:
    """The extension's code of a cell (the position of its kernel name in ``_native.CELLS``), or
    None for a cell it does not know."""
    module = extension.native()
    kernel = getattr(cell, "kernel", None)
    if module is None or kernel not in module.CELLS:
        return None
    return module.CELLS.index(kernel)


def plan_for(layer: Any) -> Any:
    """A ``StepPlan`` over ``layer``'s parameters (a :class:`~rnnkit.nn.Recurrent`), or None
    when the layer takes the reference path (see the module docstring)."""
    code = cell_code(layer.cell)
    if (
        code is None
        or layer.time_loop.name != "compiled"
        or layer.bidirectional
        or layer.num_layers > MAX_LAYERS
        or any(layer.zoneout)
    ):
        return None
    weights = tuple(  # W_ih, W_hh, b_ih, b_hh of each layer
        w for n in range(layer.num_layers) for w in layer.cell_params(n, 0)[:4]
    )
    return extension.native().StepPlan(code, weights)
