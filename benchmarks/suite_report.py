"""The record of one run of benchmarks/suite.py and its rendering: Markdown, CSV, and the
acceptance targets of the performance issue (:func:`targets`).

Shapes: T = time steps, B = batch, D = input size, H = hidden size.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import peers
from peers import Problem

MODES = ("train", "infer")
MODE_NAMES = {"train": "training step", "infer": "inference"}
MiB = 2**20
NOISY = 0.2  # cores kept busy by other processes above which a timing is not to be trusted
THINC_NOTE = (
    "thinc 9.1.1's LSTM backward (`backprop_lstm` of its NumPy ops) is wrong: it accumulates "
    "the gradients into copies of the weights (it splits `params` where it means "
    "`d_params`), never backpropagates into the first step (with T = 1 it returns dx = 0 "
    "and the weights as their own gradients) and takes dW_hh from h_t instead of h_{t-1}. "
    "Its forward agrees with rnnkit, so its inference is timed."
)


@dataclass(frozen=True)
class Settings:
    quick: bool
    T: int
    sizes: tuple[tuple[int, int, int], ...]
    cells: tuple[str, ...]
    impls: tuple[str, ...]
    stream_h: tuple[int, ...]
    stream_d: int
    memory_sizes: tuple[tuple[int, int, int], ...]
    block_target: float  # seconds per timing block
    rounds: int
    pause: float  # seconds of rest before each timing block
    stream_sample: float  # seconds per streaming sample
    import_reps: int
    peak_n: int
    blas_threads: int
    keep_freed_memory: bool  # rnnkit.keep_freed_memory() in the timing process
    sections: tuple[str, ...]
    check_T: int  # time steps of the float64 check


# -- the record of one run -----------------------------------------------------------------------


@dataclass
class Measurement:
    """One implementation on one configuration."""

    status: str = "ok"  # "ok", or why there is no time
    check_err: float | None = None  # against rnnkit (for rnnkit: against torch)
    f32_err: float | None = None  # at the timed size, against rnnkit's float32 result
    seconds: float | None = None  # median
    samples: int = 0


@dataclass
class Report:
    header: list[str] = field(default_factory=list)
    matrix: dict[tuple[str, str, tuple[int, int, int]], dict[str, Measurement]] = field(
        default_factory=dict
    )  # (mode, cell, (B, D, H)) -> impl -> measurement
    loops: dict[str, str] = field(default_factory=dict)  # cell -> rnnkit's time loops
    others: dict[tuple[str, str, tuple[int, int, int]], float] = field(default_factory=dict)
    # (mode or "step", cell, (B, D, H)) -> cores other processes kept busy while it was timed
    stream: dict[tuple[str, int], dict[str, Measurement]] = field(default_factory=dict)
    memory: dict[tuple[tuple[int, int, int], str], dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, list[float] | str] = field(default_factory=dict)
    sizes: dict[str, tuple[int, list[tuple[str, int]]]] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)  # "torch@2 start" -> GFLOP/s
    csv_rows: list[dict[str, Any]] = field(default_factory=list)

    def row(
        self,
        section: str,
        item: str,
        impl: str,
        problem: Problem | None = None,
        m: Measurement | None = None,
        **values: Any,
    ) -> None:
        """One line of the CSV: `problem` fills cell, T, B, D, H; `m` status, value (its
        seconds), check_err and f32_err; ``values`` any column."""
        row: dict[str, Any] = {"section": section, "item": item, "impl": impl}
        if problem is not None:
            row |= {"cell": problem.cell, "T": problem.T, "B": problem.B}
            row |= {"D": problem.D, "H": problem.H}
        if m is not None:
            row |= {"status": m.status, "value": m.seconds, "unit": "s"}
            row |= {"check_err": m.check_err, "f32_err": m.f32_err}
        self.csv_rows.append(row | values)


CSV_COLUMNS = (
    "section item cell mode T B D H impl status value unit ratio check_err f32_err note".split()
)


# -- the matmul peak ------------------------------------------------------------------------------


def peak(report: Report) -> tuple[float, str] | None:
    """The highest matmul rate on all cores (numpy at fewer threads does not count)."""
    cores = common.cores()
    best = [
        (v, k)
        for k, v in report.peaks.items()
        if not k.startswith("numpy") or k.startswith(f"numpy, {cores} thread")
    ]
    return max(best) if best else None


# -- the Markdown report -------------------------------------------------------------------------


def md_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> list[str]:
    """A GitHub table; the first `left` columns are text (left-aligned), the rest numbers."""
    align = [":---"] * left + ["---:"] * (len(columns) - left)
    return [f"| {' | '.join(map(str, r))} |" for r in [columns, align, *rows]]


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{1e3 * seconds:.3g}" if seconds < 1 else f"{1e3 * seconds:.0f}"


def short(status: str, width: int = 48) -> str:
    """A status for a table cell: the whole of it is in the CSV."""
    return status if len(status) <= width else status[: width - 1] + "…"


def err(value: float | None) -> str:
    return "-" if value is None else f"{value:.0e}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def matrix_section(s: Settings, report: Report) -> list[str]:
    lines = []
    loops = ", ".join(f"{c} {v}" for c, v in report.loops.items())
    peers_ = [n for n in s.impls if n != "rnnkit"]
    for mode in MODES:
        configs = [(c, z) for (m, c, z) in report.matrix if m == mode]
        if not configs:
            continue
        lines += [
            f"### {MODE_NAMES[mode].capitalize()} (T = {s.T}, float32; rnnkit's loops: {loops})",
            "",
            "Times in ms (median); after each peer, ratio = rnnkit / peer (< 1: rnnkit faster)."
            " 'others': cores other processes kept busy on average while the row was timed "
            f"(noise: above {NOISY}, distrust the row; torch's threads suffer most).",
            "",
        ]
        columns = ["cell", "B", "D", "H", "others", "rnnkit ms"]
        for p in peers_:
            columns += [f"{p} ms", f"rnnkit/{p}"]
        rows = []
        for cell, size in configs:
            res = report.matrix[(mode, cell, size)]
            rk = res["rnnkit"].seconds
            rk_status = res["rnnkit"].status
            busy = report.others.get((mode, cell, size))
            row = [cell, *size, "-" if busy is None else f"{busy:.2f}"]
            row.append(ms(rk) if rk_status == "ok" else short(rk_status))
            for p in peers_:
                m = res.get(p, Measurement("not run"))
                row += (
                    [ms(m.seconds), ratio(rk, m.seconds)]
                    if m.status == "ok"
                    else [short(m.status), ""]
                )
            rows.append(row)
        lines += [*md_table(columns, rows), ""]
        if mode == "infer":
            lines += [
                "rnnkit's forward has no mode that skips saving its cache for backward: its "
                "inference is the plain forward in eval mode.",
                "",
            ]
    failed = sorted(
        {p for res in report.matrix.values() for p, m in res.items() if "check failed" in m.status}
    )
    if failed:
        lines += [f"Check failed, not timed: {', '.join(failed)} (see Checks)."]
        if "thinc" in failed:
            lines += [THINC_NOTE]
        lines.append("")
    checks = []
    for (mode, cell, size), res in report.matrix.items():
        row = [MODE_NAMES[mode], cell, *size]
        for p in peers_:
            m = res.get(p, Measurement("not run"))
            if m.check_err is None:
                row.append("-")
                continue
            flag = " (!)" if m.f32_err is not None and not m.f32_err <= peers.F32_TIMED_RTOL else ""
            row.append(f"{err(m.check_err)} / {err(m.f32_err)}{flag}")
        checks.append(row)
    if checks:
        lines += [
            "### Checks",
            "",
            f"Each peer against rnnkit: float64 error on T = {min(s.T, s.check_T)} (thinc: float32)"
            f" / float32 error at the timed size ((!): above {peers.F32_TIMED_RTOL:.0e}).",
            "",
            *md_table(["mode", "cell", "B", "D", "H", *peers_], checks, left=2),
            "",
        ]
    return lines


def stream_section(s: Settings, report: Report) -> list[str]:
    if not report.stream:
        return []
    names = [n for n in peers.STREAM_IMPLS if n in s.impls]
    columns = ["cell", "D", "H", "others"]
    for n in names:
        columns += [f"{n} µs/step"] + ([f"rnnkit/{n}"] if n != "rnnkit" else [])
    columns += ["weights KiB", "rnnkit reads GB/s", "10x torch needs GB/s", "check (f64)"]
    rows = []
    for (cell, H), res in report.stream.items():
        rk = res["rnnkit"].seconds
        weights = 4 * peers.GATES[cell] * H * (s.stream_d + H)  # bytes of W_ih and W_hh
        busy = report.others.get(("step", cell, (1, s.stream_d, H)))
        row: list[Any] = [cell, s.stream_d, H, "-" if busy is None else f"{busy:.2f}"]
        for n in names:
            m = res[n]
            row.append(f"{1e6 * m.seconds:.1f}" if m.seconds else short(m.status))
            if n != "rnnkit":
                row.append(ratio(rk, m.seconds))
        torch_s = res["torch"].seconds if "torch" in res else None
        row += [
            f"{weights / 1024:.0f}",
            f"{weights / rk / 1e9:.0f}" if rk else "-",
            f"{weights / (torch_s / 10) / 1e9:.0f}" if torch_s else "-",
        ]
        row.append(
            ", ".join(f"{n} {err(res[n].check_err)}" for n in names if res[n].check_err is not None)
        )
        rows.append(row)
    return [
        "## 2. Streaming single-step inference (B = 1, float32)",
        "",
        "rnnkit `layer.step(x_t, state)`; torch `LSTMCell`/`GRUCell`/`RNNCell` under "
        f"`no_grad`; JAX one jitted step. D = {s.stream_d}. Checked in float64 against "
        f"rnnkit's `forward` over {s.check_T} steps. 'others' as in the size matrix. At "
        "batch 1 a step reads every weight once (float32 W_ih and W_hh: 'weights KiB') for "
        "two multiply-adds each, so its speed is the rate at which one core streams the "
        "weights from its cache: 'rnnkit reads GB/s' is that rate, '10x torch needs GB/s' "
        "the rate a step 10 times faster than torch's would need. For comparison, a core of "
        "AMD's Zen 4 and 5 moves at most 64 bytes a cycle from its L2 and 32 from L3 (the "
        "vendor's figures, not measured here): about 220 and 110 GB/s at the 3.4 GHz that "
        "the matmul peak implies. H = 128 fits in L2, H = 512 does not.",
        "",
        *md_table(columns, rows),
        "",
    ]


def memory_section(s: Settings, report: Report) -> list[str]:
    if not report.memory:
        return []
    rows = []
    for (size, name), r in report.memory.items():
        problem = Problem("LSTM", s.T, *size)
        if r["status"] == "ok":
            growth = (r["peak_kib"] - r["baseline_kib"]) * 1024 / MiB
            row = [name, *size, f"{r['baseline_kib'] / 1024:.0f}", f"{growth:.1f}"]
        else:
            row = [name, *size, short(r["status"]), ""]
        rows.append([*row, f"{peers.result_bytes(problem) / MiB:.1f}"])
    return [
        f"## 3. Peak memory of a training step (LSTM, T = {s.T}, float32)",
        "",
        "Fresh process per implementation; peak RSS growth over the baseline after a warm-up "
        "step (VmHWM reset through /proc/self/clear_refs), glibc mmap threshold fixed at 128 "
        "KiB. 'baseline' is the RSS after imports, set-up and the warm-up step; 'results' the "
        "size of what the step returns (y, final state, dx, gradients).",
        "",
        *md_table(["impl", "B", "D", "H", "baseline MiB", "peak growth MiB", "results MiB"], rows),
        "",
    ]


def import_section(report: Report) -> list[str]:
    lines = []
    if report.imports:
        rows = []
        for module, t in report.imports.items():
            if isinstance(t, str) or not t:
                rows.append([module, t or "-", "", ""])
            else:
                rows.append([module, f"{min(t):.3f}", f"{statistics.median(t):.3f}", len(t)])
        lines += [
            "## 4. Import time and installed size",
            "",
            "`import X` timed inside fresh interpreters (interpreter start-up excluded), "
            "interleaved.",
            "",
            *md_table(["module", "min s", "median s", "runs"], rows),
            "",
        ]
    if report.sizes:
        rows = [
            [top, f"{total / MiB:.1f}", ", ".join(f"{n} {b / MiB:.2f}" for n, b in parts)]
            for top, (total, parts) in report.sizes.items()
        ]
        lines += [
            "Installed size with required dependencies, NumPy left out (importlib.metadata "
            "file lists; .pyc files left out; rnnkit, installed editable here, is measured "
            "from its package folder without the C sources):",
            "",
            *md_table(["package", "MiB", "distributions (MiB)"], rows),
            "",
        ]
        if "rnnkit" in report.sizes and "torch" in report.sizes:
            r = report.sizes["rnnkit"][0] / report.sizes["torch"][0]
            lines += [f"rnnkit / torch installed: {r:.4f} (1/{1 / r:.0f}).", ""]
    return lines


def training_rates(s: Settings, report: Report) -> dict[Problem, dict[str, float]]:
    """GFLOP/s of every timed training step, per problem and implementation."""
    out: dict[Problem, dict[str, float]] = {}
    for (mode, cell, size), res in report.matrix.items():
        if mode == "train":
            problem = Problem(cell, s.T, *size)
            f = peers.flops(problem, "train")
            out[problem] = {n: f / m.seconds / 1e9 for n, m in res.items() if m.seconds}
    return out


def ratio_at_peak(problem: Problem, report: Report) -> float | None:
    """The training-step ratio rnnkit / torch at ``problem`` if rnnkit ran every FLOP of its
    matrix products at the measured matmul peak: a lower bound on what the ratio can be."""
    best = peak(report)
    res = report.matrix.get(("train", problem.cell, (problem.B, problem.D, problem.H)), {})
    torch_s = res.get("torch", Measurement()).seconds
    if not best or not torch_s:
        return None
    return peers.flops(problem, "train") / (best[0] * 1e9) / torch_s


def derived_rows(s: Settings, report: Report) -> None:
    """The CSV rows computed from the measurements: GFLOP/s and the acceptance targets."""
    best = peak(report)
    for problem, rates in training_rates(s, report).items():
        for name, rate in rates.items():
            report.row(
                "gflops",
                "training step",
                name,
                problem,
                mode="train",
                status="ok",
                value=rate,
                unit="GFLOP/s",
                ratio=rate / best[0] if best else None,
                note="ratio = fraction of the peak",
            )
        at_peak = ratio_at_peak(problem, report)
        if at_peak is not None:
            report.row(
                "gflops",
                "training step at the peak",
                "rnnkit",
                problem,
                mode="train",
                status="ok",
                value=at_peak,
                unit="ratio",
                note="rnnkit/torch if every FLOP ran at the matmul peak",
            )
    for t in targets(s, report):
        verdict, margin = t.verdict()
        report.row(
            "target",
            t.what,
            "rnnkit",
            status=verdict,
            value=t.measured,
            note=f"{t.limit_text()}; margin {margin}; {t.where}"
            + ("" if t.bound is None else f"; at the peak {t.bound[0]:.3g} at {t.bound[1]}"),
        )


def gflops_section(s: Settings, report: Report) -> list[str]:
    lines = []
    if report.peaks:
        lines += [
            f"## 5. Achieved GFLOP/s of the training step (float32 matmul peak, "
            f"{s.peak_n}x{s.peak_n})",
            "",
            "Matmul rates from the fastest run of each (a peak is what the machine can do). "
            "The libraries differ in the vector width they use on a given CPU (torch's MKL and "
            "OpenBLAS's Haswell kernels are AVX2 on AMD; XLA's GEMM uses AVX-512), so the peak "
            "is the highest of them.",
            "",
            *(f"- {k}: {v:.1f} GFLOP/s" for k, v in report.peaks.items()),
        ]
        best = peak(report)
        if best:
            lines.append(f"- **peak: {best[0]:.1f} GFLOP/s ({best[1]})**")
        lines.append("")
    best = peak(report)
    rows = []
    for problem, rates in training_rates(s, report).items():
        row: list[Any] = [problem.cell, problem.B, problem.D, problem.H]
        row.append(f"{peers.flops(problem, 'train') / 1e9:.3g}")
        for name in ("rnnkit", "torch"):
            rate = rates.get(name)
            pct = f"{100 * rate / best[0]:.0f}%" if rate and best else "-"
            row += [f"{rate:.1f}" if rate else "-", pct]
        at_peak = ratio_at_peak(problem, report)
        row.append("-" if at_peak is None else f"{at_peak:.2f}")
        rows.append(row)
    if rows:
        if not report.peaks:
            lines += ["## 5. Achieved GFLOP/s of the training step (no peak measured)", ""]
        lines += [
            "FLOPs of the matrix products: forward 2·T·B·G·(D+H), G = gates·H; backward twice "
            "that. 'rnnkit/torch at the peak': the ratio a training step would have if it ran "
            "every one of these FLOPs at the peak (elementwise work, memory traffic and "
            "dependencies between time steps free): no implementation on this machine gets "
            "below it.",
            "",
            *md_table(
                [
                    "cell",
                    "B",
                    "D",
                    "H",
                    "GFLOP",
                    "rnnkit GFLOP/s",
                    "% peak",
                    "torch GFLOP/s",
                    "% peak",
                    "rnnkit/torch at the peak",
                ],
                rows,
            ),
            "",
        ]
    return lines


# -- the acceptance targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    what: str
    measured: float | None  # None: not measured
    limit: float
    at_most: bool  # measured <= limit passes (else measured >= limit)
    where: str = ""
    fmt: str = "{:.2f}"
    #: the best value any implementation could measure on this machine, where one is known (for
    #: the training ratios: every FLOP at the matmul peak, see ratio_at_peak), and where
    bound: tuple[float, str] | None = None

    def verdict(self) -> tuple[str, str]:
        if self.measured is None or not math.isfinite(self.measured):
            return "MISS", "not measured"
        ok = self.measured <= self.limit if self.at_most else self.measured >= self.limit
        margin = (self.limit - self.measured) if self.at_most else (self.measured - self.limit)
        return ("PASS" if ok else "MISS"), f"{100 * margin / self.limit:+.0f}%"

    def limit_text(self) -> str:
        return ("<= " if self.at_most else ">= ") + self.fmt.format(self.limit)


def targets(s: Settings, report: Report) -> list[Target]:
    """The issue's acceptance targets, on what this run measured."""
    out = []
    for cell in ("LSTM", "GRU"):
        for limit, small_only in ((1.0, False), (0.5, True)):
            worst, where, bound = None, "", None
            for (mode, c, size), res in report.matrix.items():
                if mode != "train" or c != cell or (small_only and size[2] > 128):
                    continue
                a, b = res["rnnkit"].seconds, res.get("torch", Measurement()).seconds
                r = a / b if a and b else math.inf
                at = "B={} D={} H={}".format(*size)
                if worst is None or r > worst:
                    worst, where = r, at
                at_peak = ratio_at_peak(Problem(cell, s.T, *size), report)
                if at_peak is not None and (bound is None or at_peak > bound[0]):
                    bound = (at_peak, at)
            if worst is not None:
                scope = "H <= 128" if small_only else "every size"
                out.append(
                    Target(
                        f"{cell} training step rnnkit/torch, {scope} (worst)",
                        worst,
                        limit,
                        True,
                        where,
                        bound=bound,
                    )
                )
    for H in s.stream_h:
        res = report.stream.get(("LSTM", H))
        if res is not None:
            a, b = res["rnnkit"].seconds, res.get("torch", Measurement()).seconds
            out.append(
                Target(
                    f"LSTM streaming speed-up over torch LSTMCell, H={H}",
                    b / a if a and b else None,
                    10.0,
                    False,
                    short(res["rnnkit"].status) if not a else "",
                    "{:.1f}x",
                )
            )
    t = report.imports.get("rnnkit")
    if t is not None:
        out.append(
            Target(
                "import rnnkit, median s",
                statistics.median(t) if isinstance(t, list) and t else None,
                0.3,
                True,
                fmt="{:.3f}",
            )
        )
    if "rnnkit" in report.sizes and "torch" in report.sizes:
        out.append(
            Target(
                "installed core size rnnkit/torch",
                report.sizes["rnnkit"][0] / report.sizes["torch"][0],
                0.1,
                True,
                fmt="{:.4f}",
            )
        )
    best = peak(report)
    largest = max(s.sizes, key=lambda z: z[0] * z[2] * (z[1] + z[2]))
    for cell in s.cells:
        res = report.matrix.get(("train", cell, largest))
        if res is None:
            continue
        sec = res["rnnkit"].seconds
        frac = (
            peers.flops(Problem(cell, s.T, *largest), "train") / sec / 1e9 / best[0]
            if sec and best
            else None
        )
        out.append(
            Target(
                f"{cell} training GFLOP/s at the largest size, fraction of the peak",
                frac,
                0.7,
                False,
                "B={} D={} H={}".format(*largest),
                "{:.0%}",
            )
        )
    return out


