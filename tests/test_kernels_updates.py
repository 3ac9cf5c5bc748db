"""The optimisers' fused update on the extension (rnnkit.runtime.kernels.updates, ``adam.h``):
the same bits as the NumPy rule of rnnkit.optim.updates, for Adam and AdamW with every option
(L2 or decoupled weight decay, amsgrad, beta1 on both sides of torch.lerp's switch), float32
and float64, every instruction set, one or more threads; NaN as NumPy propagates it; and the
arrays it does not cover left to the NumPy rule."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.optim import updates
from rnnkit.runtime import kernels
from rnnkit.runtime.kernels import updates as compiled

OPTIONS = [
    {"weight_decay": 0.0, "amsgrad": False},
    {"weight_decay": 0.1, "amsgrad": False},
    {"weight_decay": 0.1, "amsgrad": True},
    {"weight_decay": 0.3, "amsgrad": False, "decoupled": True},
    {"weight_decay": 0.3, "amsgrad": True, "decoupled": True},
    {"weight_decay": 0.0, "amsgrad": True},
]


def _run(n, dtype, options, betas, monkeypatch, env, rng_seed, steps=4, nan_at=None):
    """The parameter and state after ``steps`` Adam steps, with RNNKIT_KERNELS=env."""
    rng = np.random.default_rng(rng_seed)
    param = rng.standard_normal(n).astype(dtype)
    state = {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
    if options["amsgrad"]:
        state["max_exp_avg_sq"] = np.zeros_like(param)
    monkeypatch.setenv(kernels.ENV, env)
    for step in range(1, steps + 1):
        grad = rng.standard_normal(n).astype(dtype)
        if nan_at is not None and step == 2:
            grad[nan_at] = np.nan
        updates.adam(param, grad, state, step=step, lr=0.01, betas=betas, eps=1e-8, **options)
    return param, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_fused_adam_gives_the_numpy_rules_bits(native, every_isa, monkeypatch, dtype, options):
    for name in every_isa:
        native.isa(name)
        for n, betas in [(1, [0.9, 0.999]), (37, [0.3, 0.5]), (200_003, [0.9, 0.999])]:
            want = _run(n, dtype, options, betas, monkeypatch, "numpy", n)
            got = _run(n, dtype, options, betas, monkeypatch, "auto", n)
            assert np.array_equal(got[0], want[0]), (name, n)
            for key in want[1]:
                assert np.array_equal(got[1][key], want[1][key]), (name, n, key)


def test_fused_adam_propagates_nan_as_numpy(native, monkeypatch):
    options = {"weight_decay": 0.0, "amsgrad": True}
    want = _run(50, np.float64, options, [0.9, 0.999], monkeypatch, "numpy", 0, nan_at=[3, 7])
    got = _run(50, np.float64, options, [0.9, 0.999], monkeypatch, "auto", 0, nan_at=[3, 7])
    assert np.isnan(got[0][[3, 7]]).all() and np.isnan(got[1]["max_exp_avg_sq"][[3, 7]]).all()
    np.testing.assert_array_equal(got[0], want[0])  # NaN where NumPy has NaN
    np.testing.assert_array_equal(got[1]["max_exp_avg_sq"], want[1]["max_exp_avg_sq"])


def test_fused_adam_covers_only_what_it_can(native):
    rng = np.random.default_rng(1)
    param = rng.standard_normal((6, 8))
    state = {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
    values = dict(w=0.1, beta2=0.999, weight_decay=0.0, decoupled=False, amsgrad=False,
                  keep=1.0, bc2_sqrt=0.5, eps=1e-8, neg_step=-0.01)  # fmt: skip
    before = param.copy()
    assert not compiled.adam(param, param[:, ::2].T.copy().T, state, **values)  # shape
    assert not compiled.adam(param, np.ones((8, 6)).T, state, **values)  # not contiguous
    assert not compiled.adam(param, np.ones((6, 8), np.float32), state, **values)  # dtype
    assert np.array_equal(param, before) and not state["exp_avg"].any()
    assert compiled.adam(param, np.ones((6, 8)), state, **values)
    assert not np.array_equal(param, before)


def test_adam_optimizer_takes_the_fused_path(native, monkeypatch):
    """Through the optimiser, float32: the same bits on either path."""
    results = []
    for env in ("auto", "numpy"):
        monkeypatch.setenv(kernels.ENV, env)
        rng = np.random.default_rng(2)
        params = {"w": rng.standard_normal((300, 70)).astype(np.float32)}
        opt = optim.Adam(params, lr=0.01)
        for _ in range(3):
            opt.step({"w": rng.standard_normal((300, 70)).astype(np.float32)})
        results.append(params["w"])
    np.testing.assert_array_equal(results[0], results[1])
