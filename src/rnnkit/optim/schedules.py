r"""Learning-rate schedules with PyTorch's semantics: each sets its optimiser's ``lr``.

Call ``schedule.step()`` once per epoch (or per step, as you define it), after the optimiser's
``step``; :class:`ReduceLROnPlateau` takes the monitored metric, ``schedule.step(metric)``.
Constructing a schedule counts as its step 0 (``last_epoch == 0``) and already sets the learning
rate of step 0, as torch's constructors do. ``last_lr`` is the learning rate set by the latest
call; ``base_lr`` is the optimiser's ``lr`` when the schedule was built.

:class:`StepLR` and :class:`ExponentialLR` are computed the way torch computes them, by
multiplying the optimiser's current ``lr`` (not in closed form from ``base_lr``), so the float
sequence is torch's, bit for bit.

``state_dict()`` gives a nested dict of Python scalars, str, bool and None only (JSON as it
stands); ``load_state_dict`` checks it, restores it, and sets the optimiser's ``lr`` to the saved
``last_lr``, so it does not matter whether the optimiser or the schedule is restored first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar

import numpy as np

from rnnkit import _checks
from rnnkit._checks import REQUIRED, Hyper, nonnegative, positive
from rnnkit.optim.optimizers import Optimizer

_count = partial(_checks.integer, low=0)
_at_least_1 = partial(_checks.integer, low=1)


def _best(name: str, value: Any) -> float | None:
    return None if value is None else _checks.real(name, value, allow_inf=True)


def _metric(value: Any) -> float:
    """A monitored metric as a float: a real number or a 0-d array; NaN and +-inf allowed."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"metric must be a real number (float, int or 0-d array), got "
            f"{type(value).__name__} {value!r}"
        )
    return float(value)


