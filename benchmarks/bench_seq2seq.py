"""Time rnnkit's attentional encoder-decoder (Seq2Seq) against PyTorch on the same model (issue 12):
training target tokens per second and beam-search (and greedy) decoding words per second.

The model: the Translator's grapheme-to-phoneme setup, characters in and phonemes out, an
embedding of ``E`` = 64, a 1-layer bidirectional LSTM encoder, an ``L``-layer LSTM decoder with
``H`` units, the linear bridge, general (Luong) attention, input feeding, no dropout, float32,
batches of 64 pairs (the sizes: ``CONFIGS``). The data: ``../shared/data/g2p/cmudict-train.tsv``
(relative to the repository root) when it exists, else synthetic pairs with CMUdict's lengths
(random letters in, random phonemes out); 5 % of the words are held out (``split_by_source``)
and the decoded words come from them. The peer: ``tests/reference_seq2seq.py``, the independent
PyTorch implementation the parity tests check rnnkit against (torch's LSTM on packed sequences,
the attention's source projection computed once per source, batched matrix products), with
rnnkit's weights copied in by one ``load_state_dict``.

For each model size:

1. Pre-training (not timed): rnnkit trains the model for ``Config.pretrain_steps`` (200) Adam
   steps (``Trainer.fit``), so that the check and the decoding use the weights of a model that
   has learnt something (an untrained model decodes to the maximum length).
2. Check: with these weights copied into both, on the first timed batch, the loss (masked
   cross-entropy, the mean over the target tokens) and the gradient of every parameter agree,
   in float64 to ``F64_RTOL`` relative to the magnitude and in float32 to ``F32_LOSS_RTOL`` /
   ``F32_GRAD_RTOL``. The largest errors are reported in the "check" column.
3. Training: a full step (forward, loss, backward, Adam update) on each of
   ``Config.train_batches`` (8) fixed batches, the same for both (drawn from ``PairData``'s
   length-sorted pools). rnnkit runs through ``Trainer._step`` (the step of ``Trainer.fit``:
   loss, gradients, finiteness checks, the Adam update); torch as a PyTorch user writes it
   (``zero_grad``, forward, ``F.cross_entropy(..., ignore_index=PAD)``, ``backward``,
   ``torch.optim.Adam.step``). Both start from the pre-trained weights. Reported: target tokens
   (EOS included) per second.
4. Decoding: ``Config.decode_words`` (500) held-out words, in batches of 64 sorted by length
   (as the Translator decodes), beam search of width 5 (``rnnkit.nn.decoding.beam_search``:
   stopping "beam", length penalty "average") and greedy search, each output at most 2 S + 10
   tokens. The torch side is the batched search written below (:func:`torch_beam_search`,
   :func:`torch_greedy`, under ``torch.inference_mode()``), with the same candidates, the same
   finishing and stopping rules and the same length normalisation. Check: in float64, on
   ``Config.f64_words`` (32) words, the top-1 outputs of both must be identical and their
   scores agree to ``F64_RTOL``; in float32 the column "check" reports the share of words whose
   top-1 outputs agree (rounding can swap near-ties). Reported: words per second.

Timing: the median of ``ROUNDS`` x ``--repeats`` runs of each function (``time.perf_counter``),
rnnkit and torch in alternating blocks, each block after a warm-up run (``common.block_times``
says why blocks). ratio = rnnkit time / torch time (< 1: rnnkit faster); compare ratios, not
absolute figures, on these shared machines.

Threads: rnnkit runs as the ``rnnkit`` command runs it (``rnnkit.apps.cli.app.main``): NumPy's
BLAS on one thread (``rnnkit.runtime.threads.set_blas_threads(1)``, unless
``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` is set) and glibc's allocator keeping freed
memory (``rnnkit.runtime.memory.keep_freed_memory()``, a setting of the whole process, so torch
runs with it too), the compiled kernels on their own threads (``RNNKIT_NUM_THREADS``, default:
the CPUs available). torch: ``torch.set_num_threads(2)``. rnnkit's settings are made before torch is
imported, so the BLAS limit reaches only NumPy's BLAS.

Run from the repository root (``--quick``: tiny sizes, a smoke test of well under a minute)::

    python benchmarks/bench_seq2seq.py [--quick] [--repeats N] [--markdown]

Shapes: S = source steps, T = target steps, B = batch, E = embedding size, H = hidden size,
L = decoder layers, V = target vocabulary, k = beam width, A = inputs still decoding,
w = live hypotheses per input, N = A w rows.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import common
import rnnkit
from common import positive_int
from rnnkit.data.pairs import (
    BOS,
    EOS,
    PAD,
    PairData,
    SourceBatch,
    TokenVocabulary,
    read_pairs,
    source_batches,
    split_by_source,
    tokenize,
)
from rnnkit.losses import cross_entropy
from rnnkit.nn.decoding import beam_search, greedy_decode
from rnnkit.nn.seq2seq import Seq2Seq
from rnnkit.runtime import kernels, memory, threads

TORCH_THREADS = 2


def run_rnnkit_as_its_command() -> bool:
    """The settings of the ``rnnkit`` command (``rnnkit.apps.cli.app.main``); True when the
    BLAS limit was set. Called before torch is imported: the limit reaches only the BLAS
    libraries loaded at its first call (NumPy's), never a BLAS torch might load."""
    limited = False
    if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        limited = threads.set_blas_threads(1)
    memory.keep_freed_memory()
    return limited


BLAS_LIMITED = run_rnnkit_as_its_command()

import torch  # noqa: E402  (after the BLAS limit, see run_rnnkit_as_its_command)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from reference_seq2seq import TorchMemory, TorchSeq2Seq  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "g2p" / "cmudict-train.tsv"
SEED = 0
ROUNDS = 2  # alternating timing blocks per implementation
DEV_FRACTION = 0.05
LR = 2e-3  # the Translator's
CLIP_NORM = 5.0  # pre-training only (the Translator's)

F64_RTOL = 1e-9  # float64: loss, gradients, beam scores
F32_LOSS_RTOL = 1e-5
F32_GRAD_RTOL = 1e-3

BEAM = 5
LENGTH_PENALTY = "average"  # the Translator's: score = log-probability / L (EOS counted)
MAX_LENGTH_RATIO, MAX_LENGTH_OFFSET = 2, 10  # at most 2 S + 10 output tokens


@dataclass(frozen=True)
class Config:
    """One model size, and the amounts of work that go with it."""

    hidden_size: int  # H
    num_layers: int  # L, the decoder's
    embedding_dim: int = 64  # E
    batch_size: int = 64  # B
    train_batches: int = 8  # batches of one timed training run
    decode_words: int = 500  # words of one timed decoding run
    f64_words: int = 32  # words of the float64 decoding check
    pretrain_steps: int = 200

    def name(self) -> str:
        return f"H={self.hidden_size} L={self.num_layers}"


CONFIGS = (Config(256, 1), Config(256, 2), Config(512, 1))
QUICK = {
    "embedding_dim": 16,
    "batch_size": 16,
    "train_batches": 2,
    "decode_words": 40,
    "f64_words": 8,
    "pretrain_steps": 20,
}
QUICK_CONFIGS = (Config(32, 1, **QUICK), Config(32, 2, **QUICK))


# -- data -----------------------------------------------------------------------------------------

#: CMUdict's training file (113,438 pairs): words of n characters for n = 0, 1, ..., 22, and
#: how many phonemes a pronunciation has beyond its word's characters (d = T - S).
CMUDICT_SOURCE_LENGTHS = (
    0, 23, 233, 1464, 6030, 13424, 20086, 21184, 17494, 13240, 9029, 5268, 2956, 1623, 709, 395,
    168, 73, 27, 7, 4, 0, 1,
)  # fmt: skip
CMUDICT_LENGTH_CHANGES = {
    -6: 24, -5: 243, -4: 1528, -3: 7960, -2: 28151, -1: 44559, 0: 28966, 1: 1749, 2: 142, 3: 65,
    4: 20,
}  # fmt: skip
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
PHONEMES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V "
    "W Y Z ZH"
).split()


