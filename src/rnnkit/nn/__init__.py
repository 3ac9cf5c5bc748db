"""Blocks and models: the recurrent stack every cell shares, embeddings, linear heads, dropout,
pooling, attention, ready models for the tasks, and the parameter-holding base class."""

from rnnkit.nn.attention import Attention, AttentionMemory, AttentionMemoryGrad
from rnnkit.nn.dropout import Dropout
from rnnkit.nn.embedding import Embedding
from rnnkit.nn.linear import Linear
from rnnkit.nn.models import (
    LanguageModel,
    Model,
    SequenceClassifier,
    SequenceRegressor,
    make_recurrent,
)
from rnnkit.nn.module import Module
from rnnkit.nn.pooling import Pooling
from rnnkit.nn.recurrent import GRU, LSTM, RNN, Recurrent, RecurrentCache

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Attention",
    "AttentionMemory",
    "AttentionMemoryGrad",
    "Dropout",
    "Embedding",
    "LanguageModel",
    "Linear",
    "Model",
    "Module",
    "Pooling",
    "Recurrent",
    "RecurrentCache",
    "SequenceClassifier",
    "SequenceRegressor",
    "make_recurrent",
]
