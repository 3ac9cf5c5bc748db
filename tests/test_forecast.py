"""RNNForecaster, the baseline forecasts and the evaluations (hold-out, rolling origin).

The default tests use tiny networks, few epochs and synthetic series. The acceptance runs on the
real series (airline, sunspots: a few seeds each, about a minute) only run with
``RNNKIT_SLOW=1``; they read the shared CSVs with the stdlib and skip when the data is absent.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rnnkit.apps import Estimator, NotFittedError
from rnnkit.apps.forecast import (
    ForecastEvaluation,
    RNNForecaster,
    drift_forecast,
    forecast_metrics,
    naive_forecast,
    seasonal_naive_forecast,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "series"
SLOW = pytest.mark.skipif(
    os.environ.get("RNNKIT_SLOW") != "1", reason="acceptance run: set RNNKIT_SLOW=1"
)


def tiny(**kw) -> RNNForecaster:
    """A small, fast forecaster; keyword arguments override."""
    params = dict(window=6, horizon=2, hidden_size=4, epochs=2, batch_size=8, quiet=True)
    params.update(kw)
    return RNNForecaster(**params)


def sine(n: int = 120) -> np.ndarray:
    t = np.arange(n)
    return 5 + np.sin(2 * np.pi * t / 12) + 0.5 * np.sin(2 * np.pi * t / 7)


def load_series(name: str) -> np.ndarray:
    path = DATA / f"{name}.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([float(row[1]) for row in rows])


def zero_network(f: RNNForecaster) -> RNNForecaster:
    """Every weight and bias 0: the network outputs 0, i.e. the scaler's center after
    unscaling, which makes the inverse pipeline checkable by hand."""
    for value in f.model_.parameters().values():
        value[...] = 0.0
    return f


# -- baselines ------------------------------------------------------------------------------------


def test_baselines_follow_hyndmans_definitions():
    h = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0])
    np.testing.assert_array_equal(naive_forecast(h, 3), [2.0, 2.0, 2.0])
    # season 3: the last cycle (5, 9, 2), repeated; a season as long as the history: all of it
    np.testing.assert_array_equal(seasonal_naive_forecast(h, 5, 3), [5.0, 9.0, 2.0, 5.0, 9.0])
    np.testing.assert_array_equal(seasonal_naive_forecast(h, 2, 7), [3.0, 1.0])
    slope = (2.0 - 3.0) / 6
    np.testing.assert_allclose(drift_forecast(h, 3), 2.0 + slope * np.array([1, 2, 3]))


def test_baseline_errors():
    with pytest.raises(ValueError, match="at least 4 values, got 3"):
        seasonal_naive_forecast([1, 2, 3], 2, season=4)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        drift_forecast([1.0], 2)
    with pytest.raises(ValueError, match="horizon must be a positive int, got 0"):
        naive_forecast([1.0], 0)
    with pytest.raises(ValueError, match="1-D"):
        naive_forecast(np.ones((2, 2)), 1)


def test_forecast_metrics_nan_where_undefined():
    m = forecast_metrics([0.0, 2.0], [1.0, 2.0], train=[1.0, 2.0, 3.0])
    assert math.isnan(m["MAPE"])  # an actual 0
    assert m["MAE"] == 0.5 and m["MASE"] == 0.5
    assert math.isnan(forecast_metrics([1.0], [1.0], train=[2.0, 2.0])["MASE"])


# -- learning -------------------------------------------------------------------------------------


def test_sine_is_forecast_much_better_than_naive():
    f = RNNForecaster(window=12, horizon=3, hidden_size=8, epochs=40, batch_size=16, quiet=True)
    r = f.backtest(sine(), initial=90, step=3)
    model, naive = r.metrics["model"]["MAE"], r.metrics["naive"]["MAE"]
    assert model < 0.35 * naive, r.to_markdown()
    assert r.metrics["model"]["MASE"] < 0.35 * r.metrics["naive"]["MASE"]


def test_training_lowers_the_loss():
    f = tiny(epochs=15, window=12, hidden_size=8).fit(sine(80))
    losses = [v for k, v in zip(f.history_["kind"], f.history_["loss"]) if k == "train"]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


# -- scaling on the training part only ------------------------------------------------------------


def test_scaler_is_fitted_on_the_training_windows_only():
    rng = np.random.default_rng(0)
    y = np.linspace(0, 30, 60) + rng.normal(size=60)
    f = tiny(window=10, horizon=3, val_fraction=0.25).fit(y)
    # 48 windows: 12 for validation, 2 dropped so that validation targets follow training ones
    assert f.n_windows_ == (34, 12)
    assert f.scaler_end_ == 34 + 10 + 3 - 1
    train = y[: f.scaler_end_]
    assert f.scaler_["center"] == pytest.approx(train.mean(), rel=1e-12)
    assert f.scaler_["scale"] == pytest.approx(train.std(), rel=1e-12)
    assert abs(f.scaler_["center"] - y.mean()) > 1.0  # a trending series: it matters

    # changing anything after the training part leaves the scaler as it was
    y2 = y.copy()
    y2[f.scaler_end_ :] += 100.0
    g = tiny(window=10, horizon=3, val_fraction=0.25).fit(y2)
    assert g.scaler_ == f.scaler_


def test_validation_windows_follow_the_training_windows():
    """The logged validation loss is the MSE over exactly the last 12 windows, whose targets
    all lie after the scaler's (and the training windows') part of the series."""
    y = np.linspace(0, 30, 60) + np.random.default_rng(0).normal(size=60)
    f = tiny(window=10, horizon=3, val_fraction=0.25).fit(y)
    z = (y - f.scaler_["center"]) / f.scaler_["scale"]
    first = 48 - 12
    x = np.stack([z[i : i + 10] for i in range(first, 48)], axis=1)[:, :, None]  # (10, 12, 1)
    target = np.stack([z[i + 10 : i + 13] for i in range(first, 48)])  # (12, 3)
    assert first + 10 == f.scaler_end_  # the first validation target follows the training part
    out, _, _ = f.model_.eval().forward(x)
    val = [v for k, v in zip(f.history_["kind"], f.history_["loss"]) if k == "val"]
    assert val[-1] == pytest.approx(np.mean((out - target) ** 2), rel=1e-10)


def test_minmax_scaler_with_differences_sees_the_training_part_only():
    y = np.cumsum(np.random.default_rng(1).normal(size=50)) + 20
    f = tiny(window=5, horizon=1, scaling="minmax", difference=True, val_fraction=0.2).fit(y)
    d = np.diff(y[: f.scaler_end_])
    assert f.scaler_ == {"center": d.min(), "scale": d.max() - d.min()}
    assert f.scaler_end_ < y.size
    none = tiny(scaling=None).fit(y)
    assert none.scaler_ == {"center": 0.0, "scale": 1.0}


def test_holdout_never_reads_the_test_part():
    y = np.linspace(1, 10, 40) ** 2
    r = tiny().evaluate_holdout(y, test_size=8)
    est = r.estimator
    assert est.scaler_end_ == 32
    assert est.scaler_["center"] == pytest.approx(y[:32].mean(), rel=1e-12)
    np.testing.assert_array_equal(r.origins, [32])
    np.testing.assert_array_equal(r.actual, y[None, 32:])
    # the hold-out forecast is the fitted copy's forecast from the training part
    np.testing.assert_allclose(r.forecasts["model"][0], est.predict(horizon=8), rtol=1e-12)


# -- the inverse pipeline -------------------------------------------------------------------------


def test_differencing_is_undone_from_the_last_values():
    y = 5.0 + 2.0 * np.arange(30)  # every first difference is 2: the scaler's center
    f = zero_network(tiny(difference=True).fit(y))
    np.testing.assert_allclose(f.predict(horizon=4), 5.0 + 2.0 * np.arange(30, 34), rtol=1e-12)
    hist = 1.0 + 2.0 * np.arange(10)
    np.testing.assert_allclose(f.predict(hist, horizon=2), [21.0, 23.0], rtol=1e-12)


def test_log_and_seasonal_differences_are_undone():
    t = np.arange(48)
    y = np.exp(0.05 * t) * (2 + np.sin(2 * np.pi * t / 12))
    f = zero_network(tiny(window=4, log=True, difference=12, strategy="recursive").fit(y))
    # every log-difference at lag 12 is 12 * 0.05: the forecast is the last cycle, grown
    expected = np.exp(0.05 * np.arange(48, 60)) * (2 + np.sin(2 * np.pi * np.arange(48, 60) / 12))
    np.testing.assert_allclose(f.predict(horizon=12), expected, rtol=1e-10)
    np.testing.assert_allclose(f.predict(horizon=14)[12:], expected[:2] * np.exp(0.6), rtol=1e-10)


def test_without_differencing_the_forecast_is_the_center():
    y = np.random.default_rng(2).normal(size=30) + 7
    f = zero_network(tiny(scaling="minmax").fit(y))
    np.testing.assert_allclose(f.predict(horizon=3), np.full(3, y.min()), rtol=1e-12)


# -- strategies and shapes ------------------------------------------------------------------------


def test_direct_and_recursive_shapes():
    y = sine(60)
    direct = tiny(horizon=4).fit(y)
    recursive = tiny(horizon=4, strategy="recursive").fit(y)
    assert direct.model_.parameters()["head.weight"].shape == (4, 4)  # one output per step
    assert recursive.model_.parameters()["head.weight"].shape == (1, 4)  # one step, fed back
    for f in (direct, recursive):
        assert f.predict().shape == (4,)
        assert f.predict(horizon=1).shape == (1,)
        assert f.predict(horizon=9).shape == (9,)
        assert f.predict(y[:20], horizon=3).shape == (3,)
        assert f.predict().dtype == np.float64
        # longer forecasts extend shorter ones: the first steps never read what follows
        np.testing.assert_allclose(f.predict(horizon=9)[:4], f.predict(), rtol=1e-12)
        # later steps read the earlier forecasts back as if they had been observed
        p = f.predict(horizon=8)
        np.testing.assert_allclose(f.predict(np.r_[y, p[:4]]), p[4:], rtol=1e-10)
        # the default history is the end of the training series
        np.testing.assert_array_equal(f.predict(y), f.predict())
        np.testing.assert_array_equal(f.predict(y[:30]), f.predict(y[24:30]))
    np.testing.assert_allclose(direct.predict(horizon=2), direct.predict()[:2], rtol=1e-12)


def test_float32_network():
    f = tiny(dtype="float32").fit(sine(40))
    assert f.model_.parameters()["head.weight"].dtype == np.float32
    p = f.predict()
    assert p.dtype == np.float64 and np.isfinite(p).all()


def test_validation_and_early_stopping():
    f = tiny(epochs=60, lr=0.3, val_fraction=0.3, patience=2).fit(sine(60))
    kinds = f.history_["kind"]
    assert kinds.count("val") == f.n_epochs_ < 60  # validated every epoch, stopped early
    assert f.n_windows_ == (36, 16)


# -- backtests ------------------------------------------------------------------------------------


def test_backtest_baselines_on_the_same_origins_by_hand():
    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0, 10.0])
    r = tiny(window=2, horizon=2, season=2).backtest(y, initial=5, step=2)
    np.testing.assert_array_equal(r.origins, [5, 7])
    np.testing.assert_array_equal(r.actual, [[6.0, 8.0], [7.0, 9.0]])
    np.testing.assert_array_equal(r.forecasts["naive"], [[4.0, 4.0], [8.0, 8.0]])
    np.testing.assert_array_equal(r.forecasts["seasonal_naive"], [[5.0, 4.0], [6.0, 8.0]])
    np.testing.assert_allclose(
        r.forecasts["drift"], [[4.75, 5.5], [8 + 7 / 6, 8 + 14 / 6]], rtol=1e-12
    )
    assert r.forecasts["model"].shape == (2, 2)
    # naive errors 2, 4, 1, 1; MASE scale: seasonal (m = 2) in-sample MAE of y[:5] = 5/3
    naive = r.metrics["naive"]
    assert naive["MAE"] == pytest.approx(2.0)
    assert naive["RMSE"] == pytest.approx(math.sqrt(5.5))
    assert naive["MAPE"] == pytest.approx(100 * (2 / 6 + 4 / 8 + 1 / 7 + 1 / 9) / 4)
    smape = 100 * (2 * 2 / 10 + 2 * 4 / 12 + 2 * 1 / 15 + 2 * 1 / 17) / 4
    assert naive["sMAPE"] == pytest.approx(smape)
    assert r.mase_scale == pytest.approx(5 / 3)
    assert naive["MASE"] == pytest.approx(2.0 / (5 / 3))
    assert r.metrics["seasonal_naive"]["MAE"] == pytest.approx(7 / 4)
    assert list(r.metrics) == ["model", "naive", "seasonal_naive", "drift"]
    np.testing.assert_allclose(r.per_fold("MAE")["naive"], [3.0, 1.0])
    np.testing.assert_allclose(r.per_fold("MASE")["naive"], [3.0 * 0.6, 1.0 * 0.6])
    assert tiny(window=2).backtest(y, initial=5, folds=1).origins.tolist() == [5]


def test_backtest_fits_once_and_feeds_the_actual_history():
    y = sine(50)
    f = tiny()
    r = f.backtest(y, initial=30, step=4, horizon=3)
    assert not hasattr(f, "model_")  # self is left untouched
    est = r.estimator
    assert est.scaler_end_ == 30  # fitted on y[:initial] only
    np.testing.assert_array_equal(r.origins, [30, 34, 38, 42, 46])
    for o, fc in zip(r.origins, r.forecasts["model"]):
        np.testing.assert_allclose(fc, est.predict(y[:o], horizon=3), rtol=1e-12)


def test_backtest_refit_fits_at_every_origin():
    y = sine(40)
    r = tiny(epochs=1).backtest(y, initial=30, step=4, refit=True)
    np.testing.assert_array_equal(r.origins, [30, 34, 38])
    assert r.refit and r.estimator.scaler_end_ == 38
    again = tiny(epochs=1).fit(y[:34]).predict()
    np.testing.assert_array_equal(r.forecasts["model"][1], again)


def test_to_markdown_lists_the_model_next_to_the_baselines():
    r = tiny().backtest(sine(40), initial=30)
    table = r.to_markdown()
    lines = table.splitlines()
    assert lines[0] == "| method | MAE | RMSE | MAPE | sMAPE | MASE |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| model",
        "| naive",
        "| seasonal_naive",
        "| drift",
    ]
    assert "9 fold(s), horizon 2, fit once" in str(r)
    assert isinstance(r, ForecastEvaluation)
    with pytest.raises(ValueError, match="metric must be one of"):
        r.per_fold("R2")


def test_backtest_errors():
    y = sine(30)
    with pytest.raises(
        ValueError, match="initial 29 \\+ horizon 2 need at least 31 points, got 30"
    ):
        tiny().backtest(y, initial=29)
    with pytest.raises(ValueError, match="initial must exceed the season"):
        tiny(season=12).backtest(y, initial=12)
    with pytest.raises(ValueError, match="test_size must be below"):
        tiny().evaluate_holdout(y, test_size=30)
    with pytest.raises(ValueError, match=r"y\[:7\] is too short: .* at least 8 points, got 7"):
        tiny().backtest(y, initial=7)
    with pytest.raises(ValueError, match=r"y\[:-25\] is too short: .* at least 8 points, got 5"):
        tiny().evaluate_holdout(y, test_size=25)
    with pytest.raises(ValueError, match="strategy must be one of"):
        tiny(strategy="both").backtest(y, initial=20)


# -- saving and parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"strategy": "recursive", "log": True, "difference": 2, "cell": "gru"},
        {"scaling": "minmax", "num_layers": 2, "dtype": "float32"},
    ],
)
def test_save_load_round_trip(tmp_path, kw):
    y = sine(50)
    f = tiny(**kw).fit(y)
    path = f.save(tmp_path / "f.rnnkit")
    g = RNNForecaster.load(path)
    h = Estimator.load(path)
    assert isinstance(g, RNNForecaster) and isinstance(h, RNNForecaster)
    assert g.get_params() == f.get_params()
    assert g.scaler_ == f.scaler_ and g.scaler_end_ == f.scaler_end_
    np.testing.assert_array_equal(g.tail_, f.tail_)
    for horizon in (None, 5):
        np.testing.assert_array_equal(g.predict(horizon=horizon), f.predict(horizon=horizon))
    np.testing.assert_array_equal(g.predict(y[:25]), f.predict(y[:25]))


def test_get_and_set_params():
    f = RNNForecaster(window=10, log=True, scaling=None)
    params = f.get_params()
    assert params["window"] == 10 and params["log"] is True and params["scaling"] is None
    assert params["horizon"] == 1 and params["strategy"] == "direct" and params["epochs"] == 200
    assert list(params)[:3] == ["window", "horizon", "strategy"]
    assert f.set_params(window=5, epochs=3) is f
    assert f.window == 5 and f.epochs == 3
    assert repr(f) == "RNNForecaster(window=5, scaling=None, log=True, epochs=3)"
    with pytest.raises(ValueError, match="invalid parameter 'windw'"):
        f.set_params(windw=3)
    # parameters changed after fit do not change what the fitted model predicts
    g = tiny().fit(sine(40))
    before = g.predict()
    g.set_params(window=20, horizon=7, log=True)
    np.testing.assert_array_equal(g.predict(), before)


# -- errors ---------------------------------------------------------------------------------------


def test_too_short_series_says_how_many_points():
    with pytest.raises(ValueError, match="need at least 8 points, got 7"):
        tiny(window=6, horizon=2).fit(np.arange(7.0))
    with pytest.raises(ValueError, match="difference lag 1 need at least 9 points, got 8"):
        tiny(window=6, horizon=2, difference=True).fit(np.arange(8.0))
    with pytest.raises(ValueError, match="need at least 7 points"):
        tiny(window=6, horizon=5, strategy="recursive").fit(np.arange(6.0))
    with pytest.raises(ValueError, match="val_fraction"):
        tiny(window=6, horizon=2, val_fraction=0.5).fit(np.arange(8.0))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"horizon": 0}, "horizon must be a positive int, got 0"),
        ({"window": -1}, "window must be a positive int, got -1"),
        ({"strategy": "multi"}, "strategy must be one of \\['direct', 'recursive'\\]"),
        ({"scaling": "robust"}, "scaling must be one of \\['standard', 'minmax', None\\]"),
        ({"cell": "transformer"}, "cell must be one of"),
        ({"difference": -1}, "difference must be True, False or a positive int lag"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"val_fraction": 1.0}, "val_fraction must lie in \\[0, 1\\)"),
        ({"patience": 3}, "patience needs validation windows"),
    ],
)
def test_bad_parameters(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw).fit(sine(40))


def test_bad_series():
    y = sine(40)
    y[7] = np.nan
    with pytest.raises(ValueError, match="y must be finite, got nan at index 7"):
        tiny().fit(y)
    with pytest.raises(ValueError, match="y must be a 1-D series"):
        tiny().fit(np.ones((20, 2)))
    with pytest.raises(ValueError, match="numeric"):
        tiny().fit(["a", "b"])
    with pytest.raises(ValueError, match=r"positive with log=True, got 0\.0 at index 3"):
        tiny(log=True).fit(np.r_[1.0, 2.0, 3.0, 0.0, np.ones(20)])
    tiny().fit(sine(40)[:, None])  # a one-column table is a series


def test_predict_errors():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        tiny().predict()
    with pytest.raises(NotFittedError):
        tiny().save("never.rnnkit")
    f = tiny(difference=True).fit(sine(40))
    with pytest.raises(ValueError, match="y_history is too short: needs at least 7 points"):
        f.predict(np.ones(6))
    with pytest.raises(ValueError, match="y_history must be finite"):
        f.predict(np.r_[np.ones(9), np.inf])
    with pytest.raises(ValueError, match="horizon must be a positive int, got 0"):
        f.predict(horizon=0)


# -- real data ------------------------------------------------------------------------------------


def test_airline_baselines_on_the_last_year():
    """The baseline every airline model is measured against: the seasonal naive forecast of
    1960 is 1959, about 10% MAPE."""
    y = load_series("airline")
    assert y.size == 144
    snaive = seasonal_naive_forecast(y[:132], 12, 12)
    np.testing.assert_array_equal(snaive, y[120:132])
    m = forecast_metrics(y[132:], snaive, y[:132], season=12)
    assert 9.5 < m["MAPE"] < 10.5


# Settings found for the acceptance targets (also in the docs).
AIRLINE = dict(window=24, horizon=12, season=12, log=True, difference=True, hidden_size=32)
SUNSPOTS = dict(window=24, horizon=1, hidden_size=32, epochs=100, lr=3e-3)


@SLOW
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_airline_beats_seasonal_naive(seed):
    y = load_series("airline")
    r = RNNForecaster(**AIRLINE, seed=seed, quiet=True).evaluate_holdout(y, test_size=12)
    print(f"\nairline seed {seed}\n{r.to_markdown(2)}")
    assert r.metrics["model"]["MAPE"] < r.metrics["seasonal_naive"]["MAPE"]
    assert r.metrics["model"]["MAPE"] < 6.0


@SLOW
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sunspots_backtest_beats_naive(seed):
    y = load_series("sunspots")
    r = RNNForecaster(**SUNSPOTS, seed=seed, quiet=True).backtest(y, initial=250)
    print(f"\nsunspots seed {seed}\n{r.to_markdown(2)}")
    assert r.metrics["model"]["MAE"] < 0.8 * r.metrics["naive"]["MAE"]
    assert r.metrics["model"]["MASE"] < 0.8 * r.metrics["naive"]["MASE"]


def test_horizons_are_bounded(monkeypatch):
    """A horizon of 10**8 (a typo) is refused at once instead of running for days."""
    y = 10 + np.sin(np.arange(80) / 5)
    f = RNNForecaster(window=8, hidden_size=4, epochs=1, quiet=True).fit(y)
    for call in (
        lambda: f.predict(horizon=10**8),
        lambda: f.backtest(y, 40, horizon=10**8),
        lambda: RNNForecaster(horizon=10**8).fit(y),
    ):
        with pytest.raises(ValueError, match=r"horizon must be at most 100,000 steps"):
            call()
    monkeypatch.setattr(RNNForecaster, "max_horizon", 10)
    with pytest.raises(ValueError, match=r"at most 10 steps"):
        f.predict(horizon=11)
    assert f.predict(horizon=10).shape == (10,)
