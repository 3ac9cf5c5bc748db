"""Character language modelling: text files, the default corpus, the vocabulary, and CharLM
(learning, sampling, scoring, unknown characters, saving, parameters, errors, resuming)."""

from __future__ import annotations

import collections
import json
import math

import numpy as np
import pytest

from rnnkit.apps import Estimator, NotFittedError
from rnnkit.apps.lm import CharLM
from rnnkit.data.text import UNKNOWN_CHAR, Vocabulary, default_corpus, load_text

RHYME = (
    "twinkle twinkle little star\nhow I wonder what you are\n"
    "up above the world so high\nlike a diamond in the sky\n"
)
TEXT = RHYME * 12  # 1,284 characters, 22 distinct
TINY = dict(
    hidden_size=32,
    num_layers=1,
    embedding_dim=16,
    bptt=32,
    batch_size=4,
    lr=0.02,
    dropout=0.0,
    val_fraction=0.1,
    quiet=True,
    seed=0,
)


def unigram_bits(text: str) -> float:
    n = len(text)
    return -sum(k / n * math.log2(k / n) for k in collections.Counter(text).values())


@pytest.fixture(scope="module")
def lm() -> CharLM:
    return CharLM(steps=60, **TINY).fit(TEXT)


# -- text files and the default corpus ----------------------------------------------------------


def test_load_text_joins_files_and_normalises_line_ends(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeffcaf\u00e9\r\nbar".encode())
    (tmp_path / "b.txt").write_bytes(b"baz\rqux")
    assert load_text(tmp_path / "a.txt") == "caf\u00e9\nbar"
    assert load_text([tmp_path / "a.txt", str(tmp_path / "b.txt")]) == "caf\u00e9\nbar\nbaz\nqux"


def test_load_text_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.txt: no such file"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xffrest")
    with pytest.raises(ValueError, match=r"bad\.txt: not UTF-8 .*0xff at byte offset 3"):
        load_text([tmp_path / "bad.txt"])
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"^text is empty$"):
        load_text(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="paths must name at least one file"):
        load_text([])


def test_default_corpus_is_deterministic_and_substantial():
    text = default_corpus()
    assert text == default_corpus.__wrapped__()  # the same text when built afresh
    assert 200_000 < len(text) < 2_000_000
    vocab = Vocabulary.from_text(text)
    assert 60 < len(vocab) < 300
    assert 'The "assert" statement' in text and text.count("\n") > 5_000
    assert unigram_bits(text) > 4.0  # prose, not a repetition


# -- vocabulary ---------------------------------------------------------------------------------


def test_vocabulary_round_trip_and_unknown_characters():
    text = "zebra \u00e9t\u00e9 \U0001f600 abc"
    vocab = Vocabulary.from_text(text)
    assert vocab.chars == sorted(set(text), key=ord)  # by code point: " " < "a" < "\u00e9" < ...
    assert len(vocab) == len(set(text)) + 1
    ids = vocab.encode(text)
    assert ids.dtype == np.intp and ids.shape == (len(text),) and ids.min() >= 1
    assert vocab.decode(ids) == text
    # unknown characters map to id 0 and decode to U+FFFD
    assert vocab.encode("aqb").tolist() == [vocab.encode("a")[0], 0, vocab.encode("b")[0]]
    assert vocab.decode(vocab.encode("aqb")) == f"a{UNKNOWN_CHAR}b"
    assert vocab.coverage("aqbq") == 0.5 and vocab.count_unknown("aqbq") == 2
    assert vocab.coverage("") == 1.0 and "a" in vocab and "q" not in vocab
    # U+FFFD in a text is an unknown character, never part of the vocabulary
    assert UNKNOWN_CHAR not in Vocabulary.from_text(f"ab{UNKNOWN_CHAR}").chars
    # rebuilt from its JSON-able chars, ids unchanged
    again = Vocabulary(json.loads(json.dumps(vocab.chars)))
    assert again == vocab and again.encode(text).tolist() == ids.tolist()
    # an explicit order is kept
    assert Vocabulary(["b", "a"]).encode("ab").tolist() == [2, 1]


def test_vocabulary_rejects_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match=r"chars\[1\] must be a single character"):
        Vocabulary(["a", "bc"])
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary(["a", UNKNOWN_CHAR])
    with pytest.raises(TypeError, match="from_text"):
        Vocabulary("abc")
    with pytest.raises(ValueError, match="text is empty"):
        Vocabulary.from_text("")
    vocab = Vocabulary.from_text("ab")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\).*got 3"):
        vocab.decode([1, 3])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode([1.0])


# -- learning -----------------------------------------------------------------------------------


