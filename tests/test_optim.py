"""rnnkit.optim against PyTorch 2.13: optimiser trajectories, schedules and clipping, plus
checkpoint round trips and bad-argument errors.

Parity runs feed the same seeded gradient sequence to both sides and compare every parameter
after every step in float64 (1e-12 relative to the tensor's magnitude); the schedules' learning
rates must be torch's exactly (WarmupCosine with min_lr > 0: to 1e-15). Round trips must be
bitwise: 10 steps, state_dict through JSON + .npz, load into fresh objects, 10 more steps equals 20
straight. Without torch the parity tests skip and the rest runs.
"""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest

from conftest import assert_close
from optional_deps import requires_torch, torch
from rnnkit import optim

SHAPES = {"weight": (4, 3), "bias": (4,), "cube": (2, 3, 2)}
STEPS = 25


def msg(*parts: str) -> str:
    """A ``match=`` pattern: the literal parts, in order, anything in between."""
    return ".*".join(re.escape(p) for p in parts)


def make_params(seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grad_sequence(steps: int, seed: int = 1, dtype=np.float64) -> list[dict[str, np.ndarray]]:
    """Random gradients whose overall scale drifts from step to step, so that second-moment
    estimates rise and fall (AMSGrad's max then matters) and no entry is ever exactly constant."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        scale = math.exp(rng.normal(0.0, 1.0))
        out.append({k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()})
    return out


def torch_run(torch_cls, params, grads_seq, kwargs):
    """The parameters after every step of torch's optimiser (single-tensor path)."""
    tparams = {k: torch.tensor(v.copy()) for k, v in params.items()}
    opt = torch_cls(list(tparams.values()), foreach=False, **kwargs)
    history = []
    for grads in grads_seq:
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k].copy())
        opt.step()
        history.append({k: p.detach().numpy().copy() for k, p in tparams.items()})
    return history


# -- optimisers against torch ----------------------------------------------------------------------

CASES = [
    # (our class, torch class name, our kwargs; torch gets the same)
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.4, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.2}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "maximize": True}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "eps": 1e-3}),
    ("Adam", {"lr": 0.02, "betas": (0.3, 0.5)}),  # beta1 < 0.5: torch.lerp's other branch
    ("AdamW", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True, "betas": (0.8, 0.9)}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.001, "weight_decay": 0.2, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.001, "centered": True}),
    ("RMSprop", {"lr": 0.001, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.001, "alpha": 0.3, "centered": True}),  # lerp's other branch
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.2}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 1}),
]


def case_id(case) -> str:
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items()) if kw else name


@requires_torch
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_optimizer_matches_torch_every_step(case):
    name, kwargs = case
    params = make_params()
    grads_seq = grad_sequence(STEPS)
    expected = torch_run(getattr(torch.optim, name), params, grads_seq, kwargs)
    live = {k: v.copy() for k, v in params.items()}
    ids = {k: id(v) for k, v in live.items()}
    opt = getattr(optim, name)(live, **kwargs)
    for t, (grads, ref) in enumerate(zip(grads_seq, expected, strict=True), start=1):
        before = {k: g.copy() for k, g in grads.items()}
        opt.step(grads)
        assert opt.step_count == t
        for k in SHAPES:
            assert_close(live[k], ref[k], 1e-12, f"{name} {k} after step {t}")
            assert np.array_equal(grads[k], before[k]), "step must not modify the gradients"
    assert {k: id(v) for k, v in live.items()} == ids, "parameters must be updated in place"


@requires_torch
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_follows_torch_and_keeps_dtype(name):
    kwargs = {"lr": 0.01, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.01}
    params = make_params(dtype=np.float32)
    grads_seq = grad_sequence(10, dtype=np.float32)
    expected = torch_run(getattr(torch.optim, name), params, grads_seq, kwargs)
    opt = getattr(optim, name)(params, **kwargs)
    for grads in grads_seq:
        opt.step(grads)
    for k in SHAPES:
        assert params[k].dtype == np.float32
        assert_close(params[k], expected[-1][k], 1e-5, k)
        for arr in opt.state_dict()["state"][k].values():
            assert arr.dtype == np.float32


