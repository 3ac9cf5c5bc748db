"""Bad input raises ValueError or TypeError naming the argument, what was expected and what came.

Every case checks the exception type and, with ``match=``, that the message names the argument
(or state_dict key) and, where it helps, the expected and the received value. None of these may
surface as a bare NumPy broadcasting or index error from inside the cells.

Sizes: T = 5 steps, B = 2 sequences, D = 3 features, H = 4 hidden units.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import rnnkit

T, B, D, H = 5, 2, 3, 4
CLASSES = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
KINDS = tuple(CLASSES)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def msg(*parts: str) -> str:
    """A ``match=`` pattern: the literal parts, in order, anything in between."""
    return ".*".join(re.escape(p) for p in parts)


def make(kind: str, dtype=np.float64, **kw):
    return CLASSES[kind](D, H, dtype=dtype, seed=0, **kw)


def make_x(layer, T_: int = T, B_: int = B) -> np.ndarray:
    shape = (B_, T_, layer.input_size) if layer.batch_first else (T_, B_, layer.input_size)
    return np.random.default_rng(1).standard_normal(shape).astype(layer.dtype)


def state_shape(layer, B_: int = B) -> tuple[int, int, int]:
    return (layer.num_layers * layer.num_directions, B_, layer.hidden_size)


def make_state(layer, B_: int = B):
    """A random state for ``layer``: an array, or the pair (h, c) for the LSTM."""
    rng = np.random.default_rng(2)
    parts = [
        rng.standard_normal(state_shape(layer, B_)).astype(layer.dtype) for _ in layer.state_names
    ]
    return parts[0] if len(parts) == 1 else tuple(parts)


def fmt(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


# -- constructor ---------------------------------------------------------------------------------

SIZE_ARGS = ("input_size", "hidden_size", "num_layers")


def sizes(**override) -> dict:
    return {"input_size": D, "hidden_size": H, "num_layers": 1} | override


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arg", SIZE_ARGS)
@pytest.mark.parametrize("value", [0, -1, np.int64(0)])
def test_size_not_positive(kind, arg, value):
    with pytest.raises(ValueError, match=msg(f"{arg} must be a positive int, got {value}")):
        CLASSES[kind](**sizes(**{arg: value}))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arg", SIZE_ARGS)
@pytest.mark.parametrize(
    ("value", "got"),
    [
        (2.0, "float 2.0"),
        (True, "bool True"),
        (False, "bool False"),
        ("3", "str '3'"),
        (None, "NoneType None"),
    ],
)
def test_size_not_an_int(kind, arg, value, got):
    with pytest.raises(TypeError, match=msg(f"{arg} must be an int, got {got}")):
        CLASSES[kind](**sizes(**{arg: value}))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arg", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize(
    ("value", "got"), [(1, "int 1"), (0, "int 0"), ("yes", "str 'yes'"), (None, "NoneType None")]
)
def test_flag_not_a_bool(kind, arg, value, got):
    with pytest.raises(TypeError, match=msg(f"{arg} must be True or False, got {got}")):
        make(kind, **{arg: value})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("dtype", "got"),
    [
        (np.int32, "int32"),
        ("float16", "float16"),
        (np.float16, "float16"),
        ("int64", "int64"),
        (np.complex128, "complex128"),
        (bool, "bool"),
        ("nonsense", "'nonsense'"),
        (None, "None"),  # np.dtype(None) would be float64, silently overriding the default
    ],
)
def test_dtype_not_float32_or_float64(kind, dtype, got):
    with pytest.raises(TypeError, match=msg("dtype must be np.float32 or np.float64, got " + got)):
        make(kind, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float64"), float])
def test_dtype_accepted_forms(dtype):
    assert make("rnn", dtype=dtype).dtype in (np.float32, np.float64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("seed", "exc", "pattern"),
    [
        (1.5, TypeError, "seed must be an int, a numpy.random.Generator or None, got 1.5"),
        (3.0, TypeError, "seed must be an int, a numpy.random.Generator or None, got 3.0"),
        ("1", TypeError, "seed must be an int, a numpy.random.Generator or None, got '1'"),
        (True, TypeError, "seed must be an int, a numpy.random.Generator or None, got True"),
        (-1, ValueError, "seed must be a non-negative int, got -1"),
        (np.int64(-7), ValueError, "seed must be a non-negative int, got -7"),
    ],
)
def test_seed_invalid(kind, seed, exc, pattern):
    with pytest.raises(exc, match=msg(pattern)):
        CLASSES[kind](D, H, seed=seed)


@pytest.mark.parametrize("value", ["sigmoid", "TANH", "", None, 1])
def test_rnn_unknown_nonlinearity(value):
    with pytest.raises(
        ValueError, match=msg(f"nonlinearity must be 'tanh' or 'relu', got {value!r}")
    ):
        rnnkit.RNN(D, H, nonlinearity=value)


@pytest.mark.parametrize("value", ["middle", "After", "", None, True])
def test_gru_unknown_reset(value):
    with pytest.raises(ValueError, match=msg(f"reset must be 'after' or 'before', got {value!r}")):
        rnnkit.GRU(D, H, reset=value)


@pytest.mark.parametrize("cell", ["lstm", rnnkit.LSTM, None])
def test_recurrent_cell_not_a_cell(cell):
    with pytest.raises(TypeError, match=msg("cell must be an rnnkit.cells.Cell, got")):
        rnnkit.Recurrent(cell, D, H)


# -- x ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("batch_first", "layout"), [(False, "(T, B, 3)"), (True, "(B, T, 3)")])
@pytest.mark.parametrize("shape", [(5, 3), (3,), (), (5, 2, 1, 3)])
def test_x_wrong_ndim(kind, batch_first, layout, shape):
    layer = make(kind, batch_first=batch_first)
    x = np.zeros(shape)
    with pytest.raises(
        ValueError,
        match=msg(f"x must be 3-D with shape {layout}, got {len(shape)}-D with shape", fmt(shape)),
    ):
        layer.forward(x)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("batch_first", "layout"), [(False, "(T, B, 3)"), (True, "(B, T, 3)")])
@pytest.mark.parametrize("last", [1, 4, 0])
def test_x_wrong_input_size(kind, batch_first, layout, last):
    layer = make(kind, batch_first=batch_first)
    shape = (5, 2, last)
    with pytest.raises(ValueError, match=msg(f"x must have shape {layout}, got {fmt(shape)}")):
        layer.forward(np.zeros(shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("batch_first", "shape", "layout", "empty"),
    [
        (False, (0, 2, 3), "(T, B, 3)", "T"),
        (False, (5, 0, 3), "(T, B, 3)", "B"),
        (True, (2, 0, 3), "(B, T, 3)", "T"),
        (True, (0, 5, 3), "(B, T, 3)", "B"),
        (False, (0, 0, 3), "(T, B, 3)", "T"),
    ],
)
def test_x_empty_time_or_batch(kind, batch_first, shape, layout, empty):
    layer = make(kind, batch_first=batch_first)
    with pytest.raises(
        ValueError, match=msg(f"x must have shape {layout} with {empty} >= 1, got {fmt(shape)}")
    ):
        layer.forward(np.zeros(shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("layer_dtype", "x_dtype"), [(np.float32, np.float64), (np.float64, np.float32)]
)
def test_x_float_dtype_mismatch(kind, layer_dtype, x_dtype):
    layer = make(kind, dtype=layer_dtype)
    want, got = np.dtype(layer_dtype).name, np.dtype(x_dtype).name
    with pytest.raises(
        TypeError,
        match=msg(
            f"x must have dtype {want} (the layer's dtype), got {got}", f".astype(np.{want})"
        ),
    ):
        layer.forward(np.zeros((T, B, D), dtype=x_dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x_dtype", [np.int64, np.int32, np.bool_, np.complex128, object])
def test_x_not_float(kind, x_dtype):
    layer = make(kind)
    got = np.dtype(x_dtype).name
    with pytest.raises(
        TypeError, match=msg(f"x must have dtype float64 (the layer's dtype), got {got}")
    ):
        layer.forward(np.ones((T, B, D), dtype=x_dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "x",
    [np.zeros((T, B, D)).tolist(), tuple(np.zeros((T, B, D))), 1.0, np.float64(1.0), None],
    ids=["list", "tuple", "float", "numpy-scalar", "None"],
)
def test_x_not_an_array(kind, x):
    layer = make(kind)
    with pytest.raises(
        TypeError,
        match=msg(
            "x must be a numpy.ndarray of shape (T, B, 3) and dtype float64, "
            f"got {type(x).__name__}"
        ),
    ):
        layer.forward(x)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x_not_finite(kind, batch_first, bad):
    layer = make(kind, batch_first=batch_first)
    x = make_x(layer)
    x[1, 0, 2] = bad  # the index is reported in the caller's layout
    with pytest.raises(ValueError, match=msg(f"x must be finite, got {bad} at index (1, 0, 2)")):
        layer.forward(x)


# -- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize(
    ("config", "shape"),
    [
        ({}, (1, 3, 4)),  # wrong batch
        ({}, (2, 2, 4)),  # wrong number of layers
        ({}, (1, 2, 5)),  # wrong hidden size
        ({"num_layers": 2, "bidirectional": True}, (2, 2, 4)),  # L*K = 4 expected
        ({"batch_first": True}, (2, 1, 4)),  # states are (L*K, B, H) even with batch_first
    ],
)
def test_state_wrong_shape(kind, config, shape):
    layer = make(kind, **config)
    expected = fmt(state_shape(layer))
    with pytest.raises(
        ValueError, match=msg(f"state must have shape {expected}, got {fmt(shape)}")
    ):
        layer.forward(make_x(layer), np.zeros(shape))


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize("shape", [(2, 4), (1, 1, 2, 4), (4,)])
def test_state_wrong_ndim(kind, shape):
    layer = make(kind)
    with pytest.raises(
        ValueError,
        match=msg(
            f"state must be 3-D with shape (1, 2, 4), got {len(shape)}-D with shape {fmt(shape)}"
        ),
    ):
        layer.forward(make_x(layer), np.zeros(shape))


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize(
    "state",
    [np.zeros((1, 2, 4)).tolist(), (np.zeros((1, 2, 4)),), (np.zeros((1, 2, 4)),) * 2, 0.0],
    ids=["list", "1-tuple", "pair", "float"],
)
def test_state_not_an_array(kind, state):
    layer = make(kind)
    with pytest.raises(
        TypeError,
        match=msg(
            "state must be a numpy.ndarray of shape (1, 2, 4) and dtype float64, "
            f"got {type(state).__name__}"
        ),
    ):
        layer.forward(make_x(layer), state)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("state_dtype", [np.float32, np.int64])
def test_state_wrong_dtype(kind, state_dtype):
    layer = make(kind)
    parts = [np.zeros(state_shape(layer), dtype=state_dtype)] * len(layer.state_names)
    state = parts[0] if kind != "lstm" else tuple(parts)
    name = "state" if kind != "lstm" else "state[0] (h)"
    got = np.dtype(state_dtype).name
    with pytest.raises(
        TypeError, match=msg(f"{name} must have dtype float64 (the layer's dtype), got {got}")
    ):
        layer.forward(make_x(layer), state)


@pytest.mark.parametrize(
    ("state", "what"),
    [
        (np.zeros((1, 2, 4)), "an ndarray"),
        (np.zeros((2, 1, 2, 4)), "an ndarray"),  # stacked (h, c) in one array is not a pair
        ((np.zeros((1, 2, 4)),), "a tuple of length 1"),
        ((np.zeros((1, 2, 4)),) * 3, "a tuple of length 3"),
        ([], "a list of length 0"),
        ({"h": np.zeros((1, 2, 4)), "c": np.zeros((1, 2, 4))}, "a dict"),
        (0.0, "a float"),
    ],
    ids=["array", "stacked-array", "1-tuple", "3-tuple", "empty-list", "dict", "float"],
)
@pytest.mark.parametrize("arg", ["state", "dstate"])
def test_lstm_state_not_a_pair(state, what, arg):
    layer = make("lstm")
    x = make_x(layer)
    expected = f"{arg} must be a pair (h, c) of arrays of shape (1, 2, 4) for LSTM, got {what}"
    with pytest.raises(TypeError, match=msg(expected)):
        if arg == "state":
            layer.forward(x, state)
        else:
            y, _, cache = layer.forward(x)
            layer.backward(np.ones_like(y), cache, state)


@pytest.mark.parametrize("arg", ["state", "dstate"])
@pytest.mark.parametrize(("index", "part"), [(0, "h"), (1, "c")])
@pytest.mark.parametrize("shape", [(1, 3, 4), (1, 2, 5), (2, 2, 4)])
def test_lstm_state_part_wrong_shape(arg, index, part, shape):
    layer = make("lstm")
    x = make_x(layer)
    pair = list(make_state(layer))
    pair[index] = np.zeros(shape)
    with pytest.raises(
        ValueError,
        match=msg(f"{arg}[{index}] ({part}) must have shape (1, 2, 4), got {fmt(shape)}"),
    ):
        if arg == "state":
            layer.forward(x, tuple(pair))
        else:
            y, _, cache = layer.forward(x)
            layer.backward(np.ones_like(y), cache, tuple(pair))


@pytest.mark.parametrize(("index", "part"), [(0, "h"), (1, "c")])
def test_lstm_state_part_not_an_array(index, part):
    layer = make("lstm")
    pair = list(make_state(layer))
    pair[index] = pair[index].tolist()
    with pytest.raises(
        TypeError, match=msg(f"state[{index}] ({part}) must be a numpy.ndarray", "got list")
    ):
        layer.forward(make_x(layer), tuple(pair))


def test_lstm_state_as_list_pair_is_accepted():
    layer = make("lstm")
    _, (h, c), _ = layer.forward(make_x(layer), list(make_state(layer)))
    assert h.shape == c.shape == (1, B, H)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("arg", ["state", "dstate"])
def test_state_not_finite(kind, bad, arg):
    layer = make(kind)
    x = make_x(layer)
    state = make_state(layer)
    parts = list(state) if kind == "lstm" else [state]
    index = len(parts) - 1  # the cell state c of the LSTM, the hidden state otherwise
    parts[index][0, 1, 2] = bad
    name = f"{arg}[1] (c)" if kind == "lstm" else arg
    with pytest.raises(
        ValueError, match=msg(f"{name} must be finite, got {bad} at index (0, 1, 2)")
    ):
        if arg == "state":
            layer.forward(x, state)
        else:
            y, _, cache = layer.forward(x)
            layer.backward(np.ones_like(y), cache, state)


# -- lengths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("lengths", "got"),
    [
        ([5.0, 2.0], "dtype float64"),
        (np.array([5, 2], dtype=np.float32), "dtype float32"),
        ([True, False], "dtype bool"),
        (np.array([True, True]), "dtype bool"),
        (["5", "2"], "dtype <U1"),
        ([5, None], "dtype object"),
        ([[5, 2], [1]], "got a list that is not a regular array"),
    ],
    ids=["floats", "float32", "bools", "bool-array", "strings", "None", "ragged"],
)
def test_lengths_not_integers(kind, lengths, got):
    layer = make(kind)
    with pytest.raises(TypeError, match=msg("lengths must be an integer array of shape (2,)", got)):
        layer.forward(make_x(layer), lengths=lengths)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "lengths",
    [[[5, 2]], [[5], [2]], [5], [5, 2, 1], np.zeros(0, dtype=int), 5, np.int64(2)],
    ids=["row", "column", "too-short", "too-long", "empty", "int", "numpy-int"],
)
def test_lengths_wrong_shape(kind, lengths):
    layer = make(kind)
    got = fmt(np.shape(lengths))
    with pytest.raises(
        ValueError,
        match=msg(f"lengths must have shape (2,) (one length per sequence), got {got}"),
    ):
        layer.forward(make_x(layer), lengths=lengths)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(
    ("lengths", "where"),
    [([-1, 2], "lengths[0] = -1"), ([5, 6], "lengths[1] = 6"), ([99, -3], "lengths[0] = 99")],
)
def test_lengths_out_of_range(kind, batch_first, lengths, where):
    layer = make(kind, batch_first=batch_first)
    with pytest.raises(
        ValueError, match=msg(f"lengths must lie in [0, {T}] (T = {T}), got {where}")
    ):
        layer.forward(make_x(layer), lengths=np.array(lengths))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "lengths", [[5, 0], np.array([2, 5], dtype=np.uint8), (0, 0)], ids=["list", "uint8", "tuple"]
)
def test_lengths_valid_forms_accepted(kind, lengths):
    layer = make(kind)
    y, _, cache = layer.forward(make_x(layer), lengths=lengths)
    assert y.shape == (T, B, H)
    layer.backward(np.ones_like(y), cache)


# -- backward: cache, dy ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("cache", "got"),
    [(None, "NoneType"), ((), "tuple"), ({}, "dict"), ("cache", "str")],
    ids=["None", "tuple", "dict", "str"],
)
def test_cache_not_from_forward(kind, cache, got):
    layer = make(kind)
    with pytest.raises(
        TypeError,
        match=msg(f"cache must be the RecurrentCache returned by this layer's forward, got {got}"),
    ):
        layer.backward(np.zeros((T, B, H)), cache)


@pytest.mark.parametrize("kind", KINDS)
def test_cache_as_plain_tuple_of_its_fields(kind):
    layer = make(kind)
    y, _, cache = layer.forward(make_x(layer))
    with pytest.raises(TypeError, match=msg("cache must be the RecurrentCache", "got tuple")):
        layer.backward(np.ones_like(y), tuple(cache))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("other_kind", "config"),
    [
        ("same", {}),  # an identical layer: its cache holds the other layer's parameters
        ("rnn", {}),
        ("lstm", {}),
        ("gru", {}),
        ("same", {"bidirectional": True}),
        ("same", {"num_layers": 2}),
    ],
)
def test_cache_from_another_layer(kind, other_kind, config):
    layer = make(kind)
    other = make(kind if other_kind == "same" else other_kind, **config)
    _, _, cache = other.forward(make_x(other))
    with pytest.raises(
        TypeError,
        match=msg(
            "cache must be the RecurrentCache returned by this layer's forward, "
            f"got the RecurrentCache of another layer, {type(other).__name__}("
        ),
    ):
        layer.backward(np.ones((T, B, H)), cache)


@pytest.mark.parametrize("kind", KINDS)
def test_cache_can_be_used_twice(kind):
    layer = make(kind)
    y, _, cache = layer.forward(make_x(layer))
    dy = np.random.default_rng(3).standard_normal(y.shape)
    dx1, _, g1 = layer.backward(dy, cache)
    dx2, _, g2 = layer.backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("config", "dy_shape"),
    [
        ({}, (5, 2, 5)),  # wrong hidden size
        ({}, (5, 3, 4)),  # wrong batch
        ({}, (4, 2, 4)),  # wrong length
        ({}, (2, 5, 4)),  # batch-first layout for a time-first layer
        ({"batch_first": True}, (5, 2, 4)),  # time-first layout for a batch-first layer
        ({"bidirectional": True}, (5, 2, 4)),  # K*H = 8 expected
    ],
)
def test_dy_wrong_shape(kind, config, dy_shape):
    layer = make(kind, **config)
    y, _, cache = layer.forward(make_x(layer))
    with pytest.raises(
        ValueError, match=msg(f"dy must have shape {fmt(y.shape)}, got {fmt(dy_shape)}")
    ):
        layer.backward(np.zeros(dy_shape), cache)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dy_shape", [(5, 2), (5, 2, 4, 1), ()])
def test_dy_wrong_ndim(kind, dy_shape):
    layer = make(kind)
    _, _, cache = layer.forward(make_x(layer))
    with pytest.raises(
        ValueError,
        match=msg(
            f"dy must be 3-D with shape (5, 2, 4), got {len(dy_shape)}-D with shape {fmt(dy_shape)}"
        ),
    ):
        layer.backward(np.zeros(dy_shape), cache)


@pytest.mark.parametrize("kind", KINDS)
def test_dy_not_an_array(kind):
    layer = make(kind)
    y, _, cache = layer.forward(make_x(layer))
    with pytest.raises(
        TypeError, match=msg("dy must be a numpy.ndarray of shape (5, 2, 4)", "got list")
    ):
        layer.backward(np.ones_like(y).tolist(), cache)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("layer_dtype", "dy_dtype"),
    [(np.float32, np.float64), (np.float64, np.float32), (np.float64, np.int64)],
)
def test_dy_wrong_dtype(kind, layer_dtype, dy_dtype):
    layer = make(kind, dtype=layer_dtype)
    y, _, cache = layer.forward(make_x(layer))
    want, got = np.dtype(layer_dtype).name, np.dtype(dy_dtype).name
    with pytest.raises(
        TypeError, match=msg(f"dy must have dtype {want} (the layer's dtype), got {got}")
    ):
        layer.backward(np.ones(y.shape, dtype=dy_dtype), cache)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
@pytest.mark.parametrize("shape", [(1, 3, 4), (1, 2, 5), (2, 2, 4)])
def test_dstate_wrong_shape(kind, shape):
    layer = make(kind)
    y, _, cache = layer.forward(make_x(layer))
    with pytest.raises(
        ValueError, match=msg(f"dstate must have shape (1, 2, 4), got {fmt(shape)}")
    ):
        layer.backward(np.ones_like(y), cache, np.zeros(shape))


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_dstate_pair_for_single_state_layer(kind):
    layer = make(kind)
    y, s, cache = layer.forward(make_x(layer))
    with pytest.raises(
        TypeError, match=msg("dstate must be a numpy.ndarray of shape (1, 2, 4)", "got tuple")
    ):
        layer.backward(np.ones_like(y), cache, (s, s))


# -- state_dict ----------------------------------------------------------------------------------


def changed(layer) -> dict[str, np.ndarray]:
    """A valid state_dict for ``layer`` whose every value differs from the current one."""
    return {k: v + 1.0 for k, v in layer.state_dict().items()}


def assert_unchanged(layer, before: dict[str, np.ndarray]) -> None:
    after = layer.state_dict()
    assert list(after) == list(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_state_dict_missing_key(kind, position):
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(layer)
    key = list(sd)[position]
    del sd[key]
    with pytest.raises(
        ValueError,
        match=msg(f"state_dict does not match {type(layer).__name__}: missing keys ['{key}']"),
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extra", ["weight_ih_l1", "bias_ih_l0_reverse", "running_mean", 0])
def test_state_dict_extra_key(kind, extra):
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(layer)
    sd[extra] = np.zeros(3)
    with pytest.raises(ValueError, match=msg(f"unexpected keys [{extra!r}]", "expected exactly [")):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_missing_and_extra_key(kind):
    """A bidirectional layer's state_dict is refused by a unidirectional one."""
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(make(kind, bidirectional=True))
    del sd["weight_hh_l0"]
    with pytest.raises(
        ValueError,
        match=msg("missing keys ['weight_hh_l0']", "unexpected keys ['weight_ih_l0_reverse'"),
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
@pytest.mark.parametrize("transform", ["transpose", "drop-row", "add-axis"])
def test_state_dict_wrong_shape(kind, position, transform):
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(layer)
    key = list(sd)[position]
    value = sd[key]
    sd[key] = {
        "transpose": lambda v: v.T if v.ndim == 2 else v[:, None],
        "drop-row": lambda v: v[1:],
        "add-axis": lambda v: v[None],
    }[transform](value)
    with pytest.raises(
        ValueError,
        match=msg(f"state_dict[{key!r}] must have shape {value.shape}, got {sd[key].shape}"),
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_shapes_name_gate_count(kind):
    """The expected shape of weight_hh is (G*H, H): 4H for the LSTM, 3H for the GRU."""
    layer = make(kind)
    sd = changed(layer)
    sd["weight_hh_l0"] = np.zeros((H, H))
    if kind == "rnn":
        sd["weight_hh_l0"] = np.zeros((2 * H, H))
    with pytest.raises(
        ValueError,
        match=msg(f"state_dict['weight_hh_l0'] must have shape ({GATES[kind] * H}, {H}), got"),
    ):
        layer.load_state_dict(sd)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
@pytest.mark.parametrize(
    ("layer_dtype", "value_dtype"),
    [(np.float64, np.float32), (np.float32, np.float64), (np.float64, np.int64)],
)
def test_state_dict_wrong_dtype(kind, position, layer_dtype, value_dtype):
    layer = make(kind, dtype=layer_dtype)
    before = layer.state_dict()
    sd = changed(layer)
    key = list(sd)[position]
    sd[key] = sd[key].astype(value_dtype)
    want, got = np.dtype(layer_dtype).name, np.dtype(value_dtype).name
    with pytest.raises(
        TypeError, match=msg(f"state_dict[{key!r}] must have dtype {want}, got {got}")
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("value", "exc", "got"),
    [
        ([[1.0, 2.0], [3.0]], TypeError, "got a list that is not a regular array"),
        (None, ValueError, "got ()"),
        ("weights", ValueError, "got ()"),
    ],
    ids=["ragged", "None", "str"],
)
def test_state_dict_value_not_an_array(kind, value, exc, got):
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(layer)
    key = list(sd)[-1]
    sd[key] = value
    with pytest.raises(exc, match=msg(f"state_dict[{key!r}] must", got)):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "sd",
    [None, [("weight_ih_l0", np.zeros((4, 3)))], np.zeros(3), "state_dict"],
    ids=["None", "list-of-pairs", "array", "str"],
)
def test_state_dict_not_a_mapping(kind, sd):
    layer = make(kind)
    before = layer.state_dict()
    with pytest.raises(
        TypeError,
        match=msg(f"state_dict must be a mapping of names to arrays, got {type(sd).__name__}"),
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_valid_load_after_failed_load(kind):
    """A failed load leaves the layer fully usable, and a later good load takes effect."""
    layer = make(kind)
    good = changed(layer)
    bad = dict(good)
    bad[list(bad)[-1]] = np.zeros(1)
    with pytest.raises(ValueError, match="state_dict"):
        layer.load_state_dict(bad)
    layer.load_state_dict(good)
    assert_unchanged(layer, good)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("position", [0, -1], ids=["first", "last"])
def test_state_dict_not_finite(kind, bad, position):
    """NaN or Inf weights are bad input like NaN inputs: refused, naming the key and the index,
    and nothing is loaded (not even the valid entries before the bad one)."""
    layer = make(kind)
    before = layer.state_dict()
    sd = changed(layer)
    key = list(sd)[position]
    sd[key].flat[3] = bad
    index = tuple(int(i) for i in np.unravel_index(3, sd[key].shape))
    with pytest.raises(
        ValueError, match=msg(f"state_dict[{key!r}] must be finite, got {bad} at index {index}")
    ):
        layer.load_state_dict(sd)
    assert_unchanged(layer, before)


def test_model_state_dict_not_finite_names_the_dotted_key():
    model = rnnkit.SequenceRegressor(D, H, output_size=2, dtype=np.float64, seed=0)
    sd = model.state_dict()
    sd["head.bias"][1] = np.nan
    with pytest.raises(ValueError, match=msg("state_dict['head.bias'] must be finite, got nan")):
        model.load_state_dict(sd)


# -- step: the same errors as forward -------------------------------------------------------------


def step_layer(kind: str, path: str, monkeypatch, **kw):
    """A layer whose step takes the compiled fast path or the NumPy reference path."""
    from rnnkit.runtime import kernels

    if path == "compiled" and kernels.native() is None:
        pytest.skip("compiled kernels unavailable")
    monkeypatch.setenv(kernels.ENV, path)
    return make(kind, **kw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_empty_batch(kind, path, dtype, monkeypatch):
    """forward refuses B = 0 (``x must have shape (T, B, 3) with B >= 1``), so step does too,
    on both paths (the compiled step would otherwise return empty arrays)."""
    layer = step_layer(kind, path, monkeypatch, dtype=dtype)
    with pytest.raises(ValueError, match=msg("x must have shape (B, 3) with B >= 1, got (0, 3)")):
        layer.step(np.zeros((0, D), dtype))
    with pytest.raises(ValueError, match=msg("x must have shape (T, B, 3) with B >= 1")):
        layer.forward(np.zeros((1, 0, D), dtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_step_state_not_finite(kind, path, bad, monkeypatch):
    """A NaN or Inf in the state given to step: the message forward gives for the same state."""
    layer = step_layer(kind, path, monkeypatch, num_layers=2)
    x = np.random.default_rng(1).standard_normal((B, D))
    state = make_state(layer)
    parts = list(state) if kind == "lstm" else [state]
    parts[-1][1, 1, 2] = bad
    name = "state[1] (c)" if kind == "lstm" else "state"
    pattern = msg(f"{name} must be finite, got {bad} at index (1, 1, 2)")
    with pytest.raises(ValueError, match=pattern):
        layer.step(x, state)
    with pytest.raises(ValueError, match=pattern):
        layer.forward(x[None], state)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_step_x_not_finite(kind, path, bad, monkeypatch):
    layer = step_layer(kind, path, monkeypatch)
    x = np.zeros((B, D))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=msg(f"x must be finite, got {bad} at index (1, 2)")):
        layer.step(x, make_state(layer))


# -- gradcheck -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float32_layer(kind):
    layer = make(kind, dtype=np.float32)
    x = np.zeros((T, B, D))
    with pytest.raises(
        TypeError, match=msg("gradcheck needs float64: parameter 'weight_ih_l0' is float32")
    ):
        rnnkit.gradcheck(layer, x)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("x", "got"),
    [(np.zeros((T, B, D), dtype=np.float32), "float32"), (np.zeros((T, B, D)).tolist(), "list")],
    ids=["float32", "list"],
)
def test_gradcheck_x_not_float64(kind, x, got):
    with pytest.raises(TypeError, match=msg(f"gradcheck needs float64: x is {got}")):
        rnnkit.gradcheck(make(kind), x)


@pytest.mark.parametrize("eps", [0.0, -1e-4, float("nan"), 0, "1e-4"])
def test_gradcheck_eps_invalid(eps):
    layer = make("rnn")
    with pytest.raises(ValueError, match=msg(f"eps must be a positive float, got {eps!r}")):
        rnnkit.gradcheck(layer, make_x(layer), eps=eps)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_reports_layer_argument_errors(kind):
    layer = make(kind)
    with pytest.raises(ValueError, match=msg("x must have shape (T, B, 3), got (5, 2, 4)")):
        rnnkit.gradcheck(layer, np.zeros((T, B, 4)))
    with pytest.raises(ValueError, match=msg("lengths must lie in [0, 5]")):
        rnnkit.gradcheck(layer, make_x(layer), lengths=[6, 1])
    with pytest.raises(ValueError, match=msg("dy must have shape (5, 2, 4), got (5, 2, 5)")):
        rnnkit.gradcheck(layer, make_x(layer), dy=np.zeros((T, B, 5)))
