"""Training: the loop (:class:`Trainer`) and its metrics log."""

from rnnkit.training.metric_log import MetricLog
from rnnkit.training.trainer import LOSSES, Trainer, TrainingError, TrainResult

__all__ = ["LOSSES", "MetricLog", "TrainResult", "Trainer", "TrainingError"]
