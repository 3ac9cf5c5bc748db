"""Streaming inference, ``layer.step(x_t, state)``: step by step equals the whole sequence in
evaluation mode, for every cell and mode, stacked layers, float32 and float64, on the compiled
step and on the reference path; the plan follows in-place parameter updates; copies get their
own plan; bad input gets a clear error."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import rnnkit
from conftest import KINDS, as_tuple, assert_close, make_layer, state_like
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import loops
from rnnkit.runtime.kernels import step as kstep

RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def _stream(layer, xs, state):
    """Step through xs (T, B, D); the outputs (T, B, H) and the last state."""
    ys = []
    for x in xs:
        y, state = layer.step(x, state)
        ys.append(y)
    return np.stack(ys), state


def _check_stream(layer, T, B, rng, with_state=True):
    xs = rng.standard_normal((T, B, layer.input_size)).astype(layer.dtype)
    state0 = state_like(layer, B, rng) if with_state else None
    copies = [s.copy() for s in as_tuple(state0)] if with_state else []
    layer.eval()
    y_ref, s_ref, _ = layer.forward(xs, state0)
    layer.train()  # step ignores the flag: evaluation mode always
    ys, s_T = _stream(layer, xs, state0)
    rtol = RTOL[layer.dtype.type]
    assert_close(ys, y_ref, rtol, "y")
    for a, b in zip(as_tuple(s_T), as_tuple(s_ref), strict=True):
        assert a.dtype == layer.dtype
        assert_close(a, b, rtol, "state")
    for before, after in zip(copies, as_tuple(state0)):  # the state passed in is untouched
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("L", "B", "D", "H"), [(1, 1, 3, 5), (2, 3, 4, 1), (3, 2, 17, 9)])
def test_compiled_step_matches_the_sequence(compiled_layers, kind, dtype, L, B, D, H, rng):
    layer = make_layer(kind, D, H, L, dtype=dtype, dropout=0.3)
    _check_stream(layer, 6, B, rng)
    assert layer.step_plan is not None  # the compiled step ran


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_step_every_instruction_set(compiled_layers, every_isa, dtype, rng):
    """The matrix-vector products fold blocks of one vector of rows at a time: rows past the
    last whole block (G H = 84, 63 or 21 rows) and inputs past the last whole vector (D = 37,
    H = 21), and exact multiples of every width (D = H = 64), in every variant for this CPU."""
    for name in every_isa:
        assert compiled_layers.isa(name)[0] == name
        for kind in KINDS:
            for D, H in [(37, 21), (64, 64)]:
                layer = make_layer(kind, D, H, 2, dtype=dtype)
                _check_stream(layer, 4, 2, rng)
                assert layer.step_plan is not None


@pytest.mark.parametrize("kind", list(KINDS))
def test_compiled_step_without_bias_and_initial_state(compiled_layers, kind, rng):
    layer = make_layer(kind, 7, 6, 2, bias=False)
    _check_stream(layer, 5, 2, rng, with_state=False)
    assert layer.step_plan is not None


@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_step_matches_the_sequence(kind, rng, monkeypatch):
    monkeypatch.setenv(kernels.ENV, "numpy")
    layer = make_layer(kind, 4, 5, 2)
    _check_stream(layer, 5, 3, rng)
    assert layer.step_plan is None


@pytest.mark.parametrize(
    "options",
    [{"zoneout": 0.3, "kind": "lstm"}, {"num_layers": kstep.MAX_LAYERS + 1, "kind": "gru_after"}],
)
def test_what_the_plan_leaves_out_takes_the_reference(options, rng):
    kind = options.pop("kind")
    L = options.pop("num_layers", 1)
    layer = make_layer(kind, 3, 4, L, **options)
    _check_stream(layer, 4, 2, rng)
    assert layer.step_plan is None


def test_the_plan_follows_in_place_updates(compiled_layers, rng):
    layer = make_layer("lstm", 3, 4)
    x = rng.standard_normal((1, 3))
    y0, _ = layer.step(x)
    assert layer.step_plan is not None
    for value in layer.parameters().values():
        value *= 1.5  # as an optimiser does: in place
    layer.eval()
    y_ref, _, _ = layer.forward(x[None])
    y1, _ = layer.step(x)
    assert not np.allclose(y0, y1)
    assert_close(y1, y_ref[0], 1e-12, "after an update")
    other = make_layer("lstm", 3, 4, seed=5)
    layer.load_state_dict(other.state_dict())
    assert_close(layer.step(x)[0], other.step(x)[0], 1e-15, "after load_state_dict")


def test_copies_get_their_own_plan(compiled_layers, rng):
    layer = make_layer("gru_after", 3, 4)
    x = rng.standard_normal((2, 3))
    y, _ = layer.step(x)
    assert layer.step_plan is not None
    twin = copy.deepcopy(layer)
    assert twin.time_loop.name == "compiled" and twin.step_plan is None
    for value in twin.parameters().values():
        value[...] = 0.0
    np.testing.assert_array_equal(layer.step(x)[0], y)
    np.testing.assert_array_equal(twin.step(x)[0], np.zeros_like(y))
    assert twin.step_plan is not None and twin.step_plan is not layer.step_plan


def test_layouts_the_fast_path_refuses_are_converted(compiled_layers, rng):
    layer = make_layer("lstm", 3, 4, 2)
    wide = rng.standard_normal((2, 6))
    h, c = state_like(layer, 2, rng)
    y, (h1, c1) = layer.step(wide[:, ::2], (np.asfortranarray(h), c))
    y_ref, (h_ref, c_ref) = layer.step(np.ascontiguousarray(wide[:, ::2]), (h, c))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(h1, h_ref)
    np.testing.assert_array_equal(c1, c_ref)
    assert layer.step_plan is not None


@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_bad_input(path, monkeypatch):
    if path == "compiled" and kernels.native() is None:
        pytest.skip("compiled kernels unavailable")
    monkeypatch.setenv(kernels.ENV, path)
    layer = make_layer("lstm", 3, 4, dtype=np.float32)
    ok = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        layer.step(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"x must be 2-D with shape \(B, 3\), got 1-D"):
        layer.step(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="x must have dtype float32"):
        layer.step(ok.astype(np.float64))
    with pytest.raises(ValueError, match="x must be finite"):
        layer.step(np.full((2, 3), np.nan, np.float32))
    with pytest.raises(TypeError, match="state must be a pair"):
        layer.step(ok, np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\) must have shape \(1, 2, 4\)"):
        layer.step(ok, (np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 4), np.float32)))
    bi = make_layer("gru_after", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="step\\(\\) needs a unidirectional layer"):
        bi.step(np.zeros((1, 3)))


# -- the models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_step_matches_forward(cell, rng):
    import rnnkit

    lm = rnnkit.LanguageModel(11, 5, 7, 2, cell=cell, dropout=0.2, dtype=np.float64, seed=1)
    ids = rng.integers(0, 11, size=(6, 3))  # (T, B)
    lm.eval()
    logits, state_T, _ = lm.forward(ids)
    lm.train()
    state, steps = None, []
    for t in range(6):
        out, state = lm.step(ids[t], state)
        steps.append(out)
    assert_close(np.stack(steps), logits, 1e-12, "logits")
    for a, b in zip(as_tuple(state), as_tuple(state_T)):
        assert_close(a, b, 1e-12, "state")
    with pytest.raises(ValueError, match=r"ids must be 1-D \(B,\)"):
        lm.step(ids)


@pytest.mark.parametrize("pooling", ["last", None])
def test_sequence_model_step_matches_forward(pooling, rng):
    import rnnkit

    model = rnnkit.SequenceClassifier(4, 6, 3, 2, pooling=pooling, dtype=np.float64, seed=2)
    x = rng.standard_normal((5, 2, 4))
    model.eval()
    out, _, _ = model.forward(x)
    state, steps = None, []
    for t in range(5):
        o, state = model.step(x[t], state)
        steps.append(o)
    expected = out if pooling is None else out[None]
    assert_close(np.stack(steps) if pooling is None else steps[-1][None], expected, 1e-12, "out")


def test_sequence_model_step_refuses_whole_sequence_pooling():
    import rnnkit

    model = rnnkit.SequenceRegressor(3, 4, pooling="mean", seed=0)
    with pytest.raises(ValueError, match='step\\(\\) needs pooling "last" or None'):
        model.step(np.zeros((1, 3), np.float32))


def test_replacing_the_time_loop_replaces_the_step_plan():
    """The compiled step follows the layer's time loop: after ``layer.time_loop`` is set to the
    reference loops, ``step`` runs the reference path, and back."""
    if kernels.native() is None:
        pytest.skip("the compiled extension is not available")
    layer = rnnkit.LSTM(3, 4, dtype=np.float64, seed=0)
    compiled = layer.time_loop = loops.compiled_loop(layer.cell)
    x = np.random.default_rng(0).normal(size=(2, 3))
    y, _ = layer.step(x)
    assert layer.step_plan is not None
    layer.time_loop = layer.cell.reference_loop()
    y_ref, _ = layer.step(x)
    assert layer.step_plan is None
    np.testing.assert_allclose(y_ref, y, rtol=1e-13)
    layer.time_loop = compiled
    layer.step(x)
    assert layer.step_plan is not None
