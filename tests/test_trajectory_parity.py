"""Training trajectories against PyTorch in float64: Embedding -> 2-layer LSTM / GRU / RNN ->
Linear, the same initial weights and the same 20 batches, 20 steps of every optimiser (with
weight decay and its momentum / centring / decay options), a learning-rate schedule and gradient
norm clipping.

Each step runs, on both sides: forward (from the previous batch's final state), mean
cross-entropy, backward, clip, optimiser step, schedule step. The loss must agree with torch's at
every step to 1e-9 relative, as must the clipping norm, and the learning rate set for the next
step to 1e-12; after 20 steps every parameter and the final state must agree to 1e-8 relative to
their magnitude. One-step parity tests cannot catch a state bug (a bias correction off by one, a
schedule that counts from 1, a plateau patience off by one); these can, since the error
compounds through 20 steps of training.

Every case also checks that it tests something: clipping must cut some steps and not others, the
schedule must change the learning rate, and every parameter tensor must move by more than 1% of
its magnitude.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import rnnkit
from conftest import assert_close
from rnnkit import optim
from rnnkit.losses import cross_entropy

torch = pytest.importorskip("torch")

V, E, H, L = 13, 6, 8, 2  # vocabulary, embedding, hidden size, layers
T, B = 8, 4  # time steps, batch
STEPS = 20
#: about the median gradient norm of each cell's runs, so that some steps are clipped and some not
MAX_NORM = {"lstm": 0.25, "gru": 0.35, "rnn": 0.55}
NOISE = 0.25  # probability that a token breaks the pattern
IGNORE = -100  # torch's default ignore_index, used for padded targets
LOSS_RTOL, PARAM_RTOL, LR_RTOL = 1e-9, 1e-8, 1e-12

#: name -> (rnnkit class, torch class, keyword arguments both accept). The learning rates are
#: large enough that every tensor moves by several percent of its magnitude in 20 steps.
OPTIMISERS = {
    "sgd": (
        optim.SGD,
        torch.optim.SGD,
        {"lr": 1.0, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    ),
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.02, "weight_decay": 1e-3}),
    "adamw": (optim.AdamW, torch.optim.AdamW, {"lr": 0.02, "weight_decay": 1e-2}),
    "rmsprop": (
        optim.RMSprop,
        torch.optim.RMSprop,
        {"lr": 2e-3, "momentum": 0.5, "centered": True, "weight_decay": 1e-3},
    ),
    "adagrad": (
        optim.Adagrad,
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 1e-3, "weight_decay": 1e-3},
    ),
}

WARMUP, TOTAL, MIN_LR_FRACTION = 4, STEPS, 0.1


def warmup_cosine_factor(e: int) -> float:
    """rnnkit's WarmupCosine learning rate at epoch e divided by the base rate, written out from
    its docstring (min_lr = MIN_LR_FRACTION * base lr): torch's LambdaLR multiplies it back."""
    if e < WARMUP:
        return (e + 1) / (WARMUP + 1)
    progress = min(e - WARMUP, TOTAL - WARMUP) / (TOTAL - WARMUP)
    return MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


#: name -> (rnnkit schedule from the optimiser, torch schedule from the optimiser, whether its
#: step takes the training loss).
SCHEDULES = {
    "steplr": (
        lambda opt: optim.StepLR(opt, step_size=5, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
        False,
    ),
    "explr": (
        lambda opt: optim.ExponentialLR(opt, gamma=0.95),
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95),
        False,
    ),
    "warmupcosine": (
        lambda opt: optim.WarmupCosine(
            opt, warmup_steps=WARMUP, total_steps=TOTAL, min_lr=MIN_LR_FRACTION * opt.lr
        ),
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine_factor),
        False,
    ),
    "plateau": (
        lambda opt: optim.ReduceLROnPlateau(opt, factor=0.5, patience=1),
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1),
        True,
    ),
}

CELLS = ("lstm", "gru", "rnn")

# Every cell with every optimiser; the schedules rotate so that each optimiser meets three of
# them and each cell all four.
CASES = [
    pytest.param(cell, opt, sched, id=f"{cell}-{opt}-{sched}")
    for c, cell in enumerate(CELLS)
    for o, opt in enumerate(OPTIMISERS)
    for sched in [list(SCHEDULES)[(c + o) % len(SCHEDULES)]]
]

