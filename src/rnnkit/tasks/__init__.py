"""Task estimators in scikit-learn style: character language models, forecasting and sequence
classification."""

from rnnkit.tasks.base import Estimator, NotFittedError, train_model
from rnnkit.tasks.classify import RNNClassifier
from rnnkit.tasks.forecast import (
    ForecastEvaluation,
    RNNForecaster,
    drift_forecast,
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from rnnkit.tasks.lm import CharLM

__all__ = [
    "CharLM",
    "Estimator",
    "ForecastEvaluation",
    "NotFittedError",
    "RNNClassifier",
    "RNNForecaster",
    "drift_forecast",
    "forecast_metrics",
    "naive_forecast",
    "seasonal_naive_forecast",
    "train_model",
]
