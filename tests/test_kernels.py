"""The compiled recurrences (rnnkit.kernels) against the NumPy reference loops, their
specification: forward states and saved values and backward gradients over random shapes
(B = 1, H = 1, T = 1 included), length masks with empty rows, reversed and non-contiguous
inputs, float32 and float64; the whole layer with the kernel, against the reference and by
finite differences; the vectorised exp / sigmoid / tanh the kernel uses; threads; and how a
cell chooses its path (the environment variable, the one-line fallback warning)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnnkit
from conftest import assert_close, assert_results_close, make_layer, state_like
from rnnkit import kernels
from rnnkit.cells import CellParams, LSTMCell, Regularisation, loop
from rnnkit.cells.base import numpy_recurrence
from rnnkit.cells.lstm import STEP
from rnnkit.kernels import lstm as klstm

#: Agreement with the reference, relative to each tensor's magnitude.
RTOL = {np.float64: 1e-12, np.float32: 1e-5}

#: (T, B, H): the edges one by one, then a few larger shapes.
SHAPES = [(1, 1, 1), (1, 3, 4), (6, 1, 5), (4, 3, 1), (7, 5, 8), (13, 9, 17), (20, 16, 32)]


@pytest.fixture
def native():
    module = kernels.native()
    if module is None:
        pytest.skip(f"compiled kernels unavailable: {kernels.reason()}")
    return module


def _problem(T, B, H, dtype, rng, masked):
    """Prepared parameters, xg, state0, mask (or None), dhs and dstate_T for one LSTM run."""
    W_hh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(dtype)
    P = LSTMCell(recurrence=numpy_recurrence(STEP)).prepare(CellParams(None, W_hh, None, None))
    xg = rng.standard_normal((T, B, 4 * H)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in range(2))
    mask = None
    if masked:
        lengths = rng.integers(0, T + 1, B)
        lengths[0] = 0  # always one empty row
        mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    if mask is not None:
        dhs *= mask
    dstate_T = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    return P, xg, state0, mask, dhs, dstate_T


def _upcast(value):
    """The float64 copy of a problem's arrays (prepared parameters included), for the reference."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype == np.float32 else value
    if isinstance(value, tuple):
        return (
            type(value)(*map(_upcast, value))
            if hasattr(value, "_fields")
            else tuple(map(_upcast, value))
        )
    return value


