r"""Diagnostics of recurrent layers: how far back the gradient reaches, and what the units do.

**Gradient flow.** A loss that depends only on the *last* hidden state,
:math:`L = \sum_b r \cdot h_T^{(b)}` with a fixed random unit vector :math:`r`, has
:math:`\partial L / \partial h_T = r` (norm 1) for every sequence, and backpropagation through
time carries it back one step at a time:

.. math::

    \frac{\partial L}{\partial h_{t-1}} =
    \left(\frac{\partial h_t}{\partial h_{t-1}}\right)^{\!\top} \frac{\partial L}{\partial h_t}
    \quad (\text{and through } c_{t-1} \text{ for the LSTM})

so :math:`\lVert \partial L / \partial h_{T-k} \rVert` is how much a change of the state k steps
before the loss still matters to it. For the tanh RNN the Jacobian is
:math:`\mathrm{diag}(1 - h_t^2) W_{hh}`, whose norm is below 1 at the usual initialisations: the
gradient shrinks geometrically, :math:`\approx \rho^k` (Bengio et al. 1994; Pascanu et al.
2013). The LSTM's cell state carries :math:`\partial L / \partial c_{t-1} = f_t \odot
\partial L / \partial c_t + \ldots`: with forget gates near 1 the gradient survives many steps
(the constant error carousel of Hochreiter & Schmidhuber 1997).

*What the measurements show* (H = 64, D = 8, B = 16, mean of 3 seeds, standard-normal
inputs), the norm at distance 50 and 100:

=========================================  ========  ========
layer                                        k = 50   k = 100
=========================================  ========  ========
tanh RNN, PyTorch's initialisation            2e-13     1e-25
LSTM, PyTorch's initialisation                4e-12     4e-22
LSTM, forget-gate bias 1                      1e-05     5e-09
GRU, PyTorch's initialisation                 2e-10     1e-19
=========================================  ========  ========

Under PyTorch's initialisation every bias is near 0, so the LSTM's forget gates sit near
:math:`\sigma(0) = 0.5` and its gradient vanishes almost as fast as the RNN's. The classic
forget-gate bias of 1 (Gers et al. 2000, Jozefowicz et al. 2015; Keras's default) is what keeps
it alive: :func:`gradient_flow` takes ``forget_bias`` for that.

:func:`hidden_gradients` computes every :math:`\partial L / \partial h_t` exactly by running the
layer one step at a time (T calls of ``forward`` on one step each, carrying the state and keeping
each step's cache) and then calling ``backward`` on the caches in reverse order, carrying
``dstate``: the ``dstate0`` of the step that made :math:`h_t` is :math:`\partial L /
\partial h_{t-1}` (and :math:`\partial L / \partial c_{t-1}`). This is the layer's own BPTT cut
into pieces, so the last value equals the ``dstate0`` of one ``backward`` over the whole sequence
(the tests check both that and central finite differences).

**Activations.** :func:`activations` reads the hidden states, the LSTM's cell state and the gates
of a forward pass out of the layer's cache (:class:`~rnnkit.cells.base.StepCache`).

Shapes: T = time steps, B = batch, D = input size, H = hidden size, L = num_layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.cells.base import Cell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.nn.models import make_recurrent
from rnnkit.nn.recurrent import Recurrent

#: The gates of each gated cell, in the order they sit in the fused gate axis.
GATES = {LSTMCell: ("i", "f", "g", "o"), GRUCell: ("r", "z", "n")}


def _check_layer(layer: Any) -> Recurrent:
    if not isinstance(layer, Recurrent):
        raise TypeError(
            f"layer must be an rnnkit recurrent layer (RNN, LSTM, GRU), got {type(layer).__name__}"
        )
    return layer


def _time_major(layer: Recurrent, x: Any) -> np.ndarray:
    """``x`` as a (T, B, D) array of the layer's dtype (a (T, D) array is one sequence)."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"x must be an array of numbers, got dtype {x.dtype}")
    D = layer.input_size
    if x.ndim not in (2, 3) or x.shape[-1] != D or 0 in x.shape:
        layout = "(B, T" if layer.batch_first else "(T, B"
        raise ValueError(
            f"x must have shape {layout}, {D}) or (T, {D}) with T, B >= 1, got {x.shape}"
        )
    if x.ndim == 2:
        x = x[:, None, :]  # (T, 1, D)
    elif layer.batch_first:
        x = x.swapaxes(0, 1)  # (T, B, D)
    return np.ascontiguousarray(x, dtype=layer.dtype)


def _batch_layout(layer: Recurrent, a: np.ndarray) -> np.ndarray:
    """A time-major (T, B, ...) array as the layer takes it."""
    return a.swapaxes(0, 1) if layer.batch_first else a


