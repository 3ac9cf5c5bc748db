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

import functools
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from rnnkit.cells import timeloop
from rnnkit.cells.base import CellParams, PackedWeights, TimeLoop
from rnnkit.runtime import workspace
from rnnkit.runtime.kernels import extension, gemm


class PackedLoop(NamedTuple):
    """W_hh packed by the extension for one of a cell's loops (``_native.pack_hh``), which the
    loop takes in place of ``w_hh``; ``shape`` is W_hh's (G, H)."""

    kernel: Any
    shape: tuple[int, int]


class Prepared(NamedTuple):
    """The recurrent parameters of a compiled loop: the weights as the layer stores them, which
    the extension takes as they are (or as :func:`pack` packed them), and the cell's reference
    layout for the fallback (made only when the fallback runs)."""

    cell: Any
    params: CellParams

    @property
    def w_hh(self) -> np.ndarray | PackedLoop:
        """W_hh (G, H) for the forward loop."""
        packed = self.params.packed
        return self.params.W_hh if packed is None or packed.W_hh is None else packed.W_hh

    @property
    def w_hh_back(self) -> np.ndarray | PackedLoop:
        """W_hh (G, H) for the backward loop."""
        packed = self.params.packed
        return self.params.W_hh if packed is None or packed.W_hh_back is None else packed.W_hh_back

    @property
    def b_hh(self) -> np.ndarray | None:
        return self.params.b_hh  # (G,), None when the layer has no bias

    @property
    def reference(self) -> Any:
        return self.cell.prepare(self.params)


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
        pack=partial(pack, cell),
    )


def pack(cell: Any, params: CellParams, backward: bool = False) -> PackedWeights:
    """``params``' weights packed for the products of ``cell``'s compiled sequence passes, the
    forward ones or (``backward``) those of both passes: for many calls with unchanged weights
    (see :class:`~rnnkit.cells.base.PackedWeights`). Each call then computes the same bits as
    with the weights themselves."""
    module = extension.native()
    code = module.CELLS.index(cell.kernel)
    W_hh = params.W_hh

    def loop(back: bool) -> PackedLoop | None:
        if not extension.covers(W_hh.dtype, W_hh.shape, None):
            return None
        return PackedLoop(module.pack_hh(code, back, np.ascontiguousarray(W_hh)), W_hh.shape)

    return PackedWeights(
        gemm.pack(params.W_ih, trans_b=True),
        gemm.pack(params.W_ih) if backward else None,
        loop(False),
        loop(True) if backward else None,
    )


def prepare(cell: Any, params: CellParams) -> Prepared:
    """The weights of ``cell``'s compiled loops, and its reference layout for the fallback."""
    return Prepared(cell, params)


class Layout(NamedTuple):
    """One loop function of the extension, read once from ``_native.LOOPS``: where each of its
    arrays goes in its arguments."""

    function: Any  # the extension's function
    size: int  # the number of arrays it takes (the number of threads follows them)
    inputs: tuple[tuple[int, str], ...]  # (position, name) of the arrays it reads
    weights: int  # the position of w_hh
    mask: int  # the position of the mask
    outputs: tuple[tuple[int, str, tuple[tuple[int, int], ...]], ...]  # (position, name, dims)


def layout(name: str) -> Layout:
    """The layout of the extension's loop function ``name``; each dimension character becomes
    (index into (T, B, H), multiple), so ``"TB4"`` is ((0, 1), (1, 1), (2, 4))."""
    module = extension.native()
    code = {"T": (0, 1), "B": (1, 1), "H": (2, 1)}
    inputs, outputs, weights, mask = [], [], -1, -1
    spec = module.LOOPS[name]
    for pos, (arg, dims, role) in enumerate(spec):
        if role == "out":
            outputs.append((pos, arg, tuple(code.get(d) or (2, int(d)) for d in dims)))
        elif role == "mask":
            mask = pos
        else:
            inputs.append((pos, arg))
            weights = pos if role == "weights" else weights
    return Layout(getattr(module, name), len(spec), tuple(inputs), weights, mask, tuple(outputs))


