"""Hostile checkpoint and model files: hundreds of damaged, forged and absurd files, each loaded
in a forked child under a wall-clock limit and an address-space limit (RLIMIT_AS), with every
reader that applies: ``rnnkit.checkpoint.peek`` and ``load``, a trainer's resume
(``check_trainer_tree``, then ``Trainer.load_checkpoint``) and ``Estimator.load`` followed by a
prediction.

    python tools/hostile_files.py            # all cases (about a minute on 2 cores)
    python tools/hostile_files.py -k bomb    # the cases whose name contains "bomb"
    python tools/hostile_files.py -v         # one line per case

The categories of issue 11: zip members that are decompression bombs (a genuine 1 GiB deflate
member in 1 MB) or compressed with deflate, bzip2 or lzma, encrypted members, stored members
whose sizes disagree, too many members, an oversized zip directory, huge, deep and
value-packed manifests, manifests declaring arrays of 10**12 elements, ``.npy`` headers that
disagree with the manifest, trainer checkpoints with negative, huge, float, string or bool
counters, bad epoch orders and generator states, estimator files with absurd settings
(hidden size 10**12 ...), plus random byte flips and truncations of valid files and random
mutations of their manifests (written as a forger would, checksums left alone) and of their
trees (saved again, checksums right), with a fixed seed.

Each reader's outcome is a clear error (a CheckpointError, or a ValueError, TypeError or
FileNotFoundError with a message), a load, or bad: another exception, a timeout, the memory
limit, a crash. A case is bad when a reader is bad, when a file that must be refused loads, or
when a damaged file loads as a different tree than the original. The last line is the summary,
``hostile files: N cases, N clear errors or harmless, 0 bad (max RSS .. MB, slowest .. s)``;
the exit code is 1 if any case is bad. "slowest" is the slowest single reader (peek, load,
resume or estimator); a case, which runs up to four, gets ``--timeout`` seconds in all.
"""

from __future__ import annotations

import os

# One BLAS thread: the children are forked, and each case is small.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import zipfile  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit import checkpoint  # noqa: E402
from rnnkit.apps.classify.estimator import RNNClassifier  # noqa: E402
from rnnkit.apps.estimator import Estimator  # noqa: E402
from rnnkit.apps.forecast.estimator import RNNForecaster  # noqa: E402
from rnnkit.apps.lm import CharLM  # noqa: E402
from rnnkit.checkpoint import MANIFEST, CheckpointError  # noqa: E402
from rnnkit.data import SequenceData, StreamData  # noqa: E402
from rnnkit.training.resume_checks import check_trainer_tree  # noqa: E402

MB = 2**20
CLEAR = (CheckpointError, ValueError, TypeError, FileNotFoundError)

# -- the valid files the hostile ones are made from -------------------------------------------


def sequence_data() -> SequenceData:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(int(n), 2)) for n in rng.integers(3, 9, 24)]
    return SequenceData(xs, [x.sum(axis=0) for x in xs], batch_size=8)


def stream_data() -> StreamData:
    ids = np.random.default_rng(1).integers(1, 6, 400)
    return StreamData(ids, 4, 10)


def regression_trainer(path: Path | None = None) -> rnnkit.Trainer:
    """Two layers with dropout (generator states in the model), validation with patience
    (best parameters), a schedule."""
    model = rnnkit.SequenceRegressor(2, 4, output_size=2, num_layers=2, dropout=0.1, seed=0)
    opt = rnnkit.optim.Adam(model.parameters(), lr=1e-2)
    schedule = rnnkit.optim.StepLR(opt, step_size=2)
    return rnnkit.Trainer(model, opt, "mse", schedule=schedule, checkpoint=path)


def stream_trainer(path: Path | None = None) -> rnnkit.Trainer:
    """A stateful language model: a carried state (s0, s1) in the checkpoint."""
    model = rnnkit.LanguageModel(6, 4, 8, seed=0)
    opt = rnnkit.optim.Adam(model.parameters(), lr=1e-2)
    return rnnkit.Trainer(model, opt, "cross_entropy", stateful=True, checkpoint=path)


TRAINERS: dict[str, Callable[..., rnnkit.Trainer]] = {
    "regression": regression_trainer,
    "stream": stream_trainer,
}


