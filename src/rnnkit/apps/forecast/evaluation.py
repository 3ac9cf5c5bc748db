"""The evaluation report of a forecaster: its forecasts and those of the three baselines
(:mod:`rnnkit.apps.forecast.baselines`) at the same origins, and their metrics.

Metrics are those of :mod:`rnnkit.apps.metrics` (MAE, RMSE, MAPE and sMAPE in percent, MASE),
always reported for the model *and* the baselines on the same forecast origins and horizons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnkit.apps import metrics
from rnnkit.apps.forecast.baselines import (
    drift_forecast,
    naive_forecast,
    seasonal_naive_forecast,
)

METHODS = ("model", "naive", "seasonal_naive", "drift")
METRICS = ("MAE", "RMSE", "MAPE", "sMAPE", "MASE")


def forecast_metrics(actual: Any, forecast: Any, train: Any, season: int = 1) -> dict[str, float]:
    """MAE, RMSE, MAPE, sMAPE and MASE of ``forecast`` against ``actual`` (any equal shapes,
    pooled), MASE scaled by the in-sample seasonal-naive MAE of ``train``. A metric that is
    undefined here (MAPE with an actual 0, MASE of a series the naive forecast fits exactly)
    is NaN.

    >>> forecast_metrics([3, 4], [3, 5], train=[1, 2, 3])["MASE"]
    0.5
    """
    a = np.asarray(actual, dtype=np.float64).ravel()
    f = np.asarray(forecast, dtype=np.float64).ravel()
    out = {"MAE": metrics.mae(a, f), "RMSE": metrics.rmse(a, f)}
    for name, fn in (("MAPE", metrics.mape), ("sMAPE", metrics.smape)):
        try:
            out[name] = fn(a, f)
        except ValueError:
            out[name] = math.nan
    try:
        out["MASE"] = metrics.mase(a, f, train, season=season)
    except ValueError:
        out["MASE"] = math.nan
    return out


@dataclass
class ForecastEvaluation:
    """Forecasts of the model and of the baselines at the same origins, and their metrics.

    F = folds (forecast origins), h = horizon.

    Attributes:
        origins: (F,) index in ``y`` of each fold's first forecast step; the forecasts at
            origin o use ``y[:o]`` only.
        actual: (F, h) the observed values.
        forecasts: (F, h) forecasts by method: "model", "naive", "seasonal_naive", "drift".
        metrics: by method, the metrics over every fold and step pooled: "MAE", "RMSE",
            "MAPE", "sMAPE" (percent) and "MASE".
        mase_scale: the MASE denominator, the in-sample MAE of the seasonal-naive forecast
            (season ``season``) on the first training part ``y[:origins[0]]``.
        season: the season of the seasonal-naive forecast and of MASE.
        refit: whether the model was refitted at every origin.
        estimator: the (last) fitted :class:`~rnnkit.apps.RNNForecaster`.
    """

    origins: np.ndarray
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    mase_scale: float
    season: int
    refit: bool = False
    estimator: Any = field(default=None, repr=False)

    def per_fold(self, metric: str = "MAE") -> dict[str, np.ndarray]:
        """One metric for each fold separately, by method: (F,) arrays."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        out = {}
        for name, fc in self.forecasts.items():
            values = []
            for a, f in zip(self.actual, fc):
                m = forecast_metrics(a, f, [0.0])  # MASE needs a longer series: NaN here
                m["MASE"] = m["MAE"] / self.mase_scale if self.mase_scale > 0 else math.nan
                values.append(m[metric])
            out[name] = np.array(values)  # (F,)
        return out

    def to_markdown(self, digits: int = 3) -> str:
        """The metrics as a Markdown table, one row per method.

        >>> r = ForecastEvaluation(np.array([2]), np.array([[3.0]]), {"naive": np.array([[2.0]])},
        ...                        {"naive": forecast_metrics([3.0], [2.0], [1.0, 2.0])}, 1.0, 1)
        >>> print(r.to_markdown(2))
        | method | MAE | RMSE | MAPE | sMAPE | MASE |
        | --- | --- | --- | --- | --- | --- |
        | naive | 1.00 | 1.00 | 33.33 | 40.00 | 1.00 |
        """
        lines = [
            "| method | " + " | ".join(METRICS) + " |",
            "|" + " --- |" * (len(METRICS) + 1),
        ]
        for name, row in self.metrics.items():
            cells = [f"{row[m]:.{digits}f}" for m in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        h = self.actual.shape[1]
        head = f"{len(self.origins)} fold(s), horizon {h}, {'refit' if self.refit else 'fit once'}"
        return head + "\n" + self.to_markdown()


def compare_with_baselines(
    y: np.ndarray,
    origins: np.ndarray,
    model_forecasts: np.ndarray,
    season: int,
    *,
    refit: bool = False,
    estimator: Any = None,
) -> ForecastEvaluation:
    """The report of the model's forecasts ``model_forecasts`` (F, h), made from ``y[:o]`` at
    each origin o of ``origins`` (F,), beside the baselines' forecasts from the same histories;
    MASE is scaled on the first training part ``y[:origins[0]]``.

    >>> y = np.arange(1.0, 9.0)
    >>> r = compare_with_baselines(y, np.array([6]), np.array([[7.0, 8.0]]), season=1)
    >>> r.metrics["model"]["MAE"], r.metrics["naive"]["MAE"], r.metrics["drift"]["MAE"]
    (0.0, 1.5, 0.0)
    """
    horizon = model_forecasts.shape[1]
    actual = np.stack([y[o : o + horizon] for o in origins])  # (F, h)
    forecasts = {
        "model": model_forecasts,
        "naive": np.stack([naive_forecast(y[:o], horizon) for o in origins]),
        "seasonal_naive": np.stack(
            [seasonal_naive_forecast(y[:o], horizon, season) for o in origins]
        ),
        "drift": np.stack([drift_forecast(y[:o], horizon) for o in origins]),
    }
    train = y[: origins[0]]
    scores = {name: forecast_metrics(actual, f, train, season) for name, f in forecasts.items()}
    scale = float(np.mean(np.abs(train[season:] - train[:-season])))
    return ForecastEvaluation(
        origins, actual, forecasts, scores, scale, season, refit=refit, estimator=estimator
    )
