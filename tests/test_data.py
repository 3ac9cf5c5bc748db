"""Batching: padding, shuffled sequence batches, truncated-BPTT streams, state resets."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data import SequenceData, StreamData, pad_sequences, reset_rows


def test_pad_sequences():
    x, lengths = pad_sequences([np.arange(3), np.arange(5), np.arange(1)], pad_value=-1)
    assert x.shape == (5, 3) and lengths.tolist() == [3, 5, 1]
    assert x[:, 2].tolist() == [0, -1, -1, -1, -1]
    with pytest.raises(ValueError, match=r"sequences\[1\] must have shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="must not be empty"):
        pad_sequences([])


def test_sequence_data_covers_every_example_once_per_epoch():
    xs = [np.full((i % 4 + 1, 2), i, dtype=float) for i in range(10)]
    data = SequenceData(xs, list(range(10)), batch_size=4)
    order = data.order(np.random.default_rng(0))
    seen = np.concatenate([data.batch(order, i).y for i in range(len(data))])
    assert len(data) == 3 and sorted(seen.tolist()) == list(range(10))
    b = data.batch(order, 0)
    for row, label in enumerate(b.y):  # inputs, lengths and targets stay together
        assert np.all(b.x[: b.lengths[row], row] == label)
        assert np.all(b.x[b.lengths[row] :, row] == 0)
    assert SequenceData(xs, list(range(10)), batch_size=4, drop_last=True).__len__() == 2


def test_per_step_targets_get_a_mask():
    xs = [np.ones((3, 2)), np.ones((1, 2))]
    data = SequenceData(
        xs, [np.ones((3, 1)), np.ones((1, 1))], batch_size=2, per_step=True, shuffle=False
    )
    b = data.batch(data.order(None), 0)
    assert b.y.shape == (3, 2, 1) and b.mask.tolist() == [
        [True, True],
        [True, False],
        [True, False],
    ]
    with pytest.raises(ValueError, match="one entry per step"):
        SequenceData(xs, [np.ones(2), np.ones(1)], batch_size=2, per_step=True)


def test_stream_rows_are_contiguous_and_targets_shifted():
    data = StreamData(np.arange(101), batch_size=4, bptt=10)
    x = np.concatenate([data.batch(data.order(None), i).x for i in range(len(data))])
    y = np.concatenate([data.batch(data.order(None), i).y for i in range(len(data))])
    assert x[:, 1].tolist()[:25] == list(range(25, 50))
    assert np.array_equal(y[:25], x[:25] + 1)
    assert data.batch(data.order(None), 0).reset.all()
    assert not data.batch(data.order(None), 1).reset.any()


def test_stream_documents_start_on_chunk_boundaries():
    docs = [np.arange(6), np.arange(4), np.arange(9)]
    data = StreamData(docs, batch_size=2, bptt=4)
    counted = sum(data.batch(data.order(None), i).mask.sum() for i in range(len(data)))
    assert counted == 5 + 3 + 8  # each document predicts len - 1 tokens, padding is masked
    with pytest.raises(TypeError, match="1-D integer array"):
        StreamData([np.ones(3)], batch_size=1, bptt=2)
    with pytest.raises(ValueError, match="too short"):
        StreamData(np.arange(3), batch_size=4, bptt=2)


def test_reset_rows_copies():
    h = np.ones((2, 3, 4))
    c = np.ones((2, 3, 4))
    h2, c2 = reset_rows((h, c), np.array([False, True, False]))
    assert not h2[:, 1].any() and h2[:, 0].all() and c2[:, 2].all() and h.all()
