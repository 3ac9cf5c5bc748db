r"""The gated recurrent unit (Cho et al. 2014) in both of its forms, gates fused in the order
r, z, n as in PyTorch.

Forward, for t = 1 .. T:

.. math::

    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
        && \text{reset="after" (cuDNN, PyTorch, Keras reset\_after=True)} \\
    n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
        && \text{reset="before" (Cho et al. 2014, the textbook form)} \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

**The other way of writing the update.** Many texts (Chung et al. 2014, the d2l book, Keras'
documentation) write :math:`h_t = (1 - z'_t) \odot h_{t-1} + z'_t \odot \tilde h_t`: there the
update gate :math:`z'` weighs the *candidate* :math:`\tilde h = n`. The two are the same model
with :math:`z' = 1 - z`; since :math:`1 - \sigma(a) = \sigma(-a)`, a model written that way maps
onto this one by negating the z rows of both weight matrices and both biases
(``W[H:2H] *= -1``, ``b[H:2H] *= -1``).

Backward (BPTT). :math:`\delta h_t` is the total gradient reaching :math:`h_t`
(:math:`\delta h_T` = dL/d(final state), plus ``dhs[t]``, for a layer dL/dy_t, at every step);
:math:`\delta a^{(k)}_t` is the gradient of gate k's pre-activation. For t = T .. 1, both forms:

.. math::

    \delta a^{(n)}_t &= \delta h_t \odot (1 - z_t) \odot (1 - n_t^2), \qquad
    \delta a^{(z)}_t = \delta h_t \odot (h_{t-1} - n_t) \odot z_t (1 - z_t)

reset="after", with :math:`\hat n_t = W_{hn} h_{t-1} + b_{hn}` kept from the forward pass:

.. math::

    \delta a^{(r)}_t &= \delta a^{(n)}_t \odot \hat n_t \odot r_t (1 - r_t) \\
    \delta \hat g_t &= [\delta a^{(r)}_t; \delta a^{(z)}_t; \delta a^{(n)}_t \odot r_t]
        \quad \text{(gradient of } W_{hh} h_{t-1} + b_{hh}\text{, 3H)} \\
    \delta h_{t-1} &= \mathrm{dhs}_{t-1} + \delta h_t \odot z_t + W_{hh}^\top \delta \hat g_t

reset="before", with :math:`\rho_t = W_{hn}^\top \delta a^{(n)}_t`, the gradient of
:math:`r_t \odot h_{t-1}`:

.. math::

    \delta a^{(r)}_t &= \rho_t \odot h_{t-1} \odot r_t (1 - r_t) \\
    \delta h_{t-1} &= \mathrm{dhs}_{t-1} + \delta h_t \odot z_t + \rho_t \odot r_t
        + W_{hr}^\top \delta a^{(r)}_t + W_{hz}^\top \delta a^{(z)}_t

After the loop, with :math:`\delta a_t = [\delta a^{(r)}_t; \delta a^{(z)}_t; \delta a^{(n)}_t]`:
:math:`\partial L/\partial x_t = W_{ih}^\top \delta a_t`,
:math:`\partial L/\partial W_{ih} = \sum_t \delta a_t x_t^\top`,
:math:`\partial L/\partial b_{ih} = \sum_t \delta a_t`; and for the recurrent parameters
:math:`\partial L/\partial W_{hh} = \sum_t \delta\hat g_t h_{t-1}^\top`,
:math:`\partial L/\partial b_{hh} = \sum_t \delta\hat g_t` (after), or
:math:`\partial L/\partial W_{h\{r,z\}} = \sum_t \delta a^{(r,z)}_t h_{t-1}^\top`,
:math:`\partial L/\partial W_{hn} = \sum_t \delta a^{(n)}_t (r_t \odot h_{t-1})^\top`,
:math:`\partial L/\partial b_{hh} = \sum_t \delta a_t` (before).

Shapes: T = time steps, B = batch, D = input size, H = hidden size.
Parameters (PyTorch layout, rows in gate order r, z, n): W_ih (3H, D), W_hh (3H, H),
b_ih (3H,), b_hh (3H,).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.cells.base import (
    Cell,
    CellGrads,
    CellParams,
    Recurrence,
    input_grads,
    outer_sum,
    previous_states,
    project,
    sigmoid,
)

RESETS = ("after", "before")


class GRUGates(NamedTuple):
    """Where each gate sits in the fused 3H axis; ``rz`` spans the two sigmoid gates."""

    r: slice
    z: slice
    n: slice
    rz: slice

    @classmethod
    def of(cls, H: int) -> GRUGates:
        return cls(slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(0, 2 * H))


class GRUCache(NamedTuple):
    """What the backward pass of :class:`GRUCell` needs; nothing is recomputed."""

    x: np.ndarray  # (T, B, D) inputs
    h0: np.ndarray  # (B, H) initial state
    hs: np.ndarray  # (T, B, H) state after each step
    gates: np.ndarray  # (T, B, 3H) activated gates r, z, n
    hn: np.ndarray | None  # (T, B, H) W_hn h_{t-1} + b_hn (reset="after" only)
    params: CellParams
    mask: np.ndarray | None  # (T, B, 1) valid steps, None when all are valid


def _blend(h: np.ndarray, n: np.ndarray, z: np.ndarray, h_prev: np.ndarray) -> None:
    """h = (1 - z) * n + z * h_prev, written into ``h``."""
    np.subtract(h_prev, n, out=h)
    h *= z
    h += n


def gru_after_recurrence_forward(
    xg: np.ndarray,
    h0: np.ndarray,
    W_hh: np.ndarray,
    b_hh: np.ndarray | None,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recurrence of the reset-after GRU.

    Args:
        xg: projected inputs x_t W_ih^T + b_ih (T, B, 3H); b_hh is *not* folded in, because
            b_hn sits inside the reset product.
        h0: initial state (B, H).
        W_hh: recurrent weights (3H, H).
        b_hh: recurrent bias (3H,) or None.
        mask: (T, B, 1) boolean or None; False carries the state through the step.

    Returns:
        ``(hs, gates, hn)``: states (T, B, H), activated gates r, z, n (T, B, 3H) and
        W_hn h_{t-1} + b_hn (T, B, H).
    """
    T, B, G = xg.shape
    H = G // 3
    s = GRUGates.of(H)
    hs = np.empty((T, B, H), dtype=xg.dtype)
    hn = np.empty((T, B, H), dtype=xg.dtype)
    gates = np.empty_like(xg)  # (T, B, 3H)
    W_hhT = W_hh.T
    h_prev = h0
    for t in range(T):
        gh = h_prev @ W_hhT  # (B, 3H)
        if b_hh is not None:
            gh += b_hh
        a = gates[t]
        np.add(xg[t, :, s.rz], gh[:, s.rz], out=a[:, s.rz])
        sigmoid(a[:, s.rz], out=a[:, s.rz])
        hn[t] = gh[:, s.n]
        np.multiply(a[:, s.r], gh[:, s.n], out=a[:, s.n])
        a[:, s.n] += xg[t, :, s.n]
        np.tanh(a[:, s.n], out=a[:, s.n])
        h = hs[t]
        _blend(h, a[:, s.n], a[:, s.z], h_prev)
        if mask is not None:
            np.copyto(h, h_prev, where=~mask[t])
        h_prev = h
    return hs, gates, hn


