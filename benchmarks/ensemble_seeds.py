"""How much the seed moves a UCR classifier's test accuracy, and what an ensemble does about it.

Trains one :class:`~rnnkit.apps.RNNClassifier` per seed 0 .. N-1 with the settings that
``benchmarks/task_results.py`` documents for the data set (without ``--ensemble``), prints each
one's test accuracy, then the accuracy of the mean probabilities of every run of m consecutive
seeds (m = 3, 5, 10): the figures behind ``--ensemble 5`` for ArrowHead in docs/results.md.

Run from the repository root, with the data under ``../shared/data/ucr``::

    python benchmarks/ensemble_seeds.py [--data ArrowHead] [--seeds 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rnnkit.apps.classify import RNNClassifier
from rnnkit.data import load_ts
from rnnkit.runtime.threads import set_blas_threads

sys.path.insert(0, str(Path(__file__).parent))
from task_results import CLASSIFY, DATA

#: The command's flags -> RNNClassifier's parameters (those task_results.py uses).
FLAGS = {
    "--hidden-size": ("hidden_size", int),
    "--num-layers": ("num_layers", int),
    "--cell": ("cell", str),
    "--pooling": ("pooling", str),
    "--normalize": ("normalize", str),
    "--window": ("window", int),
    "--stride": ("stride", int),
    "--batch-size": ("batch_size", int),
    "--epochs": ("epochs", int),
    "--lr": ("lr", float),
    "--lr-schedule": ("lr_schedule", str),
    "--weight-decay": ("weight_decay", float),
    "--dropout": ("dropout", float),
    "--ensemble": ("ensemble", int),
}


def params_of(flags: list[str]) -> dict:
    """task_results.py's flags -> RNNClassifier keyword arguments, ``ensemble`` left out."""
    params: dict = {}
    i = 0
    while i < len(flags):
        flag = flags[i]
        if flag == "--bidirectional":
            params["bidirectional"] = True
            i += 1
            continue
        name, kind = FLAGS[flag]
        params[name] = kind(flags[i + 1])
        i += 2
    params.pop("ensemble", None)
    return params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ArrowHead", choices=sorted(CLASSIFY))
    parser.add_argument("--seeds", type=int, default=15)
    args = parser.parse_args(argv)
    ucr = DATA / "ucr"
    if not ucr.exists():
        sys.exit(f"no data under {ucr}")
    set_blas_threads(1)  # as the rnnkit command does: results depend on it
    train = load_ts(ucr / f"{args.data}_TRAIN.ts")
    test = load_ts(ucr / f"{args.data}_TEST.ts")
    params = params_of(CLASSIFY[args.data])
    print(f"{args.data}: {params}")
    y = np.asarray(test.y)
    probas, classes = [], None
    for seed in range(args.seeds):
        clf = RNNClassifier(**params, seed=seed, quiet=True).fit(train.X, train.y)
        probas.append(clf.predict_proba(test.X))
        classes = clf.classes_
        print(f"seed {seed}: accuracy {np.mean(classes[probas[-1].argmax(1)] == y):.3f}")
    singles = [np.mean(classes[p.argmax(1)] == y) for p in probas]
    print(f"one network: mean {np.mean(singles):.3f}, {min(singles):.3f} to {max(singles):.3f}")
    for m in (3, 5, 10):
        if m > args.seeds:
            break
        accs = [
            np.mean(classes[np.mean(probas[s : s + m], axis=0).argmax(1)] == y)
            for s in range(args.seeds - m + 1)
        ]
        print(
            f"ensembles of {m} consecutive seeds ({len(accs)}): mean {np.mean(accs):.3f}, "
            f"{min(accs):.3f} to {max(accs):.3f}; seeds 0-{m - 1}: {accs[0]:.3f}"
        )


if __name__ == "__main__":
    main()
