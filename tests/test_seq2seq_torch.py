"""Seq2Seq against an independent PyTorch autograd implementation of the same equations
(issue 12), in float64: logits and the gradient of every parameter, a masked cross-entropy with
label smoothing, and five Adam steps, each to 1e-9 relative to the magnitude of the tensor.

The torch model, ``tests/reference_seq2seq.py`` (shared with ``benchmarks/bench_seq2seq.py``), is
written from the equations of ``rnnkit.nn.seq2seq``'s module docstring and
``rnnkit.nn.attention``'s, not from rnnkit's code: torch's own LSTM / GRU / RNN stacks (the
variable-length encoder on packed sequences, so each direction starts and ends at the sequence's
own length), torch's Embedding and Linear, the attention written out with its mask, the bridge,
the input-feeding loop and the combination, no dropout. Its parameters carry rnnkit's names, so
one ``load_state_dict(strict=True)`` copies the weights and checks that both models have the
same parameters with the same shapes.

Shapes: S = source steps, T = target steps, B = batch, E = embedding size, H = hidden size,
K = encoder directions, L = decoder layers, V = target vocabulary, A = additive attention size.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.data.pairs import Seq2SeqInput
from rnnkit.losses import cross_entropy
from rnnkit.nn.seq2seq import Seq2Seq

torch = pytest.importorskip("torch")
from reference_seq2seq import TorchSeq2Seq  # noqa: E402  (needs torch)

F = torch.nn.functional

RTOL = 1e-9
Vs, Vt, E, H = 11, 9, 5, 6  # E != H, so the input-fed decoder input (E + H) is checked too
S, T, B = 7, 5, 4
PAD, BOS = 0, 1
SMOOTHING = 0.1


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch on one thread: its pool only slows tiny tensors on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- helpers ------------------------------------------------------------------------------------


def make_models(options: dict, seed: int = 0):
    """rnnkit's model with every parameter redrawn from U(-0.7, 0.7) (non-zero, distinct biases;
    larger weights than the default initialisation, so the attention is far from uniform), and
    the torch model loaded from its state_dict."""
    options = {"embedding_dim": E} | options
    model = Seq2Seq(Vs, Vt, hidden_size=H, dtype=np.float64, seed=seed, **options)
    rng = np.random.default_rng(seed + 100)
    for value in model.parameters().values():
        value[...] = rng.uniform(-0.7, 0.7, value.shape)
    ref = TorchSeq2Seq(Vs, Vt, hidden_size=H, **options)
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return model, ref


def make_batch(rng: np.random.Generator):
    """A batch: sources padded with PAD after unsorted lengths in [1, S], one of them 1 (the
    longest need not reach S: then the last rows of the memory are padding in every column), a
    target input (BOS, tokens, PAD after each target's length), the targets (PAD where padded)
    and their mask (T, B)."""
    src_lengths = rng.integers(1, S + 1, size=B)
    src_lengths[0] = 1
    source = rng.integers(3, Vs, (S, B))
    source[np.arange(S)[:, None] >= src_lengths[None, :]] = PAD
    tgt_lengths = rng.integers(1, T + 1, size=B)
    tgt_lengths[rng.integers(B)] = T
    valid = np.arange(T)[:, None] < tgt_lengths[None, :]  # (T, B)
    target_in = np.where(valid, rng.integers(3, Vt, (T, B)), PAD)
    target_in[0] = BOS
    targets = np.where(valid, rng.integers(2, Vt, (T, B)), PAD)
    return Seq2SeqInput(source, src_lengths, target_in), targets, valid


def torch_input(x: Seq2SeqInput):
    return (
        torch.from_numpy(x.source),
        torch.from_numpy(x.source_lengths),
        torch.from_numpy(x.target_in),
    )


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| (0 if both are exactly 0)."""
    err = float(np.abs(actual - expected).max())
    scale = float(np.abs(expected).max())
    return err / scale if scale else (0.0 if err == 0.0 else np.inf)


def torch_grads(ref: torch.nn.Module) -> dict[str, np.ndarray]:
    return {
        k: np.zeros(tuple(p.shape)) if p.grad is None else p.grad.numpy().copy()
        for k, p in ref.named_parameters()
    }


def check_errors(errors: dict[str, float], what: str) -> None:
    """Report the worst error, and fail naming every tensor above RTOL."""
    worst = max(errors, key=errors.get)
    print(f"{what}: worst {worst} {errors[worst]:.1e}")
    bad = {k: f"{v:.1e}" for k, v in errors.items() if not v <= RTOL}
    assert not bad, f"{what}: relative errors above {RTOL:.0e}: {bad}"


def compare_grads(grads: dict[str, np.ndarray], ref: torch.nn.Module) -> dict[str, float]:
    expected = torch_grads(ref)
    assert sorted(grads) == sorted(expected)
    errors = {}
    for name, g in grads.items():
        assert np.abs(expected[name]).max() > 0, f"d{name} is zero: the case tests nothing"
        errors[f"d{name}"] = relative_error(g, expected[name])
    return errors


# -- configurations ------------------------------------------------------------------------------

SCORES = ("general", "dot", "additive")

#: every score with and without input feeding, on a 2-layer LSTM with a bidirectional 2-layer
#: encoder and the linear bridge
SCORE_CASES = [
    pytest.param(
        {"attention": score, "input_feeding": feeding, "num_layers": 2},
        id=f"lstm-{score}-{'feeding' if feeding else 'plain'}",
    )
    for score in SCORES
    for feeding in (True, False)
]


def grid_cases():
    """Every cell x bidirectional or not x 1 or 2 encoder layers x bridge, on a 2-layer decoder,
    with the score, input feeding and tied embeddings rotating through them (each score meets
    each of the other options; the additive score with A = 4 != H)."""
    cases = []
    grid = itertools.product(("lstm", "gru", "rnn"), (True, False), (1, 2), ("linear", "zeros"))
    for i, (cell, bidirectional, enc_layers, bridge) in enumerate(grid):
        score = SCORES[i % 3]
        feeding = (i // 3) % 2 == 0
        tied = i % 5 == 4
        options = {
            "cell": cell,
            "bidirectional": bidirectional,
            "encoder_layers": enc_layers,
            "num_layers": 2,
            "bridge": bridge,
            "attention": score,
            "input_feeding": feeding,
            "tie_embeddings": tied,
        }
        if score == "additive":
            options["attention_size"] = 4
        if tied:
            options["embedding_dim"] = H  # W_o = Emb_y needs E == H
        name = "-".join(
            [cell, "bi" if bidirectional else "uni", f"enc{enc_layers}", bridge, score]
            + ["feeding" if feeding else "plain"]
            + (["tied"] if tied else [])
        )
        cases.append(pytest.param(options, id=name))
    return cases


# -- the tests -----------------------------------------------------------------------------------


def check_logits_and_gradients(options: dict, seed: int, what: str) -> None:
    model, ref = make_models(options, seed)
    rng = np.random.default_rng(seed)
    x, _, _ = make_batch(rng)
    logits, _, cache = model.forward(x)
    R = rng.standard_normal(logits.shape)
    _, _, grads = model.backward(R, cache)
    assert list(grads) == list(model.parameters())

    out = ref(*torch_input(x))
    (out * torch.from_numpy(R)).sum().backward()
    errors = {"logits": relative_error(logits, out.detach().numpy())}
    errors |= compare_grads(grads, ref)
    check_errors(errors, what)


@pytest.mark.parametrize("options", SCORE_CASES)
def test_scores_match_torch(options, request):
    check_logits_and_gradients(options, 1, request.node.callspec.id)


@pytest.mark.parametrize("options", grid_cases())
def test_variants_match_torch(options, request):
    check_logits_and_gradients(options, 2, request.node.callspec.id)


def masked_loss_torch(out, targets, valid):
    """torch's per-token label-smoothed cross-entropy, averaged over the valid tokens."""
    per_token = F.cross_entropy(
        out.reshape(-1, Vt),
        torch.from_numpy(targets).reshape(-1),
        label_smoothing=SMOOTHING,
        reduction="none",
    )
    weights = torch.from_numpy(valid.reshape(-1).astype(np.float64))
    return (per_token * weights).sum() / weights.sum()


LOSS_CASES = [
    pytest.param({"num_layers": 2}, id="lstm-general-feeding"),
    pytest.param(
        {"cell": "gru", "attention": "additive", "input_feeding": False, "bridge": "zeros"},
        id="gru-additive-plain-zeros",
    ),
]


@pytest.mark.parametrize("options", LOSS_CASES)
def test_label_smoothed_masked_loss_matches_torch(options, request):
    model, ref = make_models(options, 3)
    x, targets, valid = make_batch(np.random.default_rng(3))
    logits, _, cache = model.forward(x)
    loss, dlogits = cross_entropy(logits, targets, mask=valid, label_smoothing=SMOOTHING)
    _, _, grads = model.backward(dlogits, cache)

    tloss = masked_loss_torch(ref(*torch_input(x)), targets, valid)
    tloss.backward()
    errors = {"loss": abs(loss - tloss.item()) / abs(tloss.item())}
    errors |= compare_grads(grads, ref)
    check_errors(errors, request.node.callspec.id)


STEPS, LR = 5, 0.01

TRAJECTORY_CASES = [
    pytest.param({"num_layers": 2, "encoder_layers": 1}, id="lstm-general-feeding"),
    pytest.param(
        {
            "cell": "rnn",
            "attention": "dot",
            "input_feeding": False,
            "bidirectional": False,
            "tie_embeddings": True,
            "embedding_dim": H,
        },
        id="rnn-dot-plain-uni-tied",
    ),
]


@pytest.mark.parametrize("options", TRAJECTORY_CASES)
def test_adam_trajectory_matches_torch(options, request):
    """Five Adam steps on five batches with the masked, label-smoothed loss: the losses agree
    at every step and every parameter after the last, which catches state carried wrongly from
    one step to the next (a cache reused, an optimiser moment off)."""
    model, ref = make_models(options, 4)
    initial = model.state_dict()
    opt = optim.Adam(model.parameters(), lr=LR)
    topt = torch.optim.Adam(ref.parameters(), lr=LR, foreach=False)
    rng = np.random.default_rng(4)
    errors = {}
    for step in range(STEPS):
        x, targets, valid = make_batch(rng)
        logits, _, cache = model.forward(x)
        loss, dlogits = cross_entropy(logits, targets, mask=valid, label_smoothing=SMOOTHING)
        _, _, grads = model.backward(dlogits, cache)
        opt.step(grads)

        topt.zero_grad()
        tloss = masked_loss_torch(ref(*torch_input(x)), targets, valid)
        tloss.backward()
        topt.step()
        errors[f"loss step {step}"] = abs(loss - tloss.item()) / abs(tloss.item())

    final = model.state_dict()
    for name, value in ref.state_dict().items():
        moved = np.abs(final[name] - initial[name]).max() / np.abs(initial[name]).max()
        assert moved > 0.01, f"{name} moved by only {moved:.1e} of its magnitude"
        errors[name] = relative_error(final[name], value.numpy())
    check_errors(errors, request.node.callspec.id)
