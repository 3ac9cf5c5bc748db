r"""A lookup table of vectors, one per token: the input layer of a language model.

Forward: :math:`e = W[\mathrm{ids}]`. Backward: each row of :math:`W` collects the gradients of
every position that looked it up, :math:`\partial L / \partial W_k = \sum_{p: \mathrm{ids}_p = k}
\partial L / \partial e_p` (the padding row, if any, gets none).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rnnkit import _checks, limits
from rnnkit.nn.module import Module


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (...) the token ids looked up


class Embedding(Module):
    """``weight`` (N, E) looked up by integer ids; PyTorch's name and N(0, 1) initialisation.

    Args:
        num_embeddings: N, the vocabulary size.
        embedding_dim: E.
        padding_idx: optional id whose row is zero and never receives a gradient.
        dtype: ``np.float32`` (default) or ``np.float64``.
        seed: int, Generator or None.

    Example:
        >>> import numpy as np, rnnkit
        >>> emb = rnnkit.Embedding(10, 4, dtype=np.float64, seed=0)
        >>> e, cache = emb.forward(np.array([[1, 2], [1, 9]]))  # (T, B) ids
        >>> _, grads = emb.backward(np.ones_like(e), cache)
        >>> e.shape, grads["weight"][1].tolist()  # id 1 was used twice
        ((2, 2, 4), [2.0, 2.0, 2.0, 2.0])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        dtype: Any = np.float32,
        seed: Any = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _checks.positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = _checks.positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx must be an int or None, got {padding_idx!r}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"padding_idx must lie in [-{self.num_embeddings}, {self.num_embeddings}), "
                    f"got {padding_idx}"
                )
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.dtype = _checks.float_dtype(dtype)
        limits.check_parameters(
            f"Embedding({self.num_embeddings}, {self.embedding_dim})",
            self.count_parameters(self.num_embeddings, self.embedding_dim),
            self.dtype.itemsize,
        )
        rng = _checks.rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        self._params["weight"] = weight

    @staticmethod
    def count_parameters(num_embeddings: int, embedding_dim: int) -> int:
        """The number of parameters of an Embedding of these sizes, ``N*E``: a Python int."""
        return int(num_embeddings) * int(embedding_dim)

    def forward(self, ids: Any) -> tuple[np.ndarray, EmbeddingCache]:
        """Integer ``ids`` of any shape (...) -> vectors (..., E)."""
        ids = _checks.token_ids("ids", ids, self.num_embeddings)
        limits.check_memory(
            lambda: f"the vectors of {self!r} for ids of shape {ids.shape}",
            limits.array_bytes((*ids.shape, self.embedding_dim), self.dtype.itemsize),
        )
        return self._params["weight"][ids], EmbeddingCache(ids)

    def backward(self, de: np.ndarray, cache: EmbeddingCache) -> tuple[None, dict]:
        """dL/de (..., E) -> (None, {"weight": dL/dW}): ids have no gradient."""
        de = _checks.array("de", de, (*cache.ids.shape, self.embedding_dim), self.dtype)
        dW = np.zeros_like(self._params["weight"])
        np.add.at(dW, cache.ids.reshape(-1), de.reshape(-1, self.embedding_dim))
        if self.padding_idx is not None:
            dW[self.padding_idx] = 0.0
        return None, {"weight": dW}

    def __repr__(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return (
            f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, dtype={self.dtype.name})"
        )
