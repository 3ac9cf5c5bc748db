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
arrays and the hyper-parameters, which writes into the parameter and the state arrays; the classes
only validate, hold the arrays and count steps. The order of floating-point operations follows
torch's single-tensor (``foreach=False``) code, so float64 trajectories agree with torch's to
an ulp or so (torch's kernels fuse some multiply-adds; the tests ask for 1e-12 relative at each of
25 steps). Resuming from :meth:`Optimizer.state_dict` is bit-identical to never having stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from rnnkit._checks import FLOAT_DTYPES, fmt_shape

Hyper = dict[str, Any]  # normalised hyper-parameters: Python floats, bools and lists only


# -- argument checks -------------------------------------------------------------------------------


def _real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a Python float within the given bounds; the message states the range."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    if low is not None and high is not None:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        want = " and ".join(parts)
    kind = "a float" if allow_inf else "a finite float"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be {kind} {want}, got {type(value).__name__} {value!r}")
    if isinstance(value, np.complexfloating):
        raise TypeError(f"{name} must be {kind} {want}, got complex {value!r}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ValueError(f"{name} must be {kind} {want}, got {out}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {kind} {want}, got {value!r}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {kind} {want}, got {value!r}")
    return out


def _int(name: str, value: Any, *, low: int) -> int:
    """``value`` as a Python int >= ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        options = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {options}, got {value!r}")
    return value


def _keys_exactly(name: str, mapping: Any, expected: list[str], what: str) -> None:
    """``mapping`` must be a Mapping whose keys are exactly ``expected``."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict of {what}, got {type(mapping).__name__}")
    missing = [k for k in expected if k not in mapping]
    extra = [k for k in mapping if k not in expected]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unexpected {extra}"] if extra else []
        )
        raise ValueError(f"{name} must have exactly the keys {expected}, got {'; '.join(parts)}")


