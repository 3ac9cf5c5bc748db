"""RNNClassifier: learning a synthetic problem, input preparation (NaN, normalisation,
downsampling), labels, probabilities, save/load, parameters, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.apps import NotFittedError
from rnnkit.apps.classify import RNNClassifier
from rnnkit.apps.classify.inputs import as_series, clean, windows
from rnnkit.apps.estimator import Estimator

SHAPES = ("sine", "square", "sawtooth")


def waves(n_per_class: int, seed: int, channels: int = 1, lengths=(20, 40)):
    """Sine, square and sawtooth waves with random period, phase, amplitude, offset, noise and
    length: the class is the shape, not the scale, so only a model that reads the series can
    tell them apart. Returns (list of (T, channels) arrays, labels)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_per_class):
        for label in SHAPES:
            T = int(rng.integers(*lengths))
            period = rng.uniform(8, 14)
            phase = rng.uniform(0, 1)
            u = (np.arange(T) / period + phase) % 1.0  # position within the period
            if label == "sine":
                wave = np.sin(2 * np.pi * u)
            elif label == "square":
                wave = np.where(u < 0.5, 1.0, -1.0)
            else:
                wave = 2 * u - 1
            x = wave[:, None] * rng.uniform(0.5, 3, channels) + rng.normal(0, 2, channels)
            X.append(x + rng.normal(0, 0.15, (T, channels)))
            y.append(label)
    return X, np.array(y)


def small(**kw) -> RNNClassifier:
    params = {"hidden_size": 12, "epochs": 3, "batch_size": 16, "quiet": True}
    return RNNClassifier(**(params | kw))


@pytest.fixture(scope="module")
def fitted():
    """One classifier learned on the three wave shapes, shared by the tests that only read it."""
    X, y = waves(30, seed=0)
    clf = RNNClassifier(
        hidden_size=16,
        bidirectional=True,
        pooling="mean",
        epochs=25,
        lr=0.01,
        batch_size=16,
        quiet=True,
    )
    return clf.fit(X, y)


# -- learning ---------------------------------------------------------------------------------


def test_learns_three_wave_shapes(fitted):
    X_test, y_test = waves(20, seed=1)
    assert fitted.score(X_test, y_test) >= 0.9
    report = fitted.evaluate(X_test, y_test)
    assert report["accuracy"] == fitted.score(X_test, y_test)
    assert report["macro_f1"] >= 0.9
    assert report["classes"] == ["sawtooth", "sine", "square"]
    assert report["confusion_matrix"].sum() == len(y_test)
    assert np.trace(report["confusion_matrix"]) == round(report["accuracy"] * len(y_test))


def test_untrained_is_no_better_than_chance():
    """The learning test above can fail: one epoch at a tiny learning rate learns nothing."""
    X, y = waves(30, seed=0)
    clf = RNNClassifier(hidden_size=16, epochs=1, lr=1e-5, quiet=True).fit(X, y)
    X_test, y_test = waves(20, seed=1)
    assert clf.score(X_test, y_test) < 0.6


def test_string_labels_round_trip(fitted):
    X, _ = waves(5, seed=2)
    assert fitted.classes_.tolist() == sorted(SHAPES)
    pred = fitted.predict(X)
    assert pred.dtype == fitted.classes_.dtype
    assert set(pred.tolist()) <= set(SHAPES)


def test_integer_labels_any_values():
    X, y = waves(4, seed=3)
    codes = np.array([{"sine": 7, "square": -2, "sawtooth": 40}[s] for s in y])
    clf = small().fit(X, codes)
    assert clf.classes_.tolist() == [-2, 7, 40]
    assert set(clf.predict(X).tolist()) <= {-2, 7, 40}


def test_predict_proba_rows_sum_to_one_and_match_predict(fitted):
    X, _ = waves(6, seed=4)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], fitted.predict(X))


def test_prediction_does_not_depend_on_batch_company(fitted):
    """Padding and sorting by length inside predict_proba must not change any row."""
    X, _ = waves(6, seed=5, lengths=(5, 60))
    together = fitted.predict_proba(X)
    alone = np.vstack([fitted.predict_proba([x]) for x in X])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_score_with_unknown_labels_counts_them_wrong(fitted):
    X, y = waves(4, seed=6)
    y_bad = y.copy().astype(object)
    y_bad[:3] = "triangle"
    assert fitted.score(X, y_bad) <= fitted.score(X, y) - 3 / len(y) + 1e-12
    report = fitted.evaluate(X, y_bad)
    assert report["classes"] == ["sawtooth", "sine", "square", "triangle"]
    assert report["confusion_matrix"].shape == (4, 4)
    assert report["confusion_matrix"][3].sum() == 3  # the unknown class' row
    assert report["confusion_matrix"][:, 3].sum() == 0  # never predicted
    assert fitted.score(X, np.arange(len(y))) == 0.0  # ints against string classes


