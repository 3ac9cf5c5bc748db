r"""Evaluation metrics for forecasts and classifiers.

Forecasts, for actual values :math:`y_i` and forecasts :math:`\hat y_i`, i = 1..n:

.. math::

    \mathrm{MAE} = \tfrac1n \sum |y_i - \hat y_i|, \quad
    \mathrm{RMSE} = \sqrt{\tfrac1n \sum (y_i - \hat y_i)^2}, \quad
    \mathrm{MAPE} = \tfrac{100}{n} \sum \left|\frac{y_i - \hat y_i}{y_i}\right|, \\
    \mathrm{sMAPE} = \tfrac{100}{n} \sum \frac{2 |y_i - \hat y_i|}{|y_i| + |\hat y_i|}, \quad
    \mathrm{MASE} = \frac{\mathrm{MAE}}{\tfrac{1}{N - m} \sum_{t > m} |x_t - x_{t-m}|}

with MASE scaled by the in-sample MAE of the seasonal-naive forecast (season m, m = 1 for the
naive forecast) on the training series :math:`x_1..x_N` (Hyndman & Koehler 2006). MAPE and sMAPE
are in percent.

Classifiers: :func:`accuracy`, :func:`macro_f1` (the unweighted mean of the per-class F1 scores,
a class with no true and no predicted examples left out) and :func:`confusion_matrix` (rows: the
true class, columns: the predicted class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("y_true and y_pred must not be empty")
    return a, b


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error.

    >>> mae([1, 2, 3], [1, 3, 5])
    1.0
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(a - b)))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error.

    >>> rmse([0, 0], [3, 4]) == (12.5) ** 0.5
    True
    """
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, in percent; undefined (``ValueError``) if an actual is 0.

    >>> mape([100, 200], [110, 180])
    10.0
    """
    a, b = _pair(y_true, y_pred)
    if np.any(a == 0):
        raise ValueError("MAPE is undefined when an actual value is 0; use sMAPE or MASE")
    return float(100.0 * np.mean(np.abs((a - b) / a)))


def smape(y_true: Any, y_pred: Any) -> float:
    """Symmetric MAPE in percent (0 where both actual and forecast are 0).

    >>> round(smape([100, 200], [110, 180]), 6)
    10.025063
    """
    a, b = _pair(y_true, y_pred)
    denom = np.abs(a) + np.abs(b)
    ratio = np.divide(2.0 * np.abs(a - b), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100.0 * np.mean(ratio))


def mase(y_true: Any, y_pred: Any, y_train: Any, season: int = 1) -> float:
    """Mean absolute scaled error: MAE over the in-sample MAE of the (seasonal-)naive forecast.

    >>> mase([3, 4], [3, 5], y_train=[1, 2, 3], season=1)
    0.5
    """
    a, b = _pair(y_true, y_pred)
    x = np.asarray(y_train, dtype=np.float64).ravel()
    if not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(f"season must be a positive int, got {season!r}")
    if x.size <= season:
        raise ValueError(
            f"MASE needs a training series longer than the season ({season}), got {x.size} values"
        )
    scale = np.mean(np.abs(x[season:] - x[:-season]))
    if scale == 0:
        raise ValueError("MASE is undefined: the training series' naive forecast is perfect")
    return float(np.mean(np.abs(a - b)) / scale)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The fraction of correct predictions.

    >>> accuracy(["a", "b", "a"], ["a", "a", "a"])
    0.6666666666666666
    """
    a, b = np.asarray(y_true), np.asarray(y_pred)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and alike, got {a.shape}, {b.shape}")
    return float(np.mean(a == b))


def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class, in the order of ``labels``
    (default: the sorted union of both).

    >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
    [[1, 0], [1, 1]]
    """
    a, b = np.asarray(y_true), np.asarray(y_pred)
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {a.shape}, {b.shape}")
    labels = list(np.unique(np.concatenate([a, b]))) if labels is None else list(labels)
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(a.tolist(), b.tolist()):
        if t not in index or p not in index:
            raise ValueError(f"label {t if t not in index else p!r} is not in labels {labels}")
        out[index[t], index[p]] += 1
    return out


def macro_f1(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> float:
    """The unweighted mean of the per-class F1 scores.

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 6)
    0.733333
    """
    cm = confusion_matrix(y_true, y_pred, labels).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1) + cm.sum(axis=0)  # 2 tp + fp + fn
    present = support > 0
    f1 = np.divide(2.0 * tp, support, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean())
