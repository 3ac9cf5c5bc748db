r"""A new cell defined entirely in this module runs through the public layers, models, trainer,
streaming step and pickle with no edit to the package: the proof of ``docs/adding-a-cell.md``.

The cell is a minimal gated unit with one update gate z and a candidate n, both read from the
same recurrent product (so the shared parameter-gradient code applies unchanged):

.. math::

    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} h_{t-1} + b_{hn}) \\
    h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot n_t

Backward, with :math:`\delta h_t` the total gradient at :math:`h_t`:

.. math::

    \delta a^{(z)}_t &= \delta h_t \odot (h_{t-1} - n_t) \odot z_t (1 - z_t), \qquad
    \delta a^{(n)}_t = \delta h_t \odot (1 - z_t) \odot (1 - n_t^2) \\
    \delta h_{t-1} &= \mathrm{dhs}_{t-1} + \delta h_t \odot z_t + W_{hh}^\top \delta a_t
"""

from __future__ import annotations

import pickle
from typing import NamedTuple

import numpy as np
import pytest

import rnnkit
from rnnkit.cells import CellParams, StepCell, StepEquations
from rnnkit.cells.base import sigmoid
from rnnkit.data import SequenceData
from rnnkit.nn import Recurrent
from rnnkit.runtime import kernels

# -- the whole cell: its step equations, parameter layout and name --------------------------------


class GatedPrepared(NamedTuple):
    W_hhT: np.ndarray  # (H, 2H)
    W_hh: np.ndarray  # (2H, H)


def gated_step_forward(xg_t, prev, h_in, P, out_states, out_saved) -> None:
    """z and n from one recurrent product; h~ = z * h_prev + (1 - z) * n; saves z and n (2H)."""
    (a,) = out_saved  # (B, 2H): the activated gates z, n
    H = a.shape[1] // 2
    np.matmul(h_in, P.W_hhT, out=a)
    a += xg_t
    sigmoid(a[:, :H], out=a[:, :H])
    np.tanh(a[:, H:], out=a[:, H:])
    z, n = a[:, :H], a[:, H:]
    (h,) = out_states
    np.subtract(prev[0], n, out=h)
    h *= z
    h += n


def gated_step_backward(d_cand, prev, h_in, saved_t, P):
    (dh,) = d_cand
    (a,) = saved_t
    H = a.shape[1] // 2
    z, n = a[:, :H], a[:, H:]
    da = np.empty_like(a)
    np.multiply(dh * (prev[0] - n), z * (1.0 - z), out=da[:, :H])
    np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da[:, H:])
    return da, None, da @ P.W_hh, (dh * z,)


class GatedCell(StepCell):
    """The minimal gated unit of this module's docstring."""

    name = "test_gated"
    num_gates = 2
    state_names = ("h",)
    equations = StepEquations(gated_step_forward, gated_step_backward, saved=(2,))

    def prepare(self, params: CellParams) -> GatedPrepared:
        return GatedPrepared(params.W_hh.T, params.W_hh)


# -- the tests ------------------------------------------------------------------------------------


def direct_forward(layer: Recurrent, x: np.ndarray) -> np.ndarray:
    """The module docstring's equations, written out plainly, for one layer, one direction."""
    p = layer.cell_params(0)
    H = layer.hidden_size
    h = np.zeros((x.shape[1], H))
    out = []
    for x_t in x:
        a = x_t @ p.W_ih.T + p.b_ih + h @ p.W_hh.T + p.b_hh
        z, n = 1.0 / (1.0 + np.exp(-a[:, :H])), np.tanh(a[:, H:])
        h = z * h + (1.0 - z) * n
        out.append(h)
    return np.stack(out)


def layer(**options) -> Recurrent:
    return Recurrent(GatedCell(), 3, 4, dtype=np.float64, seed=0, **options)


def test_the_cell_is_registered_by_name_and_runs_the_reference_loops():
    assert rnnkit.cells.Cell.named("test_gated") is GatedCell
    assert GatedCell().kernel is None
    assert kernels.time_loop(GatedCell()).name == "numpy"
    assert layer().time_loop.name == "numpy"


def test_forward_follows_the_equations():
    x = np.random.default_rng(1).normal(size=(6, 2, 3))
    y, h_T, _ = layer().forward(x)
    np.testing.assert_allclose(y, direct_forward(layer(), x), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(h_T[0], y[-1])


@pytest.mark.parametrize(
    "options",
    [
        {"num_layers": 2, "bidirectional": True},
        {"num_layers": 2, "bias": False},
    ],
    ids=["stacked-bidirectional", "no-bias"],
)
def test_gradients_match_finite_differences(options):
    rng = np.random.default_rng(2)
    net = layer(**options)
    K = 2 if options.get("bidirectional") else 1
    state = rng.normal(size=(options["num_layers"] * K, 4, 4))
    errors = rnnkit.gradcheck(net, rng.normal(size=(5, 4, 3)), state, np.array([5, 0, 2, 4]))
    assert set(errors) == {"x", *net.state_names, *net.state_dict()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-7, f"worst relative error {errors[worst]:.2e} in {worst}"


def test_regularisation_inside_the_recurrence_applies():
    """Zoneout in evaluation mode (its expectation) is deterministic: gradient-check it; and
    recurrent dropout changes the training output but not the evaluation one."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3, 3))
    zoned = layer(zoneout=0.3).eval()
    errors = rnnkit.gradcheck(zoned, x)
    assert max(errors.values()) <= 1e-7
    assert not np.allclose(zoned.forward(x)[0], layer().forward(x)[0])
    dropped = layer(recurrent_dropout=0.5)
    assert not np.allclose(dropped.forward(x)[0], layer().forward(x)[0])
    np.testing.assert_array_equal(dropped.eval().forward(x)[0], layer().forward(x)[0])


def test_streaming_steps_equal_the_sequence():
    rng = np.random.default_rng(4)
    net = layer(num_layers=2)
    x = rng.normal(size=(7, 2, 3))
    y, h_T, _ = net.forward(x)
    state = None
    for t in range(7):
        y_t, state = net.step(x[t], state)
        np.testing.assert_allclose(y_t, y[t], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(state, h_T, rtol=1e-14, atol=1e-15)


def test_a_model_built_by_the_cells_name_trains():
    rng = np.random.default_rng(5)
    lengths = rng.integers(2, 9, 48)
    xs = [rng.normal(size=(int(t), 3)) for t in lengths]
    ys = [np.array([x[:, 0].sum()]) for x in xs]
    data = SequenceData(xs, ys, batch_size=8, dtype=np.float64, shuffle=False)
    model = rnnkit.SequenceRegressor(3, 8, 1, cell="test_gated", dtype=np.float64, seed=1)
    assert isinstance(model.rnn.cell, GatedCell)
    trainer = rnnkit.Trainer(model, rnnkit.optim.Adam(model.parameters(), lr=0.02), "mse")
    before = trainer.evaluate(data)["loss"]
    trainer.fit(data, epochs=20)
    assert trainer.evaluate(data)["loss"] < 0.1 * before


def test_the_layer_pickles():
    net = layer(num_layers=2, bidirectional=True)
    x = np.random.default_rng(6).normal(size=(5, 2, 3))
    copy = pickle.loads(pickle.dumps(net))
    assert isinstance(copy.cell, GatedCell) and copy.time_loop.name == "numpy"
    np.testing.assert_array_equal(copy.forward(x)[0], net.forward(x)[0])
