"""Helpers the benchmark scripts share: block timing, relative errors, threads, machine facts.

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on the
path). Nothing here imports torch or any other peer, so a subprocess that measures one
implementation loads only that implementation's libraries.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Seconds of rest before each timing block: NumPy's OpenBLAS, torch's OpenMP and XLA's Eigen
#: threads busy-wait for a while after each call, and on 2 cores they slow down whatever runs
#: next (see :func:`block_times`).
BLOCK_PAUSE = 0.2


# -- timing --------------------------------------------------------------------------------------


def block_times(
    fns: Sequence[Callable[[], Any]],
    repeats: int | Sequence[int],
    warmup: int | Sequence[int],
    rounds: int,
    pause: float = BLOCK_PAUSE,
    budget: float = math.inf,
) -> list[list[float]]:
    """Wall times of each function, timed in blocks, in ``rounds`` alternating rounds.

    Each function runs its warm-up and its repeats as one block, so that no library runs while
    another's thread pool is still spinning: NumPy's OpenBLAS and torch's OpenMP threads
    busy-wait after each call, and on 2 cores timing two libraries in strict alternation slows
    whichever runs second (torch by up to 3x here). Alternating whole blocks over a few rounds
    still lets all of them see the same drift in machine load. ``repeats`` and ``warmup`` are
    one number for all functions or one per function. A block stops early, after at least one
    timed run, once it has lasted ``budget`` seconds (a machine that got busy after the repeat
    counts were chosen must not stretch the run without end). Returns every timed run, per
    function.
    """
    n = len(fns)
    reps = [repeats] * n if isinstance(repeats, int) else list(repeats)
    warms = [warmup] * n if isinstance(warmup, int) else list(warmup)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, rep, warm, times in zip(fns, reps, warms, samples, strict=True):
            time.sleep(pause)  # let the other libraries' spinning threads go to sleep
            block_start = time.perf_counter()
            for _ in range(warm):
                fn()
            for i in range(rep):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
                if i + 1 < rep and time.perf_counter() - block_start > budget:
                    break
    return samples


def median_times(
    fns: Sequence[Callable[[], Any]],
    repeats: int | Sequence[int],
    warmup: int | Sequence[int],
    rounds: int,
    pause: float = BLOCK_PAUSE,
) -> list[float]:
    """The median of :func:`block_times` for each function."""
    return [statistics.median(t) for t in block_times(fns, repeats, warmup, rounds, pause)]


def adaptive_repeats(estimate: float, target: float, least: int = 1, most: int = 1000) -> int:
    """Runs of ``estimate`` seconds each that fill a block of about ``target`` seconds."""
    if estimate <= 0:
        return most
    return max(least, min(most, math.ceil(target / estimate)))


# -- agreement -----------------------------------------------------------------------------------


def relative_error(actual: Any, expected: Any) -> float:
    """max |actual - expected| / max |expected| (in float64); inf when the shapes differ."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if b.size == 0:
        return 0.0
    scale = max(float(np.abs(b).max()), np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max()) / scale


# -- threads and BLAS ----------------------------------------------------------------------------


def cores() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def blas_threads() -> int | None:
    """The thread count of NumPy's BLAS now, or None when it cannot be read."""
    from rnnkit.runtime import threads

    return threads.blas_threads()


def blas_name() -> str:
    """NumPy's BLAS: name, version and, for OpenBLAS, the kernel family it chose for this CPU."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy < 1.26 has no mode="dicts"
        return "unknown"
    name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    from rnnkit.runtime import threads

    pools = [p for p in threads.thread_pools() if p["user_api"] == "blas"]
    # a wheel's BLAS sits in numpy.libs/ or numpy/.libs/; a system NumPy's elsewhere
    ours = [p for p in pools if f"{os.sep}numpy" in str(p.get("filepath", ""))] or pools
    core = ours[0].get("architecture") if ours else None
    return f"{name} (core {core})" if core else name


# -- machine -------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, with the widest vector extension it reports."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    for ext in ("avx512f", "avx2", "avx"):
        if ext in flags:
            return f"{model} ({ext.removesuffix('f').upper()})"
    return model


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its
    finished children): the difference of two readings is what other processes used."""
    import resource

    own = sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return math.nan, own
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK"), own


def others_load(start: tuple[float, float], wall: float) -> float:
    """Cores that other processes kept busy on average since ``start`` (:func:`cpu_seconds`)."""
    busy, own = cpu_seconds()
    return max(0.0, (busy - start[0]) - (own - start[1])) / wall


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
