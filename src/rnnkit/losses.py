r"""Loss functions and their gradients: each returns ``(loss, grad)``, the loss as a Python float
and ``grad`` = dL/d(first argument), of the same shape and dtype as that argument.

Shape legend: ``...`` = any leading axes (e.g. T, B), C = classes.

Every loss computes an elementwise loss :math:`l_i` (one per position of ``...`` for
:func:`cross_entropy`, one per entry of the first argument otherwise) and reduces it with weights
:math:`w_i \ge 0` (the ``mask``, 1 where there is none, and 0 where a target equals
``ignore_index``):

.. math::

    L_{\mathrm{sum}} = \sum_i w_i l_i, \qquad
    L_{\mathrm{mean}} = \frac{\sum_i w_i l_i}{\sum_i w_i}, \qquad
    \frac{\partial L_{\mathrm{sum}}}{\partial l_i} = w_i, \qquad
    \frac{\partial L_{\mathrm{mean}}}{\partial l_i} = \frac{w_i}{\sum_j w_j}.

Without a mask this is PyTorch's ``reduction="sum"`` / ``"mean"``. When nothing is counted
(:math:`\sum_i w_i = 0`: every target ignored or masked, or an empty batch), ``"mean"`` returns
a loss of 0.0 and a zero gradient. PyTorch returns nan there (0 / 0); the difference is
deliberate, so that a batch made only of padding contributes nothing instead of turning every
parameter into nan.

Numerics: the losses are evaluated in the first argument's dtype with shifted exponentials
(log-sum-exp, softplus), so that no ``exp`` ever sees a positive argument and logits of
+-1e4 give finite losses and gradients; the reductions accumulate in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit._checks import FLOAT_DTYPES, fmt_shape, regular_array

REDUCTIONS = ("mean", "sum")


def cross_entropy(
    logits: np.ndarray,
    targets: Any,
    mask: Any = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    r"""Softmax cross-entropy over the last axis of ``logits``, with its gradient.

    For each position i of the leading axes, with logits :math:`z_i \in \mathbb{R}^C`, target
    class :math:`t_i` and smoothing :math:`\varepsilon` (PyTorch's ``label_smoothing``):

    .. math::

        \log p_{ic} = z_{ic} - \max_k z_{ik}
            - \log \sum_k \exp\left(z_{ik} - \max_k z_{ik}\right), \qquad
        q_{ic} = (1 - \varepsilon)\,[c = t_i] + \frac{\varepsilon}{C},

        l_i = -\sum_c q_{ic} \log p_{ic}
            = -(1 - \varepsilon) \log p_{i t_i} - \frac{\varepsilon}{C} \sum_c \log p_{ic},

    reduced as in the module docstring with :math:`w_i = \mathrm{mask}_i\,[t_i \ne
    \mathrm{ignore\_index}]`. Since :math:`\sum_c q_{ic} = 1`, the gradient is

    .. math::

        \frac{\partial L}{\partial z_{ic}} = \frac{\partial L}{\partial l_i}
            \left(p_{ic} - q_{ic}\right).

    Args:
        logits: float32 or float64 array (..., C), finite.
        targets: integer class indices, shape (...) = ``logits.shape[:-1]``, in [0, C) except
            where equal to ``ignore_index``.
        mask: optional non-negative weights (bool or real), broadcastable to (...).
        ignore_index: targets equal to it count nothing (weight 0) and may lie outside [0, C).
            None (default) ignores nothing; PyTorch's default is -100.
        label_smoothing: :math:`\varepsilon` in [0, 1], exactly as in PyTorch.
        reduction: "mean" (default) or "sum". "mean" with nothing counted gives 0.0 and a zero
            gradient (PyTorch gives nan).

    Returns:
        ``(loss, dlogits)``: a float and dL/dlogits, shape and dtype of ``logits``.

    Example:
        >>> import numpy as np
        >>> from rnnkit.losses import cross_entropy
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])  # (B, C) = (2, 3)
        >>> loss, dlogits = cross_entropy(logits, np.array([0, 1]))
        >>> round(loss, 6)
        1.205579
        >>> dlogits.round(4)  # (softmax - onehot) / B
        array([[-0.1072,  0.0876,  0.0196],
               [ 0.021 , -0.4429,  0.4219]])
    """
    _check_reduction(reduction)
    logits = _float_array("logits", logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(
            f"logits must have shape (..., C) with C >= 1 classes, got {fmt_shape(logits.shape)}"
        )
    C = logits.shape[-1]
    smoothing = _number("label_smoothing", label_smoothing)
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))
    ):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    targets, counted = _class_targets(targets, logits.shape[:-1], C, ignore_index)
    weights = _weights(mask, logits.shape[:-1], "logits.shape[:-1]")
    weights = counted if weights is None else weights * counted  # (...)

    shifted = logits - logits.max(axis=-1, keepdims=True)  # (..., C), <= 0: exp cannot overflow
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)  # (..., 1), >= 1
    log_p = shifted - np.log(total)
    t = targets[..., None]  # (..., 1)
    losses = -(1.0 - smoothing) * np.take_along_axis(log_p, t, axis=-1)[..., 0]  # (...)
    if smoothing:
        losses -= (smoothing / C) * log_p.sum(axis=-1)
    loss, dlosses = _reduce(losses, weights, reduction)

    dlogits = exp / total - smoothing / C  # p - q, but for the target's onehot term
    np.put_along_axis(dlogits, t, np.take_along_axis(dlogits, t, axis=-1) - (1.0 - smoothing), -1)
    dlogits *= dlosses[..., None]
    return loss, dlogits.astype(logits.dtype, copy=False)


def bce_with_logits(
    logits: np.ndarray,
    targets: Any,
    mask: Any = None,
    pos_weight: Any = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    r"""Binary cross-entropy of ``sigmoid(logits)`` against ``targets``, elementwise.

    PyTorch's ``binary_cross_entropy_with_logits``. With :math:`\sigma` the logistic sigmoid,
    :math:`\mathrm{sp}(x) = \log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|})` (softplus, the
    log-sum-exp of 0 and x) and the positive weight :math:`\beta` (``pos_weight``, 1 when None):

    .. math::

        l_i = -\beta y_i \log \sigma(x_i) - (1 - y_i) \log(1 - \sigma(x_i))
            = \beta y_i\,\mathrm{sp}(-x_i) + (1 - y_i)\,\mathrm{sp}(x_i),

        \frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial l_i}
            \left((1 - y_i)\,\sigma(x_i) - \beta y_i\,\sigma(-x_i)\right)

    (which is :math:`\sigma(x_i) - y_i` when :math:`\beta = 1`), reduced as in the module
    docstring. Both softplus terms are non-negative and :math:`\sigma(\pm x)` is formed from
    :math:`e^{-|x|}`, so nothing overflows and nothing cancels.

    Args:
        logits: float32 or float64 array (...), finite.
        targets: real numbers in [0, 1], the shape of ``logits``.
        mask: optional non-negative weights (bool or real), broadcastable to ``logits.shape``.
        pos_weight: optional non-negative weights of the positive term, broadcastable to
            ``logits.shape``; typically one per class, shape (C,), along the last axis.
        reduction: "mean" (default) or "sum".

    Returns:
        ``(loss, dlogits)``: a float and dL/dlogits, shape and dtype of ``logits``.

    Example:
        >>> import numpy as np
        >>> from rnnkit.losses import bce_with_logits
        >>> logits = np.array([[1.5, -0.5], [0.0, 2.0]])
        >>> loss, dlogits = bce_with_logits(logits, np.array([[1.0, 0.0], [1.0, 0.0]]))
        >>> round(loss, 6)
        0.873891
        >>> dlogits.round(4)  # (sigmoid(x) - y) / 4
        array([[-0.0456,  0.0944],
               [-0.125 ,  0.2202]])
    """
    _check_reduction(reduction)
    logits = _float_array("logits", logits)
    targets = _real_like("targets", targets, logits, "logits")
    outside = (targets < 0) | (targets > 1)
    if outside.any():
        i = _first_index(outside)
        raise ValueError(f"targets must lie in [0, 1], got {targets[i]} at index {i}")
    if pos_weight is None:
        beta = 1.0
    else:
        beta = _weights(pos_weight, logits.shape, "logits.shape", name="pos_weight")
        beta = beta.astype(logits.dtype, copy=False)
    weights = _weights(mask, logits.shape, "logits.shape")

    e = np.exp(-np.abs(logits))  # in (0, 1]
    log1p_e = np.log1p(e)
    positive = logits >= 0
    sigmoid = np.where(positive, 1.0, e) / (1.0 + e)  # sigma(x)
    sigmoid_neg = np.where(positive, e, 1.0) / (1.0 + e)  # sigma(-x) = 1 - sigma(x), no cancelling
    softplus = np.maximum(logits, 0.0) + log1p_e  # sp(x) = -log(1 - sigma(x))
    softplus_neg = np.maximum(-logits, 0.0) + log1p_e  # sp(-x) = -log sigma(x)
    by = beta * targets
    losses = by * softplus_neg + (1.0 - targets) * softplus
    dlosses_dx = (1.0 - targets) * sigmoid - by * sigmoid_neg
    return _chain(losses, dlosses_dx, weights, reduction, logits.dtype)


def mse(
    pred: np.ndarray, target: Any, mask: Any = None, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    r"""Squared error, PyTorch's ``mse_loss``.

    .. math::

        l_i = (\hat y_i - y_i)^2, \qquad
        \frac{\partial L}{\partial \hat y_i} = \frac{\partial L}{\partial l_i}\,
            2 (\hat y_i - y_i),

    reduced as in the module docstring.

    Args:
        pred: float32 or float64 array :math:`\hat y` (...), finite.
        target: real numbers :math:`y`, the shape of ``pred``.
        mask: optional non-negative weights (bool or real), broadcastable to ``pred.shape``.
        reduction: "mean" (default) or "sum".

    Returns:
        ``(loss, dpred)``: a float and dL/dpred, shape and dtype of ``pred``.

    Example:
        >>> import numpy as np
        >>> from rnnkit.losses import mse
        >>> loss, dpred = mse(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]))
        >>> loss, dpred
        (0.4166666666666667, array([-0.33333333,  0.        ,  0.66666667]))
    """
    pred, diff, weights = _regression(pred, target, mask, reduction)
    return _chain(diff * diff, 2.0 * diff, weights, reduction, pred.dtype)


def mae(
    pred: np.ndarray, target: Any, mask: Any = None, reduction: str = "mean"
) -> tuple[float, np.ndarray]:
    r"""Absolute error, PyTorch's ``l1_loss``.

    .. math::

        l_i = |\hat y_i - y_i|, \qquad
        \frac{\partial L}{\partial \hat y_i} = \frac{\partial L}{\partial l_i}\,
            \mathrm{sign}(\hat y_i - y_i),

    reduced as in the module docstring; at :math:`\hat y_i = y_i` the subgradient 0 is used
    (``sign(0) = 0``, as in PyTorch).

    Args:
        pred: float32 or float64 array :math:`\hat y` (...), finite.
        target: real numbers :math:`y`, the shape of ``pred``.
        mask: optional non-negative weights (bool or real), broadcastable to ``pred.shape``.
        reduction: "mean" (default) or "sum".

    Returns:
        ``(loss, dpred)``: a float and dL/dpred, shape and dtype of ``pred``.

    Example:
        >>> import numpy as np
        >>> from rnnkit.losses import mae
        >>> loss, dpred = mae(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]), reduction="sum")
        >>> loss, dpred
        (1.5, array([-1.,  0.,  1.]))
    """
    pred, diff, weights = _regression(pred, target, mask, reduction)
    return _chain(np.abs(diff), np.sign(diff), weights, reduction, pred.dtype)


def huber(
    pred: np.ndarray,
    target: Any,
    mask: Any = None,
    delta: float = 1.0,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    r"""Huber loss, PyTorch's ``HuberLoss``: quadratic within ``delta``, linear outside.

    With :math:`d_i = \hat y_i - y_i` and :math:`\delta` = ``delta``:

    .. math::

        l_i = \begin{cases}
            \tfrac12 d_i^2 & |d_i| < \delta \\
            \delta \left(|d_i| - \tfrac12 \delta\right) & |d_i| \ge \delta
        \end{cases}, \qquad
        \frac{\partial L}{\partial \hat y_i} = \frac{\partial L}{\partial l_i}\,
            \mathrm{clip}(d_i, -\delta, \delta),

    reduced as in the module docstring. Both pieces and their slopes meet at
    :math:`|d_i| = \delta`, so the gradient is continuous.

    Args:
        pred: float32 or float64 array :math:`\hat y` (...), finite.
        target: real numbers :math:`y`, the shape of ``pred``.
        mask: optional non-negative weights (bool or real), broadcastable to ``pred.shape``.
        delta: the positive, finite threshold :math:`\delta` (default 1.0).
        reduction: "mean" (default) or "sum".

    Returns:
        ``(loss, dpred)``: a float and dL/dpred, shape and dtype of ``pred``.

    Example:
        >>> import numpy as np
        >>> from rnnkit.losses import huber
        >>> loss, dpred = huber(np.array([0.5, 3.0, -2.0]), np.zeros(3), reduction="sum")
        >>> loss, dpred
        (4.125, array([ 0.5,  1. , -1. ]))
    """
    delta_ = _number("delta", delta)
    if not (np.isfinite(delta_) and delta_ > 0):
        raise ValueError(f"delta must be a positive finite number, got {delta!r}")
    pred, diff, weights = _regression(pred, target, mask, reduction)
    size = np.abs(diff)
    losses = np.where(size < delta_, 0.5 * diff * diff, delta_ * (size - 0.5 * delta_))
    return _chain(losses, np.clip(diff, -delta_, delta_), weights, reduction, pred.dtype)


# --- reduction --------------------------------------------------------------------------------


def _reduce(
    losses: np.ndarray, weights: np.ndarray | None, reduction: str
) -> tuple[float, np.ndarray]:
    """The reduced loss and dL/d(losses), the weighted sum or mean of the module docstring.

    ``weights`` is None (all 1) or float64 / bool, broadcastable to ``losses``.
    """
    w = np.ones(losses.shape) if weights is None else np.broadcast_to(weights, losses.shape)
    total = float(np.sum(w * losses, dtype=np.float64))
    if reduction == "sum":
        return total, w.astype(losses.dtype)
    count = float(np.sum(w, dtype=np.float64))
    if count == 0.0:  # nothing counted: 0, not PyTorch's nan (see the module docstring)
        return 0.0, np.zeros_like(losses)
    return total / count, (w / count).astype(losses.dtype)


def _chain(
    losses: np.ndarray,
    dlosses_dx: np.ndarray,
    weights: np.ndarray | None,
    reduction: str,
    dtype: np.dtype,
) -> tuple[float, np.ndarray]:
    """Reduce elementwise ``losses`` and chain dL/dl_i with dl_i/dx_i into dL/dx (``dtype``)."""
    loss, dlosses = _reduce(losses, weights, reduction)
    return loss, (dlosses * dlosses_dx).astype(dtype, copy=False)


def _regression(
    pred: Any, target: Any, mask: Any, reduction: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The checked ``pred``, ``pred - target`` (in pred's dtype) and the weights of ``mask``."""
    _check_reduction(reduction)
    pred = _float_array("pred", pred)
    target = _real_like("target", target, pred, "pred")
    return pred, pred - target, _weights(mask, pred.shape, "pred.shape")


