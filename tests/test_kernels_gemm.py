"""The compiled matrix products (rnnkit.runtime.kernels.gemm, ``_native.gemm``) against NumPy:
random shapes with every edge (1, odd sizes, sizes cutting the tiles and the blocks of k, K = 1,
large K), both transposes, with and without bias, float32 and float64, every instruction-set
variant and 1 or more threads; the row sums of op(a) beside the product; row strides (slices);
errors; the fallbacks of :func:`matmul`; and the layers and cells that route their products
through it.

The kernel takes different paths by shape, all covered by SHAPES in both types: op(a) packed
(more than two panels of 4 vectors of columns) or read in place (up to two: N <= 128 float32
or 64 float64 with AVX-512, N <= 64 / 32 with AVX2, 32 / 16 with SSE2), a last sliver of
fewer than MR rows, edge panels of 1 to 4 vectors, k in one block or in several of even
lengths, op(b) packed per block of rows (one thread) or once for all (threads)."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import KERNEL_RTOL
from rnnkit.cells import CellParams, LSTMCell
from rnnkit.cells.base import outer_sum, project
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import gemm

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
    (40, 70, 100),  # op(a) in place, two panels (float32, AVX-512), a last sliver of 4 rows
    (25, 1300, 20),  # several blocks of k (3 of 434 floats, 6 of 217 doubles), in place
    (62, 90, 49),  # an edge panel of 1 to 4 vectors, by type and instruction set
    (200, 300, 300),  # op(a) packed in blocks of rows (MC = 24 MR), five panels
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


def _assert_row_sums(row_sums, a, trans_a, dtype):
    """row_sums against the float64 sums of op(a), relative to the sums of |op(a)| (a sum of
    random values cancels: its own size says nothing of the rounding)."""
    A = (a.T if trans_a else a).astype(np.float64)
    scale = max(float(np.abs(A).sum(axis=1).max()), 1e-300)
    err = float(np.abs(row_sums - A.sum(axis=1)).max()) / scale
    assert row_sums.dtype == dtype and err <= KERNEL_RTOL[dtype], err


def _check(native, M, K, N, trans_a, trans_b, with_bias, dtype, threads, rng, sums=False):
    a, b, bias = _operands(M, K, N, trans_a, trans_b, dtype, rng)
    bias = bias if with_bias else None
    out = np.full((M, N), np.nan, dtype=dtype)
    row_sums = np.full(M, np.nan, dtype=dtype) if sums else None
    native.gemm(a, trans_a, b, trans_b, bias, out, threads, row_sums)
    _assert_close(out, _reference(a, b, trans_a, trans_b, bias), dtype)
    if sums:
        _assert_row_sums(row_sums, a, trans_a, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-K{}-N{}".format(*s))
@pytest.mark.parametrize(
    "trans", [(0, 0), (0, 1), (1, 0), (1, 1)], ids=lambda t: "T{}{}".format(*t)
)
def test_gemm_matches_numpy(native, dtype, shape, trans):
    rng = np.random.default_rng([*shape, *trans])
    for with_bias in (False, True):
        _check(native, *shape, *trans, with_bias, dtype, 1, rng, sums=with_bias)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_every_instruction_set(native, every_isa, dtype):
    rng = np.random.default_rng(3)
    for name in every_isa:
        assert native.isa(name)[0] == name
        for shape in SHAPES:
            for trans in [(0, 1), (0, 0), (1, 0)]:
                _check(native, *shape, *trans, True, dtype, 1, rng, sums=True)
                _check(native, *shape, *trans, False, dtype, 2, rng, sums=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_gemm_threads(native, dtype, threads):
    """Rows split into blocks of whole tiles, sharing one packing of op(b) (every block of k):
    fewer rows than threads, a ragged last block, op(a) packed or read in place, several
    blocks of k; each block's rows of the row sums."""
    rng = np.random.default_rng(threads)
    shapes = [(1, 5, 9), (7, 30, 70), (100, 300, 65), (613, 290, 130), (97, 1100, 40)]
    for shape in [*shapes, (150, 600, 300)]:
        for trans in [(0, 1), (0, 0), (1, 0)]:
            _check(native, *shape, *trans, True, dtype, threads, rng, sums=True)
            _check(native, *shape, *trans, False, dtype, threads, rng)