def plain_tree() -> dict:
    rng = np.random.default_rng(0)
    return {
        "step": 12,
        "lr": 0.001,
        "nan": float("nan"),
        "big": 2**70,
        "names": ["a", "b", None, True, [1.5, -0.0]],
        "params": {
            "w": rng.standard_normal((8, 3)).astype(np.float32),
            "fortran": np.asfortranarray(rng.standard_normal((3, 4))),
            "big_endian": np.arange(5, dtype=">i4"),
            "zero_d": np.array(3.5),
            "empty": np.zeros((0, 3)),
            "mask": rng.random(6) > 0.5,
            "c": np.array([1 + 2j], np.complex64),
        },
    }


@dataclass
class Base:
    name: str
    kind: str  # "plain", "trainer" or "estimator"
    data: bytes  # the valid file's bytes
    tree: dict  # what checkpoint.load gives for it


def build_bases(folder: Path) -> dict[str, Base]:
    bases = {}

    def add(name: str, kind: str, path: Path) -> None:
        bases[name] = Base(name, kind, path.read_bytes(), checkpoint.load(path))

    checkpoint.save(folder / "plain.ckpt", plain_tree())
    add("plain", "plain", folder / "plain.ckpt")
    trainer = regression_trainer(folder / "regression.ckpt")
    trainer.fit(sequence_data(), steps=5, val=sequence_data(), patience=2)
    add("regression", "trainer", folder / "regression.ckpt")
    stream_trainer(folder / "stream.ckpt").fit(stream_data(), steps=6)
    add("stream", "trainer", folder / "stream.ckpt")
    rng = np.random.default_rng(0)
    lm = CharLM(hidden_size=8, num_layers=2, embedding_dim=4, bptt=8, batch_size=2, steps=2)
    lm.set_params(quiet=True).fit("abcd efgh " * 20)
    X, y = rng.normal(size=(16, 8, 2)), np.array(["a", "bb", "c", "d"] * 4)
    clf = RNNClassifier(hidden_size=4, epochs=1, cell="gru", bidirectional=True, ensemble=2)
    clf.set_params(normalize="global", window=2, quiet=True).fit(X, y)
    fc = RNNForecaster(window=6, horizon=3, hidden_size=4, epochs=1, difference=2, quiet=True)
    fc.fit(np.sin(np.arange(60.0)) + 2)
    for name, est in [("lm", lm), ("clf", clf), ("fc", fc)]:
        add(name, "estimator", est.save(folder / f"{name}.rnnkit"))
    return bases


# -- readers, run in the child ------------------------------------------------------------------


def smoke(est: Estimator) -> None:
    """Use a loaded estimator once, as a user would next."""
    if isinstance(est, CharLM):
        est.sample("ab", length=5, seed=0)
    elif isinstance(est, RNNClassifier):
        est.predict(np.random.default_rng(0).normal(size=(3, 8, 2)))
    elif isinstance(est, RNNForecaster):
        est.predict()


def resume(base: Base, path: Path) -> None:
    """A trainer's resume: the checks of its tree, then load_checkpoint into a fresh trainer
    built like the one that wrote the file (load_checkpoint will make the first call itself)."""
    trainer = TRAINERS[base.name]()
    generator = type(trainer.rng.bit_generator).__name__
    check_trainer_tree(checkpoint.load(path), path, bit_generator=generator)
    trainer.load_checkpoint(path)


def readers(base: Base) -> list[tuple[str, Callable[[Path], Any]]]:
    out: list[tuple[str, Callable[[Path], Any]]] = [
        ("peek", checkpoint.peek),
        ("load", checkpoint.load),
    ]
    if base.kind == "trainer":
        out.append(("resume", lambda p: resume(base, p)))
    if base.kind == "estimator":
        out.append(("estimator", lambda p: smoke(Estimator.load(p))))
    return out


