"""Recurrent cells: the step equations and the forward and backward pass of each over a sequence.

Each module holds one cell family, all of it: :mod:`~rnnkit.cells.rnn` (vanilla RNN),
:mod:`~rnnkit.cells.lstm` and :mod:`~rnnkit.cells.gru` (both reset forms). Their docstrings carry
the forward and backward (BPTT) equations. :mod:`~rnnkit.cells.base` defines the interface they
share; the layers in :mod:`rnnkit.nn` are built on it.
"""

from rnnkit.cells.base import (
    Cell,
    CellGrads,
    CellParams,
    Recurrence,
    Regularisation,
    Step,
    StepCell,
)
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import RNNCell

__all__ = [
    "Cell",
    "CellGrads",
    "CellParams",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "Recurrence",
    "Regularisation",
    "Step",
    "StepCell",
]