def synthetic_pairs(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``n`` pairs of random letters and random phonemes with CMUdict's lengths."""
    p_src = np.array(CMUDICT_SOURCE_LENGTHS, dtype=np.float64)
    changes = np.array(list(CMUDICT_LENGTH_CHANGES))
    p_change = np.array(list(CMUDICT_LENGTH_CHANGES.values()), dtype=np.float64)
    S = rng.choice(len(p_src), size=n, p=p_src / p_src.sum())  # (n,)
    T = np.maximum(1, S + rng.choice(changes, size=n, p=p_change / p_change.sum()))  # (n,)
    letters = np.array(list(LETTERS))[rng.integers(len(LETTERS), size=S.sum())]
    phonemes = np.array(PHONEMES)[rng.integers(len(PHONEMES), size=T.sum())]
    words = np.split(letters, np.cumsum(S)[:-1])
    prons = np.split(phonemes, np.cumsum(T)[:-1])
    return [("".join(w), " ".join(p)) for w, p in zip(words, prons)]


@dataclass
class Data:
    """The training pairs as batches, the held-out words to decode, the vocabularies."""

    description: str
    source_vocab: TokenVocabulary
    target_vocab: TokenVocabulary
    train: PairData
    words: list[np.ndarray]  # held-out sources as ids, distinct, spread over the held-out set

    def train_batches(self, n: int, seed: int) -> list[Any]:
        """The first n batches of an epoch: pools of 64 batches sorted by length, shuffled."""
        order = self.train.order(np.random.default_rng(seed))
        return [self.train.batch(order, i) for i in range(n)]

    def decode_words(self, n: int) -> list[np.ndarray]:
        step = max(1, len(self.words) // n)
        return self.words[::step][:n]


def load_data(batch_size: int) -> Data:
    if DATA.exists():
        pairs = read_pairs(DATA)
        description = f"{DATA.name}: CMUdict, {len(pairs):,} pairs (chars in, phonemes out)"
    else:
        pairs = synthetic_pairs(113_438, np.random.default_rng(SEED))
        description = (
            f"synthetic: {len(pairs):,} pairs of random letters and phonemes with CMUdict's "
            f"lengths ({DATA} not found)"
        )
    train, dev = split_by_source(pairs, DEV_FRACTION)
    source_vocab = TokenVocabulary.from_sequences(
        tokenize(s, "chars") for s in dict.fromkeys(s for s, _ in train)
    )
    target_vocab = TokenVocabulary.from_sequences(tokenize(t, "words") for _, t in train)
    data = PairData.from_pairs(train, source_vocab, target_vocab, batch_size)
    words = [source_vocab.encode(tokenize(s, "chars")) for s in dict.fromkeys(s for s, _ in dev)]
    description += (
        f"; {len(train):,} training pairs, {len(words):,} held-out words; vocabularies "
        f"{len(source_vocab)} in, {len(target_vocab)} out (4 special ids each)"
    )
    return Data(description, source_vocab, target_vocab, data, words)


# -- the two models -------------------------------------------------------------------------------


def model_options(cfg: Config) -> dict[str, Any]:
    """What both constructors take: the Translator's defaults, H and L aside (and no
    dropout: the torch model has none)."""
    return {
        "embedding_dim": cfg.embedding_dim,
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_layers,
        "encoder_layers": 1,
        "cell": "lstm",
        "bidirectional": True,
        "attention": "general",
        "input_feeding": True,
        "bridge": "linear",
    }


def rnnkit_model(cfg: Config, data: Data, weights: dict | None, dtype: Any) -> Seq2Seq:
    model = Seq2Seq(
        len(data.source_vocab),
        len(data.target_vocab),
        dtype=dtype,
        seed=SEED,
        **model_options(cfg),
    )
    if weights is not None:
        model.load_state_dict({k: v.astype(dtype) for k, v in weights.items()})
    return model


def torch_model(cfg: Config, data: Data, weights: dict, dtype: Any) -> TorchSeq2Seq:
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    ref = TorchSeq2Seq(
        len(data.source_vocab), len(data.target_vocab), dtype=tdtype, **model_options(cfg)
    )
    ref.load_state_dict({k: torch.from_numpy(v.astype(dtype)) for k, v in weights.items()})
    return ref


def pretrain(cfg: Config, data: Data) -> tuple[dict[str, np.ndarray], float]:
    """rnnkit's float32 weights after ``cfg.pretrain_steps`` Adam steps (``Trainer.fit``), and
    the mean training loss of the last 10 steps."""
    model = rnnkit_model(cfg, data, None, np.float32)
    trainer = rnnkit.Trainer(
        model,
        rnnkit.optim.Adam(model.parameters(), lr=LR),
        "cross_entropy",
        clip_norm=CLIP_NORM,
        seed=SEED,
        checkpoint_seconds=None,
    )
    trainer.fit(data.train, steps=cfg.pretrain_steps)
    losses = trainer.history["loss"]
    return model.state_dict(), float(np.mean(losses[-10:]))


# -- the check of the loss and the gradients ------------------------------------------------------


@dataclass(frozen=True)
class TorchBatch:
    source: torch.Tensor  # (S, B) int64
    source_lengths: torch.Tensor  # (B,) int64
    target_in: torch.Tensor  # (T, B) int64
    targets: torch.Tensor  # (T * B,) int64, PAD where padded
    tokens: int  # the target tokens (EOS included)


def torch_batch(batch: Any) -> TorchBatch:
    x = batch.x
    targets = np.where(batch.mask, batch.y, PAD)  # (T, B)
    return TorchBatch(
        torch.from_numpy(np.ascontiguousarray(x.source, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(x.source_lengths, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(x.target_in, dtype=np.int64)),
        torch.from_numpy(targets.astype(np.int64).ravel()),
        int(batch.mask.sum()),
    )


def torch_loss(ref: TorchSeq2Seq, tb: TorchBatch) -> torch.Tensor:
    """The mean cross-entropy over the target tokens (PAD is never a target)."""
    logits = ref(tb.source, tb.source_lengths, tb.target_in)  # (T, B, V)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tb.targets, ignore_index=PAD
    )


def check_training(cfg: Config, data: Data, weights: dict, batch: Any, dtype: Any) -> tuple:
    """(loss error, worst gradient error, its name): rnnkit against torch, relative."""
    model = rnnkit_model(cfg, data, weights, dtype)
    logits, _, cache = model.forward(batch.x)
    loss, dlogits = cross_entropy(logits, batch.y, mask=batch.mask)
    _, _, grads = model.backward(dlogits, cache)

    ref = torch_model(cfg, data, weights, dtype)
    tloss = torch_loss(ref, torch_batch(batch))
    tloss.backward()
    loss_err = abs(loss - tloss.item()) / abs(tloss.item())
    tgrads = dict(ref.named_parameters())
    if sorted(grads) != sorted(tgrads):
        raise AssertionError(f"{cfg.name()}: parameters {sorted(grads)} != {sorted(tgrads)}")
    errors = {k: common.relative_error(g, tgrads[k].grad.numpy()) for k, g in grads.items()}
    worst = max(errors, key=errors.__getitem__)
    return loss_err, errors[worst], worst


def check_all_training(cfg: Config, data: Data, weights: dict, batch: Any) -> str:
    """The float64 and float32 checks; raises AssertionError outside the tolerances."""
    parts = []
    for dtype, loss_tol, grad_tol in (
        (np.float64, F64_RTOL, F64_RTOL),
        (np.float32, F32_LOSS_RTOL, F32_GRAD_RTOL),
    ):
        loss_err, grad_err, worst = check_training(cfg, data, weights, batch, dtype)
        what = f"{cfg.name()} {np.dtype(dtype).name}"
        print(
            f"  check {what}: loss rel. error {loss_err:.1e}, gradients {grad_err:.1e} "
            f"(worst d{worst})",
            file=sys.stderr,
            flush=True,
        )
        if not loss_err <= loss_tol:
            raise AssertionError(f"{what}: loss relative error {loss_err:.2e} > {loss_tol:.0e}")
        if not grad_err <= grad_tol:
            raise AssertionError(f"{what}: d{worst} relative error {grad_err:.2e} > {grad_tol:.0e}")
        parts.append(f"f{np.dtype(dtype).itemsize * 8} loss {loss_err:.0e} grad {grad_err:.0e}")
    return ", ".join(parts)


# -- training -------------------------------------------------------------------------------------


def rnnkit_training(model: Seq2Seq, batches: list) -> Callable[[], None]:
    """One training run: a ``Trainer`` step (forward, loss, backward, Adam) per batch."""
    trainer = rnnkit.Trainer(
        model,
        rnnkit.optim.Adam(model.parameters(), lr=LR),
        "cross_entropy",
        checkpoint_seconds=None,
    )

    def run() -> None:
        for batch in batches:
            trainer._step([batch])

    return run


def torch_training(ref: TorchSeq2Seq, batches: list[TorchBatch]) -> Callable[[], None]:
    """One training run as a PyTorch user writes it: zero_grad, loss, backward, Adam."""
    opt = torch.optim.Adam(ref.parameters(), lr=LR)

    def run() -> None:
        for tb in batches:
            opt.zero_grad(set_to_none=True)
            torch_loss(ref, tb).backward()
            opt.step()

    return run


# -- decoding -------------------------------------------------------------------------------------


def max_lengths(source_lengths: np.ndarray) -> np.ndarray:
    """The most output tokens of each input, EOS included: 2 S + 10 (the Translator's)."""
    return (MAX_LENGTH_RATIO * source_lengths + MAX_LENGTH_OFFSET).astype(np.intp)


def rnnkit_decode(model: Seq2Seq, batches: list[SourceBatch], n: int, beam: int) -> list:
    """The top-1 (tokens, score) of each word, in word order: beam search, or greedy for 1."""
    out: list[Any] = [None] * n
    for b in batches:
        kw = {"max_length": max_lengths(b.source_lengths), "length_penalty": LENGTH_PENALTY}
        if beam == 1:
            found = greedy_decode(model, b.source, b.source_lengths, **kw)
        else:
            found = [h[0] for h in beam_search(model, b.source, b.source_lengths, beam=beam, **kw)]
        for i, h in zip(b.indices.tolist(), found):
            out[i] = (h.tokens, h.score)
    return out


def _select(memory: TorchMemory, state: Any, feed: Any, rows: torch.Tensor) -> tuple:
    """The decoding state of ``rows`` (N,) (beams made, reordered, inputs dropped)."""
    memory = TorchMemory(*(m.index_select(0, rows) for m in memory))
    if isinstance(state, tuple):  # the LSTM's (h, c), (L, N, H) each
        state = tuple(s.index_select(1, rows) for s in state)
    else:
        state = state.index_select(1, rows)
    return memory, state, None if feed is None else feed.index_select(0, rows)


def _log_probs(ref: TorchSeq2Seq, tokens, feed, state, memory) -> tuple:
    """One decoder step for every row: log-probabilities (N, V) in float64, PAD and BOS
    excluded, the new state and the attentional states (the next step's input feed)."""
    attentional, state, _ = ref.step(ref.target_embedding(tokens), feed, state, memory)
    lp = torch.log_softmax(ref.generate(attentional), dim=-1).double()  # (N, V)
    lp[:, PAD] = float("-inf")
    lp[:, BOS] = float("-inf")
    return lp, state, attentional if ref.feeding else None


def torch_greedy(ref: TorchSeq2Seq, source, source_lengths, max_length: np.ndarray) -> list:
    """The most probable next token at each step until EOS or the maximum length: a batch's
    (tokens, score) per input; inputs that stop leave the batch."""
    B = source.shape[1]
    memory, state = ref.encode(source, source_lengths)
    feed = torch.zeros(B, ref.H, dtype=ref.dtype) if ref.feeding else None
    max_len = torch.from_numpy(max_length)
    out = torch.full((B, int(max_len.max())), PAD, dtype=torch.long)  # (B, M)
    log_prob = torch.zeros(B, dtype=torch.float64)
    steps = torch.zeros(B, dtype=torch.long)
    finished = torch.zeros(B, dtype=torch.bool)
    active = torch.arange(B)
    tokens = torch.full((B,), BOS, dtype=torch.long)
    for t in range(1, out.shape[1] + 1):
        lp, state, feed = _log_probs(ref, tokens, feed, state, memory)
        best, tokens = lp.max(dim=1)  # (A,)
        out[active, t - 1] = tokens
        log_prob[active] += best
        steps[active] = t
        eos = tokens == EOS
        finished[active] = eos
        keep = ~eos & (max_len[active] > t)
        if not keep.any():
            break
        if not keep.all():
            rows = keep.nonzero().squeeze(1)
            memory, state, feed = _select(memory, state, feed, rows)
            active, tokens = active[rows], tokens[rows]
    lengths = steps - finished.long()  # tokens without the EOS
    scores = log_prob / steps  # "average"
    return [(out[b, : lengths[b]].tolist(), scores[b].item()) for b in range(B)]


def torch_beam_search(
    ref: TorchSeq2Seq, source, source_lengths, max_length: np.ndarray, beam: int
) -> list:
    """Batched beam search of width k with rnnkit's rules (``rnnkit.nn.decoding``): at each
    step every input ranks its w V candidates by log-probability; EOS candidates among the first
    k finish, the first k others stay live; an input stops once k hypotheses finished, or at its
    maximum length (its live hypotheses then finish unfinished, "cut"); score = log-probability
    / L (EOS counted). Returns each input's best (tokens, score); ties go to the hypothesis
    found first."""
    k = beam
    B = source.shape[1]
    memory, state = ref.encode(source, source_lengths)
    feed = torch.zeros(B, ref.H, dtype=ref.dtype) if ref.feeding else None
    max_len = torch.from_numpy(max_length)
    M = int(max_len.max())
    best_score = torch.full((B,), float("-inf"), dtype=torch.float64)
    best_seq = torch.full((B, M), PAD, dtype=torch.long)  # (B, M) the best's tokens
    best_len = torch.zeros(B, dtype=torch.long)
    n_finished = torch.zeros(B, dtype=torch.long)
    active = torch.arange(B)  # (A,) inputs still searched
    lp = torch.zeros(B, 1, dtype=torch.float64)  # (A, w) log-probs of the live hypotheses
    tokens = torch.full((B,), BOS, dtype=torch.long)  # (N,)
    seqs = torch.empty(B, 0, dtype=torch.long)  # (N, t - 1) the live hypotheses' tokens

    def offer(a, rows, extra, scores, length) -> None:
        """Hypotheses (input a, the tokens of row ``rows`` + ``extra``) join the pool; each
        input's first one is its best of the step (ranked first): it replaces the input's
        best when it scores strictly higher."""
        first = torch.ones_like(a, dtype=torch.bool)
        first[1:] = a[1:] != a[:-1]
        a, rows, scores = a[first], rows[first], scores[first]
        better = scores > best_score[active[a]]
        a, rows, scores = a[better], rows[better], scores[better]
        b = active[a]
        best_score[b] = scores
        best_seq[b, : seqs.shape[1]] = seqs[rows]
        if extra is not None:
            best_seq[b, seqs.shape[1]] = extra[first][better]
        best_len[b] = length

    V = ref.target_embedding.num_embeddings
    for t in range(1, M + 1):
        A, w = lp.shape
        step_lp, state, feed = _log_probs(ref, tokens, feed, state, memory)  # (N, V)
        cand = (step_lp + lp.reshape(-1, 1)).reshape(A, w * V)  # (A, wV)
        top_lp, top = cand.topk(min(2 * k, w * V), dim=1)  # (A, C) best first
        is_eos = top % V == EOS
        kk = min(k, top.shape[1])

        done = is_eos[:, :kk] & (top_lp[:, :kk] > float("-inf"))  # (A, kk): finished
        a_done, c_done = done.nonzero(as_tuple=True)  # by input, then rank
        if a_done.numel():
            rows = a_done * w + top[a_done, c_done] // V
            offer(a_done, rows, None, top_lp[a_done, c_done] / t, t - 1)

        # the first k that are not EOS (a stable sort moves the EOS ones back): live
        live = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :kk]
        live_idx = top.gather(1, live)  # (A, w')
        live_lp = top_lp.gather(1, live)
        live_lp[live_idx % V == EOS] = float("-inf")  # too few non-EOS: dead beams
        live_rows = torch.arange(A)[:, None] * w + live_idx // V  # (A, w')
        live_tok = live_idx % V
        alive = live_lp > float("-inf")

        at_max = max_len[active] == t  # (A,)
        a_cut, j_cut = (at_max[:, None] & alive).nonzero(as_tuple=True)
        if a_cut.numel():  # cut at the maximum length
            offer(
                a_cut,
                live_rows[a_cut, j_cut],
                live_tok[a_cut, j_cut],
                live_lp[a_cut, j_cut] / t,
                t,
            )

        n_finished[active] += done.sum(dim=1)
        stop = at_max | ~alive.any(dim=1) | (n_finished[active] >= k)
        keep = (~stop).nonzero().squeeze(1)
        if not keep.numel():
            break
        rows = live_rows[keep].reshape(-1)  # (N',) stopped inputs leave the batch
        tokens = live_tok[keep].reshape(-1)
        seqs = torch.cat([seqs[rows], tokens[:, None]], dim=1)
        memory, state, feed = _select(memory, state, feed, rows)
        active, lp = active[keep], live_lp[keep]
    return [(best_seq[b, : best_len[b]].tolist(), best_score[b].item()) for b in range(B)]


def torch_decode(ref: TorchSeq2Seq, batches: list[SourceBatch], n: int, beam: int) -> list:
    """As :func:`rnnkit_decode`, with torch under ``inference_mode``."""
    out: list[Any] = [None] * n
    with torch.inference_mode():
        for b in batches:
            src = torch.from_numpy(b.source.astype(np.int64))
            lens = torch.from_numpy(b.source_lengths.astype(np.int64))
            max_len = max_lengths(b.source_lengths).astype(np.int64)
            if beam == 1:
                found = torch_greedy(ref, src, lens, max_len)
            else:
                found = torch_beam_search(ref, src, lens, max_len, beam)
            for i, h in zip(b.indices.tolist(), found):
                out[i] = h
    return out


def check_decoding_f64(cfg: Config, data: Data, weights: dict, beam: int) -> int:
    """Float64: the same top-1 outputs on ``cfg.f64_words`` words, their scores to F64_RTOL
    (relative; absolute for scores within 1 nat of 0, where a relative error of a confident
    model's tiny log-probabilities says little); returns the number of words checked, raises
    AssertionError otherwise."""
    words = data.decode_words(cfg.f64_words)
    batches = list(source_batches(words, cfg.batch_size))
    ours = rnnkit_decode(rnnkit_model(cfg, data, weights, np.float64), batches, len(words), beam)
    theirs = torch_decode(torch_model(cfg, data, weights, np.float64), batches, len(words), beam)
    for i, ((tok, score), (ttok, tscore)) in enumerate(zip(ours, theirs)):
        err = abs(score - tscore) / max(abs(tscore), 1.0)  # relative, absolute below 1
        if tok != ttok or not err <= F64_RTOL:
            raise AssertionError(
                f"{cfg.name()} float64 {'greedy' if beam == 1 else f'beam {beam}'}, word {i}: "
                f"rnnkit {tok} (score {score:.12g}), torch {ttok} (score {tscore:.12g})"
            )
    return len(words)


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    task: str  # "train", f"beam {k}", "greedy"
    check: str
    rnnkit_rate: float  # per second
    torch_rate: float
    unit: str

    @property
    def ratio(self) -> float:
        """rnnkit time / torch time for the same work."""
        return self.torch_rate / self.rnnkit_rate


@dataclass(frozen=True)
class Row:
    config: Config
    pretrain_loss: float
    measures: tuple[Measure, ...]


def timed(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int) -> list[float]:
    gc.collect()
    return common.median_times(fns, repeats, warmup, ROUNDS)


def measure(cfg: Config, data: Data, repeats: int, warmup: int) -> Row:
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    say(f"{cfg.name()}: pre-training {cfg.pretrain_steps} steps")
    weights, pretrain_loss = pretrain(cfg, data)
    batches = data.train_batches(cfg.train_batches, SEED + 1)
    check = check_all_training(cfg, data, weights, batches[0])

    say(f"{cfg.name()}: timing training")
    tbatches = [torch_batch(b) for b in batches]
    tokens = sum(tb.tokens for tb in tbatches)
    times = timed(
        [
            rnnkit_training(rnnkit_model(cfg, data, weights, np.float32), batches),
            torch_training(torch_model(cfg, data, weights, np.float32), tbatches),
        ],
        repeats,
        warmup,
    )
    measures = [Measure("train", check, tokens / times[0], tokens / times[1], "tokens/s")]

    words = data.decode_words(cfg.decode_words)
    sbatches = list(source_batches(words, cfg.batch_size))
    model = rnnkit_model(cfg, data, weights, np.float32).eval()
    ref = torch_model(cfg, data, weights, np.float32).eval()
    for beam in (BEAM, 1):
        task = "greedy" if beam == 1 else f"beam {beam}"
        say(f"{cfg.name()}: checking and timing {task} decoding")
        checked = check_decoding_f64(cfg, data, weights, beam)
        ours = rnnkit_decode(model, sbatches, len(words), beam)
        theirs = torch_decode(ref, sbatches, len(words), beam)
        same = sum(a[0] == b[0] for a, b in zip(ours, theirs))
        check = (
            f"f64 {checked}/{checked} same; f32 top-1 agree {same}/{len(words)} "
            f"({100 * same / len(words):.1f}%)"
        )
        times = timed(
            [
                lambda beam=beam: rnnkit_decode(model, sbatches, len(words), beam),
                lambda beam=beam: torch_decode(ref, sbatches, len(words), beam),
            ],
            repeats,
            warmup,
        )
        n = len(words)
        measures.append(Measure(task, check, n / times[0], n / times[1], "words/s"))
    return Row(cfg, pretrain_loss, tuple(measures))


# -- report ---------------------------------------------------------------------------------------


def header(data: Data, configs: Sequence[Config], repeats: int, warmup: int, load: str) -> list:
    env = ", ".join(
        f"{v}={os.environ.get(v, 'unset')}"
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", kernels.ENV_THREADS)
    )
    cfg = configs[0]
    blas = "set to 1 as the rnnkit command does" if BLAS_LIMITED else "left to the environment"
    return [
        f"rnnkit {rnnkit.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}; {common.cpu_model()}, {common.cores()} cores",
        f"threads: rnnkit as the rnnkit command runs it: NumPy's BLAS ({common.blas_name()}) on "
        f"{common.blas_threads()} thread(s) ({blas}), rnnkit's kernels on up to "
        f"{kernels.get_num_threads()}, freed memory kept (keep_freed_memory, whole process); "
        f"torch.get_num_threads() = {torch.get_num_threads()} (set), interop "
        f"{torch.get_num_interop_threads()}; {env}",
        f"load: {load}",
        f"data: {data.description}",
        f"model: Seq2Seq LSTM, E={cfg.embedding_dim}, bidirectional 1-layer encoder, L-layer "
        f"decoder of H units, linear bridge, general attention, input feeding, no dropout, "
        f"float32; batches of {cfg.batch_size}; weights after {cfg.pretrain_steps} rnnkit Adam "
        f"steps (lr {LR:g}, clip {CLIP_NORM:g})",
        f"train: {cfg.train_batches} fixed batches per run, Trainer._step vs torch "
        f"(zero_grad, forward, cross_entropy, backward, Adam.step), target tokens (EOS "
        f"included) per second; check: loss and every gradient, f64 <= {F64_RTOL:.0e}, f32 "
        f"loss <= {F32_LOSS_RTOL:.0e}, grads <= {F32_GRAD_RTOL:.0e}",
        f"decode: {cfg.decode_words} held-out words in batches of {cfg.batch_size} sorted by "
        f"length, max length 2 S + 10, beam {BEAM} (stopping 'beam', length penalty "
        f"'{LENGTH_PENALTY}') and greedy; torch under inference_mode; check: f64 top-1 "
        f"identical on {cfg.f64_words} words (scores <= {F64_RTOL:.0e}), f32 top-1 agreement",
        f"timing: median of {ROUNDS} x {repeats} runs, each block after {warmup} warm-up, "
        "rnnkit and torch in alternating blocks; ratio = rnnkit time / torch time "
        "(< 1: rnnkit faster)",
    ]


COLUMNS = ["model", "task", "rnnkit", "torch", "unit", "ratio", "check"]


def table(rows: Sequence[Row], markdown: bool) -> list[str]:
    body = [
        [
            row.config.name(),
            m.task,
            f"{m.rnnkit_rate:,.0f}",
            f"{m.torch_rate:,.0f}",
            m.unit,
            f"{m.ratio:.2f}",
            m.check,
        ]
        for row in rows
        for m in row.measures
    ]
    numeric = {2, 3, 5}
    if markdown:
        align = ["---:" if i in numeric else "---" for i in range(len(COLUMNS))]
        return [f"| {' | '.join(r)} |" for r in [COLUMNS, align, *body]]
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))
        ).rstrip()
        for r in [COLUMNS, *body]
    ]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]


