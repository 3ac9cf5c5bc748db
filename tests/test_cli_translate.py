"""``rnnkit translate`` run for real in subprocesses: help, a run folder from train, eval
(``--json``: exactly one JSON object), predict from arguments and standard input (n-best
format), config files, resuming a run SIGKILLed mid-run or before its first checkpoint (bit for
bit as the uninterrupted run), and bad input (one line on stderr, exit code 2)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit import checkpoint
from rnnkit.apps import plots

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
PHONES = {"a": "AA", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F"}
TINY = [
    "--embedding-dim",
    "8",
    "--hidden-size",
    "16",
    "--batch-size",
    "16",
    "--lr",
    "0.02",
    "--dropout",
    "0",
    "--checkpoint-seconds",
    "0",
]


def rnnkit(*args, cwd, check=True, stdin=None, timeout=300):
    """Run ``python -m rnnkit ARGS`` in ``cwd``; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        cwd=cwd,
        env=ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def assert_bad_input(proc, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("(see ")]
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def g2p_file(folder: Path, n: int = 200, name: str = "g2p.tsv", seed: int = 0) -> Path:
    """source<TAB>target lines of a toy grapheme-to-phoneme task, one alternative reference."""
    rng = np.random.default_rng(seed)
    words = sorted({"".join(rng.choice(list("abcdef"), size=rng.integers(1, 6))) for _ in range(n)})
    lines = [f"{w}\t{' '.join(PHONES[c] for c in w)}" for w in words]
    lines.append(f"{words[0]}\tZZ")  # an alternative pronunciation
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "args",
    [["translate"], ["translate", "train"], ["translate", "eval"], ["translate", "predict"]],
    ids=lambda a: "-".join(a),
)
def test_help(args, tmp_path):
    proc = rnnkit(*args, "--help", cwd=tmp_path)
    assert proc.stdout.startswith("Usage: rnnkit translate")
    if args[-1] == "predict":
        assert "rank<TAB>score<TAB>translation" in proc.stdout
    if args[-1] == "train":
        assert "--dev-fraction" in proc.stdout and "--source-tokens" in proc.stdout
    if args[-1] == "eval":
        assert '"token_error_rate"' in proc.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run trained on the toy task, its development set held out by --dev-fraction, with
    settings from a config file and one flag overriding it."""
    folder = tmp_path_factory.mktemp("translate")
    data = g2p_file(folder)
    config = folder / "run.toml"
    config.write_text(
        f'[translate.train]\ntrain = "{data}"\nepochs = 6\nhidden_size = 8\nbeam = 3\n',
        encoding="utf-8",
    )
    proc = rnnkit(
        "translate",
        "train",
        "--config",
        config,
        *TINY,
        "--dev-fraction",
        "0.1",
        "--name",
        "g",
        cwd=folder,
    )
    assert "development set:" in proc.stdout and "sequence error rate:" in proc.stdout
    assert "BLEU:" in proc.stdout and "chrF:" in proc.stdout
    # the validation set (5 % of the rest, by default) is scored too, before the development set
    assert proc.stdout.index("validation set:") < proc.stdout.index("development set:")
    assert "of them for validation" in proc.stdout
    return folder / "runs" / "g"


def test_train_writes_a_run_folder(trained):
    for name in ("config.toml", "metrics.csv", "checkpoint.ckpt", "model.rnnkit", "report.md"):
        assert (trained / name).exists(), name
    if plots.available():
        assert (trained / "attention.png").stat().st_size > 0
        assert (trained / "training.png").exists()
    stored = (trained / "config.toml").read_text()
    assert "hidden_size = 16" in stored  # the flag wins over the file
    assert "epochs = 6" in stored and "beam = 3" in stored and "dev_fraction = 0.1" in stored
    report = (trained / "report.md").read_text()
    assert "validation set: " in report and "development set: " in report


def test_eval_json_is_one_object(trained):
    data = trained.parent.parent / "g2p.tsv"
    proc = rnnkit("translate", "eval", "--run", trained, "--data", data, "--json", cwd=trained)
    scores = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert set(scores) == {"token_error_rate", "sequence_error_rate", "n", "bleu", "chrf"}
    assert 0 <= scores["sequence_error_rate"] <= 1 and 0 <= scores["token_error_rate"]
    n_words = len({line.split("\t")[0] for line in data.read_text().splitlines()})
    assert scores["n"] == n_words
    text = rnnkit("translate", "eval", "--run", trained, "--data", data, "--beam", 1, cwd=trained)
    assert "beam 1" in text.stdout and "token error rate:" in text.stdout
    greedy = rnnkit(
        "translate", "eval", "--run", trained, "--data", data, "--beam", 1, "--json", cwd=trained
    )
    rate = json.loads(greedy.stdout)["sequence_error_rate"]
    assert f"{100 * rate:6.2f} %" in text.stdout


def test_predict_arguments_stdin_and_nbest(trained):
    args = rnnkit("translate", "predict", "--run", trained, "abc", "fed", "zq", cwd=trained)
    lines = args.stdout.splitlines()
    assert len(lines) == 3 and all(set(ln.split()) <= set(PHONES.values()) for ln in lines[:2])
    piped = rnnkit(
        "translate", "predict", "--run", trained, stdin="abc\n\n  fed  \nzq\n", cwd=trained
    )
    assert piped.stdout.splitlines() == lines  # blank lines skipped, whitespace stripped
    nbest = rnnkit(
        "translate", "predict", "--run", trained, "--nbest", 4, "abc", "fed", cwd=trained
    )
    rows = [line.split("\t") for line in nbest.stdout.splitlines()]
    assert all(len(r) == 3 for r in rows) and len(rows) == 8  # beam: max(run's 3, --nbest 4)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert [rows[0][2], rows[4][2]] == lines[:2]
    for group in (rows[:4], rows[4:]):
        scores = [float(r[1]) for r in group]
        assert scores == sorted(scores, reverse=True)
    proc = rnnkit(
        "translate", "predict", "--run", trained, "--nbest", 4, "--beam", 2, "abc", cwd=trained,
        check=False,
    )  # fmt: skip
    assert_bad_input(proc, "nbest must be <= beam (2), got 4")
    assert_bad_input(
        rnnkit("translate", "predict", "--run", trained, "", cwd=trained, check=False),
        "has no char token",
    )


def test_character_targets_and_a_dev_file(tmp_path):
    (tmp_path / "t.tsv").write_text("ab\tba\nabc\tcba\nbc\tcb\nca\tac\nb\tb\n", encoding="utf-8")
    (tmp_path / "d.tsv").write_text("ac\tca\ncb\tbc\n", encoding="utf-8")
    proc = rnnkit(
        "translate", "train", "--train", "t.tsv", "--dev", "d.tsv", "--target-tokens", "chars",
        "--validation-fraction", 0, "--epochs", 2, *TINY, "--name", "c", "--no-plot", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert "sequence error rate" in proc.stdout and "BLEU" not in proc.stdout
    stored = (tmp_path / "runs" / "c" / "config.toml").read_text()
    assert f'dev = "{tmp_path / "d.tsv"}"' in stored and "dev_fraction = 0.0" in stored
    scores = json.loads(
        rnnkit(
            "translate", "eval", "--run", "runs/c", "--data", "d.tsv", "--json", cwd=tmp_path
        ).stdout
    )
    assert sorted(scores) == ["n", "sequence_error_rate", "token_error_rate"]
    assert scores["n"] == 2


# -- resuming -----------------------------------------------------------------------------------


def train_args(data: Path, name: str) -> list[str]:
    return [
        sys.executable, "-m", "rnnkit", "translate", "train", "--train", str(data),
        "--epochs", "4", "--batch-size", "8", "--patience", "2", "--dropout", "0.1",
        "--embedding-dim", "8", "--hidden-size", "16", "--checkpoint-seconds", "0",
        "--name", name, "--no-plot", "-q",
    ]  # fmt: skip


def finished(folder: Path):
    """The run's parameters, report and untimed metrics."""
    with open(folder / "metrics.csv", newline="") as f:
        rows = [
            {k: v for k, v in row.items() if k not in ("seconds", "examples_per_s")}
            for row in csv.DictReader(f)
        ]
    model = checkpoint.load(folder / "model.rnnkit")["state"]["model"]
    return model, (folder / "report.md").read_text(), rows