def test_gemm_row_sums_lose_nothing_to_float32(native):
    """float32 row sums add up in double: 1e8 then 4096 ones (of each row of op(a)) is exactly
    100004096 (a float32, a multiple of 8), where a float32 sum stays at 1e8 after each 1."""
    for trans_a in (False, True):
        for threads in (1, 2):
            A = np.ones((150, 4097), dtype=np.float32)  # op(a): two blocks of k, both paths
            A[:, 0] = 1e8
            a = np.ascontiguousarray(A.T) if trans_a else A
            for N in (30, 300):
                b = np.ones((4097, N), dtype=np.float32)
                out, row_sums = np.empty((150, N), dtype=np.float32), np.zeros(150, np.float32)
                native.gemm(a, trans_a, b, False, None, out, threads, row_sums)
                np.testing.assert_array_equal(row_sums, np.float32(100_004_096))


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
    with pytest.raises(ValueError, match="row_sums: dimension 0 must be 3"):
        native.gemm(a, False, b, False, None, np.empty((3, 5)), 1, np.empty(4))
    with pytest.raises(ValueError, match="row_sums must have 1 dimensions"):
        native.gemm(a, False, b, False, None, np.empty((3, 5)), 1, np.empty((3, 1)))
    with pytest.raises(TypeError, match="row_sums must have item format 'd'"):
        native.gemm(a, False, b, False, None, np.empty((3, 5)), 1, np.empty(3, np.float32))
    read_only = np.empty(3)
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="row_sums must be a writable C-contiguous array"):
        native.gemm(a, False, b, False, None, np.empty((3, 5)), 1, read_only)


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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_row_sums(native, dtype):
    """row_sums on the kernel's path (every transpose) and on each of NumPy's, where it is
    exactly ``op(a).sum(axis=1)``; a row_sums that does not fit is refused."""
    rng = np.random.default_rng(12)
    for trans_a, trans_b in [(True, False), (False, True), (False, False)]:
        a, b, bias = _operands(300, 900, 200, trans_a, trans_b, dtype, rng)
        assert gemm.worth_it(300, 900, 200) and gemm.covers(a, b, bias)
        row_sums = np.full(300, np.nan, dtype=dtype)
        out = gemm.matmul(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, row_sums=row_sums)
        _assert_close(out, _reference(a, b, trans_a, trans_b, bias), dtype)
        _assert_row_sums(row_sums, a, trans_a, dtype)
    a, b, _ = _operands(300, 900, 200, True, False, dtype, rng)
    other = np.float64 if dtype == np.float32 else np.float32
    small = (a[:5, :4], b[:5, :3])
    cases = [
        (a[:, ::2], b[:, ::2], np.empty(150, dtype)),  # non-contiguous rows
        (a.astype(np.float16), b.astype(np.float16), np.empty(300, np.float16)),  # float16
        (a, b.astype(other), np.empty(300, dtype)),  # mixed dtypes
        (a[:0], b[:0], np.empty(300, dtype)),  # K = 0: sums of nothing
        (*small, np.empty(4, dtype)),  # too small to be worth it
        (a, b, np.empty(600, dtype)[::2]),  # a row_sums that is not contiguous
    ]
    for x, w, row_sums in cases:
        K, M, N = *x.shape, w.shape[1]
        assert not (gemm.covers(x, w, None, row_sums) and gemm.worth_it(M, K, N))
        row_sums[:] = np.nan
        got = gemm.matmul(x, w, trans_a=True, row_sums=row_sums)
        np.testing.assert_array_equal(got, x.T @ w)
        np.testing.assert_array_equal(row_sums, x.T.sum(axis=1))
    with pytest.raises(ValueError, match=r"row_sums must have shape \(300,\), got \(299,\)"):
        gemm.matmul(a, b, trans_a=True, row_sums=np.empty(299, dtype))
    with pytest.raises(TypeError, match=f"row_sums must be a {np.dtype(dtype)} array, got"):
        gemm.matmul(a, b, trans_a=True, row_sums=np.empty(300, other))
    with pytest.raises(TypeError, match=r"row_sums must be a .* array, got list"):
        gemm.matmul(a, b, trans_a=True, row_sums=[0.0] * 300)


