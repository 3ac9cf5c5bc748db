"""The memory guards of :mod:`rnnkit.limits`: sizes that cannot fit are refused before anything
big is allocated, with a MemoryLimitError that names what, the estimate, the memory available
and the override; the override works; the measurement reads /proc/meminfo, cgroups v1 and v2
and an address-space limit; and the estimates are honest (close to what a pass allocates).

"Nothing big was allocated" is checked with tracemalloc (NumPy reports its arrays to it) and,
once, in a subprocess whose address space is limited to 2 GiB.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit import limits
from rnnkit.limits import MemoryLimitError, check_memory, memory_limit
from rnnkit.runtime import workspace

GiB = 2**30
#: What a refused request may allocate at most (tracemalloc's peak): a few MiB of bookkeeping.
SMALL = 16 * 2**20


def refused(make, *, seconds: float = 1.0) -> MemoryLimitError:
    """Call ``make()``; it must raise MemoryLimitError within ``seconds`` and allocate less
    than :data:`SMALL` on the way."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(MemoryLimitError) as info:
            make()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"refused after {elapsed:.2f} s"
    assert peak < SMALL, f"{peak / 2**20:.1f} MiB allocated before the refusal"
    return info.value


def assert_message(err: MemoryLimitError, *parts: str) -> None:
    text = str(err)
    for part in (*parts, "would need about", "of memory available", limits.ENV_VAR, "memory_limit"):
        assert part in text, f"{part!r} not in {text!r}"
    assert err.nbytes > err.available


@pytest.fixture(autouse=True)
def _automatic_limit(monkeypatch):
    """Every test starts from the measured limit, whatever the environment says."""
    monkeypatch.delenv(limits.ENV_VAR, raising=False)
    with memory_limit("auto"):
        yield