def hidden_gradients(layer: Recurrent, x: Any, r: Any) -> np.ndarray:
    r"""dL/dh_t of the top layer at every step, for :math:`L = \sum_b r \cdot h_T^{(b)}`.

    Computed exactly, one step at a time (see the module docstring), in evaluation mode.

    Args:
        layer: a unidirectional recurrent layer (any cell, any number of layers).
        x: inputs (T, B, D), or (B, T, D) for a ``batch_first`` layer.
        r: the direction of the loss, (H,) (the same for every sequence) or (B, H).

    Returns:
        (T + 1, B, H): entry k is dL/dh_{T-k} for the top layer, k = 0 .. T, so that entry 0 is
        ``r`` itself and entry T the gradient at the initial state h_0.

    Example:
        >>> import numpy as np, rnnkit
        >>> from rnnkit.apps.diagnose import hidden_gradients
        >>> rnn = rnnkit.RNN(3, 4, dtype=np.float64, seed=0)
        >>> x = np.random.default_rng(0).normal(size=(5, 2, 3))  # (T, B, D)
        >>> g = hidden_gradients(rnn, x, np.ones(4))
        >>> g.shape, g[0, 0].tolist()
        ((6, 2, 4), [1.0, 1.0, 1.0, 1.0])
    """
    layer = _check_layer(layer)
    if layer.bidirectional:
        raise ValueError(
            "layer must be unidirectional: the reverse direction's final state comes from the "
            "first step, so a loss on the last state says nothing about distance in time"
        )
    x = _time_major(layer, x)  # (T, B, D)
    T, B, _ = x.shape
    H = layer.hidden_size
    r = np.asarray(r, dtype=layer.dtype)
    if r.shape not in ((H,), (B, H)):
        raise ValueError(f"r must have shape ({H},) or ({B}, {H}), got {r.shape}")
    with layer.evaluation():
        state, caches = None, []
        for t in range(T):
            y, state, cache = layer.forward(_batch_layout(layer, x[t : t + 1]), state)
            caches.append(cache)
        dy = np.zeros_like(y)  # the loss reads no output: only the final state
        n_states = len(layer.state_names)
        shape = (layer.num_layers, B, H)
        dstate = [np.zeros(shape, dtype=layer.dtype) for _ in range(n_states)]
        dstate[0][-1] = r  # dL/dh_T of the top layer
        out = np.empty((T + 1, B, H), dtype=layer.dtype)  # by distance from the loss
        out[0] = dstate[0][-1]
        for k, cache in enumerate(reversed(caches), start=1):
            _, d0, _ = layer.backward(dy, cache, dstate[0] if n_states == 1 else tuple(dstate))
            dstate = [d0] if n_states == 1 else list(d0)
            out[k] = dstate[0][-1]  # dL/dh_{T-k}
    return out


def _set_forget_bias(layer: Recurrent, value: float) -> None:
    """The LSTM's total forget-gate bias ``b_if + b_hf`` set to ``value`` in every layer, as
    :func:`rnnkit.init.init_recurrent` does it (in ``bias_ih``; ``bias_hh``'s block 0), leaving
    every weight as drawn."""
    H = layer.hidden_size
    for name, value_array in layer.parameters().items():
        if name.startswith("bias_ih"):
            value_array[H : 2 * H] = value
        elif name.startswith("bias_hh"):
            value_array[H : 2 * H] = 0.0