# --- argument checks --------------------------------------------------------------------------


def _check_reduction(reduction: Any) -> None:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _number(name: str, value: Any) -> float:
    """A real Python or NumPy scalar (not a bool) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _first_index(bad: np.ndarray) -> tuple[int, ...]:
    """The index of the first True entry of ``bad``, for error messages."""
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _check_finite(name: str, value: np.ndarray) -> None:
    finite = np.isfinite(value)
    if not finite.all():
        i = _first_index(~finite)
        raise ValueError(f"{name} must be finite, got {value[i]} at index {i}")


def _float_array(name: str, value: Any) -> np.ndarray:
    """The first argument: a finite float32 or float64 ndarray, the dtype of the gradient."""
    if not isinstance(value, np.ndarray) or value.dtype not in FLOAT_DTYPES:
        got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name} must be a numpy.ndarray of dtype float32 or float64, got {got}")
    _check_finite(name, value)
    return value


def _real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as an array of finite real numbers (bool, int or float)."""
    arr = regular_array(value, f"{name} must be an array of real numbers")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    _check_finite(name, arr)
    return arr


def _real_like(name: str, value: Any, like: np.ndarray, like_name: str) -> np.ndarray:
    """Finite real ``value`` of exactly the shape of ``like``, converted to its dtype."""
    arr = _real_array(name, value)
    if arr.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of {like_name}, {fmt_shape(like.shape)}, "
            f"got {fmt_shape(arr.shape)}"
        )
    return arr.astype(like.dtype, copy=False)


