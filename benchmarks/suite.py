"""The benchmark suite of the performance issue: one command, one Markdown and one CSV table.

Run from the repository root::

    python benchmarks/suite.py [--quick] [--out DIR] [--sections ...] [--cells ...] [--sizes ...]

writes ``DIR/results.md`` and ``DIR/results.csv`` (default DIR ``benchmarks/results/``);
``--quick`` is a smoke run on tiny sizes (well under a minute), written by default to
``benchmarks/results/quick/`` so that it never overwrites a full run's tables. The other
options restrict a run to some sections, cells, sizes or implementations. What it measures, in
one run:

1. **Size matrix**: T = 100, (B, D, H) in :data:`SIZES`, RNN (tanh), LSTM and GRU (reset-after,
   rnnkit's default and PyTorch's form), float32, two modes. *Training step*: forward from a
   zero state, then backward from a random upstream gradient R to dL/dx and every parameter
   gradient. *Inference*: forward only (torch under ``torch.no_grad()``, rnnkit in eval mode;
   rnnkit's forward has no way to skip saving its cache, so it is the plain forward). The
   implementations are those of ``benchmarks/peers.py``: rnnkit (default loops: compiled where
   the extension has the cell), PyTorch, the NumPy reference loops, and the peers JAX
   (``lax.scan``, jit-compiled ahead of time, ``jax.vjp``) and thinc (LSTM only) when they
   import: otherwise their cells read "not installed". Before timing, every implementation is
   checked against rnnkit with the same weights in float64 on T = :data:`CHECK_T` (thinc:
   float32, it has no float64), to ``peers.F64_RTOL`` (``peers.F32_RTOL``); one that fails is
   not timed. The float32 results of the timed sizes are compared as well ("f32 err").
2. **Streaming**: ``layer.step(x_t, state)`` at B = 1 against ``torch.nn.LSTMCell`` /
   ``GRUCell`` / ``RNNCell`` under ``torch.no_grad()`` and a jitted JAX step, D =
   :data:`STREAM_D` (a streaming signal has few features; the recurrence dominates),
   H in :data:`STREAM_H`; microseconds per step, each step's output ready before the next.
3. **Peak memory of a training step** (LSTM at :data:`MEMORY_SIZES`): each implementation in
   a fresh subprocess builds its layer and inputs and runs one training step (warm-up; JAX
   compiles); then, with the previous results freed, it reads VmRSS (the baseline), resets the
   high-water mark (``/proc/self/clear_refs`` = 5) and runs one more step: the peak growth is
   VmHWM - baseline, the results of the step included. glibc's mmap threshold is fixed at
   128 KiB there (``GLIBC_TUNABLES``), so that freed arrays go back to the system and the
   number measures live memory, not the allocator's caching (rnnkit's own workspace,
   :mod:`rnnkit.runtime.workspace`, is emptied before the baseline for the same reason).
4. **Import time** (fresh interpreters, ``time.perf_counter`` around ``import X`` inside the
   process, interleaved; min and median) and **installed size**: rnnkit and its required
   dependencies but NumPy against torch and its dependencies, from ``importlib.metadata``
   (``dist.files`` sizes; an editable install is measured from its package folder; compiled
   ``.pyc`` files are left out of every count).
5. **Achieved GFLOP/s** of the training step: matrix-multiply FLOPs forward 2·T·B·G·(D+H)
   with G = gates·H, backward twice that, against the machine's float32 matrix-multiply peak
   measured in this run (N x N matmul via torch, NumPy and, when installed, JAX, on all
   cores, at the start and at the end; the fastest run of each, and the highest of them is the
   peak). JAX is there because XLA's GEMM uses AVX-512 where torch's MKL and NumPy's OpenBLAS
   (its "Haswell" kernels) run AVX2 on an AMD CPU: without it the "peak" is half the machine's.

Timing: for each configuration, an untimed call per implementation warms it up (JAX compiles
before it) and sets the repeat count so that a block lasts about ``BLOCK_TARGET`` seconds (at
least 2 runs; a block stops after 4 x ``BLOCK_TARGET`` if the machine got slower); then the
implementations run in blocks that alternate over ``ROUNDS`` rounds (see
``common.block_times`` for why blocks); the median is reported, and ratio = rnnkit / peer
(< 1: rnnkit faster). The machines are noisy and shared: compare ratios, not absolute times,
and read the 'others' column, the cores other processes kept busy while a row was timed (from
``/proc/stat``): torch's OpenMP threads, which meet at a barrier at every step, slow down by
up to 100x when another process takes a core.

Threads: torch uses ``torch.set_num_threads(cores)``. rnnkit's NumPy BLAS uses
``--blas-threads`` threads, default the cores, OpenBLAS's own default and so the library's
(with the compiled loops, BLAS runs only the large products around them, which two threads
speed up: LSTM 64x256x256 2.06 -> 1.34 times torch's time, GRU 1.01 -> 0.73, measured
2026-11-22; the ``rnnkit`` command keeps 1 for the NumPy loops' per-step products and for
reproducible documented results; ``--blas-threads 1`` measures that). That BLAS runs the input
projection and the weight gradients around the loops, the whole of the NumPy reference, and the
numpy-ref rows. rnnkit's compiled loops have their own threads (``rnnkit.runtime.kernels``, default:
all cores). JAX and thinc keep their defaults. The report's header records all of it.

At the end, the report evaluates the issue's acceptance targets (:func:`targets`).

Shapes: T = time steps, B = batch, D = input size, H = hidden size, G = gates * H.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import common
import peers
from peers import Problem, Unavailable
from suite_report import (
    MODE_NAMES,
    MODES,
    Measurement,
    MiB,
    Report,
    Settings,
    derived_rows,
    markdown,
    write_csv,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEED = 0
T_FULL = 100
#: (B, D, H) of the size matrix.
SIZES = ((1, 64, 128), (16, 32, 64), (32, 64, 128), (64, 256, 256), (20, 650, 650))
SIZES += ((128, 512, 512),)
CHECK_T = 16  # time steps of the float64 check
STREAM_D = 64
STREAM_H = (128, 512)
STREAM_INPUTS = 64  # distinct inputs the streaming loop cycles through
MEMORY_SIZES = ((64, 256, 256), (128, 512, 512))  # (B, D, H), LSTM, T = 100
MEMORY_IMPLS = ("rnnkit", "torch", "numpy-ref", "jax", "thinc")
IMPORTS = ("numpy", "rnnkit", "torch", "jax")
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=131072"
BLOCK_TARGET = 0.5  # seconds of one timing block
ROUNDS = 2  # alternating rounds of blocks
SECTIONS = ("matrix", "stream", "memory", "import", "peak")


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    sizes = tuple(args.sizes) if args.sizes else ((3, 8, 16),) if quick else SIZES
    return Settings(
        quick=quick,
        T=args.T or (8 if quick else T_FULL),
        sizes=sizes,
        cells=tuple(args.cells or peers.CELLS),
        impls=("rnnkit", *(i for i in peers.IMPLS[1:] if i in (args.impls or peers.IMPLS))),
        stream_h=(16,) if quick else STREAM_H,
        stream_d=8 if quick else STREAM_D,
        memory_sizes=((4, 8, 16),) if quick else MEMORY_SIZES,
        block_target=0.02 if quick else BLOCK_TARGET,
        rounds=ROUNDS,
        pause=0.01 if quick else common.BLOCK_PAUSE,
        stream_sample=0.005 if quick else 0.05,
        import_reps=1 if quick else 7,
        peak_n=256 if quick else 2048,
        blas_threads=args.blas_threads or common.cores(),
        keep_freed_memory=args.keep_freed_memory,
        sections=tuple(args.sections or SECTIONS),
        check_T=CHECK_T,
    )


_START = time.perf_counter()


def progress(text: str) -> None:
    print(f"[{time.perf_counter() - _START:6.0f} s] {text}", file=sys.stderr, flush=True)


# -- threads -------------------------------------------------------------------------------------


def set_threads(blas_threads: int, torch_too: bool = True) -> None:
    """The thread settings of the whole run and of every memory subprocess (which imports
    torch only to measure it)."""
    from rnnkit.runtime.threads import set_blas_threads

    set_blas_threads(blas_threads)
    if not torch_too:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(common.cores())


# -- 1. the size matrix --------------------------------------------------------------------------


def inputs(problem: Problem, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, D) and the upstream gradient R (T, B, H), random normal."""
    rng = np.random.default_rng(SEED + 1)
    x = rng.standard_normal((problem.T, problem.B, problem.D)).astype(dtype)
    R = rng.standard_normal((problem.T, problem.B, problem.H)).astype(dtype)
    return x, R


