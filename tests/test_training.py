"""The training loop: learning, accumulation, non-finite steps, validation and early stopping,
logs, truncated BPTT with carried and reset states, checkpoints that resume exactly (also in a
new process), a failed checkpoint write, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import training_job
from rnnkit import checkpoint
from rnnkit.data import SequenceData, StreamData
from rnnkit.training import MetricLog, TrainingError

ROOT = Path(__file__).resolve().parent.parent


def regression_data(n=48, seed=0, equal=False, negate=False, batch_size=8):
    rng = np.random.default_rng(seed)
    lengths = np.full(n, 5) if equal else rng.integers(2, 9, n)
    xs = [rng.normal(size=(int(t), 3)) for t in lengths]
    ys = [(-1 if negate else 1) * np.array([x[:, 0].sum()]) for x in xs]
    return SequenceData(xs, ys, batch_size=batch_size, dtype=np.float64, shuffle=False)


def regressor(seed=1, **kw):
    return rnnkit.SequenceRegressor(3, 8, 1, dtype=np.float64, seed=seed, **kw)


def test_training_learns():
    data = regression_data()
    model = regressor()
    trainer = rnnkit.Trainer(model, rnnkit.optim.Adam(model.parameters(), lr=0.02), "mse")
    before = trainer.evaluate(data)["loss"]
    result = trainer.fit(data, epochs=30)
    after = trainer.evaluate(data)["loss"]
    assert result.stopped == "epochs" and result.step == 30 * len(data)
    assert after < 0.05 * before


def test_gradient_accumulation_equals_a_bigger_batch():
    runs = []
    for batch_size, accumulate in [(8, 1), (4, 2)]:
        model = regressor()
        opt = rnnkit.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        trainer = rnnkit.Trainer(model, opt, "mse", accumulate=accumulate)
        trainer.fit(regression_data(equal=True, batch_size=batch_size), steps=6)
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_allclose(runs[1][k], runs[0][k], rtol=1e-12, atol=1e-14)


def test_nonfinite_steps_are_skipped_then_stop_training(tmp_path):
    calls = {"n": 0}

    def flaky_mse(pred, target, mask=None, reduction="mean"):
        calls["n"] += 1
        loss, d = rnnkit.losses.mse(pred, target, mask=mask, reduction=reduction)
        if calls["n"] in (3, 5, 6, 7):  # one isolated bad step, then three in a row
            d = d * np.nan
        return loss, d

    model = regressor()
    trainer = rnnkit.Trainer(
        model,
        rnnkit.optim.Adam(model.parameters()),
        flaky_mse,
        max_nonfinite=3,
        log=tmp_path / "log.jsonl",
    )
    seen = []
    trainer.callbacks.append(lambda event, t, row: seen.append((event, row["step"])))
    with pytest.raises(TrainingError, match=r"non-finite.* in 3 steps in a row"):
        trainer.fit(regression_data(), steps=20)
    assert ("skip", 2) in seen and trainer.progress.step == 3  # steps 3, 5, 6, 7 not applied
    assert trainer.progress.skipped == 4
    rows = MetricLog(tmp_path / "log.jsonl").read()
    assert [r["kind"] for r in rows].count("skip") == 4


def test_skipped_step_changes_nothing():
    model = regressor()
    opt = rnnkit.optim.Adam(model.parameters())

    def nan_loss(pred, target, mask=None, reduction="mean"):
        return float("nan"), np.zeros_like(pred)

    before = model.state_dict()
    trainer = rnnkit.Trainer(model, opt, nan_loss, max_nonfinite=10)
    with pytest.raises(TrainingError):
        trainer.fit(regression_data(), steps=20)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert opt.step_count == 0


def test_early_stopping_restores_the_best(tmp_path):
    model = regressor()
    trainer = rnnkit.Trainer(
        model, rnnkit.optim.Adam(model.parameters(), lr=0.05), "mse", log=tmp_path / "log.csv"
    )
    val = regression_data(seed=0, negate=True)  # better on train means worse here
    result = trainer.fit(regression_data(), epochs=50, val=val, val_every=2, patience=3)
    assert result.stopped == "early_stopping" and result.step < 50 * 6
    assert trainer.evaluate(val)["loss"] == pytest.approx(result.best, rel=1e-12)
    rows = MetricLog(tmp_path / "log.csv").read()
    vals = [float(r["loss"]) for r in rows if r["kind"] == "val"]
    assert len(vals) == 4 and min(vals) == pytest.approx(result.best)
    assert result.history["kind"].count("val") == 4


def test_plateau_schedule_follows_validation():
    model = regressor()
    opt = rnnkit.optim.Adam(model.parameters(), lr=0.05)
    plateau = rnnkit.optim.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    trainer = rnnkit.Trainer(model, opt, "mse", schedule=plateau)
    trainer.fit(regression_data(), epochs=6, val=regression_data(negate=True))
    assert opt.lr < 0.05


def lm_tokens(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 9, n)


def test_stateful_evaluation_equals_one_long_sequence():
    """Carrying the state across truncated-BPTT chunks computes exactly the full sequence."""
    tokens = lm_tokens()
    model = rnnkit.LanguageModel(9, 4, 6, dtype=np.float64, seed=0)
    trainer = rnnkit.Trainer(
        model, rnnkit.optim.SGD(model.parameters(), lr=0.1), "cross_entropy", stateful=True
    )
    chunked = trainer.evaluate(StreamData(tokens, batch_size=3, bptt=7))["loss"]
    data = StreamData(tokens, batch_size=3, bptt=10_000)  # one chunk holds everything
    whole = trainer.evaluate(data)["loss"]
    assert chunked == pytest.approx(whole, rel=1e-12)


def test_documents_reset_the_state_per_row():
    docs = [lm_tokens(n, seed) for seed, n in enumerate([30, 11, 25, 7, 18])]
    model = rnnkit.LanguageModel(9, 4, 6, dtype=np.float64, seed=0)
    trainer = rnnkit.Trainer(
        model, rnnkit.optim.SGD(model.parameters(), lr=0.1), "cross_entropy", stateful=True
    )
    data = StreamData(docs, batch_size=2, bptt=4)
    assert data.reset[0].all() and data.reset.sum() == 5  # every document starts on a reset
    total = trainer.evaluate(data)["loss"] * sum(len(d) - 1 for d in docs)
    alone = 0.0
    for d in docs:  # each document on its own, from a zero state
        logits, _, _ = model.forward(d[:-1, None])
        alone += rnnkit.losses.cross_entropy(logits, d[1:, None], reduction="sum")[0]
    assert total == pytest.approx(alone, rel=1e-12)


def test_stateful_training_runs_and_carries_state():
    model = rnnkit.LanguageModel(9, 4, 6, cell="gru", dtype=np.float64, seed=0)
    trainer = rnnkit.Trainer(
        model,
        rnnkit.optim.Adam(model.parameters(), lr=0.01),
        "cross_entropy",
        stateful=True,
        clip_norm=1.0,
    )
    result = trainer.fit(StreamData(lm_tokens(), batch_size=4, bptt=8), epochs=2)
    assert result.step == 2 * len(StreamData(lm_tokens(), 4, 8))
    assert trainer.state.shape == (1, 4, 6)


def test_resume_in_process_is_exact(tmp_path):
    straight, data = training_job.build()
    straight.fit(data, steps=14)
    first, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    first.fit(data, steps=7)
    second, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    assert second.load_checkpoint(tmp_path / "run.ckpt") == {"job": "test"}
    second.fit(data, steps=14)
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert second.progress.step == 14 and second.history["step"] == straight.history["step"]


def test_resume_in_a_new_process_is_exact(tmp_path):
    """N steps straight == N/2 steps, a checkpoint, a new process and N/2 more: identical
    float64 parameters."""
    job = str(ROOT / "tests" / "training_job.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for args in (
        [tmp_path / "straight.ckpt", 12],
        [tmp_path / "halves.ckpt", 6],
        [tmp_path / "halves.ckpt", 12, "--resume"],
    ):
        subprocess.run([sys.executable, job, *map(str, args)], check=True, env=env, timeout=120)
    a = checkpoint.load(tmp_path / "straight.ckpt")
    b = checkpoint.load(tmp_path / "halves.ckpt")
    assert a["progress"]["step"] == b["progress"]["step"] == 12
    for k, v in a["model"]["params"].items():
        assert np.array_equal(v, b["model"]["params"][k]), k
    for k, v in a["optimizer"]["state"].items():
        for name, arr in v.items():
            assert np.array_equal(arr, b["optimizer"]["state"][k][name])


TIMINGS = ("seconds", "examples_per_s")


def untimed(history):
    """A history (dict of columns) or log (list of rows) without its wall-clock columns."""
    if isinstance(history, dict):
        return {k: v for k, v in history.items() if k not in TIMINGS}
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in history]


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint: nothing after it runs."""


