"""rnnkit.losses: gradients against finite differences, values and gradients against PyTorch,
the mask / ignore_index / reduction semantics, numerical stability and argument errors.

Sizes: T = 4 steps, B = 3 sequences, C = 5 classes (or features). Every option grid covers the
masks (none, bool, float weights with a zero, weights broadcast along B) and both reductions.
"""

from __future__ import annotations

import itertools
import math
import re
from functools import partial

import numpy as np
import pytest

from conftest import assert_close
from rnnkit.gradcheck import relative_error
from rnnkit.losses import bce_with_logits, cross_entropy, huber, mae, mse

T, B, C = 4, 3, 5
GRAD_TOL = 1e-7  # finite differences vs the returned gradient, float64
TORCH_RTOL = 1e-12  # value and gradient vs torch autograd, float64
MASKS = (None, "bool", "float", "broadcast")
REDUCTIONS = ("mean", "sum")


def msg(*parts: str) -> str:
    """A ``match=`` pattern: the literal parts, in order, anything in between."""
    return ".*".join(re.escape(p) for p in parts)


def make_mask(rng: np.random.Generator, kind: str | None, shape: tuple[int, ...]):
    """None, a bool mask, float weights (one of them 0) or weights of shape (T, 1, ...)."""
    if kind is None:
        return None
    if kind == "bool":
        m = rng.random(shape) < 0.6
        m.flat[0], m.flat[1] = True, False
        return m
    if kind == "float":
        m = rng.uniform(0.1, 2.0, shape)
        m.flat[1] = 0.0
        return m
    return rng.uniform(0.1, 2.0, (shape[0], 1, *shape[2:]))  # broadcast along B


