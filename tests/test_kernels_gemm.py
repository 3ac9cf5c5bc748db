"""The compiled matrix products (rnnkit.kernels.gemm, ``_native.gemm``) against NumPy: random
shapes with every edge (1, odd sizes, sizes cutting the tiles and the blocks of k, K = 1, large
K), both transposes, with and without bias, float32 and float64, every instruction-set variant
and 1 or more threads; row strides (slices); errors; the fallbacks of :func:`matmul`; and the
layers that route their products through it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_RTOL
from rnnkit import kernels
from rnnkit.cells import LSTMCell
from rnnkit.cells.base import outer_sum, project
from rnnkit.kernels import gemm

#: (M, K, N): edges one by one, then shapes cutting every tile (MR rows, 4 vectors of columns)
#: and the blocks of k (512 float32 or 256 float64 values) and of rows (24 MR).
SHAPES = [
    (1, 1, 1),
    (1, 7, 1),
    (5, 1, 3),
    (2, 3, 130),
    (7, 13, 65),
    (13, 257, 17),
    (37, 600, 33),
    (150, 40, 129),
    (6, 1100, 64),
    (301, 520, 97),
]


def _operands(M, K, N, trans_a, trans_b, dtype, rng):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    return a, b, rng.standard_normal(N).astype(dtype)


def _reference(a, b, trans_a, trans_b, bias):
    A = (a.T if trans_a else a).astype(np.float64)
    out = A @ (b.T if trans_b else b).astype(np.float64)
    return out if bias is None else out + bias


def _assert_close(out, ref, dtype):
    scale = max(float(np.abs(ref).max()), 1e-300)
    err = float(np.abs(out - ref).max()) / scale
    assert err <= KERNEL_RTOL[dtype], err


def _check(native, M, K, N, trans_a, trans_b, with_bias, dtype, threads, rng):
    a, b, bias = _operands(M, K, N, trans_a, trans_b, dtype, rng)
    bias = bias if with_bias else None
    out = np.full((M, N), np.nan, dtype=dtype)
    native.gemm(a, trans_a, b, trans_b, bias, out, threads)
    _assert_close(out, _reference(a, b, trans_a, trans_b, bias), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-K{}-N{}".format(*s))
@pytest.mark.parametrize(
    "trans", [(0, 0), (0, 1), (1, 0), (1, 1)], ids=lambda t: "T{}{}".format(*t)
)
def test_gemm_matches_numpy(native, dtype, shape, trans):
    rng = np.random.default_rng([*shape, *trans])
    for with_bias in (False, True):
        _check(native, *shape, *trans, with_bias, dtype, 1, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_every_instruction_set(native, every_isa, dtype):
    rng = np.random.default_rng(3)
    for name in every_isa:
        assert native.isa(name)[0] == name
        for shape in SHAPES:
            for trans in [(0, 1), (0, 0), (1, 0)]:
                _check(native, *shape, *trans, True, dtype, 1, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_gemm_threads(native, dtype, threads):
    """Rows split into blocks of whole tiles: fewer rows than threads, and a ragged last block."""
    rng = np.random.default_rng(threads)
    for shape in [(1, 5, 9), (7, 30, 70), (100, 300, 65), (613, 290, 130)]:
        for trans in [(0, 1), (0, 0), (1, 0)]:
            _check(native, *shape, *trans, True, dtype, threads, rng)


def test_gemm_strided_rows(native):
    """Operands and result that are slices of wider arrays (any row stride)."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((40, 90))[:, 10:60]  # (40, 50)
    b = rng.standard_normal((50, 80))[:, 3:70]  # (50, 67)
    wide = np.full((40, 100), np.nan)
    out = wide[:, 20:87]
    native.gemm(a, False, b, False, None, out, 2)
    _assert_close(out, a @ b, np.float64)
    assert np.isnan(wide[:, :20]).all() and np.isnan(wide[:, 87:]).all()
    dg = rng.standard_normal((3, 4, 30))[..., 10:25].reshape(12, 15)  # a GRU gate slice
    out = np.empty((15, 67))
    native.gemm(dg, True, b[:12], False, None, out, 1)
    _assert_close(out, dg.T @ b[:12], np.float64)


def test_gemm_refuses_bad_arguments(native):
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match="shapes do not match"):
        native.gemm(a, False, b, True, None, np.empty((3, 5)), 1)
    with pytest.raises(ValueError, match="shapes do not match"):
        native.gemm(a, False, b, False, None, np.empty((3, 6)), 1)
    with pytest.raises(TypeError, match="item format 'd'"):
        native.gemm(a, False, b.astype(np.float32), False, None, np.empty((3, 5)), 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        native.gemm(a.astype(np.int64), False, b, False, None, np.empty((3, 5)), 1)
    with pytest.raises(ValueError, match="contiguous, non-overlapping rows"):
        native.gemm(a[:, ::2], False, b[:2], False, None, np.empty((3, 5)), 1)
    with pytest.raises(ValueError, match="dimension 0 must be 5"):
        native.gemm(a, False, b, False, np.ones(4), np.empty((3, 5)), 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_kernel_and_fallbacks(native, dtype):
    """Large enough for the kernel, and each case it leaves to NumPy: the same result."""
    rng = np.random.default_rng(11)
    a, b, bias = _operands(400, 500, 300, False, True, dtype, rng)
    assert gemm.worth_it(400, 500, 300) and gemm.covers(a, b, bias)
    _assert_close(gemm.matmul(a, b, trans_b=True, bias=bias), a @ b.T + bias, dtype)
    cases = [
        (a[:, ::2], b[:, ::2]),  # non-contiguous rows
        (a.astype(np.float16), b.astype(np.float16)),  # a dtype the kernel does not cover
        (a, b.astype(np.float64 if dtype == np.float32 else np.float32)),  # mixed dtypes
        (a[:, :0], b[:, :0]),  # K = 0
        (a[:4, :7], b[:5, :7]),  # too small to be worth it
    ]
    for x, w in cases:
        assert not (gemm.covers(x, w) and gemm.worth_it(x.shape[0], x.shape[1], w.shape[0]))
        got = gemm.matmul(x, w, trans_b=True)
        np.testing.assert_array_equal(got, x @ w.T)
    with pytest.raises(ValueError, match="do not multiply"):
        gemm.matmul(a, b)


def test_cell_products_route_through_the_kernel(native, monkeypatch):
    """A cell on the compiled recurrence uses the kernel's products; on NumPy's, NumPy's."""
    monkeypatch.setenv(kernels.ENV, "compiled")
    assert LSTMCell().matmul is gemm.matmul
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert LSTMCell().matmul is None
    rng = np.random.default_rng(2)
    x, W, bias = rng.standard_normal((10, 40, 64)), rng.standard_normal((512, 64)), rng.random(512)
    _assert_close(project(x, W, bias, gemm.matmul), project(x, W, bias), np.float64)
    dg = rng.standard_normal((10, 40, 512))
    _assert_close(outer_sum(dg, x, gemm.matmul), outer_sum(dg, x), np.float64)
