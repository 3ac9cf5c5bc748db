r"""Gradient clipping, in place, on a dict of named gradient arrays, as ``torch.nn.utils`` does.

Call it between the backward pass and the optimiser's ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnkit import _checks


def _check_grads(grads: Any) -> dict[str, np.ndarray]:
    return _checks.float_arrays("grads", grads, "name -> gradient array", "clipping works in place")


def _norm(x: np.ndarray, p: float) -> float:
    """The p-norm of all of ``x``'s entries (0 for an empty array), in float64."""
    if x.size == 0:
        return 0.0
    return float(np.linalg.norm(x.astype(np.float64, copy=False).ravel(), ord=p))


def clip_grad_norm(
    grads: Mapping[str, np.ndarray], max_norm: float, norm_type: float = 2.0
) -> float:
    r"""Scale all gradients together so that their joint norm is at most ``max_norm``, in place;
    return the joint norm *before* clipping, exactly as ``torch.nn.utils.clip_grad_norm_``.

    The gradients are treated as one long vector :math:`g` (the concatenation of every array):

    .. math::

        \|g\|_p = \Big(\sum_k \|g^{(k)}\|_p^p\Big)^{1/p}, \qquad
        \|g\|_\infty = \max_k \max_i |g^{(k)}_i|, \qquad
        g^{(k)} \leftarrow g^{(k)} \cdot \min\Big(1, \frac{\text{max\_norm}}{\|g\| + 10^{-6}}\Big)

    The 1e-6 is torch's: a norm just above ``max_norm`` is scaled to slightly below it, and a
    norm at or below ``max_norm`` leaves the gradients untouched. Norms are accumulated in
    float64 whatever the gradients' dtype. A non-finite norm is returned as it is and, as in torch,
    the scale becomes 0 (norm inf) or NaN (norm NaN); a trainer should test the returned norm with
    ``math.isfinite`` and skip the step.

    Args:
        grads: dict of name -> float gradient array, modified in place.
        max_norm: a float > 0 (``inf`` disables clipping but still returns the norm).
        norm_type: p, a float > 0, or ``inf`` (``float("inf")`` or the string ``"inf"``).

    >>> import numpy as np
    >>> grads = {"w": np.array([3.0, 0.0]), "b": np.array([4.0])}
    >>> clip_grad_norm(grads, max_norm=1.0)
    5.0
    >>> grads["w"].round(6), grads["b"].round(6)
    (array([0.6, 0. ]), array([0.8]))
    """
    grads = _check_grads(grads)
    max_norm = _checks.real("max_norm", max_norm, low=0.0, low_open=True, allow_inf=True)
    if isinstance(norm_type, str) and norm_type.strip().lower() in ("inf", "+inf", "infinity"):
        norm_type = math.inf
    p = _checks.real("norm_type", norm_type, low=0.0, low_open=True, allow_inf=True)
    if not grads:
        return 0.0
    norms = np.array([_norm(g, p) for g in grads.values()])
    total = _norm(norms, p)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):  # torch clamps at 1 (NaN passes through its clamp)
        with np.errstate(invalid="ignore"):  # inf * 0 = NaN, deliberately as in torch
            for g in grads.values():
                g *= coef
    return total


def clip_grad_value(grads: Mapping[str, np.ndarray], clip: float) -> None:
    r"""Clamp every gradient entry to ``[-clip, clip]``, in place, as
    ``torch.nn.utils.clip_grad_value_``:

    .. math::

        g_i \leftarrow \min(\max(g_i, -\text{clip}), \text{clip})

    NaN entries stay NaN.

    Args:
        grads: dict of name -> float gradient array, modified in place.
        clip: a float > 0.

    >>> import numpy as np
    >>> grads = {"w": np.array([-3.0, 0.5, 2.0])}
    >>> clip_grad_value(grads, 1.0)
    >>> grads["w"]
    array([-1. ,  0.5,  1. ])
    """
    grads = _check_grads(grads)
    clip = _checks.real("clip", clip, low=0.0, low_open=True, allow_inf=True)
    for g in grads.values():
        np.clip(g, -clip, clip, out=g)
