r"""The affine output layer, applied to the last axis: per time step, or to pooled features.

Forward and backward, for x of shape (..., I) and dL/dy of shape (..., O):

.. math::

    y = x W^\top + b, \qquad
    \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} W, \qquad
    \frac{\partial L}{\partial W} = \sum \left(\frac{\partial L}{\partial y}\right)^\top x, \qquad
    \frac{\partial L}{\partial b} = \sum \frac{\partial L}{\partial y}

with the sums over every leading position (time steps and batch rows). A layer applied one
step at a time (a decoder's combination of its state and context) can defer the parameter
gradients: ``backward(dy, cache, defer=True)`` returns the pair it would make them from, and
:meth:`Linear.weight_grads` makes them for any number of calls in one matrix product.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.nn.module import Module
from rnnkit.runtime import kernels


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., I) the input, kept for dL/dW
    packed: LinearPacked | None = None  # the weight packed for the backward pass, or None


class LinearPacked(NamedTuple):
    """The weight packed once (:meth:`Linear.packed`) for the products of many calls with an
    unchanged weight (a decoder's combination, one step at a time): W^T for ``x W^T`` and W for
    ``dL/dy W`` (:func:`rnnkit.runtime.kernels.gemm.pack`); the same bits as without."""

    W_t: Any  # gemm.Packed of W^T
    W: Any  # gemm.Packed of W, or None: forward only


class LinearWork(NamedTuple):
    """What a deferred :meth:`Linear.backward` leaves for :meth:`Linear.weight_grads`."""

    dy: np.ndarray  # (..., O)
    x: np.ndarray  # (..., I)


class Linear(Module):
    """``y = x W^T + b`` over the last axis; PyTorch's names (``weight`` (O, I), ``bias`` (O,)).

    Args:
        in_features: I.
        out_features: O.
        bias: whether there is a bias.
        dtype: ``np.float32`` (default) or ``np.float64``.
        seed: int, Generator or None. PyTorch's initialisation: weight and bias from
            U(-1/sqrt(I), 1/sqrt(I)).

    Example:
        >>> import numpy as np, rnnkit
        >>> head = rnnkit.Linear(4, 3, dtype=np.float64, seed=0)
        >>> y, cache = head.forward(np.ones((5, 2, 4)))  # every step of a (T, B, I) batch
        >>> dx, grads = head.backward(np.ones_like(y), cache)
        >>> y.shape, dx.shape, grads["weight"].shape
        ((5, 2, 3), (5, 2, 4), (3, 4))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        seed: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _checks.positive_int("in_features", in_features)
        self.out_features = _checks.positive_int("out_features", out_features)
        self.bias = _checks.boolean("bias", bias)
        self.dtype = _checks.float_dtype(dtype)
        limits.check_parameters(
            f"Linear({self.in_features}, {self.out_features})",
            self.count_parameters(self.in_features, self.out_features, self.bias),
            self.dtype.itemsize,
        )
        rng = _checks.rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        shape = (self.out_features, self.in_features)
        self._params["weight"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        if self.bias:
            self._params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)

    @staticmethod
    def count_parameters(in_features: int, out_features: int, bias: bool = True) -> int:
        """The number of parameters of a Linear of these sizes: ``O*I`` (+ ``O``), a Python int."""
        return int(out_features) * (int(in_features) + (1 if bias else 0))

    def packed(self, backward: bool = False) -> LinearPacked | None:
        """The weight packed for the products of :meth:`forward` (and :meth:`apply`) or, with
        ``backward``, of both passes, for their ``packed``: made once for many calls with
        an unchanged weight (pack again after it changes). None when the products run on
        NumPy (:func:`rnnkit.runtime.kernels.matrix_product` is None)."""
        if kernels.matrix_product() is None:
            return None
        from rnnkit.runtime.kernels import gemm  # the extension is there

        W = self._params["weight"]
        return LinearPacked(gemm.pack(W, trans_b=True), gemm.pack(W) if backward else None)

    def apply(self, x: np.ndarray, packed: LinearPacked | None = None) -> np.ndarray:
        """``x W^T + b`` (..., O) with no cache: inference, for example one streaming step;
        ``packed``: optional, :meth:`packed`."""
        W_t = None if packed is None else packed.W_t
        return affine(x, self._params["weight"], self._params.get("bias"), W_t)

    def forward(
        self, x: np.ndarray, packed: LinearPacked | None = None
    ) -> tuple[np.ndarray, LinearCache]:
        """``x`` (..., I) -> ``y`` (..., O); ``packed``: optional, :meth:`packed` of the current
        weight (also read by :meth:`backward` when packed with ``backward=True``)."""
        x = _checks.features("x", x, self.in_features, self.dtype)
        limits.check_memory(
            lambda: f"the output of {self!r} for x of shape {x.shape}",
            limits.array_bytes((*x.shape[:-1], self.out_features), self.dtype.itemsize),
        )
        W_t = None if packed is None else packed.W_t
        y = affine(x, self._params["weight"], self._params.get("bias"), W_t)
        return y, LinearCache(x, packed)

    def backward(
        self, dy: np.ndarray, cache: LinearCache, *, defer: bool = False
    ) -> tuple[np.ndarray, Any]:
        """dL/dy (..., O) -> (dL/dx (..., I), {"weight": dL/dW, "bias": dL/db}); with
        ``defer=True`` a :class:`LinearWork` in place of the gradients (see
        :meth:`weight_grads`)."""
        shape = (*cache.x.shape[:-1], self.out_features)
        dy = _checks.array("dy", dy, shape, self.dtype)
        W = self._params["weight"]
        mm = kernels.matrix_product()
        if mm is None:
            dx = dy @ W
        else:
            if cache.packed is not None and cache.packed.W is not None:
                W = cache.packed.W  # packed once for many calls
            dx = mm(dy.reshape(-1, self.out_features), W).reshape(cache.x.shape)
        if _checks.boolean("defer", defer):
            return dx, LinearWork(dy, cache.x)
        return dx, self.weight_grads([LinearWork(dy, cache.x)])

    def weight_grads(self, works: list[LinearWork]) -> dict[str, np.ndarray]:
        """The parameter gradients of deferred :meth:`backward` calls, summed: one matrix
        product over the positions of all of them."""
        if not works:
            raise ValueError("weight_grads needs at least one LinearWork")
        O, I = self.out_features, self.in_features
        dy2 = np.concatenate([w.dy.reshape(-1, O) for w in works])  # (N, O)
        x2 = np.concatenate([w.x.reshape(-1, I) for w in works])  # (N, I)
        mm = kernels.matrix_product()
        if mm is None:
            grads = {"weight": dy2.T @ x2}  # (O, I)
            if self.bias:
                grads["bias"] = dy2.sum(axis=0)  # (O,)
            return grads
        db = np.empty(O, dtype=dy2.dtype) if self.bias else None  # summed as dW is made
        grads = {"weight": mm(dy2, x2, trans_a=True, row_sums=db)}  # (O, I)
        if db is not None:
            grads["bias"] = db
        return grads

    def __repr__(self) -> str:
        return (
            f"Linear({self.in_features}, {self.out_features}"
            f"{'' if self.bias else ', bias=False'}, dtype={self.dtype.name})"
        )


def affine(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, W_t: Any = None) -> np.ndarray:
    """``x W^T + b`` over the last axis: x (..., I), W (O, I), b (O,) or None -> (..., O), on
    :func:`rnnkit.runtime.kernels.matrix_product` (NumPy's ``@`` without it); ``W_t``: optional,
    W^T packed for it (:func:`rnnkit.runtime.kernels.gemm.pack`), read in place of W."""
    mm = kernels.matrix_product()  # the threaded compiled product, or None: NumPy
    if mm is None:
        y = x @ W.T  # (..., O)
        if b is not None:
            y += b
        return y
    if W_t is not None:
        y = mm(x.reshape(-1, W.shape[1]), W_t, bias=b)  # (N, O)
    else:
        y = mm(x.reshape(-1, W.shape[1]), W, trans_b=True, bias=b)  # (N, O)
    return y.reshape(*x.shape[:-1], W.shape[0])


def affine_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of :func:`affine` but the bias's: ``dL/dx = dL/dy W`` (..., I) and
    ``dL/dW = sum dL/dy^T x`` (O, I) over every leading position, from dy (..., O) and x
    (..., I), on :func:`rnnkit.runtime.kernels.matrix_product` (NumPy's ``@`` without it)."""
    O, I = W.shape
    dy2, x2 = dy.reshape(-1, O), x.reshape(-1, I)
    mm = kernels.matrix_product()
    if mm is None:
        return dy @ W, dy2.T @ x2
    return mm(dy2, W).reshape(x.shape), mm(dy2, x2, trans_a=True)
