"""rnnkit.runtime.workspace: recycled buffers are handed out again only when nothing refers to them
(arrays, views, caches), small arrays are plain, the limit and release hold, and layers give
the same results with and without the workspace, with caches kept alive and across threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rnnkit
from rnnkit.runtime import workspace

BIG = (512, 256)  # 512 KiB of float32: from the workspace


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def fresh_workspace():
    """Each test starts from an empty workspace and the default limit."""
    workspace.release()
    yield
    workspace.limit(workspace.DEFAULT_LIMIT)
    workspace.release()


def test_empty_is_like_np_empty():
    a = workspace.empty(BIG, np.float32)
    assert a.shape == BIG and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.flags.writeable and a.base is not None  # over a workspace buffer
    small = workspace.empty((4, 5), "float64")
    assert small.shape == (4, 5) and small.dtype == np.float64 and small.base is None
    assert workspace.empty(3 * workspace.MIN_BYTES // 8, np.float64).shape == (
        3 * workspace.MIN_BYTES // 8,
    )


def test_a_buffer_in_use_is_not_handed_out():
    a = workspace.empty(BIG, np.float32)
    b = workspace.empty(BIG, np.float32)
    assert not np.shares_memory(a, b)
    where = address(a)
    del a
    c = workspace.empty(BIG, np.float32)  # a's buffer, now unused
    assert address(c) == where
    assert not np.shares_memory(b, c)


def test_views_keep_their_buffer():
    a = workspace.empty(BIG, np.float32)
    views = [a[1:], a.T, a.reshape(-1)[::3], a.view(np.int32)]
    where = address(a)
    del a
    for _ in range(len(views)):
        b = workspace.empty(BIG, np.float32)
        assert address(b) != where
        views.pop()
        del b
    assert address(workspace.empty(BIG, np.float32)) == where  # the last view gone


def test_other_dtypes_and_shapes_reuse_a_buffer_within_the_slack():
    a = workspace.empty(BIG, np.float32)
    where = address(a)
    del a
    b = workspace.empty((256, 256), np.float64)  # the same bytes
    assert address(b) == where
    del b
    half = workspace.empty((256, 256), np.float32)  # half the bytes: within MAX_SLACK
    assert address(half) == where
    quarter = workspace.empty((128, 256), np.float64)  # not within the slack: a new buffer
    assert address(quarter) != where


def test_limit_and_release():
    assert workspace.limit() == workspace.DEFAULT_LIMIT
    a = workspace.empty(BIG, np.float32)
    total, unused = workspace.held()
    assert total >= a.nbytes and unused == 0
    assert workspace.release() == 0  # a still uses it
    del a
    assert workspace.held()[1] >= BIG[0] * BIG[1] * 4
    assert workspace.release() >= BIG[0] * BIG[1] * 4
    assert workspace.held() == (0, 0)
    assert workspace.limit(0) == 0  # nothing kept: every array afresh
    b = workspace.empty(BIG, np.float32)
    assert workspace.held() == (0, 0) and b.shape == BIG
    workspace.limit(3 * 512 * 1024)  # room for three buffers of BIG: the oldest goes first
    arrays = [workspace.empty(BIG, np.float32) for _ in range(4)]
    assert workspace.held()[0] == 3 * 512 * 1024
    assert all(a.shape == BIG for a in arrays)


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_bad_limit(value):
    with pytest.raises(ValueError, match="nbytes must be a non-negative int"):
        workspace.limit(value)


def _step(layer, x, dy):
    y, _state, cache = layer.forward(x)
    dx, _dstate, grads = layer.backward(dy, cache)
    return y, dx, grads


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_layers_give_the_same_results_with_caches_kept_alive(kind):
    """Two forward passes before either backward pass: the first cache must survive the
    second pass's arrays; every result equals the run without the workspace."""
    rng = np.random.default_rng(0)
    layer = getattr(rnnkit, kind)(24, 96, num_layers=2, bidirectional=True, seed=0)
    # states (60, 16, 96) float32: 360 KiB, above workspace.MIN_BYTES
    xs = [rng.standard_normal((60, 16, 24)).astype(layer.dtype) for _ in range(2)]
    dys = [rng.standard_normal((60, 16, 192)).astype(layer.dtype) for _ in range(2)]
    workspace.limit(0)
    expected = [_step(layer, x, dy) for x, dy in zip(xs, dys)]
    workspace.limit(workspace.DEFAULT_LIMIT)
    for _ in range(2):  # the second time round, from recycled buffers
        runs = [layer.forward(x) for x in xs]
        got = [(y, *layer.backward(dy, cache)[::2]) for (y, _, cache), dy in zip(runs, dys)]
        for (y, dx, grads), (y_ref, dx_ref, grads_ref) in zip(got, expected):
            np.testing.assert_array_equal(y, y_ref)
            np.testing.assert_array_equal(dx, dx_ref)
            for name in grads_ref:
                np.testing.assert_array_equal(grads[name], grads_ref[name])


def test_threads_use_the_workspace_safely():
    rng = np.random.default_rng(1)
    layers = [rnnkit.LSTM(16, 64, seed=s) for s in range(2)]
    x = rng.standard_normal((50, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((50, 16, 64)).astype(np.float32)
    expected = [_step(layer, x, dy) for layer in layers]
    failures = []

    def work(i):
        for _ in range(10):
            y, dx, _grads = _step(layers[i], x, dy)
            if not (np.array_equal(y, expected[i][0]) and np.array_equal(dx, expected[i][1])):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
