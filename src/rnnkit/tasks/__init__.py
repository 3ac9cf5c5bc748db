"""Task estimators in scikit-learn style: character language models, forecasting and sequence
classification."""

from rnnkit.tasks.base import Estimator, NotFittedError, train_model

__all__ = ["Estimator", "NotFittedError", "train_model"]