def run_killed_and_resumed(tmp_path, kill_at, *, ctrl_c=False, **until):
    """Train with a checkpoint every step and validation every epoch; stop right after the
    checkpoint of step ``kill_at`` (a crash, or Ctrl-C), then resume in a new trainer (and a
    new log) and finish. Returns the resumed trainer, its result and its log rows."""
    path, log = tmp_path / f"k{kill_at}.ckpt", tmp_path / f"k{kill_at}.csv"
    first, data = training_job.build(checkpoint=path)
    first.checkpoint_every, first.log = 1, MetricLog(log)

    def stop(event, t, row):
        if ctrl_c and event == "step" and row["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGINT)
        if not ctrl_c and event == "checkpoint" and row["step"] == kill_at:
            raise Killed

    first.callbacks.append(stop)
    if ctrl_c:
        assert first.fit(data, val=data, **until).stopped == "interrupted"
    else:
        with pytest.raises(Killed):
            first.fit(data, val=data, **until)
    second, data = training_job.build(checkpoint=path)
    second.log = MetricLog(log)
    second.load_checkpoint(path)
    result = second.fit(data, val=data, **until)
    return second, result, MetricLog(log).read()


@pytest.mark.parametrize("until", [{"epochs": 2}, {"steps": 10}], ids=["epochs", "steps"])
def test_resume_after_a_kill_at_every_batch_is_exact(tmp_path, until):
    """A checkpoint on an epoch's last batch (6 batches an epoch) resumes into the epoch's
    end (counted, validated) and not into an extra epoch."""
    straight, data = training_job.build()
    straight.log = MetricLog(tmp_path / "straight.csv")
    expected = straight.fit(data, val=data, **until)
    params = straight.model.state_dict()
    assert expected.step == until.get("steps", 12) and expected.epoch == 2 - ("steps" in until)
    for kill_at in range(1, expected.step):
        resumed, result, rows = run_killed_and_resumed(tmp_path, kill_at, **until)
        assert (result.step, result.epoch, result.stopped) == (
            expected.step,
            expected.epoch,
            expected.stopped,
        ), kill_at
        got = resumed.model.state_dict()
        assert all(np.array_equal(params[k], got[k]) for k in params), kill_at
        assert untimed(resumed.history) == untimed(straight.history), kill_at
        assert untimed(rows) == untimed(MetricLog(tmp_path / "straight.csv").read()), kill_at


@pytest.mark.parametrize("kill_at", [5, 6, 7])
def test_ctrl_c_at_an_epochs_last_batch_resumes_exactly(tmp_path, kill_at):
    straight, data = training_job.build()
    expected = straight.fit(data, val=data, epochs=2)
    resumed, result, _ = run_killed_and_resumed(tmp_path, kill_at, ctrl_c=True, epochs=2)
    assert (result.step, result.epoch) == (expected.step, expected.epoch) == (12, 2)
    params, got = straight.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(params[k], got[k]) for k in params)
    assert untimed(resumed.history) == untimed(straight.history)


