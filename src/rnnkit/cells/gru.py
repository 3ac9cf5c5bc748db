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

from rnnkit import _checks
from rnnkit.cells.base import CellParams, StepCell, StepEquations, outer_sum, sigmoid

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


class GRUAfterPrepared(NamedTuple):
    W_hhT: np.ndarray  # (H, 3H)
    W_hh: np.ndarray  # (3H, H)
    b_hh: np.ndarray | None  # (3H,): stays in the loop, b_hn sits inside the reset product
    gates: GRUGates


class GRUBeforePrepared(NamedTuple):
    W_rzT: np.ndarray  # (H, 2H)
    W_nT: np.ndarray  # (H, H)
    W_rz: np.ndarray  # (2H, H)
    W_n: np.ndarray  # (H, H)
    gates: GRUGates


def _blend(h: np.ndarray, n: np.ndarray, z: np.ndarray, h_prev: np.ndarray) -> None:
    """h = (1 - z) * n + z * h_prev, written into ``h``."""
    np.subtract(h_prev, n, out=h)
    h *= z
    h += n


def gru_after_step_forward(xg_t, prev, h_in, P: GRUAfterPrepared, out_states, out_saved) -> None:
    """Reset-after step; saves the activated gates r, z, n (B, 3H) and W_hn h_in + b_hn (B, H).
    ``xg_t`` holds x W_ih^T + b_ih only."""
    s = P.gates
    a, hn = out_saved
    gh = h_in @ P.W_hhT  # (B, 3H)
    if P.b_hh is not None:
        gh += P.b_hh
    np.add(xg_t[:, s.rz], gh[:, s.rz], out=a[:, s.rz])
    sigmoid(a[:, s.rz], out=a[:, s.rz])
    hn[...] = gh[:, s.n]
    np.multiply(a[:, s.r], hn, out=a[:, s.n])
    a[:, s.n] += xg_t[:, s.n]
    np.tanh(a[:, s.n], out=a[:, s.n])
    _blend(out_states[0], a[:, s.n], a[:, s.z], prev[0])


def gru_after_step_backward(d_cand, prev, h_in, saved_t, P: GRUAfterPrepared):
    s = P.gates
    (dh,) = d_cand
    a, hn = saved_t
    r, z, n = a[:, s.r], a[:, s.z], a[:, s.n]
    da = np.empty_like(a)  # (B, 3H)
    np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da[:, s.n])
    np.multiply(dh * (prev[0] - n), z * (1.0 - z), out=da[:, s.z])
    np.multiply(da[:, s.n] * hn, r * (1.0 - r), out=da[:, s.r])
    dgh = da.copy()
    dgh[:, s.n] *= r
    return da, dgh, dgh @ P.W_hh, (dh * z,)


def gru_before_step_forward(xg_t, prev, h_in, P: GRUBeforePrepared, out_states, out_saved) -> None:
    """Reset-before step; saves the activated gates r, z, n (B, 3H). ``xg_t`` holds both
    biases (b_hn sits outside the product W_hn (r * h), so it folds in like the others)."""
    s = P.gates
    (a,) = out_saved
    np.add(xg_t[:, s.rz], h_in @ P.W_rzT, out=a[:, s.rz])
    sigmoid(a[:, s.rz], out=a[:, s.rz])
    np.add(xg_t[:, s.n], (a[:, s.r] * h_in) @ P.W_nT, out=a[:, s.n])
    np.tanh(a[:, s.n], out=a[:, s.n])
    _blend(out_states[0], a[:, s.n], a[:, s.z], prev[0])


def gru_before_step_backward(d_cand, prev, h_in, saved_t, P: GRUBeforePrepared):
    s = P.gates
    (dh,) = d_cand
    (a,) = saved_t
    r, z, n = a[:, s.r], a[:, s.z], a[:, s.n]
    da = np.empty_like(a)  # (B, 3H)
    np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da[:, s.n])
    np.multiply(dh * (prev[0] - n), z * (1.0 - z), out=da[:, s.z])
    drh = da[:, s.n] @ P.W_n  # (B, H): the gradient of r * h_in
    np.multiply(drh * h_in, r * (1.0 - r), out=da[:, s.r])
    return da, None, da[:, s.rz] @ P.W_rz + drh * r, (dh * z,)


#: The step equations of the two forms, by ``reset``: both save the activated gates (3H), the
#: reset-after form also W_hn h + b_hn (H).
EQUATIONS = {
    "after": StepEquations(gru_after_step_forward, gru_after_step_backward, saved=(3, 1)),
    "before": StepEquations(gru_before_step_forward, gru_before_step_backward, saved=(3,)),
}


class GRUCell(StepCell):
    r"""GRU cell with the reset gate applied after (default) or before the recurrent product.

    ``reset="after"`` is the cuDNN / PyTorch / Keras ``reset_after=True`` form,
    ``reset="before"`` the form of Cho et al. (2014). Both update
    :math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}`. The equations of the forward and
    backward passes, and how they map onto :math:`h_t = (1 - z) h_{t-1} + z \tilde h_t`, are in
    the docstring of this module, :mod:`rnnkit.cells.gru`. The layer is :class:`rnnkit.GRU`.

    Args:
        reset: ``"after"`` (default) or ``"before"``.

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

    name = "gru"
    num_gates = 3
    state_names = ("h",)

    def __init__(self, reset: str = "after") -> None:
        self.reset = _checks.choice("reset", reset, RESETS)

    @property
    def equations(self) -> StepEquations:
        return EQUATIONS[self.reset]

    @property
    def kernel(self) -> str:
        return f"gru_{self.reset}"

    def projection_bias(self, params: CellParams) -> np.ndarray | None:
        if self.reset == "after":
            return params.b_ih  # b_hh stays in the loop: b_hn is inside the reset product
        return super().projection_bias(params)

    def prepare(self, params: CellParams):
        H = params.W_hh.shape[1]
        s = GRUGates.of(H)
        if self.reset == "after":
            return GRUAfterPrepared(params.W_hh.T, params.W_hh, params.b_hh, s)
        W_rz, W_n = params.W_hh[s.rz], params.W_hh[s.n]
        return GRUBeforePrepared(W_rz.T, W_n.T, W_rz, W_n, s)

    def recurrent_grads(self, dgh, h_in, saved, has_bias, matmul):
        if self.reset == "after":
            return super().recurrent_grads(dgh, h_in, saved, has_bias, matmul)
        s = GRUGates.of(h_in.shape[-1])
        r = saved[0][..., s.r]  # (T, B, H)
        mm = matmul
        db_hh = np.empty(dgh.shape[-1], dtype=dgh.dtype) if has_bias else None  # (3H,)
        dW_hh = np.concatenate(
            [
                outer_sum(dgh[..., s.rz], h_in, mm, None if db_hh is None else db_hh[s.rz]),
                outer_sum(dgh[..., s.n], r * h_in, mm, None if db_hh is None else db_hh[s.n]),
            ]
        )  # (3H, H): the n rows multiply r * h_in
        return dW_hh, db_hh
