"""Report how precise the hand-written backward passes are: the worst relative error that
``rnnkit.gradcheck`` finds for each cell over the grid of tests/test_gradcheck_grid.py (1 and 2
layers x uni- and bidirectional x with and without lengths mixing zero-length, short and full
rows x with and without an initial state x with and without final-state gradients; random
non-zero biases, random upstream gradients; float64).

The test suite asserts <= 1e-6; this prints what is actually reached. Run from the repository
root::

    python benchmarks/gradcheck_report.py
"""

from __future__ import annotations

import itertools
import time

import numpy as np

import rnnkit

T, B, D, H = 5, 4, 3, 3
LENGTHS = np.array([5, 0, 2, 4])
KINDS = {
    "RNN tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}),
    "RNN relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "LSTM": (rnnkit.LSTM, {}),
    "GRU after": (rnnkit.GRU, {"reset": "after"}),
    "GRU before": (rnnkit.GRU, {"reset": "before"}),
}


def worst_error(cls, extra, layers, bi, with_lengths, with_state, with_dstate, seed):
    rng = np.random.default_rng(seed)
    layer = cls(D, H, layers, bidirectional=bi, dtype=np.float64, seed=seed, **extra)
    for name, value in layer.parameters().items():
        if name.startswith("bias"):
            value[...] = rng.choice([-1.0, 1.0], value.shape) * rng.uniform(0.1, 0.5, value.shape)
    x = rng.standard_normal((T, B, D))
    state = None
    if with_state:
        parts = tuple(
            0.5 * rng.standard_normal((layers * (1 + bi), B, H)) for _ in layer.state_names
        )
        state = parts if len(parts) > 1 else parts[0]
    errors = rnnkit.gradcheck(
        layer,
        x,
        state,
        LENGTHS if with_lengths else None,
        dstate="random" if with_dstate else None,
        seed=seed,
    )
    name = max(errors, key=errors.get)
    return errors[name], name


def main() -> None:
    print(f"{'cell':<12}{'configs':>8}{'worst rel. error':>18}  where")
    start = time.perf_counter()
    for kind, (cls, extra) in KINDS.items():
        results = []
        grid = itertools.product((1, 2), (False, True), (False, True), (False, True), (False, True))
        for seed, config in enumerate(grid):
            err, name = worst_error(cls, extra, *config, seed=seed)
            results.append((err, name, config))
        err, name, (layers, bi, lens, st, ds) = max(results, key=lambda r: r[0])
        where = (
            f"{name} (L={layers}, {'bi' if bi else 'uni'}, lengths={lens}, state={st}, dstate={ds})"
        )
        print(f"{kind:<12}{len(results):>8}{err:>18.1e}  {where}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
