r"""Gradient-descent optimisers with PyTorch 2.13's update rules and defaults.

An optimiser holds a dict of named parameter arrays -- the live arrays of a model, e.g.
``model.parameters()`` -- and :meth:`Optimizer.step` updates them in place from a dict of
gradients with the same names. Every operation is element-wise: each state array has its
parameter's shape and dtype, and ``t`` counts the steps taken (1 at the first step).

Symbols, shared by every docstring: :math:`\theta` parameter, :math:`g` gradient, :math:`\gamma`
learning rate (``lr``), :math:`\lambda` weight decay, :math:`\mu` momentum, :math:`\tau` dampening,
:math:`\beta_1, \beta_2` (``betas``), :math:`\alpha` (RMSprop's smoothing), :math:`\epsilon`
(``eps``), :math:`\eta` (Adagrad's ``lr_decay``).

Each class declares its hyper-parameters once, in ``_HYPER`` (name, default, check), its state
arrays, and its update rule, a pure function from :mod:`rnnkit.optim.updates` whose arithmetic
follows torch's single-tensor (``foreach=False``) code: float64 trajectories agree with torch's
to an ulp or so (the tests ask for 1e-12 relative at each of 25 steps). The base class derives
the rest. Resuming from :meth:`Optimizer.state_dict` is bit-identical to never having stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from rnnkit import _checks
from rnnkit._checks import REQUIRED, Hyper
from rnnkit.optim import updates
from rnnkit.optim.updates import State


def _betas(name: str, value: Any) -> list[float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2) of floats in [0, 1), got {value!r}")
    return [_checks.fraction(f"{name}[{i}]", b) for i, b in enumerate(value)]


class Optimizer:
    """Base class: the live parameters, the hyper-parameters, per-parameter state and the step
    count, with gradient validation and a checkpointable ``state_dict``.

    A subclass declares its hyper-parameters in ``_HYPER``, from which this class derives the
    constructor's signature (as :func:`inspect.signature` and :func:`help` show it), the argument
    checks, :attr:`hyperparams`, :meth:`state_dict`, :meth:`load_state_dict` and ``repr``. It
    sets ``_update`` to its rule from :mod:`rnnkit.optim.updates`, defines ``_state_keys`` (which
    state arrays exist) and, if its state does not start at zero, ``_init_state``. Not used
    directly.

    An optimiser pickles and deep-copies with its parameters; the copy updates its own copies of
    the arrays (pickle the parameters and the optimiser together to keep them shared).
    """

    #: the hyper-parameters, in the constructor's order: ``state_dict()["hyperparams"]``
    _HYPER: ClassVar[tuple[Hyper, ...]] = ()
    #: ``rule(param, grad, state, *, step, **hyperparams)``, from :mod:`rnnkit.optim.updates`
    _update: ClassVar[Callable[..., None]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = _checks.signature("params", cls._HYPER)

    def __init__(self, params: Mapping[str, np.ndarray], *args: Any, **kwargs: Any) -> None:
        arguments = _checks.bind(type(self), params, *args, **kwargs)
        self._params = _check_params(params)  # a shallow copy: the same live arrays
        self._hyper = self._check_hyper(arguments, "")
        self._step_count = 0
        self._state = {name: self._init_state(p) for name, p in self._params.items()}

    # -- to define in subclasses -------------------------------------------------------------------

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        raise NotImplementedError

    def _init_state(self, param: np.ndarray) -> State:
        return {k: np.zeros(param.shape, param.dtype) for k in self._state_keys(self._hyper, 0)}

    @classmethod
    def _check_hyper(cls, values: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The hyper-parameters checked and normalised, from the constructor (``where`` empty) or
        from ``where`` in a state_dict, which must then have exactly the declared keys."""
        return _checks.declared(where, values, cls._HYPER)

    # -- public interface --------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The learning rate of the next step; schedules set it."""
        return self._hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = _checks.nonnegative("lr", value)

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
            state = self._state[name]
            self._update(param, grads[name], state, step=self._step_count, **self._hyper)

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

    def rebind(self, params: Mapping[str, np.ndarray]) -> None:
        """Update ``params`` from now on instead of the arrays given so far, keeping the state,
        step count and hyper-parameters: for a copy of the model (``joblib.load`` gives a model
        and an optimiser pickled together separate copies of the arrays they shared). ``params``
        must have the same names, and each array the shape and dtype of the one it replaces."""
        new = _check_params(params)
        what = "parameter name -> numpy array"
        _checks.keys_exactly("params", new, self.param_names, what, keys="the parameters' names")
        for name, param in self._params.items():
            _checks.like(f"params[{name!r}]", new[name], param)
        self._params = new

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the hyper-parameters, step count and state saved by :meth:`state_dict`.

        The optimiser type, hyper-parameters, parameter names, state keys, shapes and dtypes are
        all checked first; on any mismatch a ``ValueError`` or ``TypeError`` names the entry and
        nothing is changed. Arrays are copied in, so the dict may be reused.
        """
        entries = ["type", "hyperparams", "step_count", "state"]
        _checks.keys_exactly("state_dict", state_dict, entries, "entries")
        name = type(self).__name__
        _checks.same("state_dict['type']", state_dict["type"], name, "this optimiser")
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
    Sutskever et al.'s :math:`v \leftarrow \mu v + \gamma g`). ``lr`` is required (there is no
    good default); ``nesterov`` needs momentum > 0 and dampening 0; ``maximize`` ascends.

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
        Hyper("lr", REQUIRED, _checks.nonnegative),
        Hyper("momentum", 0.0, _checks.nonnegative),
        Hyper("dampening", 0.0, _checks.nonnegative),
        Hyper("nesterov", False, _checks.boolean),
        Hyper("weight_decay", 0.0, _checks.nonnegative),
        Hyper("maximize", False, _checks.boolean),
    )
    _update = staticmethod(updates.sgd)

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
    The weight decay is an L2 penalty in the gradient (:class:`AdamW` decouples it).

    State per parameter: ``exp_avg`` (m), ``exp_avg_sq`` (v), and ``max_exp_avg_sq`` with amsgrad.

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adam({"w": w}, lr=0.1)
    >>> opt.step({"w": np.array([0.5, -3.0])})  # the first step moves each entry by ~lr
    >>> w.round(6)
    array([ 0.9, -1.9])
    """

    _HYPER = (
        Hyper("lr", 1e-3, _checks.nonnegative),
        Hyper("betas", (0.9, 0.999), _betas),
        Hyper("eps", 1e-8, _checks.nonnegative),
        Hyper("weight_decay", 0.0, _checks.nonnegative),
        Hyper("amsgrad", False, _checks.boolean),
    )
    _update = staticmethod(updates.adam)

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if hyper["amsgrad"] else [])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    As :class:`Adam`, except that the weight decay shrinks the parameter directly, before the
    moments, instead of entering the gradient (and so the moments):

    .. math::

        \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda)

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
    _update = staticmethod(updates.adamw)


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

    ``centered`` normalises by the estimated variance instead of the uncentred second moment.
    :math:`\epsilon` is added outside the root, and the momentum buffer starts at zero (unlike
    SGD's). The ``max(., 0)`` is ours: where rounding takes the difference a hair below zero,
    after thousands of steps of a constant gradient, torch's root gives NaN.

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
        Hyper("lr", 1e-2, _checks.nonnegative),
        Hyper("alpha", 0.99, _checks.fraction),
        Hyper("eps", 1e-8, _checks.nonnegative),
        Hyper("weight_decay", 0.0, _checks.nonnegative),
        Hyper("momentum", 0.0, _checks.nonnegative),
        Hyper("centered", False, _checks.boolean),
    )
    _update = staticmethod(updates.rmsprop)

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        momentum = ["momentum_buffer"] if hyper["momentum"] > 0 else []
        return ["square_avg", *momentum] + (["grad_avg"] if hyper["centered"] else [])


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

    Each entry's step shrinks with its own accumulated squared gradient; :math:`\epsilon` is
    added outside the root.

    State per parameter: ``sum`` (s), which exists from construction.

    >>> import numpy as np
    >>> w = np.array([1.0, -2.0])
    >>> opt = Adagrad({"w": w}, lr=0.1)
    >>> opt.step({"w": np.array([0.5, -3.0])})  # s = g^2: each entry moves by lr
    >>> w.round(6)
    array([ 0.9, -1.9])
    """

    _HYPER = (
        Hyper("lr", 1e-2, _checks.nonnegative),
        Hyper("lr_decay", 0.0, _checks.nonnegative),
        Hyper("weight_decay", 0.0, _checks.nonnegative),
        Hyper("initial_accumulator_value", 0.0, _checks.nonnegative),
        Hyper("eps", 1e-10, _checks.nonnegative),
    )
    _update = staticmethod(updates.adagrad)

    @classmethod
    def _state_keys(cls, hyper: dict[str, Any], step_count: int) -> list[str]:
        return ["sum"]

    def _init_state(self, param: np.ndarray) -> State:
        return {"sum": np.full(param.shape, self._hyper["initial_accumulator_value"], param.dtype)}