def _check_params(params: Any) -> dict[str, np.ndarray]:
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a dict of parameter name -> numpy array (e.g. model.parameters()), "
            f"got {type(params).__name__}"
        )
    if len(params) == 0:
        raise ValueError("params must hold at least one parameter, got an empty dict")
    out = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise TypeError(f"params keys must be str, got {type(name).__name__} {name!r}")
        if not isinstance(value, np.ndarray):
            raise TypeError(f"params[{name!r}] must be a numpy.ndarray, got {type(value).__name__}")
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"params[{name!r}] must have dtype float32 or float64, got {value.dtype}"
            )
        if not value.flags.writeable:
            raise ValueError(
                f"params[{name!r}] is read-only; the optimiser must update it in place"
            )
        out[name] = value
    return out


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
    buf: np.ndarray | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> np.ndarray | None:
    """One SGD step on ``param`` in place; returns the momentum buffer (None without momentum)."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    if momentum != 0:
        if buf is None:  # torch starts the buffer at the first gradient, undampened
            buf = np.array(g)
        else:
            buf *= momentum
            buf += (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    param += -lr * g
    return buf


def _adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
) -> None:
    """One Adam (``decoupled=False``) or AdamW step; ``step`` is t, 1 at the first step."""
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
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    param += (-step_size * exp_avg) / denom


def _rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    grad_avg: np.ndarray | None,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
) -> None:
    """One RMSprop step; ``grad_avg`` is given iff centred, ``momentum_buffer`` iff momentum > 0."""
    g = grad
    if weight_decay != 0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if grad_avg is not None:
        _lerp_(grad_avg, g, 1 - alpha)
        var = square_avg - grad_avg * grad_avg
        # v >= m^2 holds exactly, but rounding can push it a hair below 0 once the gradient has
        # been constant for thousands of steps; torch then takes sqrt(-0.0...) = NaN, we take 0.
        np.maximum(var, 0.0, out=var)
        avg = np.sqrt(var)
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum_buffer is not None:
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        param += -lr * momentum_buffer
    else:
        param += (-lr * g) / avg


def _adagrad_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
) -> None:
    """One Adagrad step; ``step`` is t, 1 at the first step."""
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

    Subclasses define ``_check_hyper`` (validate and normalise the hyper-parameters),
    ``_state_keys`` (which state arrays exist), ``_init_state`` and ``_update`` (call the pure
    update function). Not used directly.
    """

    #: the constructor's hyper-parameter names: the keys of ``state_dict()["hyperparams"]``
    _HYPER: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Mapping[str, np.ndarray], **hyper: Any) -> None:
        self._params = _check_params(params)  # a shallow copy: the same live arrays
        self._hyper = self._check_hyper(hyper, "")
        self._step_count = 0
        self._state = {name: self._init_state(p, self._hyper) for name, p in self._params.items()}

    # -- to define in subclasses -------------------------------------------------------------------

    @classmethod
    def _check_hyper(cls, hyper: Mapping[str, Any], where: str) -> Hyper:
        raise NotImplementedError

    @classmethod
    def _state_keys(cls, hyper: Hyper, step_count: int) -> list[str]:
        raise NotImplementedError

    def _init_state(self, param: np.ndarray, hyper: Hyper) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # -- public interface --------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate of the next step; schedules set it."""
        return self._hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = _real("lr", value, low=0.0)

    @property
    def step_count(self) -> int:
        """The number of steps taken (restored by :meth:`load_state_dict`)."""
        return self._step_count

    @property
    def hyperparams(self) -> Hyper:
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
        self._check_grads(grads)
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
        _keys_exactly(
            "state_dict", state_dict, ["type", "hyperparams", "step_count", "state"], "entries"
        )
        kind = state_dict["type"]
        if kind != type(self).__name__:
            raise ValueError(
                f"state_dict['type'] must be {type(self).__name__!r} (this optimiser), got {kind!r}"
            )
        hyper = self._check_hyper(state_dict["hyperparams"], "state_dict['hyperparams']")
        step_count = _int("state_dict['step_count']", state_dict["step_count"], low=0)
        _keys_exactly(
            "state_dict['state']", state_dict["state"], list(self._params), "state by parameter"
        )
        keys = self._state_keys(hyper, step_count)
        new_state = {}
        for name, param in self._params.items():
            where = f"state_dict['state'][{name!r}]"
            entry = state_dict["state"][name]
            _keys_exactly(where, entry, keys, "state arrays")
            new_state[name] = {}
            for key in keys:
                value = entry[key]
                if not isinstance(value, np.ndarray):
                    raise TypeError(
                        f"{where}[{key!r}] must be a numpy.ndarray, got {type(value).__name__}"
                    )
                if value.shape != param.shape:
                    raise ValueError(
                        f"{where}[{key!r}] must have shape {fmt_shape(param.shape)} like the "
                        f"parameter, got {fmt_shape(value.shape)}"
                    )
                if value.dtype != param.dtype:
                    raise TypeError(
                        f"{where}[{key!r}] must have dtype {param.dtype} like the parameter, "
                        f"got {value.dtype}"
                    )
                new_state[name][key] = np.array(value)
        self._hyper, self._step_count, self._state = hyper, step_count, new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{type(self).__name__}({args}; {len(self._params)} params, step {self._step_count})"

    # -- helpers -----------------------------------------------------------------------------------

    def _check_grads(self, grads: Any) -> None:
        if not isinstance(grads, Mapping):
            raise TypeError(
                f"grads must be a dict of parameter name -> gradient array, got "
                f"{type(grads).__name__}"
            )
        missing = [k for k in self._params if k not in grads]
        extra = [k for k in grads if k not in self._params]
        if missing or extra:
            parts = ([f"missing {missing}"] if missing else []) + (
                [f"unexpected {extra}"] if extra else []
            )
            raise ValueError(
                f"grads must have exactly the parameters' names {list(self._params)}, "
                f"got {'; '.join(parts)}"
            )
        for name, param in self._params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grads[{name!r}] must be a numpy.ndarray, got {type(g).__name__}")
            if g.shape != param.shape:
                raise ValueError(
                    f"grads[{name!r}] must have shape {fmt_shape(param.shape)} like the "
                    f"parameter, got {fmt_shape(g.shape)}"
                )
            if g.dtype != param.dtype:
                raise TypeError(
                    f"grads[{name!r}] must have dtype {param.dtype} like the parameter, "
                    f"got {g.dtype}"
                )

    @classmethod
    def _hyper_dict(cls, hyper: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """Check the key set of a hyper-parameter dict loaded from a state_dict."""
        if where:
            _keys_exactly(where, hyper, list(cls._HYPER), "hyper-parameters")
        return hyper


def _name(where: str, key: str) -> str:
    """An argument's name in messages: ``lr`` from the constructor, or its state_dict path."""
    return f"{where}[{key!r}]" if where else key


def _check_betas(where: str, betas: Any) -> list[float]:
    name = _name(where, "betas")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2) of floats in [0, 1), got {betas!r}")
    return [
        _real(f"{name}[{i}]", b, low=0.0, high=1.0, high_open=True) for i, b in enumerate(betas)
    ]


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

    _HYPER = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )

    @classmethod
    def _check_hyper(cls, hyper: Mapping[str, Any], where: str) -> Hyper:
        h = cls._hyper_dict(hyper, where)
        out = {
            "lr": _real(_name(where, "lr"), h["lr"], low=0.0),
            "momentum": _real(_name(where, "momentum"), h["momentum"], low=0.0),
            "dampening": _real(_name(where, "dampening"), h["dampening"], low=0.0),
            "nesterov": _bool(_name(where, "nesterov"), h["nesterov"]),
            "weight_decay": _real(_name(where, "weight_decay"), h["weight_decay"], low=0.0),
            "maximize": _bool(_name(where, "maximize"), h["maximize"]),
        }
        if out["nesterov"] and (out["momentum"] == 0 or out["dampening"] != 0):
            raise ValueError(
                f"{_name(where, 'nesterov')}=True needs momentum > 0 and dampening == 0, got "
                f"momentum={out['momentum']} and dampening={out['dampening']}"
            )
        return out

    @classmethod
    def _state_keys(cls, hyper: Hyper, step_count: int) -> list[str]:
        return ["momentum_buffer"] if hyper["momentum"] != 0 and step_count > 0 else []

    def _init_state(self, param: np.ndarray, hyper: Hyper) -> dict[str, np.ndarray]:
        return {}  # the momentum buffer is born at the first step

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        h = self._hyper
        buf = _sgd_update(
            param,
            grad,
            state.get("momentum_buffer"),
            lr=h["lr"],
            momentum=h["momentum"],
            dampening=h["dampening"],
            nesterov=h["nesterov"],
            weight_decay=h["weight_decay"],
            maximize=h["maximize"],
        )
        if buf is not None:
            state["momentum_buffer"] = buf


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

    _HYPER = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _DECOUPLED: ClassVar[bool] = False

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )

    @classmethod
    def _check_hyper(cls, hyper: Mapping[str, Any], where: str) -> Hyper:
        h = cls._hyper_dict(hyper, where)
        return {
            "lr": _real(_name(where, "lr"), h["lr"], low=0.0),
            "betas": _check_betas(where, h["betas"]),
            "eps": _real(_name(where, "eps"), h["eps"], low=0.0),
            "weight_decay": _real(_name(where, "weight_decay"), h["weight_decay"], low=0.0),
            "amsgrad": _bool(_name(where, "amsgrad"), h["amsgrad"]),
        }

    @classmethod
    def _state_keys(cls, hyper: Hyper, step_count: int) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if hyper["amsgrad"] else [])

    def _init_state(self, param: np.ndarray, hyper: Hyper) -> dict[str, np.ndarray]:
        return {key: np.zeros(param.shape, param.dtype) for key in self._state_keys(hyper, 0)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        h = self._hyper
        _adam_update(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq"),
            step=self._step_count,
            lr=h["lr"],
            beta1=h["betas"][0],
            beta2=h["betas"][1],
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            decoupled=self._DECOUPLED,
        )


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

    _DECOUPLED = True

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
        )


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

    _HYPER = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    @classmethod
    def _check_hyper(cls, hyper: Mapping[str, Any], where: str) -> Hyper:
        h = cls._hyper_dict(hyper, where)
        return {
            "lr": _real(_name(where, "lr"), h["lr"], low=0.0),
            "alpha": _real(_name(where, "alpha"), h["alpha"], low=0.0, high=1.0, high_open=True),
            "eps": _real(_name(where, "eps"), h["eps"], low=0.0),
            "weight_decay": _real(_name(where, "weight_decay"), h["weight_decay"], low=0.0),
            "momentum": _real(_name(where, "momentum"), h["momentum"], low=0.0),
            "centered": _bool(_name(where, "centered"), h["centered"]),
        }

    @classmethod
    def _state_keys(cls, hyper: Hyper, step_count: int) -> list[str]:
        return (
            ["square_avg"]
            + (["momentum_buffer"] if hyper["momentum"] > 0 else [])
            + (["grad_avg"] if hyper["centered"] else [])
        )

    def _init_state(self, param: np.ndarray, hyper: Hyper) -> dict[str, np.ndarray]:
        return {key: np.zeros(param.shape, param.dtype) for key in self._state_keys(hyper, 0)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        h = self._hyper
        _rmsprop_update(
            param,
            grad,
            state["square_avg"],
            state.get("grad_avg"),
            state.get("momentum_buffer"),
            lr=h["lr"],
            alpha=h["alpha"],
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            momentum=h["momentum"],
        )


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

    _HYPER = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    @classmethod
    def _check_hyper(cls, hyper: Mapping[str, Any], where: str) -> Hyper:
        h = cls._hyper_dict(hyper, where)
        return {
            "lr": _real(_name(where, "lr"), h["lr"], low=0.0),
            "lr_decay": _real(_name(where, "lr_decay"), h["lr_decay"], low=0.0),
            "weight_decay": _real(_name(where, "weight_decay"), h["weight_decay"], low=0.0),
            "initial_accumulator_value": _real(
                _name(where, "initial_accumulator_value"),
                h["initial_accumulator_value"],
                low=0.0,
            ),
            "eps": _real(_name(where, "eps"), h["eps"], low=0.0),
        }

    @classmethod
    def _state_keys(cls, hyper: Hyper, step_count: int) -> list[str]:
        return ["sum"]

    def _init_state(self, param: np.ndarray, hyper: Hyper) -> dict[str, np.ndarray]:
        return {"sum": np.full(param.shape, hyper["initial_accumulator_value"], param.dtype)}

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray]) -> None:
        h = self._hyper
        _adagrad_update(
            param,
            grad,
            state["sum"],
            step=self._step_count,
            lr=h["lr"],
            lr_decay=h["lr_decay"],
            weight_decay=h["weight_decay"],
            eps=h["eps"],
        )
