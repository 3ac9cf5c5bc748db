r"""Dropout (Srivastava et al. 2014), inverted: scaled in training so evaluation is the identity.

Forward in training, with a keep mask :math:`m \sim \mathrm{Bernoulli}(1 - p)` per element:
:math:`y = x \odot m / (1 - p)`; backward :math:`\partial L/\partial x = \partial L/\partial y
\odot m / (1 - p)`. In evaluation mode (and for p = 0), :math:`y = x`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks
from rnnkit.nn.module import Module


class DropoutCache(NamedTuple):
    scale: np.ndarray | None  # keep mask / (1 - p), shaped like x; None when nothing is dropped


class Dropout(Module):
    """Inverted dropout with its own generator (``self.rng``), seeded for reproducibility.

    Args:
        p: the probability of zeroing an element, in [0, 1).
        seed: int, Generator or None.

    Example:
        >>> import numpy as np, rnnkit
        >>> drop = rnnkit.Dropout(0.5, seed=0)
        >>> y, cache = drop.forward(np.ones((2, 4)))
        >>> sorted(set(y.ravel().tolist()))  # dropped, or kept and scaled by 1 / (1 - p)
        [0.0, 2.0]
        >>> y, _ = drop.eval().forward(np.ones((2, 4)))
        >>> float(y.min())
        1.0
    """

    def __init__(self, p: float = 0.5, *, seed: Any = None) -> None:
        super().__init__()
        self.p = _checks.probability("p", p)
        self.rng = _checks.rng(seed)

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
        """``x`` -> ``x * mask / (1 - p)`` in training; ``mask`` (bool, like x) fixes the keep
        mask instead of drawing one (for gradient checks)."""
        if not self.training or self.p == 0.0:
            return x, DropoutCache(None)
        if mask is None:
            mask = self.rng.random(x.shape) >= self.p
        elif mask.shape != x.shape:
            raise ValueError(f"mask must have the shape of x {x.shape}, got {mask.shape}")
        scale = mask * np.asarray(1.0 / (1.0 - self.p), dtype=x.dtype)
        return x * scale, DropoutCache(scale)

    def backward(self, dy: np.ndarray, cache: DropoutCache) -> tuple[np.ndarray, dict]:
        return (dy if cache.scale is None else dy * cache.scale), {}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
