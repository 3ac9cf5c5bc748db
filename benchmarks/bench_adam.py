"""Time one Adam step over a model's parameters: rnnkit's compiled update (one pass over memory,
``rnnkit.runtime.kernels.updates``), rnnkit's NumPy rule (``RNNKIT_KERNELS=numpy``, the
specification it matches bit for bit) and ``torch.optim.Adam`` (its default on CPU, one
tensor at a time; ``foreach=True``; and ``fused=True``, its compiled CPU kernel), side by side
in one run.

The parameters: those of the translation benchmark's model (``bench_seq2seq.py``: E = 64, a
bidirectional 1-layer LSTM encoder of H/2 units each way, a 1-layer LSTM decoder of H units with
input feeding, general attention, the linear bridge, a 43-phoneme output layer), float32, for
H = 256 (1.1 M values) and H = 512 (4.2 M, more than the last-level cache holds four times over);
random values and gradients, lr 1e-3, the default betas. Check first: after 5 steps, rnnkit's
two paths agree bit for bit, and torch's parameters agree to float32 rounding.

Timing: the median of the steps timed in five rounds of alternating blocks of ``--repeats``
steps each (``common.block_times``); NumPy's BLAS on one thread and rnnkit's kernels on their
own threads as the ``rnnkit`` command runs them, torch on 2 threads. Run from the repository
root::

    python benchmarks/bench_adam.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import numpy as np

import common
from common import positive_int
from rnnkit.runtime.threads import set_blas_threads

set_blas_threads(1)

from rnnkit import optim  # noqa: E402
from rnnkit.runtime import kernels  # noqa: E402


def shapes(H: int, E: int = 64, V: int = 43) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of the benchmark model at hidden size H."""
    He = H // 2
    out = {"source_embedding": (31, E), "target_embedding": (V, E)}
    for d in ("", "_reverse"):
        out |= {f"enc_w_ih{d}": (4 * He, E), f"enc_w_hh{d}": (4 * He, He)}
        out |= {f"enc_b_ih{d}": (4 * He,), f"enc_b_hh{d}": (4 * He,)}
    out |= {"dec_w_ih": (4 * H, E + H), "dec_w_hh": (4 * H, H), "dec_b_ih": (4 * H,)}
    out |= {"dec_b_hh": (4 * H,), "attention": (H, H), "combine": (H, 2 * H), "gen": (V, H)}
    out |= {"bridge_h": (H, H), "bridge_c": (H, H), "gen_b": (V,), "combine_b": (H,)}
    return out


def problem(H: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in shapes(H).items()}
    grads = [
        {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in params.items()}
        for _ in range(5)
    ]
    return params, grads


def rnnkit_adam(params: dict, path: str) -> optim.Adam:
    os.environ[kernels.ENV] = path
    return optim.Adam(params, lr=1e-3)


def measure(H: int, repeats: int, torch: Any) -> str:
    """The check and the table row at hidden size H."""
    params, grads = problem(H)
    runs = {}
    for path in ("auto", "numpy"):  # 5 steps on each of rnnkit's paths
        live = {k: v.copy() for k, v in params.items()}
        opt = rnnkit_adam(live, path)
        for g in grads:
            opt.step(g)
        runs[path] = live
    os.environ[kernels.ENV] = "auto"
    same = all(np.array_equal(runs["auto"][k], runs["numpy"][k]) for k in params)
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = torch.optim.Adam(list(tp.values()), lr=1e-3, foreach=False)
    for g in grads:
        for k, p in tp.items():
            p.grad = torch.from_numpy(g[k])
        topt.step()
    err = max(common.relative_error(tp[k].detach().numpy(), runs["auto"][k]) for k in params)

    fused = rnnkit_adam({k: v.copy() for k, v in params.items()}, "auto")
    plain = rnnkit_adam({k: v.copy() for k, v in params.items()}, "numpy")
    os.environ[kernels.ENV] = "auto"
    opts = []
    for kind in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
        for k, p in t.items():
            p.grad = torch.from_numpy(grads[0][k])
        opts.append(torch.optim.Adam(list(t.values()), lr=1e-3, **kind))

    def step_numpy() -> None:
        os.environ[kernels.ENV] = "numpy"
        plain.step(grads[0])
        os.environ[kernels.ENV] = "auto"

    fns = [lambda: fused.step(grads[0]), step_numpy, *(o.step for o in opts)]
    with torch.no_grad():
        samples = common.block_times(fns, repeats, 2, rounds=5)
    cells = " | ".join(f"{statistics.median(t) * 1e3:.2f} ms" for t in samples)
    n = sum(p.size for p in params.values())
    check = f"rnnkit paths {'identical' if same else 'DIFFER'}; torch rel. error {err:.1e}"
    return f"| {H} | {n / 1e6:.2f} M | {cells} | {check} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=10, help="steps per block")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    print(f"rnnkit kernels: {kernels.isa()}, {kernels.get_num_threads()} threads; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load: {common.load_average()}")  # fmt: skip
    print("| H | parameters | rnnkit compiled | rnnkit NumPy | torch default | torch foreach "
          "| torch fused | check |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for H in (256, 512):
        print(measure(H, args.repeats, torch))


if __name__ == "__main__":
    main()
