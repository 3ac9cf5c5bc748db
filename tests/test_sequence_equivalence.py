"""A sequence through a layer equals the same layer run one step at a time with the state
carried, forward and backward (Karpathy's checkSequentialMatchesBatch); the reverse direction of
a bidirectional layer equals a forward layer on the time-reversed valid part; a padded row equals
that row alone, unpadded. Float64, tolerances at rounding level.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import KINDS, as_tuple, assert_close, make_layer, state_like

RTOL = 1e-12
T, B, D, H = 6, 4, 3, 5


def _state(parts):
    return parts if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_steps_equal_sequence(kind, num_layers, with_lengths):
    rng = np.random.default_rng(0)
    layer = make_layer(kind, D, H, num_layers, seed=1)
    x = rng.standard_normal((T, B, D))
    state0 = state_like(layer, B, rng)
    lengths = np.array([6, 0, 2, 5]) if with_lengths else None

    y, s_T, cache = layer.forward(x, state0, lengths)
    dy = rng.standard_normal(y.shape)
    ds_T = _state(tuple(rng.standard_normal(s.shape) for s in as_tuple(s_T)))
    dx, ds0, grads = layer.backward(dy, cache, ds_T)

    # one step at a time; a row past its length gets length 0 for that step
    s, ys, caches = state0, [], []
    for t in range(T):
        step_lengths = None if lengths is None else (t < lengths).astype(int)
        y_t, s, c = layer.forward(x[t : t + 1], s, step_lengths)
        ys.append(y_t)
        caches.append(c)
    assert_close(np.concatenate(ys), y, RTOL, "y")
    for a, b in zip(as_tuple(s), as_tuple(s_T)):
        assert_close(a, b, RTOL, "final state")

    ds, dxs, total = ds_T, [None] * T, {k: 0.0 for k in grads}
    for t in range(T - 1, -1, -1):
        dxs[t], ds, g = layer.backward(dy[t : t + 1], caches[t], ds)
        for k in total:
            total[k] = total[k] + g[k]
    assert_close(np.concatenate(dxs), dx, RTOL, "dx")
    for a, b in zip(as_tuple(ds), as_tuple(ds0)):
        assert_close(a, b, RTOL, "d(initial state)")
    for k in grads:
        assert_close(total[k], grads[k], RTOL, f"d{k}")


@pytest.mark.parametrize("kind", KINDS)
def test_reverse_direction_is_forward_on_reversed_valid_part(kind):
    rng = np.random.default_rng(2)
    bi = make_layer(kind, D, H, seed=3, bidirectional=True)
    fwd = make_layer(kind, D, H, seed=4)
    fwd.load_state_dict(
        {
            k.removesuffix("_reverse"): v
            for k, v in bi.state_dict().items()
            if k.endswith("_reverse")
        }
    )
    x = rng.standard_normal((T, B, D))
    state = state_like(bi, B, rng)
    lengths = np.array([6, 3, 0, 1])
    y, s_T, cache = bi.forward(x, state, lengths)
    dy = rng.standard_normal(y.shape)
    dy[..., :H] = 0.0  # only the reverse direction's output reaches the loss
    _, ds0, grads = bi.backward(dy, cache)
    total = {k: 0.0 for k in fwd.state_dict()}
    for b, n in enumerate(lengths):
        row_state = _state(tuple(s[1:2, b : b + 1] for s in as_tuple(state)))
        if n == 0:
            continue
        y_b, s_b, c_b = fwd.forward(x[:n, b : b + 1][::-1].copy(), row_state)
        assert_close(y[:n, b, H:][::-1], y_b[:, 0], RTOL, f"reverse output of row {b}")
        for a, ref in zip(as_tuple(s_T), as_tuple(s_b)):
            assert_close(a[1, b], ref[0, 0], RTOL, f"reverse final state of row {b}")
        _, ds_b, g = fwd.backward(dy[:n, b : b + 1, H:][::-1].copy(), c_b)
        for a, ref in zip(as_tuple(ds0), as_tuple(ds_b)):
            assert_close(a[1, b], ref[0, 0], RTOL, f"reverse d(initial state) of row {b}")
        for k in total:
            total[k] = total[k] + g[k]
    for k, v in total.items():
        assert_close(grads[k + "_reverse"], v, RTOL, f"d{k}_reverse")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padded_row_equals_row_alone(kind, bidirectional):
    """Padding is invisible: whatever the padded steps hold, a row behaves as if run alone."""
    rng = np.random.default_rng(6)
    layer = make_layer(kind, D, H, 2, seed=7, bidirectional=bidirectional)
    x = rng.standard_normal((T, B, D))
    lengths = np.array([2, 6, 4, 1])
    x[np.arange(T)[:, None] >= lengths] = 1e3  # garbage in the padding
    state = state_like(layer, B, rng)
    y, s_T, cache = layer.forward(x, state, lengths)
    dy = rng.standard_normal(y.shape)
    dx, ds0, grads = layer.backward(dy, cache)
    assert np.all(dx[np.arange(T)[:, None] >= lengths] == 0.0)
    total = {k: 0.0 for k in grads}
    for b, n in enumerate(lengths):
        row_state = _state(tuple(s[:, b : b + 1] for s in as_tuple(state)))
        y_b, s_b, c_b = layer.forward(x[:n, b : b + 1], row_state)
        assert_close(y[:n, b], y_b[:, 0], RTOL, f"y of row {b}")
        assert np.all(y[n:, b] == 0.0)
        for a, ref in zip(as_tuple(s_T), as_tuple(s_b)):
            assert_close(a[:, b], ref[:, 0], RTOL, f"final state of row {b}")
        dx_b, ds_b, g = layer.backward(dy[:n, b : b + 1], c_b)
        assert_close(dx[:n, b], dx_b[:, 0], RTOL, f"dx of row {b}")
        for a, ref in zip(as_tuple(ds0), as_tuple(ds_b)):
            assert_close(a[:, b], ref[:, 0], RTOL, f"d(initial state) of row {b}")
        for k in total:
            total[k] = total[k] + g[k]
    for k in grads:  # the batch's gradient is the sum of the rows' gradients
        assert_close(grads[k], total[k], RTOL, f"d{k}")


def test_cache_reusable_and_forwards_independent():
    """No hidden state: a cache can be back-propagated twice, and two forwards can be in flight."""
    rng = np.random.default_rng(8)
    layer = make_layer("lstm", D, H, 2, seed=9, bidirectional=True)
    x1, x2 = rng.standard_normal((T, B, D)), rng.standard_normal((T + 2, B, D))
    y1, _, c1 = layer.forward(x1)
    y2, _, c2 = layer.forward(x2, lengths=[8, 1, 0, 3])
    dy1, dy2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    first = layer.backward(dy1, c1)
    layer.backward(dy2, c2)
    again = layer.backward(dy1, c1)
    assert np.array_equal(first[0], again[0])
    for k in first[2]:
        assert np.array_equal(first[2][k], again[2][k])
    assert np.array_equal(layer.forward(x1)[0], y1)


def test_returned_arrays_are_not_the_cache():
    """Writing into y or the final state does not change what backward computes."""
    layer = make_layer("gru_after", D, H, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, D))
    y, h_T, cache = layer.forward(x)
    dy = np.ones_like(y)
    before = layer.backward(dy, cache)[2]["weight_hh_l0"].copy()
    y[...] = 7.0
    h_T[...] = 7.0
    assert np.array_equal(layer.backward(dy, cache)[2]["weight_hh_l0"], before)


def test_batch_first_is_a_transpose():
    rng = np.random.default_rng(1)
    tb = make_layer("lstm", D, H, 2, seed=2, bidirectional=True)
    bt = make_layer("lstm", D, H, 2, seed=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((T, B, D))
    lengths = [6, 2, 0, 4]
    y, _, c = tb.forward(x, lengths=lengths)
    y_bt, _, c_bt = bt.forward(np.ascontiguousarray(x.swapaxes(0, 1)), lengths=lengths)
    assert np.array_equal(y_bt, y.swapaxes(0, 1))
    dy = rng.standard_normal(y.shape)
    dx, _, g = tb.backward(dy, c)
    dx_bt, _, g_bt = bt.backward(np.ascontiguousarray(dy.swapaxes(0, 1)), c_bt)
    assert np.array_equal(dx_bt, dx.swapaxes(0, 1))
    for k in g:
        assert np.array_equal(g[k], g_bt[k])


def test_seed_generator_and_reproducibility():
    a = rnnkit.LSTM(3, 4, 2, seed=5).state_dict()
    b = rnnkit.LSTM(3, 4, 2, seed=np.random.default_rng(5)).state_dict()
    c = rnnkit.LSTM(3, 4, 2, seed=6).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["weight_ih_l0"], c["weight_ih_l0"])
    bound = 1 / np.sqrt(4)
    assert all(np.abs(v).max() <= bound for v in a.values())
