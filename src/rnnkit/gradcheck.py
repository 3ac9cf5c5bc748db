"""Central-difference gradient checks of a layer's hand-written backward pass, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

RANDOM = "random"


def _as_tuple(state: Any) -> tuple[np.ndarray, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _like(template: Any, parts: tuple[np.ndarray, ...]) -> Any:
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
    tensor and of each parameter is moved in turn and its derivative estimated by the
    fourth-order central difference

    ``(8 (L(+eps) - L(-eps)) - (L(+2 eps) - L(-2 eps))) / (12 eps)``,

    whose truncation error is O(eps^4): with eps = 1e-4 both it and the rounding error stay near
    1e-11, so a correct float64 backward pass typically shows relative errors of 1e-8 or less.
    A piecewise-linear nonlinearity (ReLU) makes the estimate wrong wherever a pre-activation
    lies within 2 eps of its kink; lower ``eps`` if that happens.

    Works on any object with the layer interface: ``forward(x, state, lengths) -> (y, state_T,
    cache)``, ``backward(dy, cache, dstate) -> (dx, dstate0, grads)`` and ``parameters()``
    returning the live float64 arrays (this is how to check your own cell: wrap it in
    :class:`rnnkit.nn.Recurrent`).

    Args:
        layer: the layer, with float64 parameters.
        x: float64 input.
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
    for name, value in [("x", x), *((f"parameter {k!r}", v) for k, v in params.items())]:
        if not isinstance(value, np.ndarray) or value.dtype != np.float64:
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"gradcheck needs float64: {name} is {got}")
    if not (isinstance(eps, float) and eps > 0):
        raise ValueError(f"eps must be a positive float, got {eps!r}")

    y, state_T, cache = layer.forward(x, state, lengths)
    rng = np.random.default_rng(seed)
    if isinstance(dy, str) and dy == RANDOM:
        dy = rng.standard_normal(y.shape)
    if isinstance(dstate, str) and dstate == RANDOM:
        dstate = _like(state_T, tuple(rng.standard_normal(s.shape) for s in _as_tuple(state_T)))
    dx, dstate0, grads = layer.backward(dy, cache, dstate)

    dstate_parts = None if dstate is None else _as_tuple(dstate)

    def loss_delta(plus: tuple, minus: tuple) -> float:
        """L(plus) - L(minus), differencing outputs before summing to limit rounding."""
        (y_p, s_p), (y_m, s_m) = plus, minus
        total = float(np.sum((y_p - y_m) * dy))
        if dstate_parts is not None:
            for a, b, d in zip(_as_tuple(s_p), _as_tuple(s_m), dstate_parts):
                total += float(np.sum((a - b) * d))
        return total

    def numeric(array: np.ndarray, run: Callable[[], tuple]) -> np.ndarray:
        """dL/d(array) by central differences; ``run`` evaluates the layer with ``array``."""
        out = np.empty_like(array)
        flat, out_flat = array.reshape(-1), out.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            outputs = []
            for step in (eps, -eps, 2 * eps, -2 * eps):
                flat[i] = orig + step
                outputs.append(run())
            flat[i] = orig
            d1 = loss_delta(outputs[0], outputs[1])
            d2 = loss_delta(outputs[2], outputs[3])
            out_flat[i] = (8.0 * d1 - d2) / (12.0 * eps)
        return out

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
    x_work = np.array(x, dtype=np.float64)

    def run() -> tuple:
        y_, s_, _ = layer.forward(x_work, _like(state_T, state_parts), lengths)
        return y_, s_

    errors = {"x": relative_error(dx, numeric(x_work, run), floor)}
    for name, part, analytic in zip(names, state_parts, _as_tuple(dstate0)):
        errors[name] = relative_error(analytic, numeric(part, run), floor)
    for name, value in params.items():
        errors[name] = relative_error(grads[name], numeric(value, run), floor)
    return errors
