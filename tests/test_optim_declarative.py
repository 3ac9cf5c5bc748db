"""rnnkit.optim's declared hyper-parameters: the constructors' signatures (optimisers' and
schedules') come from the declarations, checkpoints written before the optimisers and schedules
became declarative still load and resume bit for bit, and every optimiser, schedule and clipping
function survives pickle and deepcopy with bit-identical subsequent updates.
"""

from __future__ import annotations

import copy
import inspect
import pickle
import pydoc
import re

import numpy as np
import pytest

from rnnkit import optim

SIGNATURES = {
    "SGD": "(params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, "
    "maximize=False)",
    "Adam": "(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False)",
    "AdamW": "(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False)",
    "RMSprop": "(params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0.0, momentum=0.0, "
    "centered=False)",
    "Adagrad": "(params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, "
    "eps=1e-10)",
}


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature_comes_from_the_declarations(name):
    cls = getattr(optim, name)
    sig = inspect.signature(cls)
    assert str(sig) == SIGNATURES[name]
    assert f"{name}{SIGNATURES[name]}" in pydoc.render_doc(cls, renderer=pydoc.plaintext)
    opt = cls({"w": np.zeros(2)}, lr=0.1) if name == "SGD" else cls({"w": np.zeros(2)})
    assert list(opt.hyperparams) == list(sig.parameters)[1:]
    for key, param in sig.parameters.items():
        if key not in ("params", "lr"):
            default = param.default
            assert opt.hyperparams[key] == (list(default) if type(default) is tuple else default)


SCHEDULE_SIGNATURES = {  # name: (signature, values of the required arguments)
    "StepLR": ("(optimizer, step_size, gamma=0.1)", (3,)),
    "ExponentialLR": ("(optimizer, gamma)", (0.5,)),
    "WarmupCosine": ("(optimizer, warmup_steps, total_steps, min_lr=0.0)", (2, 5)),
    "ReduceLROnPlateau": (
        "(optimizer, mode='min', factor=0.1, patience=10, threshold=0.0001, "
        "threshold_mode='rel', cooldown=0, min_lr=0.0, eps=1e-08)",
        (),
    ),
}


@pytest.mark.parametrize("name", SCHEDULE_SIGNATURES)
def test_schedule_signature_comes_from_the_declarations(name):
    cls = getattr(optim, name)
    signature, required = SCHEDULE_SIGNATURES[name]
    sig = inspect.signature(cls)
    assert str(sig) == signature
    assert f"{name}{signature}" in pydoc.render_doc(cls, renderer=pydoc.plaintext)
    sched = cls(optim.SGD({"w": np.zeros(2)}, lr=0.1), *required)
    assert list(sched.hyperparams) == list(sig.parameters)[1:]
    for key, param in list(sig.parameters.items())[1 + len(required) :]:
        assert sched.hyperparams[key] == param.default
    with pytest.raises(TypeError, match=re.escape(f"{name}() got an unexpected keyword argument")):
        cls(optim.SGD({"w": np.zeros(2)}, lr=0.1), *required, lr=0.1)


def test_arguments_bind_as_the_signature_says():
    opt = optim.SGD({"w": np.zeros(2)}, 0.1, 0.9, 0.0, True)  # positionally, as before
    assert opt.hyperparams["momentum"] == 0.9 and opt.hyperparams["nesterov"] is True
    with pytest.raises(TypeError, match=re.escape("SGD() missing a required argument: 'lr'")):
        optim.SGD({"w": np.zeros(2)})
    with pytest.raises(
        TypeError, match=re.escape("Adam() got an unexpected keyword argument 'mu'")
    ):
        optim.Adam({"w": np.zeros(2)}, mu=0.9)
    with pytest.raises(TypeError, match="too many positional arguments"):
        optim.Adagrad({"w": np.zeros(2)}, 0.1, 0.0, 0.0, 0.0, 1e-10, 7)


# -- checkpoints written before the change ---------------------------------------------------------

