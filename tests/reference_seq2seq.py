"""An independent PyTorch implementation of rnnkit's attentional encoder-decoder (issue 12), shared
by the parity tests (``tests/test_seq2seq_torch.py``) and the speed benchmark
(``benchmarks/bench_seq2seq.py``).

It is written from the equations of ``rnnkit.nn.seq2seq``'s module docstring and
``rnnkit.nn.attention``'s, not from rnnkit's code: torch's own LSTM / GRU / RNN stacks (the
variable-length encoder on packed sequences, so each direction starts and ends at the sequence's
own length), torch's Embedding and Linear, the attention written out with its mask, the bridge,
the input-feeding loop and the combination, no dropout. Its parameters carry rnnkit's names, so
one ``load_state_dict(strict=True)`` copies the weights and checks that both models have the
same parameters with the same shapes.

It is also written to be a fair peer in a speed comparison, as a PyTorch user would write it:
the source side of the attention score is projected once per source (:meth:`TorchAttention.
prepare`), not at every decoder step, and the memory is kept batch-first, so every score and
context is one batched matrix product. :meth:`TorchSeq2Seq.encode` and :meth:`TorchSeq2Seq.step`
are the pieces a decoder (greedy or beam search) calls; ``forward`` (teacher forcing) is built
from the same pieces.

Shapes: S = source steps, T = target steps, B = batch, E = embedding size, H = hidden size,
K = encoder directions, L = decoder layers, V = target vocabulary, A = additive attention size,
P = projected key size (H, or A for the additive score).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

# a test-only dependency: without it, collecting this module (--doctest-modules) skips it
torch = pytest.importorskip("torch")

pack = torch.nn.utils.rnn

#: rnnkit's cells and the torch modules of the same equations (and gate order).
CELLS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


class TorchAttention(torch.nn.Module):
    """Luong's dot / general and Bahdanau's additive scores, softmax over the valid positions."""

    def __init__(
        self,
        score: str,
        size: int,
        attention_size: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.score = score

        def param(*shape: int) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.empty(*shape, dtype=dtype))

        if score == "general":
            self.weight = param(size, size)  # W (Q, K)
        elif score == "additive":
            A = size if attention_size is None else attention_size
            self.query_weight = param(A, size)  # W_q (A, Q)
            self.key_weight = param(A, size)  # W_k (A, K)
            self.bias = param(A)
            self.v = param(A)
        elif score != "dot":
            raise ValueError(f"score must be 'dot', 'general' or 'additive', got {score!r}")

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """The source side of the score, once per source: keys (B, S, H) -> p (B, S, P)."""
        if self.score == "dot":
            return keys
        if self.score == "general":
            return keys @ self.weight.T  # p_s = W k_s
        return keys @ self.key_weight.T  # p_s = W_k k_s

    def forward(self, query, keys, projected, mask):
        """query (B, T, H), keys (B, S, H), projected (B, S, P), mask (B, S) bool ->
        context (B, T, H), weights (B, T, S)."""
        if self.score == "additive":
            zq = query @ self.query_weight.T + self.bias  # (B, T, A)
            u = torch.tanh(zq[:, :, None, :] + projected[:, None])  # (B, T, S, A)
            scores = u @ self.v  # (B, T, S)
        else:
            scores = query @ projected.transpose(1, 2)  # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S), exactly 0 at padding
        return weights @ keys, weights  # (B, T, H)


class TorchMemory(NamedTuple):
    """What the decoder reads of a batch of sources (rows are sources, or beams of sources)."""

    keys: torch.Tensor  # (B, S, H) the encoder's outputs, both directions joined
    projected: torch.Tensor  # (B, S, P) the source side of the attention score
    mask: torch.Tensor  # (B, S) bool, the valid source steps


class TorchSeq2Seq(torch.nn.Module):
    """The attentional encoder-decoder from its equations, with rnnkit's parameter names and
    arguments (``dtype`` a torch dtype, float64 by default)."""

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        *,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        encoder_layers: int | None = None,
        cell: str = "lstm",
        bidirectional: bool = True,
        attention: str = "general",
        attention_size: int | None = None,
        input_feeding: bool = True,
        bridge: str = "linear",
        tie_embeddings: bool = False,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        kw = {"dtype": dtype}
        rnn = CELLS[cell]
        H = self.H = hidden_size
        self.L, self.Le = num_layers, num_layers if encoder_layers is None else encoder_layers
        self.K = 2 if bidirectional else 1
        self.lstm, self.feeding, self.tied = cell == "lstm", input_feeding, tie_embeddings
        self.dtype = dtype
        emb = embedding_dim
        self.source_embedding = torch.nn.Embedding(source_vocab_size, emb, **kw)
        self.encoder = rnn(emb, H // self.K, self.Le, bidirectional=bidirectional, **kw)
        self.bridge_kind = bridge
        if bridge == "linear":
            self.bridge_h = torch.nn.Linear(H, self.L * H, **kw)
            if self.lstm:
                self.bridge_c = torch.nn.Linear(H, self.L * H, **kw)
        self.target_embedding = torch.nn.Embedding(target_vocab_size, emb, **kw)
        self.decoder = rnn(emb + (H if input_feeding else 0), H, self.L, **kw)
        self.attention = TorchAttention(attention, H, attention_size, dtype)
        self.combine = torch.nn.Linear(2 * H, H, **kw)
        if tie_embeddings:
            self.generator_bias = torch.nn.Parameter(torch.empty(target_vocab_size, **kw))
        else:
            self.generator = torch.nn.Linear(H, target_vocab_size, **kw)

    def encode(self, source, source_lengths) -> tuple[TorchMemory, Any]:
        """source (S, B) ids, source_lengths (B,) int64 -> the memory and the decoder's initial
        state ((L, B, H), or the pair (h, c) for the LSTM)."""
        n_src, n_batch = source.shape
        e = self.source_embedding(source)  # (S, B, E)
        packed = pack.pack_padded_sequence(e, source_lengths, enforce_sorted=False)
        out, final = self.encoder(packed)
        out, _ = pack.pad_packed_sequence(out, batch_first=True, total_length=n_src)  # (B, S, H)
        mask = torch.arange(n_src)[None, :] < source_lengths[:, None]  # (B, S)
        memory = TorchMemory(out, self.attention.prepare(out), mask)

        # the top encoder layer's final states, forward then backward direction: (B, H) each
        finals = final if self.lstm else (final,)
        last = (self.Le - 1) * self.K  # h_n / c_n rows are layer * K + direction
        top = [torch.cat([s[last + k] for k in range(self.K)], -1) for s in finals]
        if self.bridge_kind == "zeros":
            s0 = [torch.zeros(self.L, n_batch, self.H, dtype=self.dtype) for _ in top]
        else:
            bridges = [self.bridge_h, self.bridge_c] if self.lstm else [self.bridge_h]
            # one Linear(H, L*H) per state kind: layer l takes outputs l*H .. (l+1)*H
            s0 = [
                torch.tanh(lin(s)).reshape(n_batch, self.L, self.H).transpose(0, 1)  # (L, B, H)
                for lin, s in zip(bridges, top)
            ]
        return memory, tuple(s0) if self.lstm else s0[0]

    def step(self, f_t, feed, state, memory: TorchMemory):
        """One decoder step: the embedded previous tokens f_t (B, E), the last attentional state
        feed (B, H) (input feeding; else None) and the decoder state -> the attentional state
        h~_t (B, H), the new state and the attention weights (B, S)."""
        u = f_t if feed is None else torch.cat([f_t, feed], -1)  # (B, E [+ H])
        h, state = self.decoder(u[None], state)  # (1, B, H)
        h = h[0]
        ctx, weights = self.attention(h[:, None], *memory)  # (B, 1, H), (B, 1, S)
        attentional = torch.tanh(self.combine(torch.cat([ctx[:, 0], h], -1)))  # (B, H)
        return attentional, state, weights[:, 0]

    def generate(self, attentional):
        """The logits (..., V) of attentional states (..., H)."""
        if self.tied:
            return attentional @ self.target_embedding.weight.T + self.generator_bias
        return self.generator(attentional)

    def forward(self, source, source_lengths, target_in):
        """source (S, B), source_lengths (B,), target_in (T, B) -> logits (T, B, V)."""
        memory, state = self.encode(source, source_lengths)
        f = self.target_embedding(target_in)  # (T, B, E)
        if not self.feeding:
            h, _ = self.decoder(f, state)  # (T, B, H)
            ctx, _ = self.attention(h.transpose(0, 1), *memory)  # (B, T, H)
            attentional = torch.tanh(self.combine(torch.cat([ctx.transpose(0, 1), h], -1)))
        else:
            feed = torch.zeros(f.shape[1], self.H, dtype=self.dtype)  # h~_0 = 0
            steps = []
            for f_t in f:
                feed, state, _ = self.step(f_t, feed, state, memory)
                steps.append(feed)
            attentional = torch.stack(steps)  # (T, B, H)
        return self.generate(attentional)  # (T, B, V)