def gru_after_recurrence_backward(
    dhs: np.ndarray,
    dh_T: np.ndarray,
    h0: np.ndarray,
    hs: np.ndarray,
    gates: np.ndarray,
    hn: np.ndarray,
    W_hh: np.ndarray,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BPTT through :func:`gru_after_recurrence_forward`.

    Returns:
        ``(da, dgh, dh0)``: dL/d(x W_ih^T + b_ih) and dL/d(h W_hh^T + b_hh), both (T, B, 3H) and
        zero at masked steps, and dL/dh0 (B, H).
    """
    T, _, H = hs.shape
    s = GRUGates.of(H)
    da_all = np.empty_like(gates)  # (T, B, 3H)
    dgh_all = np.empty_like(gates)  # (T, B, 3H)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        g = gates[t]
        r, z, n = g[:, s.r], g[:, s.z], g[:, s.n]
        h_prev = hs[t - 1] if t > 0 else h0
        dh = dh_next + dhs[t]  # (B, H)
        da, dgh = da_all[t], dgh_all[t]
        np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da[:, s.n])
        np.multiply(dh * (h_prev - n), z * (1.0 - z), out=da[:, s.z])
        np.multiply(da[:, s.n] * hn[t], r * (1.0 - r), out=da[:, s.r])
        dgh[:, s.rz] = da[:, s.rz]
        np.multiply(da[:, s.n], r, out=dgh[:, s.n])
        if mask is not None:
            m = mask[t]
            da *= m
            dgh *= m
            dh_next = np.where(m, dgh @ W_hh + dh * z, dh)
        else:
            dh_next = dgh @ W_hh + dh * z
    return da_all, dgh_all, dh_next


def gru_before_recurrence_forward(
    xg: np.ndarray, h0: np.ndarray, W_hh: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The recurrence of the reset-before (textbook) GRU.

    Args:
        xg: projected inputs with both biases folded in, x_t W_ih^T + b_ih + b_hh (T, B, 3H):
            b_hn sits outside the product W_hn (r * h), so it folds in like the others.
        h0: initial state (B, H).
        W_hh: recurrent weights (3H, H).
        mask: (T, B, 1) boolean or None; False carries the state through the step.

    Returns:
        ``(hs, gates)``: states (T, B, H) and activated gates r, z, n (T, B, 3H).
    """
    T, B, G = xg.shape
    H = G // 3
    s = GRUGates.of(H)
    hs = np.empty((T, B, H), dtype=xg.dtype)
    gates = np.empty_like(xg)  # (T, B, 3H)
    W_rzT = W_hh[s.rz].T  # (H, 2H)
    W_nT = W_hh[s.n].T  # (H, H)
    h_prev = h0
    for t in range(T):
        a = gates[t]
        np.add(xg[t, :, s.rz], h_prev @ W_rzT, out=a[:, s.rz])
        sigmoid(a[:, s.rz], out=a[:, s.rz])
        np.add(xg[t, :, s.n], (a[:, s.r] * h_prev) @ W_nT, out=a[:, s.n])
        np.tanh(a[:, s.n], out=a[:, s.n])
        h = hs[t]
        _blend(h, a[:, s.n], a[:, s.z], h_prev)
        if mask is not None:
            np.copyto(h, h_prev, where=~mask[t])
        h_prev = h
    return hs, gates


def gru_before_recurrence_backward(
    dhs: np.ndarray,
    dh_T: np.ndarray,
    h0: np.ndarray,
    hs: np.ndarray,
    gates: np.ndarray,
    W_hh: np.ndarray,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """BPTT through :func:`gru_before_recurrence_forward`.

    Returns:
        ``(da, dh0)``: dL/d(gate pre-activations) (T, B, 3H), zero at masked steps, and dL/dh0.
    """
    T, _, H = hs.shape
    s = GRUGates.of(H)
    W_rz = W_hh[s.rz]  # (2H, H)
    W_n = W_hh[s.n]  # (H, H)
    da_all = np.empty_like(gates)  # (T, B, 3H)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        g = gates[t]
        r, z, n = g[:, s.r], g[:, s.z], g[:, s.n]
        h_prev = hs[t - 1] if t > 0 else h0
        dh = dh_next + dhs[t]  # (B, H)
        da = da_all[t]
        np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da[:, s.n])
        np.multiply(dh * (h_prev - n), z * (1.0 - z), out=da[:, s.z])
        drh = da[:, s.n] @ W_n  # (B, H) gradient of r * h_prev
        np.multiply(drh * h_prev, r * (1.0 - r), out=da[:, s.r])
        dh_prev = da[:, s.rz] @ W_rz + drh * r + dh * z
        if mask is not None:
            m = mask[t]
            da *= m
            dh_prev = np.where(m, dh_prev, dh)
        dh_next = dh_prev
    return da_all, dh_next


#: The NumPy reference loops of each form, by ``reset``; the two forms have different signatures.
RECURRENCES = {
    "after": Recurrence(gru_after_recurrence_forward, gru_after_recurrence_backward),
    "before": Recurrence(gru_before_recurrence_forward, gru_before_recurrence_backward),
}


class GRUCell(Cell):
    r"""GRU cell with the reset gate applied after (default) or before the recurrent product.

    ``reset="after"`` is the cuDNN / PyTorch / Keras ``reset_after=True`` form,
    ``reset="before"`` the form of Cho et al. (2014). Both update
    :math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}`. The equations of the forward and
    backward passes, and how they map onto :math:`h_t = (1 - z) h_{t-1} + z \tilde h_t`, are in
    the docstring of this module, :mod:`rnnkit.cells.gru`. The layer is :class:`rnnkit.GRU`.

    Args:
        reset: ``"after"`` (default) or ``"before"``.
        recurrence: the time loops, by default ``RECURRENCES[reset]`` (NumPy); see
            :class:`~rnnkit.cells.base.Recurrence`.

    Example:
        >>> import numpy as np
        >>> from rnnkit.cells import CellParams, GRUCell
        >>> rng = np.random.default_rng(0)
        >>> p = CellParams(*(rng.normal(size=s) for s in [(9, 2), (9, 3), (9,), (9,)]))
        >>> x, h0 = rng.normal(size=(5, 4, 2)), (np.zeros((4, 3)),)
        >>> after, _, _ = GRUCell("after").forward(x, h0, p)
        >>> before, _, _ = GRUCell("before").forward(x, h0, p)
        >>> after.shape, bool(np.allclose(after, before))  # two different models
        ((5, 4, 3), False)
    """

    num_gates = 3
    state_names = ("h",)

    def __init__(self, reset: str = "after", recurrence: Recurrence | None = None) -> None:
        if reset not in RESETS:
            raise ValueError(f"reset must be 'after' or 'before', got {reset!r}")
        self.reset = reset
        self.recurrence = RECURRENCES[reset] if recurrence is None else recurrence

    def forward(self, x, state0, params, mask=None):
        (h0,) = state0
        if self.reset == "after":
            xg = project(x, params.W_ih, params.b_ih)  # (T, B, 3H)
            hs, gates, hn = self.recurrence.forward(xg, h0, params.W_hh, params.b_hh, mask)
        else:
            b = None if params.b_ih is None else params.b_ih + params.b_hh
            xg = project(x, params.W_ih, b)  # (T, B, 3H)
            hs, gates = self.recurrence.forward(xg, h0, params.W_hh, mask)
            hn = None
        return hs, (hs[-1],), GRUCache(x, h0, hs, gates, hn, params, mask)

    def backward(self, dhs, dstate_T, cache):
        (dh_T,) = dstate_T
        p = cache.params
        has_bias = p.b_ih is not None
        h_prev = previous_states(cache.h0, cache.hs)  # (T, B, H)
        if self.reset == "after":
            da, dgh, dh0 = self.recurrence.backward(
                dhs, dh_T, cache.h0, cache.hs, cache.gates, cache.hn, p.W_hh, cache.mask
            )
            dW_hh = outer_sum(dgh, h_prev)  # (3H, H)
            db_hh = dgh.sum(axis=(0, 1)) if has_bias else None
        else:
            da, dh0 = self.recurrence.backward(
                dhs, dh_T, cache.h0, cache.hs, cache.gates, p.W_hh, cache.mask
            )
            s = GRUGates.of(cache.hs.shape[-1])
            dW_hh = np.concatenate(
                [
                    outer_sum(da[..., s.rz], h_prev),  # (2H, H)
                    outer_sum(da[..., s.n], cache.gates[..., s.r] * h_prev),  # (H, H)
                ]
            )
            db_hh = da.sum(axis=(0, 1)) if has_bias else None
        dx, dW_ih, db_ih = input_grads(da, cache.x, p.W_ih, has_bias)
        return dx, (dh0,), CellGrads(dW_ih, dW_hh, db_ih, db_hh)

    def __repr__(self) -> str:
        return f"GRUCell(reset={self.reset!r})"