# Each optimiser over {"w": [1.0, -2.0]}, 3 steps of GRADS[:3]: its state_dict as written by the
# optimisers of commit 1ef5652 (before they became declarative), the parameter at that point, and
# the parameter after 2 more steps (GRADS[3:]) with that code. Float reprs round-trip exactly.
GRADS = [[0.5, -1.25], [-0.75, 2.0], [0.25, 0.5], [1.5, -0.5], [-1.0, 0.125]]
OLD_CHECKPOINTS = [
    (
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 0.01}
        | {"maximize": False},
        {"momentum_buffer": [0.006253641099999985, 1.2351468153]},
        [0.976008708191, -2.191619194907],
        [0.7545928585077515, -2.2598532479435676],
    ),
    (
        "Adam",
        {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.1, "amsgrad": True},
        {
            "exp_avg": [0.024919331957824545, 0.07472403380821104],
            "exp_avg_sq": [0.0009045237047420088, 0.005429159410496281],
            "max_exp_avg_sq": [0.0009045237047420088, 0.005429159410496281],
        },
        [0.9892594071919327, -1.9936452709719559],
        [0.9816120663648149, -1.9933600935746687],
    ),
    (
        "AdamW",
        {"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-08, "weight_decay": 0.01, "amsgrad": False},
        {
            "exp_avg": [-0.006000000000000005, 0.25999999999999995],
            "exp_avg_sq": [0.077125, 0.5115624999999999],
        },
        [0.9929524791554253, -1.9965730501889203],
        [0.9867808188206537, -1.9993146901517054],
    ),
    (
        "RMSprop",
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-08, "weight_decay": 0.0, "momentum": 0.5}
        | {"centered": True},
        {
            "square_avg": [0.008644000000000008, 0.05741406250000006],
            "momentum_buffer": [1.0332035708100404, 3.825163139416206],
            "grad_avg": [-2.4499999999999782e-05, 0.012548750000000015],
        },
        [0.9222791155993643, -1.9724596902516334],
        [0.8359474055903865, -1.9754993125666038],
    ),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.0, "initial_accumulator_value": 0.1}
        | {"eps": 1e-10},
        {"sum": [0.975, 5.9125]},
        [0.9683987573521954, -2.0064294221306267],
        [0.9340839282566847, -1.9917101573095977],
    ),
]


@pytest.mark.parametrize("old", OLD_CHECKPOINTS, ids=[c[0] for c in OLD_CHECKPOINTS])
def test_checkpoints_from_before_load_and_resume_bit_for_bit(old):
    name, hyperparams, state, w_saved, w_expected = old
    saved = {
        "type": name,
        "hyperparams": hyperparams,
        "step_count": 3,
        "state": {"w": {k: np.array(v) for k, v in state.items()}},
    }
    w = np.array(w_saved)
    opt = getattr(optim, name)({"w": w}, lr=0.5)  # built with other settings, then loaded
    opt.load_state_dict(saved)
    assert opt.hyperparams == hyperparams and opt.step_count == 3
    for g in GRADS[3:]:
        opt.step({"w": np.array(g)})
    assert w.tolist() == w_expected
    # ... and the same run from scratch writes the same layout
    fresh = np.array([1.0, -2.0])
    opt = getattr(optim, name)({"w": fresh}, **hyperparams)
    for g in GRADS[:3]:
        opt.step({"w": np.array(g)})
    written = opt.state_dict()
    assert list(written) == ["type", "hyperparams", "step_count", "state"]
    assert written["hyperparams"] == hyperparams and list(written["hyperparams"]) == list(
        hyperparams
    )
    assert list(written["state"]["w"]) == list(state)
    assert {k: v.tolist() for k, v in written["state"]["w"].items()} == state
    assert fresh.tolist() == w_saved


# Each schedule over SGD(lr=0.1) after 5 steps (metrics 3, 2, 2.5, 2.4, 1 for the plateau): its
# state_dict as written by the schedules of commit 5affc71 (before they became declarative).
OLD_SCHEDULES = {
    "StepLR": (
        {"step_size": 2, "gamma": 0.7},
        {"last_epoch": 5, "base_lr": 0.1, "last_lr": 0.048999999999999995},
    ),
    "ExponentialLR": (
        {"gamma": 0.9},
        {"last_epoch": 5, "base_lr": 0.1, "last_lr": 0.05904900000000002},
    ),
    "WarmupCosine": (
        {"warmup_steps": 3, "total_steps": 9, "min_lr": 0.001},
        {"last_epoch": 5, "base_lr": 0.1, "last_lr": 0.07525000000000001},
    ),
    "ReduceLROnPlateau": (
        {"mode": "min", "factor": 0.5, "patience": 0, "threshold": 0.0001}
        | {"threshold_mode": "rel", "cooldown": 1, "min_lr": 0.0, "eps": 1e-08},
        {"last_epoch": 5, "best": 1.0, "num_bad_epochs": 0, "cooldown_counter": 0}
        | {"last_lr": 0.05},
    ),
}