def test_charlm_learns_a_repeated_rhyme(lm):
    baseline = unigram_bits(TEXT)  # about 4.1 bits/char
    held_out = lm.evaluate(TEXT[-len(RHYME) :])
    assert held_out["bits_per_char"] < 0.15 * baseline
    assert lm.val_loss_ / math.log(2) < 0.15 * baseline
    assert held_out["unknown_chars"] == 0 and held_out["chars"] == len(RHYME) - 1
    assert held_out["perplexity"] == pytest.approx(math.exp(held_out["nats_per_char"]))
    assert lm.score(RHYME) == pytest.approx(-lm.evaluate(RHYME)["nats_per_char"])
    # it continues the rhyme
    assert lm.sample("twinkle twinkle ", length=11, top_k=1) == "little star"
    assert lm.sample("how I ", length=14, top_k=1) == "wonder what yo"
    # the validation loss is the score of the held-out end of the text
    n_val = int(len(TEXT) * TINY["val_fraction"])
    assert lm.evaluate(TEXT[-n_val:])["nats_per_char"] == pytest.approx(lm.val_loss_, rel=1e-6)
    # the fitted attributes
    assert lm.n_steps_ == 60 and lm.history_["kind"].count("train") == 60
    assert lm.char_counts_.sum() == len(TEXT) - n_val and lm.char_counts_[0] == 0


def test_untrained_model_is_near_uniform_and_training_beats_it(lm):
    fresh = CharLM(steps=1, **{**TINY, "lr": 1e-9}).fit(TEXT)
    assert fresh.evaluate(RHYME)["nats_per_char"] == pytest.approx(math.log(23), rel=0.05)
    assert lm.score(RHYME) > fresh.score(RHYME) + 2.0


# -- sampling -----------------------------------------------------------------------------------


def test_sample_length_seed_and_greedy(lm):
    a = lm.sample("how", length=50, temperature=2.0, seed=1)
    assert len(a) == 50 and a == lm.sample("how", length=50, temperature=2.0, seed=1)
    assert a != lm.sample("how", length=50, temperature=2.0, seed=2)
    greedy = lm.sample("how", length=50, top_k=1, seed=1)
    assert greedy == lm.sample("how", length=50, top_k=1, seed=99)  # top_k=1 ignores the seed
    # the temperature -> 0 limit is greedy decoding, without overflow
    assert lm.sample("how", length=50, temperature=1e-6, seed=3) == greedy
    assert lm.sample("how", length=50, temperature=1e-300, seed=4) == greedy
    assert lm.sample("how", length=0) == ""
    gen = np.random.default_rng(5)
    assert len(lm.sample(length=20, seed=gen)) == 20  # no prime: starts from the frequencies


def test_sample_top_k_keeps_the_k_most_likely(lm):
    logits, _, _ = lm.model_.forward(lm.vocabulary_.encode("twinkle ")[:, None])
    z = logits[-1, 0].astype(np.float64)
    z[0] = -np.inf
    top2 = set(lm.vocabulary_.decode(np.argsort(-z)[:2]))
    drawn = {lm.sample("twinkle ", length=1, temperature=50.0, top_k=2, seed=s) for s in range(60)}
    assert drawn == top2
    drawn_all = {lm.sample("twinkle ", length=1, temperature=50.0, seed=s) for s in range(60)}
    assert len(drawn_all) > 2


def test_sample_never_draws_the_unknown_id(lm):
    # at a huge temperature every known character is about equally likely
    text = lm.sample("q\u00e9!", length=400, temperature=1e6, seed=0)  # prime chars are unknown
    assert UNKNOWN_CHAR not in text
    assert set(text) <= set(lm.vocabulary_.chars)
    assert len(set(text)) > 15


# -- unknown characters when scoring ------------------------------------------------------------


def test_evaluate_counts_unseen_characters(lm):
    text = "twinkle twinkle little star\nhow I wondeR what you are\n\u00e9\u00e9"
    result = lm.evaluate(text)
    assert result["unknown_chars"] == 3
    assert result["chars"] == len(text) - 1 - 3  # the unknown ones are not predicted
    assert all(math.isfinite(result[k]) for k in ("nats_per_char", "bits_per_char", "perplexity"))
    assert lm.evaluate("aZa")["unknown_chars"] == 1
    with pytest.raises(ValueError, match="no character the model knows"):
        lm.evaluate("tQQ")


# -- saving, parameters ---------------------------------------------------------------------------


def test_save_load_round_trip(lm, tmp_path):
    path = lm.save(tmp_path / "rhyme.rnnkit")
    back = CharLM.load(path)
    assert isinstance(back, CharLM) and back.get_params() == lm.get_params()
    assert type(Estimator.load(path)) is CharLM
    for seed in (0, 1):
        assert back.sample("how", 80, temperature=1.5, top_k=5, seed=seed) == lm.sample(
            "how", 80, temperature=1.5, top_k=5, seed=seed
        )
    assert back.sample(length=30, seed=7) == lm.sample(length=30, seed=7)
    assert back.score(RHYME) == lm.score(RHYME)
    assert back.vocabulary_ == lm.vocabulary_ and back.history_ == lm.history_
    assert back.val_loss_ == lm.val_loss_ and back.n_steps_ == lm.n_steps_
    for name, value in lm.model_.state_dict().items():
        np.testing.assert_array_equal(back.model_.state_dict()[name], value)


