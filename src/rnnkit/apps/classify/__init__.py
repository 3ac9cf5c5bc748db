"""Time-series classification with a recurrent network over whole series.

- :mod:`~rnnkit.apps.classify.estimator`: :class:`RNNClassifier` (scikit-learn interface,
  ensembles);
- :mod:`~rnnkit.apps.classify.inputs`: how series of any form and length, with missing values,
  become network inputs (cleaning, normalisation, windows as steps).
"""

from rnnkit.apps.classify.estimator import LR_SCHEDULES, NORMALIZE, RNNClassifier

__all__ = ["LR_SCHEDULES", "NORMALIZE", "RNNClassifier"]
