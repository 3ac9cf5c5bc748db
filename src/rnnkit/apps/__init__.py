"""Task estimators in scikit-learn style: character language models, forecasting, sequence
classification and translation."""

from rnnkit.apps.classify import RNNClassifier
from rnnkit.apps.estimator import Estimator, NotFittedError, train_model
from rnnkit.apps.forecast import (
    ForecastEvaluation,
    RNNForecaster,
    drift_forecast,
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)
from rnnkit.apps.lm import CharLM
from rnnkit.apps.translate import Translator

__all__ = [
    "CharLM",
    "Estimator",
    "ForecastEvaluation",
    "NotFittedError",
    "RNNClassifier",
    "RNNForecaster",
    "Translator",
    "drift_forecast",
    "forecast_metrics",
    "naive_forecast",
    "seasonal_naive_forecast",
    "train_model",
]
