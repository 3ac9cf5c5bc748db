"""Blocks and models: the recurrent stack every cell shares, embeddings, linear heads, dropout,
pooling, attention, ready models for the tasks (the encoder-decoder and its decoding), and the
parameter-holding base class."""

from rnnkit.nn.attention import Attention, AttentionMemory, AttentionMemoryGrad
from rnnkit.nn.decoding import Hypothesis, beam_search, greedy_decode
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
from rnnkit.nn.seq2seq import DecoderState, Seq2Seq, Seq2SeqCache

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Attention",
    "AttentionMemory",
    "AttentionMemoryGrad",
    "DecoderState",
    "Dropout",
    "Embedding",
    "Hypothesis",
    "LanguageModel",
    "Linear",
    "Model",
    "Module",
    "Pooling",
    "Recurrent",
    "RecurrentCache",
    "Seq2Seq",
    "Seq2SeqCache",
    "SequenceClassifier",
    "SequenceRegressor",
    "beam_search",
    "greedy_decode",
    "make_recurrent",
]
