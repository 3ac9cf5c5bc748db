"""Crash-safe training in the task estimators and the command: a fit killed right after any
checkpoint resumes and ends bit for bit as the uninterrupted one (ensembles, schedules, early
stopping included); a command SIGKILLed mid-run resumes with --resume, also when it was killed
before its first checkpoint. (tools/kill_resume.py does this 50 times at random moments.)"""

from __future__ import annotations

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
from rnnkit.apps.classify import RNNClassifier
from rnnkit.apps.classify.estimator import member_checkpoint
from rnnkit.apps.forecast import RNNForecaster
from test_classify import waves
from test_training import Killed, untimed

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def kill_after(n):
    """A callback that 'kills' the fit right after its n-th checkpoint."""
    seen = []

    def callback(event, trainer, row):
        if event == "checkpoint":
            seen.append(row["step"])
            if len(seen) == n:
                raise Killed

    return callback


def same_params(a, b):
    return all(
        np.array_equal(x, y) for m, n in zip(a, b) for x, y in zip(m.values(), n.values())
    ) and [list(m) for m in a] == [list(n) for n in b]


@pytest.mark.parametrize(
    "options",
    [
        {"ensemble": 2, "epochs": 3},
        {"lr_schedule": "cosine", "epochs": 4, "dropout": 0.2},
        {"patience": 1, "val_fraction": 0.3, "epochs": 30, "lr": 0.05},
    ],
    ids=["ensemble", "cosine", "early-stopping"],
)
def test_classifier_killed_after_any_checkpoint_resumes_exactly(tmp_path, options):
    X, y = waves(8, seed=1)
    params = {"hidden_size": 6, "batch_size": 8, "quiet": True, "seed": 3} | options
    straight = RNNClassifier(**params).fit(X, y)
    expected = [m.state_dict() for m in straight.models_]
    probe = tmp_path / "probe.ckpt"
    count = []
    RNNClassifier(**params).fit(
        X,
        y,
        checkpoint=probe,
        checkpoint_seconds=0,
        callbacks=(lambda e, t, r: count.append(1) if e == "checkpoint" else None,),
    )
    total = len(count)
    assert total >= 6
    for n in sorted({1, 2, total // 2, total - 2, total - 1}):
        path = tmp_path / f"k{n}" / "run.ckpt"
        path.parent.mkdir()
        with pytest.raises(Killed):
            RNNClassifier(**params).fit(
                X, y, checkpoint=path, checkpoint_seconds=0, callbacks=(kill_after(n),)
            )
        resumed = RNNClassifier(**params).fit(
            X, y, checkpoint=path, resume=True, checkpoint_seconds=0
        )
        assert same_params(expected, [m.state_dict() for m in resumed.models_]), n
        assert resumed.stopped_ == straight.stopped_
        np.testing.assert_array_equal(resumed.predict_proba(X), straight.predict_proba(X))
        assert untimed(resumed.history_) == untimed(straight.history_)
    if options.get("ensemble") == 2:
        assert (
            member_checkpoint(path, 1).name == "run-1.ckpt" and member_checkpoint(path, 1).exists()
        )


def test_forecaster_killed_after_any_checkpoint_resumes_exactly(tmp_path):
    t = np.arange(160)
    y = 10 + np.sin(t / 5) + 0.1 * np.cos(t / 2.3)
    params = {"window": 12, "hidden_size": 6, "epochs": 4, "batch_size": 16, "quiet": True}
    straight = RNNForecaster(**params).fit(y)
    for n in (1, 5, 11):
        path = tmp_path / f"k{n}.ckpt"
        with pytest.raises(Killed):
            RNNForecaster(**params).fit(
                y, checkpoint=path, checkpoint_seconds=0, callbacks=(kill_after(n),)
            )
        resumed = RNNForecaster(**params).fit(y, checkpoint=path, resume=True)
        assert same_params([straight.model_.state_dict()], [resumed.model_.state_dict()])
        np.testing.assert_array_equal(resumed.predict(horizon=5), straight.predict(horizon=5))
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        RNNForecaster(**params).fit(y, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        RNNClassifier(hidden_size=4).fit(*waves(2, seed=0), resume=True)


# -- the command ----------------------------------------------------------------------------


def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 80, encoding="utf-8")
    return path


def lm_args(tmp_path, name, steps=60):
    return [
        sys.executable,
        "-m",
        "rnnkit",
        "lm",
        "train",
        "--text",
        str(text_file(tmp_path)),
        "--name",
        name,
        "--hidden-size",
        "16",
        "--num-layers",
        "1",
        "--embedding-dim",
        "8",
        "--bptt",
        "16",
        "--batch-size",
        "4",
        "--steps",
        str(steps),
        "--sample-length",
        "40",
        "--checkpoint-seconds",
        "0",
        "--no-plot",
        "-q",
    ]


def resume_args(name):
    return [sys.executable, "-m", "rnnkit", "lm", "train", "--name", name, "--resume", "-q"]


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def finished(folder):
    """The run's parameters, samples and untimed metrics."""
    rows = [
        line.split(",")[:6] + line.split(",")[8:]  # without seconds, examples_per_s
        for line in (folder / "metrics.csv").read_text().splitlines()
    ]
    model = checkpoint.load(folder / "model.rnnkit")
    return model, (folder / "samples.txt").read_text(), rows


def assert_same_run(a, b):
    (ma, sa, ra), (mb, sb, rb) = finished(a), finished(b)
    assert sa == sb and ra == rb
    pa, pb = ma["state"]["model"], mb["state"]["model"]
    assert list(pa) == list(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_lm_train_sigkilled_mid_run_resumes_bit_identically(tmp_path):
    run(lm_args(tmp_path, "straight"), tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        lm_args(tmp_path, "killed"), cwd=tmp_path, env=ENV, stderr=subprocess.DEVNULL
    )
    ckpt = runs / "killed" / "checkpoint.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and checkpoint.peek(ckpt)["progress"]["step"] >= 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (runs / "killed" / "model.rnnkit").exists()
    run(resume_args("killed"), tmp_path)
    assert_same_run(runs / "straight", runs / "killed")
    assert sorted(p.name for p in runs.iterdir()) == ["killed", "straight"]
    assert not [p for p in (runs / "killed").iterdir() if p.name.startswith(".")]


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(tmp_path):
    run(lm_args(tmp_path, "straight"), tmp_path)
    runs = tmp_path / "runs"
    # what a kill in the first seconds leaves: the config, part of a log, a stale temporary
    early = runs / "early"
    early.mkdir()
    shutil.copy(runs / "straight" / "config.toml", early / "config.toml")
    (early / "metrics.csv").write_text("step,epoch,kind\n1,0,train\n")
    (early / ".checkpoint.ckpt.0123456789ab.tmp").write_bytes(b"PK\x03\x04 half a write")
    proc = run(resume_args("early"), tmp_path)
    assert proc.stderr == "" and "--- sample" in proc.stdout  # -q: only the sample
    assert_same_run(runs / "straight", early)
    assert sorted(p.name for p in early.iterdir() if p.name.startswith(".")) == []


def test_classify_and_forecast_commands_checkpoint_and_resume(tmp_path):
    X, y = waves(6, seed=0)
    lines = ["label," + ",".join(f"t{i}" for i in range(20))]
    lines += [f"{label}," + ",".join(f"{v:.5f}" for v in x[:20, 0]) for x, label in zip(X, y)]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    base = [sys.executable, "-m", "rnnkit", "classify", "train", "--train", "w.csv"]
    args = [*base, "--test", "w.csv", "--epochs", "2", "--hidden-size", "4", "--ensemble", "2"]
    run([*args, "--name", "c", "--no-plot", "-q"], tmp_path)
    folder = tmp_path / "runs" / "c"
    assert (folder / "checkpoint.ckpt").exists() and (folder / "checkpoint-1.ckpt").exists()
    again = run([*base[:4], "train", "--name", "c", "--resume", "-q", "--no-plot"], tmp_path)
    assert "accuracy:" in again.stdout  # both networks were finished: nothing retrained

    t = np.arange(120)
    (tmp_path / "s.csv").write_text(
        "y\n" + "\n".join(f"{10 + np.sin(v / 4):.6f}" for v in t) + "\n"
    )
    fc = [sys.executable, "-m", "rnnkit", "forecast", "train", "--csv", "s.csv", "--target", "y"]
    run([*fc, "--epochs", "3", "--hidden-size", "4", "--name", "f", "--no-plot", "-q"], tmp_path)
    assert (tmp_path / "runs" / "f" / "checkpoint.ckpt").exists()
    assert checkpoint.peek(tmp_path / "runs" / "f" / "checkpoint.ckpt")["progress"]["epoch"] == 3