def test_updates_the_models_live_arrays():
    import rnnkit

    lstm = rnnkit.LSTM(3, 4, dtype=np.float64, seed=0)
    before = lstm.state_dict()
    opt = optim.SGD(lstm.parameters(), lr=0.5)
    opt.step({k: np.ones_like(v) for k, v in before.items()})
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, before[k] - 0.5)


def test_defaults_are_torchs():
    p = {"w": np.zeros(2)}
    assert optim.Adam(p).hyperparams == {
        "lr": 1e-3,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
    }
    assert optim.AdamW(p).hyperparams["weight_decay"] == 1e-2
    assert optim.RMSprop(p).hyperparams == {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    }
    assert optim.Adagrad(p).hyperparams == {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    }


def test_centered_rmsprop_stays_finite_on_a_constant_gradient():
    """v - m^2 rounds below zero after thousands of identical gradients; we clamp at 0 (torch
    would take the square root of a negative number)."""
    w = np.zeros(3)
    opt = optim.RMSprop({"w": w}, lr=1e-3, alpha=0.9, centered=True)
    for _ in range(2000):
        opt.step({"w": np.array([0.3, -1.7, 1e-3])})
    assert np.isfinite(w).all()


# -- schedules against torch -----------------------------------------------------------------------


def torch_sched_lrs(make, n, metrics=None, lr=0.1):
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for i in range(n):
        opt.step()  # no gradients: nothing moves, but torch wants the call before sched.step()
        sched.step() if metrics is None else sched.step(metrics[i])
        lrs.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr()[0] == lrs[-1]
    return lrs


def our_sched_lrs(make, n, metrics=None, lr=0.1):
    opt = optim.SGD({"w": np.zeros(2)}, lr=lr)
    sched = make(opt)
    lrs = [opt.lr]
    assert sched.last_lr == opt.lr
    for i in range(n):
        sched.step() if metrics is None else sched.step(metrics[i])
        lrs.append(opt.lr)
        assert sched.last_lr == opt.lr
    return lrs


def warmup_cosine_lambda(W, T, base, min_lr):
    def factor(e):
        if e < W:
            return (e + 1) / (W + 1)
        progress = min(e - W, T - W) / (T - W)
        cos = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cos if min_lr == 0 else (min_lr + (base - min_lr) * cos) / base

    return factor


LR_SCHEDULES = {
    "step": (
        lambda o: optim.StepLR(o, step_size=7, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
    ),
    "step-default-gamma": (
        lambda o: optim.StepLR(o, 13),
        lambda o: torch.optim.lr_scheduler.StepLR(o, 13),
    ),
    "exponential": (
        lambda o: optim.ExponentialLR(o, gamma=0.93),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.93),
    ),
    "warmup-cosine": (
        lambda o: optim.WarmupCosine(o, warmup_steps=10, total_steps=50),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine_lambda(10, 50, 0.1, 0.0)),
    ),
    "cosine-no-warmup": (
        lambda o: optim.WarmupCosine(o, warmup_steps=0, total_steps=45),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine_lambda(0, 45, 0.1, 0.0)),
    ),
}


@requires_torch
@pytest.mark.parametrize("kind", LR_SCHEDULES)
def test_schedule_matches_torch_exactly(kind):
    ours, theirs = LR_SCHEDULES[kind]
    assert our_sched_lrs(ours, 60) == torch_sched_lrs(theirs, 60)


@requires_torch
def test_warmup_cosine_with_min_lr_matches_torch_lambda():
    W, T, min_lr = 8, 40, 0.004
    ours = our_sched_lrs(lambda o: optim.WarmupCosine(o, W, T, min_lr=min_lr), 60)
    theirs = torch_sched_lrs(
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine_lambda(W, T, 0.1, min_lr)), 60
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)
    assert ours[T:] == [min_lr] * (61 - T)  # exactly min_lr from total_steps on
    assert ours[W] == 0.1 and ours[0] == 0.1 / (W + 1)


