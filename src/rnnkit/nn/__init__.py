"""Layers: the recurrent stack every cell shares, and the parameter-holding base class."""

from rnnkit.nn.module import Module
from rnnkit.nn.recurrent import GRU, LSTM, RNN, Recurrent, RecurrentCache

__all__ = ["GRU", "LSTM", "RNN", "Module", "Recurrent", "RecurrentCache"]
