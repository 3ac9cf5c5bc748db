"""Checkpoint files: bit-exact round trips, atomic replacement, and refusal of every damaged,
foreign or pickled file with a CheckpointError that names the file and the cause."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import warnings
import zipfile

import numpy as np
import pytest

from rnnkit import checkpoint
from rnnkit.checkpoint import MANIFEST, ArrayInfo, CheckpointError


def bits(hex16: str) -> float:
    """The float whose IEEE-754 binary64 encoding is ``hex16``: NaNs with a chosen payload."""
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


def rich_tree() -> dict:
    rng = np.random.default_rng(0)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308])
    odd_nans = np.frombuffer(bytes.fromhex("7ff0000000000001fff8000000000123"), ">f8")
    return {
        "step": 1200,
        "ints": [0, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**64, -(2**200)],
        "huge": 1 << 20000,  # beyond Python's 4300-digit str() limit
        "lr": 0.1,
        "floats": [-0.0, math.nan, math.inf, -math.inf, 5e-324, 1e308, 1 / 3],
        "nan": math.nan,
        "neg_zero": -0.0,
        "odd_nan": bits("fff8000000000123"),  # negative quiet NaN with a payload
        "signalling_nan": bits("7ff0000000000001"),
        "flag": True,
        "off": False,
        "none": None,
        "name": "héllo wörld — 世界 🐍",
        "strings": ["", "\x00nul", 'q"uo\\te', "line\nbreak", "\ud800 lone surrogate"],
        "hist": [1, 2.5, None, "a", True, [2**70, [math.inf, -0.0]], []],
        "empty_list": [],
        "empty_dict": {},
        # keys that look like the manifest's own syntax or member names
        "$array": "arr_0.npy",
        "$$float": {"$int": 3},
        "": {"arr_0.npy": 1, MANIFEST: "x", "a/b": 2, "🔑": 3},
        "params": {
            "weight_ih_l0": rng.standard_normal((8, 3)).astype(np.float32),
            "bias_ih_l0": np.concatenate([specials, rng.standard_normal(3)]),
            "f16": rng.standard_normal(5).astype(np.float16),
            "longdouble": np.array([1, 1 / 3, -0.0], dtype=np.longdouble),
            "complex": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
            "odd_nans": odd_nans,
            "fortran": np.asfortranarray(rng.standard_normal((3, 4))),
            "big_endian": np.arange(5, dtype=">i4"),
            "strided_view": np.arange(10.0)[::3],
        },
        "ints_and_bools": {
            "idx": np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max]),
            "u64": np.array([0, np.iinfo(np.uint64).max], dtype=np.uint64),
            "i8": np.array([-128, 127], dtype=np.int8),
            "mask": rng.random((4, 2)) > 0.5,
        },
        "zero_d": {"f": np.array(3.5), "b": np.array(True), "i": np.array(-7, dtype=np.int16)},
        "empty": {
            "f32": np.zeros((0, 3), np.float32),
            "i64": np.zeros((2, 0, 4), np.int64),
            "b": np.zeros(0, bool),
        },
        "optim": {"state": {"step": {"t": 3, "m": {"w": np.ones((2, 2))}}}},
    }


def assert_identical(a, b, where: str = "tree") -> None:
    """Same structure, key order, types, dtypes and shapes, and the same bits everywhere."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str, f"{where}: {a.dtype}, {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: array bytes differ"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r} bitwise"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def read_members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path, members) -> None:
    """A zip of ``members`` (a dict, or a list of pairs to allow duplicate names), each with a
    valid CRC-32: what a careless tool or a deliberate forger would produce."""
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in items:
                zf.writestr(name, data)


def get_manifest(members: dict[str, bytes]) -> dict:
    return json.loads(members[MANIFEST])


def put_manifest(members: dict[str, bytes], manifest: dict) -> None:
    members[MANIFEST] = json.dumps(manifest).encode()


def small_tree() -> dict:
    return {
        "step": 7,
        "lr": math.nan,
        "name": "run-1",
        "params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, 0])},
    }