def same(a: Any, b: Any) -> bool:
    """Identical trees: types, key order, dtypes, shapes and bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def child(case: Case, base: Base, path: Path, limit: int) -> dict[str, Any]:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outcomes, slowest = [], 0.0
    for name, read in readers(base):
        start = time.perf_counter()
        outcome, said, value = read_once(read, path)
        slowest = max(slowest, time.perf_counter() - start)
        if outcome == "loaded" and name == "load" and case.expect == "same":
            if not same(value, base.tree):
                outcome, said = "bad", "loaded a tree other than the original"
        del value  # one reader's result at a time: the memory measured is a reader's
        outcomes.append((name, outcome, said))
    return {"outcomes": outcomes, "seconds": slowest}


def read_once(read: Callable[[Path], Any], path: Path) -> tuple[str, str, Any]:
    """(outcome, what was said, what was read) of one reader."""
    try:
        return "loaded", "", read(path)
    except CLEAR as err:
        outcome = "error" if str(err) else "bad"  # an error without a message is not clear
        return outcome, f"{type(err).__name__}: {err}", None
    except MemoryError as err:
        return "bad", f"MemoryError (the memory limit): {err}", None
    except BaseException as err:  # what the harness is here to find
        where = traceback.extract_tb(err.__traceback__)[-1]
        said = f"{type(err).__name__}: {err} ({Path(where.filename).name}:{where.lineno})"
        return "bad", said, None


# -- the cases ----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    base: str
    build: Callable[[Path, Base], None]  # writes the hostile file
    # "refuse": the last reader must refuse the file; "same": a load must give the original
    # tree; "any": a clear error or a load
    expect: str


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path: Path, members: dict[str, bytes], compress: dict[str, int] | None = None):
    compress = compress or {}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=compress.get(name, zipfile.ZIP_STORED))


def manifest_case(change: Callable[[dict], None]) -> Callable[[Path, Base], None]:
    """Rewrite the manifest (JSON) as a forger would, leaving the members and checksums."""

    def build(path: Path, base: Base) -> None:
        members = members_of(base.data)
        manifest = json.loads(members[MANIFEST])
        change(manifest)
        members[MANIFEST] = json.dumps(manifest).encode()
        write_members(path, members)

    return build


def tree_case(change: Callable[[dict], None]) -> Callable[[Path, Base], None]:
    """Change the loaded tree and save it again: a well-formed file with a bad tree."""

    def build(path: Path, base: Base) -> None:
        tree = copy.deepcopy(base.tree)
        change(tree)
        checkpoint.save(path, tree)

    return build


def bytes_case(change: Callable[[bytearray], bytes]) -> Callable[[Path, Base], None]:
    def build(path: Path, base: Base) -> None:
        path.write_bytes(change(bytearray(base.data)))

    return build


def set_at(keys: list, value: Any) -> Callable[[dict], None]:
    def change(node: dict) -> None:
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return change


DELETE = object()


_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")


def raw_zip(path: Path, members: list[tuple[str, int, bytes, int]], listed: int | None = None):
    """A hand-written zip: (name, method, data as written, declared size), zero CRCs."""
    with open(path, "wb") as f:
        central = []
        for name, method, data, size in members:
            offset, raw = f.tell(), name.encode()
            f.write(
                _LOCAL.pack(b"PK\x03\x04", 20, 0, method, 0, 33, 0, len(data), size, len(raw), 0)
            )
            f.write(raw + data)
            fields = (20, 20, 0, method, 0, 33, 0, len(data), size, len(raw), 0, 0, 0, 0, 0, offset)
            central.append(_CENTRAL.pack(b"PK\x01\x02", *fields) + raw)
        start = f.tell()
        f.write(b"".join(central))
        count = len(members) if listed is None else listed
        f.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, f.tell() - start, start, 0))


def deflate_bomb(gib: int = 1) -> bytes:
    """``gib`` GiB of zeros as raw deflate in about 1 MB (after a full flush, every further MiB
    of zeros compresses to the same block), made without ever holding the GiB."""
    zeros = bytes(MB)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (1024 * gib - 1) + c.flush()


def patch_central(data: bytearray, index: int, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of the ``index``-th central directory record."""
    pos = data.index(b"PK\x01\x02")
    for _ in range(index):
        pos = data.index(b"PK\x01\x02", pos + 4)
    struct.pack_into(fmt, data, pos + offset, value)
    return bytes(data)


