"""The implementations benchmarks/suite.py compares, behind one interface.

Each implementation is set up from the parameters of an rnnkit layer (PyTorch's names and
layout, gates LSTM i|f|g|o, GRU r|z|n reset-after) and runs one problem, a single-layer
unidirectional RNN (tanh), LSTM or GRU over x (T, B, D) from a zero state:

- ``rnnkit``: the layer, with its default time loops (compiled where the extension has the cell);
- ``numpy-ref``: the same layer with the NumPy reference loops (``rnnkit.cells.timeloop``);
- ``torch``: ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (and ``RNNCell`` / ... for streaming);
- ``jax``: the same equations written with ``lax.scan``, jit-compiled ahead of the timing,
  gradients by ``jax.vjp``;
- ``thinc``: ``thinc.api.LSTM`` (LSTM only; float32 only).

A :class:`Runner` does one training step (forward, then backward from the upstream gradient R
to dL/dx and every parameter gradient) or one inference pass (forward only), and converts what
it returned to NumPy for the checks. A :class:`Streamer` runs single steps at batch 1.

The peers are imported only when first used, so that a process measuring one of them (the
memory measurement) loads nothing else. :class:`Unavailable` says why one cannot run.

Shapes: T = time steps, B = batch, D = input size, H = hidden size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

import common

#: Every implementation of the size matrix, rnnkit first (the one the others are checked against).
IMPLS = ("rnnkit", "torch", "numpy-ref", "jax", "thinc")
#: The implementations of the streaming benchmark.
STREAM_IMPLS = ("rnnkit", "torch", "jax")
CELLS = ("RNN", "LSTM", "GRU")
F64_RTOL = 1e-9  # float64 agreement, relative to the magnitude of rnnkit's result
F32_RTOL = 1e-4  # the same for an implementation checked in float32 (thinc)
F32_TIMED_RTOL = 1e-3  # float32 agreement at the timed sizes (reported, not enforced)
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class Unavailable(Exception):
    """An implementation cannot run here; the message says why ("not installed", ...)."""


class Problem(NamedTuple):
    cell: str  # one of CELLS
    T: int
    B: int
    D: int
    H: int


class Result(NamedTuple):
    """What a run returned, as NumPy arrays; None / empty where the implementation has none."""

    y: np.ndarray  # (T, B, H)
    state: tuple[np.ndarray, ...]  # final state parts, each (B, H)
    dx: np.ndarray | None  # (T, B, D), training only
    grads: dict[str, np.ndarray]  # PyTorch names, training only


def flops(problem: Problem, mode: str) -> float:
    """Matrix-multiply FLOPs: forward 2·T·B·G·(D+H), backward twice that."""
    T, B, D, H = problem.T, problem.B, problem.D, problem.H
    forward = 2.0 * T * B * GATES[problem.cell] * H * (D + H)
    return 3 * forward if mode == "train" else forward


def result_bytes(problem: Problem) -> int:
    """Bytes of what a training step returns (float32): y, final state, dx, gradients."""
    T, B, D, H = problem.T, problem.B, problem.D, problem.H
    G = GATES[problem.cell] * H
    states = 2 if problem.cell == "LSTM" else 1
    return 4 * (T * B * H + states * B * H + T * B * D + G * (D + H) + 2 * G)


# -- rnnkit --------------------------------------------------------------------------------------


def rnnkit_layer(cell: str, D: int, H: int, dtype: Any, seed: int = 0) -> Any:
    """A fresh single-layer rnnkit layer of ``cell`` (RNN tanh, LSTM, GRU reset-after)."""
    import rnnkit

    kwargs = {"RNN": {"nonlinearity": "tanh"}, "LSTM": {}, "GRU": {"reset": "after"}}[cell]
    return getattr(rnnkit, cell)(D, H, dtype=dtype, seed=seed, **kwargs)


def loops_of(layer: Any) -> str:
    """Which time loops a layer runs: ``compiled`` or ``numpy``."""
    return layer.time_loop.name


def _state_tuple(state: Any) -> tuple[Any, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


class Runner:
    """One implementation set up for one problem; ``train()`` and ``infer()`` run it once and
    return its native results, :meth:`numpy` converts them."""

    def train(self) -> Any:
        raise NotImplementedError

    def infer(self) -> Any:
        raise NotImplementedError

    def numpy(self, out: Any) -> Result:
        raise NotImplementedError

    def prepare(self, mode: str) -> None:
        """Whatever must happen before ``mode`` ("train" or "infer") is timed (JAX compiles)."""


class RnnkitRunner(Runner):
    def __init__(self, layer: Any, x: np.ndarray, R: np.ndarray) -> None:
        self.layer, self.x, self.R = layer, x, R

    def train(self) -> Result:
        self.layer.train()
        y, state, cache = self.layer.forward(self.x)
        dx, _, grads = self.layer.backward(self.R, cache)
        return Result(y, _state_tuple(state), dx, grads)

    def infer(self) -> Result:
        # rnnkit's forward has no way to skip its cache: eval mode only turns regularisation off
        self.layer.eval()
        y, state, _ = self.layer.forward(self.x)
        return Result(y, _state_tuple(state), None, {})

    def numpy(self, out: Result) -> Result:
        return Result(out.y, tuple(s[0] for s in out.state), out.dx, out.grads)


def _rnnkit(problem: Problem, params: dict, x: np.ndarray, R: np.ndarray, reference: bool):
    layer = rnnkit_layer(problem.cell, problem.D, problem.H, x.dtype)
    layer.load_state_dict(params)
    if reference:
        layer.time_loop = layer.cell.reference_loop()
    return RnnkitRunner(layer, x, R)


# -- torch ---------------------------------------------------------------------------------------


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable("not installed") from exc
    return torch


class TorchRunner(Runner):
    def __init__(self, problem: Problem, params: dict, x: np.ndarray, R: np.ndarray) -> None:
        torch = self.torch = _import_torch()
        dtype = torch.float64 if x.dtype == np.float64 else torch.float32
        kwargs = {"nonlinearity": "tanh"} if problem.cell == "RNN" else {}
        self.mod = getattr(torch.nn, problem.cell)(problem.D, problem.H, dtype=dtype, **kwargs)
        self.mod.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        self.x, self.R = torch.from_numpy(x), torch.from_numpy(R)

    def train(self) -> Any:
        self.mod.zero_grad(set_to_none=True)  # gradients must not accumulate over the repeats
        xt = self.x.detach().requires_grad_()
        y, state = self.mod(xt)
        (y * self.R).sum().backward()
        return y, state, xt.grad, {k: p.grad for k, p in self.mod.named_parameters()}

    def infer(self) -> Any:
        with self.torch.no_grad():
            y, state = self.mod(self.x)
        return y, state, None, {}

    def numpy(self, out: Any) -> Result:
        y, state, dx, grads = out
        return Result(
            y.detach().numpy(),
            tuple(s.detach()[0].numpy() for s in _state_tuple(state)),
            None if dx is None else dx.numpy(),
            {k: g.numpy() for k, g in grads.items()},
        )


# -- jax -----------------------------------------------------------------------------------------


@functools.cache
def import_jax() -> Any:
    """jax, with float64 enabled (arrays made here always name their dtype)."""
    try:
        import jax
    except ImportError as exc:
        raise Unavailable("not installed") from exc
    jax.config.update("jax_enable_x64", True)
    return jax


def jax_equations(cell: str) -> tuple[Callable, Callable]:
    """``(project, step)`` of a cell in jax.numpy, the equations of rnnkit and PyTorch.

    ``project(p, x)`` is the input projection of every step, x W_ih^T + biases (... , G*H);
    ``step(p, state, xg_t) -> (state, h)`` one step of the recurrence from it.
    """
    jax = import_jax()
    jnp, sigmoid = jax.numpy, jax.nn.sigmoid

    def project(p, x):
        if cell == "GRU":  # b_hn stays inside the reset gate's product
            return x @ p["weight_ih_l0"].T + p["bias_ih_l0"]
        return x @ p["weight_ih_l0"].T + (p["bias_ih_l0"] + p["bias_hh_l0"])

    def rnn_step(p, state, xg_t):
        (h,) = state
        h = jnp.tanh(xg_t + h @ p["weight_hh_l0"].T)
        return (h,), h

    def lstm_step(p, state, xg_t):
        h, c = state
        i, f, g, o = jnp.split(xg_t + h @ p["weight_hh_l0"].T, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
        h = sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def gru_step(p, state, xg_t):
        (h,) = state
        i_r, i_z, i_n = jnp.split(xg_t, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(h @ p["weight_hh_l0"].T + p["bias_hh_l0"], 3, axis=-1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        return (h,), h

    return project, {"RNN": rnn_step, "LSTM": lstm_step, "GRU": gru_step}[cell]


class JaxRunner(Runner):
    """``lax.scan`` over the steps, the whole training step (forward and ``jax.vjp``) or the
    forward alone jit-compiled ahead of time (:meth:`prepare`), so no timed call compiles."""

    def __init__(self, problem: Problem, params: dict, x: np.ndarray, R: np.ndarray) -> None:
        jax = self.jax = import_jax()
        project, step = jax_equations(problem.cell)
        n_states = 2 if problem.cell == "LSTM" else 1

        def forward(p, x):
            zeros = jax.numpy.zeros((x.shape[1], p["weight_hh_l0"].shape[1]), dtype=x.dtype)
            state, ys = jax.lax.scan(functools.partial(step, p), (zeros,) * n_states, project(p, x))
            return ys, state

        def train(p, x, R):
            y, vjp, state = jax.vjp(forward, p, x, has_aux=True)
            dp, dx = vjp(R)
            return y, state, dx, dp

        self.fns = {"train": train, "infer": forward}
        p, x, R = jax.tree_util.tree_map(jax.numpy.asarray, (params, x, R))
        self.args = {"train": (p, x, R), "infer": (p, x)}
        self.compiled: dict[str, Any] = {}

    def prepare(self, mode: str) -> None:
        if mode not in self.compiled:
            self.compiled[mode] = self.jax.jit(self.fns[mode]).lower(*self.args[mode]).compile()

    def _run(self, mode: str) -> Any:
        self.prepare(mode)
        return self.jax.block_until_ready(self.compiled[mode](*self.args[mode]))

    def train(self) -> Any:
        return self._run("train")

    def infer(self) -> Any:
        y, state = self._run("infer")
        return y, state, None, {}

    def numpy(self, out: Any) -> Result:
        y, state, dx, grads = out
        return Result(
            np.asarray(y),
            tuple(np.asarray(s) for s in state),
            None if dx is None else np.asarray(dx),
            {k: np.asarray(g) for k, g in grads.items()},
        )


# -- thinc ---------------------------------------------------------------------------------------

#: thinc's LSTM keeps the four gate blocks in the order f, i, o, g (its ``_transpose_weights``
#: and ``lstm_forward_training``): the PyTorch blocks i|f|g|o in this order make its layout.
THINC_BLOCKS = (1, 0, 3, 2)


def _to_thinc(W: np.ndarray) -> np.ndarray:
    """PyTorch's gate blocks (4H, ...) in thinc's order; the permutation is its own inverse."""
    blocks = np.split(W, 4)
    return np.concatenate([blocks[k] for k in THINC_BLOCKS])


class ThincRunner(Runner):
    """``thinc.api.LSTM`` on its default (NumPy) ops; float32 only. Its biases are folded into
    one (``b_ih + b_hh``) with one gradient; the check compares it with both of rnnkit's.

    Its forward agrees with rnnkit's; its backward (thinc 9.1.1, ``backprop_lstm`` in
    ``numpy_ops.pyx``) does not: it accumulates the weight gradients into copies of the weights,
    skips the first step and takes dW_hh from h_t, so its training step fails the check."""

    def __init__(self, problem: Problem, params: dict, x: np.ndarray, R: np.ndarray) -> None:
        if problem.cell != "LSTM":
            raise Unavailable(f"no {problem.cell} layer")
        try:
            from thinc.api import LSTM
            from thinc.types import Padded
        except ImportError as exc:
            raise Unavailable("not installed") from exc
        T, B, D, H = problem.T, problem.B, problem.D, problem.H
        f32 = functools.partial(np.asarray, dtype=np.float32)
        self.model = LSTM(nO=H, nI=D).initialize()
        flat = [
            _to_thinc(params["weight_ih_l0"]),  # (4H, D)
            _to_thinc(params["bias_ih_l0"]),  # (4H,)
            _to_thinc(params["weight_hh_l0"]),  # (4H, H)
            _to_thinc(params["bias_hh_l0"]),  # (4H,)
        ]
        self.model.set_param("LSTM", f32(np.concatenate([a.ravel() for a in flat])))
        self.shapes = [(4 * H, D), (4 * H,), (4 * H, H), (4 * H,)]

        def padded(a: np.ndarray) -> Any:
            return Padded(
                np.ascontiguousarray(a, dtype=np.float32),
                size_at_t=np.full(T, B, dtype=np.int32),
                lengths=np.full(B, T, dtype=np.int32),
                indices=np.arange(B, dtype=np.int32),
            )

        self.X, self.dY = padded(x), padded(R)

    def train(self) -> Any:
        if self.model.has_grad("LSTM"):
            self.model.get_grad("LSTM").fill(0)  # gradients must not accumulate
        Y, backprop = self.model.begin_update(self.X)
        dX = backprop(self.dY)
        return Y.data, dX.data, self.model.get_grad("LSTM")

    def infer(self) -> Any:
        return self.model.predict(self.X).data, None, None

    def numpy(self, out: Any) -> Result:
        y, dx, flat = out
        grads: dict[str, np.ndarray] = {}
        if flat is not None:
            offsets = np.cumsum([0] + [int(np.prod(s)) for s in self.shapes])
            parts = [
                _to_thinc(flat[a:b].reshape(s))
                for a, b, s in zip(offsets[:-1], offsets[1:], self.shapes)
            ]
            W_ih, b, W_hh, _ = parts  # thinc leaves the gradient of its second bias at zero
            grads = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b, "bias_hh_l0": b}
        return Result(y, (), dx, grads)


# -- the factory ---------------------------------------------------------------------------------


def runner(name: str, problem: Problem, params: dict, x: np.ndarray, R: np.ndarray) -> Runner:
    """Implementation ``name`` set up for ``problem`` with the weights ``params`` (copied in) and
    the input x (T, B, D) and upstream gradient R (T, B, H), in their dtype (thinc: float32).
    Raises :class:`Unavailable`."""
    if name in ("rnnkit", "numpy-ref"):
        return _rnnkit(problem, params, x, R, reference=name == "numpy-ref")
    if name == "torch":
        return TorchRunner(problem, params, x, R)
    if name == "jax":
        return JaxRunner(problem, params, x, R)
    if name == "thinc":
        return ThincRunner(problem, params, x, R)
    raise ValueError(f"name must be one of {', '.join(IMPLS)}, got {name!r}")


def compare(actual: Result, expected: Result) -> tuple[float, str]:
    """The largest relative error over everything both results have, and where it is."""
    pairs: list[tuple[str, Any, Any]] = [("y", actual.y, expected.y)]
    pairs += [(f"state[{i}]", a, b) for i, (a, b) in enumerate(zip(actual.state, expected.state))]
    if actual.dx is not None and expected.dx is not None:
        pairs.append(("dx", actual.dx, expected.dx))
    if actual.grads and expected.grads:
        if actual.grads.keys() != expected.grads.keys():
            return float("inf"), f"gradient names {sorted(actual.grads)}"
        pairs += [(f"d{k}", actual.grads[k], expected.grads[k]) for k in expected.grads]
    errors = [(common.relative_error(a, b), what) for what, a, b in pairs]
    return max(errors)


# -- streaming -----------------------------------------------------------------------------------


class Streamer:
    """Single steps at batch 1 over a cycle of inputs: ``run(n)`` makes n steps carrying the
    state (each step's output ready before the next starts); ``outputs(xs)`` the outputs
    (T, 1, H) of a fresh run over xs (T, 1, D), for the check."""

    def run(self, n: int) -> None:
        raise NotImplementedError

    def outputs(self, xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RnnkitStreamer(Streamer):
    """``layer.step(x_t, state) -> (y_t, state)``, x_t (B, D), the state as ``forward`` takes it
    (None: zeros)."""

    def __init__(self, layer: Any, xs: Sequence[np.ndarray]) -> None:
        if not hasattr(layer, "step"):
            raise Unavailable("not available (no layer.step yet)")
        self.layer, self.xs = layer.eval(), list(xs)
        self.state: Any = None

    def run(self, n: int) -> None:
        step, xs, state, k = self.layer.step, self.xs, self.state, len(self.xs)
        for i in range(n):
            _, state = step(xs[i % k], state)
        self.state = state

    def outputs(self, xs: np.ndarray) -> np.ndarray:
        state, ys = None, []
        for x_t in xs:
            y_t, state = self.layer.step(x_t, state)
            ys.append(y_t)
        return np.stack(ys)


class TorchStreamer(Streamer):
    """``torch.nn.LSTMCell`` / ``GRUCell`` / ``RNNCell`` under ``torch.no_grad()``."""

    def __init__(self, cell: str, params: dict, xs: Sequence[np.ndarray]) -> None:
        torch = self.torch = _import_torch()
        W_ih = params["weight_ih_l0"]
        dtype = torch.float64 if W_ih.dtype == np.float64 else torch.float32
        kwargs = {"nonlinearity": "tanh"} if cell == "RNN" else {}
        H, D = params["weight_hh_l0"].shape[1], W_ih.shape[1]
        self.cell = getattr(torch.nn, f"{cell}Cell")(D, H, dtype=dtype, **kwargs)
        self.cell.load_state_dict(
            {k.removesuffix("_l0"): torch.from_numpy(v) for k, v in params.items()}
        )
        self.lstm = cell == "LSTM"
        self.xs = [torch.from_numpy(x) for x in xs]
        zeros = torch.zeros(1, H, dtype=dtype)
        self.zero_state = (zeros, zeros) if self.lstm else zeros
        self.state = self.zero_state

    def run(self, n: int) -> None:
        cell, xs, state, k = self.cell, self.xs, self.state, len(self.xs)
        with self.torch.no_grad():
            for i in range(n):
                state = cell(xs[i % k], state)
        self.state = state

    def outputs(self, xs: np.ndarray) -> np.ndarray:
        state, ys = self.zero_state, []
        with self.torch.no_grad():
            for x_t in xs:
                state = self.cell(self.torch.from_numpy(x_t), state)
                ys.append((state[0] if self.lstm else state).numpy())
        return np.stack(ys)


class JaxStreamer(Streamer):
    """One jitted step (input projection and recurrence), ``block_until_ready`` on each output."""

    def __init__(self, cell: str, params: dict, xs: Sequence[np.ndarray]) -> None:
        jax = self.jax = import_jax()
        project, step = jax_equations(cell)

        def stream_step(p, x_t, state):
            state, h = step(p, state, project(p, x_t))
            return h, state

        self.params = {k: jax.numpy.asarray(v) for k, v in params.items()}
        self.xs = [jax.numpy.asarray(x) for x in xs]
        H = params["weight_hh_l0"].shape[1]
        zeros = jax.numpy.zeros((1, H), dtype=params["weight_hh_l0"].dtype)
        self.zero_state = (zeros, zeros) if cell == "LSTM" else (zeros,)
        self.step = jax.jit(stream_step).lower(self.params, self.xs[0], self.zero_state).compile()
        self.state = self.zero_state

    def run(self, n: int) -> None:
        step, p, xs, state, k = self.step, self.params, self.xs, self.state, len(self.xs)
        for i in range(n):
            y, state = step(p, xs[i % k], state)
            y.block_until_ready()
        self.state = state

    def outputs(self, xs: np.ndarray) -> np.ndarray:
        state, ys = self.zero_state, []
        for x_t in xs:
            y, state = self.step(self.params, self.jax.numpy.asarray(x_t), state)
            ys.append(np.asarray(y))
        return np.stack(ys)


def streamer(name: str, cell: str, params: dict, xs: Sequence[np.ndarray]) -> Streamer:
    """Implementation ``name`` of single-step inference with weights ``params``, cycling over
    the inputs ``xs`` (each (1, D)) in their dtype. Raises :class:`Unavailable`."""
    if name == "rnnkit":
        layer = rnnkit_layer(cell, xs[0].shape[1], params["weight_hh_l0"].shape[1], xs[0].dtype)
        layer.load_state_dict(params)
        return RnnkitStreamer(layer, xs)
    if name == "torch":
        return TorchStreamer(cell, params, xs)
    if name == "jax":
        return JaxStreamer(cell, params, xs)
    raise ValueError(f"name must be one of {', '.join(STREAM_IMPLS)}, got {name!r}")
