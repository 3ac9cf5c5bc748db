"""Run folders that never lose work: ``--overwrite`` replaces an old run only once the new one
has a checkpoint or has finished; bad input, system errors (a file in the way, a read-only or
full disk, a device as text), a diverged model and a killed run all leave the old run as it
was and give one line on stderr; ``--resume`` keeps the stored settings and finds its files
from any folder.

Most cases run the command in a subprocess (``test_cli.rnnkit``). The disk-full and
read-only cases run it in-process with the failure injected, and once more for real on a
small tmpfs where the machine lets the tests mount one."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import rnnkit as rk
import rnnkit.apps as rk_apps
import rnnkit.apps.lm
import training_job
from rnnkit import checkpoint
from rnnkit.apps.cli import cli
from rnnkit.apps.cli.runs import CHECKPOINT, METRICS, RunFolder
from rnnkit.training import MetricLog
from test_cli import ENV, TINY_LM, assert_bad_input, corpus, rnnkit, series_csv, write


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def train_lm(tmp_path, name="keep", *extra, runs=None, check=True):
    runs = runs or tmp_path / "runs"
    text = corpus(tmp_path)
    args = ["lm", "train", "--text", text, "--steps", 6, "--name", name, "--runs-dir", runs]
    return rnnkit(*args, *TINY_LM, "-q", *extra, cwd=tmp_path, check=check)


@pytest.fixture
def kept(tmp_path):
    """A finished lm run ``runs/keep`` and a snapshot of its files."""
    train_lm(tmp_path)
    run = tmp_path / "runs" / "keep"
    before = snapshot(run)
    assert {"checkpoint.ckpt", "model.rnnkit", "metrics.csv", "config.toml"} <= set(before)
    return run, before


def assert_intact(run: Path, before: dict[str, str]) -> None:
    """The old run is unchanged and nothing of the failed one is left beside it."""
    assert snapshot(run) == before
    assert [p.name for p in run.parent.iterdir()] == [run.name], list(run.parent.iterdir())


# -- --overwrite ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--text", "nope.txt"], "nope.txt"),
        (["--hidden-size", 0], "hidden_size"),
        (["--cell", "lstm", "--dropout", 2.0], "dropout"),
        (["--text", "/dev/zero"], "character device"),
    ],
    ids=["missing-text", "hidden-size-0", "dropout-2", "dev-zero"],
)
def test_overwrite_with_bad_input_keeps_the_old_run(tmp_path, kept, args, fragment):
    run, before = kept
    proc = rnnkit(
        "lm", "train", "--name", "keep", "--overwrite", *args, "-q", cwd=tmp_path, check=False
    )
    assert_bad_input(proc, fragment)
    assert_intact(run, before)


def test_overwrite_replaces_the_run_once_it_has_finished(tmp_path, kept):
    run, before = kept
    train_lm(tmp_path, "keep", "--overwrite", "--seed", 5)
    after = snapshot(run)
    assert set(after) == set(before) and after["model.rnnkit"] != before["model.rnnkit"]
    assert "seed = 5" in (run / "config.toml").read_text()
    assert [p.name for p in run.parent.iterdir()] == ["keep"]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    mine = tmp_path / "runs" / "mine"
    mine.mkdir(parents=True)
    write(mine / "thesis.tex", "years of work")
    proc = train_lm(tmp_path, "mine", "--overwrite", check=False)
    assert_bad_input(proc, "not an rnnkit run folder")
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_a_killed_overwrite_leaves_the_old_run_and_is_cleaned_up_next_time(tmp_path, kept):
    """SIGKILL in the middle of an overwriting run, before its first checkpoint: the old run
    is intact; the staging folder it leaves is removed by the next command on that name."""
    run, before = kept
    text = corpus(tmp_path)
    command = [sys.executable, "-m", "rnnkit", "lm", "train", "--text", str(text), "--steps"]
    command += ["100000", "--name", "keep", "--overwrite", *map(str, TINY_LM), "-q"]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = tmp_path / "runs" / f".keep.new-{proc.pid}"
    deadline = time.time() + 60
    while time.time() < deadline and not (staging / "metrics.csv").exists():
        time.sleep(0.02)
    assert (staging / "metrics.csv").exists(), "the new run never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert snapshot(run) == before and staging.exists()
    assert_bad_input(train_lm(tmp_path, "keep", check=False), "already exists")
    assert_intact(run, before)  # the dead run's staging folder is gone


def test_a_new_run_that_fails_leaves_nothing(tmp_path):
    proc = train_lm(tmp_path, "fresh", "--hidden-size", 0, check=False)
    assert_bad_input(proc, "hidden_size")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_forecast_and_classify_overwrite_keep_the_old_run_on_bad_input(tmp_path):
    csv = series_csv(tmp_path)
    fast = ["--window", 12, "--horizon", 6, "--epochs", 2, "--hidden-size", 8, "--no-plot", "-q"]
    rnnkit("forecast", "train", "--csv", csv, "--target", "y", "--name", "f", *fast, cwd=tmp_path)
    run = tmp_path / "runs" / "f"
    before = snapshot(run)
    proc = rnnkit(
        *["forecast", "train", "--csv", csv, "--target", "zz", "--name", "f", "--overwrite"],
        cwd=tmp_path,
        check=False,
    )
    assert_bad_input(proc, "no column 'zz'")
    assert_intact(run, before)
    proc = rnnkit(
        *["classify", "train", "--train", "nope.ts", "--test", "nope.ts", "--name", "f"],
        "--overwrite",
        cwd=tmp_path,
        check=False,
    )
    assert_bad_input(proc, "nope.ts")
    assert_intact(run, before)


# -- system errors ----------------------------------------------------------------------------


def test_a_file_as_runs_dir_is_one_line(tmp_path):
    write(tmp_path / "runs", "not a folder")
    assert_bad_input(train_lm(tmp_path, check=False), "--runs-dir", "is a file")
    assert (tmp_path / "runs").read_text() == "not a folder"


def test_a_folder_as_text_is_one_line(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    proc = rnnkit("lm", "train", "--text", "folder.txt", cwd=tmp_path, check=False)
    assert_bad_input(proc, "folder.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_text_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    proc = rnnkit("lm", "train", "--text", "pipe.txt", cwd=tmp_path, check=False, timeout=60)
    assert_bad_input(proc, "FIFO")


def run_in_process(capsys, *args) -> tuple[int, str]:
    """The command in this process (so that a failure can be injected): exit code, stderr."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(args=[str(a) for a in args], prog_name="rnnkit", standalone_mode=False)
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "error", "fragment"),
    [
        ("checkpoint", OSError(errno.ENOSPC, "No space left on device"), "No space left"),
        ("mkdir", PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        ("log", OSError(errno.EROFS, "Read-only file system"), "Read-only"),
    ],
    ids=["disk-full-at-checkpoint", "read-only-runs-dir", "read-only-log"],
)
def test_system_errors_are_one_line_and_keep_the_old_run(
    tmp_path, kept, capsys, monkeypatch, where, error, fragment
):
    run, before = kept
    error.filename = str(tmp_path / "runs" / "x")

    def fail(*args, **kwargs):
        raise error

    if where == "checkpoint":
        monkeypatch.setattr(checkpoint, "save", fail)
    elif where == "mkdir":
        monkeypatch.setattr(Path, "mkdir", fail)
    else:
        monkeypatch.setattr(rk.training.MetricLog, "write", fail)
    code, err = run_in_process(
        capsys, "lm", "train", "--text", corpus(tmp_path), "--steps", 6, "--name", "keep",
        "--runs-dir", tmp_path / "runs", "--overwrite", *TINY_LM, "-q",
    )  # fmt: skip
    monkeypatch.undo()
    assert code == 2 and err.startswith("rnnkit: error: ") and fragment in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert_intact(run, before)


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs, where the machine allows mounting one (root on Linux)."""
    where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_really_full_disk_keeps_the_old_run(tmp_path, tmpfs):
    runs = tmpfs / "runs"
    train_lm(tmp_path, runs=runs)
    before = snapshot(runs / "keep")
    with open(tmpfs / "filler", "wb", buffering=0) as f:  # fill the disk to the last page
        with pytest.raises(OSError, match="No space left"):
            while True:
                f.write(b"\0" * 4096)
    proc = train_lm(tmp_path, "keep", "--overwrite", runs=runs, check=False)
    assert_bad_input(proc, "No space left on device")
    assert_intact(runs / "keep", before)


def test_a_really_read_only_disk_is_one_line(tmp_path, tmpfs):
    runs = tmpfs / "runs"
    train_lm(tmp_path, runs=runs)
    before = snapshot(runs / "keep")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    assert_bad_input(train_lm(tmp_path, "keep", "--overwrite", runs=runs, check=False), "Read-only")
    assert_bad_input(train_lm(tmp_path, "other", runs=runs, check=False), "Read-only")
    assert_intact(runs / "keep", before)


# -- divergence and overflow ------------------------------------------------------------------


def test_a_diverging_lm_stops_with_one_line_and_keeps_the_old_run(tmp_path, kept):
    run, before = kept
    proc = train_lm(tmp_path, "keep", "--overwrite", "--lr", 1e6, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: training failed: "), proc.stderr
    for fragment in ("diverged", "learning rate 1e+06", "is as it was before"):
        assert fragment in lines[0], lines[0]
    assert_intact(run, before)


def test_lm_eval_of_a_diverged_model_reports_an_infinite_perplexity(tmp_path, kept):
    run, _ = kept
    model = rk_apps.CharLM.load(run / "model.rnnkit")
    weight = model.model_.parameters()["head.weight"]
    weight *= 1e6  # logits in the millions: cross-entropy far beyond exp's range
    model.save(run / "model.rnnkit")
    proc = rnnkit("lm", "eval", "--run", run, "--text", corpus(tmp_path), cwd=tmp_path)
    assert "perplexity:    inf" in proc.stdout, proc.stdout
    assert rk_apps.lm.perplexity(710.0) == np.inf


def test_a_series_near_the_float_limit_is_refused(tmp_path):
    values = 1e300 * (1 + 0.1 * np.sin(np.arange(60) / 3))
    write(
        tmp_path / "big.csv", "t,y\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values))
    )
    proc = rnnkit(
        *["forecast", "train", "--csv", "big.csv", "--target", "y", "--horizon", 3, "--window"],
        *[6, "--epochs", 2, "--no-plot", "-q"],
        cwd=tmp_path,
        check=False,
    )
    assert_bad_input(proc, "1e+300", "divide the series")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- --resume ---------------------------------------------------------------------------------


def test_resume_refuses_a_new_seed(tmp_path, kept):
    run, before = kept
    proc = rnnkit(
        *["lm", "train", "--name", "keep", "--resume", "--steps", 8, "--seed", 99],
        cwd=tmp_path,
        check=False,
    )
    assert_bad_input(proc, "--seed", "stored config")
    assert snapshot(run) == before


def test_resume_finds_a_relative_text_from_another_folder(tmp_path):
    corpus(tmp_path)
    rnnkit(
        *["lm", "train", "--text", "text.txt", "--steps", 4, "--name", "r"], *TINY_LM, "-q",
        cwd=tmp_path,
    )  # fmt: skip
    stored = (tmp_path / "runs" / "r" / "config.toml").read_text()
    assert f'text = ["{tmp_path / "text.txt"}"]' in stored
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rnnkit(
        *["lm", "train", "--name", "r", "--runs-dir", tmp_path / "runs", "--resume"],
        *["--steps", 8, "-q"],
        cwd=elsewhere,
    )
    assert checkpoint.load(tmp_path / "runs" / "r" / "checkpoint.ckpt")["progress"]["step"] == 8


def test_an_overwriting_run_takes_the_place_of_the_old_one_at_its_first_checkpoint(tmp_path):
    """RunFolder with a Trainer that checkpoints every 3 steps: until the first checkpoint the
    old run is in place; from then on the new run is, and the trainer writes into it."""
    old = tmp_path / "runs" / "x"
    old.mkdir(parents=True)
    write(old / "config.toml", "[lm]\nold = true\n")
    run = RunFolder.create(tmp_path / "runs", "x", "lm", overwrite=True, resume=False)
    trainer, data = training_job.build()
    seen = []

    def watch(event, t, row):
        if event == "step":
            seen.append((row["step"], (old / "config.toml").read_text().startswith("[lm]\nold")))

    with run.writing({"new": True}):
        trainer.checkpoint_path, trainer.log = run.file(CHECKPOINT), MetricLog(run.file(METRICS))
        trainer.checkpoint_every = 3
        trainer.callbacks += [watch, run.checkpointed]
        trainer.fit(data, steps=7)
    assert seen == [(1, True), (2, True), (3, True), (4, False), (5, False), (6, False), (7, False)]
    assert checkpoint.load(old / "checkpoint.ckpt")["progress"]["step"] == 7
    assert len(MetricLog(old / "metrics.csv").read()) == 7
    assert sorted(p.name for p in old.parent.iterdir()) == ["x"]