# Loss-like metrics: improving, then plateaus with noise that trigger cuts, then improvements
# inside and after cooldown periods, a NaN (a bad epoch), and a long flat tail down to min_lr.
PLATEAU_METRICS = (
    [5.0, 4.0, 3.5, 3.4, 3.45, 3.5, 3.41, 3.6, 3.39, 3.399, 3.3, 3.3, 3.31, 3.32, 3.33, 3.34]
    + [3.0, 3.1, float("nan"), 3.2, 2.99995, 3.3, 2.5, 2.6, 2.7, 2.8, 2.9, 2.4, 2.41, 2.42]
    + [2.43 + 0.01 * i for i in range(30)]
)
PLATEAU_CONFIGS = [
    {"patience": 2, "cooldown": 2, "factor": 0.5},
    {"patience": 0, "cooldown": 3, "factor": 0.3, "min_lr": 0.002},
    {"patience": 3, "cooldown": 0, "threshold": 0.05, "threshold_mode": "abs"},
    {"patience": 1, "cooldown": 1, "threshold": 0.01, "factor": 0.4, "eps": 1e-3, "min_lr": 0.0155},
    {"mode": "max", "patience": 2, "cooldown": 2, "factor": 0.5},
    {"mode": "max", "patience": 1, "threshold": 0.1, "threshold_mode": "abs", "cooldown": 1},
]


@requires_torch
@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=str)
def test_plateau_matches_torch_exactly(config):
    assert len(PLATEAU_METRICS) == 60
    metrics = PLATEAU_METRICS
    if config.get("mode") == "max":
        metrics = [-m for m in metrics]
    ours = our_sched_lrs(lambda o: optim.ReduceLROnPlateau(o, **config), 60, metrics)
    theirs = torch_sched_lrs(
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **config), 60, metrics
    )
    assert ours == theirs
    assert len(set(ours)) >= 3, "the script must trigger at least two reductions"


def test_plateau_cooldown_changes_the_sequence():
    run = lambda cd: our_sched_lrs(  # noqa: E731
        lambda o: optim.ReduceLROnPlateau(o, patience=1, cooldown=cd, factor=0.5),
        60,
        PLATEAU_METRICS,
    )
    assert run(0) != run(3)


# -- clipping against torch ------------------------------------------------------------------------


def torch_clip(grads, max_norm, norm_type):
    ps = []
    for g in grads.values():
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g.copy())
        ps.append(p)
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    return float(total), {k: p.grad.numpy() for k, p in zip(grads, ps, strict=True)}


@requires_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e4], ids=["clipped", "below-max"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    grads = grad_sequence(1, seed=7)[0]
    original = {k: g.copy() for k, g in grads.items()}
    total_t, clipped_t = torch_clip(grads, max_norm, norm_type)
    total = optim.clip_grad_norm(grads, max_norm, norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(total_t, rel=1e-12, abs=0)
    for k in grads:
        assert_close(grads[k], clipped_t[k], 1e-12, k)
    if max_norm > total:
        for k in grads:
            assert np.array_equal(grads[k], original[k]), "below max_norm nothing changes"
    else:
        assert optim.clip_grad_norm(grads, math.inf, norm_type) <= max_norm


@requires_torch
def test_clip_grad_value_matches_torch():
    grads = grad_sequence(1, seed=3)[0]
    ps = []
    for g in grads.values():
        p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(g.copy())
        ps.append(p)
    torch.nn.utils.clip_grad_value_(ps, 0.7)
    assert optim.clip_grad_value(grads, 0.7) is None
    for g, p in zip(grads.values(), ps, strict=True):
        assert np.array_equal(g, p.grad.numpy())


def test_clip_edge_cases():
    assert optim.clip_grad_norm({}, 1.0) == 0.0
    grads = {"w": np.zeros((0, 3)), "b": np.array([3.0, 4.0])}
    assert optim.clip_grad_norm(grads, 10.0) == 5.0
    grads = {"w": np.array([np.inf, 1.0])}
    assert optim.clip_grad_norm(grads, 1.0) == math.inf  # the caller skips the step


# -- checkpoint round trips ------------------------------------------------------------------------


def through_json_and_npz(state: dict) -> dict:
    """Store a state_dict the way a checkpoint writer without pickle would (strict JSON for the
    leaves, .npz for the arrays), asserting the leaf rule on the way, and read it back."""
    arrays: dict[str, np.ndarray] = {}

    def encode(x, path):
        if type(x) is dict:
            assert all(type(k) is str for k in x), path
            return {k: encode(v, f"{path}/{k}") for k, v in x.items()}
        if type(x) is np.ndarray:
            arrays[path] = x
            return {"__npz__": path}
        if type(x) is list:
            assert all(x_ is None or type(x_) in (bool, int, float, str) for x_ in x), path
            return x
        assert x is None or type(x) in (bool, int, float, str), (path, type(x))
        return x

    text = json.dumps(encode(state, ""), allow_nan=False)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}

    def decode(x):
        if isinstance(x, dict):
            return loaded[x["__npz__"]] if "__npz__" in x else {k: decode(v) for k, v in x.items()}
        return x

    return decode(json.loads(text))


ROUND_TRIPS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, "step"),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}, "plateau"),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}, "cosine"),
    ("AdamW", {"lr": 0.01}, "exponential"),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}, "plateau"),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}, "step"),
]
SCHEDULES = {
    "step": lambda o: optim.StepLR(o, step_size=3, gamma=0.7),
    "exponential": lambda o: optim.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: optim.WarmupCosine(o, warmup_steps=4, total_steps=16, min_lr=1e-4),
    "plateau": lambda o: optim.ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5),
}


