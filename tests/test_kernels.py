"""The compiled time loops (rnnkit.runtime.kernels) against the NumPy reference loops, their
specification: forward states and saved values and backward gradients over random shapes
(B = 1, H = 1, T = 1 included), length masks with empty rows, reversed and non-contiguous
inputs, float32 and float64; the whole layer with the kernel, against the reference and by
finite differences; the vectorised exp / sigmoid / tanh the kernel uses; threads; and how a
layer chooses its time loop (the environment variable, the one-line fallback warning) while a
cell runs the reference unless given a loop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rnnkit
from conftest import (
    KERNEL_ISA_SHAPES,
    KERNEL_RTOL,
    KERNEL_SHAPES,
    assert_close,
    check_kernel,
    check_layer_kernel,
    check_layer_kernel_gradients,
    compiled_loop,
    kernel_problem,
    upcast,
)
from rnnkit.cells import CellParams, LSTMCell, Regularisation, timeloop
from rnnkit.cells.lstm import EQUATIONS
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import gemm, loops

#: The LSTM cell: what the problems are made for; its reference loops are what the compiled
#: ones are checked against.
CELL = LSTMCell()


def _problem(T, B, H, dtype, rng, masked):
    """Recurrent parameters, xg, state0, mask (or None), dhs and dstate_T for one LSTM run."""
    return kernel_problem(CELL, T, B, H, dtype, rng, masked)


def _compare(dtype, params, xg, state0, mask, dhs, dstate_T):
    """The kernel against the reference loops (see conftest.check_kernel)."""
    check_kernel(CELL, compiled_loop(CELL), dtype, params, xg, state0, mask, dhs, dstate_T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=lambda s: "T{}-B{}-H{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_lstm_matches_reference(native, dtype, shape, masked):
    rng = np.random.default_rng([*shape, masked])
    _compare(dtype, *_problem(*shape, dtype, rng, masked))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_instruction_set_matches_reference(native, every_isa, dtype):
    """Tiles cut by the batch (rows not a multiple of any tile height) and by the hidden size
    (units not a multiple of any vector width), in every variant compiled for this CPU."""
    for name in every_isa:
        assert native.isa(name)[0] == name
        for shape in KERNEL_ISA_SHAPES:
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
    params, xg, state0, mask, dhs, dstate_T = _problem(T, B, H, dtype, rng, masked=True)
    wide = rng.standard_normal((T, B, 3 * H)).astype(dtype)
    wide[..., H : 2 * H] = dhs
    state_stack = np.stack([state0[0], state0[1]])  # (2, B, H): state0 as views
    _compare(
        dtype,
        params,
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
    params, xg, state0, mask, dhs, dstate_T = _problem(5, 4, 6, dtype, rng, masked=False)
    xg = xg * np.asarray(300.0, dtype=dtype)
    _compare(dtype, params, xg, state0, mask, dhs, dstate_T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threads_split_the_batch(native, dtype):
    """Any number of threads, more than rows included, gives the single-thread result."""
    rng = np.random.default_rng(11)
    T, B, H = 6, 5, 7
    params, xg, state0, mask, dhs, dstate_T = _problem(T, B, H, dtype, rng, masked=True)
    m = mask[..., 0].copy()
    W_hh = params.W_hh

    def run(threads):
        outs = [np.empty((T, B, n), dtype=dtype) for n in (H, H, 4 * H, H)]
        native.lstm_forward(xg, *state0, W_hh, m, *outs, threads)
        grads = [np.empty((T, B, 4 * H), dtype=dtype), *(np.empty((B, H), dtype) for _ in "hc")]
        native.lstm_backward(dhs, *dstate_T, outs[1], state0[1], outs[2], outs[3], W_hh, m,
                             *grads, threads)  # fmt: skip
        return outs + grads

    one = run(1)
    for threads in (2, 3, 8):
        for a, b in zip(run(threads), one):
            assert_close(a, b, KERNEL_RTOL[dtype], f"threads={threads}")


def test_regularisation_falls_back_to_the_reference():
    """Recurrent dropout and zoneout are not compiled: the reference loops run them. The
    functions the compiled loop wraps (runtime.kernels.loops) fall back before they reach the
    extension, so this runs where it is unavailable too."""
    rng = np.random.default_rng(5)
    T, B, H = 4, 3, 2
    params, xg, state0, _, dhs, dstate_T = _problem(T, B, H, np.float64, rng, masked=False)
    P, P_ref = loops.prepare(CELL, params), CELL.prepare(params)
    reg = Regularisation(rng.random((B, H)) < 0.7, (None, rng.random((T, B, H)) < 0.8))
    states, saved = loops.forward(CELL, xg, state0, P, None, reg)
    ref_states, ref_saved = timeloop.forward(EQUATIONS, xg, state0, P_ref, None, reg)
    assert all(np.array_equal(a, b) for a, b in zip(states + saved, ref_states + ref_saved))
    da, _, d0 = loops.backward(CELL, dhs, dstate_T, states, state0, saved, P, None, reg)
    ref_da, _, ref_d0 = timeloop.backward(
        EQUATIONS, dhs, dstate_T, states, state0, saved, P_ref, None, reg
    )
    assert np.array_equal(da, ref_da) and all(np.array_equal(a, b) for a, b in zip(d0, ref_d0))


def test_float32_reference_at_H1():
    """NumPy 2.4.6 negates a float32 view with a stride of 4 elements wrongly in place, which
    the sigmoid met at H = 1 (the o gate's column); it now avoids np.negative."""
    rng = np.random.default_rng(8)
    params, xg, state0, _, _, _ = _problem(3, 4, 1, np.float32, rng, masked=False)
    P = CELL.prepare(params)
    states, saved = timeloop.forward(EQUATIONS, xg, state0, P)
    ref_states, ref_saved = timeloop.forward(EQUATIONS, *upcast((xg, state0, P)))
    for a, b in zip(states + saved, ref_states + ref_saved):
        assert_close(a, b, KERNEL_RTOL[np.float32])


# -- the whole layer ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_with_kernel_matches_layer_with_reference(compiled_layers, dtype):
    check_layer_kernel("lstm", dtype)


def test_layer_with_kernel_passes_gradcheck(compiled_layers):
    check_layer_kernel_gradients("lstm")


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


def test_packed_w_hh_is_checked(native):
    """W_hh packed by pack_hh runs only in the loop it was packed for, at its size and type;
    in it, the loop gives the bits of the call that packs W_hh itself (every cell:
    tests/test_stepwise.py)."""
    T, B, H = 2, 3, 4
    f = np.float32
    lstm = native.CELLS.index("lstm")
    xg, h0 = np.ones((T, B, 4 * H), f), np.zeros((B, H), f)
    outs = [np.empty((T, B, n), f) for n in (H, H, 4 * H, H)]
    W = np.random.default_rng(0).standard_normal((4 * H, H)).astype(f)
    native.lstm_forward(xg, h0, h0, native.pack_hh(lstm, False, W), None, *outs, 1)
    packed_hs = outs[0].copy()
    native.lstm_forward(xg, h0, h0, W, None, *outs, 1)
    np.testing.assert_array_equal(packed_hs, outs[0])
    for other, match in [
        (native.pack_hh(lstm, True, W), "another function"),  # the backward loop's layout
        (native.pack_hh(native.CELLS.index("gru_after"), False, W[:12]), "another function"),
        (native.pack_hh(lstm, False, W.astype(np.float64)), "another function, type"),
        (native.pack_hh(lstm, False, np.ones((20, 5), f)), r"shape \(20, 5\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            native.lstm_forward(xg, h0, h0, other, None, *outs, 1)
    with pytest.raises(ValueError, match="cell must be a code"):
        native.pack_hh(len(native.CELLS), False, W)
    with pytest.raises(ValueError, match=r"w_hh must be \(G H, H\)"):
        native.pack_hh(lstm, False, np.ones((6, 4), f))


# -- which time loop a layer takes, and a cell ---------------------------------------------------


def test_compiled_loop_wraps_the_cell(native, rng):
    """The compiled TimeLoop: its name, the extension's matrix product, and its own prepared
    parameters (the weights as the layer stores them, the cell's reference layout beside)."""
    loop = compiled_loop(CELL)
    assert loop.matmul is gemm.matmul and CELL.kernel == "lstm"
    params, *_ = _problem(3, 2, 4, np.float64, rng, masked=False)
    P = loop.prepare(params)
    assert isinstance(P, loops.Prepared)
    assert P.w_hh is params.W_hh and P.b_hh is params.b_hh
    for a, b in zip(P.reference, CELL.prepare(params), strict=True):
        assert a is b or np.array_equal(a, b)


def test_default_layer_runs_compiled(native, monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    assert kernels.time_loop(LSTMCell()).name == "compiled"
    assert rnnkit.LSTM(2, 3).time_loop.name == "compiled"
    assert LSTMCell().reference_loop().name == "numpy"


@pytest.mark.parametrize("env", ["auto", "compiled", "numpy"])
def test_cell_without_a_loop_runs_the_reference(monkeypatch, env):
    """A cell reads no environment: without ``loop`` it runs its NumPy reference loops, and the
    backward pass runs the loops its forward pass ran (the cache remembers them)."""
    monkeypatch.setenv(kernels.ENV, env)
    rng = np.random.default_rng(6)
    T, B, D, H = 5, 2, 3, 4
    params = CellParams(
        *(rng.standard_normal(shape) for shape in [(4 * H, D), (4 * H, H), 4 * H, 4 * H])
    )
    x = rng.standard_normal((T, B, D))
    state0 = tuple(rng.standard_normal((B, H)) for _ in "hc")
    hs, _, cache = LSTMCell().forward(x, state0, params)
    assert cache.loop.name == "numpy" and cache.loop.matmul is None
    ref_hs, _, ref_cache = LSTMCell().forward(x, state0, params, loop=CELL.reference_loop())
    np.testing.assert_array_equal(hs, ref_hs)
    dhs = rng.standard_normal((T, B, H))
    dstate_T = tuple(rng.standard_normal((B, H)) for _ in "hc")
    calls = []

    def backward(*args):
        calls.append("backward")
        return cache.loop.backward(*args)

    traced = cache._replace(loop=cache.loop._replace(backward=backward))
    dx, dstate0, grads = LSTMCell().backward(dhs, dstate_T, traced)
    assert calls == ["backward"]  # the loop in the cache ran the backward pass
    ref_dx, ref_dstate0, ref_grads = LSTMCell().backward(dhs, dstate_T, ref_cache)
    for a, b in zip([dx, *dstate0, *grads], [ref_dx, *ref_dstate0, *ref_grads], strict=True):
        np.testing.assert_array_equal(a, b)


def test_environment_forces_reference(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert kernels.time_loop(LSTMCell()).name == "numpy"
    assert rnnkit.LSTM(2, 3).time_loop.name == "numpy"
    monkeypatch.setenv(kernels.ENV, "fortran")
    LSTMCell()  # a cell reads no environment
    with pytest.raises(ValueError, match="RNNKIT_KERNELS must be one of auto, compiled, numpy"):
        kernels.time_loop(LSTMCell())
    with pytest.raises(ValueError, match="RNNKIT_KERNELS must be one of auto, compiled, numpy"):
        rnnkit.LSTM(2, 3)


def test_unavailable_kernels_warn_once_and_fall_back(monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels.extension, "_tried", True)
    monkeypatch.setattr(kernels.extension, "_module", None)
    monkeypatch.setattr(kernels.extension, "_reason", "the extension did not import (test)")
    monkeypatch.setattr(kernels.extension, "_warned", False)
    with pytest.warns(RuntimeWarning, match=r"^rnnkit: the extension did not import \(test\); "):
        layer = rnnkit.LSTM(2, 3)
    assert layer.time_loop.name == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.time_loop(LSTMCell()).name == "numpy"  # once per process: no second warning
        assert rnnkit.LSTM(2, 3).time_loop.name == "numpy"
    monkeypatch.setenv(kernels.ENV, "compiled")
    with pytest.raises(RuntimeError, match="RNNKIT_KERNELS=compiled, but the extension did not"):
        kernels.time_loop(LSTMCell())
    with pytest.raises(RuntimeError, match="RNNKIT_KERNELS=compiled, but the extension did not"):
        rnnkit.LSTM(2, 3)


def test_thread_settings(monkeypatch):
    monkeypatch.setattr(kernels.extension, "_max_threads", None)
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
    monkeypatch.setattr(kernels.extension, "_max_threads", None)
    monkeypatch.setenv(kernels.ENV_THREADS, "many")
    with pytest.raises(ValueError, match="RNNKIT_NUM_THREADS must be a positive integer"):
        kernels.get_num_threads()
