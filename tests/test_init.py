"""Initialisation schemes: the properties each is defined by, in place, seeded."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import init


def test_orthogonal_per_gate_block():
    layer = init.init_recurrent(rnnkit.LSTM(3, 8, dtype=np.float64), seed=0)
    W_hh = layer.parameters()["weight_hh_l0"]
    for k in range(4):
        block = W_hh[8 * k : 8 * (k + 1)]
        np.testing.assert_allclose(block @ block.T, np.eye(8), atol=1e-12)
    W = np.empty((6, 4))
    init.orthogonal_(W, gain=2.0, seed=1)  # tall: orthonormal columns, times the gain
    np.testing.assert_allclose(W.T @ W, 4.0 * np.eye(4), atol=1e-12)


def test_irnn_identity_and_small_inputs():
    rnn = rnnkit.RNN(5, 6, 2, nonlinearity="relu", dtype=np.float64)
    init.init_recurrent(rnn, input="normal", recurrent="identity", input_std=0.001, seed=0)
    sd = rnn.state_dict()
    assert np.array_equal(sd["weight_hh_l1"], np.eye(6))
    assert np.all(sd["bias_ih_l0"] == 0.0) and np.all(sd["bias_hh_l1"] == 0.0)
    assert 0.0005 < sd["weight_ih_l0"].std() < 0.002
    # an IRNN with zero input keeps its state: identity recurrence, ReLU of a positive state
    one = init.init_recurrent(
        rnnkit.RNN(5, 6, nonlinearity="relu", dtype=np.float64),
        input="normal",
        recurrent="identity",
        seed=0,
    )
    h0 = np.abs(np.random.default_rng(0).standard_normal((1, 1, 6)))
    _, h_T, _ = one.forward(np.zeros((10, 1, 5)), h0)
    np.testing.assert_allclose(h_T, h0, rtol=1e-15)


def test_forget_bias_lands_in_the_forget_gate():
    lstm = init.init_recurrent(rnnkit.LSTM(2, 3, 2, bidirectional=True), forget_bias=1.0, seed=0)
    for name, value in lstm.state_dict().items():
        if name.startswith("bias_ih"):
            assert value.tolist() == [0.0] * 3 + [1.0] * 3 + [0.0] * 6
        elif name.startswith("bias_hh"):
            assert not value.any()
    with pytest.raises(ValueError, match="forget_bias is for LSTM layers only"):
        init.init_recurrent(rnnkit.GRU(2, 3), forget_bias=1.0)


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal"])
def test_xavier_variance_per_block(scheme):
    W = np.empty((3 * 200, 300))
    getattr(init, f"{scheme}_")(W, blocks=3, seed=0)
    expected = 2.0 / (200 + 300)  # fan_out of one gate block, fan_in
    for k in range(3):
        assert W[200 * k : 200 * (k + 1)].var() == pytest.approx(expected, rel=0.02)


def test_in_place_seeded_and_pytorch_scheme():
    a = rnnkit.GRU(3, 4, dtype=np.float64, seed=1)
    live = a.parameters()["weight_ih_l0"]
    init.init_recurrent(a, input="pytorch", recurrent="pytorch", bias=None, seed=3)
    assert a.parameters()["weight_ih_l0"] is live
    assert np.abs(live).max() <= 0.5
    b = init.init_recurrent(
        rnnkit.GRU(3, 4, dtype=np.float64, seed=1),
        input="pytorch",
        recurrent="pytorch",
        bias=None,
        seed=3,
    )
    assert all(np.array_equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="input must be one of"):
        init.init_recurrent(rnnkit.RNN(2, 2), input="he")
    with pytest.raises(ValueError, match="recurrent must be one of"):
        init.init_recurrent(rnnkit.RNN(2, 2), recurrent="eye")
    with pytest.raises(TypeError, match=r"layer must be an rnnkit\.nn\.Recurrent"):
        init.init_recurrent(rnnkit.Linear(2, 2))
    with pytest.raises(ValueError, match="identity_ needs square blocks"):
        init.identity_(np.empty((4, 3)))
    with pytest.raises(ValueError, match="not divisible into 3 blocks"):
        init.orthogonal_(np.empty((4, 4)), blocks=3)
