"""Training steps stop page-faulting: by default through rnnkit's workspace
(rnnkit.runtime.workspace), which recycles the large arrays; without it (limit 0) through
rnnkit.keep_freed_memory, which takes effect with glibc, refuses bad arguments, and is left to
the application (``import rnnkit`` does not call it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rnnkit

SCRIPT = """
import resource, numpy as np, rnnkit
rnnkit.runtime.workspace.limit({limit})
if {keep}:
    assert rnnkit.keep_freed_memory()
layer = rnnkit.LSTM(32, 64, seed=0)
x = np.ones((100, 16, 32), np.float32)
dy = np.ones((100, 16, 64), np.float32)
def step():
    y, s, cache = layer.forward(x)
    layer.backward(dy, cache)
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_step(keep: bool, limit: int | None = None) -> float:
    script = SCRIPT.format(keep=keep, limit=limit)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(out.stdout)


def test_training_steps_stop_page_faulting():
    if not rnnkit.keep_freed_memory():  # also sets it in this process: harmless
        pytest.skip("not glibc's allocator")
    recycled = _faults_per_step(False)  # the workspace, with glibc's defaults
    assert recycled < 10, recycled
    kept = _faults_per_step(True, limit=0)  # no workspace: glibc keeps the freed memory
    assert kept < 10, kept
    # neither: glibc's defaults give fresh pages to every step
    assert _faults_per_step(False, limit=0) > 10 * max(recycled, kept, 1)


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_bad_argument(value):
    with pytest.raises(ValueError, match="top_pad must be a non-negative int"):
        rnnkit.keep_freed_memory(value)
