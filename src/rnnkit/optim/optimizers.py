r"""Gradient-descent optimisers with PyTorch 2.13's update rules and defaults.

An optimiser holds a dict of named parameter arrays -- the live arrays of a model, e.g.
``model.parameters()`` -- and :meth:`Optimizer.step` updates them in place from a dict of
gradients with the same names. Every operation is element-wise: each state array has its
parameter's shape and dtype, and ``t`` counts the steps taken (1 at the first step).

Symbols, shared by every docstring: :math:`\theta` parameter, :math:`g` gradient, :math:`\gamma`
learning rate (``lr``), :math:`\lambda` weight decay, :math:`\mu` momentum, :math:`\tau` dampening,
:math:`\beta_1, \beta_2` (``betas``), :math:`\alpha` (RMSprop's smoothing), :math:`\epsilon`
(``eps``), :math:`\eta` (Adagrad's ``lr_decay``).

Each update is a pure function (``_sgd_update``, ...) of the parameter, its gradient, its state
arrays and the hyper-parameters (keyword arguments named as the constructor's), which writes into
the parameter and the state arrays. Each class declares its hyper-parameters once, in ``_HYPER``,
and its state arrays; the base class derives the rest. The order of floating-point operations
follows torch's single-tensor (``foreach=False``) code, so float64 trajectories agree with torch's
to an ulp or so (torch's kernels fuse some multiply-adds; the tests ask for 1e-12 relative at each
of 25 steps). Resuming from :meth:`Optimizer.state_dict` is bit-identical to never having stopped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnkit import _checks

State = dict[str, np.ndarray]  # one parameter's state arrays, by name
REQUIRED = inspect.Parameter.empty  # the default of a hyper-parameter that has none


class Hyper(NamedTuple):
    """A hyper-parameter, declared once: its keyword ``name``, its ``default`` (``REQUIRED`` for
    none) and ``check(name, value)``, which returns the value as ``state_dict`` stores it (Python
    floats, bools, lists) or raises an error naming ``name``."""

    name: str
    default: Any
    check: Callable[[str, Any], Any]


_nonnegative = partial(_checks.real, low=0.0)
_fraction = partial(_checks.real, low=0.0, high=1.0, high_open=True)  # in [0, 1)


def _betas(name: str, value: Any) -> list[float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2) of floats in [0, 1), got {value!r}")
    return [_fraction(f"{name}[{i}]", b) for i, b in enumerate(value)]


# -- the update rules, as pure functions -----------------------------------------------------------


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start <- start + weight * (end - start), in place, rounded as ``torch.lerp`` rounds it
    (for weight >= 0.5 torch evaluates the equal ``end - (end - start) * (1 - weight)``)."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1.0 - weight)


def _sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One SGD step on ``param`` in place; the momentum buffer is born at the first step."""
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


