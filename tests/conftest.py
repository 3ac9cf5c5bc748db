"""Helpers shared by the tests: building layers by kind, random upstream gradients, comparisons,
and the checks of the compiled time loops against the NumPy reference loops."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.cells import CellParams, StepCell, TimeLoop, timeloop
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import loops

#: Every cell and mode: (name, layer class, extra constructor arguments).
KINDS = {
    "rnn_tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, {}),
    "gru_after": (rnnkit.GRU, {"reset": "after"}),
    "gru_before": (rnnkit.GRU, {"reset": "before"}),
}


def make_layer(kind: str, D: int, H: int, num_layers: int = 1, dtype=np.float64, seed=0, **kw):
    """A layer of the given kind with random weights *and* random, clearly non-zero biases."""
    cls, extra = KINDS[kind]
    layer = cls(D, H, num_layers, dtype=dtype, seed=seed, **extra, **kw)
    rng = np.random.default_rng(seed + 1000)
    for name, value in layer.parameters().items():
        if name.startswith("bias"):
            # biases in +-[0.1, 0.5]: non-zero, so a bias routed to the wrong gate shows
            value[...] = rng.choice([-1.0, 1.0], value.shape) * rng.uniform(0.1, 0.5, value.shape)
    return layer


def state_like(layer, B: int, rng: np.random.Generator, scale: float = 0.5):
    """A random state for ``layer`` and batch size B, structured as the layer expects."""
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    parts = tuple(
        (scale * rng.standard_normal(shape)).astype(layer.dtype) for _ in layer.state_names
    )
    return parts[0] if len(parts) == 1 else parts


def as_tuple(state):
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    """max |actual - expected| <= rtol * max |expected|: agreement relative to the magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= rtol * scale or err == 0.0, (
        f"{what}: max abs error {err:.3e} exceeds {rtol:.0e} x magnitude {scale:.3e}"
    )


def assert_results_close(layer, ours, ref, rtol: float) -> None:
    """Compare two runs of forward + backward, each (y, final state, dx, d(initial state), grads)
    with states as arrays or tuples: every tensor, every parameter gradient, the same names."""
    (y, s_T, dx, ds0, grads), (y_r, s_r, dx_r, ds0_r, grads_r) = ours, ref
    assert_close(y, y_r, rtol, "y")
    for a, b, name in zip(as_tuple(s_T), as_tuple(s_r), layer.state_names, strict=True):
        assert_close(a, b, rtol, f"final {name}")
    assert_close(dx, dx_r, rtol, "dx")
    for a, b, name in zip(as_tuple(ds0), as_tuple(ds0_r), layer.state_names, strict=True):
        assert_close(a, b, rtol, f"d{name}")
    assert list(grads) == list(grads_r)
    for name in grads:
        assert_close(grads[name], grads_r[name], rtol, f"d{name}")


def layer_run(layer, x, state, lengths, dy, dstate):
    """One forward and backward pass of a layer: (y, final state, dx, d(initial state), grads)."""
    y, s_T, cache = layer.forward(x, state, lengths)
    dx, ds0, grads = layer.backward(dy, cache, dstate)
    return y, s_T, dx, ds0, grads


# -- the compiled time loops against the reference loops ---------------------------------------

#: Agreement of a compiled time loop with the float64 reference, relative to each tensor's
#: magnitude.
KERNEL_RTOL = {np.float64: 1e-12, np.float32: 1e-5}

#: (T, B, H): the edges one by one, then a few larger shapes.
KERNEL_SHAPES = [(1, 1, 1), (1, 3, 4), (6, 1, 5), (4, 3, 1), (7, 5, 8), (13, 9, 17), (20, 16, 32)]

#: Shapes that cut the tiles of every instruction set: rows not a multiple of any tile height,
#: units not a multiple of any vector width, a panel of 4 vectors and a part of the next.
KERNEL_ISA_SHAPES = [(3, 7, 17), (2, 13, 33), (4, 1, 9), (2, 5, 70)]


