"""rnnkit.nn.Attention: finite-difference checks in float64 of every input and parameter (one
step, T steps at once, and prepare + several steps + accumulated backward), parity with an
independent PyTorch autograd implementation of the same equations, padding, steps against
all-at-once, float32 against float64, the source projection computed once, errors, state_dict."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from conftest import assert_close
from optional_deps import requires_torch, torch
from rnnkit.nn import Attention, AttentionMemory, AttentionMemoryGrad
from rnnkit.nn import attention as attention_module

SCORES = ("dot", "general", "additive")
TOL = 1e-7  # worst relative error of a float64 finite-difference check
PARITY = 1e-10


def make(score, Q=4, K=None, A=None, dtype=np.float64, seed=0):
    """An Attention with random weights and a random, clearly non-zero bias."""
    K = Q if score == "dot" else K
    A = A if score == "additive" else None  # the other scores have no attention size
    attn = Attention(Q, K, score, A, dtype=dtype, seed=seed)
    if "bias" in attn.parameters():
        rng = np.random.default_rng(seed + 100)
        bias = attn.parameters()["bias"]
        bias[...] = rng.choice([-1.0, 1.0], bias.shape) * rng.uniform(0.1, 0.5, bias.shape)
    return attn


def problem(attn, T, B, S, seed=0, prefix=True):
    """queries (T, B, Q), keys (S, B, K) and a mask that pads some columns: a prefix mask of
    random lengths with column 0 full and column 1 of length 1 (when there are such columns),
    or a mask with holes anywhere (prefix=False), every column with one valid position."""
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((T, B, attn.query_size)).astype(attn.dtype)
    keys = rng.standard_normal((S, B, attn.key_size)).astype(attn.dtype)
    if prefix:
        lengths = rng.integers(1, S + 1, B)
        lengths[0] = S
        if B > 1:
            lengths[1] = 1
        mask = np.arange(S)[:, None] < lengths[None, :]
    else:
        mask = rng.random((S, B)) < 0.6
        mask[rng.integers(0, S, B), np.arange(B)] = True
    return query, keys, mask


class AttendAdapter:
    """attend / attend_backward with the layer interface gradcheck drives: x = the queries,
    the "state" = the keys (its gradient is checked), the final "state" = the weights (so a
    random dL/dweights is checked too), lengths = the mask."""

    state_names = ("keys",)

    def __init__(self, attn):
        self.attn = attn

    def parameters(self):
        return self.attn.parameters()

    def forward(self, x, keys, mask=None):
        context, weights, cache = self.attn.attend(x, keys, mask)
        return context, weights, cache

    def backward(self, dcontext, cache, dweights):
        return self.attn.attend_backward(dcontext, cache, dweights)


class StepsAdapter(AttendAdapter):
    """prepare once, then one forward per decoder step; backward sums each step's dmemory
    (add_memory_grad) and grads, then prepare_backward: how a decoder uses the block."""

    def forward(self, x, keys, mask=None):
        memory, mcache = self.attn.prepare(keys, mask)
        steps = [self.attn.forward(q, memory) for q in x]  # x (T, B, Q): one (B, Q) per step
        context = np.stack([c for c, _, _ in steps])  # (T, B, K)
        weights = np.stack([w for _, w, _ in steps])  # (T, B, S)
        return context, weights, (memory, mcache, [cache for _, _, cache in steps])

    def backward(self, dcontext, cache, dweights):
        memory, mcache, caches = cache
        total = self.attn.zero_memory_grad(memory)
        grads = {k: np.zeros_like(v) for k, v in self.attn.parameters().items()}
        dquery = []
        for t, step in enumerate(caches):
            dq, dmem, g = self.attn.backward(dcontext[t], step, dweights[t])
            assert self.attn.add_memory_grad(total, dmem) is total
            dquery.append(dq)
            for k in grads:
                grads[k] += g[k]
        dkeys, g = self.attn.prepare_backward(total, mcache)
        for k in grads:
            grads[k] += g[k]
        return np.stack(dquery), dkeys, grads


def check_gradients(adapter, x, keys, mask, seed=0):
    errors = rnnkit.gradcheck(adapter, x, keys, mask, seed=seed)
    assert set(errors) == {"x", "keys", *adapter.attn.state_dict()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"worst relative error {errors[worst]:.2e} in {worst}"


# -- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("prefix", [True, False])
def test_gradcheck_all_steps_at_once(score, prefix):
    attn = make(score, Q=4, K=3, A=5, seed=1)
    query, keys, mask = problem(attn, T=3, B=4, S=5, seed=2, prefix=prefix)
    assert not mask.all()
    check_gradients(AttendAdapter(attn), query, keys, mask)


@pytest.mark.parametrize("score", SCORES)
def test_gradcheck_one_step(score):
    attn = make(score, Q=3, K=4, A=2, seed=3)
    query, keys, mask = problem(attn, T=1, B=3, S=4, seed=4)
    check_gradients(AttendAdapter(attn), query[0], keys, mask)


@pytest.mark.parametrize("score", SCORES)
def test_gradcheck_prepare_then_steps_accumulated(score):
    attn = make(score, Q=4, K=3, A=3, seed=5)
    query, keys, mask = problem(attn, T=3, B=3, S=4, seed=6, prefix=False)
    check_gradients(StepsAdapter(attn), query, keys, mask, seed=1)


@pytest.mark.parametrize("score", SCORES)
def test_gradcheck_edge_shapes(score):
    """B = 1, S = 1 (the weight is 1, the scores have no gradient), T = 1, sizes of 1."""
    for Q, K, A, T, B, S in [(1, 1, 1, 1, 1, 1), (2, 3, 1, 2, 1, 3), (3, 2, 2, 1, 2, 1)]:
        attn = make(score, Q=Q, K=K, A=A, seed=7)
        query, keys, mask = problem(attn, T=T, B=B, S=S, seed=8)
        check_gradients(AttendAdapter(attn), query, keys, mask)


# -- parity with PyTorch -------------------------------------------------------------------------


def torch_attention(score, params, query, keys, mask):
    """The module's equations written directly with torch ops: context (T, B, K), weights
    (T, B, S) for queries (T, B, Q), keys (S, B, K), mask (S, B)."""
    if score == "dot":
        e = torch.einsum("tbq,sbq->tbs", query, keys)
    elif score == "general":
        e = torch.einsum("tbq,qk,sbk->tbs", query, params["weight"], keys)
    else:
        zq = query @ params["query_weight"].T + params["bias"]  # (T, B, A)
        zk = keys @ params["key_weight"].T  # (S, B, A)
        u = torch.tanh(zq[:, :, None, :] + zk.permute(1, 0, 2)[None])  # (T, B, S, A)
        e = u @ params["v"]
    e = e.masked_fill(~torch.from_numpy(mask).T[None], float("-inf"))
    weights = torch.softmax(e, dim=-1)
    return torch.einsum("tbs,sbk->tbk", weights, keys), weights


@requires_torch
@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_parity(score, single, seed):
    rng = np.random.default_rng(seed)
    Q, K, A = (int(n) for n in rng.integers(1, 7, 3))
    T, B, S = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7))
    attn = make(score, Q=Q, K=K, A=A, seed=seed)
    query, keys, mask = problem(attn, T=1 if single else T, B=B, S=S, seed=seed + 10)
    if single:
        query = query[0]
    dcontext = rng.standard_normal((*query.shape[:-1], attn.key_size))
    dweights = rng.standard_normal((*query.shape[:-1], S))

    context, weights, cache = attn.attend(query, keys, mask)
    dquery, dkeys, grads = attn.attend_backward(dcontext, cache, dweights)

    params = {k: torch.tensor(v, requires_grad=True) for k, v in attn.state_dict().items()}
    q = torch.tensor(query if not single else query[None], requires_grad=True)
    k = torch.tensor(keys, requires_grad=True)
    c_t, w_t = torch_attention(score, params, q, k, mask)
    lead = (1, B) if single else (q.shape[0], B)
    loss = (c_t * torch.from_numpy(dcontext.reshape(*lead, -1))).sum()
    loss = loss + (w_t * torch.from_numpy(dweights.reshape(*lead, -1))).sum()
    loss.backward()
    squeeze = (lambda a: a[0]) if single else (lambda a: a)
    assert_close(context, squeeze(c_t.detach().numpy()), PARITY, "context")
    assert_close(weights, squeeze(w_t.detach().numpy()), PARITY, "weights")
    assert_close(dquery, squeeze(q.grad.numpy()), PARITY, "dquery")
    assert_close(dkeys, k.grad.numpy(), PARITY, "dkeys")
    assert list(grads) == list(params)
    for name, p in params.items():
        assert_close(grads[name], p.grad.numpy(), PARITY, f"d{name}")


# -- semantics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("score", SCORES)
def test_padding_gets_exactly_zero_weight_and_padded_keys_change_nothing(score):
    attn = make(score, Q=4, K=3, A=5, seed=2)
    query, keys, mask = problem(attn, T=3, B=4, S=6, seed=3, prefix=False)
    rng = np.random.default_rng(9)
    dcontext = rng.standard_normal((3, 4, attn.key_size))
    dweights = rng.standard_normal((3, 4, 6))
    context, weights, cache = attn.attend(query, keys, mask)
    assert np.all(weights[:, ~mask.T] == 0.0)
    assert np.all(weights[:, mask.T] > 0.0)
    assert_close(weights.sum(axis=-1), np.ones((3, 4)), 1e-15, "sum of weights")
    dquery, dkeys, grads = attn.attend_backward(dcontext, cache, dweights)
    assert np.all(dkeys[~mask] == 0.0)

    other = keys.copy()
    other[~mask] = 100.0 * rng.standard_normal((int((~mask).sum()), attn.key_size))
    context2, weights2, cache2 = attn.attend(query, other, mask)
    dquery2, dkeys2, grads2 = attn.attend_backward(dcontext, cache2, dweights)
    assert np.array_equal(context, context2) and np.array_equal(weights, weights2)
    assert np.array_equal(dquery, dquery2) and np.array_equal(dkeys, dkeys2)
    for name in grads:
        assert np.array_equal(grads[name], grads2[name]), name


@pytest.mark.parametrize("score", SCORES)
def test_all_steps_at_once_equals_one_step_at_a_time(score):
    attn = make(score, Q=5, K=4, A=3, seed=4)
    T, B, S = 6, 3, 7
    query, keys, mask = problem(attn, T=T, B=B, S=S, seed=5)
    rng = np.random.default_rng(6)
    dcontext = rng.standard_normal((T, B, attn.key_size))
    dweights = rng.standard_normal((T, B, S))
    at_once = AttendAdapter(attn)
    steps = StepsAdapter(attn)
    c1, w1, cache1 = at_once.forward(query, keys, mask)
    c2, w2, cache2 = steps.forward(query, keys, mask)
    assert_close(c2, c1, 1e-13, "context")
    assert_close(w2, w1, 1e-13, "weights")
    dq1, dk1, g1 = at_once.backward(dcontext, cache1, dweights)
    dq2, dk2, g2 = steps.backward(dcontext, cache2, dweights)
    assert_close(dq2, dq1, 1e-12, "dquery")
    assert_close(dk2, dk1, 1e-12, "dkeys")
    for name in g1:
        assert_close(g2[name], g1[name], 1e-12, f"d{name}")
    # apply (no cache) gives forward's outputs, in both forms
    memory, _ = attn.prepare(keys, mask)
    for q in (query, query[2]):
        context, weights, _ = attn.forward(q, memory)
        applied = attn.apply(q, memory)
        assert np.array_equal(applied[0], context) and np.array_equal(applied[1], weights)


def test_without_dweights_equals_zero_dweights():
    attn = make("additive", seed=1)
    query, keys, mask = problem(attn, T=2, B=3, S=4, seed=2)
    context, weights, cache = attn.attend(query, keys, mask)
    dcontext = np.random.default_rng(3).standard_normal(context.shape)
    a = attn.attend_backward(dcontext, cache)
    b = attn.attend_backward(dcontext, cache, np.zeros_like(weights))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert all(np.array_equal(a[2][k], b[2][k]) for k in a[2])


@pytest.mark.parametrize("score", SCORES)
def test_float32_agrees_with_float64(score):
    attn64 = make(score, Q=6, K=5, A=4, seed=3)
    attn32 = Attention(6, attn64.key_size, score, 4 if score == "additive" else None, seed=9)
    attn32.load_state_dict({k: v.astype(np.float32) for k, v in attn64.state_dict().items()})
    query, keys, mask = problem(attn64, T=4, B=3, S=7, seed=4)
    rng = np.random.default_rng(5)
    dcontext = rng.standard_normal((4, 3, attn64.key_size))
    dweights = rng.standard_normal((4, 3, 7))
    ref = attn64.attend(query, keys, mask)
    ref_back = attn64.attend_backward(dcontext, ref[2], dweights)
    f32 = np.float32
    out = attn32.attend(query.astype(f32), keys.astype(f32), mask)
    out_back = attn32.attend_backward(dcontext.astype(f32), out[2], dweights.astype(f32))
    for name, a, b in [
        ("context", out[0], ref[0]),
        ("weights", out[1], ref[1]),
        ("dquery", out_back[0], ref_back[0]),
        ("dkeys", out_back[1], ref_back[1]),
        *((f"d{k}", out_back[2][k], ref_back[2][k]) for k in ref_back[2]),
    ]:
        assert a.dtype == np.float32, name
        assert_close(a, b, 1e-5, name)


@pytest.mark.parametrize("score", ["general", "additive"])
def test_the_source_projection_is_computed_once_per_sequence(score, monkeypatch):
    calls = []
    original = attention_module.project_keys

    def counting(*args):
        calls.append(args[2].shape)
        return original(*args)

    monkeypatch.setattr(attention_module, "project_keys", counting)
    attn = make(score, Q=4, K=3, seed=0)
    query, keys, mask = problem(attn, T=5, B=2, S=6, seed=1)
    StepsAdapter(attn).forward(query, keys, mask)
    assert calls == [keys.shape]
    # each step reads the prepared projection: changing it changes the scores
    memory, _ = attn.prepare(keys, mask)
    noise = np.random.default_rng(2).standard_normal(memory.projected.shape)
    moved = memory._replace(projected=memory.projected + noise)
    assert not np.allclose(attn.apply(query[0], moved)[1], attn.apply(query[0], memory)[1])


def test_zero_decoder_steps():
    attn = make("additive", Q=3, K=2, seed=0)
    _, keys, mask = problem(attn, T=1, B=2, S=3, seed=1)
    query = np.zeros((0, 2, 3))
    context, weights, cache = attn.attend(query, keys, mask)
    assert context.shape == (0, 2, 2) and weights.shape == (0, 2, 3)
    dquery, dkeys, grads = attn.attend_backward(np.zeros((0, 2, 2)), cache)
    assert dquery.shape == (0, 2, 3) and np.all(dkeys == 0.0)
    assert all(np.all(g == 0.0) for g in grads.values())


def test_mask_none_means_every_position_is_valid():
    attn = make("general", seed=0)
    query, keys, _ = problem(attn, T=2, B=3, S=4, seed=1)
    a = attn.attend(query, keys)
    b = attn.attend(query, keys, np.ones((4, 3), dtype=bool))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# -- decoding: rows over a memory kept once per input (apply_grouped) ----------------------------

# row patterns over a memory of 5 columns: grouped (beams side by side: contiguous, with gaps,
# from an offset, w = 1) and any other (repeats apart, unordered, runs of unequal lengths)
GROUPED = {
    "w=3": np.repeat(np.arange(5), 3),
    "gaps": np.repeat([0, 2, 3], 2),
    "offset": np.repeat([3, 4], 4),
    "w=1": np.arange(5),
    "w=1 gaps": np.array([1, 4]),
    "one": np.array([2]),
}
OTHER = {
    "unordered": np.array([2, 0, 2, 1]),
    "runs": np.array([0, 0, 1]),
    "descending": np.repeat([3, 1], 2),
}


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("pattern", [*GROUPED, *OTHER])
def test_apply_grouped_equals_apply_on_the_gathered_memory(score, pattern):
    """float64: row r against memory column source[r] is Attention.apply over a memory whose
    columns are gathered per row (the computation decoding did before)."""
    attn = make(score, Q=5, K=4, A=3, seed=1)
    _, keys, mask = problem(attn, T=1, B=5, S=6, seed=2)
    memory, _ = attn.prepare(keys, mask)
    source = {**GROUPED, **OTHER}[pattern]
    query = np.random.default_rng(3).standard_normal((source.size, 5))
    groups = attention_module.row_groups(source)
    assert (groups is not None) == (pattern in GROUPED)
    context, weights = attn.apply_grouped(query, memory, source)
    expected = attn.apply(query, memory.columns(source))
    assert_close(context, expected[0], 1e-12, "context")
    assert_close(weights, expected[1], 1e-12, "weights")
    assert (weights[~mask[:, source].T] == 0.0).all()  # padding: exactly 0


@pytest.mark.parametrize("score", SCORES)
def test_apply_grouped_rows_do_not_depend_on_the_other_groups_bit_for_bit(score):
    """float32, the memory laid out column by column (AttentionMemory.columns): a group's
    results are the same bits alone, among other groups, with gaps, and after the memory's
    columns are gathered (compacted, down to one column); a group of w = 1 the same as a row
    of the fallback."""
    attn = make(score, Q=8, K=6, A=5, dtype=np.float32, seed=4)
    _, keys, mask = problem(attn, T=1, B=7, S=9, seed=5)
    memory = attn.prepare(keys, mask)[0].columns(np.arange(7))  # laid out as decoding does
    w = 3
    query = np.random.default_rng(6).standard_normal((7 * w, 8)).astype(np.float32)
    every = attn.apply_grouped(query, memory, np.repeat(np.arange(7), w))
    for cols in ([4], [0, 6], [1, 2, 5], [2, 3, 4], list(range(7))):
        rows = (np.asarray(cols)[:, None] * w + np.arange(w)).ravel()  # their beams
        part = attn.apply_grouped(query[rows], memory, np.repeat(cols, w))
        assert np.array_equal(part[0], every[0][rows]) and np.array_equal(part[1], every[1][rows])
        compact = attn.apply_grouped(
            query[rows], memory.columns(cols), np.repeat(np.arange(len(cols)), w)
        )
        assert np.array_equal(compact[0], part[0]) and np.array_equal(compact[1], part[1])
    one = attn.apply_grouped(query[:7], memory, np.arange(7))  # w = 1
    for source in ([6, 2, 2], [3], [0, 5]):  # the fallback, and groups of one
        rows = np.asarray(source)
        got = attn.apply_grouped(query[rows], memory, rows)
        assert np.array_equal(got[0], one[0][rows]) and np.array_equal(got[1], one[1][rows])


def test_memory_columns_copies_and_keeps_dot_projection_the_keys():
    attn = make("dot", Q=3, seed=0)
    _, keys, mask = problem(attn, T=1, B=4, S=5, seed=1)
    memory, _ = attn.prepare(keys, mask)
    part = memory.columns(np.array([3, 1, 1]))
    assert part.projected is part.keys and part.keys.shape == (5, 3, 3)
    assert part.keys.transpose(1, 0, 2).flags.c_contiguous  # column by column
    assert np.array_equal(part.keys, keys[:, [3, 1, 1]])
    assert np.array_equal(part.mask, mask[:, [3, 1, 1]])


def test_apply_grouped_errors_and_empty():
    attn = make("general", Q=4, K=3)
    _, keys, mask = problem(attn, T=1, B=3, S=5, seed=0)
    memory, _ = attn.prepare(keys, mask)
    query = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"source must be a 1-D integer numpy.ndarray \(R,\)"):
        attn.apply_grouped(query, memory, np.zeros((2, 1), dtype=int))
    with pytest.raises(ValueError, match="source must be a 1-D"):
        attn.apply_grouped(query, memory, [0, 1])
    with pytest.raises(TypeError, match="source must be an integer array"):
        attn.apply_grouped(query, memory, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"source must lie in \[0, 3\)"):
        attn.apply_grouped(query, memory, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"query must have shape \(3, 4\), got \(2, 4\)"):
        attn.apply_grouped(query, memory, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="memory must be the AttentionMemory"):
        attn.apply_grouped(query, tuple(memory), np.array([0, 1]))
    context, weights = attn.apply_grouped(np.zeros((0, 4)), memory, np.zeros(0, dtype=int))
    assert context.shape == (0, 3) and weights.shape == (0, 5)


# -- parameters ----------------------------------------------------------------------------------


def test_parameter_names_shapes_initialisation_and_grads_keys():
    shapes = {
        "dot": {},
        "general": {"weight": (6, 4)},
        "additive": {"query_weight": (3, 6), "key_weight": (3, 4), "bias": (3,), "v": (3,)},
    }
    for score, expected in shapes.items():
        K = 6 if score == "dot" else 4
        attn = Attention(6, K, score, 3 if score == "additive" else None, seed=0)
        state = attn.state_dict()
        assert {k: v.shape for k, v in state.items()} == expected
        assert list(state) == list(expected)
        assert Attention.count_parameters(6, K, score, 3) == sum(v.size for v in state.values())
        assert all(value.dtype == np.float32 for value in state.values())
        again = Attention(6, K, score, 3 if score == "additive" else None, seed=0)
        assert all(np.array_equal(v, again.state_dict()[k]) for k, v in state.items())
        query, keys, mask = problem(attn, T=2, B=2, S=3, seed=0)
        memory, mcache = attn.prepare(keys, mask)
        context, _, cache = attn.forward(query, memory)
        _, dmemory, grads = attn.backward(np.ones_like(context), cache)
        _, pgrads = attn.prepare_backward(dmemory, mcache)
        assert list(grads) == list(pgrads) == list(expected)
    assert Attention(5, score="additive").attention_size == 5
    assert repr(Attention(5, 4)) == "Attention(5, 4, score='general', dtype=float32)"


def test_initialisation_is_pytorch_linear_uniform():
    """Each tensor fills U(-1/sqrt(fan_in), 1/sqrt(fan_in)): fan_in K for weight and key_weight,
    Q for query_weight and bias (a Linear(Q, A)), A for v (a Linear(A, 1))."""
    Q, K, A = 40, 30, 50
    fan_in = {"weight": K, "query_weight": Q, "key_weight": K, "bias": Q, "v": A}
    for score in ("general", "additive"):
        attn = Attention(Q, K, score, A if score == "additive" else None, seed=1)
        for name, value in attn.state_dict().items():
            bound = 1.0 / np.sqrt(fan_in[name])
            assert bound * 0.9 < np.abs(value).max() <= bound, name
            assert abs(float(value.mean())) < 0.2 * bound, name
        other = Attention(Q, K, score, A if score == "additive" else None, seed=2)
        for name, value in attn.state_dict().items():
            assert not np.array_equal(value, other.state_dict()[name]), name


@pytest.mark.parametrize("score", SCORES)
def test_state_dict_round_trip(score):
    attn = make(score, Q=4, K=3, A=2, seed=0)
    A = 2 if score == "additive" else None
    other = Attention(4, attn.key_size, score, A, dtype=np.float64, seed=5)
    other.load_state_dict(attn.state_dict())
    for name, value in attn.state_dict().items():
        assert np.array_equal(other.state_dict()[name], value)
    query, keys, mask = problem(attn, T=2, B=3, S=4, seed=1)
    a, b = attn.attend(query, keys, mask), other.attend(query, keys, mask)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    if score != "dot":
        bad = {k: np.zeros((1, *v.shape)) for k, v in attn.state_dict().items()}
        with pytest.raises(ValueError, match="must have shape"):
            other.load_state_dict(bad)


# -- errors --------------------------------------------------------------------------------------


def test_constructor_errors():
    with pytest.raises(ValueError, match="score must be 'dot' or 'general' or 'additive'"):
        Attention(4, score="concat")
    with pytest.raises(ValueError, match=r"score='dot' needs query_size == key_size.*4.*3"):
        Attention(4, 3, score="dot")
    with pytest.raises(ValueError, match="attention_size applies to score='additive' only"):
        Attention(4, score="general", attention_size=3)
    with pytest.raises(ValueError, match="query_size must be a positive int"):
        Attention(0)
    with pytest.raises(TypeError, match="key_size must be an int"):
        Attention(4, 2.0)
    with pytest.raises(TypeError, match="attention_size must be an int"):
        Attention(4, score="additive", attention_size="8")
    with pytest.raises(TypeError, match=r"dtype must be np\.float32 or np\.float64"):
        Attention(4, dtype=np.int32)


def test_input_errors():
    attn = make("additive", Q=4, K=3, A=2)
    query, keys, mask = problem(attn, T=2, B=3, S=5, seed=0)
    with pytest.raises(ValueError, match=r"keys must have shape \(S, B, 3\), got \(5, 3, 4\)"):
        attn.prepare(np.zeros((5, 3, 4)), mask)
    with pytest.raises(ValueError, match=r"keys must be 3-D with shape \(S, B, 3\)"):
        attn.prepare(np.zeros((5, 3)), mask)
    with pytest.raises(TypeError, match="keys must have dtype float64"):
        attn.prepare(keys.astype(np.float32), mask)
    with pytest.raises(TypeError, match=r"keys must be a numpy\.ndarray"):
        attn.prepare(keys.tolist(), mask)
    with pytest.raises(TypeError, match=r"mask must be a bool numpy.ndarray of shape \(S, B\)"):
        attn.prepare(keys, mask.astype(int))
    with pytest.raises(TypeError, match="mask must be a bool"):
        attn.prepare(keys, mask.tolist())
    with pytest.raises(ValueError, match=r"mask must be .* = \(5, 3\).*got shape \(3, 5\)"):
        attn.prepare(keys, mask.T.copy())
    empty = mask.copy()
    empty[:, 1] = False
    with pytest.raises(ValueError, match=r"mask\[:, 1\] has no valid position"):
        attn.prepare(keys, empty)

    memory, mcache = attn.prepare(keys, mask)
    with pytest.raises(ValueError, match=r"query must have shape \(3, 4\) \(one decoder step\)"):
        attn.forward(np.zeros((1, 2, 3, 4)), memory)
    with pytest.raises(ValueError, match=r"query must have shape \(3, 4\), got \(3, 5\)"):
        attn.forward(np.zeros((3, 5)), memory)
    with pytest.raises(ValueError, match=r"query must have shape \(T, 3, 4\), got \(2, 2, 4\)"):
        attn.forward(np.zeros((2, 2, 4)), memory)
    with pytest.raises(TypeError, match="query must have dtype float64"):
        attn.forward(query.astype(np.float32), memory)
    with pytest.raises(TypeError, match=r"query must be a numpy\.ndarray"):
        attn.forward(query.tolist(), memory)
    with pytest.raises(TypeError, match="memory must be the AttentionMemory returned by prepare"):
        attn.forward(query, tuple(memory))
    small = make("additive", Q=4, K=3, A=3)
    with pytest.raises(ValueError, match=r"memory.projected must have shape \(5, 3, 3\)"):
        small.forward(query, memory)

    context, _, cache = attn.forward(query, memory)
    with pytest.raises(ValueError, match=r"dcontext must be 3-D with shape \(2, 3, 3\)"):
        attn.backward(np.zeros((3, 3)), cache)
    with pytest.raises(ValueError, match=r"dweights must have shape \(2, 3, 5\)"):
        attn.backward(np.zeros_like(context), cache, np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="cache must be the AttentionCache"):
        attn.backward(np.zeros_like(context), tuple(cache))
    _, dmemory, _ = attn.backward(np.zeros_like(context), cache)
    with pytest.raises(TypeError, match="dmemory must be an AttentionMemoryGrad"):
        attn.prepare_backward(tuple(dmemory), mcache)
    with pytest.raises(ValueError, match=r"dmemory.projected must have shape \(5, 3, 2\)"):
        attn.prepare_backward(dmemory._replace(projected=np.zeros((5, 3, 3))), mcache)
    with pytest.raises(TypeError, match="cache must be the AttentionPrepareCache"):
        attn.prepare_backward(dmemory, memory)
    with pytest.raises(ValueError, match=r"dmemory.keys must have shape \(5, 3, 3\)"):
        attn.add_memory_grad(attn.zero_memory_grad(memory), dmemory._replace(keys=keys[:4]))


def test_exports():
    assert rnnkit.Attention is Attention
    assert isinstance(Attention(2).prepare(np.zeros((1, 1, 2), np.float32))[0], AttentionMemory)
    assert AttentionMemoryGrad._fields == ("keys", "projected")