@pytest.fixture
def saved(tmp_path):
    """The path of a freshly saved small checkpoint."""
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, small_tree())
    return path


def raises(path, *causes: str):
    """pytest.raises(CheckpointError) whose message names the file, then each cause in order."""
    pattern = ".*".join(re.escape(p) for p in (str(path), *causes))
    return pytest.raises(CheckpointError, match=re.compile(pattern, re.DOTALL))


# ------------------------------------------------------------------------------------------------
# round trips


def test_rich_tree_round_trips_bit_for_bit(tmp_path):
    tree = rich_tree()
    path = tmp_path / "rich.ckpt"
    checkpoint.save(path, tree)
    back = checkpoint.load(path)
    assert_identical(back, tree)
    assert type(back["huge"]) is int and type(back["lr"]) is float
    assert back["params"]["fortran"].flags.f_contiguous


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0.0, -0.0),
        (1, 1.0),
        (1, True),
        (bits("7ff8000000000000"), bits("7ff8000000000001")),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (np.zeros(2, np.float32), np.zeros(2, np.float64)),
        (np.zeros(2, "<i4"), np.zeros(2, ">i4")),
        (np.zeros((2, 1)), np.zeros((1, 2))),
        (np.array([0.0]), np.array([-0.0])),
    ],
)
def test_assert_identical_tells_apart_what_round_trips_must_keep(a, b):
    with pytest.raises(AssertionError):
        assert_identical(a, b)


def test_manifest_lists_each_member_with_dtype_shape_and_sha256(saved):
    members = read_members(saved)
    assert list(members) == ["arr_0.npy", "arr_1.npy", MANIFEST]
    manifest = get_manifest(members)
    assert manifest["format"] == "rnnkit.checkpoint" and manifest["version"] == 1
    assert manifest["tree"]["params"] == {
        "w": {"$array": "arr_0.npy"},
        "b": {"$array": "arr_1.npy"},
    }
    assert manifest["tree"]["lr"] == {"$float": "7ff8000000000000"}
    assert manifest["arrays"]["arr_0.npy"] == {
        "dtype": "<f4",
        "shape": [2, 3],
        "sha256": hashlib.sha256(members["arr_0.npy"]).hexdigest(),
    }


def test_dollar_keys_are_escaped_and_large_ints_are_hex_strings(tmp_path):
    path = tmp_path / "c.ckpt"
    checkpoint.save(path, {"$array": "arr_0.npy", "n": 2**53 + 1, "m": 2**53})
    tree = get_manifest(read_members(path))["tree"]
    assert tree == {"$$array": "arr_0.npy", "n": {"$int": "0x20000000000001"}, "m": 2**53}


def test_numpy_opens_a_checkpoint_as_an_npz_without_pickle(saved):
    with np.load(saved, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["arr_0"], small_tree()["params"]["w"])


def test_same_tree_gives_the_same_bytes(tmp_path):
    checkpoint.save(tmp_path / "a", rich_tree())
    checkpoint.save(tmp_path / "b", rich_tree())
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_loaded_arrays_are_writeable_and_independent(saved):
    first, second = checkpoint.load(saved), checkpoint.load(saved)
    first["params"]["w"][...] = -1
    assert second["params"]["w"][0, 1] == 1


def test_str_paths_work_as_well_as_pathlib(saved):
    assert_identical(checkpoint.load(str(saved)), checkpoint.load(saved))


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_new_checkpoint_gets_the_permissions_of_any_new_file(saved, tmp_path):
    other = tmp_path / "other"
    other.write_bytes(b"")
    assert saved.stat().st_mode & 0o777 == other.stat().st_mode & 0o777


# ------------------------------------------------------------------------------------------------
# atomic replacement


def new_tree() -> dict:
    return {"step": 8, "params": {"w": np.full((2, 3), 5.0, np.float32)}}


