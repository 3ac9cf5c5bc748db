"""Helpers shared by the tests: building layers by kind, random upstream gradients, comparisons."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit

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
