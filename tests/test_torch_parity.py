"""Parity with PyTorch 2.13 in float64: outputs, final states, dx, d(initial state) and every
parameter gradient agree to 1e-9 relative to their magnitude, on randomised configurations.

Variable lengths are compared with ``pack_padded_sequence(..., enforce_sorted=False)``. PyTorch
has no reset-before GRU; that form is compared with a slow reference in test_gru_before.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import as_tuple, assert_close, assert_results_close, make_layer, state_like

torch = pytest.importorskip("torch")
pack = torch.nn.utils.rnn

RTOL = 1e-9
TORCH_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru_after")


def torch_layer(layer):
    """The torch module with the same configuration, loaded from ``layer.state_dict()``."""
    common = dict(
        num_layers=layer.num_layers,
        bias=layer.bias,
        batch_first=layer.batch_first,
        bidirectional=layer.bidirectional,
        dtype=torch.float64,
    )
    if isinstance(layer, rnnkit.LSTM):
        mod = torch.nn.LSTM(layer.input_size, layer.hidden_size, **common)
    elif isinstance(layer, rnnkit.GRU):
        mod = torch.nn.GRU(layer.input_size, layer.hidden_size, **common)
    else:
        mod = torch.nn.RNN(
            layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **common
        )
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return mod


def torch_forward_backward(layer, x, state, lengths, dy, dstate):
    """Run torch's forward and backward; return numpy y, final state, dx, dstate0, grads."""
    mod = torch_layer(layer)
    xt = torch.tensor(x, requires_grad=True)
    T = x.shape[1] if layer.batch_first else x.shape[0]
    B = x.shape[0] if layer.batch_first else x.shape[1]
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    parts = (
        as_tuple(state) if state is not None else tuple(np.zeros(shape) for _ in layer.state_names)
    )
    st = tuple(torch.tensor(p, requires_grad=True) for p in parts)
    arg = st if isinstance(layer, rnnkit.LSTM) else st[0]
    if lengths is None:
        y, s_T = mod(xt, arg)
    else:
        packed = pack.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=layer.batch_first, enforce_sorted=False
        )
        y_packed, s_T = mod(packed, arg)
        y, _ = pack.pad_packed_sequence(y_packed, batch_first=layer.batch_first, total_length=T)
    loss = (y * torch.from_numpy(dy)).sum()
    if dstate is not None:
        for s, d in zip(as_tuple(s_T), as_tuple(dstate)):
            loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in mod.named_parameters()}
    s_T = tuple(s.detach().numpy() for s in as_tuple(s_T))
    ds0 = tuple(s.grad.numpy() for s in st)
    return y.detach().numpy(), s_T, xt.grad.numpy(), ds0, grads


def check_parity(
    kind,
    D,
    H,
    num_layers,
    T,
    B,
    seed,
    *,
    bidirectional,
    batch_first,
    bias,
    lengths,
    with_state,
    with_dstate,
):
    rng = np.random.default_rng(seed)
    layer = make_layer(
        kind,
        D,
        H,
        num_layers,
        seed=seed,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
    )
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    state = state_like(layer, B, rng) if with_state else None

    y, s_T, cache = layer.forward(x, state, lengths)
    dy = rng.standard_normal(y.shape)
    dstate = None
    if with_dstate:
        parts = tuple(rng.standard_normal(p.shape) for p in as_tuple(s_T))
        dstate = parts if isinstance(s_T, tuple) else parts[0]
    dx, ds0, grads = layer.backward(dy, cache, dstate)

    ref = torch_forward_backward(layer, x, state, lengths, dy, dstate)
    assert_results_close(layer, (y, s_T, dx, ds0, grads), ref, RTOL)


def random_configs(n: int, seed: int):
    """n randomised configurations, fixed by the seed."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        T, B = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        lengths = None
        if rng.random() < 0.5:
            lengths = rng.integers(1, T + 1, size=B)  # torch rejects zero lengths
            lengths[rng.integers(B)] = T  # pad_packed_sequence pads to the longest
        yield pytest.param(
            dict(
                kind=TORCH_KINDS[i % len(TORCH_KINDS)],
                D=int(rng.integers(1, 6)),
                H=int(rng.integers(1, 7)),
                num_layers=int(rng.integers(1, 4)),
                T=T,
                B=B,
                seed=i,
                bidirectional=bool(rng.random() < 0.5),
                batch_first=bool(rng.random() < 0.5),
                bias=bool(rng.random() < 0.8),
                lengths=lengths,
                with_state=bool(rng.random() < 0.6),
                with_dstate=bool(rng.random() < 0.6),
            ),
            id=f"random{i}",
        )


@pytest.mark.parametrize("config", list(random_configs(48, seed=2026)))
def test_parity_random(config):
    check_parity(**config)


EDGE = dict(
    bidirectional=False,
    batch_first=False,
    bias=True,
    lengths=None,
    with_state=True,
    with_dstate=True,
)


@pytest.mark.parametrize("kind", TORCH_KINDS)
@pytest.mark.parametrize(
    "sizes",
    [
        dict(D=3, H=4, T=1, B=3),  # T = 1
        dict(D=3, H=4, T=6, B=1),  # B = 1
        dict(D=3, H=1, T=6, B=3),  # H = 1
        dict(D=1, H=1, T=1, B=1),  # everything 1
    ],
    ids=["T1", "B1", "H1", "all1"],
)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_parity_edge_sizes(kind, sizes, bidirectional):
    check_parity(kind, num_layers=2, seed=7, **sizes, **{**EDGE, "bidirectional": bidirectional})


@pytest.mark.parametrize("kind", TORCH_KINDS)
@pytest.mark.parametrize("batch_first", [False, True], ids=["tb", "bt"])
def test_parity_lengths_bidirectional(kind, batch_first):
    """Packed sequences with unsorted lengths through a 2-layer bidirectional stack."""
    check_parity(
        kind,
        D=3,
        H=5,
        num_layers=2,
        T=7,
        B=5,
        seed=3,
        bidirectional=True,
        batch_first=batch_first,
        bias=True,
        lengths=np.array([3, 7, 1, 7, 5]),
        with_state=True,
        with_dstate=True,
    )


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_torch_state_dict_loads_unchanged_and_back(kind):
    """A torch state_dict through .numpy() loads into rnnkit; rnnkit's loads into torch."""
    layer = make_layer(kind, 4, 3, 2, seed=1, bidirectional=True)
    mod = torch_layer(layer)
    torch.manual_seed(0)
    for p in mod.parameters():
        torch.nn.init.uniform_(p, -1.0, 1.0)  # torch's weights now differ from rnnkit's
    layer.load_state_dict({k: v.detach().numpy() for k, v in mod.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 4))
    y_ref = mod(torch.from_numpy(x))[0].detach().numpy()
    assert_close(layer.forward(x)[0], y_ref, RTOL, "y after loading torch's state_dict")

    other = make_layer(kind, 4, 3, 2, seed=2, bidirectional=True)
    mod2 = torch_layer(other)  # load_state_dict(strict=True) inside: names and shapes agree
    assert_close(mod2(torch.from_numpy(x))[0].detach().numpy(), other.forward(x)[0], RTOL, "y")
    assert list(layer.state_dict()) == list(mod.state_dict())
    for k, v in mod.state_dict().items():
        assert layer.state_dict()[k].shape == tuple(v.shape)
