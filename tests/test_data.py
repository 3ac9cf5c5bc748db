"""Batching: padding, shuffled sequence batches, truncated-BPTT streams, state resets; the
checks of SequenceData (non-finite values, shapes, empty sequences); what the loaders refuse to
read (devices, FIFOs, links to devices, files past their size limit or that would not fit in
memory)."""

from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pytest

from rnnkit.data import (
    SequenceData,
    StreamData,
    Vocabulary,
    load_classification_csv,
    load_csv_series,
    load_text,
    load_ts,
    pad_sequences,
    reset_rows,
)
from rnnkit.data.files import MAX_TABLE_BYTES, MAX_TEXT_BYTES, SIZE_ENV
from rnnkit.limits import MemoryLimitError, memory_limit


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


# -- SequenceData: bad values and empty sequences ------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "array"])
def test_sequence_data_refuses_non_finite_inputs(bad, as_array):
    xs = np.ones((4, 3, 2))
    xs[2, 1, 0] = bad
    with pytest.raises(
        ValueError, match=rf"inputs\[2\] must be finite, got {bad} at index \(1, 0\)"
    ):
        SequenceData(xs if as_array else list(xs), [0, 1, 0, 1], batch_size=2)


@pytest.mark.parametrize("per_step", [False, True])
def test_sequence_data_refuses_non_finite_targets(per_step):
    xs = [np.ones((3, 2)), np.ones((2, 2))]
    ys = [np.ones((3, 1)), np.ones((2, 1))] if per_step else [np.ones(1), np.ones(1)]
    ys[1][-1] = np.nan
    where = r" at index \(1, 0\)" if per_step else r" at index \(0,\)"
    with pytest.raises(ValueError, match=rf"targets\[1\] must be finite, got nan{where}"):
        SequenceData(xs, ys, batch_size=2, per_step=per_step)


def test_sequence_data_refuses_mixed_shapes_and_kinds():
    with pytest.raises(ValueError, match=r"inputs\[1\] must have shape \(T, 2\) like inputs\[0\]"):
        SequenceData([np.ones((3, 2)), np.ones((3, 3))], [0, 1], batch_size=2)
    with pytest.raises(TypeError, match=r"inputs\[1\] must hold integer ids like inputs\[0\]"):
        SequenceData([np.arange(3), np.ones(3)], [0, 1], batch_size=2)
    with pytest.raises(TypeError, match=r"inputs\[1\] must hold integers or real numbers"):
        SequenceData([np.ones((3, 2)), np.array(["a", "b"])], [0, 1], batch_size=2)
    with pytest.raises(ValueError, match=r"targets\[1\] must have shape \(2,\) like targets\[0\]"):
        SequenceData([np.ones((3, 2))] * 2, [np.ones(2), np.ones(3)], batch_size=2)
    with pytest.raises(
        ValueError, match=r"targets\[1\] must have shape \(T, 1\) like targets\[0\]"
    ):
        SequenceData(
            [np.ones((3, 2))] * 2, [np.ones((3, 1)), np.ones((3, 2))], batch_size=2, per_step=True
        )


def test_sequence_data_batches_empty_sequences_as_the_layers_take_them():
    """forward accepts length 0 (zero outputs, the initial state as final state, zeros when
    pooled), so SequenceData does too: an empty sequence, [] included, is batched with length
    0, its per-step targets are all masked, and the kind of the other sequences is kept."""
    import rnnkit

    xs = [np.ones((3, 2)), np.zeros((0, 2)), [], np.ones((2, 2))]
    data = SequenceData(xs, [0, 1, 1, 0], batch_size=4, shuffle=False)
    b = data.batch(data.order(None), 0)
    assert b.x.shape == (3, 4, 2) and b.x.dtype == np.float32
    assert b.lengths.tolist() == [3, 0, 0, 2] and not b.x[:, 1:3].any()
    model = rnnkit.SequenceClassifier(2, 4, num_classes=2, pooling="mean", seed=0)
    out, _, cache = model.forward(b.x, lengths=b.lengths)
    loss, dout = rnnkit.losses.cross_entropy(out, b.y)
    model.backward(dout, cache)
    assert np.isfinite(out).all() and np.isfinite(loss)
    np.testing.assert_allclose(out[1], model.head.parameters()["bias"])  # pooled zeros

    ids = [np.array([], dtype=np.int64), [], np.array([4, 2, 7])]
    tokens = SequenceData(ids, [[], np.zeros(0), np.array([1, 2, 3])], 3, per_step=True)
    b = tokens.batch(tokens.order(None), 0)
    assert b.x.dtype.kind == "i" and b.y.dtype.kind == "i"  # [] does not turn ids into floats
    assert b.lengths.tolist() == [0, 0, 3] and b.mask.sum(axis=0).tolist() == [0, 0, 3]

    with pytest.raises(ValueError, match="every one of the 2 sequences is empty"):
        SequenceData([[], np.zeros((0, 2))], [0, 1], batch_size=2)
    with pytest.raises(ValueError, match="one entry per step"):
        SequenceData(xs, [np.ones(3), np.ones(1), [], np.ones(2)], 2, per_step=True)


def test_batches_that_cannot_fit_are_refused():
    xs = [np.zeros((10**6, 1), np.float32), np.zeros((1, 1), np.float32)] * 4
    docs = [np.arange(5)] * 1000
    tracemalloc.start()
    try:
        with memory_limit("4M"), pytest.raises(MemoryLimitError, match=r"a padded batch of shape"):
            pad_sequences(xs)  # 16 MiB of sequences padded to 8 rows of 10**6 steps
        with pytest.raises(MemoryLimitError, match=r"the token rows of StreamData"):
            StreamData(docs, batch_size=2, bptt=10**9)  # its padding: 10**12 steps
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