def npy(array: np.ndarray | None = None, header: dict | None = None, tail: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    if header is not None:
        np.lib.format.write_array_header_1_0(buffer, header)
    else:
        np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue() + tail


def with_header(member: bytes, text: bytes) -> bytes:
    """``member`` (a version 1.0 .npy) with its header text replaced by ``text``, padded to the
    same length."""
    length = struct.unpack("<H", member[8:10])[0]
    return member[:10] + text[: length - 1].ljust(length - 1) + b"\n" + member[10 + length :]


def forge_member(name: str, make: Callable[[bytes], bytes]) -> Callable[[Path, Base], None]:
    """Replace member ``name`` and make the manifest's SHA-256 match: a careful forger."""

    def build(path: Path, base: Base) -> None:
        members = members_of(base.data)
        members[name] = make(members[name])
        manifest = json.loads(members[MANIFEST])
        manifest["arrays"][name]["sha256"] = hashlib.sha256(members[name]).hexdigest()
        members[MANIFEST] = json.dumps(manifest).encode()
        write_members(path, members)

    return build


def zip_cases(bases: dict[str, Base]) -> list[Case]:
    cases = []
    for b in bases.values():
        names = list(members_of(b.data))
        for method, word in [(8, "deflate"), (12, "bzip2"), (14, "lzma")]:
            for member in (names[0], MANIFEST):

                def build(path, base, member=member, method=method):
                    write_members(path, members_of(base.data), {member: method})

                cases.append(Case(f"{b.name} {member} {word}-compressed", b.name, build, "refuse"))
        cases.append(
            Case(
                f"{b.name} 1 GiB deflate bomb as the manifest",
                b.name,
                lambda path, base: raw_zip(path, [(MANIFEST, 8, deflate_bomb(), 2**30)]),
                "refuse",
            )
        )
        for flag, what in [(0x1, "encrypted"), (0x41, "strongly encrypted")]:
            for index in (0, len(names) - 1):
                change = bytes_case(lambda d, i=index, f=flag: patch_central(d, i, 8, "<H", f))
                cases.append(Case(f"{b.name} member {index} {what}", b.name, change, "refuse"))
        for size in (0, 1, 2**31, 2**32 - 2):
            change = bytes_case(lambda d, s=size: patch_central(d, 0, 24, "<L", s))
            cases.append(Case(f"{b.name} member 0 declares size {size}", b.name, change, "refuse"))
        change = bytes_case(lambda d: patch_central(d, 0, 10, "<H", 99))
        cases.append(Case(f"{b.name} member 0 of compression method 99", b.name, change, "refuse"))
    many = [(f"arr_{i}.npy", 0, b"", 0) for i in range(checkpoint.MAX_MEMBERS + 1)]
    cases.append(Case("10,001 members", "plain", lambda p, b: raw_zip(p, many), "refuse"))
    lots = many * 6  # 60,006 records
    cases.append(
        Case(
            "directory of 60,000 records listed as 2",
            "plain",
            lambda p, b: raw_zip(p, lots, 2),
            "refuse",
        )
    )
    cases.append(
        Case(
            "5 GiB bomb of 5 bzip2-compressed members",
            "plain",
            lambda p, b: raw_zip(p, [(f"arr_{i}.npy", 12, b"BZh9", 2**30) for i in range(5)]),
            "refuse",
        )
    )
    return cases


def manifest_text_case(text: Callable[[], bytes]) -> Callable[[Path, Base], None]:
    """An archive of one member, the manifest ``text()``, made when the case runs."""

    def build(path: Path, base: Base) -> None:
        write_members(path, {MANIFEST: text()})

    return build


def sparse_manifest(path: Path, base: Base) -> None:
    """A 65 MiB manifest whose bytes are never written (a sparse file)."""
    size, name = checkpoint.MAX_MANIFEST_BYTES + MB, MANIFEST.encode()
    with open(path, "wb") as f:
        f.write(_LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 33, 0, size, size, len(name), 0) + name)
        f.seek(size, io.SEEK_CUR)
        start = f.tell()
        fields = (20, 20, 0, 0, 0, 33, 0, size, size, len(name), 0, 0, 0, 0, 0, 0)
        f.write(_CENTRAL.pack(b"PK\x01\x02", *fields) + name)
        f.write(_END.pack(b"PK\x05\x06", 0, 0, 1, 1, f.tell() - start, start, 0))


TAG = b'{"$float":"7ff8000000000000"},'
#: The .npy header of an array of 10**12 floats.
BIG = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}


