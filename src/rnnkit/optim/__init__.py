"""Optimisers, learning-rate schedules and gradient clipping for dicts of named NumPy arrays,
with PyTorch 2.13's update rules and defaults.

>>> import numpy as np
>>> from rnnkit import optim
>>> params = {"w": np.array([1.0, -1.0])}
>>> opt = optim.Adam(params, lr=0.1)
>>> sched = optim.StepLR(opt, step_size=10, gamma=0.5)
>>> for _ in range(3):
...     grads = {"w": 2 * params["w"]}            # gradient of sum(w ** 2)
...     norm = optim.clip_grad_norm(grads, 1.0)
...     opt.step(grads)
...     sched.step()
>>> params["w"].round(3), opt.step_count
(array([ 0.7, -0.7]), 3)
"""

from rnnkit.optim.clip import clip_grad_norm, clip_grad_value
from rnnkit.optim.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from rnnkit.optim.schedules import (
    ExponentialLR,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    WarmupCosine,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ExponentialLR",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "Schedule",
    "StepLR",
    "WarmupCosine",
    "clip_grad_norm",
    "clip_grad_value",
]
