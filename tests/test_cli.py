"""The ``rnnkit`` command, run for real in a subprocess: help at every level, config files and
flag overrides, bad input (one line on stderr, exit code 2, no traceback), run folders that are
never overwritten by accident, and resuming an interrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def rnnkit(*args, cwd, check=True, timeout=300):
    """Run ``python -m rnnkit ARGS`` in ``cwd``; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, args)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def assert_bad_input(proc, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines and lines[0].startswith("rnnkit: error: "), proc.stderr
    assert len([ln for ln in lines if not ln.startswith("(see ")]) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["lm"],
        ["lm", "train"],
        ["lm", "sample"],
        ["lm", "eval"],
        ["forecast"],
        ["forecast", "train"],
        ["forecast", "predict"],
        ["forecast", "backtest"],
        ["classify"],
        ["classify", "train"],
        ["classify", "eval"],
        ["translate"],
        ["translate", "train"],
        ["translate", "eval"],
        ["translate", "predict"],
        ["diagnose"],
        ["diagnose", "gradient-flow"],
        ["diagnose", "activations"],
    ],
    ids=lambda a: "-".join(a) or "top",
)
def test_help_at_every_level(args, tmp_path):
    proc = rnnkit(*args, "--help", cwd=tmp_path)
    assert proc.stdout.startswith("Usage: rnnkit")
    assert "--help" in proc.stdout


def test_version_and_console_script_module(tmp_path):
    assert "rnnkit, version" in rnnkit("--version", cwd=tmp_path).stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def series_csv(tmp_path, n=60, name="s.csv"):
    rows = "\n".join(f"{i},{10 + (i % 12) + 0.1 * i}" for i in range(n))
    return write(tmp_path / name, "t,y\n" + rows + "\n")


FAST_FORECAST = [
    "--window",
    12,
    "--horizon",
    6,
    "--epochs",
    3,
    "--hidden-size",
    8,
    "--no-plot",
    "-q",
]


def test_forecast_config_file_and_flag_override(tmp_path):
    csv = series_csv(tmp_path)
    config = write(
        tmp_path / "run.toml",
        f'[forecast.train]\ncsv = "{csv}"\ntarget = "y"\n'
        "window = 12\nhorizon = 6\nepochs = 3\nhidden_size = 8\nlr = 0.05\n",
    )
    rnnkit(
        "forecast",
        "train",
        "--config",
        config,
        "--hidden-size",
        5,
        "--name",
        "a",
        "--no-plot",
        "-q",
        cwd=tmp_path,
    )
    stored = (tmp_path / "runs" / "a" / "config.toml").read_text()
    assert "hidden_size = 5" in stored  # the flag wins
    assert "lr = 0.05" in stored and "window = 12" in stored  # the file wins over defaults
    for name in ("model.rnnkit", "report.md", "forecast.csv"):
        assert (tmp_path / "runs" / "a" / name).exists()
    proc = rnnkit("forecast", "predict", "--run", tmp_path / "runs" / "a", cwd=tmp_path)
    assert proc.stdout.splitlines()[0] == "step,forecast" and len(proc.stdout.splitlines()) == 7


def test_forecast_prints_baselines_next_to_the_model(tmp_path):
    csv = series_csv(tmp_path)
    proc = rnnkit(
        "forecast",
        "train",
        "--csv",
        csv,
        "--target",
        "y",
        "--season",
        12,
        *FAST_FORECAST,
        cwd=tmp_path,
    )
    for method in ("model", "naive", "seasonal_naive", "drift"):
        assert f"| {method} |" in proc.stdout
    assert "MAPE" in proc.stdout and "MASE" in proc.stdout


def test_run_folders_are_not_overwritten(tmp_path):
    csv = series_csv(tmp_path)
    args = ["forecast", "train", "--csv", csv, "--target", "y", "--name", "x", *FAST_FORECAST]
    rnnkit(*args, cwd=tmp_path)
    model = tmp_path / "runs" / "x" / "model.rnnkit"
    before = model.stat().st_mtime_ns
    assert_bad_input(rnnkit(*args, cwd=tmp_path, check=False), "already exists", "--overwrite")
    assert model.stat().st_mtime_ns == before
    rnnkit(*args, "--overwrite", cwd=tmp_path)
    assert model.stat().st_mtime_ns != before