def run_mode(runner: peers.Runner, mode: str) -> Callable[[], Any]:
    return runner.train if mode == "train" else runner.infer


def check(problem: Problem, impls: Sequence[str], mode: str) -> dict[str, Measurement]:
    """Every implementation against rnnkit in float64 on T <= CHECK_T (thinc: float32)."""
    small = problem._replace(T=min(problem.T, CHECK_T))
    layer = peers.rnnkit_layer(small.cell, small.D, small.H, np.float64, SEED)
    params = layer.state_dict()
    x, R = inputs(small, np.float64)
    ref = peers.runner("rnnkit", small, params, x, R)
    want = ref.numpy(run_mode(ref, mode)())
    out = {"rnnkit": Measurement()}
    for name in impls[1:]:
        m = out[name] = Measurement()
        f32 = name == "thinc"
        try:
            xs = (x.astype(np.float32), R.astype(np.float32)) if f32 else (x, R)
            r = peers.runner(name, small, params, *xs)
            r.prepare(mode)
            m.check_err, where = peers.compare(r.numpy(run_mode(r, mode)()), want)
        except Unavailable as exc:
            m.status = str(exc)
            continue
        except Exception as exc:  # a peer's failure must not end the run
            m.status = f"error: {type(exc).__name__}: {exc}"
            continue
        tol = peers.F32_RTOL if f32 else peers.F64_RTOL
        if not m.check_err <= tol:
            m.status = f"check failed ({m.check_err:.1e} at {where})"
    if "torch" in out:  # rnnkit's own error is its distance to torch
        out["rnnkit"].check_err = out["torch"].check_err
    return out


