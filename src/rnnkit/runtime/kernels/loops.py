"""The compiled time loops of every cell, behind one generic wrapper: :func:`compiled_loop`.

The extension describes each of its loop functions in ``_native.LOOPS``: the name, dimensions
and role of every array it takes, in order (``"in"``, ``"out"``, ``"weights"`` or ``"mask"``;
dimensions as characters: ``T``, ``B``, ``H``, or a digit ``k`` for ``k H``). This module lays
out and allocates the arguments of every loop from that table, by name, with the same
conventions for every cell:

- forward ``<kernel>_forward``: inputs ``xg``, ``<state>0`` for each of the cell's states (``h0``,
  ``c0``), ``w_hh``, ``b_hh`` (zeros when the layer has no bias), ``mask``; outputs
  ``<state>s`` for each state (``hs``, ``cs``), then the values the backward loop needs, in the
  order the cell's :class:`~rnnkit.cells.StepEquations` save them;
- backward ``<kernel>_backward``: inputs ``dhs``, ``d<state>_T``, ``<state>s``, ``<state>0``,
  the saved values by their forward names, ``w_hh``, ``mask``; outputs ``da``, ``dgh`` (the
  gradient of the recurrent products, when it differs from ``da``) and ``d<state>0``.

``<kernel>`` is the cell's :attr:`~rnnkit.cells.Cell.kernel` (for example ``"gru_before"``). A
cell whose loops the extension does not have gets no compiled loop (None). Adding a cell's
compiled loops is then its C loop header and its entries in ``_native.c``; nothing here.

Each compiled :class:`~rnnkit.cells.TimeLoop` prepares its own weights (``w_hh`` as the
layer stores it, never split and re-joined) with the cell's reference layout beside them, and
falls back to the NumPy reference loops (silently: the result is the same) for what the kernels
do not cover (:func:`rnnkit.runtime.kernels.covers`): regularisation inside the recurrence,
dtypes other than float32 and float64, empty shapes. The large outputs come from
:mod:`rnnkit.runtime.workspace`.

Shapes: T = time steps, B = batch, H = hidden size, G = gate rows (num_gates H).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import numpy as np

from rnnkit.cells import timeloop
from rnnkit.cells.base import CellParams, TimeLoop
from rnnkit.runtime import workspace
from rnnkit.runtime.kernels import extension, gemm


class Prepared(NamedTuple):
    """The recurrent parameters of a compiled loop: the cell's reference layout (for the
    fallback) and the weights as the extension takes them."""

    reference: Any  # the cell's prepare(params)
    w_hh: np.ndarray  # (G, H)
    b_hh: np.ndarray | None  # (G,), None when the layer has no bias


def has_loops(kernel: str | None) -> bool:
    """Whether the extension has forward and backward loops named for ``kernel``."""
    module = extension.native()
    return (
        kernel is not None
        and module is not None
        and f"{kernel}_forward" in module.LOOPS
        and f"{kernel}_backward" in module.LOOPS
    )


def compiled_loop(cell: Any) -> TimeLoop | None:
    """The compiled :class:`~rnnkit.cells.TimeLoop` of a :class:`~rnnkit.cells.StepCell`, or
    None when the extension is unavailable or has no loops for ``cell.kernel``."""
    if not has_loops(cell.kernel):
        return None
    return TimeLoop(
        forward=partial(forward, cell),
        backward=partial(backward, cell),
        prepare=partial(prepare, cell),
        matmul=gemm.matmul,
        name="compiled",
    )


def prepare(cell: Any, params: CellParams) -> Prepared:
    """The weights of ``cell``'s compiled loops, and its reference layout for the fallback."""
    return Prepared(cell.prepare(params), params.W_hh, params.b_hh)


def _shape(dims: str, T: int, B: int, H: int) -> tuple[int, ...]:
    size = {"T": T, "B": B, "H": H}
    return tuple(size[d] if d in size else int(d) * H for d in dims)


def _call(name: str, named: dict[str, Any], T: int, B: int, H: int, dt: np.dtype) -> dict:
    """Call the extension's loop ``name`` with the arrays of ``named`` in its order, allocating
    its outputs; returns the outputs by name."""
    module = extension.native()
    args, out = [], {}
    G = None
    for arg, dims, role in module.LOOPS[name]:
        if role == "out":
            a = out[arg] = workspace.empty(_shape(dims, T, B, H), dt)
        elif role == "mask":
            a = extension.mask2d(named.get("mask"), T, B)
        else:
            a = np.ascontiguousarray(named[arg], dtype=dt)
            if role == "weights":
                G = a.shape[0]
        args.append(a)
    getattr(module, name)(*args, extension.threads_for(B, T * B * (G or H) * H))
    return out


def forward(
    cell: Any,
    xg: np.ndarray,
    state0: tuple[np.ndarray, ...],
    P: Prepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The forward time loop; see :class:`~rnnkit.cells.TimeLoop`."""
    T, B, G = xg.shape
    H = state0[0].shape[-1]
    if not extension.covers(xg.dtype, (T, B, H), reg):
        return timeloop.forward(cell.equations, xg, state0, P.reference, mask, reg)
    dt = xg.dtype
    b_hh = np.zeros(G, dtype=dt) if P.b_hh is None else P.b_hh
    named = {"xg": xg, "w_hh": P.w_hh, "b_hh": b_hh, "mask": mask}
    named |= {f"{s}0": v for s, v in zip(cell.state_names, state0)}
    out = _call(f"{cell.kernel}_forward", named, T, B, H, dt)
    states = tuple(out.pop(f"{s}s") for s in cell.state_names)
    return states, tuple(out.values())  # the rest, in the order the loop writes it: saved


def backward(
    cell: Any,
    dhs: np.ndarray,
    dstate_T: tuple[np.ndarray, ...],
    states: tuple[np.ndarray, ...],
    state0: tuple[np.ndarray, ...],
    saved: tuple[np.ndarray, ...],
    P: Prepared,
    mask: np.ndarray | None = None,
    reg: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, ...]]:
    """The backward time loop (BPTT); see :class:`~rnnkit.cells.TimeLoop`."""
    T, B, H = dhs.shape
    dt = saved[0].dtype if saved else dhs.dtype
    if not extension.covers(dt, (T, B, H), reg):
        args = (dhs, dstate_T, states, state0, saved, P.reference, mask, reg)
        return timeloop.backward(cell.equations, *args)
    module, names = extension.native(), cell.state_names
    saved_names = [
        arg
        for arg, _, role in module.LOOPS[f"{cell.kernel}_forward"]
        if role == "out" and arg not in {f"{s}s" for s in names}
    ]
    named = {"dhs": dhs, "w_hh": P.w_hh, "mask": mask}
    named |= dict(zip(saved_names, saved))
    for s, d, v, v0 in zip(names, dstate_T, states, state0):
        named |= {f"d{s}_T": d, f"{s}s": v, f"{s}0": v0}
    out = _call(f"{cell.kernel}_backward", named, T, B, H, dt)
    return out["da"], out.get("dgh"), tuple(out[f"d{s}0"] for s in names)