def manifest_cases(bases: dict[str, Base]) -> list[Case]:
    head = b'{"format":"rnnkit.checkpoint","version":1,"arrays":{},"tree":{"x":'
    n = checkpoint.MAX_MANIFEST_VALUES
    # (what, the manifest's text, made only when the case runs, expectation)
    texts: list[tuple[str, Callable[[], bytes], str]] = [
        ("nested 200,000 deep", lambda: b"[" * 200_000, "refuse"),
        ("objects nested 200,000 deep", lambda: b'{"a":' * 200_000, "refuse"),
        ("too many values", lambda: head + b"[" + b"0," * n + b"0]}}", "refuse"),
        # just under the limit, each kind of value that costs most memory or time to parse
        ("lists at the limit", lambda: head + b"[" + b"[]," * (n // 4 - 100) + b"[]]}}", "any"),
        ("tags at the limit", lambda: head + b"[" + TAG * (n // 13 - 100) + b"1]}}", "any"),
        ("strings at the limit", lambda: head + b"[" + b'"ab",' * (n // 3 - 100) + b"1]}}", "any"),
        ("floats at the limit", lambda: head + b"[" + b"0.5," * (n - 100) + b"1]}}", "any"),
        ("one long string", lambda: head + b'"' + b"x" * (60 * MB) + b'"}}', "any"),
        ("huge int literal", lambda: head + b"9" * 5000 + b"}}", "refuse"),
        ("huge hex int", lambda: head + b'{"$int":"0x' + b"f" * 10_000_000 + b'"}}}', "any"),
        ("NaN literal", lambda: head + b"NaN}}", "refuse"),
        ("not ascii", lambda: head + "\u00e9".encode() + b"}}", "refuse"),
        ("duplicate keys", lambda: head + b'1,"x":2}}', "refuse"),
        ("a list", lambda: b"[]", "refuse"),
        ("empty", lambda: b"", "refuse"),
    ]
    cases = [Case(f"manifest {k}", "plain", manifest_text_case(v), e) for k, v, e in texts]
    cases.append(Case("manifest of 65 MiB (sparse)", "plain", sparse_manifest, "refuse"))
    for b in bases.values():
        first = sorted(json.loads(members_of(b.data)[MANIFEST])["arrays"])[0]
        for shape in ([10**12], [10**6, 10**6], [2**63], [-1], [1.5], [1] * 65, "x"):
            change = set_at(["arrays", first, "shape"], shape)
            cases.append(
                Case(
                    f"{b.name} {first} shape {shape!r:.20}", b.name, manifest_case(change), "refuse"
                )
            )
        for dtype in ("<f3", "|O", "<U8", "<V16", "(1000000000,)<f4", "<M8[s]"):
            change = set_at(["arrays", first, "dtype"], dtype)
            cases.append(
                Case(f"{b.name} {first} dtype {dtype}", b.name, manifest_case(change), "refuse")
            )
        cases.append(
            Case(
                f"{b.name} tree is a tag",
                b.name,
                manifest_case(set_at(["tree"], {"$array": first})),
                "refuse",
            )
        )
        forged = [
            ("header shape 10**12", lambda m: npy(header=BIG, tail=m[128:])),
            (
                "header of another dtype",
                lambda m: npy(header={**BIG, "shape": (1,), "descr": "<i8"}),
            ),
            ("header of version 3.0", lambda m: m[:6] + b"\x03\x00" + m[8:]),
            (
                "header of 50,000 bytes",
                lambda m: m[:6] + b"\x02\x00" + struct.pack("<I", 50_000) + m[10:],
            ),
            ("header not a literal", lambda m: with_header(m, b"__import__('os').system('true')")),
            ("header nested 5,000 deep", lambda m: with_header(m, b"(" * 5000)),
            ("100 bytes appended", lambda m: m + bytes(100)),
            ("4 bytes cut", lambda m: m[:-4]),
            ("20,000 bytes appended", lambda m: m + bytes(20_000)),
            ("fortran order flipped", lambda m: m.replace(b"False", b"True ", 1)),
            ("object array header", lambda m: npy(header={**BIG, "descr": "|O", "shape": (1,)})),
        ]
        for what, make in forged:
            expect = "any" if what == "fortran order flipped" else "refuse"
            cases.append(
                Case(f"{b.name} {first} {what}", b.name, forge_member(first, make), expect)
            )
    return cases


HOSTILE = [
    -1,
    -(2**63),
    2**62,
    2**64,
    10**12,
    1.5,
    float("nan"),
    float("inf"),
    "3",
    "",
    True,
    None,
    [],
    {},
    [1, 2],
    np.zeros(3),
    np.zeros((2, 2), np.int64),
    np.array([0.5], np.float32),
]


def valid_in_trainer(keys: list, value: Any) -> bool:
    """Whether ``value`` is a valid value of the trainer checkpoint's field ``keys``."""
    field = keys[-1]
    if field in ("step", "epoch", "batch", "nonfinite", "skipped", "bad"):
        return type(value) is int and 0 <= value < 2**62
    if field == "best":
        return value is None or type(value) is float
    if field == "first_loss":
        return value is None or (type(value) is float and 0 < value < float("inf"))
    if field in ("order", "state"):
        return value is None
    if keys[:2] == ["rng", "trainer"]:  # has_uint32: any C int (NumPy reads it as a flag)
        low, top = (0, 2**128) if field == "state" else (-(2**31), 2**31)
        return type(value) is int and low <= value < top
    return False


def trainer_cases(bases: dict[str, Base], rng: random.Random, per_field: int) -> list[Case]:
    cases = []
    fields = [
        ["progress", "step"],
        ["progress", "epoch"],
        ["progress", "batch"],
        ["progress", "nonfinite"],
        ["progress", "skipped"],
        ["progress", "bad"],
        ["progress", "order"],
        ["progress", "best"],
        ["progress", "first_loss"],
        ["rng", "trainer", "state", "state"],
        ["rng", "trainer", "has_uint32"],
        ["history", "loss"],
        ["state"],
        ["version"],
    ]
    for b in (bases["regression"], bases["stream"]):
        for keys in fields:
            for value in rng.sample(HOSTILE, per_field):
                expect = "any" if valid_in_trainer(keys, value) else "refuse"
                name = f"{b.name} {'.'.join(keys)} = {value!r:.30}"
                cases.append(Case(name, b.name, tree_case(set_at(keys, value)), expect))
        n = len(b.tree["progress"]["order"]) if b.tree["progress"]["order"] is not None else 3
        for what, order in [
            ("repeated index", np.zeros(n, np.int64)),
            ("out of range", np.arange(n) + 1),
            ("negative", -np.arange(n)),
            ("2-D", np.arange(n).reshape(1, n)),
            ("floats", np.arange(n, dtype=float)),
            ("uint64 max", np.full(n, 2**64 - 1, np.uint64)),
            ("bools", np.ones(n, bool)),
        ]:
            change = tree_case(set_at(["progress", "order"], order))
            cases.append(Case(f"{b.name} order {what}", b.name, change, "refuse"))
        pcg = b.tree["rng"]["trainer"]
        mt = {"bit_generator": "MT19937", "state": {"key": np.zeros(624, np.uint32), "pos": 0}}
        for what, state in [
            ("another bit generator", mt),
            ("an unknown bit generator", {"bit_generator": "os.system", "state": {}}),
            ("a short MT19937 key", {**mt, "state": {"key": np.zeros(3, np.uint32), "pos": 0}}),
            ("a huge state", {**pcg, "state": {"state": 2**200, "inc": 1}}),
            ("a float state", {**pcg, "state": {"state": 1.5, "inc": 1}}),
            ("no state", {"bit_generator": "PCG64"}),
        ]:
            change = tree_case(set_at(["rng", "trainer"], state))
            cases.append(Case(f"{b.name} rng.trainer {what}", b.name, change, "refuse"))
    return cases


SETTINGS = {
    "lm": [
        ["params", k]
        for k in ("hidden_size", "num_layers", "embedding_dim", "cell", "dtype", "seed")
    ]
    + [["state", k] for k in ("vocabulary", "char_counts", "n_steps", "val_loss")],
    "clf": [
        ["params", k]
        for k in ("hidden_size", "num_layers", "window", "ensemble", "bidirectional", "cell")
    ]
    + [["state", k] for k in ("classes", "classes_dtype", "n_features_in", "mean", "more_params")],
    "fc": [["params", k] for k in ("hidden_size", "window", "horizon", "strategy")]
    + [
        ["state", "fitted", k]
        for k in ("hidden_size", "num_layers", "window", "outputs", "lag", "horizon", "dtype")
    ]
    + [["state", k] for k in ("tail", "scaler", "n_windows")],
}


#: Settings that, at 10**12, imply a model no file of this size holds: always refused.
ABSURD = {
    ("lm", "params.hidden_size"),
    ("lm", "params.num_layers"),
    ("lm", "params.embedding_dim"),
    ("clf", "params.hidden_size"),
    ("clf", "params.num_layers"),
    ("clf", "params.window"),
    ("clf", "params.ensemble"),
    ("clf", "state.n_features_in"),
    ("fc", "state.fitted.hidden_size"),
    ("fc", "state.fitted.num_layers"),
    ("fc", "state.fitted.window"),
    ("fc", "state.fitted.outputs"),
}


def estimator_cases(bases: dict[str, Base], rng: random.Random, per_field: int) -> list[Case]:
    cases = []
    for name, fields in SETTINGS.items():
        for keys in fields:
            field = ".".join(keys)
            for value in rng.sample([*HOSTILE, -(10**12), 0, "<U1000000000", "|O"], per_field):
                change = tree_case(set_at(keys, value))
                cases.append(Case(f"{name} {field} = {value!r:.30}", name, change, "any"))
            # 10**12 written into the manifest by hand, as a forger would
            expect = "refuse" if (name, field) in ABSURD else "any"
            change = manifest_case(set_at(["tree", *keys], 10**12))
            cases.append(Case(f"{name} manifest {field} = 10**12", name, change, expect))
    return cases


def walk(node: Any, keys: list) -> list[list]:
    """Every path into a JSON-like node (dicts and lists)."""
    out = [keys]
    if isinstance(node, dict):
        for k, v in node.items():
            out += walk(v, [*keys, k])
    elif isinstance(node, list):
        for i, v in enumerate(node[:5]):
            out += walk(v, [*keys, i])
    return out


MANIFEST_VALUES = [
    -1,
    0,
    2**62,
    2**64,
    10**12,
    1.5,
    -0.0,
    1e308,
    "",
    "x" * 1000,
    True,
    None,
    [],
    {},
    [1, 2, 3],
    {"$float": "7ff8000000000000"},
    {"$int": "0x" + "f" * 40},
    {"$array": "arr_0.npy"},
    {"$pickle": "cos\nsystem"},
    {"$$x": 1},
]


def random_cases(
    bases: dict[str, Base], rng: random.Random, flips: int, mutations: int
) -> list[Case]:
    cases = []
    for b in bases.values():
        size = len(b.data)
        for i in range(flips):
            positions = [rng.randrange(size) for _ in range(rng.choice([1, 1, 2, 8]))]
            masks = [rng.randrange(1, 256) for _ in positions]

            def flip(d, positions=positions, masks=masks):
                for p, m in zip(positions, masks):
                    d[p] ^= m
                return bytes(d)

            cases.append(
                Case(f"{b.name} flip {i} at {positions[:3]}", b.name, bytes_case(flip), "same")
            )
        for _ in range(flips // 3):
            cut = rng.randrange(size)
            cases.append(
                Case(
                    f"{b.name} truncated at {cut}",
                    b.name,
                    bytes_case(lambda d, c=cut: bytes(d[:c])),
                    "refuse",
                )
            )
        cases.append(
            Case(
                f"{b.name} with garbage before",
                b.name,
                bytes_case(lambda d: b"\x00" * 100 + bytes(d)),
                "same",
            )
        )
        cases.append(
            Case(
                f"{b.name} with garbage after",
                b.name,
                bytes_case(lambda d: bytes(d) + b"PK\x05\x06" * 10),
                "any",
            )
        )
        manifest = json.loads(members_of(b.data)[MANIFEST])
        paths = [p for p in walk(manifest, []) if p]
        for _ in range(mutations):
            keys = rng.choice(paths)
            value = rng.choice(MANIFEST_VALUES)
            cases.append(
                Case(
                    f"{b.name} manifest {'.'.join(map(str, keys))[:50]} = {value!r:.20}",
                    b.name,
                    manifest_case(set_at(keys, value)),
                    "any",
                )
            )
        tree_paths = [p for p in walk(b.tree, []) if p and all(isinstance(k, str) for k in p)]
        for _ in range(mutations // 2):
            keys = rng.choice(tree_paths)
            value = rng.choice(HOSTILE)
            cases.append(
                Case(
                    f"{b.name} tree {'.'.join(keys)[:50]} = {value!r:.20}",
                    b.name,
                    tree_case(set_at(keys, value)),
                    "any",
                )
            )
    return cases


# -- running ------------------------------------------------------------------------------------


def run(case: Case, base: Base, path: Path, timeout: float, limit: int) -> tuple[dict, float]:
    """Run ``case`` in a forked child: its result and its peak RSS in MB."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            result = child(case, base, path, limit)
        except BaseException as err:
            result = {"outcomes": [("harness", "bad", repr(err))], "seconds": 0.0}
        with os.fdopen(write_end, "w") as f:
            json.dump(result, f)
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([f], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                return {
                    "outcomes": [("all", "bad", f"no answer within {timeout:.0f} s")],
                    "seconds": timeout,
                }, usage.ru_maxrss / 1024
            data = os.read(f.fileno(), 65536)
            if not data:
                break
            chunks.append(data)
    _, status, usage = os.wait4(pid, 0)
    rss = usage.ru_maxrss / 1024
    try:
        return json.loads(b"".join(chunks)), rss
    except ValueError:
        return {"outcomes": [("all", "bad", f"the child died ({status=})")], "seconds": 0.0}, rss


def verdict(case: Case, result: dict) -> list[str]:
    problems = [f"{name}: {said}" for name, outcome, said in result["outcomes"] if outcome == "bad"]
    final = result["outcomes"][-1]
    if case.expect == "refuse" and final[1] == "loaded":
        problems.append(f"{final[0]} loaded a file it must refuse")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only the cases whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds per case (all its readers)"
    )
    parser.add_argument("--memory", type=int, default=1536, help="RLIMIT_AS per case, in MB")
    parser.add_argument("--flips", type=int, default=15, help="random byte flips per base file")
    parser.add_argument("--mutations", type=int, default=12, help="manifest mutations per base")
    parser.add_argument("--values", type=int, default=4, help="hostile values per tree field")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnkit-hostile-"))
    try:
        bases = build_bases(work)
        rng = random.Random(opts.seed)
        cases = (
            zip_cases(bases)
            + manifest_cases(bases)
            + trainer_cases(bases, rng, opts.values)
            + estimator_cases(bases, rng, opts.values)
            + random_cases(bases, rng, opts.flips, opts.mutations)
        )
        cases = [c for c in cases if opts.k in c.name]
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bad, worst_rss, slowest, not_checkpoint_error = 0, 0.0, 0.0, 0
        for case in cases:
            path = work / "hostile.file"
            case.build(path, bases[case.base])
            result, rss = run(case, bases[case.base], path, opts.timeout, opts.memory * MB)
            path.unlink(missing_ok=True)
            problems = verdict(case, result)
            bad += bool(problems)
            worst_rss, slowest = max(worst_rss, rss), max(slowest, result["seconds"])
            not_checkpoint_error += any(
                o == "error" and not said.startswith("CheckpointError") and n != "estimator"
                for n, o, said in result["outcomes"]
            )
            if opts.verbose or problems:
                said = "; ".join(f"{n}: {o}" for n, o, _ in result["outcomes"])
                first = next((s for _, o, s in result["outcomes"] if o == "error"), "")
                line = "BAD: " + " | ".join(problems) if problems else f"ok ({said}) {first[:120]}"
                print(
                    f"{case.name[:70]:70s} {result['seconds']:5.2f} s {rss:5.0f} MB  {line}",
                    flush=True,
                )
        print(
            f"(harness baseline RSS {baseline:.0f} MB; {not_checkpoint_error} cases refused by a "
            "reader with an error other than CheckpointError)"
        )
        print(
            f"hostile files: {len(cases)} cases, {len(cases) - bad} clear errors or harmless, "
            f"{bad} bad (max RSS {worst_rss:.0f} MB, slowest {slowest:.1f} s)"
        )
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