def test_a_diverging_run_stops_with_the_step_and_learning_rate(tmp_path):
    """Adam at a learning rate of 1e6 gives finite but runaway losses: they are skipped like
    non-finite ones, and training stops with a message instead of running on."""
    model = regressor()
    path = tmp_path / "run.ckpt"
    trainer = rnnkit.Trainer(
        model, rnnkit.optim.Adam(model.parameters(), lr=1e6), "mse", checkpoint=path
    )
    trainer.fit(regression_data(), steps=1)  # a good checkpoint at step 1
    with pytest.raises(TrainingError, match=r"diverged.*1000 times.*learning rate 1e\+06"):
        trainer.fit(regression_data(), steps=200)
    skipped = [note for note in trainer.history["note"] if note]
    assert len(skipped) == 5 and all("above 1000 times" in n for n in skipped)
    assert (
        max(v for v, k in zip(trainer.history["loss"], trainer.history["kind"]) if k == "train")
        < 1e6
    )
    assert checkpoint.load(path)["progress"]["step"] == 1  # the last good one, untouched


def test_divergence_check_can_be_switched_off_and_is_validated():
    model = regressor()
    opt = rnnkit.optim.Adam(model.parameters(), lr=1e6)
    trainer = rnnkit.Trainer(model, opt, "mse", divergence=None)
    assert trainer.fit(regression_data(), steps=30).step == 30
    for bad in (1, 0.5, float("inf"), "10", True):
        with pytest.raises(ValueError, match="divergence must be a number > 1 or None"):
            rnnkit.Trainer(model, opt, "mse", divergence=bad)


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    trainer, data = training_job.build(checkpoint=path)
    trainer.fit(data, steps=3)
    saved = trainer.model.state_dict()

    def crash(tmp, target):
        raise OSError("disk died between writing and renaming")

    monkeypatch.setattr(checkpoint, "_replace", crash)
    with pytest.raises(OSError, match="disk died"):
        trainer.fit(data, steps=5)  # the end-of-fit checkpoint fails
    monkeypatch.undo()
    fresh, _ = training_job.build()
    fresh.load_checkpoint(path)
    assert fresh.progress.step == 3
    assert all(np.array_equal(v, fresh.model.state_dict()[k]) for k, v in saved.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary left


def test_ctrl_c_checkpoints_then_stops(tmp_path):
    trainer, data = training_job.build(checkpoint=tmp_path / "run.ckpt")

    def press_ctrl_c(event, t, row):
        if event == "step" and row["step"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    trainer.callbacks.append(press_ctrl_c)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    result = trainer.fit(data, steps=100)
    assert result.stopped == "interrupted" and result.step == 4
    assert checkpoint.load(tmp_path / "run.ckpt")["progress"]["step"] == 4
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_checkpoint_of_another_model_is_refused(tmp_path):
    trainer, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    trainer.fit(data, steps=1)
    model = rnnkit.SequenceClassifier(3, 6, 2, dtype=np.float64, seed=0)
    other = rnnkit.Trainer(model, rnnkit.optim.Adam(model.parameters()), "cross_entropy")
    before = model.state_dict()
    with pytest.raises(checkpoint.CheckpointError, match="holds a SequenceRegressor"):
        other.load_checkpoint(tmp_path / "run.ckpt")
    assert all(np.array_equal(before[k], model.state_dict()[k]) for k in before)
    small = rnnkit.SequenceRegressor(3, 5, 2, dtype=np.float64, seed=0)  # other sizes
    third = rnnkit.Trainer(small, rnnkit.optim.Adam(small.parameters()), "mse", schedule=None)
    with pytest.raises(checkpoint.CheckpointError, match="schedule"):
        third.load_checkpoint(tmp_path / "run.ckpt")


def test_bad_arguments():
    model = regressor()
    opt = rnnkit.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="loss must be one of"):
        rnnkit.Trainer(model, opt, "hinge")
    with pytest.raises(ValueError, match="clip_norm must be a positive number"):
        rnnkit.Trainer(model, opt, clip_norm=0)
    with pytest.raises(ValueError, match="fit needs epochs or steps"):
        rnnkit.Trainer(model, opt).fit(regression_data())
    with pytest.raises(ValueError, match=r"log must be a \.csv or \.jsonl file"):
        rnnkit.Trainer(model, opt, log="run.txt")


def checkpoint_steps(trainer):
    """Record the step of every checkpoint the trainer writes."""
    steps = []
    trainer.callbacks.append(
        lambda event, t, row: steps.append(row["step"]) if event == "checkpoint" else None
    )
    return steps


def test_checkpoints_after_every_validation_and_at_the_end(tmp_path):
    trainer, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    trainer.checkpoint_seconds = None
    steps = checkpoint_steps(trainer)
    trainer.fit(data, epochs=3, val=data)  # 6 batches an epoch
    assert steps == [6, 12, 18, 18]  # three validations, then the end of fit
    trainer, data = training_job.build(checkpoint=tmp_path / "run2.ckpt")
    trainer.checkpoint_seconds = None
    steps = checkpoint_steps(trainer)
    trainer.fit(data, steps=9, val=data, val_every=4)
    assert steps == [4, 8, 9]


def test_timed_checkpoints(tmp_path, monkeypatch):
    """checkpoint_seconds=0 checkpoints every step; otherwise a step is checkpointed once that
    much time has passed since the last checkpoint (a clock that moves 25 s a step here)."""
    trainer, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    trainer.checkpoint_seconds = 0
    steps = checkpoint_steps(trainer)
    trainer.fit(data, steps=4)
    assert steps == [1, 2, 3, 4, 4]
    clock = iter(range(0, 10**6, 25))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    trainer, data = training_job.build(checkpoint=tmp_path / "run2.ckpt")
    assert trainer.checkpoint_seconds == 60.0  # the default
    steps = checkpoint_steps(trainer)
    trainer.fit(data, steps=8)
    # each step reads the clock once; a checkpoint resets the reference
    assert steps[:-1] == [3, 6] and steps[-1] == 8
    for bad in (-1, float("nan"), "60"):
        with pytest.raises((ValueError, TypeError), match="checkpoint_seconds"):
            rnnkit.Trainer(trainer.model, trainer.optimizer, "mse", checkpoint_seconds=bad)


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path):
    path = tmp_path / "run.ckpt"
    val = regression_data(seed=0, negate=True)
    model = regressor()
    trainer = rnnkit.Trainer(
        model, rnnkit.optim.Adam(model.parameters(), lr=0.05), "mse", checkpoint=path
    )
    first = trainer.fit(regression_data(), epochs=50, val=val, val_every=2, patience=3)
    assert first.stopped == "early_stopping"
    params = model.state_dict()
    model2 = regressor()
    again = rnnkit.Trainer(
        model2, rnnkit.optim.Adam(model2.parameters(), lr=0.05), "mse", checkpoint=path
    )
    again.load_checkpoint(path)
    result = again.fit(regression_data(), epochs=80, val=val, val_every=2, patience=3)
    assert (result.stopped, result.step) == ("early_stopping", first.step)
    assert all(np.array_equal(params[k], v) for k, v in model2.state_dict().items())


