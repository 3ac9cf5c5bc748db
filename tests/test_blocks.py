"""The blocks around the recurrence (Linear, Embedding, Dropout, Pooling, inter-layer dropout)
and the ready models: finite-difference checks in float64 (dropout with fixed masks), parity with
PyTorch, composition (dotted names, train/eval, generator states)."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import assert_close
from optional_deps import requires_torch, torch
from rnnkit.nn import Pooling

TOL = 1e-6


class Adapter:
    """Give a stateless block the layer interface that gradcheck drives."""

    def __init__(self, block, with_lengths=False):
        self.block, self.with_lengths = block, with_lengths

    def parameters(self):
        return self.block.parameters()

    def rng_state(self):
        return self.block.rng_state()

    def set_rng_state(self, states):
        self.block.set_rng_state(states)

    def forward(self, x, state=None, lengths=None):
        args = (x, lengths) if self.with_lengths else (x,)
        y, cache = self.block.forward(*args)
        return y, None, cache

    def backward(self, dy, cache, dstate=None):
        dx, grads = self.block.backward(dy, cache)
        return dx, None, grads


def worst(errors):
    return max(errors.values(), default=0.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (5, 2, 4)])
def test_linear_gradcheck(bias, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    errors = rnnkit.gradcheck(Adapter(rnnkit.Linear(4, 3, bias, dtype=np.float64, seed=1)), x)
    assert set(errors) == {"x", "weight", *(["bias"] if bias else [])}
    assert worst(errors) < TOL


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_gradcheck_and_padding(padding_idx):
    emb = rnnkit.Embedding(6, 3, padding_idx=padding_idx, dtype=np.float64, seed=0)
    ids = np.array([[0, 2, 5], [2, 2, 1]])
    if padding_idx is None:  # the padding row is frozen by definition, not differentiated
        errors = rnnkit.gradcheck(Adapter(emb), ids)
        assert set(errors) == {"weight"} and worst(errors) < TOL
    e, cache = emb.forward(ids)
    _, grads = emb.backward(np.ones_like(e), cache)
    if padding_idx is not None:
        assert np.all(e[ids == 2] == 0.0) and np.all(grads["weight"][2] == 0.0)
    assert np.array_equal(grads["weight"][5], np.ones(3))


def test_dropout_gradcheck_with_fixed_masks_and_eval_identity():
    drop = rnnkit.Dropout(0.4, seed=3)
    x = np.random.default_rng(0).standard_normal((6, 5))
    assert worst(rnnkit.gradcheck(Adapter(drop), x)) < TOL  # same mask in every evaluation
    mask = np.random.default_rng(1).random(x.shape) > 0.4
    y, cache = drop.forward(x, mask=mask)
    assert np.array_equal(y, x * mask / 0.6)
    assert np.array_equal(drop.backward(np.ones_like(x), cache)[0], mask / 0.6)
    drop.eval()
    assert drop.forward(x)[0] is x


def test_dropout_rate_and_reproducibility():
    a, b = rnnkit.Dropout(0.3, seed=7), rnnkit.Dropout(0.3, seed=7)
    ya, _ = a.forward(np.ones((400, 250)))
    assert abs((ya == 0).mean() - 0.3) < 0.01
    assert np.array_equal(ya, b.forward(np.ones((400, 250)))[0])


@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("num_directions", [1, 2])
def test_pooling_gradcheck(mode, num_directions):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((5, 4, 6))
    errors = rnnkit.gradcheck(
        Adapter(Pooling(mode, num_directions), with_lengths=True), y, lengths=[5, 0, 2, 3]
    )
    assert worst(errors) < TOL


def test_pooling_values():
    y = np.random.default_rng(1).standard_normal((4, 3, 2))
    lengths = np.array([4, 2, 0])
    last, _ = Pooling("last", 2).forward(y, lengths)
    assert np.array_equal(last[0], [y[3, 0, 0], y[0, 0, 1]])  # forward half at n-1, reverse at 0
    assert np.array_equal(last[1], [y[1, 1, 0], y[0, 1, 1]])
    assert np.array_equal(last[2], [0.0, 0.0])
    mean, _ = Pooling("mean").forward(y, lengths)
    assert_close(mean[1], y[:2, 1].mean(axis=0), 1e-15)
    peak, _ = Pooling("max").forward(y, lengths)
    assert np.array_equal(peak[1], y[:2, 1].max(axis=0)) and np.array_equal(peak[2], [0.0, 0.0])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_inter_layer_dropout_gradcheck_and_semantics(kind):
    layer = rnnkit.nn.make_recurrent(kind, 3, 4, 3, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    assert worst(rnnkit.gradcheck(layer, x, lengths=[5, 2])) < TOL
    y1, _, _ = layer.forward(x)
    y2, _, _ = layer.forward(x)
    assert not np.array_equal(y1, y2)  # fresh masks in training
    layer.eval()
    plain = rnnkit.nn.make_recurrent(kind, 3, 4, 3, dtype=np.float64, seed=0)
    assert np.array_equal(layer.forward(x)[0], plain.forward(x)[0])  # no dropout in evaluation


MODELS = {
    "lm": lambda: rnnkit.LanguageModel(7, 3, 4, 2, dropout=0.3, dtype=np.float64, seed=0),
    "lm_gru_before": lambda: rnnkit.LanguageModel(
        7, 3, 4, cell="gru", reset="before", dtype=np.float64, seed=0
    ),
    "regressor_last_bi": lambda: rnnkit.SequenceRegressor(
        3, 4, 2, 2, bidirectional=True, dropout=0.2, dtype=np.float64, seed=0
    ),
    "regressor_per_step": lambda: rnnkit.SequenceRegressor(
        3, 4, 2, cell="rnn", pooling=None, dtype=np.float64, seed=0
    ),
    "classifier_mean": lambda: rnnkit.SequenceClassifier(
        3, 4, 5, cell="gru", pooling="mean", dtype=np.float64, seed=0
    ),
    "classifier_max_bi": lambda: rnnkit.SequenceClassifier(
        3, 4, 5, bidirectional=True, pooling="max", dtype=np.float64, seed=0
    ),
}


@pytest.mark.parametrize("name", MODELS)
def test_whole_model_gradcheck(name):
    model = MODELS[name]()
    rng = np.random.default_rng(2)
    lengths = [6, 0, 3]
    x = rng.integers(0, 7, (6, 3)) if name.startswith("lm") else rng.standard_normal((6, 3, 3))
    errors = rnnkit.gradcheck(model, x, lengths=lengths)
    assert set(errors) >= set(model.state_dict())
    assert worst(errors) < TOL, errors


def test_model_names_modes_and_rng_state():
    model = rnnkit.LanguageModel(7, 3, 4, 2, dropout=0.5, seed=1)
    assert list(model.state_dict()) == [
        "embedding.weight",
        *(f"rnn.{k}" for k in model.rnn.state_dict()),
        "head.weight",
        "head.bias",
    ]
    assert model.parameters()["rnn.weight_hh_l1"] is model.rnn.parameters()["weight_hh_l1"]
    model.eval()
    assert not model.training and not model.rnn.training and not model.drop_in.training
    model.train()
    assert model.drop_out.training
    states = model.rng_state()
    assert set(states) == {"drop_in", "rnn", "drop_out"}
    ids = np.random.default_rng(0).integers(0, 7, (5, 2))
    first = model.forward(ids)[0]
    model.set_rng_state(states)
    assert np.array_equal(model.forward(ids)[0], first)  # same generator states, same masks
    with pytest.raises(ValueError, match="rng states do not match"):
        model.set_rng_state({"drop_in": states["drop_in"]})


def test_same_seed_same_model_and_generator_seeds_differ():
    a = rnnkit.SequenceRegressor(3, 4, seed=5).state_dict()
    b = rnnkit.SequenceRegressor(3, 4, seed=5).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    gen = np.random.default_rng(5)
    c = rnnkit.SequenceRegressor(3, 4, seed=gen).state_dict()
    d = rnnkit.SequenceRegressor(3, 4, seed=gen).state_dict()
    assert not np.array_equal(c["head.weight"], d["head.weight"])


# -- against PyTorch (skipped without it) ----------------------------------------------------------

if torch is not None:  # the tests that use the class skip without torch

    class TorchLM(torch.nn.Module):
        def __init__(self, V, E, H, L, cell):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, E, dtype=torch.float64)
            self.rnn = getattr(torch.nn, cell.upper())(E, H, L, dtype=torch.float64)
            self.head = torch.nn.Linear(H, V, dtype=torch.float64)

        def forward(self, ids, state=None):
            y, s = self.rnn(self.embedding(ids), state)
            return self.head(y), s


@requires_torch
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_matches_torch(cell):
    model = rnnkit.LanguageModel(11, 5, 6, 2, cell=cell, dtype=np.float64, seed=3)
    ref = TorchLM(11, 5, 6, 2, cell)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    ids = np.random.default_rng(0).integers(0, 11, (7, 3))
    logits, _, cache = model.forward(ids)
    dlogits = np.random.default_rng(1).standard_normal(logits.shape)
    _, _, grads = model.backward(dlogits, cache)
    out, _ = ref(torch.from_numpy(ids))
    (out * torch.from_numpy(dlogits)).sum().backward()
    assert_close(logits, out.detach().numpy(), 1e-12, "logits")
    for name, p in ref.named_parameters():
        assert_close(grads[name], p.grad.numpy(), 1e-10, name)


@requires_torch
def test_linear_and_embedding_match_torch():
    lin = rnnkit.Linear(4, 3, dtype=np.float64, seed=0)
    ref = torch.nn.Linear(4, 3, dtype=torch.float64)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    assert_close(lin.forward(x)[0], ref(torch.from_numpy(x)).detach().numpy(), 1e-14, "y")


def test_evaluation_mode_in_a_block_is_restored_even_on_an_error():
    model = rnnkit.LanguageModel(5, 3, 4, dropout=0.5, seed=0)
    with model.evaluation() as same:
        assert same is model and not model.training and not model.rnn.training
    assert model.training and model.drop_in.training
    model.eval()
    with pytest.raises(RuntimeError), model.evaluation():
        raise RuntimeError
    assert not model.training
    model.train()
    with pytest.raises(RuntimeError), model.evaluation():
        raise RuntimeError
    assert model.training and model.rnn.training