def assert_same_run(a: Path, b: Path) -> None:
    (ma, ra, rows_a), (mb, rb, rows_b) = finished(a), finished(b)
    assert ra == rb and rows_a == rows_b
    assert list(ma) == list(mb) and all(np.array_equal(ma[k], mb[k]) for k in ma)


def run(args, cwd, stdin=None):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_sigkilled_mid_run_resumes_bit_identically(tmp_path):
    data = g2p_file(tmp_path, n=200)
    run(train_args(data, "straight"), tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        train_args(data, "killed"), cwd=tmp_path, env=ENV, stderr=subprocess.DEVNULL
    )
    ckpt = runs / "killed" / "checkpoint.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if ckpt.exists() and checkpoint.peek(ckpt)["progress"]["step"] >= 15:
                break
        except checkpoint.CheckpointError:  # caught between a write and its rename
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (runs / "killed" / "model.rnnkit").exists()
    resume = [sys.executable, "-m", "rnnkit", "translate", "train", "--name", "killed"]
    run([*resume, "--resume", "-q", "--no-plot"], tmp_path)
    assert_same_run(runs / "straight", runs / "killed")
    assert not [p for p in (runs / "killed").iterdir() if p.name.startswith(".")]

    # killed before its first checkpoint: the config alone, part of a log, a stale temporary
    early = runs / "early"
    early.mkdir()
    shutil.copy(runs / "straight" / "config.toml", early / "config.toml")
    (early / "metrics.csv").write_text("step,epoch,kind\n1,0,train\n")
    (early / ".checkpoint.ckpt.0123456789ab.tmp").write_bytes(b"PK\x03\x04 half a write")
    proc = run([*resume[:-1], "early", "--resume", "--no-plot"], tmp_path)
    assert "no checkpoint yet: training from the start" in proc.stdout
    assert_same_run(runs / "straight", early)
    assert not [p for p in early.iterdir() if p.name.startswith(".")]
    # a resumed run takes no other setting but --epochs
    again = subprocess.run(
        [*resume, "--resume", "--beam", "2"], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert_bad_input(again, "only --steps/--epochs may change", "--beam")


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "args", "fragments"),
    [
        ({}, ["train", "--train", "missing.tsv"], ["missing.tsv"]),
        ({"bad.tsv": "ab\tAA B\nno tab here\n"}, ["train", "--train", "bad.tsv"], ["line 2"]),
        ({}, ["train"], ["--train is required"]),
        ({"g.tsv": "ab\tAA B\n"}, ["train", "--train", "g.tsv", "--cell", "cnn"], ["--cell"]),
        (
            {"g.tsv": "ab\tAA B\n"},
            ["train", "--train", "g.tsv", "--dev", "g.tsv", "--dev-fraction", "0.1"],
            ["--dev or --dev-fraction, not both"],
        ),
        (
            {"g.tsv": "ab\tAA B\n"},
            ["train", "--train", "g.tsv", "--hidden-size", "7"],
            ["hidden_size must be even"],
        ),
        (
            {"g.tsv": "ab\tAA B\n"},
            ["train", "--train", "g.tsv"],
            ["leaves the development set empty"],
        ),
        (
            {"c.toml": "[translate.train]\nbeams = 3\n"},
            ["train", "--config", "c.toml"],
            ["unknown key 'beams'"],
        ),
        ({}, ["eval", "--run", "runs/none", "--data", "x.tsv"], ["run folder not found"]),
        ({}, ["predict", "--nbest", "0", "--run", "x"], ["--nbest"]),
    ],
    ids=[
        "missing-file",
        "no-tab",
        "no-train",
        "bad-option",
        "dev-twice",
        "odd-hidden",
        "too-small-to-split",
        "config-key",
        "eval-no-run",
        "bad-nbest",
    ],
)
def test_bad_input_is_one_line_and_exit_2(files, args, fragments, tmp_path):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = rnnkit("translate", *args, cwd=tmp_path, check=False)
    assert_bad_input(proc, *fragments)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_eval_of_bad_data_and_another_tasks_run(trained, tmp_path):
    (tmp_path / "bad.tsv").write_text("abc\tAA B K\nabc AA\n", encoding="utf-8")
    proc = rnnkit("translate", "eval", "--run", trained, "--data", "bad.tsv", cwd=tmp_path,
                  check=False)  # fmt: skip
    assert_bad_input(proc, "bad.tsv, line 2")
    proc = rnnkit("translate", "eval", "--run", trained, "--data", "nope.tsv", cwd=tmp_path,
                  check=False)  # fmt: skip
    assert_bad_input(proc, "nope.tsv")
    proc = rnnkit("lm", "sample", "--run", trained, cwd=tmp_path, check=False)
    assert_bad_input(proc, "is a translate run, not an lm run")
