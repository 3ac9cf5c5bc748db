"""Central-difference gradient checks of a layer's hand-written backward pass, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

RANDOM = "random"


def _as_tuple(state: Any) -> tuple[np.ndarray, ...]:
    """A state as a tuple of arrays: () for a stateless block's None."""
    if state is None:
        return ()
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _like(template: Any, parts: tuple[np.ndarray, ...]) -> Any:
    """``parts`` structured like ``template`` (None, one array, or a tuple)."""
    if template is None:
        return None
    return parts if isinstance(template, (tuple, list)) else parts[0]


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-4) -> float:
    """Worst element-wise relative error ``|a - n| / max(|a| + |n|, floor * scale)``.

    ``scale`` is the largest ``|a| + |n|`` of the tensor, so an entry far below the tensor's
    magnitude (where a finite difference is mostly rounding noise) is judged against that
    magnitude instead of its own. A tensor whose entries are all exactly zero on both sides has
    error 0.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic and numeric must have the same shape, got {a.shape}, {n.shape}")
    if a.size == 0:
        return 0.0
    mag = np.abs(a) + np.abs(n)
    scale = float(mag.max())
    if scale == 0.0:
        return 0.0
    return float((np.abs(a - n) / np.maximum(mag, floor * scale)).max())


def gradcheck(
    layer: Any,
    x: np.ndarray,
    state: Any = None,
    lengths: Any = None,
    *,
    dy: Any = RANDOM,
    dstate: Any = RANDOM,
    eps: float = 1e-4,
    seed: int = 0,
    floor: float = 1e-4,
) -> dict[str, float]:
    """Check a layer's backward pass against central differences of its forward pass.

    The scalar checked is ``L = sum(y * dy) + sum(state_T * dstate)``, so ``dy`` and ``dstate``
    are the upstream gradients handed to ``layer.backward``. By default both are random normal
    (never ones, which can hide a wrong gate order). Every entry of ``x``, of each initial state
    tensor and of each parameter is moved in turn by ``+-eps`` and ``+-2 eps`` and its derivative
    estimated by the fourth-order central difference

    ``(8 (L(+eps) - L(-eps)) - (L(+2 eps) - L(-2 eps))) / (12 eps)``,

    whose truncation error is O(eps^4): with eps = 1e-4 both it and the rounding error stay near
    1e-11, so a correct float64 backward pass typically shows relative errors of 1e-8 or less.

    Kinks (ReLU) are handled: when a pre-activation lies within 2 eps of its kink the central
    difference is wrong, whatever the order. Each estimate is therefore checked against the two
    one-sided second-order differences, which differ from the wide central difference by
    O(eps^2) on a smooth function but by a large fraction of the slope change when a kink lies in
    the stencil; where they disagree, the entry is estimated again with eps / 10 (up to three
    times). An undetected kink can leave an error of at most twice the tolerated disagreement,
    1e-7 of the entry's size.

    Works on any object with the layer interface: ``forward(x, state, lengths) -> (y, state_T,
    cache)``, ``backward(dy, cache, dstate) -> (dx, dstate0, grads)`` and ``parameters()``
    returning the live float64 arrays (this is how to check your own cell: wrap it in
    :class:`rnnkit.nn.Recurrent`). Layers with dropout are checked in training mode with fixed
    masks: when the layer has ``rng_state()`` / ``set_rng_state()`` (every
    :class:`rnnkit.nn.Module` does), each evaluation starts from the same generator states.

    Args:
        layer: the layer, with float64 parameters. Stateless blocks return None as their state.
        x: float64 input, or integer token ids (then ``"x"`` is not checked).
        state: initial state or None; when None the analytic pass uses ``state=None`` and the
            finite differences perturb an explicit zero state.
        lengths: optional lengths, passed to ``forward``.
        dy: dL/dy, or ``"random"`` (default).
        dstate: dL/d(final state), ``"random"`` (default) or None (no final-state gradient:
            ``backward`` gets ``dstate=None``).
        eps: the step of the central difference (default 1e-4).
        seed: seeds the random upstream gradients.
        floor: see :func:`relative_error`.

    Returns:
        The worst relative error per tensor: ``"x"``, then the state names (``"h0"``, ``"c0"``,
        from ``layer.state_names`` when it has them), then every parameter name.

    Example:
        >>> import numpy as np, rnnkit
        >>> lstm = rnnkit.LSTM(3, 4, dtype=np.float64, seed=0)
        >>> x = np.random.default_rng(1).normal(size=(5, 2, 3))
        >>> errors = rnnkit.gradcheck(lstm, x, lengths=[5, 3])
        >>> list(errors)[:4]
        ['x', 'h0', 'c0', 'weight_ih_l0']
        >>> max(errors.values()) < 1e-6
        True
    """
    params = layer.parameters()
    check_x = not (isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer))
    checked = [("x", x)] if check_x else []
    for name, value in [*checked, *((f"parameter {k!r}", v) for k, v in params.items())]:
        if not isinstance(value, np.ndarray) or value.dtype != np.float64:
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"gradcheck needs float64: {name} is {got}")
    if not (isinstance(eps, float) and eps > 0):
        raise ValueError(f"eps must be a positive float, got {eps!r}")

    # Stochastic blocks (dropout) draw the same masks in every evaluation: each forward starts
    # from the same generator states, so the check sees one fixed function.
    rng_states = layer.rng_state() if hasattr(layer, "rng_state") else None

    def forward(x_: np.ndarray, state_: Any) -> tuple:
        if rng_states is not None:
            layer.set_rng_state(rng_states)
        return layer.forward(x_, state_, lengths)

    y, state_T, cache = forward(x, state)
    rng = np.random.default_rng(seed)
    if isinstance(dy, str) and dy == RANDOM:
        dy = rng.standard_normal(y.shape)
    if isinstance(dstate, str) and dstate == RANDOM:
        dstate = _like(state_T, tuple(rng.standard_normal(s.shape) for s in _as_tuple(state_T)))
    elif state_T is None:
        dstate = None
    dx, dstate0, grads = layer.backward(dy, cache, dstate)

    loss = _Loss(dy, dstate, (y, state_T))
    names = getattr(layer, "state_names", None)
    state_parts = (
        _as_tuple(state)
        if state is not None
        else tuple(np.zeros_like(s) for s in _as_tuple(state_T))
    )
    state_parts = tuple(np.array(s, dtype=np.float64) for s in state_parts)  # private copies
    if names is None or len(names) != len(state_parts):
        names = (
            ("state",)
            if len(state_parts) == 1
            else tuple(f"state[{i}]" for i in range(len(state_parts)))
        )
    x_work = np.array(x, dtype=np.float64 if check_x else x.dtype)

    def run() -> tuple:
        y_, s_, _ = forward(x_work, _like(state_T, state_parts))
        return y_, s_

    def check(analytic: np.ndarray, array: np.ndarray) -> float:
        numeric = _numeric_gradient(array, run, loss, eps, floor * float(np.abs(analytic).max()))
        return relative_error(analytic, numeric, floor)

    errors = {"x": check(dx, x_work)} if check_x else {}
    for name, part, analytic in zip(names, state_parts, _as_tuple(dstate0)):
        errors[name] = check(analytic, part)
    for name, value in params.items():
        errors[name] = check(grads[name], value)
    return errors


KINK_TOL = 1e-7  # tolerated disagreement of the one-sided differences, relative to the entry
REFINEMENTS = 3  # how many times a kinked entry is estimated again with a 10 times smaller step
ROUNDING = 10 * np.finfo(np.float64).eps  # bound on the rounding of a loss difference, per |term|


class _Loss:
    """L(outputs) - L(base) for the checked scalar L = sum(y * dy) + sum(state_T * dstate)."""

    def __init__(self, dy: np.ndarray, dstate: Any, base: tuple) -> None:
        self.dy = dy
        self.dstate = None if dstate is None else _as_tuple(dstate)
        self.base = base
        y, state_T = base
        # sum of |terms| of L: bounds the rounding of a difference of two evaluations
        self.magnitude = float(np.abs(y * dy).sum())
        if self.dstate is not None:
            self.magnitude += sum(
                float(np.abs(s * d).sum()) for s, d in zip(_as_tuple(state_T), self.dstate)
            )

    def delta(self, outputs: tuple) -> float:
        """L(outputs) - L(base), differencing the outputs before summing to limit rounding."""
        (y, s), (y0, s0) = outputs, self.base
        total = float(np.sum((y - y0) * self.dy))
        if self.dstate is not None:
            for a, b, d in zip(_as_tuple(s), _as_tuple(s0), self.dstate):
                total += float(np.sum((a - b) * d))
        return total


def _numeric_gradient(
    array: np.ndarray, run: Callable[[], tuple], loss: _Loss, eps: float, scale_floor: float
) -> np.ndarray:
    """dL/d(array) entry by entry; ``run`` evaluates the layer with the current ``array``.

    ``scale_floor`` (floor x the largest analytic entry) is the size below which an entry's
    kink test is judged against that floor rather than the entry itself.
    """
    out = np.empty_like(array)
    flat, out_flat = array.reshape(-1), out.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        step = eps
        for _ in range(REFINEMENTS + 1):
            deltas = {}
            for k in (1, -1, 2, -2):
                flat[i] = orig + k * step
                deltas[k] = loss.delta(run())
            flat[i] = orig
            central, disagreement = _differences(deltas, step)
            noise = ROUNDING * loss.magnitude / step
            if disagreement <= KINK_TOL * max(abs(central), scale_floor) + noise:
                break
            step /= 10.0  # a kink lies within 2 steps: look closer
        out_flat[i] = central
    return out


def _differences(deltas: dict[int, float], h: float) -> tuple[float, float]:
    """The fourth-order central difference and a kink detector, from L(k h) - L(0), k = +-1, +-2.

    The detector is the largest gap between the wide central difference ``d2`` and either
    one-sided second-order difference. On a smooth function all three agree to O(h^2); with a
    kink at distance u < 2h the one-sided difference on the kink-free side stays right, and the
    gap to ``d2`` is at least half the error of the fourth-order estimate.
    """
    d1 = (deltas[1] - deltas[-1]) / (2.0 * h)
    d2 = (deltas[2] - deltas[-2]) / (4.0 * h)
    right = (4.0 * deltas[1] - deltas[2]) / (2.0 * h)
    left = (deltas[-2] - 4.0 * deltas[-1]) / (2.0 * h)
    central = (4.0 * d1 - d2) / 3.0
    return central, max(abs(d2 - right), abs(d2 - left))
