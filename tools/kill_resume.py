"""SIGKILL ``rnnkit lm train`` at random moments, resume it with ``--resume``, and check that
every run ends bit for bit as the uninterrupted one does.

    python tools/kill_resume.py                 # 50 kills (about 10 minutes on 2 cores)
    python tools/kill_resume.py --kills 10 --seed 3

A reference run trains a small character model on a fixed text, uninterrupted. Then each trial
starts the same run under a new name and kills it (SIGKILL: no handler runs, as with the
out-of-memory killer or a lost node) one or more times, every kill followed by
``rnnkit lm train --name NAME --resume``. Half the kills come at a random moment of the run;
the other half wait until a checkpoint's temporary file appears and kill at once, during the
write. After the last resume has finished, the trial checks:

- the trained parameters (``model.rnnkit``) equal the reference's bit for bit;
- ``metrics.csv`` equals the reference's row for row (except the wall-clock columns);
- ``samples.txt`` equals the reference's;
- no temporary or staging file is left in the runs folder.

The last line is the summary, for example
``kill/resume: 50 kills in 20 runs, 20 of 20 runs bit-identical, 0 stale files``;
the exit code is 1 if any run differs.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnkit import checkpoint

TIMINGS = ("seconds", "examples_per_s")


def train_command(text: Path, runs: Path, name: str, steps: int, *, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "rnnkit", "lm", "train", "--name", name, "--runs-dir", str(runs)]
    if resume:
        return [*cmd, "--resume", "--quiet", "--no-plot", "--checkpoint-seconds", "0"]
    return [
        *cmd,
        "--text",
        str(text),
        "--hidden-size",
        "96",
        "--num-layers",
        "2",
        "--embedding-dim",
        "16",
        "--bptt",
        "32",
        "--batch-size",
        "16",
        "--steps",
        str(steps),
        "--sample-length",
        "80",
        "--seed",
        "5",
        "--quiet",
        "--no-plot",
        "--checkpoint-seconds",
        "0",  # a checkpoint after every step: many writes to be killed in
    ]


def run_digest(folder: Path) -> dict:
    """What must be identical between runs: parameters, untimed metrics, samples."""
    model = checkpoint.load(folder / "model.rnnkit")
    history = model["state"]["history"]
    for key in TIMINGS:  # wall-clock columns: the only thing allowed to differ
        history.pop(key, None)
    with open(folder / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in TIMINGS} for r in csv.DictReader(f)]
    return {
        "model": model,
        "metrics": rows,
        "samples": (folder / "samples.txt").read_text(),
    }


def same_tree(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def leftovers(runs: Path) -> list[str]:
    """Temporary files and staging folders anywhere under ``runs``."""
    out = []
    for path in runs.rglob("*"):
        name = path.name
        if name.endswith(".tmp") or ".tmp." in name or ".new-" in name or ".old-" in name:
            out.append(str(path.relative_to(runs)))
    return out


def kill_once(cmd: list[str], run_dir: Path, rng: random.Random, duration: float) -> str:
    """Start ``cmd`` and SIGKILL it; returns how ("at 2.31 s", "during a write", or
    "finished first" when the run ended before the kill came)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    during_write = rng.random() < 0.5
    # kill only once the run has a checkpoint (before it there is nothing to resume from,
    # and --resume starts the run afresh: also tested, by the first kill of some trials)
    when = rng.uniform(0.2, 0.95) * duration
    how = "finished first"
    while proc.poll() is None:
        elapsed = time.monotonic() - start
        if during_write:
            if elapsed > when and any(run_dir.glob(".checkpoint.ckpt.*.tmp")):
                proc.kill()
                how = "during a write"
                break
        elif elapsed > when:
            proc.kill()
            how = f"at {elapsed:.2f} s"
            break
        time.sleep(0.0005 if during_write else 0.005)
    proc.wait()
    return how


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the runs folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rnnkit-kill-"))
    runs = work / "runs"
    text = work / "text.txt"
    from rnnkit.data.text import default_corpus

    text.write_text(default_corpus()[:60_000], encoding="utf-8")
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    start = time.monotonic()
    subprocess.run(
        train_command(text, runs, "reference", args.steps, resume=False),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    duration = time.monotonic() - start
    reference = run_digest(runs / "reference")
    print(f"reference run: {args.steps} steps in {duration:.1f} s ({env_note})", flush=True)

    kills, trials, identical, stale, failures = 0, 0, 0, 0, []
    while kills < args.kills:
        trials += 1
        name = f"trial{trials}"
        run_dir = runs / name
        per_trial = min(rng.choice((1, 1, 2, 3)), args.kills - kills)
        hows = []
        first = train_command(text, runs, name, args.steps, resume=False)
        resume = train_command(text, runs, name, args.steps, resume=True)
        for k in range(per_trial):
            hows.append(kill_once(first if k == 0 else resume, run_dir, rng, duration))
            kills += hows[-1] != "finished first"
        done = subprocess.run(resume, capture_output=True, text=True)
        left = leftovers(runs)
        stale += len(left)
        ok = done.returncode == 0
        why = f"exit {done.returncode}: {done.stderr.strip()[-300:]}" if not ok else ""
        if ok:
            got = run_digest(run_dir)
            for key in ("model", "metrics", "samples"):
                if not same_tree(reference[key], got[key]):
                    ok, why = False, f"{key} differs"
                    break
        if ok and left:
            ok, why = False, f"left behind: {left}"
        identical += ok
        print(
            f"run {trials:2d}: killed {', '.join(hows)}; resumed: "
            f"{'bit-identical' if ok else 'FAILED ' + why}",
            flush=True,
        )
        if not ok:
            failures.append(name)
        elif not args.keep:
            shutil.rmtree(run_dir)
    if not args.keep:
        shutil.rmtree(work)
    print(
        f"kill/resume: {kills} kills in {trials} runs, {identical} of {trials} runs "
        f"bit-identical, {stale} stale files"
    )
    return 0 if identical == trials and not stale else 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
