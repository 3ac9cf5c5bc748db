"""Sequence-to-sequence translation (grapheme-to-phoneme, sentence translation).

- :mod:`~rnnkit.apps.translate.estimator`: :class:`Translator`, the attentional encoder-decoder
  with a scikit-learn interface (fit, beam-search predict, evaluate, save/load);
- :mod:`~rnnkit.apps.translate.metrics`: token and sequence error rates against alternative
  references (PER and WER of G2P), BLEU and chrF as sacreBLEU computes them.

The pairs, tokens, vocabularies and batches are in :mod:`rnnkit.data.pairs`.
"""

from rnnkit.apps.translate.estimator import Translator
from rnnkit.apps.translate.metrics import (
    corpus_bleu,
    corpus_chrf,
    edit_distance,
    sequence_error_rate,
    token_error_rate,
)

__all__ = [
    "Translator",
    "corpus_bleu",
    "corpus_chrf",
    "edit_distance",
    "sequence_error_rate",
    "token_error_rate",
]
