"""rnnkit.keep_freed_memory: takes effect with glibc (training steps then stop page-faulting),
refuses bad arguments, and is left to the application (``import rnnkit`` does not call it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rnnkit

SCRIPT = """
import resource, numpy as np, rnnkit
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


def _faults_per_step(keep: bool) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(keep=keep)], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def test_training_steps_stop_page_faulting():
    if not rnnkit.keep_freed_memory():  # also sets it in this process: harmless
        pytest.skip("not glibc's allocator")
    kept = _faults_per_step(True)
    assert kept < 10, kept  # every array reused from the heap
    assert _faults_per_step(False) > 10 * max(kept, 1)  # glibc's default: fresh pages each step


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_bad_argument(value):
    with pytest.raises(ValueError, match="top_pad must be a non-negative int"):
        rnnkit.keep_freed_memory(value)