# -- input forms ------------------------------------------------------------------------------


def test_input_forms_agree():
    """A 2-D array (N, T), a 3-D array (N, T, 1) and a list of 1-D or (T, 1) series are the
    same data set."""
    rng = np.random.default_rng(0)
    X2 = rng.normal(size=(6, 10))
    forms = [X2, X2[:, :, None], list(X2), [x[:, None] for x in X2], X2.tolist()]
    preps = [as_series(f) for f in forms]
    for prep in preps[1:]:
        for a, b in zip(preps[0], prep, strict=True):
            np.testing.assert_array_equal(a, b)
    assert preps[0][0].shape == (10, 1)
    clf = small(epochs=1).fit(X2, [0, 1] * 3)
    np.testing.assert_array_equal(clf.predict_proba(X2), clf.predict_proba(list(X2)))


def test_multivariate_variable_length():
    X, y = waves(10, seed=7, channels=3, lengths=(5, 30))
    assert len({len(x) for x in X}) > 5
    clf = small(epochs=2).fit(X, y)
    assert clf.n_features_in_ == 3
    assert clf.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match=r"X has 2 channels, but this RNNClassifier was fitted"):
        clf.predict([x[:, :2] for x in X])


# -- missing values ---------------------------------------------------------------------------


def test_nan_interpolation_values():
    nan = np.nan
    x = np.array(
        [
            [nan, 1.0, nan],
            [2.0, nan, nan],
            [nan, nan, nan],  # an all-NaN step inside the series: interpolated, not cut
            [4.0, 7.0, nan],
            [nan, nan, nan],  # trailing padding: cut
            [nan, nan, nan],
        ]
    )
    out = clean("x", x)
    expected = np.array(
        [
            [2.0, 1.0, 0.0],  # leading NaN: the nearest value; an all-NaN channel: 0
            [2.0, 3.0, 0.0],
            [3.0, 5.0, 0.0],  # linear between neighbours
            [4.0, 7.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(out, expected)
    assert not np.isnan(x[:4, 0]).all()  # the input is left alone
    assert np.isnan(x[0, 0])


def test_nan_padded_array_means_variable_lengths():
    """An array padded with NaN holds series of different lengths: the same as the list."""
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(T, 2)) for T in (4, 7, 5)]
    padded = np.full((3, 7, 2), np.nan)
    for n, s in enumerate(series):
        padded[n, : len(s)] = s
    for a, b in zip(as_series(padded), series, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_and_predict_with_missing_values():
    X, y = waves(8, seed=8)
    rng = np.random.default_rng(0)
    holes = [x.copy() for x in X]
    for x in holes:
        x[rng.random(len(x)) < 0.1] = np.nan
    clf = small(epochs=2).fit(holes, y)
    proba = clf.predict_proba(holes)
    assert np.isfinite(proba).all()


# -- normalisation and downsampling -----------------------------------------------------------


def test_normalize_series_removes_offset_and_scale():
    X, y = waves(4, seed=9)
    clf = small(epochs=1, normalize="series").fit(X, y)
    moved = [5.0 * x - 3.0 for x in X]
    np.testing.assert_allclose(clf.predict_proba(moved), clf.predict_proba(X), atol=1e-5)
    inputs = clf._transform(as_series(X))
    for x in inputs:
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(x.std(axis=0), 1.0, rtol=1e-12)
    assert clf.mean_ is None and clf.scale_ is None


def test_normalize_global_uses_training_statistics():
    rng = np.random.default_rng(2)
    X = [rng.normal([10.0, -5.0], [2.0, 0.5], size=(int(T), 2)) for T in rng.integers(5, 15, 12)]
    y = [0, 1] * 6
    clf = small(epochs=1, normalize="global").fit(X, y)
    steps = np.concatenate(X)
    np.testing.assert_allclose(clf.mean_, steps.mean(axis=0))
    np.testing.assert_allclose(clf.scale_, steps.std(axis=0))
    z = np.concatenate(clf._transform(as_series(X)))
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)
    # unlike "series", an offset changes what the network sees
    assert not np.allclose(clf.predict_proba([x + 3.0 for x in X]), clf.predict_proba(X))


def test_normalize_none_and_constant_channels():
    X = [np.full((6, 2), 4.0), np.arange(12.0).reshape(6, 2)]
    clf = small(epochs=1, normalize=None).fit(X, ["a", "b"])
    np.testing.assert_array_equal(clf._transform(as_series(X))[1], X[1])
    series = small(normalize="series")._transform(as_series(X))
    np.testing.assert_array_equal(series[0], 0.0)  # a constant channel becomes 0, not NaN


def test_windows_as_steps():
    x = np.arange(7.0)[:, None]  # (T, C) = (7, 1)
    np.testing.assert_array_equal(windows(x, 3, 3), [[0, 1, 2], [3, 4, 5], [6, 6, 6]])
    np.testing.assert_array_equal(windows(x, 3, 2), [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(windows(x, 1, 3), [[0], [3], [6]])  # plain subsampling
    np.testing.assert_array_equal(windows(x[:2], 4, 1), [[0, 1, 1, 1]])  # shorter than a window
    two = np.arange(10.0).reshape(5, 2)  # steps flattened one after the other
    np.testing.assert_array_equal(windows(two, 2, 2), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]])


def test_window_and_stride_in_the_classifier():
    X, y = waves(3, seed=15, channels=2, lengths=(10, 30))
    clf = small(epochs=1, window=4, stride=2).fit(X, y)
    assert clf.model_.rnn.input_size == 8  # window * C
    steps = clf._transform(as_series(X))
    assert [len(s) for s in steps] == [1 + -(-(len(x) - 4) // 2) for x in X]
    non_overlapping = small(epochs=1, window=4).fit(X, y)  # stride defaults to the window
    assert [len(s) for s in non_overlapping._transform(as_series(X))] == [
        -(-len(x) // 4) for x in X
    ]


def test_cosine_schedule():
    X, y = waves(4, seed=17)
    clf = small(epochs=4, lr=0.01, lr_schedule="cosine").fit(X, y)
    lrs = [lr for lr, kind in zip(clf.history_["lr"], clf.history_["kind"]) if kind == "train"]
    assert len(lrs) == 4  # 12 series in one batch: one step per epoch
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


# -- saving, parameters -----------------------------------------------------------------------


def test_save_load_round_trip(fitted, tmp_path):
    X, _ = waves(5, seed=10)
    path = fitted.save(tmp_path / "clf.ckpt")
    back = Estimator.load(path)
    assert isinstance(back, RNNClassifier)
    assert back.get_params() == fitted.get_params()
    np.testing.assert_array_equal(back.classes_, fitted.classes_)
    assert back.classes_.dtype == fitted.classes_.dtype
    np.testing.assert_array_equal(back.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), fitted.predict(X))


@pytest.mark.parametrize("normalize", ["global", None])
def test_save_load_keeps_normaliser_and_int_classes(tmp_path, normalize):
    X, y = waves(3, seed=11, channels=2)
    codes = np.array([SHAPES.index(s) for s in y])
    clf = small(epochs=1, normalize=normalize, window=2, bidirectional=True).fit(X, codes)
    back = RNNClassifier.load(clf.save(tmp_path / "clf.ckpt"))
    assert back.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    if normalize == "global":
        np.testing.assert_array_equal(back.mean_, clf.mean_)
        np.testing.assert_array_equal(back.scale_, clf.scale_)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_get_params_set_params():
    clf = RNNClassifier(hidden_size=7, pooling="max")
    params = clf.get_params()
    assert params["hidden_size"] == 7 and params["pooling"] == "max"
    assert params["normalize"] == "series" and params["cell"] == "lstm"
    assert clf.set_params(hidden_size=9, cell="gru") is clf
    assert (clf.hidden_size, clf.cell) == (9, "gru")
    assert RNNClassifier(**clf.get_params()).get_params() == clf.get_params()
    assert repr(clf) == "RNNClassifier(hidden_size=9, cell='gru', pooling='max')"
    with pytest.raises(ValueError, match="invalid parameter 'hidden'"):
        clf.set_params(hidden=3)


def test_same_seed_same_model():
    X, y = waves(4, seed=12)
    a = small(epochs=2, dropout=0.2, seed=3).fit(X, y).predict_proba(X)
    b = small(epochs=2, dropout=0.2, seed=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_ensemble_averages_members_seeded_in_turn(tmp_path):
    X, y = waves(4, seed=15)
    ens = small(epochs=2, dropout=0.2, seed=5, ensemble=3).fit(X, y)
    assert len(ens.models_) == 3 and ens.model_ is ens.models_[0]
    singles = [small(epochs=2, dropout=0.2, seed=5 + k).fit(X, y) for k in range(3)]
    probas = [clf.predict_proba(X) for clf in singles]
    assert not np.allclose(probas[0], probas[1])  # the members do differ
    np.testing.assert_allclose(ens.predict_proba(X), np.mean(probas, axis=0), rtol=1e-6)
    members = ens.history_["member"]
    assert sorted(set(members)) == [0, 1, 2]
    assert len(members) == len(ens.history_["loss"]) == 3 * len(singles[0].history_["loss"])
    back = RNNClassifier.load(ens.save(tmp_path / "ens.ckpt"))
    assert back.ensemble == 3 and len(back.models_) == 3
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))


def test_validation_and_early_stopping():
    X, y = waves(10, seed=13)
    clf = small(epochs=30, val_fraction=0.3, patience=2, lr=0.05).fit(X, y)
    kinds = clf.history_["kind"]
    assert "val" in kinds
    assert clf.history_["epoch"][-1] <= 30


@pytest.mark.parametrize(
    "options", [{"cell": "gru", "zoneout": 0.1}, {"cell": "rnn", "num_layers": 2, "dropout": 0.1}]
)
def test_other_cells(options):
    X, y = waves(4, seed=14)
    clf = small(epochs=1, **options).fit(X, y)
    assert clf.predict(X).shape == (len(X),)


# -- errors -----------------------------------------------------------------------------------


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        RNNClassifier().predict([np.zeros(5)])
    with pytest.raises(NotFittedError):
        RNNClassifier().save("never.ckpt")


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        ([np.zeros(5), np.ones(5)], [0, 1, 0], r"X and y must have the same length, got 2 .* 3"),
        ([], [], "X must hold at least one series, got none"),
        (np.zeros((0, 5)), [], "X must hold at least one series"),
        ([np.zeros((5, 2)), np.zeros((5, 3))], [0, 1], r"X\[1\] has 3 channels, X\[0\] has 2"),
        ([np.zeros(5), np.full(4, np.nan)], [0, 1], r"X\[1\] has no values: every entry is NaN"),
        ([np.zeros(5), np.zeros(0)], [0, 1], r"X\[1\] is empty \(0 time steps\)"),
        ([np.zeros(5), np.array([1, np.inf])], [0, 1], r"X\[1\] must be finite or NaN"),
        ([np.zeros(5), np.zeros((2, 2, 2))], [0, 1], r"X\[1\] must be 1-D \(T,\) or 2-D"),
        (np.zeros(5), [0], r"2-D array \(N, T\) or a 3-D array \(N, T, C\)"),
        ([np.zeros(5), ["a", "b"]], [0, 1], r"X\[1\] must be a numeric array"),
        ([np.zeros(5), np.ones(5)], ["a", "a"], "y has a single class 'a'"),
        ([np.zeros(5), np.ones(5)], [[0], [1]], "y must be 1-D"),
        ([np.zeros(5), np.ones(5)], [0.0, np.nan], "y must not contain NaN"),
    ],
)
def test_bad_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        small(epochs=1).fit(X, y)