# -- loaders: what they refuse to read -----------------------------------------------------------

LOADERS = {
    "load_text": lambda path, **kw: load_text(path, **kw),
    "load_csv_series": lambda path, **kw: load_csv_series(path, "v", **kw),
    "load_ts": lambda path, **kw: load_ts(path, **kw),
    "load_classification_csv": lambda path, **kw: load_classification_csv(path, **kw),
}
#: The first lines and a data line of a valid file for each loader.
FORMATS = {
    "load_text": ("", "hello\n"),
    "load_csv_series": ("v\n", "1.5\n"),
    "load_ts": ("@classLabel true a b\n@data\n", "1,2,3:a\n"),
    "load_classification_csv": ("t0,t1,label\n", "1,2,a\n"),
}


def body(loader: str, size: int) -> str:
    """A valid file for ``loader`` of exactly ``size`` bytes (a blank line pads it)."""
    head, line = FORMATS[loader]
    text = head + line * ((size - len(head) - 2) // len(line))
    return text + " " * (size - len(text) - 1) + "\n"


def quickly(call, exc, pattern: str):
    start = time.perf_counter()
    with pytest.raises(exc, match=pattern):
        call()
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("loader", list(LOADERS))
def test_loaders_refuse_devices_fifos_and_links_to_devices(loader, tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    load = LOADERS[loader]
    quickly(lambda: load("/dev/zero"), ValueError, "/dev/zero: is a character device")
    link = tmp_path / "data.txt"
    link.symlink_to("/dev/zero")
    quickly(lambda: load(link), ValueError, "data.txt: is a character device")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)  # nobody writes to it: opening it would block for ever
        quickly(lambda: load(fifo), ValueError, r"pipe: is a FIFO \(named pipe\)")
    quickly(lambda: load(tmp_path), ValueError, "is a directory")


@pytest.mark.parametrize("loader", list(LOADERS))
def test_loaders_refuse_files_past_their_size_limit(loader, tmp_path, monkeypatch):
    monkeypatch.delenv(SIZE_ENV, raising=False)
    load, path = LOADERS[loader], tmp_path / "data"
    path.write_text(body(loader, 3000))
    assert os.path.getsize(path) == 3000
    pattern = (
        r"data: 3,000 bytes \(2\.9 KiB\), more than the 1\.0 KiB a .* may have; pass max_bytes="
    )
    quickly(lambda: load(path, max_bytes="1K"), ValueError, pattern)
    quickly(lambda: load(path, max_bytes=1023), ValueError, "more than the 1023 bytes")
    load(path, max_bytes=3000)
    load(path, max_bytes="off")
    monkeypatch.setenv(SIZE_ENV, "2K")
    quickly(lambda: load(path), ValueError, "more than the 2.0 KiB")
    load(path, max_bytes="3K")  # the argument wins over the environment
    monkeypatch.setenv(SIZE_ENV, "big")
    quickly(lambda: load(path), ValueError, "RNNKIT_MAX_FILE_SIZE must be a number of bytes")


@pytest.mark.parametrize("loader", list(LOADERS))
def test_default_limits_refuse_huge_files_unread(loader, tmp_path, monkeypatch):
    """A sparse file just past the default limit (no disk space used) is refused by its size."""
    monkeypatch.delenv(SIZE_ENV, raising=False)
    default = MAX_TEXT_BYTES if loader == "load_text" else MAX_TABLE_BYTES
    path = tmp_path / "huge"
    with open(path, "wb") as f:
        f.truncate(default + 1)
    limit = "2.0 GiB" if loader == "load_text" else "1.0 GiB"
    quickly(lambda: LOADERS[loader](path), ValueError, f"more than the {limit}")


@pytest.mark.parametrize("loader", list(LOADERS))
def test_loaders_check_what_the_file_becomes_in_memory(loader, tmp_path):
    """Below its size limit, a file whose parsed form would not fit is refused before it is
    parsed (the memory available set small here)."""
    path = tmp_path / "data"
    path.write_text(body(loader, 300_000))
    tracemalloc.start()
    try:
        with memory_limit("256K"):
            quickly(lambda: LOADERS[loader](path), MemoryLimitError, "would need about")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # a chunk of the scan and its line ends at most, not the file
    with memory_limit("256M"):
        LOADERS[loader](path)


def test_load_text_checks_wide_characters(tmp_path):
    """A text of 4-byte characters takes 4 bytes a character in memory, not 1."""
    path = tmp_path / "emoji.txt"
    path.write_text("\U0001f600" * 250_000, encoding="utf-8")  # 1 MB
    with memory_limit("4M"):
        quickly(lambda: load_text(path), MemoryLimitError, r"the text of .*emoji\.txt \(4 bytes")
    assert len(load_text(path)) == 250_000


def test_vocabulary_checks_and_bounds_its_work():
    text = "abc" * 400_000
    vocab = Vocabulary.from_text("ab")
    with memory_limit("4M"):
        quickly(lambda: vocab.encode(text), MemoryLimitError, "the ids of a text of 1,200,000")
        quickly(lambda: vocab.decode(np.ones(10**6, np.int64)), MemoryLimitError, "the text of")
    tracemalloc.start()
    try:
        ids = vocab.encode(text)
        Vocabulary.from_text(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ids.tolist()[:4] == [1, 2, 0, 1]
    assert peak < 8 * len(text) + 80 * 2**20  # the ids and one chunk's temporaries


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc here")
def test_a_file_longer_than_its_size_on_disk_is_still_bounded():
    assert "Name:" in load_text("/proc/self/status")  # /proc says 0 bytes; it is read whole
    quickly(
        lambda: load_text("/proc/self/status", max_bytes=100),
        ValueError,
        "more than the 100 bytes a text file may have",
    )
