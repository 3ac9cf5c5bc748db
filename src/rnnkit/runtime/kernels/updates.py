"""The optimisers' update rules in one pass over memory: :func:`adam`.

The rules of :mod:`rnnkit.optim.updates` are NumPy expressions, each operation a pass over the
parameter's arrays: about ten for Adam, each from memory once a model's parameters and their
state outgrow the cache (a few MB; ``python benchmarks/bench_adam.py`` times both). The
extension's ``adam`` (``adam.h``) makes every element's update
in one pass, on up to :func:`~rnnkit.runtime.kernels.extension.get_num_threads` threads, with
the same operations in the same order and the hyper-parameters rounded as NumPy rounds them: the
same bits as the NumPy rule (tested), so the choice of path changes nothing but the time.
"""

from __future__ import annotations

import numpy as np

from rnnkit.runtime.kernels import extension

#: Values per thread below which a second thread costs more than it saves.
MIN_VALUES_PER_THREAD = 1 << 16


def adam(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    *,
    w: float,
    beta2: float,
    weight_decay: float,
    decoupled: bool,
    amsgrad: bool,
    keep: float,
    bc2_sqrt: float,
    eps: float,
    neg_step: float,
) -> bool:
    """One Adam step in place on the extension (the values as :func:`rnnkit.optim.updates.adam`
    makes them: ``w`` = 1 - beta1, ``keep`` = 1 - lr weight_decay, ``neg_step`` = -lr / (1 -
    beta1^t), ``bc2_sqrt`` = (1 - beta2^t)^0.5); False, with nothing changed, when it does not
    cover the arrays (another dtype, arrays that are not C-contiguous or of other shapes)."""
    module = extension.products()
    arrays = [param, grad, state["exp_avg"], state["exp_avg_sq"]]
    ams = state["max_exp_avg_sq"] if amsgrad else None
    if ams is not None:
        arrays.append(ams)
    if module is None or param.dtype not in (np.float32, np.float64) or param.size == 0:
        return False
    if any(
        a.dtype != param.dtype or a.shape != param.shape or not a.flags.c_contiguous for a in arrays
    ):
        return False
    if not all(a.flags.writeable for a in arrays if a is not grad):
        return False
    threads = max(1, min(extension.get_num_threads(), param.size // MIN_VALUES_PER_THREAD))
    flat = [a.reshape(-1) for a in arrays]
    module.adam(
        flat[0], flat[1], flat[2], flat[3], flat[4] if ams is not None else None,
        w, 1.0 - w, beta2, 1 - beta2, weight_decay, weight_decay != 0 and not decoupled,
        decoupled and weight_decay != 0, keep, bc2_sqrt, eps, neg_step, threads,
    )  # fmt: skip
    return True