@pytest.mark.parametrize("name", OLD_SCHEDULES)
def test_schedule_checkpoints_from_before_are_written_and_loaded_alike(name):
    hyperparams, entries = OLD_SCHEDULES[name]
    saved = {"type": name, "hyperparams": hyperparams} | entries
    opt = optim.SGD({"w": np.zeros(1)}, lr=0.1)
    sched = getattr(optim, name)(opt, **hyperparams)
    for metric in [3.0, 2.0, 2.5, 2.4, 1.0]:
        sched.step(metric) if name == "ReduceLROnPlateau" else sched.step()
    written = sched.state_dict()
    assert written == saved and list(written) == list(saved)
    assert list(written["hyperparams"]) == list(hyperparams)
    fresh = optim.SGD({"w": np.zeros(1)}, lr=0.1)
    other = getattr(optim, name)(fresh, **hyperparams)
    other.load_state_dict(saved)
    assert other.state_dict() == saved and fresh.lr == opt.lr


# -- pickle and deepcopy ---------------------------------------------------------------------------

OPTIMISERS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}),
]
SCHEDULES = {
    "step": lambda o: optim.StepLR(o, step_size=2, gamma=0.7),
    "exponential": lambda o: optim.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: optim.WarmupCosine(o, warmup_steps=3, total_steps=9, min_lr=1e-3),
    "plateau": lambda o: optim.ReduceLROnPlateau(o, patience=0, cooldown=1, factor=0.5),
}
COPIERS = {
    "pickle": lambda x: pickle.loads(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL)),
    "deepcopy": copy.deepcopy,
}