def train(opt, sched, params, grads_seq):
    """Optimiser steps with a schedule; the 'loss' for the plateau schedule is |params|^2."""
    for grads in grads_seq:
        opt.step(grads)
        if isinstance(sched, optim.ReduceLROnPlateau):
            sched.step(sum(float((p * p).sum()) for p in params.values()))
        else:
            sched.step()


@pytest.mark.parametrize("name, kwargs, sched_kind", ROUND_TRIPS, ids=lambda x: str(x))
@pytest.mark.parametrize("order", ["optimizer-first", "schedule-first"])
def test_state_round_trip_is_bitwise(name, kwargs, sched_kind, order):
    cls, make_sched = getattr(optim, name), SCHEDULES[sched_kind]
    grads_seq = grad_sequence(20, seed=5)

    straight = make_params()
    opt = cls(straight, **kwargs)
    sched = make_sched(opt)
    train(opt, sched, straight, grads_seq)

    first = make_params()
    opt1 = cls(first, **kwargs)
    sched1 = make_sched(opt1)
    train(opt1, sched1, first, grads_seq[:10])
    opt_state = through_json_and_npz(opt1.state_dict())
    sched_state = through_json_and_npz(sched1.state_dict())

    # A fresh process: the model's parameters are restored from their own checkpoint, the
    # optimiser and schedule are built with default settings and then loaded.
    resumed = {k: v.copy() for k, v in first.items()}
    opt2 = cls(resumed, lr=0.5)
    if order == "optimizer-first":
        opt2.load_state_dict(opt_state)
        sched2 = make_sched(opt2)
        sched2.load_state_dict(sched_state)
    else:
        sched2 = make_sched(opt2)
        sched2.load_state_dict(sched_state)
        opt2.load_state_dict(opt_state)
    assert opt2.step_count == 10 and sched2.last_epoch == 10
    train(opt2, sched2, resumed, grads_seq[10:])

    for k in SHAPES:
        assert np.array_equal(resumed[k], straight[k]), k
    assert opt2.lr == opt.lr and sched2.last_lr == sched.last_lr
    assert opt2.step_count == opt.step_count == 20
    assert through_json_and_npz(sched2.state_dict()) == through_json_and_npz(sched.state_dict())
    s2, s = opt2.state_dict(), opt.state_dict()
    assert s2["hyperparams"] == s["hyperparams"]
    for k in SHAPES:
        for key in s["state"][k]:
            assert np.array_equal(s2["state"][k][key], s["state"][k][key])