def measure_config(problem: Problem, s: Settings, report: Report) -> None:
    """Check, then time every implementation on one (cell, size), both modes."""
    layer32 = peers.rnnkit_layer(problem.cell, problem.D, problem.H, np.float32, SEED)
    report.loops[problem.cell] = peers.loops_of(layer32)
    params = layer32.state_dict()
    x, R = inputs(problem, np.float32)
    size = (problem.B, problem.D, problem.H)
    for mode in MODES:
        progress(f"{MODE_NAMES[mode]} {problem}")
        results = check(problem, s.impls, mode)
        if "numpy-ref" in results and peers.loops_of(layer32) == "numpy":
            results["numpy-ref"] = Measurement("= rnnkit (no compiled loops)")
        report.matrix[(mode, problem.cell, size)] = results
        runners: dict[str, peers.Runner] = {}
        for name, m in results.items():
            if m.status == "ok":
                try:
                    runners[name] = peers.runner(name, problem, params, x, R)
                    runners[name].prepare(mode)
                except Exception as exc:
                    m.status = f"error: {type(exc).__name__}: {exc}"
        start, cpu0 = time.perf_counter(), common.cpu_seconds()
        time_runners(runners, results, mode, s)
        wall = time.perf_counter() - start
        report.others[(mode, problem.cell, size)] = common.others_load(cpu0, wall)


def time_runners(
    runners: dict[str, peers.Runner], results: dict[str, Measurement], mode: str, s: Settings
) -> None:
    """Warm-up and calibration, float32 agreement with rnnkit, then the alternating blocks."""
    fns, estimates, reference = {}, {}, None
    for name, r in runners.items():
        fn = run_mode(r, mode)
        gc.collect()
        start = time.perf_counter()
        out = fn()
        estimates[name] = time.perf_counter() - start
        result = r.numpy(out)
        if name == "rnnkit":
            reference = result
        elif reference is not None:
            results[name].f32_err = peers.compare(result, reference)[0]
        del out, result
        if estimates[name] < 0.2:  # the first call may have paid for allocations
            start = time.perf_counter()
            fn()
            estimates[name] = time.perf_counter() - start
        fns[name] = fn
    del reference
    if not fns:
        return
    names = list(fns)
    repeats = [common.adaptive_repeats(estimates[n], s.block_target, least=2) for n in names]
    warmup = [1 if estimates[n] < 0.1 else 0 for n in names]
    gc.collect()
    samples = common.block_times(
        [fns[n] for n in names], repeats, warmup, s.rounds, s.pause, budget=4 * s.block_target
    )
    for name, times in zip(names, samples):
        results[name].seconds = statistics.median(times)
        results[name].samples = len(times)


