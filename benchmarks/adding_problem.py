"""The adding problem: can a recurrent network carry two numbers across T = 200 steps?

The task (Hochreiter & Schmidhuber 1997, in the two-input form Le, Jaitly & Hinton 2015 used to
introduce the IRNN): each sequence is T pairs ``(value, marker)``. The values are drawn from
U(0, 1); the markers are 0 except at exactly two steps, where they are 1. The target is the sum of
the two marked values, read from the network's last state.

Marker placement is this script's choice, the variant most reimplementations use: the first
marker is uniform over the first half of the sequence, steps ``[0, T // 2)``, the second uniform
over the second half, ``[T // 2, T)``. (Hochreiter & Schmidhuber put the first marker among the
first 10 steps; other variants use the first 10% of the sequence.) So the first value has to be
kept for at least one step and for T - 1 at most, T / 2 on average.

The target is the sum of two U(0, 1) variables: mean 1, variance 1/6. A model that always predicts
1 scores an MSE of 1/6 ~ 0.167; the script computes this baseline on the test set and prints it.
A model "solves" the task here when its test MSE is below 0.01.

The models (``--models``), each a :class:`rnnkit.SequenceRegressor` (one layer,
``pooling="last"``, a linear head to one output) in float32:

- ``lstm``: LSTM with forget-gate bias 1 (Gers et al. 2000), Xavier-uniform input weights,
  orthogonal recurrent weights (one orthogonal matrix per gate), other biases 0.
- ``gru``: GRU (PyTorch's reset-after form), the same initialisation without the forget bias.
- ``rnn``: Elman RNN with tanh, the same initialisation.
- ``irnn``: the IRNN of Le et al. 2015: ReLU RNN, recurrent weights = identity, input weights
  N(0, 0.001^2), biases 0.

Training: fresh random batches every step (infinite data, a seeded stream), MSE loss, Adam,
gradient-norm clipping at 1. A step whose output or gradient norm is not finite is skipped and
counted. Defaults: H = 128, B = 64, Adam lr 2e-3, and 1e-4 for the IRNN: Adam moves every weight
by about lr at first, whatever its gradient, so at 2e-3 all 128 x 128 entries of the identity grow
together, the recurrence's largest eigenvalue passes 1 and a ReLU state over 200 steps explodes
(it did, within the first 250 steps, and never recovered). At most 8000 steps per model.

Every ``--eval-every`` steps (250) it measures the MSE on a fixed held-out test set (1000
sequences drawn from their own seed, the same whatever ``--seed``) and prints a progress line
(step, mean training MSE since the last line, test MSE, elapsed time) to stderr. A model stops
early once its test MSE has been below 0.01 at ``--patience`` (2) consecutive evaluations, or at
``--steps``. The final table (stdout) gives, per model: hidden size, steps run, final and best
test MSE, the first step at which test MSE < 0.01 was seen, whether the criterion was met
(``--patience`` evaluations in a row), skipped steps and wall time (training and evaluations).

Threads: BLAS is limited to one thread (``OPENBLAS_NUM_THREADS`` etc. default to 1 unless set in
the environment): the matrices are small (B x H by H x 4H), so a second thread gains little on an
idle machine, and on a busy one a spinning OpenBLAS thread made steps 5-50x slower.

Run from the repository root (``--quick`` is a smoke test of a few seconds: T = 20, H = 32, 1000
steps)::

    python benchmarks/adding_problem.py [--T 200] [--models lstm,gru,rnn,irnn] [--steps N]
        [--seed S] [--quick] [--markdown]

Shapes: T = time steps, B = batch, H = hidden size.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in THREAD_VARIABLES:  # before NumPy loads its BLAS; see the module docstring
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

import rnnkit  # noqa: E402
from common import positive_int  # noqa: E402

DTYPE = np.float32
THRESHOLD = 0.01  # test MSE that counts as solved
TEST_SIZE = 1000
TEST_SEED = 20150403  # the test set is the same for every --seed
EVAL_CHUNK = 250  # test sequences per forward pass (bounds the cache's memory)


@dataclass(frozen=True)
class Spec:
    """One model of the comparison: its cell and how it is initialised."""

    label: str
    cell: str
    cell_options: dict[str, Any] = field(default_factory=dict)
    init: dict[str, Any] = field(default_factory=dict)  # for rnnkit.init.init_recurrent


MODELS: dict[str, Spec] = {
    "lstm": Spec("LSTM", "lstm", init={"forget_bias": 1.0}),
    "gru": Spec("GRU", "gru"),
    "rnn": Spec("RNN tanh", "rnn", {"nonlinearity": "tanh"}),
    "irnn": Spec(
        "IRNN",
        "rnn",
        {"nonlinearity": "relu"},
        {"input": "normal", "recurrent": "identity", "input_std": 0.001},
    ),
}


@dataclass(frozen=True)
class Settings:
    T: int
    steps: int
    hidden_size: int
    batch_size: int
    lr: float
    irnn_lr: float
    clip: float
    eval_every: int
    patience: int
    seed: int


@dataclass
class Result:
    name: str
    hidden_size: int
    steps: int = 0
    test_mse: float = math.nan
    best_mse: float = math.inf
    first_solved: int | None = None  # first step with test MSE < THRESHOLD
    solved: bool = False  # below THRESHOLD at `patience` consecutive evaluations
    skipped: int = 0  # steps skipped for a non-finite gradient norm
    seconds: float = 0.0


# -- data ----------------------------------------------------------------------------------------


def adding_batch(rng: np.random.Generator, T: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    """B sequences of the adding problem: ``x`` (T, B, 2) = (value, marker) pairs and the target
    ``y`` (B, 1), the sum of the two marked values. One marker in steps [0, T // 2), the other in
    [T // 2, T)."""
    if T < 2:
        raise ValueError(f"T must be >= 2 (one marker in each half), got {T}")
    half = T // 2
    values = rng.random((T, B))  # (T, B)
    first = rng.integers(0, half, size=B)  # (B,)
    second = rng.integers(half, T, size=B)  # (B,)
    markers = np.zeros((T, B))
    cols = np.arange(B)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    x = np.stack([values, markers], axis=-1).astype(DTYPE)  # (T, B, 2)
    y = (values[first, cols] + values[second, cols])[:, None].astype(DTYPE)  # (B, 1)
    return x, y


# -- model and training --------------------------------------------------------------------------


def build(spec: Spec, hidden_size: int, seed: int) -> rnnkit.SequenceRegressor:
    model = rnnkit.SequenceRegressor(
        2, hidden_size, 1, cell=spec.cell, dtype=DTYPE, seed=seed, **spec.cell_options
    )
    rnnkit.init.init_recurrent(model.rnn, seed=seed, **spec.init)
    return model


def evaluate(model: rnnkit.SequenceRegressor, x: np.ndarray, y: np.ndarray) -> float:
    """Test MSE, in float64, over the test set in chunks of EVAL_CHUNK sequences."""
    total = 0.0
    for start in range(0, x.shape[1], EVAL_CHUNK):
        out, _, _ = model.forward(x[:, start : start + EVAL_CHUNK])  # (b, 1)
        diff = out.astype(np.float64) - y[start : start + EVAL_CHUNK]
        total += float(np.sum(diff * diff))
    return total / x.shape[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_step(
    model: rnnkit.SequenceRegressor,
    opt: rnnkit.optim.Adam,
    x: np.ndarray,
    y: np.ndarray,
    clip: float,
) -> float | None:
    """One optimiser step on the batch; its training MSE, or None if the step was skipped
    because the output or the gradient norm was not finite (an exploding ReLU recurrence)."""
    out, _, cache = model.forward(x)  # (B, 1)
    if not np.all(np.isfinite(out)):
        return None
    loss, dout = rnnkit.losses.mse(out, y)
    _, _, grads = model.backward(dout, cache)
    if not math.isfinite(rnnkit.optim.clip_grad_norm(grads, clip)):
        return None
    opt.step(grads)
    return loss


def train(name: str, cfg: Settings, test: tuple[np.ndarray, np.ndarray]) -> Result:
    spec = MODELS[name]
    model = build(spec, cfg.hidden_size, cfg.seed)
    opt = rnnkit.optim.Adam(model.parameters(), lr=cfg.irnn_lr if name == "irnn" else cfg.lr)
    data_rng = np.random.default_rng([cfg.seed, 1])  # the training stream, apart from init
    result = Result(spec.label, cfg.hidden_size)
    below = 0  # consecutive evaluations under THRESHOLD
    train_losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        x, y = adding_batch(data_rng, cfg.T, cfg.batch_size)
        loss = train_step(model, opt, x, y, cfg.clip)
        if loss is None:
            result.skipped += 1
        else:
            train_losses.append(loss)
        result.steps = step
        if step % cfg.eval_every and step != cfg.steps:
            continue
        mse = evaluate(model, *test)
        result.test_mse = mse
        result.best_mse = min(result.best_mse, mse)
        below = below + 1 if mse < THRESHOLD else 0
        if below and result.first_solved is None:
            result.first_solved = step
        log(
            f"{name:>5} step {step:>6}  train MSE {np.mean(train_losses or [math.nan]):.5f}  "
            f"test MSE {mse:.5f}  {time.perf_counter() - start:7.1f} s"
            + (f"  ({result.skipped} steps skipped)" if result.skipped else "")
        )
        train_losses.clear()
        if below >= cfg.patience:
            result.solved = True
            break
    result.seconds = time.perf_counter() - start
    return result


# -- report --------------------------------------------------------------------------------------

COLUMNS = (
    "model",
    "hidden",
    "steps",
    "test MSE",
    "best test MSE",
    "first step < 0.01",
    "< 0.01",
    "skipped steps",
    "wall time",
)


def _minutes(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def cells(r: Result) -> list[str]:
    return [
        r.name,
        str(r.hidden_size),
        str(r.steps),
        f"{r.test_mse:.4f}",
        f"{r.best_mse:.4f}",
        "-" if r.first_solved is None else str(r.first_solved),
        "yes" if r.solved else "no",
        str(r.skipped),
        _minutes(r.seconds),
    ]


def table(rows: Sequence[Result], markdown: bool) -> list[str]:
    body = [cells(r) for r in rows]
    if markdown:
        align = ["---"] + ["---:"] * (len(COLUMNS) - 1)
        return [f"| {' | '.join(r)} |" for r in [COLUMNS, align, *body]]
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        for r in [COLUMNS, *body]
    ]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]


def header(cfg: Settings, baseline: float, argv: Sequence[str]) -> list[str]:
    threads = ", ".join(f"{v}={os.environ.get(v)}" for v in THREAD_VARIABLES)
    return [
        f"adding problem, T = {cfg.T}: markers in [0, {cfg.T // 2}) and [{cfg.T // 2}, {cfg.T})",
        f"command: python benchmarks/adding_problem.py {' '.join(argv)}".rstrip(),
        f"test set: {TEST_SIZE} sequences (seed {TEST_SEED}); MSE of predicting 1: "
        f"{baseline:.4f} (1/6 = {1 / 6:.4f})",
        f"training: Adam lr {cfg.lr:g} (IRNN {cfg.irnn_lr:g}), batch {cfg.batch_size}, "
        f"clip_grad_norm {cfg.clip:g}, float32, seed {cfg.seed}, at most {cfg.steps} steps",
        f"stopping: after {cfg.patience} consecutive evaluations (every {cfg.eval_every} steps) "
        f"with test MSE < {THRESHOLD}",
        f"rnnkit {rnnkit.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}, {platform.machine()}; {threads}",
    ]


# -- command line --------------------------------------------------------------------------------


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def model_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of {', '.join(MODELS)}, got {text!r}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=positive_int, help="sequence length (default 200; quick 20)")
    parser.add_argument(
        "--models", type=model_list, default=list(MODELS), help="comma-separated, of: lstm,gru,..."
    )
    parser.add_argument(
        "--steps", type=positive_int, help="step budget per model (default 8000; quick 1000)"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="initialisation and training data"
    )
    parser.add_argument("--hidden", type=positive_int, help="hidden size H (default 128; quick 32)")
    parser.add_argument("--batch", type=positive_int, default=64, help="batch size B")
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate")
    parser.add_argument(
        "--irnn-lr", type=positive_float, default=1e-4, help="Adam learning rate of the IRNN"
    )
    parser.add_argument("--clip", type=positive_float, default=1.0, help="max gradient norm")
    parser.add_argument(
        "--eval-every", type=positive_int, help="steps between evaluations (default 250; quick 50)"
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=2,
        help="consecutive evaluations under 0.01 before stopping",
    )
    parser.add_argument(
        "--quick", action="store_true", help="T = 20, H = 32, 1000 steps: smoke test"
    )
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cfg = Settings(
        T=args.T or (20 if args.quick else 200),
        steps=args.steps or (1000 if args.quick else 8000),
        hidden_size=args.hidden or (32 if args.quick else 128),
        batch_size=args.batch,
        lr=args.lr,
        irnn_lr=args.irnn_lr,
        clip=args.clip,
        eval_every=args.eval_every or (50 if args.quick else 250),
        patience=args.patience,
        seed=args.seed,
    )
    test = adding_batch(np.random.default_rng(TEST_SEED), cfg.T, TEST_SIZE)
    baseline = float(np.mean((1.0 - test[1].astype(np.float64)) ** 2))
    lines = header(cfg, baseline, argv)
    log("\n".join(lines))
    start = time.perf_counter()
    rows = [train(name, cfg, test) for name in args.models]
    lines.append(f"total wall time: {_minutes(time.perf_counter() - start)}")
    print("\n".join([*lines, "", *table(rows, args.markdown)]))


if __name__ == "__main__":
    main()
