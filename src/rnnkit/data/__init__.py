"""Data: batching of variable-length sequences and truncated-BPTT streams, the public loaders
for CSV series and UCR/UEA ``.ts`` classification files, and source/target pairs for
sequence-to-sequence models."""

from rnnkit.data.batching import Batch, SequenceData, StreamData, pad_sequences, reset_rows
from rnnkit.data.pairs import (
    BOS,
    EOS,
    PAD,
    UNK,
    PairData,
    Seq2SeqInput,
    SourceBatch,
    TokenVocabulary,
    detokenize,
    group_references,
    read_pairs,
    source_batches,
    split_by_source,
    tokenize,
)
from rnnkit.data.series import Series, load_csv_series
from rnnkit.data.text import Vocabulary, default_corpus, load_text
from rnnkit.data.ts import TSDataset, load_classification_csv, load_ts

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "Batch",
    "PairData",
    "Seq2SeqInput",
    "SequenceData",
    "Series",
    "SourceBatch",
    "StreamData",
    "TSDataset",
    "TokenVocabulary",
    "Vocabulary",
    "default_corpus",
    "detokenize",
    "group_references",
    "load_classification_csv",
    "load_csv_series",
    "load_text",
    "load_ts",
    "pad_sequences",
    "read_pairs",
    "reset_rows",
    "source_batches",
    "split_by_source",
    "tokenize",
]