def make_run(seed: int):
    rng = np.random.default_rng(seed)
    params = {"weight": rng.standard_normal((3, 2)), "bias": rng.standard_normal(3)}
    params["half"] = rng.standard_normal(4).astype(np.float32)
    grads = [
        {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
        for _ in range(12)
    ]
    return params, grads


def train(params, opt, sched, grads_seq, clip, bound):
    for grads in grads_seq:
        grads = {k: g.copy() for k, g in grads.items()}
        clip(grads, bound)
        opt.step(grads)
        if isinstance(sched, optim.ReduceLROnPlateau):
            sched.step(sum(float(np.abs(p).sum()) for p in params.values()))
        else:
            sched.step()


@pytest.mark.parametrize("copier", COPIERS)
@pytest.mark.parametrize("sched_kind", SCHEDULES)
@pytest.mark.parametrize("case", OPTIMISERS, ids=lambda c: f"{c[0]}-{len(c[1])}")
def test_copies_update_bit_identically(case, sched_kind, copier):
    name, kwargs = case
    params, grads_seq = make_run(seed=len(kwargs))
    opt = getattr(optim, name)(params, **kwargs)
    sched = SCHEDULES[sched_kind](opt)
    clip, bound = (optim.clip_grad_norm, 1.0) if len(kwargs) % 2 else (optim.clip_grad_value, 0.5)
    assert COPIERS[copier](clip) is clip  # functions copy as themselves
    train(params, opt, sched, grads_seq[:6], clip, bound)
    for obj in (opt, sched):  # nothing that would not pickle, such as a lambda
        assert not any(callable(v) for v in vars(obj).values())

    params2, opt2, sched2 = COPIERS[copier]((params, opt, sched))
    assert sched2.optimizer is opt2 and all(params2[k] is not params[k] for k in params)
    train(params, opt, sched, grads_seq[6:], clip, bound)
    train(params2, opt2, sched2, grads_seq[6:], clip, bound)

    for k in params:
        assert params2[k].dtype == params[k].dtype and np.array_equal(params2[k], params[k])
    assert (opt2.lr, opt2.step_count, repr(opt2)) == (opt.lr, opt.step_count, repr(opt))
    s, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["hyperparams"] == s["hyperparams"]
    for k in params:
        assert list(s2["state"][k]) == list(s["state"][k])
        for key, arr in s["state"][k].items():
            assert np.array_equal(s2["state"][k][key], arr)
    assert sched2.state_dict() == sched.state_dict()


@pytest.mark.parametrize("copier", COPIERS)
def test_an_optimiser_copied_alone_updates_its_own_arrays(copier):
    params, grads_seq = make_run(seed=3)
    opt = optim.Adam(params, lr=0.1)
    opt.step(grads_seq[0])
    before = {k: v.copy() for k, v in params.items()}
    opt2 = COPIERS[copier](opt)
    opt2.step(grads_seq[1])
    assert opt2.step_count == 2 and opt.step_count == 1
    for k in params:
        assert np.array_equal(params[k], before[k]), "the copy must not write into the originals"


def exported(base: type) -> list[str]:
    """The names of the concrete subclasses of ``base`` that rnnkit.optim exports."""
    classes = {name: getattr(optim, name) for name in optim.__all__}
    return sorted(
        name
        for name, cls in classes.items()
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base
    )


def test_the_copy_tests_cover_every_optimiser_and_schedule():
    assert sorted({name for name, _ in OPTIMISERS}) == exported(optim.Optimizer)
    opt = optim.SGD({"w": np.zeros(1)}, lr=0.1)
    made = sorted(type(make(opt)).__name__ for make in SCHEDULES.values())
    assert made == exported(optim.Schedule)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("case", OPTIMISERS, ids=lambda c: f"{c[0]}-{len(c[1])}")
def test_every_pickle_protocol_and_a_schedule_alone(case, protocol):
    """``pickle.loads(pickle.dumps(x, protocol))`` for every protocol: the optimiser with its
    parameters, and each schedule alone (it brings its own copy of the optimiser)."""
    name, kwargs = case
    params, grads_seq = make_run(seed=len(kwargs) + 10)
    opt = getattr(optim, name)(params, **kwargs)
    for grads in grads_seq[:4]:
        opt.step(grads)
    params2, opt2 = pickle.loads(pickle.dumps((params, opt), protocol))
    for grads in grads_seq[4:]:
        opt.step(grads)
        opt2.step(grads)
    for k in params:
        assert params2[k].dtype == params[k].dtype and np.array_equal(params2[k], params[k])
    assert repr(opt2) == repr(opt)

    metrics = [3.0, 2.0, 2.5, 2.4, 1.0, 1.5, 1.4, 0.5]
    for make in SCHEDULES.values():
        sched = make(opt)
        plateau = isinstance(sched, optim.ReduceLROnPlateau)
        for m in metrics[:3]:
            sched.step(m) if plateau else sched.step()
        sched2 = pickle.loads(pickle.dumps(sched, protocol))
        assert sched2.optimizer is not opt and sched2.optimizer.lr == opt.lr
        for m in metrics[3:]:
            for s in (sched, sched2):
                s.step(m) if plateau else s.step()
            assert sched2.optimizer.lr == opt.lr
        assert sched2.state_dict() == sched.state_dict() and repr(sched2) == repr(sched)


def test_rebind_moves_the_updates_to_other_arrays_and_keeps_the_state():
    """After ``rebind`` the optimiser steps the new arrays exactly as it would have stepped the
    old ones (same state, step count), and leaves the old ones alone; mismatched names, shapes
    or dtypes are refused, naming what is wrong."""
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
    straight = optim.Adam({k: v.copy() for k, v in params.items()}, lr=0.1)
    moved = optim.Adam({k: v.copy() for k, v in params.items()}, lr=0.1)
    straight.step(grads[0])
    moved.step(grads[0])
    old = dict(moved._params)
    new = {k: v.copy() for k, v in old.items()}
    moved.rebind(new)
    frozen = {k: v.copy() for k, v in old.items()}
    for g in grads[1:]:
        straight.step(g)
        moved.step(g)
    for k in params:
        np.testing.assert_array_equal(new[k], straight._params[k])
        np.testing.assert_array_equal(old[k], frozen[k])
    assert moved.step_count == 3
    with pytest.raises(ValueError, match="params"):
        moved.rebind({"w": new["w"]})
    with pytest.raises(ValueError, match=r"params\['b'\]"):
        moved.rebind({"w": new["w"], "b": np.zeros(3)})
    with pytest.raises(TypeError, match=r"params\['b'\]"):
        moved.rebind({"w": new["w"], "b": new["b"].astype(np.float32)})