def _adam_update(
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
    decoupled: bool,
) -> None:
    """One Adam (``decoupled=False``) or AdamW step; ``step`` is t, 1 at the first step."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    g = grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    _lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g  # torch's addcmul order
    bias_correction1 = 1 - beta1 ** float(step)
    bias_correction2 = 1 - beta2 ** float(step)
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5  # torch's spelling; math.sqrt may round apart
    if amsgrad:
        max_exp_avg_sq = state["max_exp_avg_sq"]
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    param += (-step_size * exp_avg) / denom


def _rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: State,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    """One RMSprop step."""
    square_avg = state["square_avg"]
    g = grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg = state["grad_avg"]
        _lerp_(grad_avg, g, 1 - alpha)
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


def _adagrad_update(
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
    """One Adagrad step; ``step`` is t, 1 at the first step. ``initial_accumulator_value`` is
    :math:`s_0`, already in ``state["sum"]``."""
    state_sum = state["sum"]
    g = grad
    if weight_decay != 0:
        g = g + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    std = np.sqrt(state_sum)
    std += eps
    param += (-clr * g) / std


# -- the optimisers --------------------------------------------------------------------------------


class Optimizer:
    """Base class: the live parameters, the hyper-parameters, per-parameter state and the step
    count, with gradient validation and a checkpointable ``state_dict``.

    A subclass declares its hyper-parameters in ``_HYPER``, from which this class derives the
    constructor's signature (as :func:`inspect.signature` and :func:`help` show it), the argument
    checks, :attr:`hyperparams`, :meth:`state_dict`, :meth:`load_state_dict` and ``repr``. It
    defines ``_state_keys`` (which state arrays exist), ``_update`` (calls its pure update
    function) and, if its state does not start at zero, ``_init_state``. Not used directly.

    An optimiser pickles and deep-copies with its parameters; the copy updates its own copies of
    the arrays (pickle the parameters and the optimiser together to keep them shared).
    """

    #: the hyper-parameters, in the constructor's order: ``state_dict()["hyperparams"]``
    _HYPER: ClassVar[tuple[Hyper, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        cls.__signature__ = inspect.Signature(
            [inspect.Parameter("params", kind)]
            + [inspect.Parameter(h.name, kind, default=h.default) for h in cls._HYPER]
        )

    def __init__(self, params: Mapping[str, np.ndarray], *args: Any, **kwargs: Any) -> None:
        try:  # the arguments as the subclass's signature binds them
            bound = inspect.signature(type(self)).bind(params, *args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{type(self).__name__}() {e}") from None
        bound.apply_defaults()
        self._params = _check_params(params)  # a shallow copy: the same live arrays
        self._hyper = self._check_hyper(bound.arguments, "")
        self._step_count = 0
        self._state = {name: self._init_state(p) for name, p in self._params.items()}

    # -- to define in subclasses -------------------------------------------------------------------

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        raise NotImplementedError

    def _update(self, param: np.ndarray, grad: np.ndarray, state: State) -> None:
        raise NotImplementedError

    def _init_state(self, param: np.ndarray) -> State:
        return {k: np.zeros(param.shape, param.dtype) for k in self._state_keys(self._hyper, 0)}

    @classmethod
    def _check_hyper(cls, values: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The hyper-parameters checked and normalised, from the constructor (``where`` empty) or
        from ``where`` in a state_dict, which must then have exactly the declared keys."""
        if where:
            _checks.keys_exactly(where, values, [h.name for h in cls._HYPER], "hyper-parameters")
        return {h.name: h.check(_checks.entry(where, h.name), values[h.name]) for h in cls._HYPER}

    # -- public interface --------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate of the next step; schedules set it."""
        return self._hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = _nonnegative("lr", value)

    @property
    def step_count(self) -> int:
        """The number of steps taken (restored by :meth:`load_state_dict`)."""
        return self._step_count

    @property
    def hyperparams(self) -> dict[str, Any]:
        """A copy of the hyper-parameters, by constructor argument name."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._hyper.items()}

    @property
    def param_names(self) -> list[str]:
        return list(self._params)

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Update every parameter in place from ``grads``, a dict with exactly the parameters'
        names, each gradient of its parameter's shape and dtype (checked before anything changes).

        ``grads`` is not modified. Non-finite gradients are applied as they come (and would then
        poison the state): screening them is the caller's job -- the trainer skips such steps.
        """
        what = "parameter name -> gradient array"
        _checks.keys_exactly("grads", grads, self.param_names, what, keys="the parameters' names")
        for name, param in self._params.items():
            _checks.like(f"grads[{name!r}]", grads[name], param)
        self._step_count += 1
        for name, param in self._params.items():
            self._update(param, grads[name], self._state[name])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-identically, as a nested dict whose leaves are only
        Python scalars, str, bool, None, lists of those, and (copied) numpy arrays::

            {"type": "Adam", "hyperparams": {"lr": 0.001, "betas": [0.9, 0.999], ...},
             "step_count": 10, "state": {"<param name>": {"exp_avg": array, ...}, ...}}

        so a checkpoint can hold it as JSON plus ``.npz`` without pickle. The parameters
        themselves are not included (they belong to the model's state_dict).
        """
        return {
            "type": type(self).__name__,
            "hyperparams": self.hyperparams,
            "step_count": self._step_count,
            "state": {
                name: {key: np.array(arr) for key, arr in state.items()}  # plain ndarray copies
                for name, state in self._state.items()
            },
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the hyper-parameters, step count and state saved by :meth:`state_dict`.

        The optimiser type, hyper-parameters, parameter names, state keys, shapes and dtypes are
        all checked first; on any mismatch a ``ValueError`` or ``TypeError`` names the entry and
        nothing is changed. Arrays are copied in, so the dict may be reused.
        """
        entries = ["type", "hyperparams", "step_count", "state"]
        _checks.keys_exactly("state_dict", state_dict, entries, "entries")
        kind = state_dict["type"]
        if kind != type(self).__name__:
            raise ValueError(
                f"state_dict['type'] must be {type(self).__name__!r} (this optimiser), got {kind!r}"
            )
        hyper = self._check_hyper(state_dict["hyperparams"], "state_dict['hyperparams']")
        step_count = _checks.integer("state_dict['step_count']", state_dict["step_count"], low=0)
        saved = state_dict["state"]
        _checks.keys_exactly("state_dict['state']", saved, self.param_names, "state by parameter")
        keys = self._state_keys(hyper, step_count)
        new_state = {}
        for name, param in self._params.items():
            where = f"state_dict['state'][{name!r}]"
            _checks.keys_exactly(where, saved[name], keys, "state arrays")
            new_state[name] = {
                key: np.array(_checks.like(f"{where}[{key!r}]", saved[name][key], param))
                for key in keys
            }
        self._hyper, self._step_count, self._state = hyper, step_count, new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{type(self).__name__}({args}; {len(self._params)} params, step {self._step_count})"


def _check_params(params: Any) -> dict[str, np.ndarray]:
    what = "parameter name -> numpy array (e.g. model.parameters())"
    out = _checks.float_arrays("params", params, what, "the optimiser must update it in place")
    if not out:
        raise ValueError("params must hold at least one parameter, got an empty dict")
    for name in out:
        if not isinstance(name, str):
            raise TypeError(f"params keys must be str, got {type(name).__name__} {name!r}")
    return out


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (Nesterov's too), as
    ``torch.optim.SGD``.

    .. math::

        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow -\nabla_\theta f_t(\theta_{t-1}) \text{ if maximize else }
            \nabla_\theta f_t(\theta_{t-1}) \\
        &\quad \textbf{if } \lambda \ne 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\quad \textbf{if } \mu \ne 0: \\
        &\qquad b_t \leftarrow g_t \text{ if } t = 1
            \text{ else } \mu b_{t-1} + (1 - \tau) g_t \\
        &\qquad g_t \leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \gamma g_t

    The momentum buffer starts at the first gradient itself, so dampening applies from the second
    step on, and the learning rate multiplies the whole buffer (PyTorch's convention, not
    Sutskever et al.'s :math:`v \leftarrow \mu v + \gamma g`).

    Args:
        params: dict of parameter name -> live float array (e.g. ``model.parameters()``),
            updated in place.
        lr: learning rate :math:`\gamma` >= 0 (required, as there is no good default).
        momentum: :math:`\mu` >= 0. dampening: :math:`\tau` >= 0.
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0.
        weight_decay: L2 penalty :math:`\lambda` >= 0. maximize: ascend instead of descend.

    State per parameter: ``momentum_buffer`` (after the first step, with momentum only).

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = SGD({"w": w}, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.array([0.5, 0.5])})  # b = g, so w - 0.1 * 0.5
    >>> w
    array([ 0.95, -2.05])
    >>> opt.step({"w": np.array([0.5, 0.5])})  # b = 0.9 * 0.5 + 0.5 = 0.95
    >>> w.round(12)
    array([ 0.855, -2.145])
    """

    _HYPER = (
        Hyper("lr", REQUIRED, _nonnegative),
        Hyper("momentum", 0.0, _nonnegative),
        Hyper("dampening", 0.0, _nonnegative),
        Hyper("nesterov", False, _checks.boolean),
        Hyper("weight_decay", 0.0, _nonnegative),
        Hyper("maximize", False, _checks.boolean),
    )

    @classmethod
    def _check_hyper(cls, values: Mapping[str, Any], where: str) -> dict[str, Any]:
        h = super()._check_hyper(values, where)
        if h["nesterov"] and (h["momentum"] == 0 or h["dampening"] != 0):
            raise ValueError(
                f"{_checks.entry(where, 'nesterov')}=True needs momentum > 0 and dampening == 0, "
                f"got momentum={h['momentum']} and dampening={h['dampening']}"
            )
        return h

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        return ["momentum_buffer"] if hyper["momentum"] != 0 and step_count > 0 else []

    def _update(self, param: np.ndarray, grad: np.ndarray, state: State) -> None:
        _sgd_update(param, grad, state, **self._hyper)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), optionally AMSGrad (Reddi et al., 2018), as ``torch.optim.Adam``.

    .. math::

        &m_0 \leftarrow 0, \quad v_0 \leftarrow 0, \quad v^{max}_0 \leftarrow 0 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\quad \textbf{if } \lambda \ne 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\quad \hat v \leftarrow v^{max}_t = \max(v^{max}_{t-1}, v_t)
            \text{ if amsgrad else } v_t \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \, \frac{m_t}
            {\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    Note where :math:`\epsilon` sits: it is added to :math:`\sqrt{\hat v_t / (1 - \beta_2^t)}`,
    the bias-corrected root, not to :math:`\sqrt{v_t}` (as in the paper's "efficient" form).
    The first moment is updated as ``torch.lerp`` does, :math:`m \leftarrow m + (1 - \beta_1)
    (g - m)`, which equals the line above but rounds like torch.

    Args:
        params: dict of parameter name -> live float array, updated in place.
        lr: :math:`\gamma` >= 0. betas: :math:`(\beta_1, \beta_2)`, each in [0, 1).
        eps: :math:`\epsilon` >= 0. weight_decay: L2 penalty :math:`\lambda` >= 0, added to the
            gradient (see :class:`AdamW` for the decoupled form). amsgrad: use :math:`v^{max}`.

    State per parameter: ``exp_avg`` (m), ``exp_avg_sq`` (v), and ``max_exp_avg_sq`` with amsgrad.

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adam({"w": w}, lr=0.1)
    >>> opt.step({"w": np.array([0.5, -3.0])})  # the first step moves each entry by ~lr
    >>> w.round(6)
    array([ 0.9, -1.9])
    """

    _HYPER = (
        Hyper("lr", 1e-3, _nonnegative),
        Hyper("betas", (0.9, 0.999), _betas),
        Hyper("eps", 1e-8, _nonnegative),
        Hyper("weight_decay", 0.0, _nonnegative),
        Hyper("amsgrad", False, _checks.boolean),
    )
    _DECOUPLED: ClassVar[bool] = False

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if hyper["amsgrad"] else [])

    def _update(self, param: np.ndarray, grad: np.ndarray, state: State) -> None:
        step, decoupled = self._step_count, self._DECOUPLED
        _adam_update(param, grad, state, step=step, decoupled=decoupled, **self._hyper)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    As :class:`Adam`, except that the weight decay shrinks the parameter directly, scaled by the
    learning rate, instead of entering the gradient (and so the moments):

    .. math::

        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\quad \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda) \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\quad \hat v \leftarrow v^{max}_t = \max(v^{max}_{t-1}, v_t)
            \text{ if amsgrad else } v_t \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \, \frac{m_t}
            {\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    The default weight decay is 1e-2 (torch's). A schedule that changes ``lr`` changes the decay
    too, since it is :math:`\gamma \lambda` per step.

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = AdamW({"w": w}, lr=0.1, weight_decay=0.5)
    >>> opt.step({"w": np.array([0.0, 0.0])})  # zero gradient: only the decay, w * (1 - 0.05)
    >>> w
    array([ 0.95, -1.9 ])
    """

    _HYPER = tuple(h._replace(default=1e-2) if h.name == "weight_decay" else h for h in Adam._HYPER)
    _DECOUPLED = True


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e; centred form from Graves, 2013), as ``torch.optim.RMSprop``.

    .. math::

        &v_0 \leftarrow 0, \quad \bar g_0 \leftarrow 0, \quad b_0 \leftarrow 0 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\quad \textbf{if } \lambda \ne 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\quad v_t \leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        &\quad \textbf{if centered:} \quad \bar g_t \leftarrow \alpha \bar g_{t-1}
            + (1 - \alpha) g_t, \quad s_t \leftarrow \sqrt{\max(v_t - \bar g_t^2, 0)} + \epsilon \\
        &\quad \textbf{else:} \quad s_t \leftarrow \sqrt{v_t} + \epsilon \\
        &\quad \textbf{if } \mu > 0: \quad b_t \leftarrow \mu b_{t-1} + g_t / s_t, \quad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t \\
        &\quad \textbf{else:} \quad \theta_t \leftarrow \theta_{t-1} - \gamma g_t / s_t

    :math:`\epsilon` is added outside the root, and the momentum buffer starts at zero (unlike
    SGD's). The ``max(., 0)`` is ours: the difference is never negative in exact arithmetic, but
    after thousands of steps of a constant gradient rounding can take it a hair below zero, where
    torch's square root gives NaN; everywhere else the two agree.

    Args:
        params: dict of parameter name -> live float array, updated in place.
        lr: :math:`\gamma` >= 0. alpha: smoothing constant :math:`\alpha` in [0, 1).
        eps: :math:`\epsilon` >= 0. weight_decay: L2 penalty :math:`\lambda` >= 0.
        momentum: :math:`\mu` >= 0. centered: normalise by the estimated variance instead of the
            uncentred second moment.

    State per parameter: ``square_avg`` (v), ``momentum_buffer`` (b, with momentum > 0) and
    ``grad_avg`` (:math:`\bar g`, if centred).

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = RMSprop({"w": w}, lr=0.01, alpha=0.75)
    >>> opt.step({"w": np.array([0.5, -3.0])})  # v = g^2 / 4, so each entry moves by lr * 2
    >>> w.round(6)
    array([ 0.98, -1.98])
    """

    _HYPER = (
        Hyper("lr", 1e-2, _nonnegative),
        Hyper("alpha", 0.99, _fraction),
        Hyper("eps", 1e-8, _nonnegative),
        Hyper("weight_decay", 0.0, _nonnegative),
        Hyper("momentum", 0.0, _nonnegative),
        Hyper("centered", False, _checks.boolean),
    )

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        momentum = ["momentum_buffer"] if hyper["momentum"] > 0 else []
        return ["square_avg", *momentum] + (["grad_avg"] if hyper["centered"] else [])

    def _update(self, param: np.ndarray, grad: np.ndarray, state: State) -> None:
        _rmsprop_update(param, grad, state, **self._hyper)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    .. math::

        &s_0 \leftarrow \text{initial\_accumulator\_value} \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \\
        &\quad \textbf{if } \lambda \ne 0: \quad g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\quad \tilde\gamma \leftarrow \gamma / (1 + (t - 1) \eta) \\
        &\quad s_t \leftarrow s_{t-1} + g_t^2 \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \tilde\gamma \, g_t / (\sqrt{s_t} + \epsilon)

    Args:
        params: dict of parameter name -> live float array, updated in place.
        lr: :math:`\gamma` >= 0. lr_decay: :math:`\eta` >= 0. weight_decay: L2 penalty
            :math:`\lambda` >= 0. initial_accumulator_value: :math:`s_0` >= 0.
        eps: :math:`\epsilon` >= 0 (default 1e-10, added outside the root).

    State per parameter: ``sum`` (s), which exists from construction.

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adagrad({"w": w}, lr=0.1)
    >>> opt.step({"w": np.array([0.5, -3.0])})  # s = g^2: each entry moves by lr
    >>> w.round(6)
    array([ 0.9, -1.9])
    """

    _HYPER = (
        Hyper("lr", 1e-2, _nonnegative),
        Hyper("lr_decay", 0.0, _nonnegative),
        Hyper("weight_decay", 0.0, _nonnegative),
        Hyper("initial_accumulator_value", 0.0, _nonnegative),
        Hyper("eps", 1e-10, _nonnegative),
    )

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        return ["sum"]

    def _init_state(self, param: np.ndarray) -> State:
        return {"sum": np.full(param.shape, self._hyper["initial_accumulator_value"], param.dtype)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: State) -> None:
        _adagrad_update(param, grad, state, step=self._step_count, **self._hyper)
