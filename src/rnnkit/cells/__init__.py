"""Recurrent cells: the step equations and the forward and backward pass of each over a sequence.

Each module holds one cell family, all of it: :mod:`~rnnkit.cells.rnn` (vanilla RNN),
:mod:`~rnnkit.cells.lstm` and :mod:`~rnnkit.cells.gru` (both reset forms). Their docstrings carry
the forward and backward (BPTT) equations. :mod:`~rnnkit.cells.base` defines the interface they
share and :mod:`~rnnkit.cells.timeloop` the NumPy time loops that run them; the layers in
:mod:`rnnkit.nn` are built on it. Nothing here imports compiled code (see
:mod:`rnnkit.runtime.kernels`). A new cell: ``docs/adding-a-cell.md``.
"""

from rnnkit.cells.base import (
    Cell,
    CellGrads,
    CellParams,
    PackedWeights,
    Regularisation,
    StepCell,
    StepEquations,
    TimeLoop,
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
    "PackedWeights",
    "RNNCell",
    "Regularisation",
    "StepCell",
    "StepEquations",
    "TimeLoop",
]