def test_a_long_runs_history_checkpoints_and_comes_back_exactly(tmp_path):
    """500,000 logged rows (a long run) are columns of arrays in the checkpoint, not millions
    of JSON values (which checkpoint files refuse): they come back value for value."""
    from rnnkit.training.metric_log import decode_columns, encode_columns

    n = 500_000
    rng = np.random.default_rng(0)
    loss = rng.standard_normal(n).tolist()
    loss[3], loss[4], loss[5] = float("nan"), -0.0, float("inf")
    history = {
        "step": list(range(n)),
        "kind": ["train", "val", None, "skip"] * (n // 4),
        "loss": loss,
        "note": [None] * (n - 1) + ["non-finite loss (1 in a row): skipped"],
        "grad_norm": [None, 1.5] * (n // 2),
        "flag": [True, None] * (n // 2),
    }
    back = decode_columns(encode_columns(history))
    assert list(back) == list(history)
    for name, column in history.items():
        assert len(back[name]) == n
        assert all(type(a) is type(b) for a, b in zip(column[:8], back[name][:8])), name
    assert np.array_equal(np.array(back["loss"]), np.array(loss), equal_nan=True)
    assert np.signbit(back["loss"][4]) and back["kind"] == history["kind"]
    assert back["note"] == history["note"] and back["grad_norm"] == history["grad_norm"]
    trainer, data = training_job.build(checkpoint=tmp_path / "run.ckpt")
    trainer.fit(data, steps=2)
    trainer.history = {k: v for k, v in history.items() if k != "flag"}
    trainer.save_checkpoint()
    fresh, _ = training_job.build()
    fresh.load_checkpoint(tmp_path / "run.ckpt")
    assert fresh.history["step"] == history["step"] and fresh.history["kind"] == history["kind"]
