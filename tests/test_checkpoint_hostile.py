"""Checkpoint and model files as untrusted input: every hostile file (decompression bombs,
encrypted or oversized members, huge or absurd manifests, declared shapes of 10**12 elements,
trainer trees with impossible fields, estimator files with absurd settings) is refused with a
CheckpointError that names the file and the cause, quickly and without allocating what the
file claims. tools/hostile_files.py runs hundreds of such files, each in a memory-limited
subprocess; these are one fast test per category."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import rnnkit
from rnnkit import checkpoint
from rnnkit.apps.classify.estimator import RNNClassifier
from rnnkit.apps.estimator import Estimator
from rnnkit.apps.forecast.estimator import RNNForecaster
from rnnkit.apps.lm import CharLM
from rnnkit.checkpoint import MANIFEST, CheckpointError
from rnnkit.data import SequenceData
from rnnkit.training import resume_checks, trainer
from rnnkit.training.resume_checks import check_trainer_tree

MB = 2**20


def raises(path, *causes: str):
    """pytest.raises(CheckpointError) whose message names the file, then each cause in order."""
    pattern = ".*".join(re.escape(p) for p in (str(path), *causes))
    return pytest.raises(CheckpointError, match=re.compile(pattern, re.DOTALL))


class Peak:
    """Peak of the memory traced (NumPy's array data included) while the block runs, in bytes,
    and the time it took."""

    def __enter__(self) -> Peak:
        tracemalloc.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def refused_cheaply(read, path, *causes: str, limit: int = 20 * MB) -> None:
    """``read(path)`` raises the CheckpointError of ``causes`` within a second, its traced peak
    memory under ``limit``."""
    with Peak() as peak, raises(path, *causes):
        read(path)
    assert peak.bytes < limit, f"peak {peak.bytes / MB:.1f} MB"
    assert peak.seconds < 1.0


# ------------------------------------------------------------------------------------------------
# writing archives the way a forger would


def read_members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path, members: dict[str, bytes], compress: dict[str, int] | None = None):
    """A zip of ``members``, stored unless ``compress`` names a method for one."""
    compress = compress or {}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=compress.get(name, zipfile.ZIP_STORED))


def rewrite_manifest(path, change) -> None:
    """Apply ``change(manifest)`` to the manifest of the checkpoint ``path``, recomputing
    nothing else (the members and their checksums stay as they are)."""
    members = read_members(path)
    manifest = json.loads(members[MANIFEST])
    change(manifest)
    members[MANIFEST] = json.dumps(manifest).encode()
    write_members(path, members)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def forge_member(path, name: str, data: bytes) -> None:
    """Replace member ``name`` with ``data`` and make the manifest's SHA-256 match it."""
    members = read_members(path)
    members[name] = data
    manifest = json.loads(members[MANIFEST])
    manifest["arrays"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    members[MANIFEST] = json.dumps(manifest).encode()
    write_members(path, members)


_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")


def raw_zip(path, members, *, listed: int | None = None) -> None:
    """A zip written by hand: ``members`` are (name, method, data, declared size); the data is
    written as given (already compressed, or not), with a zero CRC. ``listed`` overrides the
    member count of the end record."""
    with open(path, "wb") as f:
        central = []
        for name, method, data, size in members:
            offset = f.tell()
            raw_name = name.encode()
            f.write(
                _LOCAL.pack(
                    b"PK\x03\x04", 20, 0, method, 0, 33, 0, len(data), size, len(raw_name), 0
                )
            )
            f.write(raw_name)
            f.write(data)
            central.append(
                _CENTRAL.pack(
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    method,
                    0,
                    33,
                    0,
                    len(data),
                    size,
                    len(raw_name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + raw_name
            )
        start = f.tell()
        f.write(b"".join(central))
        count = len(members) if listed is None else listed
        f.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, f.tell() - start, start, 0))


def deflate_bomb(gib: int = 1) -> bytes:
    """A raw deflate stream of ``gib`` GiB of zeros, about 1 MB long, made without ever
    holding the GiB: after a full flush the compressor's output for another MiB of zeros is
    the same block again."""
    zeros = bytes(MB)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (1024 * gib - 1) + c.flush()


def patch_central(path, name: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of member ``name``'s central directory record."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    pos = data.index(b"PK\x01\x02")
    while True:
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + n] == info.filename.encode():
            break
        pos = data.index(b"PK\x01\x02", pos + 4)
    struct.pack_into(fmt, data, pos + offset, value)
    path.write_bytes(bytes(data))


def small_tree() -> dict:
    return {"step": 7, "params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, small_tree())
    return path


# ------------------------------------------------------------------------------------------------
# zip members: compression, encryption, sizes, counts


@pytest.mark.parametrize(
    ("method", "name"),
    [(zipfile.ZIP_DEFLATED, "deflate"), (zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")],
)
@pytest.mark.parametrize("member", ["arr_0.npy", MANIFEST])
def test_a_compressed_member_is_refused_by_its_type(saved, method, name, member):
    write_members(saved, read_members(saved), compress={member: method})
    cause = f"member {member!r} is {name}-compressed; rnnkit checkpoints store members uncompressed"
    for read in (checkpoint.load, checkpoint.peek):
        with raises(saved, cause):
            read(saved)


def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    """A manifest member of 1 GiB of zeros in 1 MB of deflate, a listed array likewise."""
    path = tmp_path / "bomb.ckpt"
    bomb = deflate_bomb()
    raw_zip(path, [("arr_0.npy", 8, bomb, 2**30), (MANIFEST, 8, bomb, 2**30)])
    assert path.stat().st_size < 3 * MB
    for read in (checkpoint.load, checkpoint.peek):
        refused_cheaply(read, path, "member 'arr_0.npy' is deflate-compressed")


def test_an_unknown_compression_method_is_refused(saved):
    patch_central(saved, "arr_0.npy", 10, "<H", 99)
    with raises(saved, "member 'arr_0.npy' is compressed (zip method 99)"):
        checkpoint.load(saved)


def test_an_encrypted_member_is_refused(saved):
    patch_central(saved, MANIFEST, 8, "<H", 0x1)
    for read in (checkpoint.load, checkpoint.peek):
        with raises(saved, f"member {MANIFEST!r} is encrypted"):
            read(saved)


def test_a_stored_member_declaring_another_size_is_refused(saved):
    patch_central(saved, "arr_0.npy", 24, "<L", 2**32 - 2)  # its uncompressed size
    with raises(
        saved, "member 'arr_0.npy' is stored uncompressed in", "declares a size of 4294967294"
    ):
        checkpoint.peek(saved)


def test_too_many_members_are_refused_before_zipfile_parses_them(tmp_path):
    path = tmp_path / "many.ckpt"
    raw_zip(path, [(f"arr_{i}.npy", 0, b"", 0) for i in range(checkpoint.MAX_MEMBERS + 1)])
    refused_cheaply(checkpoint.peek, path, "lists 10001 members", "at most MAX_MEMBERS = 10000")


def test_a_directory_bigger_than_its_member_count_is_refused(tmp_path):
    """An end record that lists 2 members over a directory of 20,000: zipfile would parse
    every record in the directory, whatever the count."""
    path = tmp_path / "directory.ckpt"
    raw_zip(path, [(f"arr_{i}.npy", 0, b"", 0) for i in range(20_000)], listed=2)
    refused_cheaply(checkpoint.load, path, "the zip directory takes", "bytes for 2 members")


def test_a_zip64_archive_as_save_writes_past_4_gib_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 10)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    path = tmp_path / "zip64.ckpt"
    checkpoint.save(path, small_tree())
    assert b"PK\x06\x06" in path.read_bytes()  # a zip64 end record
    monkeypatch.undo()
    np.testing.assert_array_equal(checkpoint.load(path)["params"]["w"], small_tree()["params"]["w"])


# ------------------------------------------------------------------------------------------------
# the manifest


def test_a_huge_manifest_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.ckpt"
    size = checkpoint.MAX_MANIFEST_BYTES + 1
    with open(path, "wb") as f:  # a sparse file: the manifest's bytes are never written
        name = MANIFEST.encode()
        f.write(_LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 33, 0, size, size, len(name), 0) + name)
        f.seek(size, io.SEEK_CUR)
        start = f.tell()
        f.write(
            _CENTRAL.pack(
                b"PK\x01\x02", 20, 20, 0, 0, 0, 33, 0, size, size, len(name), 0, 0, 0, 0, 0, 0
            )
            + name
        )
        f.write(_END.pack(b"PK\x05\x06", 0, 0, 1, 1, f.tell() - start, start, 0))
    refused_cheaply(checkpoint.peek, path, "manifest is 67108865 bytes", "MAX_MANIFEST_BYTES")


def test_a_manifest_of_too_many_values_is_refused_before_parsing(saved):
    members = read_members(saved)
    members[MANIFEST] = b"[" + b"[]," * checkpoint.MAX_MANIFEST_VALUES + b"[]]"  # 12 MB
    write_members(saved, members)
    refused_cheaply(checkpoint.load, saved, "JSON values", "MAX_MANIFEST_VALUES", limit=40 * MB)


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_a_deeply_nested_manifest_is_refused_without_recursion_error(saved, opening):
    members = read_members(saved)
    members[MANIFEST] = opening * 200_000
    write_members(saved, members)
    with raises(saved, "is not valid JSON", "recursion"):
        checkpoint.load(saved)


@pytest.mark.parametrize("shape", [[10**12], [10**6, 10**6], [1] * 65])
def test_a_manifest_declaring_a_huge_shape_is_refused_without_allocating(saved, shape):
    def change(manifest):
        manifest["arrays"]["arr_0.npy"]["shape"] = shape

    rewrite_manifest(saved, change)
    cause = "malformed shape" if len(shape) > 64 else "member 'arr_0.npy' is 152 bytes"
    for read in (checkpoint.load, checkpoint.peek):
        refused_cheaply(read, saved, cause)


def test_a_manifest_declaring_a_huge_empty_shape_is_refused_by_the_header(saved):
    """(2**40, 0, 2**40) is empty, so the size check passes; peek shows it, allocating
    nothing, and load refuses it at the member's header."""

    def change(manifest):
        manifest["arrays"]["arr_0.npy"]["shape"] = [2**40, 0, 2**40]

    rewrite_manifest(saved, change)
    assert checkpoint.peek(saved)["params"]["w"].shape == (2**40, 0, 2**40)
    refused_cheaply(checkpoint.load, saved, "holds dtype <f4 and shape [2, 3], the manifest says")


@pytest.mark.parametrize("dtype", ["<f3", "|f4", "<b1", "f4", ">O8", "<V8", "<f4,<f4", "(10,)<f4"])
def test_a_manifest_dtype_must_be_numpys_own_string(saved, dtype):
    def change(manifest):
        manifest["arrays"]["arr_0.npy"]["dtype"] = dtype

    rewrite_manifest(saved, change)
    with raises(saved, "has dtype", "written as numpy's dtype.str"):
        checkpoint.peek(saved)


def test_a_tagged_value_as_the_whole_tree_is_refused(saved):
    def change(manifest):
        manifest["tree"] = {"$array": "arr_0.npy"}

    rewrite_manifest(saved, change)
    with raises(saved, "'tree' is a tagged value, not a dict"):
        checkpoint.load(saved)


# ------------------------------------------------------------------------------------------------
# array members


def test_an_npy_header_declaring_a_huge_shape_is_refused_without_allocating(saved):
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    data = buffer.getvalue() + bytes(24)  # the member keeps its size: 6 floats of data
    assert len(data) == len(read_members(saved)["arr_0.npy"])
    forge_member(saved, "arr_0.npy", data)
    refused_cheaply(
        checkpoint.load,
        saved,
        "holds dtype <f4 and shape [1000000000000], the manifest says <f4 and [2, 3]",
    )


def test_an_npy_header_of_another_dtype_is_refused(saved):
    forge_member(saved, "arr_0.npy", npy(np.arange(6, dtype=np.int32).reshape(2, 3)))
    with raises(saved, "holds dtype <i4 and shape [2, 3], the manifest says <f4 and [2, 3]"):
        checkpoint.load(saved)


@pytest.mark.parametrize("version", [b"\x03\x00", b"\x09\x09"])
def test_an_npy_format_version_other_than_1_and_2_is_refused(saved, version):
    data = bytearray(read_members(saved)["arr_0.npy"])
    data[6:8] = version
    forge_member(saved, "arr_0.npy", bytes(data))
    with raises(saved, "member 'arr_0.npy' is not a plain .npy array", "rnnkit reads 1.0 and 2.0"):
        checkpoint.load(saved)


@pytest.mark.parametrize(
    ("extra", "cause"),
    [(b"\x00" * 100, "has 100 bytes of trailing data"), (None, "is 4 bytes short")],
    ids=["longer", "shorter"],
)
def test_a_member_size_disagreeing_with_its_header_is_refused(saved, extra, cause):
    data = read_members(saved)["arr_0.npy"]
    forge_member(saved, "arr_0.npy", data + extra if extra else data[:-4])
    with raises(saved, f"member 'arr_0.npy' {cause}"):
        checkpoint.load(saved)


def test_a_member_far_from_its_declared_size_is_refused_by_peek(saved):
    forge_member(saved, "arr_0.npy", read_members(saved)["arr_0.npy"] + bytes(20_000))
    with raises(saved, "member 'arr_0.npy' is 20152 bytes", "take 24 bytes plus a .npy header"):
        checkpoint.peek(saved)


def test_a_large_array_is_read_in_chunks_without_a_second_copy(tmp_path):
    path = tmp_path / "big.ckpt"
    big = np.arange(4 * MB, dtype=np.float64)  # 32 MB
    checkpoint.save(path, {"big": big})
    with Peak() as peak:
        back = checkpoint.load(path)["big"]
    np.testing.assert_array_equal(back, big)
    assert peak.bytes < big.nbytes + 4 * MB


# ------------------------------------------------------------------------------------------------
# save: the limits, and stale temporaries


def test_save_refuses_a_tree_it_could_not_read_back(tmp_path):
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, small_tree())
    before = path.read_bytes()
    many = {f"a{i}": np.zeros(1) for i in range(checkpoint.MAX_MEMBERS)}
    with pytest.raises(ValueError, match="holds 10000 arrays; a checkpoint holds at most"):
        checkpoint.save(path, many)
    with pytest.raises(ValueError, match="JSON values, more than MAX_MANIFEST_VALUES"):
        # the bound counts the commas of the manifest's text, those in strings too
        checkpoint.save(path, {"commas": "," * checkpoint.MAX_MANIFEST_VALUES})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary left


def test_stale_temporaries_of_the_target_are_removed_and_nothing_else(tmp_path):
    stale = [".run.ckpt.0123456789ab.tmp", ".run.ckpt.ffffffffffff.tmp"]
    kept = [
        ".run.ckpt.0123456789AB.tmp",  # not lower-case hex
        ".run.ckpt.0123456789a.tmp",  # 11 digits
        ".run.ckpt.0123456789abc.tmp",  # 13 digits
        "run.ckpt.0123456789ab.tmp",  # no leading dot
        ".other.ckpt.0123456789ab.tmp",  # another target
        ".run.ckpt.0123456789ab.tmp.bak",
        ".run.ckptx0123456789abx.tmp",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".run.ckpt.aaaaaaaaaaaa.tmp").mkdir()  # not a file: kept
    checkpoint.save(tmp_path / "run.ckpt", small_tree())
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*kept, ".run.ckpt.aaaaaaaaaaaa.tmp", "run.ckpt"])
    (tmp_path / stale[0]).write_bytes(b"partial")
    removed = checkpoint.remove_stale_temporaries(tmp_path / "run.ckpt")
    assert removed == [str(tmp_path / stale[0])]
    assert checkpoint.remove_stale_temporaries(tmp_path / "missing" / "run.ckpt") == []