def test_state_dict_is_a_copy_and_fresh_sgd_has_no_buffer():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    assert opt.state_dict()["state"] == {k: {} for k in SHAPES}
    opt.step(grad_sequence(1)[0])
    state = opt.state_dict()
    state["state"]["bias"]["momentum_buffer"][:] = 123.0
    assert not np.any(opt.state_dict()["state"]["bias"]["momentum_buffer"] == 123.0)


def test_failed_load_changes_nothing():
    grads_seq = grad_sequence(6, seed=2)
    reference, params = make_params(), make_params()
    ref_opt = optim.Adam(reference, lr=0.01, amsgrad=True)
    opt = optim.Adam(params, lr=0.01, amsgrad=True)
    for g in grads_seq[:3]:
        ref_opt.step(g)
        opt.step(g)
    bad = opt.state_dict()
    bad["hyperparams"]["lr"] = 0.5
    bad["step_count"] = 99
    bad["state"]["weight"]["exp_avg"] = np.full((4, 3), 7.0)
    bad["state"]["cube"]["exp_avg_sq"] = np.zeros((3, 2, 2))  # the last entry checked is wrong
    with pytest.raises(ValueError, match=msg("state_dict['state']['cube']['exp_avg_sq']")):
        opt.load_state_dict(bad)
    for g in grads_seq[3:]:
        ref_opt.step(g)
        opt.step(g)
    assert opt.lr == 0.01 and opt.step_count == 6
    for k in SHAPES:
        assert np.array_equal(params[k], reference[k])


# -- bad arguments ---------------------------------------------------------------------------------

P = {"w": np.zeros((2, 3))}

