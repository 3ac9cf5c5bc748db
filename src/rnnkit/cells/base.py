"""The interface every recurrent cell implements, and the pieces the cells share.

A *cell* is one recurrence: its step equations, its forward pass over a whole sequence and its
backward pass (backpropagation through time). A cell object holds configuration only (for
example the nonlinearity); parameters are passed in as a :class:`CellParams` and the mathematics
lives in pure functions of the cell's module. One driver, :class:`rnnkit.nn.Recurrent`, stacks
cells into layers, runs the reverse direction of a bidirectional layer and handles variable
lengths for every cell alike.

Each cell module splits its sequence pass in three, so that a compiled kernel can later replace
the middle part without touching any caller:

1. the input projection of all time steps, one matrix product before the loop;
2. the *recurrence*: a pair of pure functions ``<cell>_recurrence_forward`` and
   ``<cell>_recurrence_backward`` holding the only sequential loop (their signatures are
   documented per cell), bundled as a :class:`Recurrence`;
3. the parameter gradients, one matrix product after the backward loop.

A cell calls its loops through its ``recurrence`` attribute, which defaults to the NumPy
reference of its module (``RECURRENCE``, or ``RECURRENCES[reset]`` for the GRU). A faster
implementation with the same signatures is swapped in by constructing the cell with
``recurrence=...`` (or setting ``layer.cell.recurrence``), and tested against the reference.

Variable lengths reach a cell as a boolean ``mask`` of shape (T, B, 1): at a step where
``mask[t, b]`` is False the row's state is carried unchanged, ``h_t = h_{t-1}`` (and
``c_t = c_{t-1}``). Padding after the valid part then leaves every row's final state at its last
valid step, and a time-reversed sequence starts each row from its initial state at its last
valid step, which is how packed sequences behave. In the backward pass a masked step passes
``dh`` (and ``dc``) straight through and contributes nothing to any parameter gradient.

Shapes: T = time steps, B = batch, D = input size, H = hidden size, G = number of gates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class CellParams(NamedTuple):
    """The parameters of one cell (one layer, one direction), fused over gates as in PyTorch."""

    W_ih: np.ndarray  # (G*H, D)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None  # (G*H,), None when the layer has no bias
    b_hh: np.ndarray | None  # (G*H,), None when the layer has no bias


class CellGrads(NamedTuple):
    """Gradients of the loss with respect to a :class:`CellParams`, field by field."""

    dW_ih: np.ndarray  # (G*H, D)
    dW_hh: np.ndarray  # (G*H, H)
    db_ih: np.ndarray | None  # (G*H,)
    db_hh: np.ndarray | None  # (G*H,)


class Recurrence(NamedTuple):
    """A cell's two time loops: the only sequential code, and the part a compiled kernel replaces.

    ``forward`` and ``backward`` have the signatures of the cell module's
    ``<cell>_recurrence_forward`` and ``<cell>_recurrence_backward``; they must not modify their
    arguments.
    """

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    name: str = "numpy"


class Cell:
    """Base class of the recurrent cells.

    Subclasses set :attr:`num_gates` and :attr:`state_names` and implement :meth:`forward` and
    :meth:`backward`. States are tuples of (B, H) arrays in the order of :attr:`state_names`:
    ``("h",)`` for the vanilla RNN and the GRU, ``("h", "c")`` for the LSTM.
    """

    #: Number of gate blocks fused in the weight matrices (rows = num_gates * H).
    num_gates: int = 1
    #: Names of the state tensors, in the order the state tuple holds them.
    state_names: tuple[str, ...] = ("h",)
    #: The time loops this cell runs (see :class:`Recurrence`).
    recurrence: Recurrence

    def forward(
        self,
        x: np.ndarray,
        state0: tuple[np.ndarray, ...],
        params: CellParams,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], Any]:
        """Run the cell over a sequence.

        Args:
            x: inputs, (T, B, D).
            state0: initial state, a tuple of (B, H) arrays.
            params: the cell's parameters.
            mask: optional (T, B, 1) boolean array; False marks steps that carry the state.

        Returns:
            ``(hs, state_T, cache)``: the hidden state after every step (T, B, H) (at masked
            steps the carried state), the final state, and what :meth:`backward` needs.
        """
        raise NotImplementedError

    def backward(
        self,
        dhs: np.ndarray,
        dstate_T: tuple[np.ndarray, ...],
        cache: Any,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], CellGrads]:
        """Backpropagate through the whole sequence.

        Args:
            dhs: dL/dhs, (T, B, H): the gradient arriving at each step's hidden state from
                outside the recurrence (zero at masked steps).
            dstate_T: dL/d(final state), a tuple of (B, H) arrays.
            cache: the cache returned by :meth:`forward`; it is not modified.

        Returns:
            ``(dx, dstate0, grads)``: dL/dx (T, B, D), dL/d(initial state), and the parameter
            gradients (bias gradients None when the parameters have no bias).
        """
        raise NotImplementedError

    def step(
        self, x_t: np.ndarray, state: tuple[np.ndarray, ...], params: CellParams
    ) -> tuple[np.ndarray, ...]:
        """One step of the recurrence: the new state after input ``x_t`` (B, D)."""
        _, state_T, _ = self.forward(x_t[None], state, params)
        return state_T

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-a)), exact in both tails.

    ``exp(-a)`` overflows to inf for a < -709 (float64), which correctly gives 0; the overflow
    warning is silenced because it is expected.
    """
    out = np.negative(a, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def project(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The input projection of every time step in one matrix product: x W^T + b.

    Args: x (T, B, D), W (N, D), b (N,) or None.  Returns (T, B, N).
    """
    T, B, D = x.shape
    out = (x.reshape(T * B, D) @ W.T).reshape(T, B, W.shape[0])  # (T, B, N)
    if b is not None:
        out += b
    return out


def outer_sum(dg: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Sum over time and batch of the outer products dg_t^T a_t, as one matrix product.

    This is the weight gradient of ``a_t W^T`` given dL/d(a_t W^T) = dg_t.
    Args: dg (T, B, N), a (T, B, M).  Returns (N, M).
    """
    T, B, N = dg.shape
    return dg.reshape(T * B, N).T @ a.reshape(T * B, a.shape[-1])


def previous_states(h0: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """The state entering each step: (h0, h_0, ..., h_{T-2}), shape (T, B, H)."""
    return np.concatenate([h0[None], hs[:-1]], axis=0)


def input_grads(
    dxg: np.ndarray, x: np.ndarray, W_ih: np.ndarray, has_bias: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dL/dx, dL/dW_ih and dL/db_ih from dL/d(x W_ih^T + b_ih) = dxg (T, B, N)."""
    T, B, N = dxg.shape
    dx = (dxg.reshape(T * B, N) @ W_ih).reshape(T, B, W_ih.shape[1])  # (T, B, D)
    dW_ih = outer_sum(dxg, x)  # (N, D)
    db_ih = dxg.sum(axis=(0, 1)) if has_bias else None  # (N,)
    return dx, dW_ih, db_ih