# Variable lengths: torch packs the sequences; the padded targets are ignored (rnnkit either by
# ignore_index, as torch, or by a mask of the valid steps).
PADDED_CASES = [
    pytest.param("lstm", "adamw", "warmupcosine", "ignore_index", id="lstm-adamw-padded"),
    pytest.param("lstm", "sgd", "plateau", "mask", id="lstm-sgd-padded-mask"),
    pytest.param("gru", "rmsprop", "steplr", "ignore_index", id="gru-rmsprop-padded"),
    pytest.param("rnn", "adam", "explr", "mask", id="rnn-adam-padded-mask"),
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch on one thread for these tiny tensors: on a busy 2-core machine its thread pool
    made the LSTM cases over 100 times slower (45 s against 0.4 s for five of them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TorchLM(torch.nn.Module):
    """torch's twin of rnnkit.LanguageModel, with the same attribute (so parameter) names."""

    def __init__(self, cell: str):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E, dtype=torch.float64)
        self.rnn = getattr(torch.nn, cell.upper())(E, H, L, dtype=torch.float64)
        self.head = torch.nn.Linear(H, V, dtype=torch.float64)

    def forward(self, ids, state=None, lengths=None):
        e = self.embedding(ids)  # (T, B, E)
        if lengths is None:
            y, state = self.rnn(e, state)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(e, lengths, enforce_sorted=False)
            y, state = self.rnn(packed, state)  # state at each sequence's own length
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=ids.shape[0])
        return self.head(y), state  # (T, B, V)


def make_batches(padded: bool, seed: int = 2024):
    """STEPS batches of (ids (T, B), next-token targets (T, B), lengths (B,) or None).

    B token streams, cut into consecutive windows of T (truncated BPTT). The tokens follow
    t -> (3 t + 1) mod V, each replaced by a random one with probability NOISE: something to
    learn (the RNN runs fall from 2.6 to about 2.1 nats), and batches of uneven difficulty, so
    the gradient norms vary enough for clipping to act on some steps and not on others.

    Padded batches have lengths in [1, T] (one full-length sequence each, so padding never
    shortens the batch); their padded ids are random tokens, not a pad symbol, so any leak of
    padding into the result would show, and their padded targets are IGNORE."""
    rng = np.random.default_rng(seed)
    tokens = np.empty((STEPS * T + 1, B), dtype=np.int64)
    tokens[0] = rng.integers(0, V, size=B)
    for t in range(STEPS * T):
        noise = rng.random(B) < NOISE
        tokens[t + 1] = np.where(noise, rng.integers(0, V, size=B), (3 * tokens[t] + 1) % V)
    batches = []
    for k in range(STEPS):
        ids, targets = tokens[k * T : (k + 1) * T], tokens[k * T + 1 : (k + 1) * T + 1].copy()
        lengths = None
        if padded:
            lengths = rng.integers(1, T + 1, size=B)
            lengths[rng.integers(B)] = T
            targets[np.arange(T)[:, None] >= lengths] = IGNORE
        batches.append((ids, targets, lengths))
    return batches


