r"""The optimisers' update rules as pure functions: one step of one parameter, in place.

Every rule has the same interface, ``rule(param, grad, state, *, step, **hyperparams)``: the
parameter :math:`\theta`, its gradient :math:`g` (never modified), its state arrays by their
``state_dict`` names (written in place; a rule may add one, as SGD's momentum buffer is born at
the first step), the step number ``step`` = :math:`t` (1 at the first step; rules that do not
need it ignore it) and the hyper-parameters as keyword arguments named as the optimiser's
constructor arguments. Symbols as in :mod:`rnnkit.optim.optimizers`, whose classes hold the
parameters and the state and document each algorithm in full.

The floating-point operations follow torch 2.13's single-tensor code (``foreach=False``:
``torch.optim.sgd._single_tensor_sgd`` and its siblings) in order, so float64 trajectories agree
with torch's to an ulp or so (torch's kernels fuse some multiply-adds). Each docstring says where
our arithmetic is shaped to round as torch's does.

>>> import numpy as np
>>> w, state = np.array([1.0, -2.0]), {}
>>> sgd(w, np.array([0.5, 0.5]), state, step=1, lr=0.1, momentum=0.9, dampening=0.0,
...     nesterov=False, weight_decay=0.0, maximize=False)
>>> w, state["momentum_buffer"]
(array([ 0.95, -2.05]), array([0.5, 0.5]))
"""

from __future__ import annotations

from typing import Any

import numpy as np

State = dict[str, np.ndarray]  # one parameter's state arrays, by name


def _compiled_adam(param: np.ndarray, grad: np.ndarray, state: State, **values: Any) -> bool:
    """:func:`rnnkit.runtime.kernels.updates.adam` (imported here: the rules themselves need
    NumPy only), or False where it does not run."""
    from rnnkit.runtime.kernels import updates

    return updates.adam(param, grad, state, **values)


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    r""":math:`s \leftarrow s + w (e - s)` in place, rounded as ``torch.lerp`` rounds it: for
    :math:`|w| \ge 0.5` torch evaluates the equal :math:`e - (e - s)(1 - w)`."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1.0 - weight)


def sgd(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    step: int,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""One step of SGD, with heavy-ball or Nesterov momentum (``torch.optim.SGD``):

    .. math::

        g \leftarrow \pm g + \lambda \theta, \quad
        b \leftarrow \mu b + (1 - \tau) g, \quad
        \theta \leftarrow \theta - \gamma \, (g + \mu b \text{ if nesterov else } b)

    As torch: ``state["momentum_buffer"]`` is created at the first step as :math:`b = g`
    (undampened), and with :math:`\mu = 0` there is no buffer and :math:`\theta \leftarrow \theta
    - \gamma g`.
    """
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:  # torch starts the buffer at the first gradient, undampened
            buf = state["momentum_buffer"] = np.array(g)
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param += -lr * g


def adam(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    step: int,
    lr: float,
    betas: list[float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled: bool = False,
) -> None:
    r"""One step of Adam (``torch.optim.Adam``), or of AdamW with ``decoupled`` (see :func:`adamw`):

    .. math::

        g \leftarrow g + \lambda \theta, \quad
        m \leftarrow m + (1 - \beta_1)(g - m), \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        \hat v \leftarrow \max(v^{max}, v) \text{ if amsgrad else } v, \\
        \theta \leftarrow \theta - \frac{\gamma}{1 - \beta_1^t} \, \frac{m}
            {\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    on ``state`` ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq``
    (:math:`v^{max} \leftarrow \hat v`). Rounded as torch: m by :func:`lerp_`, :math:`g^2` as
    ``addcmul`` forms it, and :math:`\sqrt{1 - \beta_2^t}` as ``** 0.5``. Where the compiled
    kernels run, the extension makes these operations in one pass over memory, with the same
    bits (:func:`rnnkit.runtime.kernels.updates.adam`).
    """
    beta1, beta2 = betas
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5  # torch's spelling; math.sqrt may round apart
    if _compiled_adam(
        param, grad, state, w=1 - beta1, beta2=beta2, weight_decay=weight_decay,
        decoupled=decoupled, amsgrad=amsgrad, keep=1 - lr * weight_decay,
        bc2_sqrt=bias_correction2_sqrt, eps=eps, neg_step=-step_size,
    ):  # fmt: skip
        return  # the same operations in one pass over memory, the same bits
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    g = grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g  # torch's addcmul order
    if amsgrad:
        max_exp_avg_sq = state["max_exp_avg_sq"]
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    param += (-step_size * exp_avg) / denom


def adamw(param: np.ndarray, grad: np.ndarray, state: State, **hyperparams: Any) -> None:
    r"""One step of AdamW (``torch.optim.AdamW``): :func:`adam`, except that the weight decay
    shrinks the parameter first, :math:`\theta \leftarrow \theta (1 - \gamma \lambda)`, instead
    of entering the gradient."""
    adam(param, grad, state, decoupled=True, **hyperparams)


def rmsprop(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    step: int,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    r"""One step of RMSprop, plain or centred (``torch.optim.RMSprop``):

    .. math::

        g \leftarrow g + \lambda \theta, \quad
        v \leftarrow \alpha v + (1 - \alpha) g^2, \quad
        \bar g \leftarrow \bar g + (1 - \alpha)(g - \bar g), \quad
        s \leftarrow \sqrt{\max(v - \bar g^2, 0) \text{ if centered else } v} + \epsilon, \\
        b \leftarrow \mu b + g / s, \quad
        \theta \leftarrow \theta - \gamma b \text{ if } \mu > 0
            \text{ else } \theta - \gamma g / s

    on ``state`` ``square_avg`` (v), ``grad_avg`` (:math:`\bar g`, centred only) and
    ``momentum_buffer`` (b, with momentum only). :math:`\bar g` is rounded as ``torch.lerp``
    (:func:`lerp_`). The ``max(., 0)`` is ours: where rounding takes :math:`v - \bar g^2` a hair
    below 0 torch's root gives NaN; everywhere else the two agree.
    """
    square_avg = state["square_avg"]
    g = grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg = state["grad_avg"]
        lerp_(grad_avg, g, 1 - alpha)
        var = square_avg - grad_avg * grad_avg
        # v >= m^2 holds exactly, but rounding can push it a hair below 0 once the gradient has
        # been constant for thousands of steps; torch then takes sqrt(-0.0...) = NaN, we take 0.
        np.maximum(var, 0.0, out=var)
        avg = np.sqrt(var)
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        param += -lr * buf
    else:
        param += (-lr * g) / avg


def adagrad(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    initial_accumulator_value: float,
    eps: float,
) -> None:
    r"""One step of Adagrad (``torch.optim.Adagrad``):

    .. math::

        g \leftarrow g + \lambda \theta, \quad
        s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \frac{\gamma}{1 + (t - 1) \eta} \, \frac{g}{\sqrt{s} + \epsilon}

    on ``state["sum"]`` (s), which the optimiser starts at ``initial_accumulator_value``
    (unused here).
    """
    state_sum = state["sum"]
    g = grad
    if weight_decay != 0:
        g = g + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    std = np.sqrt(state_sum)
    std += eps
    param += (-clr * g) / std
