"""Data for training: batching of variable-length sequences and truncated-BPTT streams."""

from rnnkit.data.batching import Batch, SequenceData, StreamData, pad_sequences, reset_rows

__all__ = ["Batch", "SequenceData", "StreamData", "pad_sequences", "reset_rows"]