def targets_section(s: Settings, report: Report) -> list[str]:
    rows = []
    for t in targets(s, report):
        verdict, margin = t.verdict()
        measured = "-" if t.measured is None else t.fmt.format(t.measured)
        best = "-"
        if t.bound is not None:
            reachable = t.bound[0] <= t.limit if t.at_most else t.bound[0] >= t.limit
            best = f"{t.fmt.format(t.bound[0])} at {t.bound[1]}" + (
                "" if reachable else " (out of reach)"
            )
        rows.append([t.what, t.where, measured, t.limit_text(), f"**{verdict}**", margin, best])
    if not rows:
        return []
    note = " (quick run: tiny sizes, not the issue's)" if s.quick else ""
    passed = sum(r[4] == "**PASS**" for r in rows)
    return [
        f"## Acceptance targets{note}: {passed} of {len(rows)} pass",
        "",
        "Margin: how far the measurement is inside (+) or outside (-) the limit, relative to it. "
        "Best possible: for the training ratios, the worst over the target's sizes of the ratio "
        "at the matmul peak (section 5): where it is above the limit, no implementation could "
        "meet the target at that size on this machine.",
        "",
        *md_table(
            ["target", "where", "measured", "limit", "result", "margin", "best possible"],
            rows,
            left=2,
        ),
        "",
    ]


def markdown(s: Settings, report: Report, seconds: float, others: float) -> str:
    lines = [
        "# rnnkit benchmark suite",
        "",
        *(f"- {h}" for h in report.header),
        f"- run: {'--quick, ' if s.quick else ''}{seconds / 60:.1f} min; other processes kept "
        f"{others:.2f} of the {common.cores()} cores busy on average (from /proc/stat); load "
        f"average at the end {common.load_average()}",
        "",
    ]
    if others > NOISY:
        lines += [
            f"**Warning: other processes kept {others:.2f} cores busy during this run. Threads "
            "that wait for each other at every time step (torch's OpenMP above all) slow down "
            "by up to 100x when a core is taken from them: distrust the rows whose 'others' "
            f"is above {NOISY}, and run again on a quiet machine.**",
            "",
        ]
    if report.matrix:
        lines += ["## 1. Size matrix", "", *matrix_section(s, report)]
    lines += stream_section(s, report)
    lines += memory_section(s, report)
    lines += import_section(report)
    lines += gflops_section(s, report)
    lines += targets_section(s, report)
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