class Schedule:
    """Base class: the optimiser, the epoch counter and the state_dict machinery.

    A subclass declares its hyper-parameters in ``_HYPER``, as the optimisers do, from which
    this class derives the constructor's signature, the argument checks and ``hyperparams``; and
    ``_STATE``, the state_dict entries beyond them, each with its check. Not used directly.
    """

    _HYPER: ClassVar[tuple[Hyper, ...]] = ()
    _STATE: ClassVar[tuple[tuple[str, Callable[[str, Any], Any]], ...]] = (
        ("last_epoch", _count),
        ("base_lr", nonnegative),
        ("last_lr", nonnegative),
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = _checks.signature("optimizer", cls._HYPER)

    def __init__(self, optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
        arguments = _checks.bind(type(self), optimizer, *args, **kwargs)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "optimizer must be an rnnkit.optim optimiser (SGD, Adam, AdamW, RMSprop, "
                f"Adagrad), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self._hyper = self._check_hyper(arguments, "", self.base_lr)
        self.last_epoch = 0
        self._set(self._initial_lr())

    # -- to define in subclasses -------------------------------------------------------------------

    @classmethod
    def _check_hyper(cls, values: Mapping[str, Any], where: str, base_lr: float) -> dict[str, Any]:
        """The hyper-parameters checked and normalised (as the optimisers'); ``base_lr`` is the
        learning rate they must fit."""
        return _checks.declared(where, values, cls._HYPER)

    def _initial_lr(self) -> float:
        return self.optimizer.lr

    def _next_lr(self) -> float:
        """The learning rate at ``self.last_epoch`` (already incremented)."""
        raise NotImplementedError

    # -- public interface --------------------------------------------------------------------------

    @property
    def last_lr(self) -> float:
        """The learning rate set by the latest :meth:`step` (or the constructor)."""
        return self._last_lr

    @property
    def hyperparams(self) -> dict[str, Any]:
        return dict(self._hyper)

    def step(self) -> None:
        """Advance one epoch and set the optimiser's learning rate."""
        self.last_epoch += 1
        self._set(self._next_lr())

    def state_dict(self) -> dict[str, Any]:
        """``{"type": ..., "hyperparams": {...}, "last_epoch": int, ...}``, all Python scalars."""
        out: dict[str, Any] = {"type": type(self).__name__, "hyperparams": self.hyperparams}
        for key, _ in self._STATE:
            out[key] = getattr(self, "_last_lr" if key == "last_lr" else key)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; everything is checked before anything changes, and the
        optimiser's ``lr`` is set to the saved ``last_lr``."""
        entries = ["type", "hyperparams", *(key for key, _ in self._STATE)]
        _checks.keys_exactly("state_dict", state_dict, entries, "entries")
        name = type(self).__name__
        _checks.same("state_dict['type']", state_dict["type"], name, "this schedule")
        values = {key: check(f"state_dict[{key!r}]", state_dict[key]) for key, check in self._STATE}
        base_lr = values.get("base_lr", self.base_lr)
        hyper = self._check_hyper(state_dict["hyperparams"], "state_dict['hyperparams']", base_lr)
        self._hyper = hyper
        for key, value in values.items():
            setattr(self, "_last_lr" if key == "last_lr" else key, value)
        self.optimizer.lr = self._last_lr

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return f"{type(self).__name__}({args}; epoch {self.last_epoch}, lr {self._last_lr!r})"

    # -- helpers -----------------------------------------------------------------------------------

    def _set(self, lr: float) -> None:
        self.optimizer.lr = lr
        self._last_lr = self.optimizer.lr


class StepLR(Schedule):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` epochs, as
    ``torch.optim.lr_scheduler.StepLR``.

    .. math::

        \gamma_0 = \gamma_{base}, \qquad
        \gamma_e = \begin{cases} \gamma_{e-1} \cdot \text{gamma} & e \bmod \text{step\_size} = 0
            \\ \gamma_{e-1} & \text{otherwise} \end{cases}

    that is :math:`\gamma_e = \gamma_{base} \cdot \text{gamma}^{\lfloor e / \text{step\_size}
    \rfloor}`, computed as the running product (as torch does).

    Args:
        optimizer: the optimiser whose ``lr`` to set. step_size: period, an int >= 1.
        gamma: multiplicative factor, a float > 0.

    >>> import numpy as np
    >>> from rnnkit.optim import SGD
    >>> opt = SGD({"w": np.zeros(2)}, lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = [sched.last_lr]
    >>> for _ in range(5):
    ...     sched.step()
    ...     lrs.append(opt.lr)
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    _HYPER = (Hyper("step_size", REQUIRED, _at_least_1), Hyper("gamma", 0.1, positive))

    def _next_lr(self) -> float:
        if self.last_epoch % self._hyper["step_size"] != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self._hyper["gamma"]


class ExponentialLR(Schedule):
    r"""Multiply the learning rate by ``gamma`` every epoch, as
    ``torch.optim.lr_scheduler.ExponentialLR``.

    .. math::

        \gamma_0 = \gamma_{base}, \qquad \gamma_e = \gamma_{e-1} \cdot \text{gamma}

    (:math:`= \gamma_{base} \cdot \text{gamma}^e`, computed as the running product, as torch does).

    Args:
        optimizer: the optimiser whose ``lr`` to set. gamma: multiplicative factor, a float > 0.

    >>> import numpy as np
    >>> from rnnkit.optim import SGD
    >>> opt = SGD({"w": np.zeros(2)}, lr=1.0)
    >>> sched = ExponentialLR(opt, gamma=0.5)
    >>> sched.step(); sched.step()
    >>> opt.lr, sched.last_epoch
    (0.25, 2)
    """

    _HYPER = (Hyper("gamma", REQUIRED, positive),)

    def _next_lr(self) -> float:
        return self.optimizer.lr * self._hyper["gamma"]


class WarmupCosine(Schedule):
    r"""Linear warm-up to the base learning rate, then half a cosine down to ``min_lr``.

    With :math:`W` = ``warmup_steps``, :math:`T` = ``total_steps``, :math:`\gamma_{base}` the
    optimiser's ``lr`` at construction and :math:`\gamma_{min}` = ``min_lr``, the learning rate at
    epoch :math:`e` (0 at construction, +1 per :meth:`step`) is

    .. math::

        \gamma_e = \begin{cases}
            \gamma_{base} \cdot \dfrac{e + 1}{W + 1} & 0 \le e < W \\[1ex]
            \gamma_{min} + (\gamma_{base} - \gamma_{min}) \cdot
                \tfrac12 \left(1 + \cos\left(\pi \dfrac{e - W}{T - W}\right)\right)
                & W \le e < T \\[1ex]
            \gamma_{min} & e \ge T
        \end{cases}

    so the warm-up climbs from :math:`\gamma_{base} / (W + 1)` (never 0: no step is wasted) in
    equal increments and reaches :math:`\gamma_{base}` exactly at :math:`e = W`, where the cosine
    starts; it reaches :math:`\gamma_{min}` at :math:`e = T` and stays there. ``warmup_steps=0``
    is a plain cosine decay. There is no single torch class for this; it equals
    ``LambdaLR(opt, lambda e: <the formula above> / base_lr)``.

    Args:
        optimizer: the optimiser whose ``lr`` to set. warmup_steps: :math:`W`, an int >= 0.
        total_steps: :math:`T`, an int > ``warmup_steps``. min_lr: a float in [0, base lr].

    >>> import numpy as np
    >>> from rnnkit.optim import SGD
    >>> opt = SGD({"w": np.zeros(2)}, lr=1.0)
    >>> sched = WarmupCosine(opt, warmup_steps=3, total_steps=5)
    >>> lrs = [sched.last_lr]
    >>> for _ in range(6):
    ...     sched.step()
    ...     lrs.append(round(opt.lr, 12))
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 0.5, 0.0, 0.0]
    """

    _HYPER = (
        Hyper("warmup_steps", REQUIRED, _count),
        Hyper("total_steps", REQUIRED, _at_least_1),
        Hyper("min_lr", 0.0, nonnegative),
    )

    @classmethod
    def _check_hyper(cls, values: Mapping[str, Any], where: str, base_lr: float) -> dict[str, Any]:
        h = super()._check_hyper(values, where, base_lr)
        warmup, total, min_lr = h["warmup_steps"], h["total_steps"], h["min_lr"]
        if total <= warmup:
            raise ValueError(
                f"{_checks.entry(where, 'total_steps')} must be > warmup_steps ({warmup}), "
                f"got {total}"
            )
        if min_lr > base_lr:
            raise ValueError(
                f"{_checks.entry(where, 'min_lr')} must be <= the base learning rate ({base_lr}, "
                f"the optimiser's lr when the schedule was built), got {min_lr}"
            )
        return h

    def _initial_lr(self) -> float:
        return self._lr_at(0)

    def _next_lr(self) -> float:
        return self._lr_at(self.last_epoch)

    def _lr_at(self, e: int) -> float:
        W, T, min_lr = (
            self._hyper["warmup_steps"],
            self._hyper["total_steps"],
            self._hyper["min_lr"],
        )
        if e < W:
            return self.base_lr * ((e + 1) / (W + 1))
        progress = min(e - W, T - W) / (T - W)
        return min_lr + (self.base_lr - min_lr) * (0.5 * (1.0 + math.cos(math.pi * progress)))


class ReduceLROnPlateau(Schedule):
    r"""Cut the learning rate when a metric stops improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    At each ``step(metric)``, with :math:`\theta` = ``threshold``, a metric :math:`x` improves
    on the best so far, :math:`x^*`, if

    .. math::

        \begin{array}{ll}
            x < x^* (1 - \theta) & \text{mode "min", threshold\_mode "rel"} \\
            x < x^* - \theta & \text{mode "min", threshold\_mode "abs"} \\
            x > x^* (1 + \theta) & \text{mode "max", threshold\_mode "rel"} \\
            x > x^* + \theta & \text{mode "max", threshold\_mode "abs"}
        \end{array}

    (:math:`x^*` starts at :math:`+\infty` for "min", :math:`-\infty` for "max"). An
    improvement sets :math:`x^* \leftarrow x` and the bad-epoch count to 0, anything else
    (NaN included) adds 1 to it. While cooling down, the cooldown counter drops by 1 and the
    bad-epoch count is held at 0. When the count exceeds ``patience``:

    .. math::

        \gamma_{new} = \max(\gamma \cdot \text{factor}, \text{min\_lr}), \quad
        \text{applied only if } \gamma - \gamma_{new} > \text{eps}

    then the cooldown counter is set to ``cooldown`` and the count to 0. Note that "rel" with
    a negative best value in "min" mode compares against :math:`x^* (1 - \theta)`, which is
    *below* a negative :math:`x^*` by less than intended; torch does the same.

    Args:
        optimizer: the optimiser whose ``lr`` to set. mode: "min" or "max".
        factor: a float in [0, 1). patience, cooldown: ints >= 0.
        threshold: a float >= 0. threshold_mode: "rel" or "abs".
        min_lr: a float >= 0. eps: a float >= 0.

    ``state_dict()["best"]`` is None until a metric has improved on the infinite start.

    >>> import numpy as np
    >>> from rnnkit.optim import SGD
    >>> opt = SGD({"w": np.zeros(2)}, lr=1.0)
    >>> sched = ReduceLROnPlateau(opt, patience=1, factor=0.5)
    >>> for loss in [3.0, 2.0, 2.5, 2.4, 2.3, 2.2]:  # cut after the 2nd and 4th bad epoch
    ...     sched.step(loss)
    >>> opt.lr, sched.num_bad_epochs
    (0.25, 0)
    """

    _HYPER = (
        Hyper("mode", "min", partial(_checks.choice, choices=("min", "max"))),
        Hyper("factor", 0.1, _checks.fraction),
        Hyper("patience", 10, _count),
        Hyper("threshold", 1e-4, nonnegative),
        Hyper("threshold_mode", "rel", partial(_checks.choice, choices=("rel", "abs"))),
        Hyper("cooldown", 0, _count),
        Hyper("min_lr", 0.0, nonnegative),
        Hyper("eps", 1e-8, nonnegative),
    )
    _STATE = (
        ("last_epoch", _count),
        ("best", _best),
        ("num_bad_epochs", _count),
        ("cooldown_counter", _count),
        ("last_lr", nonnegative),
    )

    def __init__(self, optimizer: Optimizer, *args: Any, **kwargs: Any) -> None:
        self.best: float | None = None  # None: nothing seen yet (torch's +-inf)
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer, *args, **kwargs)

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Record one epoch's ``metric`` (a real number; NaN counts as no improvement) and cut
        the learning rate if it has not improved for more than ``patience`` epochs."""
        current = _metric(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self._hyper["patience"]:
            old = self.optimizer.lr
            new = max(old * self._hyper["factor"], self._hyper["min_lr"])
            if old - new > self._hyper["eps"]:
                self.optimizer.lr = new
            self.cooldown_counter = self._hyper["cooldown"]
            self.num_bad_epochs = 0
        self._last_lr = self.optimizer.lr

    def _is_better(self, a: float) -> bool:
        h = self._hyper
        if h["mode"] == "min":
            best = math.inf if self.best is None else self.best
            return a < (
                best * (1.0 - h["threshold"])
                if h["threshold_mode"] == "rel"
                else best - h["threshold"]
            )
        best = -math.inf if self.best is None else self.best
        return a > (
            best * (h["threshold"] + 1.0) if h["threshold_mode"] == "rel" else best + h["threshold"]
        )