@pytest.mark.parametrize("exc", [OSError("disk on fire"), KeyboardInterrupt()])
def test_failure_before_the_rename_keeps_the_old_file_and_removes_the_temp(saved, monkeypatch, exc):
    def fail(tmp, path):
        raise exc

    monkeypatch.setattr(checkpoint, "_replace", fail)
    with pytest.raises(type(exc)):
        checkpoint.save(saved, new_tree())
    assert os.listdir(saved.parent) == [saved.name]
    assert_identical(checkpoint.load(saved), small_tree())


def test_failure_before_the_first_save_leaves_no_file(tmp_path, monkeypatch):
    def fail(tmp, path):
        raise OSError("disk on fire")

    monkeypatch.setattr(checkpoint, "_replace", fail)
    with pytest.raises(OSError, match="disk on fire"):
        checkpoint.save(tmp_path / "run.ckpt", new_tree())
    assert os.listdir(tmp_path) == []


def test_failure_while_writing_keeps_the_old_file_and_removes_the_temp(saved, monkeypatch):
    def fail(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="fsync failed"):
        checkpoint.save(saved, new_tree())
    monkeypatch.undo()
    assert os.listdir(saved.parent) == [saved.name]
    assert_identical(checkpoint.load(saved), small_tree())


def test_at_the_rename_the_old_file_is_intact_and_the_new_one_complete(saved, monkeypatch):
    """The crash window: whatever happens at the rename, one complete checkpoint exists."""
    seen = []

    def snapshot_then_replace(tmp, path):
        assert os.path.dirname(tmp) == os.path.dirname(os.path.abspath(path))
        seen.append((checkpoint.load(path), checkpoint.load(tmp)))
        os.replace(tmp, path)

    monkeypatch.setattr(checkpoint, "_replace", snapshot_then_replace)
    checkpoint.save(saved, new_tree())
    (old, new), = seen  # fmt: skip
    assert_identical(old, small_tree())
    assert_identical(new, new_tree())
    assert_identical(checkpoint.load(saved), new_tree())
    assert os.listdir(saved.parent) == [saved.name]


# ------------------------------------------------------------------------------------------------
# what save refuses


class Custom:
    pass


@pytest.mark.parametrize(
    ("leaf", "cause"),
    [
        (np.array([1, "a"], dtype=object), "dtype object (object arrays would need pickle)"),
        (np.array(["a", "b"]), "dtype <U1"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "dtype datetime64[D]"),
        (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "subclass MaskedArray"),
        (np.float32(1.5), "NumPy scalar float32"),
        (np.float64(1.5), "NumPy scalar float64"),  # a subclass of float, refused all the same
        (np.int64(3), "NumPy scalar int64"),
        (np.bool_(True), "NumPy scalar bool"),
        ({1, 2}, "got set"),
        (Custom(), "got Custom"),
        (b"bytes", "got bytes"),
        ((1, 2), "got a tuple"),
        (1 + 2j, "got complex"),
    ],
)
def test_unsupported_leaves_are_named_by_their_place_in_the_tree(tmp_path, leaf, cause):
    tree = {"step": 1, "optim": {"state": {"w": leaf}}}
    with pytest.raises(
        TypeError, match=re.escape("tree['optim']['state']['w']") + ".*" + re.escape(cause)
    ):
        checkpoint.save(tmp_path / "c.ckpt", tree)


@pytest.mark.parametrize(
    ("tree", "where", "cause"),
    [
        ({"optim": {3: 1.0}}, "tree['optim']", "key 3 of type int"),
        ({"optim": {("a", 1): 1.0}}, "tree['optim']", "key ('a', 1) of type tuple"),
        ({"hist": [1, np.zeros(2)]}, "tree['hist'][1]", "got an array inside a list"),
        ({"hist": [1, [2, {"a": 1}]]}, "tree['hist'][1][1]", "got a dict inside a list"),
        ({"hist": [1, [2, {3}]]}, "tree['hist'][1][1]", "got set"),
    ],
)
def test_bad_keys_and_bad_list_items_are_named(tmp_path, tree, where, cause):
    with pytest.raises(TypeError, match=re.escape(where) + ".*" + re.escape(cause)):
        checkpoint.save(tmp_path / "c.ckpt", tree)


