"""The compiled GRU (both reset forms) and vanilla RNN (tanh, ReLU) time loops against the NumPy
reference loops, their specification: forward states and saved values and backward gradients
(each side consuming what the other's forward saved) over random shapes (B = 1, H = 1, T = 1
included), length masks with empty rows, reversed and non-contiguous inputs, saturated
pre-activations, float32 and float64, every instruction-set variant, threads; what falls back to
the reference; whole layers (bidirectional, 2 layers, lengths) with the kernel, against the
reference and by finite differences; the extension's own argument checks; and the default time
loops of the layers. The LSTM's are in test_kernels.py, whose helpers (conftest.py) these
share."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import (
    KERNEL_ISA_SHAPES,
    KERNEL_RTOL,
    KERNEL_SHAPES,
    KINDS,
    assert_close,
    assert_results_close,
    check_kernel,
    check_layer_kernel,
    check_layer_kernel_gradients,
    compiled_loop,
    kernel_problem,
    layer_run,
)
from rnnkit.cells import CellParams, GRUCell, Regularisation, RNNCell, gru, rnn, timeloop
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import loops

#: Each cell (what the problems are made for; its reference loops are what its compiled ones
#: are checked against), with its step equations; named as the layer kinds of conftest.KINDS,
#: which are the names of the cells' compiled loops (``cell.kernel``).
CELLS = {
    "gru_after": (GRUCell("after"), gru.EQUATIONS["after"]),
    "gru_before": (GRUCell("before"), gru.EQUATIONS["before"]),
    "rnn_tanh": (RNNCell("tanh"), rnn.EQUATIONS),
    "rnn_relu": (RNNCell("relu"), rnn.EQUATIONS),
}

every_cell = pytest.mark.parametrize("kind", CELLS)
both_dtypes = pytest.mark.parametrize("dtype", [np.float64, np.float32])


def test_cells_name_their_loops_and_equations():
    for kind, (cell, equations) in CELLS.items():
        assert cell.kernel == kind and cell.equations is equations
        assert cell.reference_loop().name == "numpy"


def _check(kind, dtype, problem, rtol=None):
    cell = CELLS[kind][0]
    check_kernel(cell, compiled_loop(cell), dtype, *problem, rtol=rtol)


@every_cell
@both_dtypes
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=lambda s: "T{}-B{}-H{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_matches_reference(native, kind, dtype, shape, masked):
    rng = np.random.default_rng([*shape, masked, len(kind)])
    _check(kind, dtype, kernel_problem(CELLS[kind][0], *shape, dtype, rng, masked))


@every_cell
@both_dtypes
def test_every_instruction_set_matches_reference(native, every_isa, kind, dtype):
    """Tiles cut by the batch and by the hidden size, in every variant compiled for this CPU;
    H = 129 takes the GRU's and the RNN's panels of 2 and 4 vectors past two whole ones."""
    for name in every_isa:
        assert native.isa(name)[0] == name
        for shape in [*KERNEL_ISA_SHAPES, (2, 7, 129)]:
            rng = np.random.default_rng([*shape, len(name), len(kind)])
            _check(kind, dtype, kernel_problem(CELLS[kind][0], *shape, dtype, rng, masked=True))


@every_cell
@both_dtypes
def test_matches_reference_on_strided_inputs(native, kind, dtype):
    """Reversed time (as the reverse direction passes it) and slices of larger arrays."""
    rng = np.random.default_rng(7)
    T, B, H = 9, 6, 5
    params, xg, state0, mask, dhs, dstate_T = kernel_problem(
        CELLS[kind][0], T, B, H, dtype, rng, True
    )
    wide = rng.standard_normal((T, B, 3 * H)).astype(dtype)
    wide[..., H : 2 * H] = dhs
    states = np.stack([state0[0], dstate_T[0]], axis=-1)  # (B, H, 2): each a strided view
    problem = (
        params,
        xg[::-1],
        (states[..., 0],),
        mask[::-1],
        wide[::-1, :, H : 2 * H],
        (states[..., 1],),
    )
    _check(kind, dtype, problem)


@every_cell
@both_dtypes
def test_large_preactivations(native, kind, dtype):
    """Saturated gates (|a| up to 1e3): exp clamps instead of overflowing, as sigmoid needs.
    Saturated, phi'(a) = 1 - h^2 cancels: the kernel rounds 1 - h h once (a fused
    multiply-add), NumPy twice, so in float64 the gradients, all scaled by phi', agree to about
    1e-16 / phi' (here 1e-11) relative, and the kernel's are the more exact."""
    rng = np.random.default_rng(3)
    params, xg, *rest = kernel_problem(CELLS[kind][0], 5, 4, 6, dtype, rng, masked=False)
    rtol = 1e-9 if dtype == np.float64 else None
    _check(kind, dtype, (params, xg * np.asarray(300.0, dtype=dtype), *rest), rtol)


@every_cell
@both_dtypes
def test_threads_split_the_batch(native, monkeypatch, kind, dtype):
    """Any number of threads, more than rows included, gives the single-thread result."""
    cell = CELLS[kind][0]
    kernel = compiled_loop(cell)
    rng = np.random.default_rng(11)
    params, xg, state0, mask, dhs, dstate_T = kernel_problem(cell, 6, 13, 7, dtype, rng, True)
    P = kernel.prepare(params)

    def run(threads):
        monkeypatch.setattr(kernels.extension, "threads_for", lambda B, work: threads)
        states, saved = kernel.forward(xg, state0, P, mask)
        da, dgh, dstate0 = kernel.backward(dhs, dstate_T, states, state0, saved, P, mask)
        return [*states, *saved, da, *dstate0, *([] if dgh is None else [dgh])]

    one = run(1)
    for threads in (2, 3, 8, 100):
        for a, b in zip(run(threads), one, strict=True):
            assert_close(a, b, KERNEL_RTOL[dtype], f"threads={threads}")


@every_cell
def test_what_the_kernel_does_not_cover_runs_the_reference(kind):
    """Recurrent dropout and zoneout, other dtypes and empty batches are not compiled: the
    reference loops run them (so the results are the reference's, bit for bit). The functions
    the compiled loop wraps (runtime.kernels.loops) fall back before they reach the extension,
    so this runs where it is unavailable too."""
    cell, step = CELLS[kind]
    T, B, H = 4, 3, 2
    rng = np.random.default_rng(5)
    params, xg, state0, _, dhs, dstate_T = kernel_problem(cell, T, B, H, np.float64, rng, False)
    reg = Regularisation(rng.random((B, H)) < 0.7, (rng.random((T, B, H)) < 0.8,))
    half = CellParams(*(None if a is None else a.astype(np.float16) for a in params))
    cases = {
        "regularisation": (params, xg, state0, dhs, dstate_T, reg),
        "float16": (half, *(np.asarray(a, np.float16) for a in (xg, state0, dhs, dstate_T)), None),
        "empty batch": (params, xg[:, :0], (state0[0][:0],), dhs[:, :0], (dstate_T[0][:0],), None),
    }
    for what, (params_, xg_, s0, dhs_, d_T, reg_) in cases.items():
        P, P_ref = loops.prepare(cell, params_), cell.prepare(params_)
        states, saved = loops.forward(cell, xg_, s0, P, None, reg_)
        ref = timeloop.forward(step, xg_, s0, P_ref, None, reg_)
        assert all(np.array_equal(a, b) for a, b in zip(states + saved, ref[0] + ref[1])), what
        ours = loops.backward(cell, dhs_, d_T, states, s0, saved, P, None, reg_)
        ref = timeloop.backward(step, dhs_, d_T, states, s0, saved, P_ref, None, reg_)
        assert (ours[1] is None) == (ref[1] is None), what
        for a, b in zip([ours[0], ours[1], *ours[2]], [ref[0], ref[1], *ref[2]]):
            assert (a is None and b is None) or np.array_equal(a, b), what


# -- whole layers -------------------------------------------------------------------------------


@every_cell
@both_dtypes
def test_layer_with_kernel_matches_layer_with_reference(compiled_layers, kind, dtype):
    check_layer_kernel(kind, dtype)


@every_cell
def test_layer_without_bias_matches_reference(compiled_layers, kind):
    """No bias: the reset-after GRU's loop then adds no b_hh."""
    rng = np.random.default_rng(9)
    T, B, D, H = 5, 4, 3, 5
    cls, extra = KINDS[kind]
    compiled = cls(D, H, bias=False, dtype=np.float64, seed=1, **extra)
    reference = cls(D, H, bias=False, dtype=np.float64, seed=1, **extra)
    assert compiled.time_loop.name == "compiled"
    reference.time_loop = reference.cell.reference_loop()
    x = rng.standard_normal((T, B, D))
    dy = rng.standard_normal((T, B, H))
    ours = layer_run(compiled, x, None, None, dy, None)
    ref = layer_run(reference, x, None, None, dy, None)
    assert_results_close(compiled, ours, ref, KERNEL_RTOL[np.float64])


@every_cell
def test_layer_with_kernel_passes_gradcheck(compiled_layers, kind):
    check_layer_kernel_gradients(kind)


# -- errors of the extension's own checks -------------------------------------------------------


def test_native_checks_its_arguments(native):
    T, B, H = 2, 3, 4
    f = np.float32
    xg, h0, W = np.zeros((T, B, 3 * H), f), np.zeros((B, H), f), np.zeros((3 * H, H), f)
    hs, gates, hn = np.empty((T, B, H), f), np.empty((T, B, 3 * H), f), np.empty((T, B, H), f)
    b_hh = np.zeros(3 * H, f)
    native.gru_after_forward(xg, h0, W, b_hh, None, hs, gates, hn, 1)  # the arguments are right
    with pytest.raises(ValueError, match="b_hh: dimension 0 must be 12, got 9"):
        native.gru_after_forward(xg, h0, W, b_hh[:9], None, hs, gates, hn, 1)
    with pytest.raises(ValueError, match="xg: the last dimension must be 3H"):
        native.gru_after_forward(np.zeros((T, B, 10), f), h0, W, b_hh, None, hs, gates, hn, 1)
    with pytest.raises(ValueError, match="mask: dimension 1 must be 3, got 2"):
        native.gru_before_forward(xg, h0, W, np.ones((T, 2), bool), hs, gates, 1)
    with pytest.raises(TypeError, match="gru_before_forward takes 7 arguments, got 6"):
        native.gru_before_forward(xg, h0, W, None, hs, gates)
    with pytest.raises(TypeError, match="gates must be a writable C-contiguous array"):
        native.gru_before_forward(xg, h0, W, None, hs, gates[:, :, ::2], 1)
    with pytest.raises(TypeError, match="h_cand must have item format 'f'"):
        native.rnn_tanh_forward(hs, h0, W[:H], None, hs, hn.astype(np.float64), 1)
    with pytest.raises(TypeError, match="xg must be a C-contiguous array"):
        native.rnn_tanh_forward(xg[..., :H], h0, W[:H], None, hs, hn, 1)
    with pytest.raises(ValueError, match="w_hh: dimension 0 must be 4, got 12"):
        native.rnn_relu_backward(hs, h0, hs, W, None, hs, h0, 1)
    with pytest.raises(ValueError, match="dhs: at least one time step is needed"):
        native.rnn_relu_backward(hs[:0], h0, hs[:0], W[:H], None, hs[:0], h0, 1)


# -- which time loops a layer takes ------------------------------------------------------------


def test_default_layers_run_compiled(native, monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    for cell in (GRUCell(), GRUCell("before"), RNNCell(), RNNCell("relu")):
        assert kernels.time_loop(cell).name == "compiled"
    assert rnnkit.GRU(2, 3).time_loop.name == "compiled"
    assert rnnkit.RNN(2, 3, nonlinearity="relu").time_loop.name == "compiled"


def test_environment_forces_reference(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert kernels.time_loop(GRUCell()).name == "numpy"
    assert kernels.time_loop(RNNCell()).name == "numpy"
    assert rnnkit.GRU(2, 3, reset="before").time_loop.name == "numpy"
