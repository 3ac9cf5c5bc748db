"""Data: batching of variable-length sequences and truncated-BPTT streams, and the public
loaders for CSV series and UCR/UEA ``.ts`` classification files."""

from rnnkit.data.batching import Batch, SequenceData, StreamData, pad_sequences, reset_rows
from rnnkit.data.series import Series, load_csv_series
from rnnkit.data.text import Vocabulary, default_corpus, load_text
from rnnkit.data.ts import TSDataset, load_classification_csv, load_ts

__all__ = [
    "Batch",
    "SequenceData",
    "Series",
    "StreamData",
    "TSDataset",
    "Vocabulary",
    "default_corpus",
    "load_classification_csv",
    "load_csv_series",
    "load_text",
    "load_ts",
    "pad_sequences",
    "reset_rows",
]