def test_a_save_killed_before_its_rename_leaves_a_temporary_the_next_save_removes(tmp_path):
    path = tmp_path / "run.ckpt"
    fd, _ = checkpoint._create_temp(str(tmp_path), "run.ckpt")  # what save writes first ...
    os.write(fd, b"PK\x03\x04 half an archive")
    os.close(fd)  # ... and a kill leaves behind
    (temp,) = tmp_path.iterdir()
    assert re.fullmatch(r"\.run\.ckpt\.[0-9a-f]{12}\.tmp", temp.name)
    checkpoint.save(path, small_tree())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


# ------------------------------------------------------------------------------------------------
# trainer checkpoints


@pytest.fixture(scope="module")
def trainer_tree(tmp_path_factory):
    """A real trainer checkpoint's tree, after validation with early stopping (best_params)."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, 9, 24)]
    data = SequenceData(xs, [x.sum(axis=0) for x in xs], batch_size=8)
    model = rnnkit.SequenceRegressor(2, 4, output_size=2, dropout=0.1, num_layers=2, seed=0)
    path = tmp_path_factory.mktemp("trainer") / "run.ckpt"
    opt = rnnkit.optim.Adam(model.parameters(), lr=1e-2)
    rnnkit.Trainer(model, opt, "mse", checkpoint=path).fit(data, steps=4, val=data, patience=2)
    return checkpoint.load(path)


def test_the_trainer_constants_are_the_trainers():
    assert (resume_checks.TRAINER_KIND, resume_checks.TRAINER_VERSION) == (
        trainer.KIND,
        trainer.VERSION,
    )


def test_a_real_trainer_checkpoint_passes(trainer_tree):
    assert trainer_tree["progress"]["best_params"] is not None
    assert trainer_tree["progress"]["order"] is not None
    check_trainer_tree(trainer_tree, "run.ckpt")
    tree = copy.deepcopy(trainer_tree)
    tree["progress"]["stopped"] = "early_stopping"  # the optional fields
    del tree["progress"]["first_loss"]
    tree["state"] = {"s0": np.zeros((2, 3, 4)), "s1": np.zeros((2, 3, 4))}
    check_trainer_tree(tree, "run.ckpt")


DELETE = object()


def mutated(tree: dict, where: str, value) -> dict:
    """A copy of ``tree`` with the field ``where`` ("progress.step") set to ``value`` (or
    removed, for the DELETE marker)."""
    tree = copy.deepcopy(tree)
    *parents, last = where.split(".")
    node = tree
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return tree


MT_SHORT = {"bit_generator": "MT19937", "state": {"key": np.zeros(3, np.uint32), "pos": 0}}
RANGE = "must be an int in [0, 2**62)"
INT_1D = "progress.order must be None or a 1-D integer array"
NOT_PCG = "rng.trainer is not a valid PCG64 state"
TRAINER_CASES = [
    # (field, value set there, what the message says, in order)
    ("progress.step", -1, f"progress.step {RANGE}, got int -1"),
    ("progress.step", 2**62, f"progress.step {RANGE}, got int 4611686018427387904"),
    ("progress.step", 3.0, f"progress.step {RANGE}, got float 3.0"),
    ("progress.step", "3", f"progress.step {RANGE}, got '3'"),
    ("progress.step", True, f"progress.step {RANGE}, got bool True"),
    ("progress.step", None, f"progress.step {RANGE}, got NoneType None"),
    ("progress.step", DELETE, "progress must have the keys", "missing ['step']"),
    ("progress.epoch", -5, f"progress.epoch {RANGE}"),
    ("progress.batch", 1e300, f"progress.batch {RANGE}"),
    ("progress.nonfinite", [1], f"progress.nonfinite {RANGE}"),
    ("progress.skipped", 2**100, f"progress.skipped {RANGE}"),
    ("progress.bad", -1, f"progress.bad {RANGE}"),
    ("progress.order", np.array([0, 1, 1]), "permutation of range(3), got 1 twice"),
    ("progress.order", np.array([0, 5]), "permutation of range(2), got values from 0 to 5"),
    ("progress.order", np.array([-1, 0]), "progress.order must be a permutation of range(2)"),
    ("progress.order", np.array([[0, 1]]), INT_1D, "dtype int64 and shape (1, 2)"),
    ("progress.order", np.array([0.0, 1.0]), INT_1D, "dtype float64"),
    ("progress.order", [0, 1], INT_1D, "got a list of 2 items"),
    ("progress.best", "low", "progress.best must be None or a float, got 'low'"),
    ("progress.first_loss", 1, "progress.first_loss must be None or a finite float > 0"),
    ("progress.first_loss", float("nan"), "progress.first_loss must be None or a finite float"),
    ("progress.first_loss", -1.0, "progress.first_loss must be None or a finite float > 0"),
    ("progress.stopped", 0, "progress.stopped must be None or a str"),
    ("progress.best_params", {"w": np.zeros(2)}, "best_params must be the names of", "['w']"),
    ("progress.surprise", 1, "progress must have the keys", "unexpected ['surprise']"),
    ("progress", [], "progress must be a dict"),
    ("kind", "rnnkit.estimator", "kind must be 'rnnkit.trainer'"),
    ("version", True, "version must be one of [1, 2]", "got bool True"),
    ("version", 3, "version must be one of [1, 2]"),
    ("config", None, "config must be a dict"),
    ("model.class", 3, "model.class must be a class name (str)"),
    ("model.params", {"w": 1.0}, "model.params['w'] must be an array, got float 1.0"),
    ("optimizer", "adam", "optimizer must be a dict"),
    ("schedule", [], "schedule must be None or a dict"),
    ("rng.trainer", None, "rng.trainer must be a bit generator state"),
    ("rng.trainer.bit_generator", "os.system", "rng.trainer.bit_generator must be one of"),
    ("rng.trainer.state.state", 2**200, f"{NOT_PCG} (OverflowError"),
    ("rng.trainer.state.state", -1, NOT_PCG),
    ("rng.trainer.state.inc", 0.5, "rng.trainer.state.inc must be an int or an integer array"),
    ("rng.trainer.has_uint32", True, "rng.trainer.has_uint32 must be an int"),
    ("rng.trainer.uinteger", 2**40, NOT_PCG),
    ("rng.trainer.state", {}, f"{NOT_PCG} (KeyError"),
    ("rng.model", [], "rng.model must be a dict of bit generator states"),
    ("rng.model.drop", MT_SHORT, "rng.model['drop'] is not a valid MT19937 state"),
    ("state", {"s1": np.zeros(2)}, "state must be arrays named ['s0'], got ['s1']"),
    ("state", {"s0": 3}, "state['s0'] must be an array"),
    ("history", {"a": [1, 2], "b": [1]}, "history['b'] must be 2 values long", "got 1"),
    ("history", {"a": [[1]]}, "history['a'][0] must be None, a bool, int, float or str"),
    ("history", {"a": (1,)}, "history is malformed: ['a']: a list or an encoded column"),
    (
        "history",
        {"a": {"int": np.zeros(2, np.int64), "missing": np.zeros(3, bool)}},
        "history is malformed",
        "int must be a 1-D int64 array",
    ),
    (
        "history",
        {"a": {"codes": np.array([0, 5], np.int32), "strings": ["x"]}},
        "codes must lie in [-1, 1)",
    ),
    (
        "history",
        {"a": {"float": np.zeros(2), "missing": np.zeros(2, bool)}, "b": [1]},
        "['b']: 1 rows, the other columns have 2",
    ),
    ("history", {"a": {"pickle": b"x"}}, "unknown column encoding"),
]


@pytest.mark.parametrize("case", TRAINER_CASES, ids=lambda case: f"{case[0]}={case[1]!r:.20}")
def test_a_trainer_tree_with_a_bad_field_is_refused_naming_it(trainer_tree, case):
    where, value, *causes = case
    tree = mutated(trainer_tree, where, value)
    with raises("run.ckpt", *causes):
        check_trainer_tree(tree, "run.ckpt")


def test_bad_fields_are_refused_from_a_file_too(trainer_tree, tmp_path):
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, mutated(trainer_tree, "progress.step", -3))
    with raises(path, "progress.step must be an int in [0, 2**62), got int -3"):
        check_trainer_tree(checkpoint.load(path), path)


def test_the_trainer_generator_can_be_required(trainer_tree):
    """NumPy refuses another bit generator's state only when it is assigned, after the model
    and optimiser are loaded: the resuming trainer names its own so the check refuses first."""
    check_trainer_tree(trainer_tree, "x", bit_generator="PCG64")
    mt = np.random.MT19937(0).state
    tree = mutated(trainer_tree, "rng.trainer", mt)
    check_trainer_tree(tree, "x")  # a valid state, of another generator
    with raises("x", "rng.trainer.bit_generator must be 'PCG64' (the generator of the trainer"):
        check_trainer_tree(tree, "x", bit_generator="PCG64")


def test_best_params_must_match_the_models_shapes(trainer_tree):
    tree = copy.deepcopy(trainer_tree)
    name = next(iter(tree["progress"]["best_params"]))
    tree["progress"]["best_params"][name] = np.zeros((1, 1), np.float32)
    with raises("x", f"progress.best_params[{name!r}] must be shape"):
        check_trainer_tree(tree, "x")


# ------------------------------------------------------------------------------------------------
# saved estimators


@pytest.fixture(scope="module")
def estimator_files(tmp_path_factory):
    """A small fitted CharLM, RNNClassifier (bidirectional GRU, an ensemble of 2, global
    normalisation) and RNNForecaster, saved."""
    folder = tmp_path_factory.mktemp("estimators")
    rng = np.random.default_rng(0)
    lm = CharLM(hidden_size=8, num_layers=2, embedding_dim=4, bptt=8, batch_size=2, steps=2)
    lm.set_params(quiet=True).fit("abcd" * 40)
    X, y = rng.normal(size=(16, 8, 2)), np.array(["a", "bb", "c", "d"] * 4)
    clf = RNNClassifier(hidden_size=4, epochs=1, cell="gru", bidirectional=True, ensemble=2)
    clf.set_params(normalize="global", window=2, quiet=True).fit(X, y)
    fc = RNNForecaster(window=6, horizon=3, hidden_size=4, epochs=1, difference=2, quiet=True)
    fc.fit(np.sin(np.arange(60.0)))
    paths = {}
    for name, est in [("lm", lm), ("clf", clf), ("fc", fc)]:
        paths[name] = est.save(folder / f"{name}.rnnkit").read_bytes()
    return paths


@pytest.fixture
def estimator_file(estimator_files, tmp_path):
    def make(name: str):
        path = tmp_path / f"{name}.rnnkit"
        path.write_bytes(estimator_files[name])
        return path

    return make


def test_saved_estimators_load(estimator_file):
    for name in ("lm", "clf", "fc"):
        assert isinstance(Estimator.load(estimator_file(name)), Estimator)


def set_field(where: str, value):
    """A manifest change that sets tree field ``where`` ("params.hidden_size") to the JSON
    ``value``: for a change that moves no array, what a forger with a text editor does."""

    def change(manifest):
        node = manifest["tree"]
        *parents, last = where.split(".")
        for key in parents:
            node = node[key]
        node[last] = value

    return change


INVALID = "invalid stored setting of"
SHORT_DTYPE = "state.classes_dtype must be a bool, number or string dtype"
ESTIMATOR_CASES = [
    # (file, field, value set there, what the message says, in order)
    ("lm", "params.hidden_size", 10**12, "hidden_size=1000000000000", "imply state.model[", "]"),
    ("lm", "params.hidden_size", 10**12, "['rnn.weight_ih_l0'] of shape (4000000000000, 4)"),
    ("lm", "params.num_layers", 10**12, "num_layers=10", "imply 4000000000003 parameter arrays"),
    ("lm", "params.embedding_dim", 10**9, "embedding_dim=1000000000", "['embedding.weight']"),
    ("lm", "params.num_layers", -2, f"{INVALID} CharLM: num_layers must be a positive int"),
    ("lm", "params.hidden_size", "64", "hidden_size must be an int, got str '64'"),
    ("lm", "params.cell", "evil", "cell must be one of"),
    ("lm", "params.dtype", "float16", "dtype must be np.float32 or np.float64"),
    ("lm", "params.extra", 1, "stored settings ['extra'] are not arguments of CharLM"),
    ("lm", "params.dtype", "float64", "['embedding.weight'] of shape (5, 4) and dtype float64"),
    ("lm", "state.vocabulary", ["ab"], "state.vocabulary must be a list of single characters"),
    ("lm", "state.n_steps", -1, "state.n_steps must be an int in [0, 2**62)"),
    ("lm", "state.history", {"a": [1], "b": []}, "state.history['b'] must be 1 values long"),
    ("clf", "params.hidden_size", 10**12, "hidden_size=1000000000000"),
    ("clf", "params.bidirectional", False, "bidirectional=False", "imply 6 parameter arrays"),
    ("clf", "params.ensemble", 10**12, "ensemble=1000000000000 implies networks"),
    ("clf", "params.window", 10**9, "window=1000000000", "rnn.weight_ih_l0"),
    ("clf", "state.n_features_in", 10**15, "state.mean must be a float array of shape (10"),
    ("clf", "state.more_params", {}, "ensemble=2 implies networks ['1']", "the file holds []"),
    ("clf", "state.n_features_in", 0, "state.n_features_in must be an int in [1, 2**62)"),
    ("clf", "state.classes_dtype", "<U1000000000", SHORT_DTYPE),
    ("clf", "state.classes_dtype", "<U1", "too short for the label of 2 characters"),
    ("clf", "state.classes_dtype", "|O", SHORT_DTYPE),
    ("clf", "state.classes", [[1]], "state.classes must hold str, int, float or bool labels"),
    ("clf", "state.mean", None, "state.mean must be a float array of shape (2,)"),
    ("fc", "state.fitted.hidden_size", 10**12, "fitted.hidden_size=1000000000000"),
    ("fc", "state.fitted.num_layers", 10**12, "imply 4000000000002 parameter arrays"),
    ("fc", "state.fitted.outputs", 10**12, "state.fitted.outputs must be 1 or the horizon 3"),
    ("fc", "state.fitted.window", 10**12, "state.tail must be a float array of shape (10"),
    ("fc", "state.fitted.lag", -1, "state.fitted.lag must be an int in [0, 2**62)"),
    ("fc", "state.fitted.cell", ["lstm"], "state.fitted.cell"),
    ("fc", "state.fitted.dtype", "object", "dtype must be np.float32 or np.float64"),
    ("fc", "state.scaler.scale", 0.0, "state.scaler.scale must be a finite float > 0"),
    ("fc", "state.n_windows", [1], "state.n_windows must be a list of 2 counts"),
    ("fc", "params.horizon", 0.5, f"{INVALID} RNNForecaster: horizon must be an int"),
]


@pytest.mark.parametrize("case", ESTIMATOR_CASES, ids=lambda c: f"{c[0]}-{c[1]}={c[2]!r:.20}")
def test_absurd_stored_settings_are_refused_before_building_a_model(estimator_file, case):
    name, where, value, *causes = case
    path = estimator_file(name)
    checkpoint.save(path, mutated(checkpoint.load(path), where, value))
    with Peak() as peak, raises(path, *causes):
        Estimator.load(path)
    assert peak.bytes < 20 * MB and peak.seconds < 2.0


def test_an_estimator_file_of_another_kind_is_refused(estimator_file):
    path = estimator_file("lm")
    rewrite_manifest(path, set_field("class", ["CharLM"]))
    with raises(path, "unknown estimator class a list of 1 items"):
        Estimator.load(path)
    path = estimator_file("fc")
    with raises(path, "holds a RNNForecaster, not a CharLM"):
        CharLM.load(path)


def test_a_load_that_still_fails_raises_checkpoint_error(estimator_file):
    """What the checks leave to _set_state (a label that does not fit its dtype) comes out as
    a CheckpointError too."""
    path = estimator_file("clf")
    rewrite_manifest(path, set_field("state.classes_dtype", "<i8"))
    with raises(path, "the stored state does not fit RNNClassifier"):
        Estimator.load(path)


def test_estimator_and_trainer_messages_name_float_settings_exactly(estimator_file):
    path = estimator_file("fc")
    rewrite_manifest(path, set_field("state.scaler.center", {"$float": "7ff0000000000000"}))  # inf
    with raises(path, "state.scaler.center must be a finite float, got float inf"):
        Estimator.load(path)


def test_devices_fifos_and_folders_are_refused_before_opening(tmp_path):
    """Reading /dev/zero never ends and opening a FIFO blocks: both are refused at once."""
    fifo = tmp_path / "fifo.ckpt"
    os.mkfifo(fifo)
    link = tmp_path / "zero.ckpt"
    os.symlink("/dev/zero", link)
    for path in ("/dev/zero", fifo, link, tmp_path):
        for read in (checkpoint.load, checkpoint.peek):
            with pytest.raises(checkpoint.CheckpointError, match="not a regular file"):
                read(path)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.ckpt")
