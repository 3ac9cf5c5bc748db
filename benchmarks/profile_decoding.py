"""Where a decoding step of rnnkit's Seq2Seq spends its time: the milliseconds per batch of
greedy or beam search, and cProfile's table (internal time) of the calls that take it, for the
issue-12 notes in docs/performance.md ("Sequence-to-sequence").

The model: E = 64, a 1-layer bidirectional LSTM encoder, a 1-layer LSTM decoder of ``--hidden``
units, general attention, input feeding, float32, untrained (seed 0); 64 random sources of 8
tokens, every output cut at 16 tokens, so every batch runs 16 steps. NumPy's BLAS on one thread,
as the ``rnnkit`` command runs it; the compiled kernels on their own threads.

    python benchmarks/profile_decoding.py [--hidden 512] [--search greedy|beam] [--rows 18]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

from common import positive_int
from rnnkit.runtime.threads import set_blas_threads

set_blas_threads(1)

from rnnkit.nn.decoding import beam_search, greedy_decode  # noqa: E402
from rnnkit.nn.seq2seq import Seq2Seq  # noqa: E402

S, B, STEPS, REPEATS = 8, 64, 16, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=positive_int, default=512, help="H (default 512)")
    parser.add_argument("--search", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--rows", type=positive_int, default=18, help="profile rows shown")
    args = parser.parse_args()
    m = Seq2Seq(31, 47, embedding_dim=64, hidden_size=args.hidden, seed=0).eval()
    rng = np.random.default_rng(0)
    source, lengths = rng.integers(4, 31, (S, B)), np.full(B, S)
    cap = np.full(B, STEPS)
    if args.search == "greedy":
        run = lambda: greedy_decode(m, source, lengths, max_length=cap)  # noqa: E731
    else:
        run = lambda: beam_search(m, source, lengths, beam=5, max_length=cap)  # noqa: E731
    run()  # warm-up
    start = time.perf_counter()
    for _ in range(REPEATS):
        run()
    ms = (time.perf_counter() - start) / REPEATS * 1e3
    print(f"{args.search}, H={args.hidden}, {B} sources: {ms:.1f} ms per batch of {STEPS} steps")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(REPEATS):
        run()
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.rows)


if __name__ == "__main__":
    main()
