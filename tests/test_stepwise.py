"""A layer run one step at a time, as a decoder with input feeding runs: the weights packed once
for many calls (``Recurrent.packed_weights``, ``forward(packed=...)``, ``Linear.packed``), the
same bits as the plain calls, forward and backward; and the parameter gradients of many backward
calls deferred and made at once (``backward(defer=True)``, ``Recurrent.weight_grads``,
``Linear.weight_grads``), each equal in float64 to the plain calls, for every cell, stacked and
bidirectional, with and without bias, on the NumPy and the compiled paths."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import rnnkit
from rnnkit.cells import LSTMCell
from rnnkit.cells.base import Cell, PackedWeights
from rnnkit.nn.recurrent import Recurrent
from rnnkit.runtime.kernels import gemm

LAYERS = [
    ("lstm", {}),
    ("gru", {}),
    ("gru", {"reset": "before"}),
    ("rnn", {"nonlinearity": "relu"}),
    ("lstm", {"num_layers": 2, "bidirectional": True}),
    ("gru", {"num_layers": 2, "bias": False}),
]


def make(kind: str, options: dict, *, compiled: bool = True) -> Recurrent:
    """A float64 layer (D = 5, H = 4) on the compiled loops, or on the NumPy ones."""
    options = dict(options)
    layers = options.pop("num_layers", 1)
    cls = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[kind]
    layer = cls(5, 4, layers, dtype=np.float64, seed=1, **options)
    if not compiled:
        layer.time_loop = None  # the cells' NumPy reference loops
    return layer


def steps(layer: Recurrent, T: int, B: int, rng: np.random.Generator, **kw):
    """T calls of one step each, every call from the state the last one left: outputs, caches."""
    xs = [rng.standard_normal((1, B, layer.input_size)) for _ in range(T)]
    state, outs, caches = None, [], []
    for x in xs:
        y, state, cache = layer.forward(x.astype(layer.dtype), state, **kw)
        outs.append(y)
        caches.append(cache)
    return outs, caches


@pytest.mark.parametrize(("kind", "options"), LAYERS)
@pytest.mark.parametrize("exact", [False, True])
def test_packed_weights_give_the_same_bits(kind, options, exact):
    """Forward and backward (plain and deferred) with the weights packed once equal, bit for
    bit, the calls that pack them: on NumPy's products for small sizes, and on the kernel's
    (``exact_rows``) at every size."""
    layer = make(kind, options)
    rng = np.random.default_rng(0)
    with gemm.exact_rows() if exact else contextlib.nullcontext():
        plain, plain_caches = steps(layer, 4, 3, rng)
        packed = layer.packed_weights(backward=True)
        kept, kept_caches = steps(layer, 4, 3, np.random.default_rng(0), packed=packed)
        for a, b in zip(plain, kept):
            np.testing.assert_array_equal(b, a)
        ds_a = ds_b = None
        for y, ca, cb in zip(plain[::-1], plain_caches[::-1], kept_caches[::-1]):
            dy = np.cos(y)
            dx_c, _, _ = layer.backward(dy, cb, ds_b, defer=True)
            dx_a, ds_a, g_a = layer.backward(dy, ca, ds_a)
            dx_b, ds_b, g_b = layer.backward(dy, cb, ds_b)
            np.testing.assert_array_equal(dx_b, dx_a)
            np.testing.assert_array_equal(dx_c, dx_a)
            for name in g_a:
                np.testing.assert_array_equal(g_b[name], g_a[name], err_msg=name)
    assert len(packed) == layer.num_layers * layer.num_directions
    assert all(isinstance(p, PackedWeights) and p.W_hh_back is not None for p in packed)
    assert all(p.W_ih is None and p.W_hh_back is None for p in layer.packed_weights())


def test_numpy_loops_pack_nothing():
    assert make("lstm", {}, compiled=False).packed_weights() is None


@pytest.mark.parametrize("exact", [False, True])
def test_linear_packed_weight_gives_the_same_bits(exact):
    lin = rnnkit.Linear(40, 70, dtype=np.float32, seed=0)
    x = np.random.default_rng(4).standard_normal((64, 40)).astype(np.float32)
    with gemm.exact_rows() if exact else contextlib.nullcontext():
        packed = lin.packed(backward=True)
        y, cache = lin.forward(x)
        y2, cache2 = lin.forward(x, packed)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(lin.apply(x, lin.packed()), y)
        dy = np.cos(y)
        (dx, g), (dx2, g2) = lin.backward(dy, cache), lin.backward(dy, cache2)
        np.testing.assert_array_equal(dx2, dx)
        assert all(np.array_equal(g2[k], g[k]) for k in g)


@pytest.mark.parametrize(("kind", "options"), LAYERS)
@pytest.mark.parametrize("compiled", [True, False])
def test_deferred_gradients_equal_the_sum_of_the_plain_ones(kind, options, compiled):
    layer = make(kind, options, compiled=compiled)
    rng = np.random.default_rng(1)
    outs, caches = steps(layer, 5, 3, rng)
    dys = [rng.standard_normal(y.shape) for y in outs]
    total: dict[str, np.ndarray] = {}
    deferred, ds_plain, ds_deferred = [], None, None
    for dy, cache in zip(dys[::-1], caches[::-1]):  # backwards through the calls, as BPTT
        dx, ds_plain, g = layer.backward(dy, cache, ds_plain)
        for name, value in g.items():
            total[name] = total.get(name, 0) + value
        dx2, ds_deferred, work = layer.backward(dy, cache, ds_deferred, defer=True)
        np.testing.assert_array_equal(dx2, dx)  # the input gradient is not deferred
        deferred.append(work)
    grads = layer.weight_grads(deferred)
    assert list(grads) == list(layer.state_dict())
    for name in grads:
        np.testing.assert_allclose(grads[name], total[name], rtol=1e-12, atol=1e-14, err_msg=name)


class Delegating(Cell):
    """A cell that is not a StepCell (it computes its own gradients): deferring falls back to
    summing its gradients."""

    state_names = ("h", "c")
    num_gates = 4

    def __init__(self) -> None:
        self.inner = LSTMCell()

    def forward(self, x, state0, params, mask=None, reg=None, loop=None):
        return self.inner.forward(x, state0, params, mask, reg)

    def backward(self, dhs, dstate_T, cache):
        return self.inner.backward(dhs, dstate_T, cache)


def test_cells_that_compute_their_own_gradients_are_summed():
    layer = Recurrent(Delegating(), 3, 4, dtype=np.float64, seed=0)
    rng = np.random.default_rng(2)
    outs, caches = steps(layer, 3, 2, rng)
    total: dict[str, np.ndarray] = {}
    works = []
    for y, cache in zip(outs[::-1], caches[::-1]):
        _, _, g = layer.backward(np.ones_like(y), cache)
        for name, value in g.items():
            total[name] = total.get(name, 0) + value
        _, _, work = layer.backward(np.ones_like(y), cache, defer=True)
        works.append(work)
    grads = layer.weight_grads(works)
    for name in total:
        np.testing.assert_allclose(grads[name], total[name], rtol=1e-13)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_deferred_gradients(bias):
    lin = rnnkit.Linear(6, 3, bias=bias, dtype=np.float64, seed=0)
    rng = np.random.default_rng(3)
    total: dict[str, np.ndarray] = {}
    works = []
    for _ in range(4):
        y, cache = lin.forward(rng.standard_normal((2, 6)))
        dy = rng.standard_normal(y.shape)
        dx, g = lin.backward(dy, cache)
        for name, value in g.items():
            total[name] = total.get(name, 0) + value
        dx2, work = lin.backward(dy, cache, defer=True)
        np.testing.assert_array_equal(dx2, dx)
        works.append(work)
    grads = lin.weight_grads(works)
    assert sorted(grads) == sorted(total)
    for name in grads:
        np.testing.assert_allclose(grads[name], total[name], rtol=1e-13)
    # one call: bit for bit the plain backward's gradients
    assert all(np.array_equal(lin.weight_grads(works[-1:])[k], g[k]) for k in g)


def test_bad_arguments():
    layer = rnnkit.LSTM(3, 4, 2, seed=0)
    x = np.ones((1, 2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="packed must be a tuple of 2 PackedWeights"):
        layer.forward(x, packed=layer.packed_weights()[0])
    with pytest.raises(TypeError, match=r"packed\[1\] must be a PackedWeights"):
        layer.forward(x, packed=(layer.packed_weights()[0], None))
    _, _, cache = layer.forward(x)
    with pytest.raises(TypeError, match="defer must be True or False"):
        layer.backward(np.ones((1, 2, 4), dtype=np.float32), cache, defer="yes")
    with pytest.raises(ValueError, match="at least one"):
        layer.weight_grads([])
    with pytest.raises(ValueError, match="at least one"):
        rnnkit.Linear(2, 2).weight_grads([])
