"""What recycling the large arrays saves: page faults and time of a training step.

Each configuration runs in three fresh interpreters: 'none' (rnnkit's workspace off,
``rnnkit.runtime.workspace.limit(0)``, and glibc's default allocator settings: every step gets fresh
pages), 'kept' (workspace off, ``rnnkit.keep_freed_memory()`` first, as the ``rnnkit`` command
calls it) and 'workspace' (rnnkit as it comes: :mod:`rnnkit.runtime.workspace` recycles the large
arrays, glibc's defaults for the rest). Each times ``--steps`` LSTM training steps (forward +
backward, float32, T = 100) after 5 warm-up steps and prints the median time and the minor page
faults per step. A plain script is the case that matters: a process that already holds a
large, fragmented heap (the benchmark suite, with torch and JAX loaded) page-faults less to
begin with.

Run from the repository root::

    python benchmarks/bench_allocator.py [--steps N]

Shapes: B = batch, D = input size, H = hidden size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SIZES = ((16, 32, 64), (32, 64, 128), (64, 256, 256), (20, 650, 650))

CHILD = """
import json, resource, statistics, sys, time
import numpy as np, rnnkit
B, D, H, mode, steps = json.loads(sys.argv[1])
if mode != "workspace":
    rnnkit.runtime.workspace.limit(0)
if mode == "kept":
    assert rnnkit.keep_freed_memory()
layer = rnnkit.LSTM(D, H, seed=0)
rng = np.random.default_rng(0)
x = rng.standard_normal((100, B, D)).astype(np.float32)
dy = rng.standard_normal((100, B, H)).astype(np.float32)
def step():
    y, s, cache = layer.forward(x)
    layer.backward(dy, cache)
for _ in range(5):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps([statistics.median(times), faults / steps]))
"""


MODES = ("none", "kept", "workspace")


def run(B: int, D: int, H: int, mode: str, steps: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([B, D, H, mode, steps])],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, faults = json.loads(out.stdout)
    return seconds, faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    head = " | ".join(f"{m} ms | faults/step" for m in MODES)
    print(f"| B | D | H | {head} | workspace / none |")
    print("| ---: | ---: | ---: |" + " ---: | ---: |" * len(MODES) + " ---: |")
    for B, D, H in SIZES:
        runs = [run(B, D, H, mode, args.steps) for mode in MODES]
        cells = " | ".join(f"{t * 1e3:.2f} | {f:.0f}" for t, f in runs)
        print(f"| {B} | {D} | {H} | {cells} | {runs[2][0] / runs[0][0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