def run_both(cell: str, opt_name: str, sched_name: str, padding: str | None = None):
    """Train rnnkit's and torch's models side by side; return the per-step records, rnnkit's
    parameters before and after, torch's after, and both final states (as tuples).

    The recurrent state is carried from batch to batch (detached, as in truncated BPTT), so a
    wrong final state -- at a padded sequence's own length, say -- changes the next loss: the
    outputs of a one-way recurrence at valid steps never depend on the padding, its final state
    does."""
    model = rnnkit.LanguageModel(V, E, H, L, cell=cell, dtype=np.float64, seed=7)
    ref = TorchLM(cell)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    initial = model.state_dict()

    ours_cls, torch_cls, kwargs = OPTIMISERS[opt_name]
    make_ours, make_torch, takes_metric = SCHEDULES[sched_name]
    opt = ours_cls(model.parameters(), **kwargs)
    topt = torch_cls(ref.parameters(), foreach=False, **kwargs)
    sched, tsched = make_ours(opt), make_torch(topt)

    rec = {key: [] for key in ("loss", "tloss", "norm", "tnorm", "lr", "tlr")}
    state = tstate = None
    for ids, targets, lengths in make_batches(padded=padding is not None):
        logits, state, cache = model.forward(ids, state, lengths)
        if padding == "mask":
            valid = targets != IGNORE
            loss, dlogits = cross_entropy(logits, np.where(valid, targets, 0), mask=valid)
        else:
            loss, dlogits = cross_entropy(logits, targets, ignore_index=IGNORE)
        _, _, grads = model.backward(dlogits, cache)
        norm = optim.clip_grad_norm(grads, MAX_NORM[cell])
        opt.step(grads)

        topt.zero_grad()
        tlengths = None if lengths is None else torch.from_numpy(lengths)
        out, tstate = ref(torch.from_numpy(ids), tstate, tlengths)
        tstate = tuple(s.detach() for s in tstate) if cell == "lstm" else tstate.detach()
        tloss = torch.nn.functional.cross_entropy(
            out.reshape(T * B, V), torch.from_numpy(targets).reshape(T * B), ignore_index=IGNORE
        )
        tloss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(ref.parameters(), MAX_NORM[cell])
        topt.step()

        if takes_metric:
            sched.step(loss)
            tsched.step(tloss.item())
        else:
            sched.step()
            tsched.step()
        for key, value in zip(
            rec, (loss, tloss.item(), norm, tnorm.item(), opt.lr, topt.param_groups[0]["lr"])
        ):
            rec[key].append(value)

    final = model.state_dict()
    tfinal = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    states = (state if cell == "lstm" else (state,), tstate if cell == "lstm" else (tstate,))
    return {key: np.array(v) for key, v in rec.items()}, initial, final, tfinal, states


def check_run(cell: str, opt_name: str, sched_name: str, padding: str | None = None) -> None:
    rec, initial, final, tfinal, (state, tstate) = run_both(cell, opt_name, sched_name, padding)

    # the case tests something: clipping cuts, the schedule moves, the parameters move
    clipped = rec["tnorm"] > MAX_NORM[cell]
    assert clipped.any() and not clipped.all(), (
        f"clipping should act on some steps, not all: norms {rec['tnorm'].round(3)}"
    )
    assert (rec["tlr"] != rec["tlr"][0]).any(), f"{sched_name} never changed the lr"
    for name, value in initial.items():
        moved = np.abs(final[name] - value).max() / np.abs(value).max()
        assert moved > 0.01, f"{name} moved by only {moved:.1e} of its magnitude"

    loss_err = np.abs(rec["loss"] - rec["tloss"]) / np.abs(rec["tloss"])
    assert loss_err.max() <= LOSS_RTOL, (
        f"loss diverges from torch's at step {int(loss_err.argmax())}: relative errors "
        f"{np.array2string(loss_err, precision=1)}"
    )
    norm_err = np.abs(rec["norm"] - rec["tnorm"]) / rec["tnorm"]
    assert norm_err.max() <= LOSS_RTOL, (
        f"clipping norm diverges at step {int(norm_err.argmax())}: relative errors "
        f"{np.array2string(norm_err, precision=1)}"
    )
    assert_close(rec["lr"], rec["tlr"], LR_RTOL, "learning rates")
    assert list(final) == list(tfinal)
    for name in final:
        assert_close(final[name], tfinal[name], PARAM_RTOL, f"final {name}")
    for a, b, name in zip(state, tstate, ("h", "c")[: len(state)], strict=True):
        assert_close(a, b.numpy(), PARAM_RTOL, f"final {name}")


@pytest.mark.parametrize(("cell", "opt_name", "sched_name"), CASES)
def test_trajectory_matches_torch(cell, opt_name, sched_name):
    check_run(cell, opt_name, sched_name)


@pytest.mark.parametrize(("cell", "opt_name", "sched_name", "padding"), PADDED_CASES)
def test_padded_trajectory_matches_torch(cell, opt_name, sched_name, padding):
    check_run(cell, opt_name, sched_name, padding)