def _weights(
    value: Any, shape: tuple[int, ...], shape_name: str, name: str = "mask"
) -> np.ndarray | None:
    """Finite, non-negative weights broadcastable to ``shape``, as float64; None stays None."""
    if value is None:
        return None
    arr = _real_array(name, value)
    try:
        fits = np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} must have a shape broadcastable to {fmt_shape(shape)} ({shape_name}), "
            f"got {fmt_shape(arr.shape)}"
        )
    negative = arr < 0
    if negative.any():
        i = _first_index(negative)
        raise ValueError(f"{name} must be non-negative, got {arr[i]} at index {i}")
    return arr.astype(np.float64)


def _class_targets(
    value: Any, shape: tuple[int, ...], C: int, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of ``shape`` (ignored ones replaced by 0) and where they count (bool)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)  # reported as dtype object below
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"targets must be integer class indices, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(
            f"targets must have shape {fmt_shape(shape)} (logits.shape[:-1]), "
            f"got {fmt_shape(arr.shape)}"
        )
    counted = np.ones(shape, dtype=bool) if ignore_index is None else arr != ignore_index
    outside = counted & ((arr < 0) | (arr >= C))
    if outside.any():
        i = _first_index(outside)
        also = "" if ignore_index is None else f" or equal ignore_index = {ignore_index}"
        raise ValueError(
            f"targets must lie in [0, {C}) (C = {C} classes){also}, got {arr[i]} at index {i}"
        )
    return np.where(counted, arr, 0).astype(np.intp), counted
