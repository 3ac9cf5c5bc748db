# ruff: noqa: E501  (the tables of cases read best one case per line)
"""Bad command lines and bad API calls, each run in its own process: every one must end with a
clear error within seconds, allocating no more than a few hundred MB, without a traceback.

    python tools/bad_inputs.py              # all cases (about 3 minutes on 2 cores)
    python tools/bad_inputs.py -k horizon   # the cases whose name contains "horizon"

The categories of issue 11: sizes that cannot fit (hidden sizes of 10**5 and 10**12, huge
embeddings, layers, batches, windows, horizons), files that never end or are not files
(``/dev/zero``, a FIFO, a symlink to a device, a folder), hostile model and checkpoint files
(random bytes, a zip bomb, a declared array of 10**12 elements, absurd stored settings: see
also tools/hostile_files.py), non-finite values (NaN weights given to ``load_state_dict``, NaN
states in ``step``, NaN sequences in ``SequenceData``, NaN or negative learning rates), and
file-system trouble (a file where the runs folder should be, a read-only runs folder).

A case passes when the process exits with the expected code (2 for bad input, 1 for a failed
run; the API cases exit 0 when the expected exception came) within the time limit, prints no
Python traceback, prints one ``rnnkit: error:`` line (command cases), and its peak resident
memory stays under the limit (``--max-mb``, 400 by default). The last line is the summary, e.g.
``bad inputs: 64 cases, 64 clear errors, 0 bad (max RSS 118 MB, slowest 2.1 s)``.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# -- the cases --------------------------------------------------------------------------------

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
LM = ["lm", "train", "--text", "{text}", "-q", "--no-plot", "--steps", "3"]
FORECAST = ["forecast", "train", "--csv", "{csv}", "--target", "y", "-q", "--no-plot"]
CLASSIFY = ["classify", "train", "--train", "{cls}", "--test", "{cls}", "-q", "--no-plot"]


def command_cases() -> list[tuple[str, list[str], int, str]]:
    """(name, arguments, expected exit code, a word the error line must contain)."""
    huge = [
        ("lm hidden 1e5", [*LM, "--hidden-size", "100000"], "memory"),
        ("lm hidden 1e12", [*LM, "--hidden-size", str(10**12)], "memory"),
        ("lm embedding 1e12", [*LM, "--embedding-dim", str(10**12)], "memory"),
        ("lm layers 1e6", [*LM, "--num-layers", str(10**6)], "layers"),
        ("lm batch 1e9", [*LM, "--batch-size", str(10**9)], "batch"),
        ("lm bptt 1e12", [*LM, "--bptt", str(10**12)], "memory"),
        ("lm sample-length 1e12", [*LM, "--sample-length", str(10**12)], "length"),
        ("forecast hidden 1e5", [*FORECAST, "--hidden-size", "100000"], "memory"),
        ("forecast window 1e9", [*FORECAST, "--window", str(10**9)], "window"),
        ("forecast horizon 1e8", [*FORECAST, "--horizon", str(10**8)], "horizon"),
        ("classify hidden 1e5", [*CLASSIFY, "--hidden-size", "100000"], "memory"),
        ("classify hidden 1e12", [*CLASSIFY, "--hidden-size", str(10**12)], "memory"),
        ("classify window 1e12", [*CLASSIFY, "--window", str(10**12)], "window"),
        ("classify ensemble 1e9", [*CLASSIFY, "--ensemble", str(10**9)], "ensemble"),
    ]
    files = [
        ("lm text /dev/zero", ["lm", "train", "--text", "/dev/zero", "-q"], "device"),
        ("lm text fifo", ["lm", "train", "--text", "{fifo}", "-q"], "FIFO"),
        ("lm text symlink to /dev/zero", ["lm", "train", "--text", "{zerolink}", "-q"], "device"),
        ("lm text folder", ["lm", "train", "--text", "{dir}", "-q"], ""),
        (
            "forecast csv /dev/zero",
            [*FORECAST[:2], "--csv", "/dev/zero", "--target", "y"],
            "device",
        ),
        ("forecast csv fifo", [*FORECAST[:2], "--csv", "{fifo}", "--target", "y"], "FIFO"),
        (
            "classify ts /dev/zero",
            ["classify", "train", "--train", "/dev/zero", "--test", "{cls}"],
            "",
        ),
        ("classify fifo", ["classify", "train", "--train", "{fifo}", "--test", "{cls}"], "FIFO"),
        (
            "lm eval text /dev/zero",
            ["lm", "eval", "--run", "{lmrun}", "--text", "/dev/zero"],
            "device",
        ),
        ("lm sample model random bytes", ["lm", "sample", "--run", "{garbage_run}"], "checkpoint"),
        ("lm sample model zip bomb", ["lm", "sample", "--run", "{bomb_run}"], "compress"),
        ("lm sample model is /dev/zero", ["lm", "sample", "--run", "{zero_model_run}"], ""),
        (
            "lm resume checkpoint random bytes",
            ["lm", "train", "--name", "garbage", "--runs-dir", "{runs}", "--resume", "-q"],
            "checkpoint",
        ),
        (
            "forecast predict horizon 1e8",
            ["forecast", "predict", "--run", "{fcrun}", "--horizon", str(10**8)],
            "horizon",
        ),
        (
            "lm sample length 1e12",
            ["lm", "sample", "--run", "{lmrun}", "--length", str(10**12)],
            "length",
        ),
        (
            "lm sample temperature nan",
            ["lm", "sample", "--run", "{lmrun}", "--temperature", "nan"],
            "temperature",
        ),
    ]
    values = [
        ("lm lr nan", [*LM, "--lr", "nan"], "lr"),
        ("lm lr -1", [*LM, "--lr", "-1"], "lr"),
        ("lm dropout 2", [*LM, "--dropout", "2"], "dropout"),
        ("lm dropout inf", [*LM, "--dropout", "inf"], "dropout"),
        ("lm val-fraction nan", [*LM, "--val-fraction", "nan"], "val_fraction"),
        ("lm checkpoint-seconds -1", [*LM, "--checkpoint-seconds", "-1"], "checkpoint-seconds"),
        ("forecast lr inf", [*FORECAST, "--lr", "inf"], "lr"),
        ("classify lr nan", [*CLASSIFY, "--lr", "nan"], "lr"),
    ]
    system = [
        ("runs-dir is a file", [*LM, "--runs-dir", "{afile}"], "file"),
        *(
            [("runs-dir read-only", [*LM, "--runs-dir", "{readonly}"], "")]
            if os.geteuid() != 0  # root writes anywhere
            else []
        ),
        ("config is /dev/zero", [*LM, "--config", "/dev/zero"], ""),
    ]
    out = [(n, a, 2, w) for n, a, w in huge + files + values + system]
    out.append(("lm diverges (lr 1e6)", [*LM[:-2], "--steps", "50", "--lr", "1e6"], 1, "diverged"))
    translate = ["translate", "train", "-q", "--no-plot", "--epochs", "1"]
    out += [
        (
            "translate hidden 1e5",
            [*translate, "--train", "{tsv}", "--hidden-size", "100000"],
            2,
            "memory",
        ),
        (
            "translate embedding 1e12",
            [*translate, "--train", "{tsv}", "--embedding-dim", str(10**12)],
            2,
            "memory",
        ),
        ("translate train /dev/zero", [*translate, "--train", "/dev/zero"], 2, "device"),
        ("translate train fifo", [*translate, "--train", "{fifo}"], 2, "FIFO"),
        ("translate train a bad line", [*translate, "--train", "{badtsv}"], 2, "line 2"),
        ("translate train lr nan", [*translate, "--train", "{tsv}", "--lr", "nan"], 2, "lr"),
        (
            "translate predict model random bytes",
            ["translate", "predict", "--run", "{garbage_translate}", "abc"],
            2,
            "checkpoint",
        ),
        (
            "translate eval data /dev/zero",
            ["translate", "eval", "--run", "{garbage_translate}", "--data", "/dev/zero"],
            2,
            "",
        ),
    ]
    return out


API_SCRIPT = """
import sys
import numpy as np, rnnkit, rnnkit.apps
from rnnkit.checkpoint import CheckpointError
from rnnkit.data import SequenceData
from rnnkit.limits import MemoryLimitError
try:
    {body}
