"""rnnkit: recurrent neural networks exactly as the classic equations define them, with
backpropagation through time derived and written by hand, in NumPy.

>>> import numpy as np, rnnkit
>>> lstm = rnnkit.LSTM(input_size=3, hidden_size=5, num_layers=2, dtype=np.float64, seed=0)
>>> y, (h, c), cache = lstm.forward(np.ones((7, 2, 3)))
>>> y.shape, h.shape
((7, 2, 5), (2, 2, 5))
"""

from rnnkit import cells, checkpoint, data, init, limits, losses, nn, optim, training
from rnnkit.gradcheck import gradcheck
from rnnkit.limits import MemoryLimitError
from rnnkit.nn import (  # noqa: F401 (re-exported: __all__ takes their names from nn.__all__)
    GRU,
    LSTM,
    RNN,
    Attention,
    Dropout,
    Embedding,
    LanguageModel,
    Linear,
    Recurrent,
    Seq2Seq,
    SequenceClassifier,
    SequenceRegressor,
)
from rnnkit.runtime import workspace
from rnnkit.runtime.memory import keep_freed_memory
from rnnkit.training import Trainer

__version__ = "0.1.0"

__all__ = [
    # the layers and ready models imported above from rnnkit.nn (its building blocks stay there)
    *(name for name in nn.__all__ if name in globals()),
    "MemoryLimitError",
    "Trainer",
    "__version__",
    "cells",
    "checkpoint",
    "data",
    "gradcheck",
    "init",
    "keep_freed_memory",
    "limits",
    "losses",
    "nn",
    "optim",
    "training",
    "workspace",
]