def test_cell_products_route_through_the_kernel(native, monkeypatch):
    """A layer on the compiled loops uses the kernel's products; on NumPy's, NumPy's; and a
    cell runs the products of the loop it is given."""
    monkeypatch.setenv(kernels.ENV, "compiled")
    assert kernels.time_loop(LSTMCell()).matmul is gemm.matmul
    assert rnnkit.LSTM(2, 3).time_loop.matmul is gemm.matmul
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert kernels.time_loop(LSTMCell()).matmul is None
    assert rnnkit.LSTM(2, 3).time_loop.matmul is None
    assert LSTMCell().reference_loop().matmul is None
    rng = np.random.default_rng(2)
    x, W, bias = rng.standard_normal((10, 40, 64)), rng.standard_normal((512, 64)), rng.random(512)
    _assert_close(project(x, W, bias, gemm.matmul), project(x, W, bias), np.float64)
    dg = rng.standard_normal((10, 40, 512))
    _assert_close(outer_sum(dg, x, gemm.matmul), outer_sum(dg, x), np.float64)
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return gemm.matmul(*args, **kwargs)

    cell, H = LSTMCell(), 4
    params = CellParams(*(rng.standard_normal(s) for s in [(4 * H, 3), (4 * H, H), 4 * H, 4 * H]))
    loop = cell.reference_loop()._replace(matmul=counted)
    hs, _, cache = cell.forward(
        rng.standard_normal((5, 2, 3)), (np.zeros((2, H)),) * 2, params, loop=loop
    )
    assert len(calls) == 1  # the input projection
    cell.backward(rng.standard_normal(hs.shape), (np.zeros((2, H)),) * 2, cache)
    assert len(calls) == 4  # dx, dW_ih, dW_hh


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_rows_gives_each_row_the_same_bits_in_any_batch(native, dtype):
    """Within gemm.exact_rows the kernel computes every size, and a row's result is the same
    bits whatever the rows around it, their number (1 included) and the threads; outside it,
    small products go to NumPy."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 96)).astype(dtype)
    W = rng.standard_normal((256, 96)).astype(dtype)
    bias = rng.standard_normal(256).astype(dtype)
    with gemm.exact_rows():
        full = gemm.matmul(x, W, trans_b=True, bias=bias)
        for start, M in [(0, 1), (7, 1), (3, 2), (10, 5), (40, 64), (0, 299)]:
            part = gemm.matmul(np.ascontiguousarray(x[start : start + M]), W, trans_b=True,
                               bias=bias)  # fmt: skip
            np.testing.assert_array_equal(part, full[start : start + M])
    assert not gemm.worth_it(1, 96, 256)
    _assert_close(gemm.matmul(x[:1], W, trans_b=True, bias=bias), full[:1], dtype)
    with gemm.exact_rows():
        with gemm.exact_rows():
            pass
        assert gemm._mode.exact  # nested: restored to the outer setting
    assert not gemm._mode.exact


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_b_gives_the_same_bits(native, every_isa, dtype):
    """op(b) packed once (pack_b) gives the bits of the product that packs it at each call: on
    one thread (packed per block of k) and several (packed once, shared), every shape's path,
    every instruction set."""
    rng = np.random.default_rng(11)
    for name in every_isa:
        native.isa(name)
        for M, K, N in [*SHAPES, (64, 320, 1024)]:
            for trans_b in (False, True):
                a, b, bias = _operands(M, K, N, False, trans_b, dtype, rng)
                packed = native.pack_b(b, trans_b)
                for threads in (1, 3):
                    want, got = np.empty((M, N), dtype), np.empty((M, N), dtype)
                    native.gemm(a, False, b, trans_b, bias, want, threads)
                    native.gemm(a, False, packed, False, bias, got, threads)
                    assert np.array_equal(got, want), (name, M, K, N, trans_b, threads)


def test_packed_b_refuses_what_does_not_fit(native, every_isa):
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    packed, out = native.pack_b(b, False), np.empty((4, 5))
    with pytest.raises(ValueError, match="trans_b must be False"):
        native.gemm(a, False, packed, True, None, out, 1)
    with pytest.raises(ValueError, match="another function, type or shape"):
        native.gemm(a.astype(np.float32), False, packed, False, None, out.astype(np.float32), 1)
    with pytest.raises(ValueError, match="shapes do not match"):
        native.gemm(a[:, :5], False, packed, False, None, out, 1)
    with pytest.raises(ValueError, match="another function"):  # W_hh packed for a loop
        native.gemm(a, False, native.pack_hh(2, False, np.ones((20, 5))), False, None, out, 1)
    others = [n for n in every_isa if n != native.isa()[0]]
    if others:  # a layout of another instruction set
        native.isa(others[0])
        with pytest.raises(ValueError, match="pack it again"):
            native.gemm(a, False, packed, False, None, out, 1)


def test_matmul_takes_packed_operands(native):
    rng = np.random.default_rng(13)
    for dtype in (np.float64, np.float32):
        a = rng.standard_normal((64, 320)).astype(dtype)
        W = rng.standard_normal((1024, 320)).astype(dtype)
        bias = rng.standard_normal(1024).astype(dtype)
        packed = gemm.pack(W, trans_b=True)
        want = gemm.matmul(a, W, trans_b=True, bias=bias)
        assert np.array_equal(gemm.matmul(a, packed, bias=bias), want)
        small = a[:3, :4], W[:5, :4]  # NumPy's product, from the operand itself
        got = gemm.matmul(small[0], gemm.pack(small[1], True))
        assert np.array_equal(got, small[0] @ small[1].T)
        with gemm.exact_rows():  # the kernel at every size
            assert np.array_equal(
                gemm.matmul(small[0], gemm.pack(small[1], True)),
                gemm.matmul(small[0], small[1], trans_b=True),
            )
    with pytest.raises(ValueError, match="trans_b must be False"):
        gemm.matmul(a, packed, trans_b=True)
    ints = np.ones((3, 3), dtype=np.int64)
    assert gemm.pack(ints).kernel is None  # not the kernel's: NumPy's product
    assert np.array_equal(gemm.matmul(ints, gemm.pack(ints)), ints @ ints)