def _compare(dtype, P, xg, state0, mask, dhs, dstate_T):
    """The kernel against the reference loops run in float64 on the same inputs (in float32
    the float64 reference is the more exact one, and the float32 reference is wrong at H = 1
    on NumPy with the in-place negative bug: see test_float32_reference_at_H1)."""
    rtol = RTOL[dtype]
    states, saved = klstm.forward(xg, state0, P, mask)
    P64, xg64, state0_64, dhs64, dstate_T64 = _upcast((P, xg, state0, dhs, dstate_T))
    ref_states, ref_saved = loop.forward(STEP, xg64, state0_64, P64, mask)
    for name, a, b in zip(("h", "c", "gates", "tanh_c"), states + saved, ref_states + ref_saved):
        assert a.dtype == dtype and a.shape == b.shape and a.flags.c_contiguous, name
        assert_close(a, b, rtol, name)
    # backward from the forward values rounded to dtype, as the kernel would receive them
    fwd = tuple(a.astype(dtype) for a in ref_states), tuple(a.astype(dtype) for a in ref_saved)
    da, dgh, dstate0 = klstm.backward(dhs, dstate_T, *fwd[:1], state0, fwd[1], P, mask)
    ref_da, ref_dgh, ref_dstate0 = loop.backward(
        STEP, dhs64, dstate_T64, *_upcast(fwd[:1]), state0_64, _upcast(fwd[1]), P64, mask
    )
    assert dgh is None and ref_dgh is None
    assert da.dtype == dtype and all(d.dtype == dtype for d in dstate0)
    assert_close(da, ref_da, rtol, "da")
    for name, a, b in zip(("dh0", "dc0"), dstate0, ref_dstate0):
        assert_close(a, b, rtol, name)
    if mask is not None:  # the contract at masked steps, exactly
        assert np.all(da[~mask[..., 0]] == 0.0)
        empty = ~mask[:, :, 0].any(axis=0)  # rows of length 0: everything passes through
        for s, s0 in zip(states, state0):
            assert np.array_equal(s[:, empty], np.broadcast_to(s0[empty], s[:, empty].shape))
        assert np.array_equal(dstate0[1][empty], dstate_T[1][empty])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-B{}-H{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_lstm_matches_reference(native, dtype, shape, masked):
    rng = np.random.default_rng([*shape, masked])
    _compare(dtype, *_problem(*shape, dtype, rng, masked))


@pytest.fixture
def every_isa(native):
    """Each instruction-set variant the CPU supports, in turn; the best is restored after."""
    best, names = native.isa()
    yield names
    native.isa(best)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_instruction_set_matches_reference(native, every_isa, dtype):
    """Tiles cut by the batch (rows not a multiple of any tile height) and by the hidden size
    (units not a multiple of any vector width), in every variant compiled for this CPU."""
    for name in every_isa:
        assert native.isa(name)[0] == name
        for shape in [(3, 7, 17), (2, 13, 33), (4, 1, 9), (2, 5, 70)]:
            rng = np.random.default_rng([*shape, len(name)])
            _compare(dtype, *_problem(*shape, dtype, rng, masked=True))


def test_isa_reports_and_refuses(native, every_isa):
    assert kernels.isa() == every_isa[0]  # the best one is chosen at import
    assert set(every_isa) <= {"avx512", "avx2", "baseline"} and "baseline" in every_isa
    with pytest.raises(ValueError, match="instruction set mmx is not supported here"):
        native.isa("mmx")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_matches_reference_on_strided_inputs(native, dtype):
    """Reversed time (as the reverse direction passes it) and slices of larger arrays."""
    rng = np.random.default_rng(7)
    T, B, H = 9, 6, 5
    P, xg, state0, mask, dhs, dstate_T = _problem(T, B, H, dtype, rng, masked=True)
    wide = rng.standard_normal((T, B, 3 * H)).astype(dtype)
    wide[..., H : 2 * H] = dhs
    state_stack = np.stack([state0[0], state0[1]])  # (2, B, H): state0 as views
    _compare(
        dtype,
        P,
        xg[::-1],
        (state_stack[0], state_stack[1]),
        mask[::-1],
        wide[::-1, :, H : 2 * H],
        dstate_T,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_large_preactivations(native, dtype):
    """Saturated gates (|a| up to 1e3): exp clamps instead of overflowing, as sigmoid needs."""
    rng = np.random.default_rng(3)
    P, xg, state0, mask, dhs, dstate_T = _problem(5, 4, 6, dtype, rng, masked=False)
    xg = xg * np.asarray(300.0, dtype=dtype)
    _compare(dtype, P, xg, state0, mask, dhs, dstate_T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threads_split_the_batch(native, dtype):
    """Any number of threads, more than rows included, gives the single-thread result."""
    rng = np.random.default_rng(11)
    T, B, H = 6, 5, 7
    P, xg, state0, mask, dhs, dstate_T = _problem(T, B, H, dtype, rng, masked=True)
    m = mask[..., 0].copy()

    def run(threads):
        outs = [np.empty((T, B, n), dtype=dtype) for n in (H, H, 4 * H, H)]
        native.lstm_forward(xg, *state0, P.W_hh, m, *outs, threads)
        grads = [np.empty((T, B, 4 * H), dtype=dtype), *(np.empty((B, H), dtype) for _ in "hc")]
        native.lstm_backward(dhs, *dstate_T, outs[1], state0[1], outs[2], outs[3], P.W_hh, m,
                             *grads, threads)  # fmt: skip
        return outs + grads

    one = run(1)
    for threads in (2, 3, 8):
        for a, b in zip(run(threads), one):
            assert_close(a, b, RTOL[dtype], f"threads={threads}")


def test_regularisation_falls_back_to_the_reference():
    """Recurrent dropout and zoneout are not compiled: the reference loops run them."""
    rng = np.random.default_rng(5)
    T, B, H = 4, 3, 2
    P, xg, state0, _, dhs, dstate_T = _problem(T, B, H, np.float64, rng, masked=False)
    reg = Regularisation(rng.random((B, H)) < 0.7, (None, rng.random((T, B, H)) < 0.8))
    states, saved = klstm.forward(xg, state0, P, None, reg)
    ref_states, ref_saved = loop.forward(STEP, xg, state0, P, None, reg)
    assert all(np.array_equal(a, b) for a, b in zip(states + saved, ref_states + ref_saved))
    da, _, d0 = klstm.backward(dhs, dstate_T, states, state0, saved, P, None, reg)
    ref_da, _, ref_d0 = loop.backward(STEP, dhs, dstate_T, states, state0, saved, P, None, reg)
    assert np.array_equal(da, ref_da) and all(np.array_equal(a, b) for a, b in zip(d0, ref_d0))


def test_float32_reference_at_H1():
    """NumPy 2.4.6 negates a float32 view with a stride of 4 elements wrongly in place, which
    the sigmoid met at H = 1 (the o gate's column); it now avoids np.negative."""
    rng = np.random.default_rng(8)
    P, xg, state0, _, _, _ = _problem(3, 4, 1, np.float32, rng, masked=False)
    states, saved = loop.forward(STEP, xg, state0, P)
    ref_states, ref_saved = loop.forward(STEP, *_upcast((xg, state0, P)))
    for a, b in zip(states + saved, ref_states + ref_saved):
        assert_close(a, b, RTOL[np.float32])


# -- the whole layer ----------------------------------------------------------------------------


def _layer_run(layer, x, state, lengths, dy, dstate):
    y, s_T, cache = layer.forward(x, state, lengths)
    dx, ds0, grads = layer.backward(dy, cache, dstate)
    return y, s_T, dx, ds0, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_with_kernel_matches_layer_with_reference(native, dtype):
    rng = np.random.default_rng(2)
    T, B, D, H = 7, 5, 3, 6
    compiled = make_layer("lstm", D, H, 2, dtype=dtype, seed=3, bidirectional=True)
    reference = make_layer("lstm", D, H, 2, dtype=dtype, seed=3, bidirectional=True)
    assert compiled.cell.recurrence.name == "compiled"
    reference.cell.recurrence = numpy_recurrence(STEP)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    state = state_like(compiled, B, rng)
    lengths = np.array([7, 0, 3, 1, 6])
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    dstate = state_like(compiled, B, rng)
    ours = _layer_run(compiled, x, state, lengths, dy, dstate)
    ref = _layer_run(reference, x, state, lengths, dy, dstate)
    assert_results_close(compiled, ours, ref, RTOL[dtype])


def test_layer_with_kernel_passes_gradcheck(native):
    rng = np.random.default_rng(4)
    T, B, D, H = 5, 4, 3, 3
    layer = make_layer("lstm", D, H, 2, seed=6, bidirectional=True)
    assert layer.cell.recurrence.name == "compiled"
    x = rng.standard_normal((T, B, D))
    errors = rnnkit.gradcheck(
        layer, x, state_like(layer, B, rng), np.array([5, 0, 2, 4]), dstate="random", seed=2
    )
    assert set(errors) == {"x", *layer.state_names, *layer.state_dict()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-6, f"worst relative error {errors[worst]:.2e} in {worst}"


# -- the vectorised functions -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_vector_math_is_accurate(native, dtype, name):
    """Within a few units in the last place of the float64 truth rounded to dtype."""
    lo, hi = (-87.0, 88.0) if name == "exp" and dtype == np.float32 else (-700.0, 700.0)
    tiny = np.logspace(-30, 0, 3001)
    x = np.concatenate([np.linspace(-40, 40, 80001), tiny, -tiny, np.linspace(lo, hi, 1001)])
    x = x.astype(dtype)
    out = np.empty_like(x)
    native.vmath(name, x, out)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        truth = {"exp": np.exp, "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)), "tanh": np.tanh}[
            name
        ](x64)
    normal = (np.abs(truth) >= np.finfo(dtype).tiny) & (np.abs(truth) <= np.finfo(dtype).max)
    ulp = np.spacing(np.abs(truth[normal]).astype(dtype)).astype(np.float64)
    err = np.abs(out[normal] - truth[normal]) / ulp
    assert err.max() <= 4.0, f"{name}: {err.max():.1f} ulp at x = {x[normal][err.argmax()]}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vector_math_special_values(native, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4], dtype=dtype)
    out = {name: np.empty_like(x) for name in ("exp", "sigmoid", "tanh")}
    for name, o in out.items():
        native.vmath(name, x, o)
    assert np.isnan(out["exp"][0]) and np.isnan(out["sigmoid"][0]) and np.isnan(out["tanh"][0])
    np.testing.assert_array_equal(out["tanh"][1:], [1.0, -1.0, 0.0, -0.0, 1.0, -1.0])
    np.testing.assert_allclose(out["sigmoid"][1:], [1.0, 0.0, 0.5, 0.5, 1.0, 0.0], atol=1e-30)
    assert np.all(np.isfinite(out["exp"][1:])) and out["exp"][3] == 1.0


# -- errors of the extension's own checks -------------------------------------------------------


def test_native_checks_its_arguments(native):
    T, B, H = 2, 3, 4
    f = np.float32
    xg, h0 = np.zeros((T, B, 4 * H), f), np.zeros((B, H), f)
    outs = [np.empty((T, B, n), f) for n in (H, H, 4 * H, H)]
    W = np.zeros((4 * H, H), f)
    with pytest.raises(ValueError, match="w_hh: dimension 0 must be 16, got 12"):
        native.lstm_forward(xg, h0, h0, W[:12], None, *outs, 1)
    with pytest.raises(TypeError, match="h0 must have item format 'f'"):
        native.lstm_forward(xg, h0.astype(np.float64), h0, W, None, *outs, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        native.lstm_forward(xg.astype(np.float16), h0, h0, W, None, *outs, 1)
    with pytest.raises(TypeError, match="hs must be a writable C-contiguous array"):
        native.lstm_forward(xg, h0, h0, W, None, outs[0][::-1], *outs[1:], 1)


# -- which path a cell takes --------------------------------------------------------------------


def test_default_cell_runs_compiled(native, monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    assert LSTMCell().recurrence.name == "compiled"
    assert rnnkit.LSTM(2, 3).cell.recurrence.name == "compiled"


def test_environment_forces_reference(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert LSTMCell().recurrence.name == "numpy"
    monkeypatch.setenv(kernels.ENV, "fortran")
    with pytest.raises(ValueError, match="RNNKIT_KERNELS must be one of auto, compiled, numpy"):
        LSTMCell()


def test_unavailable_kernels_warn_once_and_fall_back(monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "_tried", True)
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_reason", "the extension did not import (test)")
    monkeypatch.setattr(kernels, "_warned", False)
    with pytest.warns(RuntimeWarning, match=r"^rnnkit: the extension did not import \(test\); "):
        cell = LSTMCell()
    assert cell.recurrence.name == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LSTMCell().recurrence.name == "numpy"  # once per process: no second warning
    monkeypatch.setenv(kernels.ENV, "compiled")
    with pytest.raises(RuntimeError, match="RNNKIT_KERNELS=compiled, but the extension did not"):
        LSTMCell()


def test_thread_settings(monkeypatch):
    monkeypatch.setattr(kernels, "_max_threads", None)
    monkeypatch.setenv(kernels.ENV_THREADS, "3")
    assert kernels.get_num_threads() == 3
    assert kernels.threads_for(B=64, work=10**9) == 3
    assert kernels.threads_for(B=11, work=10**9) == 1  # too few rows for two threads
    assert kernels.threads_for(B=12, work=10**9) == 2
    assert kernels.threads_for(B=64, work=1000) == 1  # too little work
    kernels.set_num_threads(1)
    assert kernels.threads_for(B=64, work=10**9) == 1
    with pytest.raises(ValueError, match="n must be a positive int or None, got 0"):
        kernels.set_num_threads(0)
    monkeypatch.setattr(kernels, "_max_threads", None)
    monkeypatch.setenv(kernels.ENV_THREADS, "many")
    with pytest.raises(ValueError, match="RNNKIT_NUM_THREADS must be a positive integer"):
        kernels.get_num_threads()
