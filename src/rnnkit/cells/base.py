r"""The interface every recurrent cell implements, and the pieces the cells share.

A *cell* is one recurrence: its step equations, its forward pass over a whole sequence and its
backward pass (backpropagation through time). A cell object holds configuration only (for
example the nonlinearity); parameters are passed in as a :class:`CellParams` and the mathematics
lives in pure functions of the cell's module. One driver, :class:`rnnkit.nn.Recurrent`, stacks
cells into layers, runs the reverse direction of a bidirectional layer and handles variable
lengths for every cell alike.

Each built-in cell is a :class:`StepCell`: its module defines the cell's *step equations* (one
time step, forward and backward, as :class:`StepEquations`) and :class:`StepCell` runs the whole
sequence in three parts:

1. the input projection of all time steps, one matrix product before the loop;
2. the *time loop*, the only sequential code, through a :class:`TimeLoop`. The cell's own is
   :meth:`StepCell.reference_loop`: the NumPy loops of :mod:`rnnkit.cells.timeloop` run with its
   step equations. Another implementation with the same signatures (the compiled loops of
   :mod:`rnnkit.runtime.kernels`, chosen by :func:`rnnkit.runtime.kernels.time_loop` for the
   layers) is passed to :meth:`StepCell.forward` as ``loop`` and tested against the reference;
3. the parameter gradients, one matrix product after the backward loop.

A time loop brings its own matrix product for parts 1 and 3 and the input gradient
(``TimeLoop.matmul``, passed to :func:`project`, :func:`outer_sum` and :func:`input_grads`;
None is NumPy's ``@``) and prepares its own layout of the recurrent parameters
(``TimeLoop.prepare``; None is the cell's :meth:`StepCell.prepare`). This package imports no
compiled code.

Variable lengths reach a cell as a boolean ``mask`` of shape (T, B, 1): at a step where
``mask[t, b]`` is False the row's state is carried unchanged, ``h_t = h_{t-1}`` (and
``c_t = c_{t-1}``). Padding after the valid part then leaves every row's final state at its last
valid step, and a time-reversed sequence starts each row from its initial state at its last
valid step, which is how packed sequences behave. In the backward pass a masked step passes
``dh`` (and ``dc``) straight through and contributes nothing to any parameter gradient.

Regularisation inside the recurrence reaches a cell as a :class:`Regularisation`:

- *recurrent dropout* (Gal & Ghahramani 2016): one mask per sequence, the same at every step, on
  the hidden state where it enters the recurrent products: :math:`\bar h_{t-1} = h_{t-1} \odot m`
  replaces :math:`h_{t-1}` in every :math:`W_{hh} h_{t-1}` (the GRU's interpolation
  :math:`z \odot h_{t-1}` and the LSTM's cell state are left alone). Backward: the gradient
  that flows through the products is multiplied by :math:`m`;
- *zoneout* (Krueger et al. 2016): each unit of each state keeps its previous value with
  probability z at each step: :math:`s_t = u_t \odot \tilde s_t + (1 - u_t) \odot s_{t-1}`
  with :math:`u_t \sim \mathrm{Bernoulli}(1 - z)` in training and :math:`u_t = 1 - z` (the
  expectation) in evaluation, :math:`\tilde s_t` the cell's own update. Backward:
  :math:`\delta \tilde s_t = u_t \odot \delta s_t` and
  :math:`\delta s_{t-1} \mathrel{+}= (1 - u_t) \odot \delta s_t`.

Shapes: T = time steps, B = batch, D = input size, H = hidden size, G = number of gates.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnkit import limits
from rnnkit.cells import timeloop
from rnnkit.runtime import workspace

#: A matrix product ``matmul(a, b, trans_a=False, trans_b=False, bias=None, row_sums=None) ->
#: op(a) @ op(b) (+ bias)`` (see :func:`rnnkit.runtime.kernels.gemm.matmul`); None: NumPy's
#: ``@``.
MatMul = Callable[..., np.ndarray] | None


class CellParams(NamedTuple):
    """The parameters of one cell (one layer, one direction), fused over gates as in PyTorch."""

    W_ih: np.ndarray  # (G*H, D)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None  # (G*H,), None when the layer has no bias
    b_hh: np.ndarray | None  # (G*H,), None when the layer has no bias
    #: The weights as the time loop's products read them, made once by its ``pack``
    #: (:class:`PackedWeights`), or None: kept by a caller that runs the cell over many short
    #: calls with unchanged weights (a decoder run step by step), so that no call packs them.
    packed: PackedWeights | None = None


class PackedWeights(NamedTuple):
    """A cell's weights packed once by its compiled time loop (``TimeLoop.pack``) for many calls
    with unchanged parameters, each read in place of the weight it packs (None: that product
    packs the weight itself). Copies: they hold until the parameters change (pack again after
    an optimiser step or ``load_state_dict``). Every product gives the same bits as without."""

    W_ih_t: Any  # W_ih^T for the input projection x W_ih^T (gemm.Packed)
    W_ih: Any  # W_ih for the input gradient da W_ih (gemm.Packed), or None: forward only
    W_hh: Any  # W_hh as the forward loop reads it, or None
    W_hh_back: Any  # W_hh as the backward loop reads it, or None: forward only


class CellGrads(NamedTuple):
    """Gradients of the loss with respect to a :class:`CellParams`, field by field."""

    dW_ih: np.ndarray  # (G*H, D)
    dW_hh: np.ndarray  # (G*H, H)
    db_ih: np.ndarray | None  # (G*H,)
    db_hh: np.ndarray | None  # (G*H,)


class WeightWork(NamedTuple):
    """What a :class:`StepCell`'s parameter gradients are made from, kept by a backward pass
    that defers them (``StepCell.backward(..., defer=True)``): :meth:`StepCell.weight_grads`
    turns any number of them (the calls of a decoder run one step at a time) into one
    :class:`CellGrads` with one matrix product per weight over all their steps, instead of
    one small product per call and a sum."""

    da: np.ndarray  # (T, B, G) dL/d(gate pre-activations)
    dgh: np.ndarray | None  # (T, B, G) dL/d(recurrent products), None: equal to da
    x: np.ndarray  # (T, B, D) the inputs
    h_in: np.ndarray  # (T, B, H) the hidden states entering the recurrent products
    saved: tuple[np.ndarray, ...]  # each (T, B, n): what the forward steps saved
    has_bias: bool
    matmul: MatMul


class Regularisation(NamedTuple):
    """Masks of the regularisation inside the recurrence, for one layer and direction."""

    h_drop: np.ndarray | None  # (B, H) keep mask / (1 - p) on h entering W_hh; None: none
    zone: tuple[np.ndarray | None, ...] | None  # per state, (T, B, H) update weights u; None: none


class StepEquations(NamedTuple):
    """The equations of one time step of a cell, forward and backward.

    ``forward(xg_t, prev, h_in, P, out_states, out_saved)`` writes the cell's update of every
    state (the candidate before zoneout and masking) into ``out_states`` and what its backward
    needs into ``out_saved`` (arrays of shape (B, k H) for each ``k`` in ``saved``). ``xg_t``
    (B, G) is the projected input, ``prev`` the previous states, ``h_in`` the hidden state that
    enters the recurrent products (``prev[0]``, or ``prev[0] * m`` under recurrent dropout) and
    ``P`` the cell's prepared recurrent parameters.

    ``backward(d_cand, prev, h_in, saved_t, P) -> (da, dgh, dh_in, d_prev)``: from the gradients
    at the candidate states, dL/d(gate pre-activations) ``da`` (B, G); dL/d(recurrent product
    ``h_in W_hh^T + b_hh``) ``dgh`` (B, G), or None when it equals ``da``; dL/dh_in (B, H); and
    the direct gradients at the previous states that do not pass through ``h_in`` (a tuple with
    None where there is none).
    """

    forward: Callable[..., None]
    backward: Callable[..., tuple]
    saved: tuple[int, ...]  # what forward saves per step, in multiples of H: (4, 1) is 4H and H

    def saved_sizes(self, H: int) -> tuple[int, ...]:
        """The widths of the saved arrays for hidden size H."""
        return tuple(k * H for k in self.saved)


class TimeLoop(NamedTuple):
    """A cell's two time loops: the only sequential code, and the part a compiled kernel replaces.

    ``prepare(params) -> P``: the recurrent parameters in the layout this loop reads (None: the
    cell's :meth:`StepCell.prepare`).

    ``forward(xg, state0, P, mask, reg) -> (states, saved)``: from the projected inputs ``xg``
    (T, B, G), the initial states (a tuple of (B, H)), the cell's prepared parameters ``P``, the
    length ``mask`` and the :class:`Regularisation` ``reg`` (either may be None), the states
    after every step (a tuple of (T, B, H)) and the per-step values the backward pass needs
    (a tuple of (T, B, n), laid out as the cell's :class:`StepEquations` save them).

    ``backward(dhs, dstate_T, states, state0, saved, P, mask, reg) -> (da, dgh, dstate0)``:
    from the gradients at each step's hidden state from outside (T, B, H) and at the final
    states, dL/d(gate pre-activations) (T, B, G), dL/d(recurrent products) (T, B, G) or None
    when equal, and the gradients at the initial states.

    ``matmul``: the matrix product of the sequence passes around the loops (None: NumPy's).
    ``name``: ``"numpy"`` for the reference, ``"compiled"`` for the extension's loops.

    ``pack(params, backward) -> PackedWeights``: the weights packed for many calls (forward
    only, or forward and backward), which :class:`CellParams` carries to ``prepare``, the
    projection and the input gradient; None: the loop packs nothing (NumPy reads the weights
    as they are).

    Neither loop may modify its arguments.
    """

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    prepare: Callable[[CellParams], Any] | None = None
    matmul: MatMul = None
    name: str = "numpy"
    pack: Callable[[CellParams, bool], PackedWeights] | None = None


class Cell:
    """Base class of the recurrent cells.

    Subclasses set :attr:`num_gates` and :attr:`state_names` and implement :meth:`forward` and
    :meth:`backward`. States are tuples of (B, H) arrays in the order of :attr:`state_names`:
    ``("h",)`` for the vanilla RNN and the GRU, ``("h", "c")`` for the LSTM. A cell that also
    accepts a :class:`Regularisation` sets :attr:`supports_regularisation`.
    """

    #: The cell's name for the layers and ready models (``make_recurrent("lstm", ...)``); a
    #: subclass that sets it is registered in :attr:`registry` under it.
    name: ClassVar[str | None] = None
    #: Every named cell class, by name (see :meth:`named`).
    registry: ClassVar[dict[str, type[Cell]]] = {}
    #: Number of gate blocks fused in the weight matrices (rows = num_gates * H).
    num_gates: int = 1
    #: Names of the state tensors, in the order the state tuple holds them.
    state_names: tuple[str, ...] = ("h",)
    #: Whether :meth:`forward` takes ``reg`` (recurrent dropout, zoneout).
    supports_regularisation: bool = False
    #: The name of the cell's compiled loops in :mod:`rnnkit.runtime.kernels`, or None (see
    #: :attr:`kernel`, which a cell with options overrides).
    kernel_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            Cell.registry[cls.name] = cls

    @classmethod
    def named(cls, name: str) -> type[Cell]:
        """The cell class registered under ``name`` (ValueError naming the known ones)."""
        if name not in Cell.registry:
            raise ValueError(f"cell must be one of {sorted(Cell.registry)}, got {name!r}")
        return Cell.registry[name]

    def options(self) -> dict[str, Any]:
        """The cell's constructor arguments, by name, read from the attributes of the same names
        (a cell keeps each option as ``self.<name>``); a cell without options: empty."""
        params = inspect.signature(type(self).__init__).parameters.values()
        return {
            p.name: getattr(self, p.name)
            for p in list(params)[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    @property
    def kernel(self) -> str | None:
        """The name of this cell's compiled loops (with its options), or None: the NumPy ones."""
        return self.kernel_name

    def forward(
        self,
        x: np.ndarray,
        state0: tuple[np.ndarray, ...],
        params: CellParams,
        mask: np.ndarray | None = None,
        reg: Regularisation | None = None,
        loop: TimeLoop | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...], Any]:
        """Run the cell over a sequence.

        Args:
            x: inputs, (T, B, D).
            state0: initial state, a tuple of (B, H) arrays.
            params: the cell's parameters.
            mask: optional (T, B, 1) boolean array; False marks steps that carry the state.
            reg: optional recurrent dropout and zoneout masks.
            loop: the time loops to run (a cell without a :class:`TimeLoop` ignores it).

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
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"


class StepCache(NamedTuple):
    """What :meth:`StepCell.backward` needs; nothing is recomputed but the recurrent input."""

    x: np.ndarray  # (T, B, D) inputs
    state0: tuple[np.ndarray, ...]  # each (B, H)
    states: tuple[np.ndarray, ...]  # each (T, B, H): the states after every step
    saved: tuple[np.ndarray, ...]  # each (T, B, n): what the cell's step saved
    params: CellParams
    prepared: Any  # the recurrent parameters as the loop prepared them
    mask: np.ndarray | None  # (T, B, 1) valid steps, None when all are valid
    reg: Regularisation | None
    loop: TimeLoop  # the time loops that ran the forward pass; the backward runs the same


class StepCell(Cell):
    """A cell defined by its :class:`StepEquations`: the sequence passes are shared by every such
    cell (see the module docstring).

    Subclasses provide :attr:`equations` (a property when they depend on the cell's options),
    :meth:`prepare`, where needed :meth:`projection_bias` and, where the recurrent weight
    gradient is not the plain ``sum_t dgh_t^T h_in_t``, :meth:`recurrent_grads`.
    """

    supports_regularisation = True
    #: The cell's step equations.
    equations: StepEquations

    def reference_loop(self) -> TimeLoop:
        """The NumPy reference loops of :mod:`rnnkit.cells.timeloop` run with this cell's step
        equations: the path of every call that passes no other ``loop``."""
        eq = self.equations
        return TimeLoop(partial(timeloop.forward, eq), partial(timeloop.backward, eq))

    # -- what each cell says ------------------------------------------------------------------

    def projection_bias(self, params: CellParams) -> np.ndarray | None:
        """The bias added in the input projection: both biases, folded (the default)."""
        return None if params.b_ih is None else params.b_ih + params.b_hh

    def prepare(self, params: CellParams) -> Any:
        """The recurrent parameters as the step uses them (transposes, slices)."""
        raise NotImplementedError

    def recurrent_grads(
        self, dgh: np.ndarray, h_in: np.ndarray, saved: tuple, has_bias: bool, matmul: MatMul
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """dL/dW_hh and dL/db_hh from dL/d(h_in W_hh^T + b_hh) (T, B, G) and h_in (T, B, H)."""
        db_hh = np.empty(dgh.shape[-1], dtype=dgh.dtype) if has_bias else None  # (G,)
        dW_hh = outer_sum(dgh, h_in, matmul, db_hh)  # (G, H)
        return dW_hh, db_hh

    # -- the shared sequence passes -----------------------------------------------------------

    def forward(self, x, state0, params, mask=None, reg=None, loop=None):
        GH, H = params.W_hh.shape
        per_step = GH + H * (len(self.state_names) + sum(self.equations.saved))
        limits.check_memory(  # the input projection, the states and what the steps save
            lambda: f"the forward pass of {self!r} over x of shape {x.shape}, H={H}",
            math.prod(x.shape[:-1]) * per_step * x.dtype.itemsize,
        )
        loop = self.reference_loop() if loop is None else loop
        bias = self.projection_bias(params)
        W_t = None if params.packed is None else params.packed.W_ih_t
        xg = project(x, params.W_ih, bias, loop.matmul, W_t=W_t)  # (T, B, G)
        prepared = (self.prepare if loop.prepare is None else loop.prepare)(params)
        states, saved = loop.forward(xg, tuple(state0), prepared, mask, reg)
        cache = StepCache(x, tuple(state0), states, saved, params, prepared, mask, reg, loop)
        return states[0], tuple(s[-1] for s in states), cache

    def backward(self, dhs, dstate_T, cache, defer=False):
        """As :meth:`Cell.backward`; with ``defer=True`` the third result is a
        :class:`WeightWork` instead of the gradients (see :meth:`weight_grads`)."""
        p, loop = cache.params, cache.loop
        da, dgh, dstate0 = loop.backward(
            dhs,
            tuple(dstate_T),
            cache.states,
            cache.state0,
            cache.saved,
            cache.prepared,
            cache.mask,
            cache.reg,
        )
        has_bias = p.b_ih is not None
        if defer:
            T, B, G = da.shape
            da2 = da.reshape(T * B, G)
            W = p.W_ih if p.packed is None or p.packed.W_ih is None else p.packed.W_ih
            dx = da2 @ p.W_ih if loop.matmul is None else loop.matmul(da2, W)
            dx = dx.reshape(T, B, p.W_ih.shape[1])
        else:
            dx, dW_ih, db_ih = input_grads(da, cache.x, p.W_ih, has_bias, loop.matmul)
        # (made after the input gradient: the workspace then recycles the same buffers in the
        # same order at every training step)
        h_in = previous_states(cache.state0[0], cache.states[0])  # (T, B, H)
        if cache.reg is not None and cache.reg.h_drop is not None:
            h_in = h_in * cache.reg.h_drop
        work = WeightWork(da, dgh, cache.x, h_in, cache.saved, has_bias, loop.matmul)
        if defer:
            return dx, dstate0, work
        return dx, dstate0, self._weight_grads(work, dW_ih, db_ih)

    def weight_grads(self, works: list[WeightWork]) -> CellGrads:
        r"""The parameter gradients of deferred backward passes (``backward(defer=True)``), summed:
        their steps joined along time, then one matrix product per weight,
        :math:`\delta W_{ih} = \sum_t \delta a_t^\top x_t` and
        :math:`\delta W_{hh} = \sum_t \delta g^h_t{}^\top \bar h_{t-1}` over every step of
        every pass (the sums of :meth:`backward`'s, in another order)."""
        if not works:
            raise ValueError("weight_grads needs at least one WeightWork")
        first = works[0]

        def joined(parts: list[np.ndarray]) -> np.ndarray:  # (T_i, B_i, n) each -> (1, N, n)
            return np.concatenate([a.reshape(-1, a.shape[-1]) for a in parts])[None]

        work = WeightWork(
            joined([w.da for w in works]),
            None if first.dgh is None else joined([w.dgh for w in works]),
            joined([w.x for w in works]),
            joined([w.h_in for w in works]),
            tuple(joined([w.saved[i] for w in works]) for i in range(len(first.saved))),
            first.has_bias,
            first.matmul,
        )
        db_ih = np.empty(work.da.shape[-1], dtype=work.da.dtype) if work.has_bias else None
        dW_ih = outer_sum(work.da, work.x, work.matmul, db_ih)  # (G, D)
        return self._weight_grads(work, dW_ih, db_ih)

    def _weight_grads(
        self, work: WeightWork, dW_ih: np.ndarray, db_ih: np.ndarray | None
    ) -> CellGrads:
        """The recurrent gradients of ``work`` joined to the input ones."""
        if work.dgh is None:  # the recurrent products' gradient is da itself: db_hh = db_ih
            dW_hh, _ = self.recurrent_grads(work.da, work.h_in, work.saved, False, work.matmul)
            db_hh = None if db_ih is None else db_ih.copy()
        else:
            dW_hh, db_hh = self.recurrent_grads(
                work.dgh, work.h_in, work.saved, work.has_bias, work.matmul
            )
        return CellGrads(dW_ih, dW_hh, db_ih, db_hh)


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-a)), exact in both tails.

    ``exp(-a)`` overflows to inf for a < -709 (float64), which correctly gives 0; the overflow
    warning is silenced because it is expected.
    """
    # not np.negative: NumPy 2.4 computes it wrongly in place on some strided float32 views
    # (a single gate column, H = 1)
    out = np.multiply(a, -1.0, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def project(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    matmul: MatMul = None,
    W_t: Any = None,
) -> np.ndarray:
    """The input projection of every time step in one matrix product: x W^T + b.

    Args: x (T, B, D), W (N, D), b (N,) or None; ``matmul`` the product to use (None: NumPy);
    ``W_t`` W^T packed for ``matmul`` (:func:`rnnkit.runtime.kernels.gemm.pack`), read
    instead of W when given (the packing costs as much as the product itself when x has few
    rows, as in a decoder run one step at a time).
    Returns (T, B, N).
    """
    T, B, D = x.shape
    x2 = x.reshape(T * B, D)
    N = W.shape[0]
    if matmul is not None:
        if W_t is not None:
            return matmul(x2, W_t, bias=b).reshape(T, B, N)
        return matmul(x2, W, trans_b=True, bias=b).reshape(T, B, N)  # (T, B, N)
    out = (x2 @ W.T).reshape(T, B, N)  # (T, B, N)
    if b is not None:
        out += b
    return out


def outer_sum(
    dg: np.ndarray, a: np.ndarray, matmul: MatMul = None, sums: np.ndarray | None = None
) -> np.ndarray:
    """Sum over time and batch of the outer products dg_t^T a_t, as one matrix product.

    This is the weight gradient of ``a_t W^T`` given dL/d(a_t W^T) = dg_t; with ``sums`` (N,)
    given, the sum over time and batch of dg_t, the gradient of a bias added to ``a_t W^T``, is
    written into it (the compiled product adds it up on its one pass over dg).
    Args: dg (T, B, N), a (T, B, M); ``matmul`` the product to use (None: NumPy).
    Returns (N, M).
    """
    T, B, N = dg.shape
    dg2, a2 = dg.reshape(T * B, N), a.reshape(T * B, a.shape[-1])  # (T B, N), (T B, M)
    if matmul is not None:
        return matmul(dg2, a2, trans_a=True, row_sums=sums)
    if sums is not None:
        dg2.sum(axis=0, out=sums)
    return dg2.T @ a2


def previous_states(h0: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """The state entering each step: (h0, h_0, ..., h_{T-2}), shape (T, B, H)."""
    out = workspace.empty(hs.shape, np.result_type(h0, hs))  # (T, B, H)
    out[0] = h0
    out[1:] = hs[:-1]
    return out


def input_grads(
    dxg: np.ndarray, x: np.ndarray, W_ih: np.ndarray, has_bias: bool, matmul: MatMul = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dL/dx, dL/dW_ih and dL/db_ih from dL/d(x W_ih^T + b_ih) = dxg (T, B, N); ``matmul``
    the product to use (None: NumPy)."""
    T, B, N = dxg.shape
    dxg2 = dxg.reshape(T * B, N)  # (T B, N)
    dx = dxg2 @ W_ih if matmul is None else matmul(dxg2, W_ih)  # (T B, D)
    dx = dx.reshape(T, B, W_ih.shape[1])  # (T, B, D)
    db_ih = np.empty(N, dtype=dxg.dtype) if has_bias else None  # (N,)
    dW_ih = outer_sum(dxg, x, matmul, db_ih)  # (N, D)
    return dx, dW_ih, db_ih