def test_bad_types():
    with pytest.raises(TypeError, match="X must be a list of series or an array, got int"):
        small().fit(3, [0])
    with pytest.raises(TypeError, match="y must hold labels of one kind that sort"):
        small().fit([np.zeros(5), np.ones(5)], np.array([1, "a"], dtype=object))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"normalize": "minmax"}, ValueError, "normalize must be one of"),
        ({"pooling": "sum"}, ValueError, "pooling must be one of"),
        ({"cell": "transformer"}, ValueError, "cell must be one of"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be a positive int"),
        ({"stride": 1.5}, TypeError, "stride must be an int"),
        ({"window": 0}, ValueError, "window must be a positive int"),
        ({"lr_schedule": "linear"}, ValueError, "lr_schedule must be one of"),
        ({"patience": 3}, ValueError, "patience needs a validation set"),
        ({"dropout": 1.0}, ValueError, r"dropout must lie in \[0, 1\)"),
        ({"cell": "rnn", "zoneout": 0.1}, ValueError, 'zoneout needs cell "lstm" or "gru"'),
        ({"lr": -1.0}, ValueError, "lr must be a non-negative number"),
        ({"dtype": "int8"}, TypeError, "dtype must be np.float32 or np.float64"),
        ({"ensemble": 0}, ValueError, "ensemble must be a positive int"),
        ({"seed": None}, TypeError, "seed must be an int, got None"),
    ],
)
def test_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        small(**params).fit([np.zeros(5), np.ones(5)], [0, 1])