def nested(levels: int) -> dict:
    """A chain of ``levels`` dicts, the innermost holding a list."""
    tree: dict = {"leaf": [1.5]}
    for _ in range(levels - 1):
        tree = {"x": tree}
    return tree


def test_nesting_up_to_max_depth_round_trips_and_deeper_is_refused(tmp_path):
    path = tmp_path / "deep.ckpt"
    ok = nested(checkpoint.MAX_DEPTH - 1)  # plus the list: MAX_DEPTH levels
    checkpoint.save(path, ok)
    assert_identical(checkpoint.load(path), ok)
    with pytest.raises(ValueError, match=r"tree\['x'\].*\['leaf'\] is nested deeper than"):
        checkpoint.save(path, nested(checkpoint.MAX_DEPTH))
    assert_identical(checkpoint.load(path), ok)


@pytest.mark.parametrize("tree", [[1, 2], None, np.zeros(2)])
def test_the_tree_itself_must_be_a_dict(tmp_path, tree):
    with pytest.raises(TypeError, match="tree must be a dict with str keys"):
        checkpoint.save(tmp_path / "c.ckpt", tree)


def test_a_refused_tree_leaves_the_old_file_alone(saved):
    with pytest.raises(TypeError):
        checkpoint.save(saved, {"w": np.zeros(3), "bad": {1, 2}})
    assert os.listdir(saved.parent) == [saved.name]
    assert_identical(checkpoint.load(saved), small_tree())


# ------------------------------------------------------------------------------------------------
# what load refuses