@pytest.mark.parametrize(
    ("files", "args", "fragments"),
    [
        ({}, ["forecast", "train", "--csv", "missing.csv", "--target", "y"], ["missing.csv"]),
        (
            {"s.csv": "t,y\n1,2\n2,3\n"},
            ["forecast", "train", "--csv", "s.csv", "--target", "z"],
            ["no column 'z'", "'t', 'y'"],
        ),
        (
            {"s.csv": "t,y\n1,2\n2,abc\n3,4\n"},
            ["forecast", "train", "--csv", "s.csv", "--target", "y"],
            ["abc"],
        ),
        (
            {"s.csv": "t,y\n1,2\n2,\n3,4\n"},
            ["forecast", "train", "--csv", "s.csv", "--target", "y"],
            ["missing"],
        ),
        (
            {"s.csv": "t,y\n" + "".join(f"{i},{i}\n" for i in range(10))},
            [
                "forecast",
                "train",
                "--csv",
                "s.csv",
                "--target",
                "y",
                "--horizon",
                6,
                "--window",
                12,
            ],
            ["points"],
        ),
        (
            {"a.ts": "@problemName a\n@classLabel true 1 2\n@data\n1,2,3:4,5,6:1\n1,2,3:2\n"},
            ["classify", "train", "--train", "a.ts", "--test", "a.ts"],
            ["a.ts", "line"],
        ),
        (
            {"bad.toml": "[forecast.train]\nwindoww = 3\n"},
            ["forecast", "train", "--config", "bad.toml"],
            ["unknown key 'windoww'"],
        ),
        (
            {"bad.toml": "[forecast.train]\nwindow = 'ten'\n"},
            ["forecast", "train", "--config", "bad.toml"],
            ["'window' must be a int"],
        ),
        ({"empty.txt": ""}, ["lm", "train", "--text", "empty.txt"], ["empty"]),
        ({}, ["lm", "train", "--text", "nope.txt"], ["nope.txt"]),
        ({}, ["lm", "sample", "--run", "runs/none"], ["run folder not found"]),
        ({}, ["forecast", "train", "--horizon", "0"], ["--horizon"]),
        ({}, ["lm", "train", "--resume"], ["--resume needs --name"]),
    ],
    ids=[
        "missing-file",
        "unknown-column",
        "non-numeric",
        "missing-value",
        "too-short",
        "ts-dimensions",
        "config-key",
        "config-type",
        "empty-text",
        "missing-text",
        "no-run",
        "bad-flag",
        "resume-without-name",
    ],
)
def test_bad_input_is_one_line_and_exit_2(files, args, fragments, tmp_path):
    for name, text in files.items():
        write(tmp_path / name, text)
    assert_bad_input(rnnkit(*args, cwd=tmp_path, check=False), *fragments)


def test_a_run_folder_of_another_task_is_refused(tmp_path):
    csv = series_csv(tmp_path)
    rnnkit(
        "forecast",
        "train",
        "--csv",
        csv,
        "--target",
        "y",
        "--name",
        "f",
        *FAST_FORECAST,
        cwd=tmp_path,
    )
    proc = rnnkit("lm", "sample", "--run", tmp_path / "runs" / "f", cwd=tmp_path, check=False)
    assert_bad_input(proc, "is a forecast run, not an lm run")
    proc = rnnkit(
        "classify",
        "eval",
        "--run",
        tmp_path / "runs" / "f",
        "--test",
        csv,
        cwd=tmp_path,
        check=False,
    )
    assert_bad_input(proc, "not a classify run")


