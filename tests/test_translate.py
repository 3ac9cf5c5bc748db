"""The translation estimator: a toy grapheme-to-phoneme task learned; predictions in input order
and independent of the batching; n-best lists; unknown tokens; evaluation against alternative
references; the output length limit; saving, loading and refusing damaged files; settings and
inputs checked; a fit killed after any checkpoint resumes bit for bit."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

from rnnkit import checkpoint, losses, optim
from rnnkit.apps import Estimator, NotFittedError, Translator
from rnnkit.apps.translate import estimator as translate_estimator
from rnnkit.apps.translate import metrics
from rnnkit.data.pairs import PairData, split_by_source, tokenize
from rnnkit.nn.decoding import beam_search
from rnnkit.training import Trainer
from test_crash_resume import Killed, kill_after, untimed

PHONES = {"a": "AA", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F"}


def g2p(word: str) -> str:
    return " ".join(PHONES[c] for c in word)


def toy_words(n: int = 300, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted({"".join(rng.choice(list("abcdef"), size=rng.integers(1, 6))) for _ in range(n)})


PAIRS = [(w, g2p(w)) for w in toy_words()]  # 212 words, 1 to 5 letters
TRAIN, DEV = split_by_source(PAIRS, 0.1)
TINY = dict(
    embedding_dim=16,
    hidden_size=32,
    epochs=10,
    batch_size=8,
    lr=0.01,
    dropout=0.0,
    patience=None,
    dev_fraction=0.1,
    validation_fraction=0.0,
    quiet=True,
    seed=0,
)


@pytest.fixture(scope="module")
def fitted() -> Translator:
    return Translator(**TINY).fit(PAIRS)


# -- learning -----------------------------------------------------------------------------------


def test_learns_the_toy_g2p_and_generalises_to_held_out_words(fitted):
    assert fitted.evaluate(TRAIN)["sequence_error_rate"] < 0.1
    dev = fitted.evaluate(DEV)
    assert dev["sequence_error_rate"] < 0.3 and dev["token_error_rate"] < 0.1
    assert fitted.score(DEV) == pytest.approx(1 - dev["sequence_error_rate"])
    untrained = Translator(**{**TINY, "epochs": 1, "lr": 1e-4}).fit(PAIRS)
    assert untrained.evaluate(DEV)["sequence_error_rate"] > 0.9
    assert fitted.stopped_ == "epochs" and fitted.n_steps_ == 10 * -(-len(TRAIN) // 8)


def test_the_development_split_holds_out_whole_sources_and_equals_an_explicit_dev(fitted):
    # dev_fraction=0.1 is split_by_source(pairs, 0.1) given as dev: the same run, bit for bit
    explicit = Translator(**{**TINY, "dev_fraction": 0.0}).fit(TRAIN, dev=DEV)
    a, b = fitted.model_.state_dict(), explicit.model_.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert explicit.dev_loss_ == fitted.dev_loss_


def test_vocabularies_come_from_the_training_pairs_only():
    train = [("ab", "AA B"), ("ba", "B AA"), ("a", "AA")]
    dev = [("abz", "AA B ZZ")]
    tr = Translator(**{**TINY, "epochs": 1}).fit(train, dev=dev)
    assert sorted(tr.source_vocab_.to_list()) == ["a", "b"]
    assert sorted(tr.target_vocab_.to_list()) == ["AA", "B"]
    assert "z" not in tr.source_vocab_ and "ZZ" not in tr.target_vocab_


def test_alternative_references_are_all_trained_on_and_evaluated_together():
    pairs = [("ab", "AA B"), ("ab", "AX B"), ("ba", "B AA")]
    tr = Translator(**{**TINY, "epochs": 1, "dev_fraction": 0.0}).fit(pairs)
    assert "AX" in tr.target_vocab_  # the second reference was trained on
    assert tr.evaluate(pairs)["n"] == 2  # distinct sources


def test_early_stopping_keeps_the_best_development_loss():
    tr = Translator(**{**TINY, "epochs": 30, "lr": 0.03, "patience": 1}).fit(PAIRS)
    history = tr.history_
    val = [loss for kind, loss in zip(history["kind"], history["loss"]) if kind == "val"]
    assert tr.stopped_ == "early_stopping" and len(val) < 30
    assert tr.dev_loss_ == min(val) < val[-1]
    # the final parameters are the best ones, not the last: their development loss is dev_loss_
    data = PairData.from_pairs(DEV, tr.source_vocab_, tr.target_vocab_, 256, shuffle=False)
    model = tr.model_
    loss = functools.partial(losses.cross_entropy, label_smoothing=tr.label_smoothing)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), loss)
    assert trainer.evaluate(data)["loss"] == pytest.approx(tr.dev_loss_, rel=1e-6)


def test_the_validation_set_is_carved_from_what_the_development_hold_out_leaves():
    # validation_fraction holds out another fixed choice of sources for early stopping and the
    # schedule; the development set then chooses nothing: the same run as an explicit split
    params = {**TINY, "epochs": 4, "patience": 2}
    carved = Translator(**{**params, "validation_fraction": 0.2}).fit(PAIRS)
    train, val = translate_estimator.validation_split(TRAIN, 0.2)
    assert {s for s, _ in val}.isdisjoint(s for s, _ in train)
    assert {s for s, _ in val}.isdisjoint(s for s, _ in DEV)
    assert 0.1 < len(val) / len(TRAIN) < 0.3
    explicit = Translator(**{**params, "dev_fraction": 0.0}).fit(train, dev=val)
    a, b = carved.model_.state_dict(), explicit.model_.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert carved.dev_loss_ == explicit.dev_loss_
    # a given dev changes nothing either: it is not trained on, nor watched
    with_dev = Translator(**{**params, "validation_fraction": 0.2, "dev_fraction": 0.0})
    with_dev.fit(TRAIN, dev=[("zzz", "ZZ")])
    assert with_dev.dev_loss_ == carved.dev_loss_
    # without any hold-out left, the error names the setting
    with pytest.raises(ValueError, match=r"validation_fraction=0.5: holding out 0.5 of 1 .*"):
        Translator(**{**params, "validation_fraction": 0.5, "dev_fraction": 0.0}).fit(
            [("ab", "AA B")]
        )


def test_the_learning_rate_is_cut_when_the_validation_loss_stops_improving():
    # lr 0.3 overshoots: some epochs do not improve, and each such epoch halves the rate
    params = {**TINY, "epochs": 8, "lr": 0.3, "patience": None, "lr_decay": 0.5}
    assert Translator().lr_schedule == "plateau"
    tr = Translator(**params).fit(PAIRS)
    history = tr.history_
    val = [(loss, lr) for kind, loss, lr in zip(history["kind"], history["loss"], history["lr"])
           if kind == "val"]  # fmt: skip
    best, lr, cuts = np.inf, 0.3, 0
    for loss, logged in val:
        assert logged == pytest.approx(lr)  # the rate of the epoch this validation ends
        if loss < best * (1 - 1e-4):
            best = loss
        else:
            lr, cuts = lr * 0.5, cuts + 1
    assert cuts >= 1
    constant = Translator(**{**params, "lr_schedule": None}).fit(PAIRS)
    assert {lr for kind, lr in zip(constant.history_["kind"], constant.history_["lr"])
            if kind == "val"} == {0.3}  # fmt: skip


def test_the_cosine_schedule_anneals_to_zero_over_the_epochs():
    tr = Translator(**{**TINY, "epochs": 3, "lr_schedule": "cosine"}).fit(PAIRS)
    history = tr.history_
    lrs = np.array([lr for kind, lr in zip(history["kind"], history["lr"]) if kind == "train"])
    total = 3 * -(-len(TRAIN) // 8)
    assert len(lrs) == total
    expected = 0.01 * 0.5 * (1 + np.cos(np.pi * np.arange(total) / total))
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


# -- predicting ---------------------------------------------------------------------------------


def test_predictions_come_back_in_input_order_whatever_the_batching(fitted, monkeypatch):
    sources = [w for w, _ in DEV] + ["abcdef", "f", "fedcba", "ab"]
    together = fitted.predict(sources)
    monkeypatch.setattr(translate_estimator, "DECODE_BATCH", 3)
    assert fitted.predict(sources) == together
    assert [fitted.predict([s])[0] for s in sources[:8]] == together[:8]
    assert fitted.predict(sources[::-1]) == together[::-1]
    assert fitted.predict([]) == []
    assert fitted.predict(s for s in sources[:3]) == together[:3]  # any iterable
    # bit for bit, scores included: alone, among others of other lengths, in other batches
    nbest = fitted.predict(sources, nbest=3)
    monkeypatch.setattr(translate_estimator, "DECODE_BATCH", 64)
    assert fitted.predict(sources[::-1], nbest=3) == nbest[::-1]
    assert [fitted.predict([s], nbest=3)[0] for s in sources[:10]] == nbest[:10]


def test_beam_and_greedy(fitted):
    sources = [w for w, _ in DEV]
    greedy = fitted.predict(sources, beam=1)
    assert all(isinstance(p, str) for p in greedy)
    # greedy decoding is beam search of width 1
    ids = [fitted.source_vocab_.encode(list(s)) for s in sources[:5]]
    for s, i in zip(sources[:5], ids):
        [[h]] = beam_search(
            fitted.model_,
            i[:, None],
            np.array([len(i)]),
            beam=1,
            max_length=fitted.max_length(len(i)),
        )
        assert g2p_tokens(fitted, h.tokens) == fitted.predict([s], beam=1)[0]


def g2p_tokens(tr: Translator, ids: list[int]) -> str:
    return " ".join(tr.target_vocab_.decode(np.array(ids, dtype=np.intp)))


def test_nbest_lists_with_scores(fitted):
    sources = ["abc", "fed", "a"]
    lists = fitted.predict(sources, nbest=3)
    best = fitted.predict(sources)
    for hyps, first in zip(lists, best):
        assert 1 <= len(hyps) <= 3
        assert hyps[0][0] == first
        scores = [s for _, s in hyps]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
        assert len({t for t, _ in hyps}) == len(hyps)  # distinct outputs
    assert fitted.predict(sources, nbest=5, beam=5)[0][:3] == lists[0]
    with pytest.raises(ValueError, match=r"nbest must be <= beam \(5\), got 6"):
        fitted.predict(sources, nbest=6)
    with pytest.raises(ValueError, match="beam must be a positive int"):
        fitted.predict(sources, beam=0)


def test_unknown_source_tokens_read_as_unk(fitted):
    [out] = fitted.predict(["axq"])
    assert isinstance(out, str)
    [(weights, src, tgt)] = fitted.attention_weights(["axq"], tokens=True)
    assert src == ["a", "<unk>", "<unk>"] and weights.shape[1] == 3
    assert tgt[-1] == "</s>" and tgt[:-1] == tokenize(out, "words")


def test_attention_weights(fitted):
    sources = ["abc", "fedcb"]
    weights = fitted.attention_weights(sources)
    outputs = fitted.predict(sources)
    for w, s, out in zip(weights, sources, outputs):
        assert w.shape == (len(out.split()) + 1, len(s))  # the EOS step has a row
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    # a monotonic toy alignment: output token t looks mostly at source letter t
    assert [int(i) for i in weights[1][:-1].argmax(axis=1)] == [0, 1, 2, 3, 4]


def test_output_length_limit(fitted):
    tr = copy.deepcopy(fitted)
    assert tr.max_length(5) == 20 and tr.max_length(np.array([0, 3])).tolist() == [10, 16]
    tr.set_params(max_length_ratio=0.0, max_length_offset=2)
    for out in tr.predict(["abcde", "fedcb"]) + tr.predict(["abcde"], beam=1):
        assert len(out.split()) <= 2
    for hyps in tr.predict(["abcde"], nbest=2):
        assert all(len(t.split()) <= 2 for t, _ in hyps)


def test_evaluate_matches_the_metrics_and_grouped_references(fitted):
    pairs = [*DEV, (DEV[0][0], "ZZ ZZ")]  # an alternative reference: it changes nothing here
    scores = fitted.evaluate(pairs)
    groups: dict[str, list[str]] = {}
    for s, t in pairs:
        groups.setdefault(s, []).append(t)
    outputs = fitted.predict(list(groups))
    hyps = [o.split() for o in outputs]
    refs = [[r.split() for r in rs] for rs in groups.values()]
    assert scores == {
        "token_error_rate": metrics.token_error_rate(hyps, refs),
        "sequence_error_rate": metrics.sequence_error_rate(hyps, refs),
        "n": len(groups),
        "bleu": metrics.corpus_bleu(hyps, refs),
        "chrf": metrics.corpus_chrf(outputs, list(groups.values())),
    }
    # a source whose only reference is its own prediction is right
    right = fitted.evaluate([(s, o) for s, o in zip(groups, outputs)])
    assert right["sequence_error_rate"] == 0.0 and right["token_error_rate"] == 0.0


def test_character_targets_have_no_bleu():
    pairs = [("ab", "xy"), ("ba", "yx"), ("a", "x"), ("b", "y")]
    tr = Translator(**{**TINY, "target_tokens": "chars", "dev_fraction": 0.0, "epochs": 2})
    scores = tr.fit(pairs).evaluate(pairs)
    assert sorted(scores) == ["n", "sequence_error_rate", "token_error_rate"]
    words = Translator(**{**TINY, "source_tokens": "words", "dev_fraction": 0.0, "epochs": 2})
    words.fit([("the cat", "le chat"), ("a cat", "un chat")])
    assert words.source_vocab_.to_list() == ["cat", "a", "the"]
    assert isinstance(words.predict(["the dog"])[0], str)


# -- saving and loading -------------------------------------------------------------------------


def test_save_load_round_trip(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.rnnkit")
    loaded = Estimator.load(path)
    assert type(loaded) is Translator and loaded.get_params() == fitted.get_params()
    assert loaded.source_vocab_ == fitted.source_vocab_
    assert loaded.target_vocab_ == fitted.target_vocab_
    assert loaded.dev_loss_ == fitted.dev_loss_ and loaded.n_steps_ == fitted.n_steps_
    assert loaded.history_ == fitted.history_
    sources = [w for w, _ in DEV]
    assert loaded.predict(sources, nbest=2) == fitted.predict(sources, nbest=2)
    assert Translator.load(path).predict(["abc"]) == fitted.predict(["abc"])
    assert not loaded.model_.training


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "gru", "bidirectional": False, "attention": "additive", "attention_size": 5},
        {"cell": "rnn", "bridge": "zeros", "attention": "dot", "input_feeding": False},
        {"num_layers": 2, "encoder_layers": 1, "tie_embeddings": True, "embedding_dim": 32},
        {"dtype": "float64", "scheduled_sampling": 0.3, "dropout": 0.2},
    ],
    ids=["gru-additive", "rnn-dot-zeros", "layers-tied", "float64-sampling"],
)
def test_variants_fit_save_and_load(options, tmp_path):
    tr = Translator(**{**TINY, "epochs": 1, "dev_fraction": 0.0, **options}).fit(PAIRS[:40])
    loaded = Translator.load(tr.save(tmp_path / "m.rnnkit"))
    assert loaded.predict(["abc", "fe"], nbest=2) == tr.predict(["abc", "fe"], nbest=2)


def damaged(tmp_path, fitted, change) -> str:
    tree = checkpoint.load(fitted.save(tmp_path / "good.rnnkit"))
    change(tree)
    path = tmp_path / "bad.rnnkit"
    checkpoint.save(path, tree)
    return str(path)


def set_param(name, value):
    return lambda tree: tree["params"].__setitem__(name, value)


def set_state(name, value):
    return lambda tree: tree["state"].__setitem__(name, value)


def reshape_weight(tree):
    model = tree["state"]["model"]
    model["combine.weight"] = model["combine.weight"][:, :-1].copy()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (set_param("hidden_size", 10**12), r"of shape \(2000000000000, 16\)"),
        (set_param("num_layers", 3), "imply .* parameter arrays"),
        (set_param("attention", "dot"), "imply .* parameter arrays"),
        (set_param("embedding_dim", 8), r"source_embedding\.weight.* of shape"),
        (set_param("cell", "gru"), "imply 21 parameter arrays, state.model holds 23"),
        (set_param("cell", "nope"), "invalid stored setting"),
        (set_param("target_tokens", "bytes"), "invalid stored setting"),
        (set_param("attention_size", 4), "invalid stored setting"),
        (reshape_weight, r"combine\.weight"),
        (set_state("source_vocabulary", ["a", "a"]), "distinct"),
        (set_state("source_vocabulary", ["a", 3]), "non-empty strings"),
        (set_state("target_vocabulary", "abc"), "non-empty strings"),
        (set_state("source_vocabulary", ["a"]), r"source_embedding\.weight"),
        (set_state("n_steps", -1), "n_steps"),
        (set_state("dev_loss", "low"), "dev_loss"),
        (lambda tree: tree["state"].pop("history"), "history"),
    ],
    ids=[
        "huge-hidden",
        "layers",
        "score",
        "embedding",
        "cell",
        "unknown-cell",
        "token-mode",
        "attention-size",
        "weight-shape",
        "duplicate-token",
        "non-str-token",
        "vocab-str",
        "vocab-size",
        "steps",
        "dev-loss",
        "no-history",
    ],
)
def test_damaged_files_are_refused_before_a_model_is_built(fitted, tmp_path, change, match):
    path = damaged(tmp_path, fitted, change)
    with pytest.raises(checkpoint.CheckpointError, match=match):
        Estimator.load(path)


# -- settings and inputs ------------------------------------------------------------------------


def test_get_and_set_params():
    tr = Translator(hidden_size=64, beam=3)
    params = tr.get_params()
    assert params["hidden_size"] == 64 and params["beam"] == 3
    assert params["source_tokens"] == "chars" and params["patience"] == 3
    assert tr.set_params(beam=7) is tr and tr.beam == 7
    assert repr(tr) == "Translator(hidden_size=64, beam=7)"
    with pytest.raises(ValueError, match="invalid parameter 'beams'"):
        tr.set_params(beams=2)
    Translator().check_params()  # the defaults are valid


def test_not_fitted():
    tr = Translator()
    for call in (
        lambda: tr.predict(["a"]),
        lambda: tr.evaluate([("a", "b")]),
        lambda: tr.attention_weights(["a"]),
        lambda: tr.save("x.rnnkit"),
    ):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"source_tokens": "bytes"}, ValueError, "source_tokens must be 'chars' or 'words'"),
        ({"target_tokens": None}, ValueError, "target_tokens must be"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be a positive int"),
        ({"hidden_size": 7}, ValueError, "hidden_size must be even"),
        ({"embedding_dim": 2.5}, TypeError, "embedding_dim must be an int"),
        ({"encoder_layers": 0}, ValueError, "encoder_layers must be a positive int"),
        ({"cell": "transformer"}, ValueError, "transformer"),
        ({"bidirectional": "yes"}, TypeError, "bidirectional must be True or False"),
        ({"attention": "cosine"}, ValueError, "attention must be"),
        ({"attention_size": 8}, ValueError, "attention_size applies to attention='additive'"),
        ({"bridge": "tanh"}, ValueError, "bridge must be"),
        ({"tie_embeddings": True}, ValueError, "tie_embeddings needs embedding_dim == hidden"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"label_smoothing": -0.1}, ValueError, "label_smoothing"),
        ({"scheduled_sampling": 2}, ValueError, "scheduled_sampling"),
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"batch_size": None}, TypeError, "batch_size must be an int"),
        ({"lr": 0}, ValueError, "lr"),
        ({"clip_norm": -1.0}, ValueError, "clip_norm"),
        ({"patience": 0}, ValueError, "patience must be a positive int"),
        ({"dev_fraction": 1.0}, ValueError, "dev_fraction"),
        ({"validation_fraction": -0.1}, ValueError, "validation_fraction must lie in"),
        ({"lr_decay": 0.0}, ValueError, "lr_decay"),
        ({"lr_decay": 1.0}, ValueError, r"lr_decay must lie in \(0, 1\), got 1.0"),
        ({"lr_schedule": "step"}, ValueError, "lr_schedule must be 'plateau' or 'cosine'"),
        ({"lr_patience": -1}, ValueError, "lr_patience must be an int >= 0"),
        ({"lr_patience": 1.0}, TypeError, "lr_patience must be an int >= 0"),
        ({"beam": 0}, ValueError, "beam must be a positive int"),
        ({"length_penalty": "wu"}, ValueError, "length_penalty must be"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"max_length_ratio": float("nan")}, ValueError, "max_length_ratio"),
        ({"max_length_offset": 0}, ValueError, "max_length_offset must be a positive int"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"seed": np.random.default_rng(0)}, TypeError, "seed must be an int or None"),
        ({"dtype": "float16"}, TypeError, "dtype"),
        ({"quiet": 1}, TypeError, "quiet must be True or False"),
    ],
)
def test_bad_settings_raise_on_fit(params, error, match):
    with pytest.raises(error, match=match):
        Translator(**{**TINY, **params}).fit(PAIRS)


@pytest.mark.parametrize(
    ("pairs", "kw", "error", "match"),
    [
        ("ab\tAA B", {}, TypeError, "pairs must be a list of .source, target. string pairs"),
        ([("ab", "AA B", "x")], {}, TypeError, r"pairs\[0\] must be a \(source, target\) pair"),
        ([("ab", "AA B"), "ab"], {}, TypeError, r"pairs\[1\] must be a \(source, target\) pair"),
        ([("ab", 3)], {}, TypeError, r"pairs\[0\]: the target must be a str, got int"),
        ([("", "AA")], {}, ValueError, r"pairs\[0\]: the source '' has no char token"),
        ([("ab", "  ")], {}, ValueError, r"pairs\[0\]: the target '  ' has no word token"),
        ([], {}, ValueError, "pairs holds no pair"),
        (PAIRS, {"dev": [("a", 1)]}, TypeError, r"dev\[0\]: the target must be a str"),
        (PAIRS[:3], {}, ValueError, "leaves the development set empty"),
    ],
    ids=[
        "str",
        "triple",
        "not-a-pair",
        "non-str",
        "empty-source",
        "blank-target",
        "empty",
        "bad-dev",
        "too-few-sources",
    ],
)
def test_bad_pairs(pairs, kw, error, match):
    with pytest.raises(error, match=match):
        Translator(**TINY).fit(pairs, **kw)


def test_patience_needs_a_validation_set():
    with pytest.raises(ValueError, match="patience needs a validation set"):
        Translator(**{**TINY, "patience": 2, "dev_fraction": 0.0}).fit(PAIRS)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        Translator(**TINY).fit(PAIRS, resume=True)


def test_bad_sources(fitted):
    with pytest.raises(TypeError, match=r"sources must be a list of strings, got str \(wrap"):
        fitted.predict("abc")
    with pytest.raises(TypeError, match=r"sources\[1\] must be a str, got int"):
        fitted.predict(["abc", 5])
    with pytest.raises(ValueError, match=r"sources\[0\] '' has no char token"):
        fitted.predict([""])
    with pytest.raises(TypeError, match="nbest must be an int"):
        fitted.predict(["abc"], nbest=1.5)
    with pytest.raises(TypeError, match=r"pairs\[0\]: the target must be a str"):
        fitted.evaluate([("abc", None)])


# -- checkpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"epochs": 3},
        {"epochs": 12, "patience": 1, "lr": 0.05, "dropout": 0.2, "scheduled_sampling": 0.3},
    ],
    ids=["epochs", "early-stopping"],
)
def test_killed_after_any_checkpoint_resumes_exactly(tmp_path, options):
    pairs = PAIRS[:60]
    params = {**TINY, "batch_size": 16, "dev_fraction": 0.2, **options}
    straight = Translator(**params).fit(pairs)
    count = []
    probe = Translator(**params).fit(
        pairs,
        checkpoint=tmp_path / "probe.ckpt",
        checkpoint_seconds=0,
        callbacks=(lambda e, t, r: count.append(1) if e == "checkpoint" else None,),
    )
    assert probe.n_steps_ == straight.n_steps_
    total = len(count)
    assert total >= 6
    expected = straight.model_.state_dict()
    for n in sorted({1, 2, total // 2, total - 1}):
        path = tmp_path / f"k{n}.ckpt"
        with pytest.raises(Killed):
            Translator(**params).fit(
                pairs, checkpoint=path, checkpoint_seconds=0, callbacks=(kill_after(n),)
            )
        resumed = Translator(**params).fit(pairs, checkpoint=path, resume=True)
        got = resumed.model_.state_dict()
        assert list(got) == list(expected) and all(np.array_equal(got[k], expected[k]) for k in got)
        assert resumed.stopped_ == straight.stopped_ and resumed.n_steps_ == straight.n_steps_
        assert resumed.dev_loss_ == straight.dev_loss_
        assert untimed(resumed.history_) == untimed(straight.history_)
        assert resumed.predict(["abc", "fed"], nbest=2) == straight.predict(["abc", "fed"], nbest=2)


def test_resume_refuses_other_pairs_or_checkpoints(tmp_path):
    path = tmp_path / "run.ckpt"
    params = {**TINY, "epochs": 1, "dev_fraction": 0.0}
    Translator(**params).fit(PAIRS[:20], checkpoint=path)
    with pytest.raises(ValueError, match="different source vocabulary"):
        Translator(**params).fit([("xyz", "AA")], checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="different target vocabulary"):
        Translator(**params).fit([(s, "ZZ") for s, _ in PAIRS[:20]], checkpoint=path, resume=True)
    model = Translator(**params).fit(PAIRS[:20]).model_
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), "cross_entropy")
    other = trainer.save_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a Translator training checkpoint"):
        Translator(**params).fit(PAIRS[:20], checkpoint=other, resume=True)


# -- the attention plot -------------------------------------------------------------------------


def test_attention_plot(fitted, tmp_path):
    from rnnkit.apps import plots

    if not plots.available():
        pytest.skip("matplotlib is not installed")
    found = fitted.attention_weights(["abc", "fed ab"], tokens=True)
    weights, src, tgt = found[0]
    assert plots.attention(weights, src, tgt, tmp_path / "one.png").stat().st_size > 0
    path = plots.attention(
        [w for w, _, _ in found],
        [s for _, s, _ in found],
        [t for _, _, t in found],
        tmp_path / "two.png",
        titles=["abc", "fed ab"],
        title="toy",
    )
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match=r"needs 3 source tokens and \d+ target tokens"):
        plots.attention(weights, src[:2], tgt, tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-empty 2-D"):
        plots.attention(np.zeros((0, 3)), src, [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles must have one title per panel"):
        plots.attention([weights], [src], [tgt], tmp_path / "x.png", titles=["a", "b"])
