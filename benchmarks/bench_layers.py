"""Time forward + backward of rnnkit's recurrent layers against torch.nn.LSTM / GRU / RNN (CPU).

What it measures: one training step of the recurrent layer alone, in float32 (the default dtype,
what users train with). The step is a forward pass over a (T, B, D) batch from a zero initial
state, then the backward pass from a random upstream gradient R (torch: ``loss = (y * R).sum()``,
``loss.backward()``), which computes dL/dx and every parameter gradient in both libraries. Each
time is the median of ``ROUNDS x --repeats`` runs measured with ``time.perf_counter``, in blocks
that alternate between rnnkit and torch, each after warm-up runs (see ``common.block_times`` for
why blocks and not single runs). The table reports ratio = rnnkit time / torch time (> 1 means
rnnkit is slower); compare ratios, not absolute times.

Before timing a configuration it checks rnnkit against torch with the same weights, in float64,
on the same layer shapes with T capped at ``CHECK_T`` steps: outputs, final state, dL/dx and every
parameter gradient must agree to ``RTOL`` relative to their magnitude (column "f64 err"). GRU with
``reset="before"`` has no torch peer: it is checked against a torch autograd loop of its
equations and timed alone (ratio "-").

Threads: torch is set to ``torch.set_num_threads(2)``; NumPy's BLAS is left at its default (the
header reports the BLAS and its thread environment variables).

Run from the repository root (``--quick`` is a smoke test of a few seconds)::

    python benchmarks/bench_layers.py [--quick] [--repeats N] [--markdown]

Shapes: T = time steps, B = batch, D = input size, H = hidden size, L = num_layers.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

import common
import rnnkit
from common import positive_int

TORCH_THREADS = 2
RTOL = 1e-9  # float64 agreement, relative to the magnitude of the reference
CHECK_T = 16  # time steps of the float64 check; the layer shapes are the timed ones
SEED = 0
ROUNDS = 2  # alternating timing blocks per library; see median_times
BLOCK_PAUSE = 0.2  # seconds of rest before each timing block

#: (T, B, D, H) of the full run and of ``--quick``.
SIZES = ((50, 32, 64, 128), (100, 64, 128, 256), (200, 16, 32, 64))
QUICK_SIZES = ((8, 4, 8, 16),)

#: Cell name -> (rnnkit class, its arguments, torch peer or None, the peer's arguments).
KINDS: dict[str, tuple[type, dict[str, str], Any, dict[str, str]]] = {
    "LSTM": (rnnkit.LSTM, {}, torch.nn.LSTM, {}),
    "GRU": (rnnkit.GRU, {"reset": "after"}, torch.nn.GRU, {}),
    "GRU-before": (rnnkit.GRU, {"reset": "before"}, None, {}),
    "RNN-tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}, torch.nn.RNN, {"nonlinearity": "tanh"}),
}

#: What one forward + backward returns: y, final state parts, dL/dx, parameter gradients.
Result = tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, dict[str, np.ndarray]]


@dataclass(frozen=True)
class Config:
    """One row of the table."""

    kind: str  # a key of KINDS
    T: int
    B: int
    D: int
    H: int
    num_layers: int = 1
    bidirectional: bool = False


@dataclass(frozen=True)
class Row:
    config: Config
    check_err: float  # largest relative error of the float64 check
    rnnkit_s: float
    torch_s: float | None  # None: no torch peer


# -- configurations and layers -------------------------------------------------------------------


def configs(quick: bool) -> list[Config]:
    """Every cell at every size, then one 2-layer bidirectional LSTM."""
    sizes = QUICK_SIZES if quick else SIZES
    rows = [Config(kind, *size) for kind in KINDS for size in sizes]
    T, B, D, H = QUICK_SIZES[0] if quick else (100, 32, 64, 128)
    return [*rows, Config("LSTM", T, B, D, H, num_layers=2, bidirectional=True)]


def make_layer(cfg: Config, dtype: Any) -> rnnkit.Recurrent:
    cls, kwargs, _, _ = KINDS[cfg.kind]
    return cls(
        cfg.D,
        cfg.H,
        cfg.num_layers,
        bidirectional=cfg.bidirectional,
        dtype=dtype,
        seed=SEED,
        **kwargs,
    )


def torch_peer(cfg: Config, layer: rnnkit.Recurrent) -> torch.nn.Module | None:
    """The torch module of the same configuration and dtype, with ``layer``'s weights."""
    _, _, torch_cls, kwargs = KINDS[cfg.kind]
    if torch_cls is None:
        return None
    dtype = torch.float64 if layer.dtype == np.float64 else torch.float32
    mod = torch_cls(
        cfg.D, cfg.H, cfg.num_layers, bidirectional=cfg.bidirectional, dtype=dtype, **kwargs
    )
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return mod


