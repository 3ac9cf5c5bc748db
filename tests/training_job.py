"""A small, fully seeded training job, used by tests/test_training.py in-process and as a
separate process (``python tests/training_job.py CHECKPOINT STEPS [--resume]``) to show that a
checkpointed run resumes exactly where it stopped."""

from __future__ import annotations

import sys

import numpy as np

import rnnkit
from rnnkit.data import SequenceData


def build(checkpoint=None):
    """Model, trainer and data: dropout, shuffling, a schedule and clipping all in play."""
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(int(n), 3)) for n in rng.integers(2, 9, 48)]
    ys = [np.array([x[:, 0].sum(), x[:, 1].max()]) for x in xs]
    data = SequenceData(xs, ys, batch_size=8, dtype=np.float64)
    model = rnnkit.SequenceRegressor(
        3,
        6,
        output_size=2,
        num_layers=2,
        cell="gru",
        dropout=0.2,
        zoneout=0.1,
        recurrent_dropout=0.1,
        dtype=np.float64,
        seed=1,
    )
    opt = rnnkit.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    schedule = rnnkit.optim.WarmupCosine(opt, warmup_steps=3, total_steps=40)
    trainer = rnnkit.Trainer(
        model,
        opt,
        "mse",
        schedule=schedule,
        clip_norm=1.0,
        seed=7,
        checkpoint=checkpoint,
        config={"job": "test"},
    )
    return trainer, data


def main(argv: list[str]) -> None:
    path, steps = argv[0], int(argv[1])
    trainer, data = build(checkpoint=path)
    if "--resume" in argv:
        trainer.load_checkpoint(path)
    trainer.fit(data, steps=steps)  # writes the checkpoint at the end


if __name__ == "__main__":
    main(sys.argv[1:])