@pytest.fixture
def native():
    """The extension module; the test is skipped where it is unavailable."""
    module = kernels.native()
    if module is None:
        pytest.skip(f"compiled kernels unavailable: {kernels.reason()}")
    return module


@pytest.fixture
def compiled_layers(native, monkeypatch):
    """The extension module, and layers made in the test choose the compiled loops: the choice
    is left to ``auto`` (RNNKIT_KERNELS unset), whatever the environment of the run; the test is
    skipped where the extension is unavailable."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    return native


def compiled_loop(cell: StepCell) -> TimeLoop:
    """The compiled :class:`~rnnkit.cells.TimeLoop` of ``cell`` (the extension must be there: see
    the ``native`` fixture)."""
    loop = loops.compiled_loop(cell)
    assert loop is not None and loop.name == "compiled", cell
    return loop


@pytest.fixture
def every_isa(native):
    """Each instruction-set variant the CPU supports, in turn; the best is restored after."""
    best, names = native.isa()
    yield names
    native.isa(best)


def upcast(value):
    """The float64 copy of a problem's arrays (prepared parameters included), for the reference."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype == np.float32 else value
    if isinstance(value, tuple):
        return (
            type(value)(*map(upcast, value))
            if hasattr(value, "_fields")
            else tuple(map(upcast, value))
        )
    return value


def kernel_problem(cell: StepCell, T, B, H, dtype, rng, masked):
    """Recurrent parameters (a CellParams, without W_ih: each loop prepares its own layout of
    them), xg, state0, mask (or None), dhs and dstate_T for one run of a cell's time loops:
    W_hh ~ N(0, 1/H), random non-zero b_hh (the reset-after GRU keeps it in the loop), a length
    mask with one empty row at least, dhs zero at masked steps."""
    G = cell.num_gates * H
    W_hh = (rng.standard_normal((G, H)) / np.sqrt(H)).astype(dtype)
    b_hh = (0.5 * rng.standard_normal(G)).astype(dtype)
    params = CellParams(None, W_hh, b_hh, b_hh)
    xg = rng.standard_normal((T, B, G)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in cell.state_names)
    mask = None
    if masked:
        lengths = rng.integers(0, T + 1, B)
        lengths[0] = 0  # always one empty row
        mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    if mask is not None:
        dhs *= mask
    dstate_T = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in cell.state_names)
    return params, xg, state0, mask, dhs, dstate_T


