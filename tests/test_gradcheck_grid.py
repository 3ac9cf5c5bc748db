"""Finite-difference checks in float64 of every cell and mode.

The grid: RNN tanh and relu, LSTM, GRU after and before, x 1 and 2 layers x uni- and
bidirectional x with and without lengths (one batch mixing zero-length, short and full-length
rows) x with and without an initial state x with and without final-state gradients. Biases are
random and non-zero, upstream gradients random. The worst relative error of every tensor (x,
each initial state, each parameter) must be <= 1e-6; with rnnkit.gradcheck's fourth-order
differences a correct pass shows about 1e-8 or less.
"""

from __future__ import annotations

import itertools
import sys
import zlib

import numpy as np
import pytest

import rnnkit
from conftest import KINDS, make_layer, state_like
from rnnkit.gradcheck import relative_error

TOL = 1e-6
T, B, D, H = 5, 4, 3, 3
LENGTHS = np.array([5, 0, 2, 4])  # full, empty, short, in between

GRID = [
    pytest.param(
        kind,
        layers,
        bi,
        lens,
        st,
        ds,
        id=f"{kind}-L{layers}-{'bi' if bi else 'uni'}"
        f"-{'len' if lens else 'full'}-{'h0' if st else 'zero'}-{'dT' if ds else 'noT'}",
    )
    for kind, layers, bi, lens, st, ds in itertools.product(
        KINDS, (1, 2), (False, True), (False, True), (False, True), (False, True)
    )
]


@pytest.mark.parametrize(
    ("kind", "layers", "bi", "with_lengths", "with_state", "with_dstate"), GRID
)
def test_gradcheck(kind, layers, bi, with_lengths, with_state, with_dstate):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{layers}{bi}".encode()))
    layer = make_layer(kind, D, H, layers, seed=5, bidirectional=bi)
    x = rng.standard_normal((T, B, D))
    state = state_like(layer, B, rng) if with_state else None
    lengths = LENGTHS if with_lengths else None
    errors = rnnkit.gradcheck(
        layer, x, state, lengths, dstate="random" if with_dstate else None, seed=1
    )
    expected = {"x", *layer.state_names, *layer.state_dict()}
    assert set(errors) == expected
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"worst relative error {errors[worst]:.2e} in {worst}: {errors}"


def test_gradcheck_catches_a_wrong_gradient():
    """gradcheck itself can fail: a backward pass with one gradient off by 1e-4 is caught."""
    layer = make_layer("lstm", D, H, seed=0)

    class Broken:
        state_names = layer.state_names

        def parameters(self):
            return layer.parameters()

        def forward(self, x, state=None, lengths=None):
            return layer.forward(x, state, lengths)

        def backward(self, dy, cache, dstate=None):
            dx, ds0, grads = layer.backward(dy, cache, dstate)
            grads["bias_hh_l0"][H] *= 1.0001  # one entry of the forget-gate bias
            return dx, ds0, grads

    x = np.random.default_rng(0).standard_normal((T, B, D))
    errors = rnnkit.gradcheck(Broken(), x)
    assert errors["bias_hh_l0"] > 1e-5
    assert errors["bias_ih_l0"] < TOL


def test_relative_error():
    a = np.array([1.0, -2.0, 0.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, a * (1 + 1e-3)) == pytest.approx(1e-3 / (2 + 1e-3))
    # an entry far below the tensor's scale is judged against the scale (floor 1e-4)
    # scale = max(|a| + |n|) = 2, so the floor is 2e-4 and the error 1e-9 / 2e-4
    assert relative_error(np.array([1.0, 1e-9]), np.array([1.0, 2e-9])) == pytest.approx(5e-6)


class _Kink:
    """A one-parameter 'layer' y = relu(w x - c) whose kink lies half a step from w."""

    state_names = ("h0",)

    def __init__(self, w: float, c: float) -> None:
        self.w, self.c = np.array([w]), c

    def parameters(self):
        return {"w": self.w}

    def forward(self, x, state=None, lengths=None):
        a = self.w[0] * x - self.c
        return np.maximum(a, 0.0), np.zeros((1, 1, 1)), (x, a)

    def backward(self, dy, cache, dstate=None):
        x, a = cache
        da = dy * (a > 0)
        return da * self.w[0], np.zeros((1, 1, 1)), {"w": np.array([(da * x).sum()])}


@pytest.mark.parametrize("side", [-1, 1])
def test_gradcheck_sees_through_a_kink_next_to_the_point(side, monkeypatch):
    """A ReLU kink within the stencil would spoil the central difference; gradcheck detects it
    and refines the step, so a correct gradient still passes. Without refinement it would not."""
    eps = 1e-4
    x = np.array([[[1.5]]])
    layer = _Kink(0.3, 0.3 * 1.5 + side * 0.5 * eps * 1.5)  # kink at w = 0.3 + side * eps / 2
    assert max(rnnkit.gradcheck(layer, x, eps=eps).values()) < 1e-9
    monkeypatch.setattr(sys.modules["rnnkit.gradcheck"], "REFINEMENTS", 0)
    assert max(rnnkit.gradcheck(layer, x, eps=eps).values()) > 1e-2
