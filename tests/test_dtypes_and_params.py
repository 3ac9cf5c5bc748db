"""float32 against float64; parameters, state_dict and load_state_dict."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import KINDS, as_tuple, assert_close, make_layer, state_like

T, B, D, H = 12, 4, 5, 6


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_float32_agrees_with_float64(kind, bidirectional):
    rng = np.random.default_rng(0)
    f64 = make_layer(kind, D, H, 2, seed=1, bidirectional=bidirectional)
    f32 = make_layer(kind, D, H, 2, dtype=np.float32, seed=1, bidirectional=bidirectional)
    f32.load_state_dict({k: v.astype(np.float32) for k, v in f64.state_dict().items()})
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    state = state_like(f32, B, rng)
    lengths = [12, 7, 0, 3]
    dy = rng.standard_normal((T, B, f64.num_directions * H)).astype(np.float32)

    def run(layer, dtype):
        st = tuple(s.astype(dtype) for s in as_tuple(state))
        y, s_T, c = layer.forward(x.astype(dtype), st if len(st) > 1 else st[0], lengths)
        dx, ds0, g = layer.backward(dy.astype(dtype), c)
        assert y.dtype == dx.dtype == dtype and all(v.dtype == dtype for v in g.values())
        return y, s_T, dx, ds0, g

    y, s_T, dx, ds0, g = run(f32, np.float32)
    y64, s_T64, dx64, ds064, g64 = run(f64, np.float64)
    rtol = 1e-5
    assert_close(y, y64, rtol, "y")
    assert_close(dx, dx64, rtol, "dx")
    for a, b in zip(as_tuple(s_T) + as_tuple(ds0), as_tuple(s_T64) + as_tuple(ds064)):
        assert_close(a, b, rtol, "state")
    for k in g:
        assert_close(g[k], g64[k], rtol, f"d{k}")


@pytest.mark.parametrize(
    ("layer", "names"),
    [
        (rnnkit.RNN(3, 4), ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]),
        (rnnkit.GRU(3, 4, bias=False), ["weight_ih_l0", "weight_hh_l0"]),
        (
            rnnkit.LSTM(3, 4, 2, bidirectional=True),
            [
                f"{w}_l{layer}{s}"
                for layer in (0, 1)
                for s in ("", "_reverse")
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ],
        ),
    ],
)
def test_state_dict_names_in_pytorch_order(layer, names):
    assert list(layer.state_dict()) == names


def test_shapes_follow_pytorch():
    sd = rnnkit.LSTM(3, 4, 2, bidirectional=True).state_dict()
    assert sd["weight_ih_l0"].shape == (16, 3)
    assert sd["weight_ih_l1_reverse"].shape == (16, 8)  # reads both directions of layer 0
    assert sd["weight_hh_l1"].shape == (16, 4)
    assert sd["bias_hh_l0_reverse"].shape == (16,)
    assert rnnkit.GRU(3, 4).state_dict()["weight_hh_l0"].shape == (12, 4)
    assert rnnkit.RNN(3, 4).state_dict()["weight_ih_l0"].shape == (4, 3)


def test_state_dict_copies_and_parameters_live():
    layer = rnnkit.GRU(3, 4, dtype=np.float64, seed=0)
    sd = layer.state_dict()
    sd["weight_hh_l0"][...] = 0.0
    assert np.abs(layer.state_dict()["weight_hh_l0"]).max() > 0.0
    live = layer.parameters()
    live["weight_hh_l0"][...] = 0.25
    assert np.all(layer.state_dict()["weight_hh_l0"] == 0.25)
    assert all(v.dtype == np.float64 for v in sd.values())


def test_load_state_dict_round_trip_keeps_live_arrays():
    a, b = rnnkit.LSTM(3, 4, seed=0), rnnkit.LSTM(3, 4, seed=1)
    live = b.parameters()["weight_ih_l0"]
    b.load_state_dict(a.state_dict())
    assert b.parameters()["weight_ih_l0"] is live  # updated in place: optimisers keep working
    for k, v in a.state_dict().items():
        assert np.array_equal(b.state_dict()[k], v)
    x = np.ones((2, 1, 3), dtype=np.float32)
    assert np.array_equal(a.forward(x)[0], b.forward(x)[0])


def test_no_bias_layers_have_no_bias_gradients():
    layer = rnnkit.RNN(3, 4, bias=False, dtype=np.float64, seed=0)
    y, _, c = layer.forward(np.ones((2, 1, 3)))
    assert set(layer.backward(y, c)[2]) == {"weight_ih_l0", "weight_hh_l0"}
    errors = rnnkit.gradcheck(layer, np.random.default_rng(0).standard_normal((3, 2, 3)))
    assert max(errors.values()) < 1e-6


def test_repr():
    assert repr(rnnkit.LSTM(3, 4)) == "LSTM(3, 4, dtype=float32)"
    assert repr(rnnkit.GRU(3, 4, 2, reset="before", bidirectional=True, dtype=np.float64)) == (
        "GRU(3, 4, num_layers=2, bidirectional=True, reset='before', dtype=float64)"
    )
    assert repr(rnnkit.RNN(1, 2, nonlinearity="relu")) == (
        "RNN(1, 2, nonlinearity='relu', dtype=float32)"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_float32_at_hidden_size_1(kind):
    """H = 1 makes every gate a strided single column, where NumPy 2.4's in-place np.negative
    on float32 is wrong: the NumPy path must not depend on it."""
    rng = np.random.default_rng(0)
    f64 = make_layer(kind, 3, 1, seed=1)
    f32 = make_layer(kind, 3, 1, dtype=np.float32, seed=1)
    f32.load_state_dict({k: v.astype(np.float32) for k, v in f64.state_dict().items()})
    f32.time_loop = f32.cell.reference_loop()
    x = rng.standard_normal((6, 4, 3))
    assert_close(f32.forward(x.astype(np.float32))[0], f64.forward(x)[0], 1e-5, "y")