@pytest.mark.parametrize("read", [checkpoint.load, checkpoint.peek])
def test_missing_file_raises_file_not_found_naming_it(tmp_path, read):
    path = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read(path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def cut_points(path) -> dict[str, int]:
    data = path.read_bytes()
    array_data = np.arange(6, dtype=np.float32).tobytes()
    with zipfile.ZipFile(path) as zf:
        central_directory = min(info.header_offset for info in zf.infolist()) + sum(
            30 + len(i.filename) + len(i.extra) + i.compress_size for i in zf.infolist()
        )
    return {
        "in the zip signature": 2,
        "after the signature": 4,
        "inside an array": data.index(array_data) + 5,
        "half way": len(data) // 2,
        "at the central directory": central_directory,
        "inside the end record": len(data) - 10,
        "one byte short": len(data) - 1,
    }


@pytest.mark.parametrize(
    "where",
    [
        "in the zip signature",
        "after the signature",
        "inside an array",
        "half way",
        "at the central directory",
        "inside the end record",
        "one byte short",
    ],
)
def test_truncated_file_raises(saved, where):
    cut = cut_points(saved)[where]
    saved.write_bytes(saved.read_bytes()[:cut])
    with raises(saved, "truncated"):
        checkpoint.load(saved)


def test_empty_file_raises(saved):
    saved.write_bytes(b"")
    with raises(saved, "the file is empty"):
        checkpoint.load(saved)


def test_every_truncation_raises_checkpoint_error(saved):
    data = saved.read_bytes()
    for cut in range(len(data)):
        saved.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            checkpoint.load(saved)


def test_flipped_byte_in_an_array_is_detected(saved):
    data = bytearray(saved.read_bytes())
    data[data.index(np.arange(6, dtype=np.float32).tobytes()) + 9] ^= 0x01
    saved.write_bytes(bytes(data))
    with raises(saved, "member 'arr_0.npy' is corrupted", "CRC-32"):
        checkpoint.load(saved)


def test_member_rewritten_with_a_valid_crc_fails_its_sha256(saved):
    members = read_members(saved)
    npy = bytearray(members["arr_0.npy"])
    npy[-1] ^= 0x01
    members["arr_0.npy"] = bytes(npy)
    write_members(saved, members)
    with raises(saved, "member 'arr_0.npy' is corrupted", "SHA-256"):
        checkpoint.load(saved)


def test_every_single_byte_flip_is_detected_or_harmless(saved):
    """Each flip either raises CheckpointError or hits bytes that do not matter to the tree
    (timestamps, file attributes): never another exception, never a different tree."""
    data = saved.read_bytes()
    harmless = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        saved.write_bytes(bytes(flipped))
        try:
            tree = checkpoint.load(saved)
        except CheckpointError:
            continue
        assert_identical(tree, small_tree(), f"tree after flipping byte {i}")
        harmless += 1
    assert harmless < len(data) // 4


def test_plain_text_file_is_not_a_checkpoint(saved):
    saved.write_text("step = 3\nlr = 0.1\n")
    with raises(saved, "not a zip archive", "b'step'"):
        checkpoint.load(saved)


def test_plain_npz_without_manifest_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    with raises(path, "no '__rnnkit__.json' manifest", "plain .npz", "w.npy"):
        checkpoint.load(path)


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_unknown_format_version_raises(saved, version):
    members = read_members(saved)
    manifest = get_manifest(members)
    manifest["version"] = version
    put_manifest(members, manifest)
    write_members(saved, members)
    with raises(saved, f"unsupported format version {version!r}", "reads version 1"):
        checkpoint.load(saved)


def test_other_format_name_raises(saved):
    members = read_members(saved)
    manifest = get_manifest(members)
    manifest["format"] = "someone.else"
    put_manifest(members, manifest)
    write_members(saved, members)
    with raises(saved, "format is 'someone.else', not 'rnnkit.checkpoint'"):
        checkpoint.load(saved)


def test_member_listed_but_missing_raises(saved):
    members = read_members(saved)
    del members["arr_1.npy"]
    write_members(saved, members)
    with raises(saved, "['arr_1.npy'] are listed in the manifest but missing"):
        checkpoint.load(saved)


def test_member_not_listed_raises(saved):
    members = read_members(saved)
    members["stowaway.npy"] = members["arr_0.npy"]
    write_members(saved, members)
    with raises(saved, "['stowaway.npy'] are in the archive but not in the manifest"):
        checkpoint.load(saved)


def test_duplicate_member_names_raise(saved):
    members = list(read_members(saved).items())
    write_members(saved, [*members[:1], *members])
    with raises(saved, "several members named ['arr_0.npy']"):
        checkpoint.load(saved)


def corrupt_manifest(members: dict[str, bytes], change: str) -> None:
    manifest = get_manifest(members)
    tree, entry = manifest["tree"], manifest["arrays"]["arr_0.npy"]
    if change == "not json":
        members[MANIFEST] = b'{"format": "rnnkit.checkpoint", '
        return
    if change == "NaN literal":
        members[MANIFEST] = members[MANIFEST].replace(b'"step":7', b'"step":NaN')
        return
    if change == "duplicate key":
        members[MANIFEST] = members[MANIFEST].replace(b'"step":7', b'"step":7,"step":8')
        return
    if change == "not ascii":
        members[MANIFEST] = members[MANIFEST].replace(b"run-1", "rün".encode())
        return
    if change == "array referenced twice":
        tree["params"]["b"] = {"$array": "arr_0.npy"}
    elif change == "unknown tag":
        tree["x"] = {"$pickle": "cos\nsystem"}
    elif change == "tag with extra key":
        tree["x"] = {"$float": "7ff8000000000000", "y": 1}
    elif change == "bad float bits":
        tree["lr"] = {"$float": "nan"}
    elif change == "array in a list":
        tree["params"]["b"] = [{"$array": "arr_1.npy"}]
    elif change == "dict in a list":
        tree["hist"] = [1, {}]
    elif change == "nested too deeply":
        tree["deep"] = json.loads("[" * 150 + "]" * 150)
    elif change == "bad sha256":
        entry["sha256"] = "00"
    elif change == "bad shape":
        entry["shape"] = [2, -3]
    elif change == "object dtype":
        entry["dtype"] = "|O"
    elif change == "wrong shape":
        entry["shape"] = [3, 2]
    elif change == "wrong dtype":
        entry["dtype"] = "<i4"
    put_manifest(members, manifest)


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ("not json", "is not valid JSON"),
        ("NaN literal", "NaN is not JSON"),
        ("duplicate key", "duplicate keys"),
        ("not ascii", "is not valid JSON"),
        ("array referenced twice", "tree and its array list disagree"),
        ("unknown tag", "malformed at tree['x']"),
        ("tag with extra key", "malformed at tree['x']"),
        ("bad float bits", "malformed at tree['lr']"),
        ("array in a list", "malformed at tree['params']['b'][0]"),
        ("dict in a list", "malformed at tree['hist'][1]: {}"),
        ("nested too deeply", "nested deeper than 100 at tree['deep']"),
        ("bad sha256", "malformed sha256 '00'"),
        ("bad shape", "malformed shape [2, -3]"),
        ("object dtype", "dtype '|O'"),
        ("wrong shape", "holds dtype <f4 and shape [2, 3], the manifest says <f4 and [3, 2]"),
        ("wrong dtype", "holds dtype <f4 and shape [2, 3], the manifest says <i4 and [2, 3]"),
    ],
)
def test_malformed_manifest_raises(saved, change, cause):
    members = read_members(saved)
    corrupt_manifest(members, change)
    write_members(saved, members)
    with raises(saved, cause):
        checkpoint.load(saved)


