"""Regularisation inside the recurrence: recurrent (variational) dropout, zoneout, variational
inter-layer dropout. Gradient checks with fixed masks in training and evaluation mode, for every
cell, and the semantics checked against the equations written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import KINDS, make_layer
from rnnkit.cells.base import sigmoid

TOL = 1e-6
SETTINGS = {
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "zoneout": dict(zoneout=0.3),
    "all": dict(zoneout=0.3, recurrent_dropout=0.3, dropout=0.3, variational=True),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_with_fixed_masks(kind, setting, training):
    layers = 2 if setting == "all" else 1  # inter-layer dropout needs two layers
    layer = make_layer(kind, 2, 3, layers, seed=0, bidirectional=True, **SETTINGS[setting])
    layer.train(training)
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    errors = rnnkit.gradcheck(layer, x, lengths=[5, 0, 3])
    assert max(errors.values()) < TOL, errors


def test_lstm_zoneout_per_state_rates():
    layer = make_layer("lstm", 3, 4, seed=0, zoneout=(0.0, 0.5))
    _, _, cache = layer.forward(np.random.default_rng(0).standard_normal((40, 50, 3)))
    zone_h, zone_c = cache.cells[0][0].reg.zone
    assert zone_h is None and abs(zone_c.mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match="one per state"):
        make_layer("gru_after", 3, 4, zoneout=(0.1, 0.2))


def test_zoneout_training_keeps_units_and_eval_uses_the_expectation():
    z = 0.25
    layer = make_layer("rnn_tanh", 2, 5, seed=1, zoneout=z)
    x = np.random.default_rng(1).standard_normal((30, 20, 2))
    y, _, cache = layer.forward(x)
    kept = (y[1:] == y[:-1]).mean()  # a zoned-out unit repeats its value exactly
    assert abs(kept - z) < 0.03
    assert np.array_equal(cache.cells[0][0].reg.zone[0][1:], y[1:] != y[:-1])
    layer.eval()
    y_eval, _, _ = layer.forward(x)
    p = layer.state_dict()
    h, expected = np.zeros((20, 5)), []
    for t in range(30):  # h_t = (1 - z) tanh(...) + z h_{t-1}
        cand = np.tanh(
            x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
        )
        h = (1 - z) * cand + z * h
        expected.append(h)
    np.testing.assert_allclose(y_eval, np.array(expected), rtol=1e-13, atol=1e-15)


def test_gru_recurrent_dropout_is_gals():
    """One mask per sequence on h where it enters W_hh; the interpolation uses h itself."""
    layer = make_layer("gru_after", 3, 4, seed=2, recurrent_dropout=0.5)
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    y, _, cache = layer.forward(x)
    m = cache.cells[0][0].reg.h_drop
    assert m.shape == (2, 4) and set(np.unique(m)) <= {0.0, 2.0}
    p, H = layer.state_dict(), 4
    h = np.zeros((2, 4))
    for t in range(5):
        gi = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"]
        gh = (h * m) @ p["weight_hh_l0"].T + p["bias_hh_l0"]
        r, z = sigmoid(gi[:, :H] + gh[:, :H]), sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        h = (1 - z) * n + z * h
        np.testing.assert_allclose(y[t], h, rtol=1e-13, atol=1e-15)
    layer.eval()
    assert layer.forward(x)[2].cells[0][0].reg is None  # no dropout in evaluation


def test_variational_masks_are_constant_over_time():
    layer = make_layer("lstm", 3, 4, 2, seed=3, dropout=0.5, variational=True)
    _, _, cache = layer.forward(np.ones((7, 3, 3)))
    assert cache.dropout[1].shape == (1, 3, 4) and cache.dropout[0] is None
    layer = make_layer("lstm", 3, 4, 2, seed=3, dropout=0.5)
    assert layer.forward(np.ones((7, 3, 3)))[2].dropout[1].shape == (7, 3, 4)


def test_cells_without_regularisation_support_are_refused():
    class Plain(rnnkit.cells.Cell):
        pass

    with pytest.raises(ValueError, match="need a cell that supports them"):
        rnnkit.Recurrent(Plain(), 2, 3, zoneout=0.1)