def inputs(cfg: Config, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, D) and the upstream gradient R (T, B, K*H), random normal."""
    rng = np.random.default_rng(SEED + 1)
    K = 2 if cfg.bidirectional else 1
    x = rng.standard_normal((cfg.T, cfg.B, cfg.D)).astype(dtype)
    R = rng.standard_normal((cfg.T, cfg.B, K * cfg.H)).astype(dtype)
    return x, R


# -- one forward + backward ----------------------------------------------------------------------


def _as_tuple(state: Any) -> tuple[Any, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def rnnkit_step(layer: rnnkit.Recurrent, x: np.ndarray, R: np.ndarray) -> Result:
    y, state, cache = layer.forward(x)
    dx, _, grads = layer.backward(R, cache)
    return y, _as_tuple(state), dx, grads


def torch_step(mod: torch.nn.Module, x: np.ndarray, R: np.ndarray) -> Result:
    mod.zero_grad(set_to_none=True)  # gradients must not accumulate over the repeats
    xt = torch.from_numpy(x).requires_grad_()
    y, state = mod(xt)
    (y * torch.from_numpy(R)).sum().backward()
    grads = {k: p.grad.numpy() for k, p in mod.named_parameters()}
    state = tuple(s.detach().numpy() for s in _as_tuple(state))
    return y.detach().numpy(), state, xt.grad.numpy(), grads


def gru_before_reference(layer: rnnkit.GRU, x: np.ndarray, R: np.ndarray) -> Result:
    """Torch autograd through the reset-before GRU equations, one step at a time."""
    if layer.num_layers != 1 or layer.bidirectional:
        raise ValueError("the reset-before reference covers one unidirectional layer only")
    p = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    xt = torch.tensor(x, requires_grad=True)
    W_hr, W_hz, W_hn = p["weight_hh_l0"].chunk(3)  # (H, H) each
    b_hr, b_hz, b_hn = p["bias_hh_l0"].chunk(3)  # (H,) each
    gi = xt @ p["weight_ih_l0"].T + p["bias_ih_l0"]  # (T, B, 3H)
    h = xt.new_zeros(x.shape[1], layer.hidden_size)  # (B, H)
    hs = []
    for gi_t in gi:
        i_r, i_z, i_n = gi_t.chunk(3, dim=-1)  # (B, H) each
        r = torch.sigmoid(i_r + h @ W_hr.T + b_hr)
        z = torch.sigmoid(i_z + h @ W_hz.T + b_hz)
        n = torch.tanh(i_n + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        hs.append(h)
    y = torch.stack(hs)  # (T, B, H)
    (y * torch.from_numpy(R)).sum().backward()
    grads = {k: v.grad.numpy() for k, v in p.items()}
    return y.detach().numpy(), (h.detach().numpy()[None],), xt.grad.numpy(), grads


# -- check and timing ----------------------------------------------------------------------------


def relative_error(what: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|; raises AssertionError above RTOL."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != {expected.shape}")
    scale = max(float(np.abs(expected).max()), np.finfo(np.float64).tiny)
    err = float(np.abs(actual - expected).max()) / scale
    if not err <= RTOL:
        raise AssertionError(f"{what}: relative error {err:.2e} exceeds {RTOL:.0e}")
    return err


def check(cfg: Config) -> float:
    """Compare rnnkit with its reference in float64 and return the largest relative error."""
    small = replace(cfg, T=min(cfg.T, CHECK_T))
    layer = make_layer(small, np.float64)
    x, R = inputs(small, np.float64)
    mod = torch_peer(small, layer)
    ref = torch_step(mod, x, R) if mod is not None else gru_before_reference(layer, x, R)
    y, state, dx, grads = rnnkit_step(layer, x, R)
    y_ref, state_ref, dx_ref, grads_ref = ref
    if grads.keys() != grads_ref.keys():
        raise AssertionError(
            f"{describe(cfg)}: gradient names {sorted(grads)} != {sorted(grads_ref)}"
        )
    pairs = [("y", y, y_ref), ("dx", dx, dx_ref)]
    pairs += [(f"state[{i}]", a, b) for i, (a, b) in enumerate(zip(state, state_ref, strict=True))]
    pairs += [(f"d{k}", grads[k], grads_ref[k]) for k in grads]
    return max(relative_error(f"{describe(cfg)}: {what}", a, b) for what, a, b in pairs)


def median_times(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int) -> list[float]:
    """Median wall time of each function, timed in blocks in ROUNDS alternating rounds (see
    :func:`common.block_times` for why blocks and not single runs)."""
    return common.median_times(fns, repeats, warmup, ROUNDS, BLOCK_PAUSE)


def measure(cfg: Config, repeats: int, warmup: int) -> Row:
    err = check(cfg)
    layer = make_layer(cfg, np.float32)
    x, R = inputs(cfg, np.float32)
    fns = [functools.partial(rnnkit_step, layer, x, R)]
    mod = torch_peer(cfg, layer)
    if mod is not None:
        fns.append(functools.partial(torch_step, mod, x, R))
    gc.collect()
    times = median_times(fns, repeats, warmup)
    return Row(cfg, err, times[0], times[1] if mod is not None else None)


# -- report --------------------------------------------------------------------------------------


def header(repeats: int, warmup: int) -> list[str]:
    env = ", ".join(
        f"{var}={os.environ.get(var, 'unset')}"
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    )
    return [
        f"rnnkit {rnnkit.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs",
        f"threads: torch.get_num_threads() = {torch.get_num_threads()} (set), "
        f"interop {torch.get_num_interop_threads()}; numpy BLAS {common.blas_name()} at its "
        f"default ({env})",
        f"timing: float32 forward + backward, median of {ROUNDS} x {repeats} runs, each block "
        f"after {warmup} warm-up, rnnkit and torch in alternating blocks; "
        "ratio = rnnkit / torch (> 1: rnnkit slower)",
        f"check: float64 against torch (GRU-before: torch autograd loop), T <= {CHECK_T}, "
        f"relative error <= {RTOL:.0e}",
    ]


def cells(row: Row) -> list[str]:
    c = row.config
    ratio = "-" if row.torch_s is None else f"{row.rnnkit_s / row.torch_s:.2f}"
    torch_ms = "-" if row.torch_s is None else f"{1e3 * row.torch_s:.2f}"
    return [
        c.kind,
        str(c.num_layers),
        "bi" if c.bidirectional else "uni",
        *(str(v) for v in (c.T, c.B, c.D, c.H)),
        f"{row.check_err:.0e}",
        f"{1e3 * row.rnnkit_s:.2f}",
        torch_ms,
        ratio,
    ]


COLUMNS = ["cell", "L", "dir", "T", "B", "D", "H", "f64 err", "rnnkit ms", "torch ms", "ratio"]


def _pad(value: str, width: int, column: int) -> str:
    """Text columns (cell, L, dir) to the left, numbers to the right."""
    return value.ljust(width) if column < 3 else value.rjust(width)


def table(rows: Sequence[Row], markdown: bool) -> list[str]:
    body = [cells(row) for row in rows]
    if markdown:
        align = ["---"] * 3 + ["---:"] * (len(COLUMNS) - 3)
        return [f"| {' | '.join(r)} |" for r in [COLUMNS, align, *body]]
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(_pad(v, w, i) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in [COLUMNS, *body]
    ]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]


def describe(cfg: Config) -> str:
    direction = "bidirectional" if cfg.bidirectional else "unidirectional"
    return f"{cfg.kind} L={cfg.num_layers} {direction} T={cfg.T} B={cfg.B} D={cfg.D} H={cfg.H}"


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats: smoke test")
    parser.add_argument(
        "--repeats", type=positive_int, help="timed runs per configuration (default 7, quick 2)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    warmup = 1 if args.quick else 2
    torch.set_num_threads(TORCH_THREADS)
    rows = []
    for cfg in configs(args.quick):
        print(f"checking and timing {describe(cfg)}", file=sys.stderr, flush=True)
        rows.append(measure(cfg, repeats, warmup))
    print("\n".join([*header(repeats, warmup), "", *table(rows, args.markdown)]))


if __name__ == "__main__":
    main()