def run_matrix(s: Settings, report: Report) -> None:
    for cell in s.cells:
        for B, D, H in s.sizes:
            try:
                measure_config(Problem(cell, s.T, B, D, H), s, report)
            except Exception as exc:  # rnnkit itself failed: say so, go on with the others
                status = f"error: {type(exc).__name__}: {exc}"
                for mode in MODES:
                    report.matrix.setdefault((mode, cell, (B, D, H)), {})
                    report.matrix[(mode, cell, (B, D, H))]["rnnkit"] = Measurement(status)
    for (mode, cell, (B, D, H)), results in report.matrix.items():
        rnnkit_s = results["rnnkit"].seconds
        problem = Problem(cell, s.T, B, D, H)
        for name, m in results.items():
            ratio = rnnkit_s / m.seconds if rnnkit_s and m.seconds else None
            busy = report.others.get((mode, cell, (B, D, H)), math.nan)
            note = f"{m.samples} runs; {peers.flops(problem, mode) / 1e9:.4g} GFLOP; "
            note += f"other processes {busy:.2f} cores"
            report.row("matrix", "time", name, problem, m, mode=mode, ratio=ratio, note=note)


# -- 2. streaming --------------------------------------------------------------------------------


def run_stream(s: Settings, report: Report) -> None:
    names = [n for n in peers.STREAM_IMPLS if n in s.impls]
    for cell in s.cells:
        for H in s.stream_h:
            progress(f"streaming {cell} D={s.stream_d} H={H}")
            start, cpu0 = time.perf_counter(), common.cpu_seconds()
            report.stream[(cell, H)] = measure_stream(cell, s.stream_d, H, names, s)
            busy = common.others_load(cpu0, time.perf_counter() - start)
            report.others[("step", cell, (1, s.stream_d, H))] = busy
            rnnkit_s = report.stream[(cell, H)]["rnnkit"].seconds
            for name, m in report.stream[(cell, H)].items():
                r = rnnkit_s / m.seconds if rnnkit_s and m.seconds else None
                problem = Problem(cell, 1, 1, s.stream_d, H)
                note = f"{m.samples} steps; other processes {busy:.2f} cores"
                report.row(
                    "stream", "time per step", name, problem, m, mode="step", ratio=r, note=note
                )


def measure_stream(cell: str, D: int, H: int, names: Sequence[str], s: Settings) -> dict:
    """Check each streaming implementation against rnnkit's forward in float64, then time it."""
    layer = peers.rnnkit_layer(cell, D, H, np.float64, SEED)
    params64 = layer.state_dict()
    rng = np.random.default_rng(SEED + 2)
    xs64 = rng.standard_normal((CHECK_T, 1, D))
    want = layer.forward(xs64)[0]  # (T, 1, H)
    params32 = {k: v.astype(np.float32) for k, v in params64.items()}
    xs32 = list(rng.standard_normal((STREAM_INPUTS, 1, D)).astype(np.float32))
    results, streamers = {}, {}
    for name in names:
        m = results[name] = Measurement()
        try:
            m.check_err = common.relative_error(
                peers.streamer(name, cell, params64, list(xs64)).outputs(xs64), want
            )
            if not m.check_err <= peers.F64_RTOL:
                m.status = f"check failed ({m.check_err:.1e})"
                continue
            streamers[name] = peers.streamer(name, cell, params32, xs32)
        except Unavailable as exc:
            m.status = str(exc)
        except Exception as exc:
            m.status = f"error: {type(exc).__name__}: {exc}"
    steps = {}
    for name, st in streamers.items():
        st.run(100)  # warm-up
        start = time.perf_counter()
        st.run(100)
        per_step = (time.perf_counter() - start) / 100
        steps[name] = common.adaptive_repeats(per_step, s.stream_sample, least=10, most=10**6)
    if streamers:
        order = list(streamers)
        fns = [lambda st=streamers[n], k=steps[n]: st.run(k) for n in order]
        samples = common.block_times(fns, 5, 1, s.rounds, s.pause, budget=20 * s.stream_sample)
        for name, times in zip(order, samples):
            results[name].seconds = statistics.median(times) / steps[name]
            results[name].samples = len(times) * steps[name]
    return results