@pytest.mark.skipif(not DATA.exists(), reason="shared data not available")
def test_classify_on_a_ucr_set(tmp_path):
    ucr = DATA / "ucr"
    proc = rnnkit(
        "classify",
        "train",
        "--train",
        ucr / "ItalyPowerDemand_TRAIN.ts",
        "--test",
        ucr / "ItalyPowerDemand_TEST.ts",
        "--epochs",
        3,
        "--hidden-size",
        8,
        "--ensemble",
        2,
        "--name",
        "c",
        "--no-plot",
        "-q",
        cwd=tmp_path,
    )
    assert "accuracy:" in proc.stdout and "macro-F1:" in proc.stdout
    assert "ensemble = 2" in (tmp_path / "runs" / "c" / "config.toml").read_text()
    assert "confusion matrix" in proc.stdout
    proc = rnnkit(
        "classify",
        "eval",
        "--run",
        tmp_path / "runs" / "c",
        "--test",
        ucr / "ItalyPowerDemand_TEST.ts",
        cwd=tmp_path,
    )
    assert "accuracy:" in proc.stdout


TINY_LM = [
    "--hidden-size",
    16,
    "--num-layers",
    1,
    "--embedding-dim",
    8,
    "--bptt",
    16,
    "--batch-size",
    4,
    "--sample-length",
    40,
    "--no-plot",
]


def corpus(tmp_path):
    return write(tmp_path / "text.txt", "the quick brown fox jumps over the lazy dog. " * 60)


def test_lm_train_sample_eval(tmp_path):
    text = corpus(tmp_path)
    proc = rnnkit(
        "lm", "train", "--text", text, "--steps", 30, "--name", "m", *TINY_LM, "-q", cwd=tmp_path
    )
    assert proc.stdout.strip()  # the samples are printed even when quiet
    run = tmp_path / "runs" / "m"
    for name in ("config.toml", "metrics.csv", "checkpoint.ckpt", "model.rnnkit", "samples.txt"):
        assert (run / name).exists(), name
    sample = ("lm", "sample", "--run", run, "--prime", "the ", "--length", 30, "--seed", 1)
    proc = rnnkit(*sample, "--top-k", 3, cwd=tmp_path)
    again = rnnkit(*sample, "--top-k", 3, cwd=tmp_path)
    assert proc.stdout == again.stdout and len(proc.stdout.strip()) >= 30
    other = write(tmp_path / "other.txt", "THE QUICK DOG ZZZ")
    proc = rnnkit("lm", "eval", "--run", run, "--text", other, cwd=tmp_path)
    assert "bits/char" in proc.stdout and "perplexity" in proc.stdout and "unseen" in proc.stdout


def test_lm_progress_lines_when_not_a_terminal(tmp_path):
    text = corpus(tmp_path)
    proc = rnnkit(
        "lm", "train", "--text", text, "--steps", 5, "--name", "p", *TINY_LM, cwd=tmp_path
    )
    assert "5/5 (100%)" in proc.stderr and "chars/s" in proc.stderr  # plain lines
    assert "\r" not in proc.stderr


def test_lm_resume_after_ctrl_c(tmp_path):
    """Ctrl-C stops after the current step with a checkpoint; --resume finishes the run."""
    text = corpus(tmp_path)
    args = [
        sys.executable,
        "-m",
        "rnnkit",
        "lm",
        "train",
        "--text",
        str(text),
        "--steps",
        "400",
        "--name",
        "r",
        *map(str, TINY_LM),
    ]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = tmp_path / "runs" / "r" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or metrics.stat().st_size < 200):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "--resume" in err and "Traceback" not in err
    run = tmp_path / "runs" / "r"
    assert (run / "checkpoint.ckpt").exists() and not (run / "model.rnnkit").exists()
    done = rnnkit("lm", "train", "--name", "r", "--resume", "-q", cwd=tmp_path)
    assert done.stdout.strip()
    from rnnkit import checkpoint

    assert checkpoint.load(run / "checkpoint.ckpt")["progress"]["step"] == 400
    assert (run / "model.rnnkit").exists()