# ------------------------------------------------------------------------------------------------
# pickle is never executed


def _touch(path: str) -> str:
    with open(path, "w") as f:
        f.write("pickle ran")
    return "touched"


class Payload:
    """Unpickling this object creates the marker file: a stand-in for ``os.system``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def pickled_npy(marker) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_the_pickle_payload_is_live(tmp_path):
    """Control: the payload of the next tests does run when something unpickles it."""
    marker = tmp_path / "marker"
    np.load(io.BytesIO(pickled_npy(marker)), allow_pickle=True)
    assert marker.exists()


def test_pickled_npz_is_refused_without_unpickling(tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "evil.npz"
    np.savez(path, w=np.array([Payload(marker)], dtype=object))  # np.savez pickles object arrays
    with raises(path, "no '__rnnkit__.json' manifest"):
        checkpoint.load(path)
    with raises(path, "no '__rnnkit__.json' manifest"):
        checkpoint.peek(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("listed_dtype", "cause"),
    [
        ("<f4", "member 'arr_0.npy' is not a plain .npy array: Object arrays cannot be loaded"),
        ("|O", "dtype '|O'"),
    ],
)
def test_pickled_member_with_a_forged_manifest_is_refused_without_unpickling(
    saved, listed_dtype, cause
):
    """A forger can make the checksums match; the pickle still never runs."""
    marker = saved.parent / "marker"
    members = read_members(saved)
    members["arr_0.npy"] = pickled_npy(marker)
    manifest = get_manifest(members)
    manifest["arrays"]["arr_0.npy"].update(
        dtype=listed_dtype, shape=[1], sha256=hashlib.sha256(members["arr_0.npy"]).hexdigest()
    )
    put_manifest(members, manifest)
    write_members(saved, members)
    with raises(saved, cause):
        checkpoint.load(saved)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# peek


def test_peek_shows_scalars_and_array_shapes(tmp_path):
    tree = rich_tree()
    path = tmp_path / "rich.ckpt"
    checkpoint.save(path, tree)
    info = checkpoint.peek(path)
    assert info["step"] == 1200 and info["name"] == tree["name"]
    assert_identical(info["floats"], tree["floats"])
    assert info["params"]["weight_ih_l0"] == ArrayInfo(np.dtype(np.float32), (8, 3))
    assert info["empty"]["i64"] == ArrayInfo(np.dtype(np.int64), (2, 0, 4))
    assert info["zero_d"]["f"] == ArrayInfo(np.dtype(np.float64), ())


def test_peek_reads_no_array(saved):
    members = read_members(saved)
    members["arr_0.npy"] = members["arr_0.npy"][:-1] + b"\x00"
    write_members(saved, members)
    assert checkpoint.peek(saved)["step"] == 7  # the damaged array is never read ...
    with raises(saved, "SHA-256"):
        checkpoint.load(saved)  # ... which load does, and refuses