# -- 3. peak memory ------------------------------------------------------------------------------


def _status_kib() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def memory_child(spec: str) -> None:
    """In a fresh interpreter: the peak RSS growth of one training step (see the docstring)."""
    job = json.loads(spec)
    set_threads(job["blas_threads"], torch_too=job["impl"] == "torch")
    problem = Problem(*job["problem"])
    layer = peers.rnnkit_layer(problem.cell, problem.D, problem.H, np.float32, SEED)
    x, R = inputs(problem, np.float32)
    try:
        r = peers.runner(job["impl"], problem, layer.state_dict(), x, R)
        r.prepare("train")
        out = r.train()  # warm-up: lazy initialisation, JAX's compilation
    except Unavailable as exc:
        print(json.dumps({"status": str(exc)}))
        return
    del out
    gc.collect()
    if job["impl"] in ("rnnkit", "numpy-ref"):
        import rnnkit

        rnnkit.runtime.workspace.release()  # its recycled buffers count as the step's memory
    base = _status_kib()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    out = r.train()
    peak = _status_kib()["VmHWM"]
    print(json.dumps({"status": "ok", "baseline_kib": base, "peak_kib": peak}))
    del out


def run_memory(s: Settings, report: Report) -> None:
    env = {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES}
    if not os.path.exists("/proc/self/clear_refs"):
        report.memory[((0, 0, 0), "all")] = {"status": "needs Linux /proc"}
        return
    names = [n for n in MEMORY_IMPLS if n in s.impls]
    for B, D, H in s.memory_sizes:
        problem = Problem("LSTM", s.T, B, D, H)
        checked = check(problem, names, "train")
        for name in names:
            progress(f"memory {name} {problem}")
            if checked[name].status != "ok":
                report.memory[((B, D, H), name)] = {"status": checked[name].status}
                continue
            job = {"impl": name, "problem": list(problem), "blas_threads": s.blas_threads}
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-child", json.dumps(job)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=False,
            )
            lines = proc.stdout.strip().splitlines()
            if proc.returncode == 0 and lines:
                result = json.loads(lines[-1])
            else:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                result = {"status": f"error: {tail[:120]}"}
            report.memory[((B, D, H), name)] = result
            growth = None
            if result["status"] == "ok":
                growth = (result["peak_kib"] - result["baseline_kib"]) * 1024 / MiB
            report.row(
                "memory",
                "peak RSS growth of a training step",
                name,
                problem,
                mode="train",
                status=result["status"],
                value=growth,
                unit="MiB",
                note=f"results of the step: {peers.result_bytes(problem) / MiB:.1f} MiB",
            )


# -- 4. import time and installed size -----------------------------------------------------------