BAD_HYPER = [
    (optim.SGD, {"lr": -0.1}, ValueError, ("lr must be a finite float >= 0", "got -0.1")),
    (optim.SGD, {"lr": float("nan")}, ValueError, ("lr must be", "got nan")),
    (optim.SGD, {"lr": "0.1"}, TypeError, ("lr must be a finite float", "got str '0.1'")),
    (optim.SGD, {"lr": True}, TypeError, ("lr must be", "got bool True")),
    (optim.SGD, {"lr": 0.1, "momentum": -0.5}, ValueError, ("momentum must be", ">= 0", "-0.5")),
    (optim.SGD, {"lr": 0.1, "dampening": -1}, ValueError, ("dampening must be", ">= 0", "-1")),
    (optim.SGD, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, ("weight_decay must be", ">= 0")),
    (optim.SGD, {"lr": 0.1, "nesterov": True}, ValueError, ("nesterov=True needs momentum > 0",)),
    (
        optim.SGD,
        {"lr": 0.1, "nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        ("nesterov=True needs", "dampening == 0", "dampening=0.1"),
    ),
    (optim.SGD, {"lr": 0.1, "nesterov": 1}, TypeError, ("nesterov must be True or False", "int")),
    (optim.SGD, {"lr": 0.1, "maximize": "yes"}, TypeError, ("maximize must be True or False",)),
    (optim.Adam, {"betas": (0.9, 1.0)}, ValueError, ("betas[1] must be", "in [0, 1)", "got 1.0")),
    (optim.Adam, {"betas": (-0.1, 0.9)}, ValueError, ("betas[0] must be", "in [0, 1)", "-0.1")),
    (optim.Adam, {"betas": 0.9}, TypeError, ("betas must be a pair (beta1, beta2)", "got 0.9")),
    (optim.AdamW, {"betas": (0.9, 0.99, 0.1)}, TypeError, ("betas must be a pair",)),
    (optim.Adam, {"eps": -1e-8}, ValueError, ("eps must be", ">= 0", "-1e-08")),
    (optim.AdamW, {"weight_decay": -0.01}, ValueError, ("weight_decay must be", ">= 0")),
    (optim.Adam, {"amsgrad": None}, TypeError, ("amsgrad must be True or False", "None")),
    (optim.RMSprop, {"alpha": 1.0}, ValueError, ("alpha must be", "in [0, 1)", "got 1.0")),
    (optim.RMSprop, {"momentum": -0.9}, ValueError, ("momentum must be", ">= 0")),
    (optim.RMSprop, {"centered": 0}, TypeError, ("centered must be True or False",)),
    (optim.Adagrad, {"lr_decay": -1}, ValueError, ("lr_decay must be", ">= 0", "got -1")),
    (
        optim.Adagrad,
        {"initial_accumulator_value": -0.1},
        ValueError,
        ("initial_accumulator_value must be", ">= 0"),
    ),
    (optim.Adagrad, {"eps": float("inf")}, ValueError, ("eps must be a finite float", "inf")),
]


@pytest.mark.parametrize(
    "cls, kwargs, exc, parts", BAD_HYPER, ids=[f"{c.__name__}-{k}" for c, k, _, _ in BAD_HYPER]
)
def test_bad_hyperparameters(cls, kwargs, exc, parts):
    with pytest.raises(exc, match=msg(*parts)):
        cls(P, **kwargs)


def test_lr_setter_checks():
    opt = optim.Adam(P)
    with pytest.raises(ValueError, match=msg("lr must be", ">= 0", "got -1")):
        opt.lr = -1
    opt.lr = 0.25
    assert opt.lr == 0.25


@pytest.mark.parametrize(
    "params, exc, parts",
    [
        ([np.zeros(2)], TypeError, ("params must be a dict", "got list")),
        ({}, ValueError, ("at least one parameter",)),
        ({"w": [1.0, 2.0]}, TypeError, ("params['w'] must be a numpy.ndarray", "got list")),
        ({"w": np.zeros(2, int)}, TypeError, ("params['w']", "float32 or float64", "int64")),
        ({3: np.zeros(2)}, TypeError, ("params keys must be str", "3")),
    ],
    ids=["list", "empty", "not-array", "int-dtype", "key"],
)
def test_bad_params(params, exc, parts):
    with pytest.raises(exc, match=msg(*parts)):
        optim.SGD(params, lr=0.1)


def test_read_only_params():
    w = np.zeros(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match=msg("params['w'] is read-only")):
        optim.Adam({"w": w})


@pytest.mark.parametrize(
    "grads, exc, parts",
    [
        ({"w": np.zeros((2, 3))}, ValueError, ("grads must have exactly", "missing ['b']")),
        (
            {"w": np.zeros((2, 3)), "b": np.zeros(3), "x": np.zeros(1)},
            ValueError,
            ("unexpected ['x']",),
        ),
        (
            {"w": np.zeros((3, 2)), "b": np.zeros(3)},
            ValueError,
            ("grads['w'] must have shape (2, 3) like the parameter, got (3, 2)",),
        ),
        (
            {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3)},
            TypeError,
            ("grads['w'] must have dtype float64 like the parameter, got float32",),
        ),
        ({"w": np.zeros((2, 3)), "b": [0, 0, 0]}, TypeError, ("grads['b'] must be a numpy",)),
        ([np.zeros((2, 3)), np.zeros(3)], TypeError, ("grads must be a dict", "list")),
    ],
    ids=["missing", "extra", "shape", "dtype", "not-array", "not-dict"],
)
def test_bad_grads_change_nothing(grads, exc, parts):
    params = {"w": np.ones((2, 3)), "b": np.ones(3)}
    opt = optim.Adam(params, lr=0.1)
    with pytest.raises(exc, match=msg(*parts)):
        opt.step(grads)
    assert opt.step_count == 0 and np.all(params["w"] == 1) and np.all(params["b"] == 1)


def _adam_state():
    opt = optim.Adam({"w": np.zeros((2, 3))}, amsgrad=True)
    opt.step({"w": np.ones((2, 3))})
    return opt.state_dict()