def numeric_grad(f, x: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """dL/dx of the float L = f(x), entry by entry, by the fourth-order central difference
    (8 (L(+eps) - L(-eps)) - (L(+2 eps) - L(-2 eps))) / (12 eps).

    Its truncation error is O(eps^4) ~ 1e-12, and the rounding of L, about 1e-16 |L| / eps,
    dominates: eps = 1e-3 keeps the worst relative error near 1e-8 (1e-4 gives 1e-7 on the
    smallest entries, the tolerance itself)."""
    x = x.copy()
    out = np.empty_like(x)
    flat, out_flat = x.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        L = {}
        for k in (1, -1, 2, -2):
            flat[i] = orig + k * eps
            L[k] = f(x)
        flat[i] = orig
        out_flat[i] = (8.0 * (L[1] - L[-1]) - (L[2] - L[-2])) / (12.0 * eps)
    return out


def grad_error(loss_fn, x: np.ndarray, *args, **kw) -> float:
    """Relative error of ``loss_fn``'s gradient w.r.t. its first argument ``x``."""
    loss, grad = loss_fn(x, *args, **kw)
    assert isinstance(loss, float)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert np.abs(grad).max() > 0  # a check of two zero tensors would prove nothing
    numeric = numeric_grad(lambda z: loss_fn(z, *args, **kw)[0], x)
    return relative_error(grad, numeric)


def away_from(rng: np.random.Generator, shape, kinks, gap: float = 0.05) -> np.ndarray:
    """Random normal offsets d (scale 1.5) with every |d| at least ``gap`` from each kink, so
    that no finite-difference stencil straddles a kink of |d| (MAE) or of Huber's pieces."""
    d = rng.normal(scale=1.5, size=shape)
    while True:
        near = np.zeros(shape, dtype=bool)
        for k in kinks:
            near |= np.abs(np.abs(d) - k) < gap
        if not near.any():
            return d
        d[near] = rng.normal(scale=1.5, size=int(near.sum()))


# --- cases ------------------------------------------------------------------------------------

CE_GRID = [
    pytest.param(
        seed, mask, ignore, smoothing, reduction, id=f"{mask}-ii{ignore}-ls{smoothing}-{reduction}"
    )
    for seed, (mask, ignore, smoothing, reduction) in enumerate(
        itertools.product(MASKS, (None, -100, 2), (0.0, 0.1), REDUCTIONS)
    )
]


def ce_case(seed: int, mask: str | None, ignore: int | None):
    """Logits (T, B, C) of scale 2, targets (T, B), mask; some targets equal ``ignore``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(T, B, C))
    targets = rng.integers(0, C, size=(T, B))
    if ignore is not None:
        targets[1, :2] = ignore  # -100 lies outside [0, C); 2 is a real class
    return logits, targets, make_mask(rng, mask, (T, B))


BCE_GRID = [
    pytest.param(seed, mask, pw, reduction, id=f"{mask}-pw{pw}-{reduction}")
    for seed, (mask, pw, reduction) in enumerate(
        itertools.product(MASKS, (None, "class", "scalar"), REDUCTIONS)
    )
]


def bce_case(seed: int, mask: str | None, pw: str | None):
    """Logits (T, B, C), targets half 0/1 and half fractional, mask, pos_weight."""
    rng = np.random.default_rng(100 + seed)
    logits = rng.normal(scale=2.0, size=(T, B, C))
    targets = rng.random((T, B, C))
    hard = rng.random((T, B, C)) < 0.5
    targets[hard] = np.round(targets[hard])
    pos_weight = {None: None, "class": rng.uniform(0.2, 3.0, C), "scalar": np.float64(2.5)}[pw]
    return logits, targets, make_mask(rng, mask, (T, B, C)), pos_weight


REGRESSION = {
    "mse": (mse, {}, ()),
    "mae": (mae, {}, (0.0,)),
    "huber": (huber, {}, (1.0,)),
    "huber_d0.5": (huber, {"delta": 0.5}, (0.5,)),
}
REG_GRID = [
    pytest.param(seed, name, mask, reduction, id=f"{name}-{mask}-{reduction}")
    for seed, (name, mask, reduction) in enumerate(itertools.product(REGRESSION, MASKS, REDUCTIONS))
]


def reg_case(seed: int, name: str, mask: str | None):
    """pred (T, B, C), target with pred - target away from the loss's kinks, mask."""
    rng = np.random.default_rng(200 + seed)
    pred = rng.normal(size=(T, B, C))
    target = pred - away_from(rng, pred.shape, REGRESSION[name][2])
    return pred, target, make_mask(rng, mask, (T, B, C))


# --- gradients against finite differences -----------------------------------------------------


@pytest.mark.parametrize("seed, mask, ignore, smoothing, reduction", CE_GRID)
def test_cross_entropy_gradient(seed, mask, ignore, smoothing, reduction):
    logits, targets, m = ce_case(seed, mask, ignore)
    err = grad_error(cross_entropy, logits, targets, m, ignore, smoothing, reduction)
    assert err <= GRAD_TOL


@pytest.mark.parametrize("seed, mask, pw, reduction", BCE_GRID)
def test_bce_gradient(seed, mask, pw, reduction):
    logits, targets, m, pos_weight = bce_case(seed, mask, pw)
    err = grad_error(bce_with_logits, logits, targets, m, pos_weight, reduction)
    assert err <= GRAD_TOL


@pytest.mark.parametrize("seed, name, mask, reduction", REG_GRID)
def test_regression_gradient(seed, name, mask, reduction):
    fn, kw, _ = REGRESSION[name]
    pred, target, m = reg_case(seed, name, mask)
    assert grad_error(fn, pred, target, m, reduction=reduction, **kw) <= GRAD_TOL


def test_huber_grid_crosses_both_pieces():
    """The Huber cases above exercise the quadratic and the linear piece, for each delta."""
    for seed, name, *_ in (p.values for p in REG_GRID):
        if name.startswith("huber"):
            pred, target, _ = reg_case(seed, name, None)
            delta = REGRESSION[name][1].get("delta", 1.0)
            size = np.abs(pred - target)
            assert (size < delta).any() and (size > delta).any()


# --- semantics ----------------------------------------------------------------------------------


def test_bool_mask_is_selection():
    """A bool mask equals the loss of the selected rows; masked rows get zero gradient."""
    logits, targets, m = ce_case(0, "bool", None)
    for reduction in REDUCTIONS:
        loss, grad = cross_entropy(logits, targets, m, reduction=reduction)
        loss_sel, grad_sel = cross_entropy(logits[m], targets[m], reduction=reduction)
        assert loss == pytest.approx(loss_sel, rel=1e-14)
        assert_close(grad[m], grad_sel, 1e-14, "selected rows")
        assert not grad[~m].any()


def test_integer_weights_are_repetition():
    """Weight 3 on a row equals that row three times: mean = sum(w l) / sum(w)."""
    rng = np.random.default_rng(7)
    pred, target = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    w = np.array([1, 3, 0, 2])[:, None]
    rows = np.repeat(np.arange(4), [1, 3, 0, 2])
    for fn in (mse, mae, huber):
        loss, grad = fn(pred, target, w)
        loss_rep, grad_rep = fn(pred[rows], target[rows])
        assert loss == pytest.approx(loss_rep, rel=1e-14)
        summed = np.zeros_like(grad)
        np.add.at(summed, rows, grad_rep)
        assert_close(grad, summed, 1e-14, fn.__name__)


def test_ignore_index_equals_mask():
    logits, targets, _ = ce_case(3, None, -100)
    kept = targets != -100
    for reduction, smoothing in itertools.product(REDUCTIONS, (0.0, 0.2)):
        ours = cross_entropy(logits, targets, None, -100, smoothing, reduction)
        safe = np.where(kept, targets, 0)
        masked = cross_entropy(logits, safe, kept, None, smoothing, reduction)
        assert ours[0] == pytest.approx(masked[0], rel=1e-14)
        assert_close(ours[1], masked[1], 1e-14, "dlogits")


def test_broadcast_mask_equals_full_mask():
    rng = np.random.default_rng(11)
    pred, target = rng.normal(size=(T, B, C)), rng.normal(size=(T, B, C))
    w = rng.uniform(0.1, 2.0, (T, 1, 1))
    full = np.broadcast_to(w, pred.shape).copy()
    for fn, reduction in itertools.product((mse, mae, huber), REDUCTIONS):
        a, b = fn(pred, target, w, reduction=reduction), fn(pred, target, full, reduction=reduction)
        assert a[0] == pytest.approx(b[0], rel=1e-14)
        assert_close(a[1], b[1], 1e-14, fn.__name__)


def test_pos_weight_broadcasts_over_last_axis():
    logits, targets, _, pw = bce_case(0, None, "class")
    full = np.broadcast_to(pw, logits.shape).copy()
    a, b = (
        bce_with_logits(logits, targets, pos_weight=pw),
        bce_with_logits(logits, targets, pos_weight=full),
    )
    assert a[0] == pytest.approx(b[0], rel=1e-14)
    assert_close(a[1], b[1], 1e-14, "dlogits")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nothing_counted_gives_zero(reduction):
    """All ignored, all masked or an empty batch: loss 0.0 and zero gradient (torch: nan)."""
    logits, targets, _ = ce_case(5, None, None)
    cases = [
        cross_entropy(logits, np.full((T, B), -1), ignore_index=-1, reduction=reduction),
        cross_entropy(logits, targets, np.zeros((T, B), bool), reduction=reduction),
        cross_entropy(np.zeros((0, C)), np.zeros(0, int), reduction=reduction),
        bce_with_logits(logits, np.ones_like(logits), np.zeros(C), reduction=reduction),
        mse(logits, np.zeros_like(logits), np.zeros((T, 1, 1)), reduction=reduction),
    ]
    for loss, grad in cases:
        assert loss == 0.0 and isinstance(loss, float)
        assert not grad.any()


def test_one_dimensional_logits():
    """logits (C,) with a 0-d target: a single example."""
    z = np.array([0.3, -1.2, 2.0])
    loss, grad = cross_entropy(z, np.array(2))
    p = np.exp(z) / np.exp(z).sum()
    assert loss == pytest.approx(-math.log(p[2]), rel=1e-14)
    assert_close(grad, p - np.eye(3)[2], 1e-14, "dlogits")


def test_full_label_smoothing_is_uniform_target():
    logits, targets, _ = ce_case(6, None, None)
    loss, grad = cross_entropy(logits, targets, label_smoothing=1.0)
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert loss == pytest.approx(-log_p.mean(), rel=1e-13)
    assert_close(grad, (np.exp(log_p) - 1.0 / C) / (T * B), 1e-13, "dlogits")


def test_mae_subgradient_zero_at_equality():
    pred = np.array([1.0, -2.0, 0.5])
    loss, grad = mae(pred, np.array([1.0, -1.0, 0.0]), reduction="sum")
    assert loss == 1.5
    np.testing.assert_array_equal(grad, [0.0, -1.0, 1.0])


def test_huber_pieces():
    """|d| = delta: both pieces agree (gradient +-delta); a huge delta is half the MSE."""
    loss, grad = huber(np.array([1.5, -0.5, 0.2]), np.array([0.5, 0.5, 0.0]), reduction="sum")
    assert loss == pytest.approx(0.5 + 0.5 + 0.02, rel=1e-15)
    np.testing.assert_allclose(grad, [1.0, -1.0, 0.2], rtol=1e-15)
    pred, target, _ = reg_case(0, "mse", None)
    h, m = huber(pred, target, delta=1e3), mse(pred, target)
    assert h[0] == pytest.approx(m[0] / 2, rel=1e-14)
    assert_close(h[1], m[1] / 2, 1e-14, "dpred")


# --- stability and float32 ----------------------------------------------------------------------

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_extreme_logits(dtype):
    logits = EXTREME.astype(dtype)
    loss, grad = cross_entropy(logits, np.array([0, 1, 1]), reduction="sum")
    assert loss == pytest.approx(0.0 + 2e4 + math.log(2), rel=1e-10)  # row by row
    expected = np.array([[0, 0, 0], [0, -1, 1], [0.5, -0.5, 0]])
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    loss, grad = cross_entropy(logits, np.array([0, 1, 1]), label_smoothing=0.3)
    assert np.isfinite(loss) and np.isfinite(grad).all()


BCE_EXTREME_TARGETS = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_extreme_logits(dtype):
    logits = EXTREME.astype(dtype)
    pos_weight = np.array([2.0, 1.0, 3.0])
    loss, grad = bce_with_logits(
        logits, BCE_EXTREME_TARGETS, pos_weight=pos_weight, reduction="sum"
    )
    # wrong side by 1e4, weighted by pos_weight where y = 1: (1, 0), (2, 0), (2, 1), (2, 2);
    # x = 0 with y = 0.5, pos_weight 3: 0.5 * 3 * log 2 + 0.5 * log 2; every other term is 0
    assert loss == pytest.approx(2e4 + 1e4 + 1e4 + 3e4 + 2.0 * math.log(2), rel=1e-10)
    assert grad.dtype == dtype
    expected = np.array([[0.0, 0.0, 0.25 - 0.75], [-2.0, 0.0, 0.0], [1.0, 1.0, -3.0]])
    np.testing.assert_allclose(grad, expected, atol=1e-7)


@pytest.mark.parametrize("name", ["cross_entropy", "bce", *REGRESSION])
def test_float32_matches_float64(name):
    """float32 in, float32 gradient out, equal to the float64 result to float32 precision."""
    if name == "cross_entropy":
        logits, targets, m = ce_case(1, "float", -100)
        run = partial(
            cross_entropy, targets=targets, mask=m, ignore_index=-100, label_smoothing=0.1
        )
    elif name == "bce":
        logits, targets, m, pw = bce_case(1, "float", "class")
        run = partial(bce_with_logits, targets=targets, mask=m, pos_weight=pw)
    else:
        fn, kw, _ = REGRESSION[name]
        logits, targets, m = reg_case(1, name, "float")
        run = partial(fn, target=targets, mask=m, **kw)
    loss32, grad32 = run(logits.astype(np.float32))
    loss64, grad64 = run(logits)
    assert isinstance(loss32, float) and grad32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    assert_close(grad32, grad64, 1e-5, name)


# --- parity with PyTorch ------------------------------------------------------------------------


def torch_reduce(torch, losses, weights, reduction):
    """The weighted sum, or sum / sum of weights, of elementwise torch losses."""
    w = torch.broadcast_to(torch.as_tensor(weights, dtype=torch.float64), losses.shape)
    total = (w * losses).sum()
    return total if reduction == "sum" else total / w.sum()


def assert_parity(ours, loss_t, x_t, what):
    loss_t.backward()
    assert_close(ours[0], loss_t.item(), TORCH_RTOL, f"{what} loss")
    assert_close(ours[1], x_t.grad.numpy(), TORCH_RTOL, f"{what} gradient")


@pytest.mark.parametrize("seed, mask, ignore, smoothing, reduction", CE_GRID)
def test_cross_entropy_torch(seed, mask, ignore, smoothing, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, targets, m = ce_case(seed, mask, ignore)
    ours = cross_entropy(logits, targets, m, ignore, smoothing, reduction)
    z = torch.tensor(logits, requires_grad=True)
    t = torch.tensor(targets)
    ii = -100 if ignore is None else ignore  # no target equals torch's default -100 then
    kw = dict(ignore_index=ii, label_smoothing=smoothing)
    zc = z.movedim(-1, 1)  # (T, C, B): torch wants the class axis at dim 1
    if m is None:
        loss_t = F.cross_entropy(zc, t, reduction=reduction, **kw)
    else:
        losses = F.cross_entropy(zc, t, reduction="none", **kw)  # (T, B)
        loss_t = torch_reduce(torch, losses, m * (targets != ii), reduction)
    assert_parity(ours, loss_t, z, "cross_entropy")


@pytest.mark.parametrize("seed, mask, pw, reduction", BCE_GRID)
def test_bce_torch(seed, mask, pw, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits, targets, m, pos_weight = bce_case(seed, mask, pw)
    ours = bce_with_logits(logits, targets, m, pos_weight, reduction)
    x = torch.tensor(logits, requires_grad=True)
    kw = dict(pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    y = torch.tensor(targets)
    if m is None:
        loss_t = F.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    else:
        losses = F.binary_cross_entropy_with_logits(x, y, reduction="none", **kw)
        loss_t = torch_reduce(torch, losses, m, reduction)
    assert_parity(ours, loss_t, x, "bce_with_logits")


@pytest.mark.parametrize("seed, name, mask, reduction", REG_GRID)
def test_regression_torch(seed, name, mask, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn, kw, _ = REGRESSION[name]
    pred, target, m = reg_case(seed, name, mask)
    pred[0, 0, :2] = target[0, 0, :2]  # d = 0: MAE's subgradient must be torch's sign(0) = 0
    ours = fn(pred, target, m, reduction=reduction, **kw)
    torch_fn = {mse: F.mse_loss, mae: F.l1_loss, huber: F.huber_loss}[fn]
    x = torch.tensor(pred, requires_grad=True)
    y = torch.tensor(target)
    if m is None:
        loss_t = torch_fn(x, y, reduction=reduction, **kw)
    else:
        loss_t = torch_reduce(torch, torch_fn(x, y, reduction="none", **kw), m, reduction)
    assert_parity(ours, loss_t, x, name)


def test_extreme_logits_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    targets = np.array([0, 1, 1])
    z = torch.tensor(EXTREME, requires_grad=True)
    ours = cross_entropy(EXTREME, targets, label_smoothing=0.1)
    assert_parity(ours, F.cross_entropy(z, torch.tensor(targets), label_smoothing=0.1), z, "ce")
    y = BCE_EXTREME_TARGETS
    x = torch.tensor(EXTREME, requires_grad=True)
    ours = bce_with_logits(EXTREME, y, reduction="sum")
    assert_parity(
        ours, F.binary_cross_entropy_with_logits(x, torch.tensor(y), reduction="sum"), x, "bce"
    )


def test_nothing_counted_differs_from_torch():
    """The documented difference: torch's mean over nothing is 0 / 0 = nan, ours is 0.0."""
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).normal(size=(3, C))
    targets = np.full(3, -100)
    assert cross_entropy(logits, targets, ignore_index=-100)[0] == 0.0
    loss_t = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets))
    assert math.isnan(loss_t.item())


# --- errors -----------------------------------------------------------------------------------

Z = np.zeros((T, B, C))
TG = np.zeros((T, B), dtype=np.int64)
NAN_Z = Z.copy()
NAN_Z[0, 1, 2] = np.nan
BAD_TG = TG.copy()
BAD_TG[1, 2] = C
NEG_MASK = np.ones((T, B))
NEG_MASK[2, 1] = -0.5

ERRORS = {
    "logits-list": (
        lambda: cross_entropy(Z.tolist(), TG),
        TypeError,
        msg("logits must be a numpy.ndarray of dtype float32 or float64, got list"),
    ),
    "logits-float16": (
        lambda: bce_with_logits(Z.astype(np.float16), Z),
        TypeError,
        msg("logits must be", "got dtype float16"),
    ),
    "logits-nan": (
        lambda: cross_entropy(NAN_Z, TG),
        ValueError,
        msg("logits must be finite, got nan at index (0, 1, 2)"),
    ),
    "logits-inf": (
        lambda: bce_with_logits(np.array([np.inf]), np.array([1.0])),
        ValueError,
        msg("logits must be finite, got inf at index (0,)"),
    ),
    "logits-0d": (
        lambda: cross_entropy(np.array(1.0), np.array(0)),
        ValueError,
        msg("logits must have shape (..., C) with C >= 1 classes, got ()"),
    ),
    "targets-float": (
        lambda: cross_entropy(Z, TG.astype(float)),
        TypeError,
        msg("targets must be integer class indices, got dtype float64"),
    ),
    "targets-bool": (
        lambda: cross_entropy(Z, TG.astype(bool)),
        TypeError,
        msg("targets must be integer class indices, got dtype bool"),
    ),
    "targets-shape": (
        lambda: cross_entropy(Z, TG.T),
        ValueError,
        msg("targets must have shape (4, 3) (logits.shape[:-1]), got (3, 4)"),
    ),
    "targets-range": (
        lambda: cross_entropy(Z, BAD_TG),
        ValueError,
        msg("targets must lie in [0, 5)", "got 5 at index (1, 2)"),
    ),
    "targets-negative": (
        lambda: cross_entropy(Z, -100 + TG),
        ValueError,
        msg("targets must lie in [0, 5)", "got -100 at index (0, 0)"),
    ),
    "targets-range-other-ignore": (
        lambda: cross_entropy(Z, BAD_TG, ignore_index=-100),
        ValueError,
        msg("targets must lie in [0, 5)", "or equal ignore_index = -100", "got 5"),
    ),
    "ignore_index-float": (
        lambda: cross_entropy(Z, TG, ignore_index=1.5),
        TypeError,
        msg("ignore_index must be an int or None, got 1.5"),
    ),
    "label_smoothing-negative": (
        lambda: cross_entropy(Z, TG, label_smoothing=-0.1),
        ValueError,
        msg("label_smoothing must lie in [0, 1], got -0.1"),
    ),
    "label_smoothing-above-1": (
        lambda: cross_entropy(Z, TG, label_smoothing=1.5),
        ValueError,
        msg("label_smoothing must lie in [0, 1], got 1.5"),
    ),
    "label_smoothing-nan": (
        lambda: cross_entropy(Z, TG, label_smoothing=float("nan")),
        ValueError,
        msg("label_smoothing must lie in [0, 1], got nan"),
    ),
    "label_smoothing-str": (
        lambda: cross_entropy(Z, TG, label_smoothing="0.1"),
        TypeError,
        msg("label_smoothing must be a real number, got str '0.1'"),
    ),
    "reduction-none": (
        lambda: cross_entropy(Z, TG, reduction="none"),
        ValueError,
        msg("reduction must be 'mean' or 'sum', got 'none'"),
    ),
    "reduction-mse": (
        lambda: mse(Z, Z, reduction="Mean"),
        ValueError,
        msg("reduction must be 'mean' or 'sum', got 'Mean'"),
    ),
    "mask-negative": (
        lambda: cross_entropy(Z, TG, NEG_MASK),
        ValueError,
        msg("mask must be non-negative, got -0.5 at index (2, 1)"),
    ),
    "mask-shape": (
        lambda: cross_entropy(Z, TG, np.ones((T, 2))),
        ValueError,
        msg("mask must have a shape broadcastable to (4, 3) (logits.shape[:-1]), got (4, 2)"),
    ),
    "mask-nan": (
        lambda: mae(Z, Z, np.array([1.0, np.nan, 1.0, 1.0, 1.0])),
        ValueError,
        msg("mask must be finite, got nan at index (1,)"),
    ),
    "mask-str": (
        lambda: mse(Z, Z, np.array(["a"])),
        TypeError,
        msg("mask must be an array of real numbers, got dtype <U1"),
    ),
    "bce-targets-shape": (
        lambda: bce_with_logits(Z, TG.astype(float)),
        ValueError,
        msg("targets must have the shape of logits, (4, 3, 5), got (4, 3)"),
    ),
    "bce-targets-range": (
        lambda: bce_with_logits(Z, Z + 1.5),
        ValueError,
        msg("targets must lie in [0, 1], got 1.5 at index (0, 0, 0)"),
    ),
    "bce-targets-nan": (
        lambda: bce_with_logits(Z, NAN_Z),
        ValueError,
        msg("targets must be finite, got nan at index (0, 1, 2)"),
    ),
    "pos_weight-negative": (
        lambda: bce_with_logits(Z, Z, pos_weight=np.array([1.0, 2.0, -1.0, 1.0, 1.0])),
        ValueError,
        msg("pos_weight must be non-negative, got -1.0 at index (2,)"),
    ),
    "pos_weight-shape": (
        lambda: bce_with_logits(Z, Z, pos_weight=np.ones(C + 1)),
        ValueError,
        msg("pos_weight must have a shape broadcastable to (4, 3, 5) (logits.shape), got (6,)"),
    ),
    "pred-list": (
        lambda: mse([1.0], np.array([1.0])),
        TypeError,
        msg("pred must be a numpy.ndarray of dtype float32 or float64, got list"),
    ),
    "pred-int": (
        lambda: mae(np.array([1, 2]), np.array([1.0, 2.0])),
        TypeError,
        msg("pred must be", "got dtype int64"),
    ),
    "target-shape": (
        lambda: huber(Z, Z[0]),
        ValueError,
        msg("target must have the shape of pred, (4, 3, 5), got (3, 5)"),
    ),
    "target-inf": (
        lambda: mse(np.zeros(2), np.array([0.0, -np.inf])),
        ValueError,
        msg("target must be finite, got -inf at index (1,)"),
    ),
    "target-ragged": (
        lambda: mse(np.zeros(2), [[0.0], [1.0, 2.0]]),
        TypeError,
        msg("target must be an array of real numbers, got a list that is not a regular array"),
    ),
    "delta-zero": (
        lambda: huber(Z, Z, delta=0.0),
        ValueError,
        msg("delta must be a positive finite number, got 0.0"),
    ),
    "delta-negative": (
        lambda: huber(Z, Z, delta=-1),
        ValueError,
        msg("delta must be a positive finite number, got -1"),
    ),
    "delta-inf": (
        lambda: huber(Z, Z, delta=float("inf")),
        ValueError,
        msg("delta must be a positive finite number, got inf"),
    ),
    "delta-bool": (
        lambda: huber(Z, Z, delta=True),
        TypeError,
        msg("delta must be a real number, got bool True"),
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors(case):
    call, exc, pattern = ERRORS[case]
    with pytest.raises(exc, match=pattern):
        call()