# -- sizes, messages, the error -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("1K", 1024),
        ("1.5G", 3 * GiB // 2),
        ("512m", 512 * 2**20),
        ("8GiB", 8 * GiB),
        ("2 TB", 2 * 2**40),
        (" 3M ", 3 * 2**20),
        ("off", None),
        ("OFF", None),
        (None, None),
        (123, 123),
        (np.int64(5), 5),
    ],
)
def test_parse_size(text, expected):
    assert limits.parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "exc", "pattern"),
    [
        ("lots", ValueError, "limit must be a number of bytes with an optional K/M/G/T suffix"),
        ("8Q", ValueError, "got '8Q'"),
        ("-1G", ValueError, "got '-1G'"),
        (-5, ValueError, "limit must be >= 0 bytes, got -5"),
        (1.5, TypeError, "limit must be an int"),
        (True, TypeError, "limit must be an int"),
    ],
)
def test_parse_size_bad(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        limits.parse_size(value)


def test_format_size():
    assert limits.format_size(100) == "100 bytes"
    assert limits.format_size(1536) == "1.5 KiB"
    assert limits.format_size(3 * GiB) == "3.0 GiB"
    assert limits.format_size(10**30).endswith("TiB")


def test_error_is_a_memory_error_that_pickles():
    err = MemoryLimitError("a thing", 10 * GiB, GiB, "somewhere")
    assert isinstance(err, MemoryError)
    assert_message(err, "a thing would need about 10.0 GiB", "1.0 GiB", "(somewhere)")
    again = pickle.loads(pickle.dumps(err))
    assert (again.what, again.nbytes, again.available, again.source) == (
        "a thing",
        10 * GiB,
        GiB,
        "somewhere",
    )
    assert str(again) == str(err)


# -- the limit and its overrides -------------------------------------------------------------------


def test_small_requests_cost_no_measurement(monkeypatch):
    calls = []
    monkeypatch.setattr(limits, "meminfo_available", lambda *a: calls.append(1) or 0)
    check_memory("small", limits.CHEAP_BYTES)
    assert calls == []
    with pytest.raises(MemoryLimitError, match="big would need"):
        check_memory("big", 2**50)  # measured: 0 bytes available (and the workspace's)
    assert calls


def test_memory_limit_sets_and_restores():
    auto = limits.current_limit()
    assert isinstance(auto, int) and auto > 0
    with memory_limit("1M"):
        assert limits.current_limit() == 2**20
        with pytest.raises(MemoryLimitError, match=r"set by rnnkit\.limits\.memory_limit"):
            check_memory("two MiB", 2 * 2**20)
        check_memory("one KiB", 1024)  # a set limit applies to small requests too
        with memory_limit(None):
            assert limits.current_limit() is None
            check_memory("a lot", 10**30)
        assert limits.current_limit() == 2**20
    assert limits.current_limit() != 2**20
    memory_limit("2M")  # as a plain call: for the rest of the process
    try:
        assert limits.current_limit() == 2 * 2**20
    finally:
        memory_limit("auto")


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(limits.ENV_VAR, "3M")
    assert limits.current_limit() == 3 * 2**20
    with pytest.raises(MemoryLimitError, match=r"\(RNNKIT_MEMORY_LIMIT=3M\)"):
        check_memory("four MiB", 4 * 2**20)
    monkeypatch.setenv(limits.ENV_VAR, "off")
    assert limits.current_limit() is None
    with memory_limit("1K"):  # the function wins over the environment
        assert limits.current_limit() == 1024
    monkeypatch.setenv(limits.ENV_VAR, "auto")
    assert limits.current_limit() > 2**20
    monkeypatch.setenv(limits.ENV_VAR, "not a size")
    with pytest.raises(ValueError, match="RNNKIT_MEMORY_LIMIT must be a number of bytes"):
        check_memory("anything", 1)


def test_memory_limit_bad_value():
    with pytest.raises(ValueError, match="limit must be a number of bytes"):
        memory_limit("huge")


# -- measuring -----------------------------------------------------------------------------------


def test_available_memory_is_measured():
    n = limits.available_memory()
    assert isinstance(n, int) and 0 < n < 2**60


def test_meminfo(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:  16000000 kB\nMemFree: 1000 kB\nMemAvailable:    8000000 kB\n")
    assert limits.meminfo_available(path) == 8000000 * 1024
    path.write_text("MemTotal: 16 kB\n")
    assert limits.meminfo_available(path) is None
    assert limits.meminfo_available(tmp_path / "missing") is None


def write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def test_cgroup_v2(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    proc.write_text("0::/jobs/run\n")
    write(root / "jobs" / "run", memory_max="max\n", memory_current="100\n")
    assert limits.cgroup_available(proc, root) is None  # no limit anywhere
    write(root / "jobs" / "run", memory_max="1000\n", memory_current="400\n")
    assert limits.cgroup_available(proc, root) == 600
    write(root / "jobs" / "run", memory_stat="anon 300\ninactive_file 100\nactive_file 7\n")
    assert limits.cgroup_available(proc, root) == 700  # inactive page cache counts as free
    write(root / "jobs", memory_max="500\n", memory_current="450\n")  # the parent is tighter
    assert limits.cgroup_available(proc, root) == 50
    proc.write_text("0::/elsewhere\n")  # a path the mount does not show: its root is read
    write(root, memory_max="2000\n", memory_current="1000\n")
    assert limits.cgroup_available(proc, root) == 1000


def test_cgroup_v1(tmp_path):
    root, proc = tmp_path / "cg", tmp_path / "cgroup"
    proc.write_text("5:cpu,cpuacct:/x\n4:memory:/box\n0::/\n")
    write(root / "memory" / "box", memory_limit_in_bytes="9223372036854771712\n")
    write(root / "memory" / "box", memory_usage_in_bytes="10\n")
    assert limits.cgroup_available(proc, root) is None  # 2**63 - 4096: no limit
    write(root / "memory" / "box", memory_limit_in_bytes="1000\n")
    write(root / "memory" / "box", memory_stat="total_inactive_file 5\n")
    assert limits.cgroup_available(proc, root) == 995
    assert limits.cgroup_available(tmp_path / "missing", root) is None


def test_address_space_limit_is_measured():
    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
        from rnnkit import limits
        n = limits.address_space_available()
        print(0 < n < 3 * 2**30, limits.available_memory() <= n)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr


# -- constructors -------------------------------------------------------------------------------

CONSTRUCTORS = {
    "LSTM hidden_size=10**5": (lambda: rnnkit.LSTM(10, 10**5), "LSTM(10, 100000"),
    "GRU hidden_size=10**12": (lambda: rnnkit.GRU(10, 10**12), "GRU(10, 1000000000000"),
    "RNN input_size=10**12": (lambda: rnnkit.RNN(10**12, 8), "RNN(1000000000000, 8"),
    "LSTM num_layers=10**6": (lambda: rnnkit.LSTM(8, 64, num_layers=10**6), "num_layers=1000000"),
    "Recurrent bidirectional": (
        lambda: rnnkit.Recurrent(rnnkit.cells.GRUCell(), 8, 10**5, bidirectional=True),
        "Recurrent(8, 100000, num_layers=1, bidirectional)",
    ),
    "Embedding 10**12": (lambda: rnnkit.Embedding(10**12, 16), "Embedding(1000000000000, 16)"),
    "Linear 10**6 x 10**6": (lambda: rnnkit.Linear(10**6, 10**6), "Linear(1000000, 1000000)"),
    "LanguageModel vocab 10**12": (
        lambda: rnnkit.LanguageModel(10**12, 8, 16),
        "LanguageModel(1000000000000, 8, 16",
    ),
    "LanguageModel hidden 10**5": (
        lambda: rnnkit.LanguageModel(100, 8, 10**5, cell="gru"),
        "LanguageModel(100, 8, 100000",
    ),
    "SequenceRegressor hidden 10**5": (
        lambda: rnnkit.SequenceRegressor(3, 10**5),
        "SequenceRegressor(3, 100000",
    ),
    "SequenceClassifier classes 10**12": (
        lambda: rnnkit.SequenceClassifier(3, 8, num_classes=10**12),
        "SequenceClassifier(3, 8, 1000000000000",
    ),
}


@pytest.mark.parametrize("case", list(CONSTRUCTORS))
def test_constructor_refuses_what_cannot_fit(case):
    make, name = CONSTRUCTORS[case]
    err = refused(make)
    assert_message(err, name, "parameters with their gradients and optimiser state")
    assert err.nbytes > 100 * GiB  # every case asks for hundreds of GiB at least
    assert err.available <= limits.available_memory() + GiB


def test_constructor_estimate_counts_training_copies():
    """The estimate is TRAINING_COPIES times the parameters' bytes, exactly as they are made."""
    layer = rnnkit.GRU(5, 7, num_layers=3, bidirectional=True, bias=False, dtype=np.float64)
    count = sum(p.size for p in layer.parameters().values())
    assert rnnkit.GRU.count_parameters(3, 5, 7, 3, 2, False) == count
    with memory_limit(count * 8 * limits.TRAINING_COPIES - 1):
        err = refused(
            lambda: rnnkit.GRU(5, 7, num_layers=3, bidirectional=True, bias=False, dtype=np.float64)
        )
    assert err.nbytes == count * 8 * limits.TRAINING_COPIES
    with memory_limit(count * 8 * limits.TRAINING_COPIES):
        rnnkit.GRU(5, 7, num_layers=3, bidirectional=True, bias=False, dtype=np.float64)
    for block, made in [
        (rnnkit.Linear.count_parameters(6, 4, True), rnnkit.Linear(6, 4)),
        (rnnkit.Embedding.count_parameters(9, 3), rnnkit.Embedding(9, 3)),
    ]:
        assert block == sum(p.size for p in made.parameters().values())


def test_model_checks_the_sum_of_its_blocks():
    """Each block of this model fits alone; all of them together do not."""
    model = rnnkit.LanguageModel(1000, 64, 128, seed=0)
    sizes = {name: p.nbytes * limits.TRAINING_COPIES for name, p in model.parameters().items()}
    total = sum(sizes.values())
    with memory_limit(total - 1):
        err = refused(lambda: rnnkit.LanguageModel(1000, 64, 128, seed=0))
    assert err.nbytes == total
    assert "LanguageModel(1000, 64, 128" in err.what


def test_override_lets_a_refused_model_be_made(monkeypatch):
    monkeypatch.setenv(limits.ENV_VAR, "1K")
    with pytest.raises(MemoryLimitError):
        rnnkit.LSTM(3, 4)
    monkeypatch.setenv(limits.ENV_VAR, "off")
    rnnkit.LSTM(3, 4)


# -- passes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("training", [False, True])
def test_forward_refuses_a_cache_that_cannot_fit(kind, training):
    layer = getattr(rnnkit, kind)(8, 512, num_layers=2).train(training)
    x = np.zeros((200, 100, 8), np.float32)  # 640 KiB of input; the cache is hundreds of MiB
    with memory_limit("64M"):
        err = refused(lambda: layer.forward(x))
    assert_message(err, f"the forward pass of {kind}(8, 512", "T=200 steps, B=100 sequences")
    assert err.nbytes == layer.memory_estimate(200, 100)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("LSTM", {}),
        ("GRU", {"num_layers": 2}),
        ("RNN", {"bidirectional": True}),
        ("LSTM", {"num_layers": 2, "bidirectional": True, "dropout": 0.2}),
    ],
)
@pytest.mark.parametrize("training", [False, True])
def test_memory_estimate_is_honest(kind, options, training):
    """The estimate is at least what a first forward (and, in training, backward) allocates,
    within 10 %, and not wildly more (the bound is what an estimate is for)."""
    layer = getattr(rnnkit, kind)(16, 64, **options).train(training)
    x = np.random.default_rng(0).standard_normal((50, 32, 16)).astype(np.float32)
    workspace.release()
    tracemalloc.start()
    try:
        y, _, cache = layer.forward(x)
        if training:
            layer.backward(np.ones_like(y), cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = layer.memory_estimate(50, 32)
    assert 0.9 * peak <= estimate <= 2.5 * peak, (estimate, peak)


def test_linear_and_embedding_outputs_are_checked():
    head = rnnkit.Linear(4, 10**5)
    x = np.zeros((64, 32, 4), np.float32)  # -> (64, 32, 100000): 780 MiB of logits
    with memory_limit("256M"):
        err = refused(lambda: head.forward(x))
    assert_message(err, "the output of Linear(4, 100000", "(64, 32, 4)")
    emb = rnnkit.Embedding(10, 4096)
    ids = np.zeros((1000, 100), np.intp)  # -> 1.5 GiB of vectors
    with memory_limit("256M"):
        err = refused(lambda: emb.forward(ids))
    assert_message(err, "the vectors of Embedding(10, 4096", "(1000, 100)")


def test_step_checks_the_state_it_makes():
    layer = rnnkit.LSTM(2, 512, num_layers=2)
    x = np.zeros((10**5, 2), np.float32)  # 800 KiB; the new state (h, c) is 800 MiB
    with memory_limit("64M"):
        err = refused(lambda: layer.step(x))
    assert_message(err, "the state of LSTM(2, 512", "B=100000")


def test_a_process_limited_to_2_gib_refuses_quickly():
    """In a process that cannot map more than 2 GiB, every oversized request is refused in
    well under a second, and the process survives to say so."""
    code = textwrap.dedent(
        """
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
        import numpy as np, rnnkit
        from rnnkit.limits import MemoryLimitError
        cases = [
            lambda: rnnkit.LSTM(10, 10**5),
            lambda: rnnkit.GRU(10**12, 10),
            lambda: rnnkit.RNN(10, 64, num_layers=10**6),
            lambda: rnnkit.Embedding(10**12, 4),
            lambda: rnnkit.LanguageModel(10**6, 128, 4096),
            lambda: rnnkit.LSTM(4, 256).forward(np.zeros((1000, 3000, 4), np.float32)),
        ]
        for make in cases:
            start = time.perf_counter()
            try:
                make()
                print("allocated")
            except MemoryLimitError:
                print("refused" if time.perf_counter() - start < 1.0 else "slow")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != limits.ENV_VAR}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout.split() == ["refused"] * 6, out.stdout + out.stderr


def test_a_cell_called_directly_checks_its_pass():
    H = 256
    params = rnnkit.cells.CellParams(np.zeros((4 * H, 2)), np.zeros((4 * H, H)), None, None)
    x, state = np.zeros((100, 100, 2)), (np.zeros((100, H)),) * 2  # the cache: 215 MiB
    with memory_limit("64M"):
        err = refused(lambda: rnnkit.cells.LSTMCell().forward(x, state, params))
    assert_message(err, "the forward pass of LSTMCell() over x of shape (100, 100, 2), H=256")