IMPORT_CODE = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def run_imports(s: Settings, report: Report) -> None:
    progress("import times")
    times: dict[str, list[float] | str] = {m: [] for m in IMPORTS}
    for _ in range(s.import_reps):
        for module in IMPORTS:
            if isinstance(times[module], str):
                continue
            proc = subprocess.run(
                [sys.executable, "-c", IMPORT_CODE.format(module)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            if proc.returncode != 0:
                times[module] = "not installed" if "ModuleNotFound" in proc.stderr else "error"
            else:
                times[module].append(float(proc.stdout.strip().splitlines()[-1]))
    report.imports = times
    for module, t in times.items():
        report.row(
            "import",
            "import time (median)",
            module,
            status="ok" if isinstance(t, list) else t,
            value=statistics.median(t) if isinstance(t, list) else None,
            unit="s",
            note=f"min {min(t):.3f} s of {len(t)}" if isinstance(t, list) else "",
        )
    progress("installed sizes")
    try:
        import packaging.requirements  # noqa: F401  (installed_size reads requirements with it)
    except ImportError:
        return
    for top, exclude in (("rnnkit", {"numpy"}), ("torch", {"numpy"}), ("jax", {"numpy"})):
        try:
            report.sizes[top] = installed_size(top, exclude)
        except importlib.metadata.PackageNotFoundError:
            continue
        total, parts = report.sizes[top]
        report.row(
            "size",
            "installed size with dependencies",
            top,
            status="ok",
            value=total / MiB,
            unit="MiB",
            note="; ".join(f"{n} {b / MiB:.2f}" for n, b in parts),
        )


def _dist_bytes(dist: importlib.metadata.Distribution) -> int:
    """Installed bytes of one distribution, compiled .pyc files left out. An editable install
    (PEP 610's direct_url.json says so) counts its package folders as a wheel would hold them:
    without C sources."""
    total = 0
    for f in dist.files or ():
        if str(f).endswith(".pyc"):
            continue
        if f.size is not None:
            total += f.size
        else:
            path = Path(dist.locate_file(f))
            total += path.stat().st_size if path.is_file() else 0
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if not direct.get("dir_info", {}).get("editable"):
        return total
    for name in (dist.read_text("top_level.txt") or dist.metadata["Name"]).split():
        spec = importlib.util.find_spec(name.replace("-", "_"))
        for root in (spec.submodule_search_locations or []) if spec else []:
            for folder, dirs, names in os.walk(root):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for n in names:
                    if not n.endswith((".pyc", ".c", ".h")):
                        total += os.path.getsize(os.path.join(folder, n))
    return total


def installed_size(top: str, exclude: Iterable[str]) -> tuple[int, list[tuple[str, int]]]:
    """Bytes of ``top`` and its required dependencies (recursively, markers evaluated, no
    extras), leaving out ``exclude``; with the bytes of each distribution."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo, parts = {canonicalize_name(e) for e in exclude}, [top], []
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        parts.append((dist.metadata["Name"], _dist_bytes(dist)))
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sum(b for _, b in parts), parts


# -- 5. matrix-multiply peak ---------------------------------------------------------------------


def run_peak(s: Settings, report: Report, when: str) -> None:
    progress(f"matrix-multiply peak ({when})")
    n, cores = s.peak_n, common.cores()
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    fns: dict[str, Callable[[], Any]] = {}
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns[f"torch, {torch.get_num_threads()} threads"] = lambda: torch.mm(ta, tb)
    except ImportError:
        pass
    try:
        jax = peers.import_jax()
    except Unavailable:
        pass
    else:  # XLA's own AVX-512 GEMM: MKL (torch) and OpenBLAS (Haswell) use AVX2 on this AMD
        ja, jb = jax.numpy.asarray(a), jax.numpy.asarray(b)
        matmul = jax.jit(lambda a, b: a @ b).lower(ja, jb).compile()
        fns["jax, XLA's default threads"] = lambda: matmul(ja, jb).block_until_ready()
    from rnnkit.runtime.threads import set_blas_threads

    def numpy_mm(threads: int) -> Callable[[], Any]:
        def run() -> Any:
            set_blas_threads(threads)  # a few microseconds; the product takes milliseconds
            return a @ b

        return run

    for threads in sorted({cores, s.blas_threads}, reverse=True):
        fns[f"numpy, {threads} thread{'s' if threads > 1 else ''}"] = numpy_mm(threads)
    names = list(fns)
    estimates = []
    for name in names:
        fns[name]()
        start = time.perf_counter()
        fns[name]()
        estimates.append(time.perf_counter() - start)
    repeats = [common.adaptive_repeats(e, s.block_target, least=3) for e in estimates]
    samples = common.block_times([fns[k] for k in names], repeats, 1, s.rounds, s.pause)
    set_blas_threads(s.blas_threads)
    for name, t in zip(names, map(min, samples)):  # a peak: the best run, not the typical one
        gflops = 2.0 * n**3 / t / 1e9
        report.peaks[f"{name}, {when}"] = gflops
        report.row(
            "peak",
            f"float32 {n}x{n} matmul",
            name,
            status="ok",
            value=gflops,
            unit="GFLOP/s",
            note=when,
        )


# -- the header ----------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return proc.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain") else "")


def header(s: Settings) -> list[str]:
    import rnnkit
    from rnnkit.runtime import kernels

    try:
        import torch

        torch_threads = (
            f"{torch.get_num_threads()} (set), interop {torch.get_num_interop_threads()}"
        )
    except ImportError:
        torch_threads = "not installed"
    env = ", ".join(
        f"{v}={os.environ.get(v, 'unset')}"
        for v in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "RNNKIT_KERNELS",
            "RNNKIT_NUM_THREADS",
            "XLA_FLAGS",
        )
    )
    isa = kernels.isa() or f"none: {kernels.reason()}"
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"commit: {_git()}",
        f"CPU: {common.cpu_model()}, {common.cores()} cores usable "
        f"(os.cpu_count() = {os.cpu_count()}); load average at start {common.load_average()}",
        f"python {platform.python_version()}, rnnkit {rnnkit.__version__}, numpy {np.__version__}"
        f", torch {_version('torch')}, jax {_version('jax')} (jaxlib {_version('jaxlib')}), "
        f"thinc {_version('thinc')}",
        f"NumPy BLAS: {common.blas_name()}",
        f"threads: rnnkit's NumPy BLAS {common.blas_threads()} (set, --blas-threads); rnnkit "
        f"compiled loops up to {kernels.get_num_threads()}; torch {torch_threads}; JAX/XLA and "
        f"thinc (blis {_version('blis')}) at their defaults; environment: {env}",
        f"rnnkit kernels: ISA {isa}",
        "allocator: "
        + (
            "rnnkit.keep_freed_memory() (--keep-freed-memory): freed memory kept for reuse"
            if s.keep_freed_memory
            else "glibc's defaults (freed arrays go back to the system; see --keep-freed-memory)"
        )
        + "; rnnkit's workspace recycles its large arrays (limit "
        f"{rnnkit.runtime.workspace.limit() >> 20} MiB, rnnkit.runtime.workspace)",
        f"timing: median of blocks alternating over {s.rounds} rounds, each block about "
        f"{s.block_target} s after a warm-up (one untimed call per implementation and "
        f"configuration first); ratio = rnnkit / peer (< 1: rnnkit faster)",
        f"checks: float64 against rnnkit on T = {min(s.T, CHECK_T)} (thinc: float32), relative "
        f"error max|a - b| / max|b| <= {peers.F64_RTOL:.0e} ({peers.F32_RTOL:.0e} in float32); "
        f"the float32 results of the timed size against rnnkit's: 'f32 err' (expected <= "
        f"{peers.F32_TIMED_RTOL:.0e})",
    ]


# -- command line --------------------------------------------------------------------------------


def size_arg(text: str) -> tuple[int, int, int]:
    try:
        B, D, H = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is BxDxH, e.g. 32x64x128, got {text!r}") from None
    if min(B, D, H) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return B, D, H


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default benchmarks/results, with --quick benchmarks/results/quick)",
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="run only these")
    parser.add_argument("--cells", nargs="+", choices=peers.CELLS, help="only these cells")
    parser.add_argument("--sizes", nargs="+", type=size_arg, help="matrix sizes BxDxH")
    parser.add_argument("--impls", nargs="+", choices=peers.IMPLS, help="rnnkit and these")
    parser.add_argument("--T", type=int, help="time steps (default 100, quick 8)")
    parser.add_argument(
        "--blas-threads",
        type=int,
        help="threads of NumPy's BLAS (default: the cores, OpenBLAS's own default)",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call rnnkit.keep_freed_memory() first, as the rnnkit command does (glibc keeps "
        "freed arrays for reuse instead of page-faulting fresh ones every step)",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    s = settings_from(args)
    out = args.out or RESULTS / ("quick" if s.quick else "")
    start, cpu0 = time.perf_counter(), common.cpu_seconds()
    set_threads(s.blas_threads)
    if s.keep_freed_memory:
        import rnnkit

        rnnkit.keep_freed_memory()
    report = Report(header=header(s))
    if "peak" in s.sections:
        run_peak(s, report, "start")
    if "matrix" in s.sections:
        run_matrix(s, report)
    if "stream" in s.sections:
        run_stream(s, report)
    if "memory" in s.sections:
        run_memory(s, report)
    if "import" in s.sections:
        run_imports(s, report)
    if "peak" in s.sections:
        run_peak(s, report, "end")
    wall = time.perf_counter() - start
    derived_rows(s, report)
    text = markdown(s, report, wall, common.others_load(cpu0, wall))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text + "\n")
    write_csv(out / "results.csv", report.csv_rows)
    print(text)
    progress(f"wrote {out / 'results.md'} and {out / 'results.csv'}")


if __name__ == "__main__":
    main()
