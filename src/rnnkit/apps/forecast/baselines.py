r"""The three benchmark forecasts every forecasting model must be compared with.

They follow Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed., section
5.2), for a history :math:`y_1..y_T` and steps :math:`h = 1, 2, \dots`:

.. math::

    \text{naive: } \hat y_{T+h} = y_T, \qquad
    \text{seasonal naive: } \hat y_{T+h} = y_{T+h-m(k+1)},\ k = \lfloor (h-1)/m \rfloor,
    \qquad \text{drift: } \hat y_{T+h} = y_T + h\,\frac{y_T - y_1}{T - 1}.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit import _checks


def _history(history: Any, minimum: int = 1) -> np.ndarray:
    h = np.asarray(history, dtype=np.float64)
    if h.ndim != 1:
        raise ValueError(f"history must be 1-D (T,), got shape {h.shape}")
    if h.size < minimum:
        raise ValueError(f"history needs at least {minimum} values, got {h.size}")
    return h


def naive_forecast(history: Any, horizon: int) -> np.ndarray:
    """The naive forecast: the last value, repeated ``horizon`` times.

    >>> naive_forecast([1.0, 3.0, 2.0], 3).tolist()
    [2.0, 2.0, 2.0]
    """
    horizon = _checks.positive_int("horizon", horizon)
    return np.full(horizon, _history(history)[-1])


def seasonal_naive_forecast(history: Any, horizon: int, season: int) -> np.ndarray:
    """The seasonal naive forecast: the value of the same season in the last observed cycle
    (the last ``season`` values, repeated).

    >>> seasonal_naive_forecast([1, 2, 3, 10, 20, 30], 4, season=3).tolist()
    [10.0, 20.0, 30.0, 10.0]
    """
    horizon = _checks.positive_int("horizon", horizon)
    season = _checks.positive_int("season", season)
    h = _history(history, season)
    return np.resize(h[-season:], horizon)  # np.resize repeats the cycle


def drift_forecast(history: Any, horizon: int) -> np.ndarray:
    """The drift forecast: the line through the first and the last value, extended.

    >>> drift_forecast([1.0, 2.0, 5.0], 2).tolist()
    [7.0, 9.0]
    """
    horizon = _checks.positive_int("horizon", horizon)
    h = _history(history, 2)
    slope = (h[-1] - h[0]) / (h.size - 1)
    return h[-1] + slope * np.arange(1, horizon + 1)
