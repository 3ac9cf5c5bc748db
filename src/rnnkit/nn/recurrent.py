"""Recurrent layers: any cell, stacked, bidirectional, over variable-length batches.

:class:`Recurrent` is the one driver every cell shares: it holds the parameters under PyTorch's
state_dict names, runs the layers bottom-up and each direction over the sequence, and turns
``lengths`` into the step mask the cells understand (see :mod:`rnnkit.cells.base`).
:class:`RNN`, :class:`LSTM` and :class:`GRU` are :class:`Recurrent` with their cell: each only
names its cell class (``cell_class``); its constructor, the properties of the cell's options and
the equations in its docstring are derived from the cell (see :meth:`Recurrent.__init_subclass__`).

Which time loops run the cells (compiled or NumPy) is chosen once, when the layer is made, by
:func:`rnnkit.runtime.kernels.time_loop`; it is the layer's :attr:`Recurrent.time_loop`.

(Over 500 lines because :class:`Recurrent` is one driver: construction, the forward and
backward passes over layers and directions, and the streaming step share its checks and state.)

Shapes: T = time steps, B = batch, D = input size, H = hidden size,
L = num_layers, K = number of directions (1 or 2), G = number of gates of the cell.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.cells.base import (
    Cell,
    CellGrads,
    CellParams,
    PackedWeights,
    Regularisation,
    StepCell,
    StepEquations,
)
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import RNNCell
from rnnkit.nn.module import Module
from rnnkit.runtime import kernels, workspace

PARAM_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def cell_options(cell_class: type[Cell]) -> dict[str, inspect.Parameter]:
    """The keyword arguments of a cell class's constructor, by name."""
    params = list(inspect.signature(cell_class.__init__).parameters.values())[1:]
    return {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


class RecurrentCache(NamedTuple):
    """What :meth:`Recurrent.backward` needs from a forward pass; never modified by backward."""

    cells: tuple[tuple[Any, ...], ...]  # [layer][direction] cache of the cell's forward pass
    mask: np.ndarray | None  # (T, B, 1) valid steps; None when every sequence is full length
    dropout: tuple[np.ndarray | None, ...]  # [layer] (T, B, K*H) keep mask / (1 - p) on its input
    T: int
    B: int
    layer: Any  # the layer whose forward made this cache; backward accepts no other


class Recurrent(Module):
    """A stack of recurrent layers of one cell, uni- or bidirectional.

    Args:
        cell: the :class:`~rnnkit.cells.Cell` every layer and direction uses.
        input_size: D, the number of features of each input step.
        hidden_size: H, the number of features of the hidden state.
        num_layers: L, the number of stacked layers; layer l > 0 reads the output of layer l - 1.
        bias: whether the layers have the biases ``b_ih`` and ``b_hh``.
        batch_first: inputs and outputs are (B, T, ...) instead of (T, B, ...); states are not
            affected (as in PyTorch).
        bidirectional: run a second, time-reversed direction and concatenate its output.
        dropout: probability of dropping each output of every layer but the last, in training
            mode (PyTorch's ``dropout``): layer l > 0 reads ``y_{l-1} * m / (1 - p)``, with a
            fresh Bernoulli(1 - p) keep mask m per element, drawn from ``self.rng``.
        variational: draw the ``dropout`` masks once per sequence and use them at every step
            (Gal & Ghahramani 2016's dropout of the inputs of each layer but the first).
        recurrent_dropout: probability of dropping each unit of the hidden state where it
            enters the recurrent products ``W_hh h``, with one mask per sequence and direction
            for all steps (Gal & Ghahramani 2016); training mode only.
        zoneout: probability that a unit of the state keeps its previous value at a step
            (Krueger et al. 2016). A float for every state, or one per state (for the LSTM
            ``(z_h, z_c)``). In evaluation mode each unit moves by the expected ``1 - z`` of
            its update instead.
        dtype: ``np.float32`` (default) or ``np.float64``, for parameters, inputs and states.
        seed: an int, a ``numpy.random.Generator`` or None, for the initialisation: every
            parameter is drawn from U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default. The draws are
            made in float64, so the same seed gives the same weights (rounded) in float32. The
            generator then lives on as ``self.rng`` for the dropout masks.

    Parameters (``state_dict()`` names, shapes and gate order are PyTorch's), for layer ``k``
    with suffix ``_lk`` and ``_lk_reverse`` for the reverse direction:
    ``weight_ih_lk`` (G*H, D if k = 0 else K*H), ``weight_hh_lk`` (G*H, H),
    ``bias_ih_lk`` (G*H,), ``bias_hh_lk`` (G*H,).

    The cells run on :attr:`time_loop`, chosen when the layer is made (the compiled loops or the
    NumPy reference, see :func:`rnnkit.runtime.kernels.time_loop`); assign another
    :class:`~rnnkit.cells.TimeLoop` to run the layer on it.

    A layer whose parameters cannot fit in memory (with what training adds: see
    :func:`rnnkit.limits.check_parameters`) is refused with
    :class:`~rnnkit.limits.MemoryLimitError` before any weight is drawn.
    """

    #: The cell class of a layer subclass (``LSTM``: :class:`~rnnkit.cells.LSTMCell`); None here.
    cell_class: ClassVar[type[Cell] | None] = None
    #: The layer class of each named cell class, by the cell's name (see :meth:`layer_class`).
    layer_classes: ClassVar[dict[str, type[Recurrent]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that names its ``cell_class`` gets, derived from the cell: a constructor
        that takes the cell's options as keywords and forwards the rest to :class:`Recurrent`
        (its signature, for ``help()``, lists them all), a read-only property per cell option,
        the cell module's equations appended to its docstring, and its place in
        :attr:`layer_classes`."""
        super().__init_subclass__(**kwargs)
        cell_class = cls.__dict__.get("cell_class")
        if cell_class is None:
            return
        options = cell_options(cell_class)

        def __init__(self, input_size, hidden_size, num_layers=1, **layer_options):
            chosen = {k: layer_options.pop(k) for k in list(layer_options) if k in options}
            Recurrent.__init__(
                self, cell_class(**chosen), input_size, hidden_size, num_layers, **layer_options
            )

        own = list(inspect.signature(Recurrent.__init__).parameters.values())
        cell_params = [p.replace(kind=p.KEYWORD_ONLY) for p in options.values()]
        i = [p.name for p in own].index("num_layers") + 1
        __init__.__signature__ = inspect.Signature(own[:1] + own[2:i] + cell_params + own[i:])
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__doc__ = f"Make the layer; arguments as :class:`{cls.__name__}` says."
        cls.__init__ = __init__
        for name in options:
            if not hasattr(cls, name):
                setattr(cls, name, property(lambda self, n=name: getattr(self.cell, n)))
        module = sys.modules[cell_class.__module__]
        if cls.__doc__ and module.__doc__:
            cls.__doc__ = (
                f"{cls.__doc__}\n    Equations (from :mod:`{module.__name__}`):\n\n"
                + "\n".join(f"    {line}" if line else "" for line in module.__doc__.splitlines())
            )
        if cell_class.name:
            Recurrent.layer_classes[cell_class.name] = cls

    @classmethod
    def layer_class(cls, cell_class: type[Cell]) -> type[Recurrent] | None:
        """The layer class made for ``cell_class`` (``LSTM`` for ``LSTMCell``), or None."""
        layer = Recurrent.layer_classes.get(cell_class.name or "")
        return layer if layer is not None and layer.cell_class is cell_class else None

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        dropout: float = 0.0,
        variational: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        dtype: Any = np.float32,
        seed: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"cell must be an rnnkit.cells.Cell, got {type(cell).__name__}")
        self.cell = cell
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.bias = _checks.boolean("bias", bias)
        self.batch_first = _checks.boolean("batch_first", batch_first)
        self.bidirectional = _checks.boolean("bidirectional", bidirectional)
        self.dropout = _checks.probability("dropout", dropout)
        self.variational = _checks.boolean("variational", variational)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout)
        n_states = len(cell.state_names)
        rates = zoneout if isinstance(zoneout, (tuple, list)) else (zoneout,) * n_states
        if len(rates) != n_states:
            raise ValueError(
                f"zoneout must be a float or {n_states} floats, one per state "
                f"{cell.state_names}, got {zoneout!r}"
            )
        self.zoneout = tuple(_checks.probability("zoneout", z) for z in rates)
        if (self.recurrent_dropout or any(self.zoneout)) and not cell.supports_regularisation:
            raise ValueError(
                f"recurrent_dropout and zoneout need a cell that supports them, "
                f"{type(cell).__name__} does not"
            )
        self.dtype = _checks.float_dtype(dtype)
        self.num_directions = 2 if self.bidirectional else 1
        count = self.count_parameters(
            cell.num_gates,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.num_directions,
            self.bias,
        )
        limits.check_parameters(
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}{', bidirectional' if self.bidirectional else ''})",
            count,
            self.dtype.itemsize,
        )
        self.time_loop = kernels.time_loop(cell)  # None: the cell runs its sequences itself
        rng = _checks.rng(seed)
        H, G = self.hidden_size, cell.num_gates
        bound = 1.0 / np.sqrt(H)
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else H * self.num_directions
            shapes = {"weight_ih": (G * H, in_size), "weight_hh": (G * H, H)}
            if self.bias:
                shapes |= {"bias_ih": (G * H,), "bias_hh": (G * H,)}
            for direction in range(self.num_directions):
                for kind, shape in shapes.items():
                    value = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                    self._params[self._name(kind, layer, direction)] = value
        self.rng = rng

    @staticmethod
    def count_parameters(
        num_gates: int,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        num_directions: int = 1,
        bias: bool = True,
    ) -> int:
        """The number of parameters of a layer of these sizes (a Python int, computed before
        anything is allocated): per direction, ``G*H*(D + H)`` weights in the first layer and
        ``G*H*(K*H + H)`` in each layer above, plus ``2*G*H`` biases per layer."""
        G, H, K, L = int(num_gates), int(hidden_size), int(num_directions), int(num_layers)
        first, upper = G * H * (int(input_size) + H), G * H * (K * H + H)
        biases = 2 * G * H * L if bias else 0
        return K * (first + (L - 1) * upper + biases)

    def memory_estimate(self, T: int, B: int) -> int:
        """An estimate of the bytes a :meth:`forward` over T steps and B sequences allocates (a
        Python int; nothing is allocated): the cache it keeps for :meth:`backward` (every layer's
        and direction's states and the values its cell saves per step, the concatenated outputs
        of a bidirectional layer, the dropout and zoneout masks), the input projection of one
        layer and the output ``y``; in training mode also the working arrays of one layer's
        backward pass (the gate gradients, twice, and the input gradients). :meth:`forward`
        refuses, with :class:`~rnnkit.limits.MemoryLimitError`, a pass whose estimate exceeds
        the memory available (see :mod:`rnnkit.limits`)."""
        TB, H, K, L = int(T) * int(B), self.hidden_size, self.num_directions, self.num_layers
        G, n = self.cell.num_gates, len(self.cell.state_names)
        equations = getattr(self.cell, "equations", None)
        saved = sum(equations.saved) if isinstance(equations, StepEquations) else G + n
        per_step = L * K * H * (n + saved + (n if any(self.zoneout) else 0))  # the cell caches
        if K == 2:
            per_step += L * K * H  # the two directions' outputs concatenated, per layer
        if self.training and self.dropout > 0.0 and not self.variational:
            per_step += (L - 1) * K * H  # the keep masks between layers
        per_step += G * H + K * H  # one layer's input projection; the output y
        if self.training:
            D = max(self.input_size, K * H)
            per_step += 2 * G * H + H + 2 * D + K * H  # da, dgh, h_in, dx and its sum, dy
        return TB * per_step * self.dtype.itemsize

    # -- naming ---------------------------------------------------------------------------------

    @staticmethod
    def _name(kind: str, layer: int, direction: int) -> str:
        return f"{kind}_l{layer}" + ("_reverse" if direction else "")

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state tensors: ``("h0",)``, or ``("h0", "c0")`` for the LSTM."""
        return tuple(f"{s}0" for s in self.cell.state_names)

    def cell_params(self, layer: int, direction: int = 0) -> CellParams:
        """The live parameters of one layer and direction, as the cell takes them."""
        p = [self._params.get(self._name(k, layer, direction)) for k in PARAM_KINDS]
        return CellParams(*p)

    def packed_weights(self, backward: bool = False) -> tuple[Any, ...] | None:
        """Every layer's and direction's weights packed by its time loop
        (:class:`~rnnkit.cells.base.PackedWeights`, in the order ``layer * K + direction``) for
        the products of the forward pass or, with ``backward``, of both passes: for
        :meth:`forward`'s ``packed``. None when the layer's loops pack nothing (the NumPy
        loops read the weights as they are).

        A caller that runs the layer over many short calls (a decoder run one step at a time)
        packs once and passes them to each call, so that no call packs the weights again: the
        same results, bit for bit. They are copies: they hold as long as the parameters do not
        change (pack again after an optimiser step or ``load_state_dict``)."""
        pack = None if self.time_loop is None else self.time_loop.pack
        if pack is None:
            return None
        return tuple(
            pack(self.cell_params(layer, direction), backward)
            for layer in range(self.num_layers)
            for direction in range(self.num_directions)
        )

    # -- checks ---------------------------------------------------------------------------------

    def _check_packed(self, packed: Any) -> None:
        """``packed`` must be shaped like :meth:`packed_weights`' result."""
        n = self.num_layers * self.num_directions
        if not isinstance(packed, tuple) or len(packed) != n:
            raise TypeError(
                f"packed must be a tuple of {n} PackedWeights (packed_weights()), got "
                f"{type(packed).__name__}"
            )
        for k, p in enumerate(packed):
            if not isinstance(p, PackedWeights):
                raise TypeError(
                    f"packed[{k}] must be a PackedWeights (packed_weights()), got "
                    f"{type(p).__name__}"
                )

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_state(self, name: str, state: Any, B: int) -> tuple[np.ndarray, ...]:
        """A state argument (None, an array, or an (h, c) pair for the LSTM) as a tuple."""
        shape = self._state_shape(B)
        n = len(self.cell.state_names)
        if state is None:
            return tuple(np.zeros(shape, dtype=self.dtype) for _ in range(n))
        if n == 1:
            return (_checks.array(name, state, shape, self.dtype, finite=True),)
        if not isinstance(state, (tuple, list)) or len(state) != n:
            kind = type(state).__name__
            what = f"{'an' if kind[0] in 'aeiou' or kind == 'ndarray' else 'a'} {kind}"
            if isinstance(state, (tuple, list)):
                what += f" of length {len(state)}"
            parts = ", ".join(self.cell.state_names)
            container = "a pair" if n == 2 else f"a tuple of {n}"
            raise TypeError(
                f"{name} must be {container} ({parts}) of arrays of shape {shape} for "
                f"{type(self).__name__}, got {what}"
            )
        return tuple(
            _checks.array(f"{name}[{i}] ({s})", v, shape, self.dtype, finite=True)
            for i, (s, v) in enumerate(zip(self.cell.state_names, state))
        )

    def _check_x(self, x: Any, finite: bool = True) -> np.ndarray:
        layout = ("B", "T") if self.batch_first else ("T", "B")
        x = _checks.array("x", x, (*layout, self.input_size), self.dtype, finite=finite)
        return x.swapaxes(0, 1) if self.batch_first else x  # (T, B, D)

    def _mask(self, lengths: Any, T: int, B: int) -> np.ndarray | None:
        if lengths is None:
            return None
        lens = _checks.lengths(lengths, T, B)
        if np.all(lens == T):
            return None  # every sequence is full length: skip the masking work
        return (np.arange(T)[:, None] < lens[None, :])[:, :, None]  # (T, B, 1)

    # -- regularisation -------------------------------------------------------------------------

    def _keep_scale(self, shape: tuple[int, ...], p: float) -> np.ndarray:
        """A Bernoulli(1 - p) keep mask over 1 - p (inverted dropout), in the layer's dtype."""
        keep = self.rng.random(shape) >= p
        return keep * np.asarray(1.0 / (1.0 - p), dtype=self.dtype)

    def _regularisation(self, T: int, B: int) -> Regularisation | None:
        """Fresh recurrent dropout and zoneout masks for one layer and direction, or None."""
        H = self.hidden_size
        h_drop = None
        if self.training and self.recurrent_dropout > 0.0:
            h_drop = self._keep_scale((B, H), self.recurrent_dropout)  # one per sequence
        zone = None
        if any(self.zoneout):
            if self.training:  # True: the unit takes its update; False: it keeps its value
                zone = tuple(self.rng.random((T, B, H)) >= z if z else None for z in self.zoneout)
            else:  # the expectation of the update
                zone = tuple(
                    np.broadcast_to(np.asarray(1.0 - z, dtype=self.dtype), (T, B, H)) if z else None
                    for z in self.zoneout
                )
        if h_drop is None and zone is None:
            return None
        return Regularisation(h_drop, zone)

    # -- forward and backward -------------------------------------------------------------------

    def forward(
        self,
        x: np.ndarray,
        state: Any = None,
        lengths: Any = None,
        *,
        packed: tuple[Any, ...] | None = None,
    ) -> tuple[np.ndarray, Any, RecurrentCache]:
        """Run the layers over a batch of sequences.

        Args:
            x: inputs, (T, B, D), or (B, T, D) with ``batch_first``.
            state: initial state, (L*K, B, H) for RNN and GRU, the pair (h0, c0) for LSTM, index
                ``layer * K + direction`` as in PyTorch; None means zeros.
            lengths: optional integer array (B,) of valid steps per sequence, each in [0, T].
                Steps past a sequence's length are padding: its outputs there are 0, its final
                state is the one after its last valid step, and the reverse direction runs over
                its valid part only (PyTorch's packed sequences). A zero length gives zero
                outputs and the initial state as final state.
            packed: optional, :meth:`packed_weights` of the current parameters: the products
                read them instead of packing the weights at each call (the same result, bit for
                bit; worth it for many calls of a few steps each). For :meth:`backward` too,
                when packed with ``backward=True``.

        Returns:
            ``(y, state_T, cache)``: outputs (T, B, K*H) or (B, T, K*H) with ``batch_first``
            (the two directions concatenated, forward first); the final state, structured like
            ``state``; and the cache for :meth:`backward`. The cache refers to ``x`` and the
            parameters without copying them: do not modify them in place before ``backward``.

        Raises:
            ValueError, TypeError: for ``x``, ``state`` or ``lengths`` of the wrong shape or
                dtype, an empty batch or sequence (B or T = 0), or values that are not finite.
            rnnkit.limits.MemoryLimitError: the pass would need more memory than is available
                (:meth:`memory_estimate`); nothing is computed.
        """
        xt = self._check_x(x, finite=False)  # (T, B, D)
        T, B, _ = xt.shape
        limits.check_memory(
            lambda: f"the forward pass of {self!r} over T={T} steps, B={B} sequences",
            self.memory_estimate(T, B),
        )
        _checks.finite_values("x", x)  # after the memory check: it reads all of x
        mask = self._mask(lengths, T, B)
        state0 = self._check_state("state", state, B)
        K = self.num_directions
        finals = tuple(np.empty(self._state_shape(B), dtype=self.dtype) for _ in state0)
        if packed is not None:
            self._check_packed(packed)
        layer_in, caches, drop = xt, [], []
        for layer in range(self.num_layers):
            scale = None
            if layer > 0 and self.training and self.dropout > 0.0:
                shape = (1, *layer_in.shape[1:]) if self.variational else layer_in.shape
                scale = self._keep_scale(shape, self.dropout)  # (T or 1, B, K*H)
                layer_in = layer_in * scale
            drop.append(scale)
            outs, layer_caches = [], []
            for direction in range(K):
                k = layer * K + direction
                s0 = tuple(s[k] for s in state0)
                p = self.cell_params(layer, direction)
                if packed is not None:
                    p = p._replace(packed=packed[k])
                extra = {} if (reg := self._regularisation(T, B)) is None else {"reg": reg}
                if self.time_loop is not None:
                    extra["loop"] = self.time_loop
                if direction == 0:
                    hs, s_T, cache = self.cell.forward(layer_in, s0, p, mask, **extra)
                else:
                    m = None if mask is None else mask[::-1]
                    hs, s_T, cache = self.cell.forward(layer_in[::-1], s0, p, m, **extra)
                    hs = hs[::-1]
                for final, value in zip(finals, s_T):
                    final[k] = value
                outs.append(hs)
                layer_caches.append(cache)
            layer_in = outs[0] if K == 1 else np.concatenate(outs, axis=-1)  # (T, B, K*H)
            caches.append(tuple(layer_caches))
        y = workspace.empty(layer_in.shape, layer_in.dtype)  # (T, B, K*H), the caller's own
        if mask is not None:
            np.multiply(layer_in, mask, out=y)
        else:
            np.copyto(y, layer_in)
        if self.batch_first:
            y = np.ascontiguousarray(y.swapaxes(0, 1))  # (B, T, K*H)
        state_T = finals[0] if len(finals) == 1 else finals
        return y, state_T, RecurrentCache(tuple(caches), mask, tuple(drop), T, B, self)

    def backward(
        self, dy: np.ndarray, cache: RecurrentCache, dstate: Any = None, *, defer: bool = False
    ) -> tuple[np.ndarray, Any, Any]:
        """Backpropagate through time through every layer and direction.

        Args:
            dy: dL/dy, shaped like ``y``. Entries at padded steps are ignored (``y`` is 0 there).
            cache: from :meth:`forward`; it is not modified, so it can be used again.
            dstate: optional dL/d(final state), structured like the state; None means zeros.
            defer: return, instead of the gradients, what they are made from: pass the third
                results of any number of calls to :meth:`weight_grads` for their sum, made
                with one matrix product per weight (for a layer run one step at a time).

        Returns:
            ``(dx, dstate0, grads)``: dL/dx shaped like ``x``; dL/d(initial state), always
            structured like the state (an array, or the pair (dh0, dc0) for LSTM), zeros
            included; and dL/d(parameter) for every parameter, keyed like :meth:`state_dict`
            (with ``defer``: a tuple for :meth:`weight_grads`).
        """
        if not isinstance(cache, RecurrentCache) or cache.layer is not self:
            got = type(cache).__name__
            if isinstance(cache, RecurrentCache):
                got = f"the RecurrentCache of another layer, {cache.layer!r}"
            raise TypeError(
                f"cache must be the RecurrentCache returned by this layer's forward, got {got}"
            )
        T, B, K, H = cache.T, cache.B, self.num_directions, self.hidden_size
        layout = (B, T) if self.batch_first else (T, B)
        dy = _checks.array("dy", dy, (*layout, K * H), self.dtype)
        dyt = dy.swapaxes(0, 1) if self.batch_first else dy  # (T, B, K*H)
        if cache.mask is not None:
            dyt = dyt * cache.mask  # padded outputs are constant 0
        dstate_T = self._check_state("dstate", dstate, B)
        dstate0 = tuple(np.empty_like(s) for s in dstate_T)
        grads: dict[str, np.ndarray] = {}
        works: list[Any] = [None] * (self.num_layers * K)
        defer = _checks.boolean("defer", defer)
        cell_defers = defer and isinstance(self.cell, StepCell)  # others compute theirs
        d_above = dyt
        for layer in range(self.num_layers - 1, -1, -1):
            d_below = None
            for direction in range(K):
                k = layer * K + direction
                dhs = d_above[..., direction * H : (direction + 1) * H]  # (T, B, H)
                ds_T = tuple(s[k] for s in dstate_T)
                cell_cache = cache.cells[layer][direction]
                extra = {"defer": True} if cell_defers else {}
                if direction == 0:
                    dx, ds0, g = self.cell.backward(dhs, ds_T, cell_cache, **extra)
                else:
                    dx, ds0, g = self.cell.backward(dhs[::-1], ds_T, cell_cache, **extra)
                    dx = dx[::-1]
                for out, value in zip(dstate0, ds0):
                    out[k] = value
                works[k] = g
                if isinstance(g, CellGrads):
                    for kind, value in zip(PARAM_KINDS, g):
                        if value is not None:
                            grads[self._name(kind, layer, direction)] = value
                d_below = dx if d_below is None else d_below + dx
            if cache.dropout[layer] is not None:
                d_below = d_below * cache.dropout[layer]
            d_above = d_below  # (T, B, D or K*H)
        dx = d_above
        dx = np.ascontiguousarray(dx.swapaxes(0, 1) if self.batch_first else dx)
        ds0 = dstate0[0] if len(dstate0) == 1 else dstate0
        if defer:
            return dx, ds0, tuple(works)
        grads = {name: grads[name] for name in self._params}  # state_dict order
        return dx, ds0, grads

    def weight_grads(self, deferred: list[tuple]) -> dict[str, np.ndarray]:
        """The parameter gradients of any number of :meth:`backward` calls made with
        ``defer=True`` (their third results), summed, keyed like :meth:`state_dict`: each
        cell's weight gradients over the steps of every call in one matrix product
        (:meth:`~rnnkit.cells.StepCell.weight_grads`)."""
        if not deferred:
            raise ValueError("weight_grads needs the results of at least one backward call")
        grads: dict[str, np.ndarray] = {}
        K = self.num_directions
        for k in range(self.num_layers * K):
            parts = [works[k] for works in deferred]
            if isinstance(parts[0], CellGrads):  # a cell that computes its gradients itself
                g = CellGrads(*(None if v is None else sum(p[i] for p in parts)
                                for i, v in enumerate(parts[0])))  # fmt: skip
            else:
                g = self.cell.weight_grads(parts)
            for kind, value in zip(PARAM_KINDS, g):
                if value is not None:
                    grads[self._name(kind, k // K, k % K)] = value
        return {name: grads[name] for name in self._params}  # state_dict order

    # -- streaming ------------------------------------------------------------------------------

    def step(self, x: Any, state: Any = None) -> tuple[np.ndarray, Any]:
        """One time step of every layer, for streaming (online) inference.

        ``y, state = layer.step(x_t, state)`` over the steps of a sequence gives the outputs
        and final state of ``layer.forward`` in evaluation mode, one step at a time (dropout
        off, zoneout's expectation), whatever the ``training`` flag says. With the compiled
        kernels (see :mod:`rnnkit.runtime.kernels`) a step is one call into C over the live
        parameters, which reads each weight once and allocates nothing but the new state;
        otherwise it runs :meth:`forward` over a sequence of one step.

        Args:
            x: the inputs of one step, (B, D), in the layer's dtype.
            state: as for :meth:`forward`: (L, B, H) for RNN and GRU, the pair (h, c) for LSTM;
                None means zeros.

        Returns:
            ``(y, state)``: the top layer's output (B, H), which is a view of the new state's
            ``h[L - 1]``, and the new state, structured like ``state`` (new arrays: the state
            passed in is not modified).

        Raises:
            ValueError: for a bidirectional layer (its reverse direction needs the whole
                sequence), and, as :meth:`forward`, for inputs or states of the wrong shape or
                dtype, an empty batch (B = 0), or values that are not finite.
        """
        made = self.__dict__.get("_step_plan")  # (the time loop it was made for, the plan)
        if made is None or made[0] is not self.time_loop:
            from rnnkit.runtime.kernels.step import plan_for

            made = (self.time_loop, plan_for(self))  # made again when time_loop is replaced
            object.__setattr__(self, "_step_plan", made)
        plan = made[1]
        if plan is not None and type(x) is np.ndarray and x.ndim == 2 and len(x) > 0:
            # the fast path: the extension checks shapes, dtypes and that x is finite itself
            if state is None or _finite_state(state):
                try:
                    return self._step_compiled(plan, x, state)
                except (TypeError, ValueError):
                    pass  # the checked path below says what is wrong, or converts the layout
        if self.bidirectional:
            raise ValueError(
                "step() needs a unidirectional layer: the reverse direction of a bidirectional "
                "one reads the sequence from its end"
            )
        x = _checks.array("x", x, ("B", self.input_size), self.dtype, finite=True)
        state0 = self._check_state("state", state, x.shape[0])
        if plan is not None:
            state0 = tuple(np.ascontiguousarray(s) for s in state0)
            return self._step_compiled(plan, np.ascontiguousarray(x), state0)
        training = self.training
        try:
            self.training = False
            y, state_T, _ = self.forward(x[:, None] if self.batch_first else x[None], state)
        finally:
            self.training = training
        return y[:, 0] if self.batch_first else y[0], state_T

    @property
    def step_plan(self) -> Any:
        """The compiled plan :meth:`step` runs (see :mod:`rnnkit.runtime.kernels.step`), or None:
        the reference path, or no step taken yet since the layer's :attr:`time_loop` was set."""
        made = self.__dict__.get("_step_plan")
        return None if made is None or made[0] is not self.time_loop else made[1]

    def _step_compiled(self, plan: Any, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        shape = self._state_shape(x.shape[0])
        n = len(self.cell.state_names) * (1 if state is not None else 2)  # the new (and zeros)
        limits.check_memory(
            lambda: f"the state of {self!r} for B={x.shape[0]} sequences",
            n * limits.array_bytes(shape, self.dtype.itemsize),
        )
        h = np.empty(shape, dtype=self.dtype)
        if len(self.cell.state_names) == 1:
            h_prev = np.zeros(shape, dtype=self.dtype) if state is None else state
            if isinstance(h_prev, tuple):
                h_prev = h_prev[0]
            plan.step(x, h_prev, None, h, None)
            return h[-1], h
        h_prev, c_prev = (np.zeros(shape, dtype=self.dtype),) * 2 if state is None else state
        c = np.empty(shape, dtype=self.dtype)
        plan.step(x, h_prev, c_prev, h, c)
        return h[-1], (h, c)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave out the step plan, which refers to this layer's arrays (a
        copy makes its own), and keep the time loop by name (``"compiled"``, ``"numpy"``): it is
        chosen again where the copy is loaded (see :func:`rnnkit.runtime.kernels.named_loop`)."""
        state = self.__dict__.copy()
        state.pop("_step_plan", None)
        if state.get("time_loop") is not None:
            state["time_loop"] = state["time_loop"].name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        loop = state.get("time_loop")
        if isinstance(loop, str):
            state["time_loop"] = kernels.named_loop(state["cell"], loop)
        self.__dict__.update(state)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}"
            for k, v in [
                ("num_layers", self.num_layers),
                ("bias", self.bias),
                ("batch_first", self.batch_first),
                ("bidirectional", self.bidirectional),
                ("dropout", self.dropout),
                ("variational", self.variational),
                ("recurrent_dropout", self.recurrent_dropout),
                ("zoneout", self.zoneout),
            ]
            if v
            != {
                "num_layers": 1,
                "bias": True,
                "dropout": 0.0,
                "recurrent_dropout": 0.0,
                "zoneout": (0.0,) * len(self.zoneout),
            }.get(k, False)
        )
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}{self._cell_repr()}"
            f", dtype={self.dtype.name})"
        )

    def _cell_repr(self) -> str:
        if type(self).cell_class is None:
            return f", cell={self.cell!r}"
        return "".join(f", {k}={v!r}" for k, v in self.cell.options().items())


def _finite_state(state: Any) -> bool:
    """Whether every float array of a state (an array or a tuple of them) is finite; anything
    else is left to the checked path, which explains what is wrong with it."""
    for s in state if isinstance(state, (tuple, list)) else (state,):
        if isinstance(s, np.ndarray) and s.dtype.kind == "f" and not np.isfinite(s).all():
            return False
    return True


class RNN(Recurrent):
    """Vanilla (Elman) RNN layer: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Args: as :class:`Recurrent`, plus ``nonlinearity``: ``"tanh"`` (default) or ``"relu"``.
    Parameters per layer and direction: ``weight_ih`` (H, D), ``weight_hh`` (H, H),
    ``bias_ih`` (H,), ``bias_hh`` (H,).

    Example:
        >>> import numpy as np, rnnkit
        >>> rnn = rnnkit.RNN(4, 8, num_layers=2, nonlinearity="relu", dtype=np.float64, seed=0)
        >>> x = np.random.default_rng(1).normal(size=(6, 3, 4))  # (T, B, D)
        >>> y, h_T, cache = rnn.forward(x)
        >>> y.shape, h_T.shape
        ((6, 3, 8), (2, 3, 8))
        >>> dx, dh0, grads = rnn.backward(np.ones_like(y), cache)
        >>> dx.shape, dh0.shape, grads["weight_hh_l1"].shape
        ((6, 3, 4), (2, 3, 8), (8, 8))
    """

    cell_class = RNNCell


class LSTM(Recurrent):
    """LSTM layer, PyTorch's equations and gate order i, f, g, o; the state is the pair (h, c).

    Args: as :class:`Recurrent`.
    Parameters per layer and direction: ``weight_ih`` (4H, D), ``weight_hh`` (4H, H),
    ``bias_ih`` (4H,), ``bias_hh`` (4H,), rows in gate order i, f, g, o.

    Example:
        >>> import numpy as np, rnnkit
        >>> lstm = rnnkit.LSTM(4, 8, bidirectional=True, batch_first=True, dtype=np.float64, seed=0)
        >>> x = np.random.default_rng(1).normal(size=(3, 6, 4))  # (B, T, D)
        >>> y, (h_T, c_T), cache = lstm.forward(x, lengths=[6, 2, 0])
        >>> y.shape, h_T.shape, float(abs(y[2]).max())  # the empty sequence gives zeros
        ((3, 6, 16), (2, 3, 8), 0.0)
        >>> dx, (dh0, dc0), grads = lstm.backward(np.ones_like(y), cache, dstate=(h_T, c_T))
        >>> sorted(grads)[:2]
        ['bias_hh_l0', 'bias_hh_l0_reverse']
    """

    cell_class = LSTMCell


class GRU(Recurrent):
    """GRU layer, gate order r, z, n; ``reset="after"`` (default, PyTorch/cuDNN) or ``"before"``.

    Args: as :class:`Recurrent`, plus ``reset``: ``"after"`` applies the reset gate to
    ``W_hn h + b_hn`` (PyTorch, cuDNN, Keras ``reset_after=True``); ``"before"`` applies it to
    ``h`` before the product, ``W_hn (r * h) + b_hn`` (Cho et al. 2014). Both update
    ``h_t = (1 - z) * n + z * h_{t-1}``.
    Parameters per layer and direction: ``weight_ih`` (3H, D), ``weight_hh`` (3H, H),
    ``bias_ih`` (3H,), ``bias_hh`` (3H,), rows in gate order r, z, n.

    Example:
        >>> import numpy as np, rnnkit
        >>> gru = rnnkit.GRU(4, 8, reset="before", dtype=np.float64, seed=0)
        >>> y, h_T, cache = gru.forward(np.zeros((6, 3, 4)))
        >>> y.shape, h_T.shape, gru.state_dict()["weight_hh_l0"].shape
        ((6, 3, 8), (1, 3, 8), (24, 8))
    """

    cell_class = GRUCell
