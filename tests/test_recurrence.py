"""The time-loop seam: each layer runs its cells' time loops through ``layer.time_loop`` (a
:class:`~rnnkit.cells.TimeLoop`, the interface the compiled loops implement), and a cell runs the
loop it is given (its NumPy reference loops when none is). These tests pin down the contract any
implementation must keep (arguments left unmodified, masked steps carrying the state, zero gate
gradients there), show that a replacement is really used, and check the GRU docstring's mapping
between the two ways of writing the update."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KINDS, as_tuple, make_layer, state_like
from rnnkit.cells import TimeLoop
from rnnkit.cells.base import sigmoid

T, B, D, H = 5, 4, 3, 4


def guarded(loop: TimeLoop, calls: list[str]) -> TimeLoop:
    """Wrap a time loop: record each call and fail if it modifies any array argument; its
    prepare, matmul and name are the wrapped loop's."""

    def wrap(fn, what):
        def run(*args):
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            out = fn(*args)
            for a, c in zip(args, copies):
                if isinstance(a, np.ndarray):
                    assert np.array_equal(a, c), f"{what} modified one of its arguments"
            calls.append(what)
            return out

        return run

    return loop._replace(
        forward=wrap(loop.forward, "forward"), backward=wrap(loop.backward, "backward")
    )


@pytest.mark.parametrize("kind", KINDS)
def test_layers_run_their_time_loop(kind):
    rng = np.random.default_rng(0)
    plain = make_layer(kind, D, H, 2, seed=1, bidirectional=True)
    swapped = make_layer(kind, D, H, 2, seed=1, bidirectional=True)
    assert swapped.time_loop.name in ("numpy", "compiled")  # see rnnkit.runtime.kernels
    calls: list[str] = []
    loop = swapped.time_loop
    swapped.time_loop = guarded(loop, calls)
    assert swapped.time_loop[2:] == loop[2:]  # prepare, matmul, name
    assert swapped.time_loop.name == plain.time_loop.name
    x = rng.standard_normal((T, B, D))
    state = state_like(plain, B, rng)
    lengths = np.array([5, 0, 2, 4])
    y, s_T, cache = plain.forward(x, state, lengths)
    y2, s_T2, cache2 = swapped.forward(x, state, lengths)
    dy = rng.standard_normal(y.shape)
    dx, _, grads = plain.backward(dy, cache)
    dx2, _, grads2 = swapped.backward(dy, cache2)
    assert calls == ["forward"] * 4 + ["backward"] * 4  # 2 layers x 2 directions
    assert np.array_equal(y, y2)
    assert all(np.array_equal(a, b) for a, b in zip(as_tuple(s_T), as_tuple(s_T2)))
    assert np.array_equal(dx, dx2)
    assert all(np.array_equal(grads[k], grads2[k]) for k in grads)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["reference", "layer"])
def test_masked_steps_carry_state_and_get_no_gradient(kind, which):
    """The contract at a masked step: the state is carried bit for bit, the gate gradient is 0;
    for the cell's reference loops (no loop given) and the loops its layer chose."""
    rng = np.random.default_rng(1)
    layer = make_layer(kind, D, H, seed=2)
    cell = layer.cell
    loop = None if which == "reference" else layer.time_loop
    mask = np.ones((T, B, 1), dtype=bool)
    mask[1:3, 0] = False  # a hole in the middle of row 0
    mask[:, 1] = False  # row 1 is empty
    x = rng.standard_normal((T, B, D))
    state0 = tuple(rng.standard_normal((B, H)) for _ in cell.state_names)
    hs, _, cache = cell.forward(x, state0, layer.cell_params(0), mask, loop=loop)
    assert cache.loop.name == ("numpy" if loop is None else loop.name)
    assert np.array_equal(hs[1, 0], hs[0, 0]) and np.array_equal(hs[2, 0], hs[0, 0])
    assert np.array_equal(hs[:, 1], np.broadcast_to(state0[0][1], (T, H)))
    dx, dstate0, _ = cell.backward(rng.standard_normal((T, B, H)) * mask, state0, cache)
    assert np.all(dx[~mask[..., 0]] == 0.0)
    for d, s in zip(dstate0, state0):  # an empty row passes d(final state) straight through
        assert np.array_equal(d[1], s[1])


def test_gru_update_convention_mapping():
    """h = (1 - z') h_prev + z' n with z' = sigma(a') is our GRU with the z rows negated."""
    rng = np.random.default_rng(3)
    layer = make_layer("gru_after", D, H, seed=4)
    p = {k: v.copy() for k, v in layer.state_dict().items()}  # the other convention's weights
    x = rng.standard_normal((T, 1, D))
    h = np.zeros(H)
    outputs = []
    for t in range(T):  # the other convention, written out
        gi = p["weight_ih_l0"] @ x[t, 0] + p["bias_ih_l0"]
        gh = p["weight_hh_l0"] @ h + p["bias_hh_l0"]
        r = sigmoid(gi[:H] + gh[:H])
        z_other = sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        h = (1 - z_other) * h + z_other * n
        outputs.append(h)
    mapped = {k: v.copy() for k, v in p.items()}
    for v in mapped.values():
        v[H : 2 * H] *= -1.0  # the docstring's recipe: negate the z rows
    layer.load_state_dict(mapped)
    y, _, _ = layer.forward(x)
    np.testing.assert_allclose(y[:, 0], np.array(outputs), rtol=1e-13, atol=1e-15)
