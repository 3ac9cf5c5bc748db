"""Every cell, above all the reset-before GRU (which PyTorch lacks), against the independent
step-by-step reference of tests/reference.py, in float64 to 1e-9 relative to the magnitude.

Unlike PyTorch's packed sequences the reference takes zero-length sequences, so these tests also
pin down their semantics: zero outputs, final state = initial state, and gradients that pass
straight from the final state to the initial one.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KINDS, as_tuple, assert_results_close, make_layer, state_like

pytest.importorskip("torch")
import reference

RTOL = 1e-9


def compare(kind, *, D, H, num_layers, T, B, bidirectional, batch_first, bias, lengths, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(
        kind,
        D,
        H,
        num_layers,
        seed=seed,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
    )
    x = rng.standard_normal((T, B, D))
    state = state_like(layer, B, rng)
    x_in = np.ascontiguousarray(x.swapaxes(0, 1)) if batch_first else x
    y, s_T, cache = layer.forward(x_in, state, lengths)
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal(s.shape) for s in as_tuple(s_T))
    dx, ds0, grads = layer.backward(dy, cache, dstate if len(dstate) > 1 else dstate[0])
    if batch_first:
        y, dx, dy = (a.swapaxes(0, 1) for a in (y, dx, dy))
    ref = reference.forward_backward(
        kind, layer, x, as_tuple(state), lengths, np.ascontiguousarray(dy), dstate
    )
    assert_results_close(layer, (y, s_T, dx, ds0, grads), ref, RTOL)
    return layer, state, s_T, dstate, ds0, y, dx


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_against_reference(kind, num_layers, bidirectional, with_lengths):
    lengths = np.array([4, 0, 1, 3, 0]) if with_lengths else None
    compare(
        kind,
        D=3,
        H=4,
        num_layers=num_layers,
        T=4,
        B=5,
        bidirectional=bidirectional,
        batch_first=False,
        bias=True,
        lengths=lengths,
        seed=11,
    )


@pytest.mark.parametrize("reset", ["before", "after"])
@pytest.mark.parametrize(
    "sizes",
    [
        dict(D=1, H=1, T=1, B=1),
        dict(D=2, H=1, T=5, B=2),
        dict(D=4, H=5, T=1, B=3),
        dict(D=3, H=6, T=7, B=1),
    ],
    ids=["all1", "H1", "T1", "B1"],
)
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bt"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_gru_forms_edge_sizes(reset, sizes, batch_first, bias):
    compare(
        f"gru_{reset}",
        num_layers=2,
        bidirectional=True,
        batch_first=batch_first,
        bias=bias,
        lengths=None,
        seed=3,
        **sizes,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_zero_length_semantics(kind):
    """Zero-length rows: outputs 0, final state = initial state, d(initial) = d(final)."""
    lengths = np.array([0, 3, 0])
    _, state, s_T, dstate, ds0, y, dx = compare(
        kind,
        D=2,
        H=3,
        num_layers=2,
        T=3,
        B=3,
        bidirectional=True,
        batch_first=False,
        bias=True,
        lengths=lengths,
        seed=5,
    )
    empty = lengths == 0
    assert np.all(y[:, empty] == 0.0)
    assert np.all(dx[:, empty] == 0.0)
    for s0, sT, d0, dT in zip(as_tuple(state), as_tuple(s_T), as_tuple(ds0), dstate):
        assert np.array_equal(sT[:, empty], s0[:, empty])
        assert np.array_equal(d0[:, empty], dT[:, empty])
