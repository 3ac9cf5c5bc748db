"""An independent, slow reference: the cell equations written out step by step, one sequence at a
time, in PyTorch float64 tensors so that autograd (not our hand-derived backward) gives the
gradients.

Nothing here shares code with rnnkit: no fused loops, no masks. Variable lengths are handled the
obvious way, by running each sequence over its own valid steps only (and the reverse direction
over them backwards), so zero-length sequences are covered too.
"""

from __future__ import annotations

import numpy as np
import pytest

# without torch, collecting this module (--doctest-modules) skips it instead of failing
torch = pytest.importorskip("torch")


def sigmoid(a):
    return 1.0 / (1.0 + torch.exp(-a))


def rows(W, k, H):
    """Rows k*H .. (k+1)*H of a fused weight matrix or bias."""
    return W[k * H : (k + 1) * H]


def step(kind, x, state, p, H):
    """One step of one sequence: x (D,), state a tuple of (H,) tensors,
    p = (W_ih, W_hh, b_ih, b_hh)."""
    W_ih, W_hh, b_ih, b_hh = p
    if b_ih is None:
        b_ih = b_hh = torch.zeros(W_ih.shape[0], dtype=torch.float64)

    def affine(k, x_part, h_part):
        return (
            rows(W_ih, k, H) @ x_part
            + rows(b_ih, k, H)
            + rows(W_hh, k, H) @ h_part
            + rows(b_hh, k, H)
        )

    if kind in ("rnn_tanh", "rnn_relu"):
        (h,) = state
        a = affine(0, x, h)
        return (torch.tanh(a) if kind == "rnn_tanh" else torch.clamp(a, min=0.0),)
    if kind == "lstm":
        h, c = state
        i = sigmoid(affine(0, x, h))
        f = sigmoid(affine(1, x, h))
        g = torch.tanh(affine(2, x, h))
        o = sigmoid(affine(3, x, h))
        c = f * c + i * g
        return (o * torch.tanh(c), c)
    (h,) = state
    r = sigmoid(affine(0, x, h))
    z = sigmoid(affine(1, x, h))
    W_in, W_hn = rows(W_ih, 2, H), rows(W_hh, 2, H)
    b_in, b_hn = rows(b_ih, 2, H), rows(b_hh, 2, H)
    if kind == "gru_after":
        n = torch.tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))
    else:  # gru_before, Cho et al. 2014
        n = torch.tanh(W_in @ x + b_in + W_hn @ (r * h) + b_hn)
    return ((1.0 - z) * n + z * h,)


def forward(kind, params, x, state, lengths, num_layers, num_directions, H):
    """The whole stacked (bi)directional layer, sequence by sequence, step by step.

    Args: params dict name -> tensor; x (T, B, D) tensor; state tuple of (L*K, B, H) tensors;
    lengths list of ints.  Returns y (T, B, K*H) and the final state tuple.
    """
    T, B, _ = x.shape
    K = num_directions
    zeros = torch.zeros(K * H, dtype=torch.float64)
    ys, finals = [], [[[None] * B for _ in range(num_layers * K)] for _ in state]
    for b in range(B):
        n = int(lengths[b])
        seq = [x[t, b] for t in range(n)]
        for layer in range(num_layers):
            outs = []
            for d in range(K):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                p = tuple(
                    params.get(k + suffix) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                s = tuple(st[layer * K + d, b] for st in state)
                out = [None] * n
                for t in range(n) if d == 0 else range(n - 1, -1, -1):
                    s = step(kind, seq[t], s, p, H)
                    out[t] = s[0]
                for j, value in enumerate(s):
                    finals[j][layer * K + d][b] = value
                outs.append(out)
            seq = [torch.cat([o[t] for o in outs]) for t in range(n)]
        ys.append(torch.stack(seq + [zeros] * (T - n)))
    y = torch.stack(ys, dim=1)  # (T, B, K*H)
    final = tuple(torch.stack([torch.stack(f_k) for f_k in f]) for f in finals)
    return y, final


def forward_backward(kind, layer, x, state, lengths, dy, dstate):
    """y, final state, dx, d(initial state), grads of the reference for an rnnkit ``layer``'s
    configuration and weights (inputs in (T, B, D) layout), all as NumPy arrays."""
    T, B, _ = x.shape
    params = {k: torch.tensor(v, requires_grad=True) for k, v in layer.state_dict().items()}
    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    lengths = [T] * B if lengths is None else list(lengths)
    y, final = forward(
        kind, params, xt, st, lengths, layer.num_layers, layer.num_directions, layer.hidden_size
    )
    loss = (y * torch.from_numpy(dy)).sum()
    if dstate is not None:
        for f, d in zip(final, dstate):
            loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()
    return (
        y.detach().numpy(),
        tuple(f.detach().numpy() for f in final),
        xt.grad.numpy(),
        tuple(s.grad.numpy() for s in st),
        {k: p.grad.numpy() for k, p in params.items()},
    )


__all__ = ["forward", "forward_backward", "np"]