def _edit(path, value):
    def apply(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return d

    return apply


BAD_STATES = [
    (_edit(["type"], "AdamW"), ValueError, ("state_dict['type'] must be 'Adam'", "got 'AdamW'")),
    (_edit(["step_count"], KeyError), ValueError, ("state_dict must have exactly", "step_count")),
    (_edit(["step_count"], -1), ValueError, ("state_dict['step_count'] must be an int >= 0",)),
    (_edit(["step_count"], 1.0), TypeError, ("state_dict['step_count'] must be an int",)),
    (
        _edit(["hyperparams", "betas"], [0.9, 1.5]),
        ValueError,
        ("state_dict['hyperparams']['betas'][1] must be", "in [0, 1)"),
    ),
    (
        _edit(["hyperparams", "momentum"], 0.9),
        ValueError,
        ("state_dict['hyperparams'] must have exactly", "unexpected ['momentum']"),
    ),
    (
        _edit(["state", "v"], {}),
        ValueError,
        ("state_dict['state'] must have exactly the keys ['w']", "unexpected ['v']"),
    ),
    (
        _edit(["state", "w", "max_exp_avg_sq"], KeyError),
        ValueError,
        ("state_dict['state']['w'] must have exactly", "missing ['max_exp_avg_sq']"),
    ),
    (
        _edit(["state", "w", "exp_avg"], np.zeros((3, 2))),
        ValueError,
        ("state_dict['state']['w']['exp_avg'] must have shape (2, 3)", "got (3, 2)"),
    ),
    (
        _edit(["state", "w", "exp_avg"], np.zeros((2, 3), np.float32)),
        TypeError,
        ("state_dict['state']['w']['exp_avg'] must have dtype float64", "got float32"),
    ),
    (
        _edit(["state", "w", "exp_avg"], [[0.0] * 3] * 2),
        TypeError,
        ("state_dict['state']['w']['exp_avg'] must be a numpy.ndarray", "list"),
    ),
]


@pytest.mark.parametrize("edit, exc, parts", BAD_STATES, ids=[str(b[2][0]) for b in BAD_STATES])
def test_bad_optimizer_state_dicts(edit, exc, parts):
    opt = optim.Adam({"w": np.zeros((2, 3))}, amsgrad=True)
    with pytest.raises(exc, match=msg(*parts)):
        opt.load_state_dict(edit(_adam_state()))
    assert opt.step_count == 0


def test_amsgrad_mismatch_is_caught_through_the_hyperparameters():
    state = _adam_state()
    state["hyperparams"]["amsgrad"] = False  # then max_exp_avg_sq must not be there
    with pytest.raises(ValueError, match=msg("unexpected ['max_exp_avg_sq']")):
        optim.Adam({"w": np.zeros((2, 3))}).load_state_dict(state)


SGD1 = optim.SGD({"w": np.zeros(1)}, lr=0.1)
BAD_SCHEDULES = [
    (lambda: optim.StepLR(SGD1, 0), ValueError, ("step_size must be an int >= 1", "got 0")),
    (lambda: optim.StepLR(SGD1, 2.0), TypeError, ("step_size must be an int", "float")),
    (lambda: optim.StepLR(SGD1, 2, gamma=0), ValueError, ("gamma must be", "> 0", "got 0")),
    (lambda: optim.ExponentialLR(SGD1, -0.9), ValueError, ("gamma must be", "> 0", "-0.9")),
    (lambda: optim.StepLR(object(), 2), TypeError, ("optimizer must be an rnnkit.optim", "object")),
    (
        lambda: optim.WarmupCosine(SGD1, 10, 10),
        ValueError,
        ("total_steps must be > warmup_steps (10), got 10",),
    ),
    (lambda: optim.WarmupCosine(SGD1, -1, 10), ValueError, ("warmup_steps must be an int >= 0",)),
    (
        lambda: optim.WarmupCosine(SGD1, 1, 10, min_lr=0.2),
        ValueError,
        ("min_lr must be <= the base learning rate (0.1", "got 0.2"),
    ),
    (
        lambda: optim.ReduceLROnPlateau(SGD1, mode="mean"),
        ValueError,
        ("mode must be 'min' or 'max'", "'mean'"),
    ),
    (
        lambda: optim.ReduceLROnPlateau(SGD1, threshold_mode="relative"),
        ValueError,
        ("threshold_mode must be 'rel' or 'abs'", "'relative'"),
    ),
    (
        lambda: optim.ReduceLROnPlateau(SGD1, factor=1.0),
        ValueError,
        ("factor must be", "in [0, 1)"),
    ),
    (
        lambda: optim.ReduceLROnPlateau(SGD1, patience=-1),
        ValueError,
        ("patience must be an int >= 0",),
    ),
    (lambda: optim.ReduceLROnPlateau(SGD1, cooldown=0.5), TypeError, ("cooldown must be an int",)),
    (lambda: optim.ReduceLROnPlateau(SGD1, min_lr=-1.0), ValueError, ("min_lr must be", ">= 0")),
    (lambda: optim.ReduceLROnPlateau(SGD1, threshold=-1.0), ValueError, ("threshold must be",)),
    (
        lambda: optim.ReduceLROnPlateau(SGD1).step("low"),
        TypeError,
        ("metric must be a real number",),
    ),
    (
        lambda: optim.ReduceLROnPlateau(SGD1).step(None),
        TypeError,
        ("metric must be a real number",),
    ),
]


@pytest.mark.parametrize(
    "make, exc, parts", BAD_SCHEDULES, ids=[b[2][0][:30] for b in BAD_SCHEDULES]
)
def test_bad_schedules(make, exc, parts):
    with pytest.raises(exc, match=msg(*parts)):
        make()


def test_plateau_accepts_nan_and_0d_arrays():
    opt = optim.SGD({"w": np.zeros(1)}, lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(float("nan"))  # a bad epoch, as in torch
    assert opt.lr == 0.5 and sched.best is None
    sched.step(np.array(2.0))
    assert sched.best == 2.0


def test_bad_schedule_state_dicts():
    opt = optim.SGD({"w": np.zeros(1)}, lr=0.1)
    sched = optim.StepLR(opt, 3)
    state = sched.state_dict()
    with pytest.raises(ValueError, match=msg("state_dict['type'] must be 'ExponentialLR'")):
        optim.ExponentialLR(opt, 0.9).load_state_dict(state)
    bad = dict(state, hyperparams={"step_size": 0, "gamma": 0.1}, last_epoch=5)
    with pytest.raises(ValueError, match=msg("state_dict['hyperparams']['step_size'] must be")):
        sched.load_state_dict(bad)
    assert sched.last_epoch == 0
    with pytest.raises(
        ValueError, match=msg("state_dict must have exactly", "missing ['last_lr']")
    ):
        sched.load_state_dict({k: v for k, v in state.items() if k != "last_lr"})
    plateau = optim.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match=msg("state_dict['best'] must be a float", "str")):
        plateau.load_state_dict(dict(plateau.state_dict(), best="inf"))


@pytest.mark.parametrize(
    "call, exc, parts",
    [
        (
            lambda g: optim.clip_grad_norm(g, 0.0),
            ValueError,
            ("max_norm must be", "> 0", "got 0.0"),
        ),
        (lambda g: optim.clip_grad_norm(g, 1.0, 0), ValueError, ("norm_type must be", "> 0")),
        (lambda g: optim.clip_grad_norm(g, 1.0, "two"), TypeError, ("norm_type must be", "str")),
        (lambda g: optim.clip_grad_value(g, -1.0), ValueError, ("clip must be", "> 0", "-1.0")),
        (lambda g: optim.clip_grad_norm([g["w"]], 1.0), TypeError, ("grads must be a dict",)),
        (
            lambda g: optim.clip_grad_value({"w": [1.0]}, 1.0),
            TypeError,
            ("grads['w'] must be a numpy.ndarray", "list"),
        ),
        (
            lambda g: optim.clip_grad_norm({"w": np.ones(2, int)}, 1.0),
            TypeError,
            ("grads['w'] must have dtype float32 or float64", "int64"),
        ),
    ],
    ids=["max_norm", "norm_type", "norm_type-str", "clip", "not-dict", "not-array", "int"],
)
def test_bad_clip_arguments(call, exc, parts):
    grads = {"w": np.array([3.0, 4.0])}
    with pytest.raises(exc, match=msg(*parts)):
        call(grads)
    assert np.array_equal(grads["w"], [3.0, 4.0])