def test_float64_and_gru_variants_save_and_load(tmp_path):
    lm = CharLM(steps=3, **{**TINY, "dtype": "float64", "cell": "gru", "dropout": 0.2}).fit(TEXT)
    assert lm.model_.parameters()["head.weight"].dtype == np.float64
    back = CharLM.load(lm.save(tmp_path / "gru.rnnkit"))
    assert back.score(RHYME) == lm.score(RHYME)
    assert back.sample("up", 40, seed=3) == lm.sample("up", 40, seed=3)


def test_get_and_set_params():
    lm = CharLM()
    params = lm.get_params()
    assert params["hidden_size"] == 256 and params["steps"] is None and len(params) == 15
    assert repr(lm) == "CharLM()"
    assert lm.set_params(hidden_size=8, cell="gru") is lm
    assert lm.hidden_size == 8 and repr(lm) == "CharLM(hidden_size=8, cell='gru')"
    clone = CharLM(**lm.get_params())
    assert clone.get_params() == lm.get_params()
    with pytest.raises(ValueError, match="invalid parameter 'hidden'"):
        lm.set_params(hidden=3)


# -- errors -------------------------------------------------------------------------------------


def test_not_fitted():
    lm = CharLM()
    for call in (lambda: lm.sample(), lambda: lm.score("ab"), lambda: lm.evaluate("ab")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(NotFittedError):
        lm.save("never-written.rnnkit")


def test_bad_sample_and_score_arguments(lm):
    for temperature in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            lm.sample("a", temperature=temperature)
    with pytest.raises(ValueError, match=r"length must be in \[0, 10,000,000\] characters"):
        lm.sample("a", length=10**12)
    with pytest.raises(ValueError, match=r"length must be in \[0, 10,000,000\] characters, got -1"):
        lm.sample("a", length=-1)
    with pytest.raises(TypeError, match="length must be an int"):
        lm.sample("a", length=2.5)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        lm.sample("a", top_k=0)
    with pytest.raises(TypeError, match="prime must be a str"):
        lm.sample(["a"])
    with pytest.raises(ValueError, match="text is empty"):
        lm.evaluate("")
    with pytest.raises(ValueError, match="at least 2 characters"):
        lm.score("a")


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"hidden_size": 0}, ValueError, "hidden_size must be a positive int"),
        ({"bptt": 2.0}, TypeError, "bptt must be an int"),
        ({"steps": -5}, ValueError, "steps must be a positive int"),
        ({"cell": "transformer"}, ValueError, "cell must be one of"),
        ({"dropout": 1.0}, ValueError, "dropout must lie in"),
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
        ({"val_fraction": 1.0}, ValueError, "val_fraction must lie in"),
        ({"clip_norm": -1.0}, ValueError, "clip_norm must be a finite number > 0"),
        ({"dtype": "int32"}, TypeError, "dtype must be"),
        ({"batch_size": 2000}, ValueError, "text is too short.*batch_size=2000"),
        ({"val_fraction": 0.001}, ValueError, "val_fraction=0.001 .* holds out 1"),
    ],
)
def test_bad_parameters_raise_on_fit(params, error, match):
    with pytest.raises(error, match=match):
        CharLM(**{**TINY, "steps": 1, **params}).fit(TEXT)


def test_bad_fit_text():
    with pytest.raises(ValueError, match="text is empty"):
        CharLM(**TINY).fit("")
    with pytest.raises(TypeError, match="text must be a str"):
        CharLM(**TINY).fit(b"abc")
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        CharLM(**TINY).fit(TEXT, resume=True)


# -- checkpoints --------------------------------------------------------------------------------


def test_resume_continues_from_the_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    first = CharLM(steps=6, **TINY).fit(TEXT, checkpoint=path)
    assert first.n_steps_ == 6 and path.exists()
    resumed = CharLM(steps=14, **TINY).fit(TEXT, checkpoint=path, resume=True)
    assert resumed.n_steps_ == 14
    train_steps = [
        s for s, k in zip(resumed.history_["step"], resumed.history_["kind"]) if k == "train"
    ]
    assert train_steps == list(range(1, 15))  # the first 6 steps come from the checkpoint
    straight = CharLM(steps=14, **TINY).fit(TEXT)
    for name, value in straight.model_.state_dict().items():
        np.testing.assert_array_equal(resumed.model_.state_dict()[name], value, err_msg=name)
    assert resumed.score(RHYME) == straight.score(RHYME)
    with pytest.raises(ValueError, match="different vocabulary"):
        CharLM(steps=20, **TINY).fit(TEXT + "#", checkpoint=path, resume=True)
    # resume=True without the file: starts afresh
    fresh = CharLM(steps=2, **TINY).fit(TEXT, checkpoint=tmp_path / "new.ckpt", resume=True)
    assert fresh.n_steps_ == 2
