"""Univariate forecasting: the recurrent forecaster, the three benchmark forecasts every model
must be compared with, and the evaluation report that puts them side by side.

- :mod:`~rnnkit.apps.forecast.estimator`: :class:`RNNForecaster` (fit, predict, hold-out test,
  rolling-origin backtest);
- :mod:`~rnnkit.apps.forecast.baselines`: the naive, seasonal-naive and drift forecasts;
- :mod:`~rnnkit.apps.forecast.evaluation`: the metrics and :class:`ForecastEvaluation`.
"""

from rnnkit.apps.forecast.baselines import (
    drift_forecast,
    naive_forecast,
    seasonal_naive_forecast,
)
from rnnkit.apps.forecast.estimator import (
    MAX_MAGNITUDE,
    SCALINGS,
    STRATEGIES,
    RNNForecaster,
)
from rnnkit.apps.forecast.evaluation import (
    METHODS,
    METRICS,
    ForecastEvaluation,
    compare_with_baselines,
    forecast_metrics,
)

__all__ = [
    "MAX_MAGNITUDE",
    "METHODS",
    "METRICS",
    "SCALINGS",
    "STRATEGIES",
    "ForecastEvaluation",
    "RNNForecaster",
    "compare_with_baselines",
    "drift_forecast",
    "forecast_metrics",
    "naive_forecast",
    "seasonal_naive_forecast",
]