class Call(NamedTuple):
    """One loop function bound to the values a time loop has at hand: each array it reads is
    ``values[k]`` of the tuple the forward or backward pass builds (see :func:`bind`)."""

    layout: Layout
    inputs: tuple[tuple[int, int], ...]  # (position in the arguments, index into the values)


class Binding(NamedTuple):
    """A cell's two loop functions, with the names of its arrays resolved once."""

    forward: Call  # values: xg, w_hh, b_hh, then the initial states
    backward: Call  # values: dhs, w_hh, the d<state>_T, the states, the initial states, saved
    states: tuple[int, ...]  # positions among the forward's outputs of the states (hs, cs)
    saved: tuple[int, ...]  # ... and of the values the backward needs, in order
    dstate0: tuple[int, ...]  # positions among the backward's outputs of dh0, dc0
    da: int
    dgh: int  # -1: the loop has no separate gradient of the recurrent products


def _bound(how: Layout, values: list[str]) -> Call:
    return Call(how, tuple((pos, values.index(name)) for pos, name in how.inputs))


@functools.cache
def bind(kernel: str, state_names: tuple[str, ...]) -> Binding:
    """The :class:`Binding` of the loops ``kernel`` of a cell with these states (the extension
    must have them, see :func:`has_loops`); made once per process."""
    fwd, bwd = layout(f"{kernel}_forward"), layout(f"{kernel}_backward")
    out_f = [name for _, name, _ in fwd.outputs]
    out_b = [name for _, name, _ in bwd.outputs]
    states = tuple(out_f.index(f"{s}s") for s in state_names)
    saved = tuple(k for k in range(len(out_f)) if k not in states)
    ns = list(state_names)
    return Binding(
        _bound(fwd, ["xg", "w_hh", "b_hh", *(f"{s}0" for s in ns)]),
        _bound(
            bwd,
            [
                "dhs",
                "w_hh",
                *(f"d{s}_T" for s in ns),
                *(f"{s}s" for s in ns),
                *(f"{s}0" for s in ns),
                *(out_f[k] for k in saved),
            ],
        ),
        states,
        saved,
        tuple(out_b.index(f"d{s}0") for s in ns),
        out_b.index("da"),
        out_b.index("dgh") if "dgh" in out_b else -1,
    )


def _call(
    call: Call, values: tuple, mask: Any, T: int, B: int, H: int, dt: np.dtype
) -> list[np.ndarray]:
    """Call a loop function with its arrays from ``values``, allocating its outputs (the ones
    over time from the workspace); returns the outputs in its order."""
    how = call.layout
    args: list[Any] = [None] * how.size
    for pos, k in call.inputs:
        value = values[k]
        if isinstance(value, PackedLoop):  # W_hh packed once for many calls
            args[pos] = value.kernel
        else:
            args[pos] = np.ascontiguousarray(value, dtype=dt)
    if how.mask >= 0:
        args[how.mask] = extension.mask2d(mask, T, B)
    sizes, out = (T, B, H), []
    for pos, _, dims in how.outputs:
        shape = tuple([sizes[i] * k for i, k in dims])
        a = args[pos] = workspace.empty(shape, dt) if dims[0][0] == 0 else np.empty(shape, dt)
        out.append(a)
    G = next(values[k] for pos, k in call.inputs if pos == how.weights).shape[0]
    how.function(*args, extension.threads_for(B, T * B * G * H))
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
    b_hh = P.b_hh
    values = (xg, P.w_hh, np.zeros(G, dt) if b_hh is None else b_hh, *state0)
    binding = bind(cell.kernel, cell.state_names)
    out = _call(binding.forward, values, mask, T, B, H, dt)
    return tuple([out[k] for k in binding.states]), tuple([out[k] for k in binding.saved])


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
    binding = bind(cell.kernel, cell.state_names)
    values = (dhs, P.w_hh_back, *dstate_T, *states, *state0, *saved)
    out = _call(binding.backward, values, mask, T, B, H, dt)
    dgh = None if binding.dgh < 0 else out[binding.dgh]
    return out[binding.da], dgh, tuple([out[k] for k in binding.dstate0])