def check_kernel(
    cell: StepCell, kernel: TimeLoop, dtype, params, xg, state0, mask, dhs, dstate_T, rtol=None
) -> None:
    """A compiled time loop (given ``kernel.prepare(params)``) against the reference loops of the
    cell's step equations (given ``cell.prepare(params)``) run in float64 on the same inputs (in
    float32 the float64 reference is the more exact one, and the float32 reference is wrong at
    H = 1 on NumPy with the in-place negative bug: see
    test_kernels.py::test_float32_reference_at_H1): forward states and saved values; backward
    from the reference's forward values rounded to dtype (what the reference forward saved);
    the reference backward from the kernel's forward values (what the kernel saved); and the
    contract at masked steps, exactly. rtol: KERNEL_RTOL by default."""
    rtol, step = KERNEL_RTOL[dtype] if rtol is None else rtol, cell.equations
    names = [*cell.state_names, *(f"saved[{k}]" for k in range(len(step.saved_sizes(1))))]
    P = kernel.prepare(params)
    states, saved = kernel.forward(xg, state0, P, mask)
    P_ref = cell.prepare(params)
    P64, xg64, state0_64, dhs64, dstate_T64 = upcast((P_ref, xg, state0, dhs, dstate_T))
    ref_states, ref_saved = timeloop.forward(step, xg64, state0_64, P64, mask)
    assert len(states + saved) == len(ref_states + ref_saved)
    for name, a, b in zip(names, states + saved, ref_states + ref_saved):
        assert a.dtype == dtype and a.shape == b.shape and a.flags.c_contiguous, name
        assert_close(a, b, rtol, name)

    def backward_matches(fwd_states, fwd_saved, what):
        da, dgh, dstate0 = kernel.backward(dhs, dstate_T, fwd_states, state0, fwd_saved, P, mask)
        ref_da, ref_dgh, ref_dstate0 = timeloop.backward(
            step, dhs64, dstate_T64, upcast(fwd_states), state0_64, upcast(fwd_saved), P64, mask
        )
        assert (dgh is None) == (ref_dgh is None), what
        assert da.dtype == dtype and all(d.dtype == dtype for d in dstate0)
        assert_close(da, ref_da, rtol, f"{what}: da")
        if dgh is not None:
            assert dgh.dtype == dtype
            assert_close(dgh, ref_dgh, rtol, f"{what}: dgh")
        for name, a, b in zip(cell.state_names, dstate0, ref_dstate0, strict=True):
            assert_close(a, b, rtol, f"{what}: d{name}0")
        return da, dgh, dstate0

    rounded = tuple(tuple(a.astype(dtype) for a in part) for part in (ref_states, ref_saved))
    da, dgh, dstate0 = backward_matches(*rounded, "from the reference forward")
    backward_matches(states, saved, "from the kernel forward")
    if mask is not None:
        padded = ~mask[..., 0]
        assert np.all(da[padded] == 0.0) and (dgh is None or np.all(dgh[padded] == 0.0))
        empty = ~mask[:, :, 0].any(axis=0)  # rows of length 0: everything passes through
        for s, s0, d0, d_T in zip(states, state0, dstate0, dstate_T):
            assert np.array_equal(s[:, empty], np.broadcast_to(s0[empty], s[:, empty].shape))
            assert np.array_equal(d0[empty], d_T[empty])


def check_layer_kernel(kind: str, dtype) -> None:
    """A layer of kind running the compiled loops it chose against the same layer on the
    reference loops: two bidirectional layers, lengths with an empty sequence, random initial
    state and random gradients at the outputs and the final state (see the ``compiled_layers``
    fixture)."""
    rng = np.random.default_rng(2)
    T, B, D, H = 7, 5, 3, 6
    compiled = make_layer(kind, D, H, 2, dtype=dtype, seed=3, bidirectional=True)
    reference = make_layer(kind, D, H, 2, dtype=dtype, seed=3, bidirectional=True)
    assert compiled.time_loop.name == "compiled"
    reference.time_loop = reference.cell.reference_loop()
    assert reference.time_loop.name == "numpy"
    x = rng.standard_normal((T, B, D)).astype(dtype)
    state = state_like(compiled, B, rng)
    lengths = np.array([7, 0, 3, 1, 6])
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    dstate = state_like(compiled, B, rng)
    ours = layer_run(compiled, x, state, lengths, dy, dstate)
    ref = layer_run(reference, x, state, lengths, dy, dstate)
    assert_results_close(compiled, ours, ref, KERNEL_RTOL[dtype])


def check_layer_kernel_gradients(kind: str) -> None:
    """Finite differences of a layer of kind running the compiled loops it chose (float64, two
    bidirectional layers, lengths with an empty sequence): every input, state and parameter
    (see the ``compiled_layers`` fixture)."""
    rng = np.random.default_rng(4)
    T, B, D, H = 5, 4, 3, 3
    layer = make_layer(kind, D, H, 2, seed=6, bidirectional=True)
    assert layer.time_loop.name == "compiled"
    x = rng.standard_normal((T, B, D))
    errors = rnnkit.gradcheck(
        layer, x, state_like(layer, B, rng), np.array([5, 0, 2, 4]), dstate="random", seed=2
    )
    assert set(errors) == {"x", *layer.state_names, *layer.state_dict()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-6, f"worst relative error {errors[worst]:.2e} in {worst}"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True, scope="session")
def _torch_single_thread():
    """PyTorch's thread pool slows the tiny parity runs down by 100x on a loaded 2-core machine
    (it spins against NumPy's BLAS threads); one thread is plenty for them."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
