r"""Many-to-one pooling of a recurrent layer's outputs over each sequence's valid steps.

For outputs :math:`y_t` (t < length) of one sequence:

- ``"last"``: the final hidden state of each direction: :math:`y_{n-1}` for the forward
  direction, :math:`y_0` for the reverse one (the step it ends on); the gradient goes to that step.
- ``"mean"``: :math:`\frac1n \sum_{t<n} y_t`; each valid step receives :math:`\delta / n`.
- ``"max"``: :math:`\max_{t<n} y_t` per feature; the gradient goes to the (first) arg max.

An empty sequence (n = 0) pools to zeros and passes no gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks
from rnnkit.nn.module import Module

MODES = ("last", "mean", "max")


class PoolingCache(NamedTuple):
    shape: tuple[int, int, int]  # (T, B, F) of the pooled outputs
    lengths: np.ndarray  # (B,) valid steps
    index: np.ndarray | None  # (B, F) time step each feature was taken from ("last", "max")


class Pooling(Module):
    """Pool (T, B, F) outputs to (B, F) over valid steps; ``mode`` is "last", "mean" or "max".

    Args:
        mode: see the module docstring.
        num_directions: 2 when pooling a bidirectional layer's output, whose second half of the
            features comes from the reverse direction ("last" takes that half at step 0).

    Example:
        >>> import numpy as np, rnnkit
        >>> y = np.arange(12.0).reshape(3, 2, 2)  # (T, B, F)
        >>> pooled, cache = rnnkit.nn.Pooling("last").forward(y, lengths=[3, 1])
        >>> pooled.tolist()
        [[8.0, 9.0], [2.0, 3.0]]
    """

    def __init__(self, mode: str = "last", num_directions: int = 1) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if num_directions not in (1, 2):
            raise ValueError(f"num_directions must be 1 or 2, got {num_directions!r}")
        self.mode = mode
        self.num_directions = num_directions

    def forward(self, y: np.ndarray, lengths: Any = None) -> tuple[np.ndarray, PoolingCache]:
        """(T, B, F) outputs, optional lengths (B,) -> (B, F) pooled."""
        if not isinstance(y, np.ndarray) or y.ndim != 3:
            got = y.shape if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(f"y must be a 3-D array (T, B, F), got {got}")
        T, B, F = y.shape
        if F % self.num_directions:
            raise ValueError(f"y's feature size {F} must be divisible by num_directions")
        lens = np.full(B, T, dtype=np.intp) if lengths is None else _checks.lengths(lengths, T, B)
        valid = np.arange(T)[:, None] < lens  # (T, B)
        empty = lens == 0
        rows = np.arange(B)
        if self.mode == "mean":
            total = np.where(valid[..., None], y, 0.0).sum(axis=0)  # (B, F)
            pooled = total / np.maximum(lens, 1)[:, None].astype(y.dtype)
            return pooled.astype(y.dtype, copy=False), PoolingCache(y.shape, lens, None)
        if self.mode == "last":
            index = np.repeat(np.maximum(lens - 1, 0)[:, None], F, axis=1)  # (B, F)
            if self.num_directions == 2:
                index[:, F // 2 :] = 0  # the reverse direction ends at step 0
        else:
            masked = np.where(valid[..., None], y, -np.inf)
            index = np.argmax(masked, axis=0)  # (B, F)
        pooled = y[index, rows[:, None], np.arange(F)]  # (B, F)
        pooled[empty] = 0.0
        return pooled, PoolingCache(y.shape, lens, index)

    def backward(self, dpooled: np.ndarray, cache: PoolingCache) -> tuple[np.ndarray, dict]:
        """dL/d(pooled) (B, F) -> (dL/dy (T, B, F), {})."""
        T, B, F = cache.shape
        dpooled = np.asarray(dpooled)
        if dpooled.shape != (B, F):
            raise ValueError(f"dpooled must have shape ({B}, {F}), got {dpooled.shape}")
        dy = np.zeros((T, B, F), dtype=dpooled.dtype)
        lens = cache.lengths
        if self.mode == "mean":
            valid = (np.arange(T)[:, None] < lens)[..., None]  # (T, B, 1)
            share = dpooled / np.maximum(lens, 1)[:, None].astype(dpooled.dtype)
            dy[...] = np.where(valid, share, 0.0)
        else:
            keep = np.where((lens == 0)[:, None], 0.0, dpooled)
            dy[cache.index, np.arange(B)[:, None], np.arange(F)] = keep
        return dy, {}

    def __repr__(self) -> str:
        return f"Pooling({self.mode!r}, num_directions={self.num_directions})"
