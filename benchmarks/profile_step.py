"""Where a training step of a recurrent layer spends its time: the matrix products around the
loops, the forward loop, the backward loop and the rest (float32, T = 100).

Runs ``--steps`` forward + backward passes of one layer under ``cProfile`` after warm-up steps
(the large arrays recycled by :mod:`rnnkit.runtime.workspace`, as always) and prints which time
loops the layer chose (``layer.time_loop.name``) and the milliseconds per step of the extension's
functions and of everything else.

Run from the repository root::

    python benchmarks/profile_step.py --cell lstm --size 32 64 128 [--steps 20]

Shapes: B = batch, D = input size, H = hidden size.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import numpy as np

import rnnkit

CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    parser.add_argument("--size", nargs=3, type=int, default=[32, 64, 128], metavar=("B", "D", "H"))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    B, D, H = args.size
    layer = CELLS[args.cell](D, H, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, B, D)).astype(np.float32)  # (T, B, D)
    dy = rng.standard_normal((100, B, H)).astype(np.float32)  # (T, B, H)

    def step() -> None:
        _, _, cache = layer.forward(x)
        layer.backward(dy, cache)

    for _ in range(5):
        step()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.steps):
        step()
    profile.disable()
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, ...)
    total = sum(entry[2] for entry in stats.values())
    native = {}
    for (_, _, name), entry in stats.items():
        if "rnnkit.runtime.kernels._native" in name or name.startswith(
            "<built-in method rnnkit.runtime.kernels"
        ):
            short = name.split(".")[-1].rstrip(">}")
            native[short] = native.get(short, 0.0) + entry[2]
    loops = layer.time_loop.name
    print(
        f"{args.cell} ({loops} loops) B={B} D={D} H={H}: {total / args.steps * 1e3:.2f} ms per step"
    )
    for name, seconds in sorted(native.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {seconds / args.steps * 1e3:7.2f} ms")
    rest = total - sum(native.values())
    print(f"  {'everything else':24s} {rest / args.steps * 1e3:7.2f} ms (NumPy included)")


if __name__ == "__main__":
    main()