def gradient_flow(
    cell: str = "rnn",
    length: int = 100,
    hidden_size: int = 64,
    input_size: int = 8,
    batch_size: int = 16,
    seed: Any = 0,
    *,
    layer: Recurrent | None = None,
    forget_bias: float | None = None,
    **layer_options: Any,
) -> np.ndarray:
    r"""How the gradient of a loss on the last hidden state decays with distance in time.

    The loss is :math:`L = \sum_b r \cdot h_T^{(b)}` with a random unit vector :math:`r`, over
    ``length`` standard-normal input steps and a zero initial state; the result is the mean over
    the batch of :math:`\lVert \partial L / \partial h_{T-k} \rVert` for k = 0 .. ``length``
    (:func:`hidden_gradients`). Since :math:`\lVert r \rVert = 1`, entry 0 is 1 and every entry is
    also the ratio to it.

    Args:
        cell: "rnn" (tanh unless ``nonlinearity="relu"``), "lstm" or "gru", for a freshly
            initialised float64 layer (PyTorch's default initialisation; ``layer_options`` go to
            its constructor: ``nonlinearity``, ``reset``, ``num_layers``, ``dtype``, ...).
        length: T, the number of steps, >= 1.
        hidden_size, input_size: H and D of the fresh layer.
        batch_size: B, the number of random sequences averaged over.
        seed: int, Generator or None: the layer's weights, the inputs and ``r``.
        layer: a recurrent layer to diagnose instead of a fresh one (a trained model's
            ``.rnn``, say); its input size is used, ``cell``, ``hidden_size``, ``input_size``
            and ``layer_options`` must then be left alone. It is run in evaluation mode and not
            modified.
        forget_bias: for a fresh LSTM: set the forget gates' total bias to this value (1.0 is the
            classic choice); None keeps PyTorch's initialisation, under which the forget gates
            start near 0.5.

    Returns:
        (length + 1,): entry k is the mean norm of dL/dh at distance k from the loss, from
        the last state (k = 0) back to the initial state (k = length).

    Example:
        >>> from rnnkit.apps.diagnose import gradient_flow
        >>> rnn = gradient_flow("rnn", length=50, seed=0)
        >>> lstm = gradient_flow("lstm", length=50, forget_bias=1.0, seed=0)
        >>> rnn.shape, float(rnn[0])
        ((51,), 1.0)
        >>> bool(rnn[50] < 1e-10 < 1e-7 < lstm[50])
        True
    """
    length = _checks.positive_int("length", length)
    batch_size = _checks.positive_int("batch_size", batch_size)
    layer_rng, data_rng = _checks.rng(seed).spawn(2)
    if layer is None:
        Cell.named(cell)  # ValueError naming the known cells
        options = {"dtype": np.float64, **layer_options}
        layer = make_recurrent(
            cell,
            _checks.positive_int("input_size", input_size),
            _checks.positive_int("hidden_size", hidden_size),
            seed=layer_rng,
            **options,
        )
        if forget_bias is not None:
            if cell != "lstm":
                raise ValueError(f"forget_bias is for the LSTM only, got cell={cell!r}")
            _set_forget_bias(layer, float(forget_bias))
    else:
        _check_layer(layer)
        if layer_options or forget_bias is not None:
            given = sorted(layer_options) + (["forget_bias"] if forget_bias is not None else [])
            raise ValueError(
                f"with layer= the layer is used as it is; got options for a fresh one too: "
                f"{', '.join(given)}"
            )
    H = layer.hidden_size
    x = data_rng.standard_normal((length, batch_size, layer.input_size))  # (T, B, D)
    r = data_rng.standard_normal(H)
    r /= np.linalg.norm(r)
    grads = hidden_gradients(layer, _batch_layout(layer, x), r)  # (T + 1, B, H)
    return np.linalg.norm(grads.astype(np.float64), axis=-1).mean(axis=1)  # (T + 1,)


def activations(layer: Recurrent, x: Any, *, num_layer: int = -1) -> dict[str, np.ndarray]:
    """The states and gates of one layer over the first sequence of a batch, from its cache.

    The layer runs in evaluation mode (no dropout) and is not modified.

    Args:
        layer: a recurrent layer (``RNN``, ``LSTM``, ``GRU``).
        x: inputs (T, B, D) ((B, T, D) for ``batch_first``), or one sequence (T, D).
        num_layer: which of the stacked layers, by index (default: the last); the forward
            direction.

    Returns:
        Arrays (T, H) by name: ``"h"`` for every cell; ``"c"`` for the LSTM; the activated gates
        ``"i"``, ``"f"``, ``"g"``, ``"o"`` for the LSTM, ``"r"``, ``"z"``, ``"n"`` for the GRU
        (sigmoid gates lie in (0, 1), ``g`` and ``n`` in (-1, 1)).

    Example:
        >>> import numpy as np, rnnkit
        >>> from rnnkit.apps.diagnose import activations
        >>> lstm = rnnkit.LSTM(3, 4, num_layers=2, seed=0)
        >>> acts = activations(lstm, np.ones((7, 2, 3), dtype=np.float32))
        >>> {name: a.shape for name, a in acts.items()}
        {'h': (7, 4), 'c': (7, 4), 'i': (7, 4), 'f': (7, 4), 'g': (7, 4), 'o': (7, 4)}
    """
    layer = _check_layer(layer)
    if isinstance(num_layer, bool) or not isinstance(num_layer, (int, np.integer)):
        raise TypeError(f"num_layer must be an int, got {type(num_layer).__name__}")
    if not -layer.num_layers <= num_layer < layer.num_layers:
        raise ValueError(
            f"num_layer must index one of the {layer.num_layers} layers, got {num_layer}"
        )
    x = _time_major(layer, x)  # (T, B, D)
    with layer.evaluation():
        _, _, cache = layer.forward(_batch_layout(layer, x))
    step_cache = cache.cells[num_layer][0]  # a StepCache: states and what each step saved
    out = {name: s[:, 0].copy() for name, s in zip(layer.cell.state_names, step_cache.states)}
    gates = next((g for kind, g in GATES.items() if isinstance(layer.cell, kind)), None)
    if gates is not None:
        H = layer.hidden_size
        fused = step_cache.saved[0][:, 0]  # (T, G*H) activated gates, in the cell's order
        for k, name in enumerate(gates):
            out[name] = fused[:, k * H : (k + 1) * H].copy()
    return out