def summary(rows: Sequence[Row]) -> str:
    parts = []
    for task, label in (("train", "training"), (f"beam {BEAM}", f"beam-{BEAM} decoding"),
                        ("greedy", "greedy decoding")):  # fmt: skip
        ratios = [
            f"{m.ratio:.2f} ({row.config.name()})"
            for row in rows
            for m in row.measures
            if m.task == task
        ]
        parts.append(f"{label} {', '.join(ratios)}")
    verdict = all(m.ratio <= 1 for row in rows for m in row.measures if m.task != "greedy")
    return (
        f"seq2seq: rnnkit/torch time ratio: {'; '.join(parts)}; rnnkit at least as fast for "
        f"training and beam search: {'yes' if verdict else 'no'}"
    )


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--repeats", type=positive_int, help="timed runs per block (default 3, quick 2)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    warmup = 1
    torch.set_num_threads(TORCH_THREADS)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    start, wall = common.cpu_seconds(), time.perf_counter()
    load_before = common.load_average()
    data = load_data(configs[0].batch_size)
    rows = [measure(cfg, data, repeats, warmup) for cfg in configs]
    others = common.others_load(start, time.perf_counter() - wall)
    load = (
        f"load average {load_before} at the start; other processes kept {others:.2f} cores "
        "busy on average during the run"
    )
    print(
        "\n".join(
            [
                *header(data, configs, repeats, warmup, load),
                "",
                *table(rows, args.markdown),
                "",
                "pre-training loss (mean of the last 10 steps): "
                + ", ".join(f"{r.config.name()} {r.pretrain_loss:.3f}" for r in rows),
                summary(rows),
            ]
        )
    )


if __name__ == "__main__":
    main()