except ({errors}) as err:
    print(type(err).__name__ + ": " + str(err), file=sys.stderr)
    raise SystemExit(0)
raise SystemExit("no error")
"""

API_CASES = [
    ("LSTM hidden 1e5", "rnnkit.nn.LSTM(8, 10**5)", "MemoryLimitError"),
    ("LSTM hidden 1e12", "rnnkit.nn.LSTM(8, 10**12)", "MemoryLimitError ValueError"),
    ("LSTM input 1e12", "rnnkit.nn.LSTM(10**12, 8)", "MemoryLimitError ValueError"),
    ("GRU layers 1e6", "rnnkit.nn.GRU(8, 64, num_layers=10**6)", "MemoryLimitError ValueError"),
    ("Embedding 1e12", "rnnkit.nn.Embedding(10**12, 16)", "MemoryLimitError ValueError"),
    ("Linear 1e6 x 1e6", "rnnkit.nn.Linear(10**6, 10**6)", "MemoryLimitError"),
    (
        "forward T*B too big",
        "rnnkit.nn.LSTM(4, 512).forward(np.broadcast_to(np.zeros((1, 1, 4), np.float32), (10**6, 10**4, 4)))",
        "MemoryLimitError",
    ),
    (
        "CharLM hidden 1e5",
        "rnnkit.apps.CharLM(hidden_size=10**5, steps=1, quiet=True).fit('ab' * 500)",
        "MemoryLimitError",
    ),
    (
        "RNNClassifier hidden 1e5",
        "rnnkit.apps.RNNClassifier(hidden_size=10**5, quiet=True).fit([np.ones((5, 1))] * 4, [0, 1] * 2)",
        "MemoryLimitError",
    ),
    (
        "RNNForecaster hidden 1e5",
        "rnnkit.apps.RNNForecaster(hidden_size=10**5, quiet=True).fit(np.sin(np.arange(100.0)))",
        "MemoryLimitError",
    ),
    (
        "RNNForecaster predict 1e8",
        "f = rnnkit.apps.RNNForecaster(window=4, hidden_size=4, epochs=1, quiet=True).fit(np.sin(np.arange(60.0))); f.predict(horizon=10**8)",
        "ValueError",
    ),
    ("load_text /dev/zero", "rnnkit.data.load_text('/dev/zero')", "ValueError"),
    ("load_text fifo", "rnnkit.data.load_text('{fifo}')", "ValueError"),
    ("load_ts symlink to /dev/zero", "rnnkit.data.load_ts('{zerolink}')", "ValueError"),
    (
        "load_state_dict NaN",
        "m = rnnkit.nn.LSTM(3, 4); sd = m.state_dict(); sd['weight_hh_l0'][0, 0] = np.nan; m.load_state_dict(sd)",
        "ValueError",
    ),
    (
        "load_state_dict Inf",
        "m = rnnkit.nn.GRU(3, 4); sd = m.state_dict(); sd['bias_ih_l0'][1] = np.inf; m.load_state_dict(sd)",
        "ValueError",
    ),
    (
        "step empty batch",
        "m = rnnkit.nn.LSTM(3, 4); m.step(np.zeros((0, 3), np.float32))",
        "ValueError",
    ),
    (
        "step NaN state",
        "m = rnnkit.nn.GRU(3, 4); m.step(np.zeros((2, 3), np.float32), np.full((1, 2, 4), np.nan, np.float32))",
        "ValueError",
    ),
    (
        "step NaN input",
        "m = rnnkit.nn.RNN(3, 4); m.step(np.full((2, 3), np.nan, np.float32))",
        "ValueError",
    ),
    (
        "SequenceData NaN x",
        "SequenceData([np.array([[np.nan]]), np.ones((2, 1))], [0, 1], 2)",
        "ValueError",
    ),
    ("SequenceData Inf y", "SequenceData([np.ones((3, 1))] * 2, [np.inf, 1.0], 2)", "ValueError"),
    (
        "SequenceData all sequences empty",
        "SequenceData([np.ones((0, 1)), np.ones((0, 1))], [0, 1], 2)",
        "ValueError",
    ),
    ("checkpoint.load zip bomb", "rnnkit.checkpoint.load('{bomb}')", "CheckpointError"),
    (
        "checkpoint.load /dev/zero",
        "rnnkit.checkpoint.load('/dev/zero')",
        "CheckpointError ValueError",
    ),
    ("Estimator.load random bytes", "rnnkit.apps.CharLM.load('{garbage}')", "CheckpointError"),
]


# -- the fixtures the cases name --------------------------------------------------------------


def make_fixtures(work: Path) -> dict[str, str]:
    f: dict[str, str] = {}
    (work / "t.txt").write_text(TEXT, encoding="utf-8")
    f["text"] = str(work / "t.txt")
    lines = ["y"] + [f"{10 + (i % 12) * 0.5 + 0.01 * i:.4f}" for i in range(120)]
    (work / "s.csv").write_text("\n".join(lines) + "\n")
    f["csv"] = str(work / "s.csv")
    rows = ["label," + ",".join(f"t{i}" for i in range(12))]
    for i in range(12):
        rows.append(f"{i % 2}," + ",".join(str((i % 2) * 2 - 1 + 0.1 * j) for j in range(12)))
    (work / "c.csv").write_text("\n".join(rows) + "\n")
    f["cls"] = str(work / "c.csv")
    words = [a + b + c for a in "abcd" for b in "abcd" for c in "abcd"]  # 64 distinct sources
    (work / "p.tsv").write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in words))
    f["tsv"] = str(work / "p.tsv")
    (work / "bad.tsv").write_text("cab\tK AE B\nno tab on this line\n")
    f["badtsv"] = str(work / "bad.tsv")
    os.mkfifo(work / "fifo")
    f["fifo"] = str(work / "fifo")
    os.symlink("/dev/zero", work / "zerolink")
    f["zerolink"] = str(work / "zerolink")
    (work / "adir").mkdir()
    f["dir"] = str(work / "adir")
    (work / "afile").write_text("not a folder")
    f["afile"] = str(work / "afile")
    (work / "readonly").mkdir()
    os.chmod(work / "readonly", stat.S_IRUSR | stat.S_IXUSR)
    f["readonly"] = str(work / "readonly")
    runs = work / "runs"
    f["runs"] = str(runs)
    garbage = work / "garbage.rnnkit"
    garbage.write_bytes(os.urandom(4096))
    f["garbage"] = str(garbage)
    # a zip bomb: 1 GiB of zeros, deflated (about 1 MB), as a model's member
    bomb = work / "bomb.rnnkit"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("arr_0.npy", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(1024):
                member.write(chunk)
        zf.writestr("__rnnkit__.json", '{"format": "rnnkit.checkpoint", "version": 1}')
    f["bomb"] = str(bomb)
    # trained runs to read from, and run folders holding hostile model files
    cmd = [sys.executable, "-m", "rnnkit"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    tiny = ["--hidden-size", "8", "--num-layers", "1", "--embedding-dim", "4", "--bptt", "8"]
    subprocess.run(
        [*cmd, "lm", "train", "--text", f["text"], "--steps", "3", "--name", "lm", "--runs-dir",
         str(runs), "-q", "--no-plot", *tiny],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    f["lmrun"] = str(runs / "lm")
    subprocess.run(
        [*cmd, "forecast", "train", "--csv", f["csv"], "--target", "y", "--epochs", "1",
         "--hidden-size", "4", "--name", "fc", "--runs-dir", str(runs), "-q", "--no-plot"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    f["fcrun"] = str(runs / "fc")
    for name, model in (("garbage_run", garbage), ("bomb_run", bomb), ("zero_model_run", None)):
        folder = runs / name
        shutil.copytree(runs / "lm", folder)
        target = folder / "model.rnnkit"
        target.unlink()
        if model is None:
            os.symlink("/dev/zero", target)
        else:
            shutil.copy(model, target)
        f[name] = str(folder)
    translate_run = runs / "garbage_translate"
    translate_run.mkdir(parents=True)
    (translate_run / "config.toml").write_text('[translate]\ntrain = "x.tsv"\n')
    shutil.copy(garbage, translate_run / "model.rnnkit")
    f["garbage_translate"] = str(translate_run)
    garbage_run = runs / "garbage"
    shutil.copytree(runs / "lm", garbage_run)
    shutil.copy(garbage, garbage_run / "checkpoint.ckpt")
    return f


# -- running ----------------------------------------------------------------------------------


def run_case(args: list[str], timeout: float) -> tuple[int | None, str, float, float]:
    """(exit code or None on timeout, stderr, seconds, peak RSS in MB) of one process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONFAULTHANDLER": "0"}
    start = time.monotonic()
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    err = b""
    code = None
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([proc.stderr], [], [], min(left, 0.1))
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536)
            err += chunk
            if not chunk:
                break
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    if os.WIFEXITED(status) and seconds < timeout:
        code = os.WEXITSTATUS(status)
    proc.returncode = 0  # reaped above
    return code, err.decode(errors="replace"), seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--max-mb", type=float, default=400.0, help="peak RSS allowed per case")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnkit-bad-"))
    try:
        fx = make_fixtures(work)
        cases = []
        for name, args, code, word in command_cases():
            argv = [sys.executable, "-m", "rnnkit", *(a.format(**fx) for a in args)]
            if "--runs-dir" not in args:
                argv += ["--runs-dir", fx["runs"]] if args[1] == "train" else []
            cases.append(("cmd " + name, argv, code, word))
        for name, code_text, exc in API_CASES:
            body = code_text.format(**fx)
            script = API_SCRIPT.format(body=body, errors=", ".join(exc.split()))
            cases.append(("api " + name, [sys.executable, "-c", script], 0, ""))
        cases = [c for c in cases if opts.k in c[0]]
        bad, worst_rss, slowest = 0, 0.0, 0.0
        for name, argv, expected, word in cases:
            code, err, seconds, rss = run_case(argv, opts.timeout)
            lines = [
                line
                for line in err.splitlines()
                if line.strip() and not line.startswith("(see ")  # click's usage hint
            ]
            problems = []
            if code is None:
                problems.append(f"no answer within {opts.timeout:.0f} s")
            elif code != expected:
                problems.append(f"exit {code}, expected {expected}")
            if "Traceback" in err:
                problems.append("traceback")
            if name.startswith("cmd") and code is not None:
                if len(lines) != 1 or not lines[0].startswith("rnnkit: "):
                    problems.append(f"{len(lines)} stderr lines")
                elif word and word.lower() not in lines[0].lower():
                    problems.append(f"the error does not mention {word!r}")
            if rss > opts.max_mb:
                problems.append(f"peak RSS {rss:.0f} MB")
            worst_rss, slowest = max(worst_rss, rss), max(slowest, seconds)
            bad += bool(problems)
            shown = lines[-1][:150] if lines else ""
            verdict = "BAD: " + "; ".join(problems) if problems else "ok"
            print(f"{name:45s} {seconds:5.1f} s {rss:5.0f} MB  {verdict}  | {shown}", flush=True)
        print(
            f"bad inputs: {len(cases)} cases, {len(cases) - bad} clear errors, {bad} bad "
            f"(max RSS {worst_rss:.0f} MB, slowest {slowest:.1f} s)"
        )
        return 1 if bad else 0
    finally:
        os.chmod(work / "readonly", stat.S_IRWXU) if (work / "readonly").exists() else None
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
