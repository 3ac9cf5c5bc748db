r"""The forecaster :class:`RNNForecaster`: a recurrent network over sliding windows of a
univariate series, with honest evaluation (a hold-out test and rolling-origin backtests, always
beside the baselines of :mod:`rnnkit.apps.forecast.baselines`).

The pipeline, from a series :math:`y_1..y_N` to the network and back:

.. math::

    t_i = \log y_i \ (\text{with } \texttt{log}), \qquad
    d_i = t_i - t_{i-m} \ (\text{with } \texttt{difference} = m), \qquad
    z_i = (d_i - \mathrm{center}) / \mathrm{scale},

windows :math:`z_{i..i+W-1}` (W = ``window``) are the inputs (T = W steps, one feature) and the
next :math:`z_{i+W..i+W+O-1}` the targets (O = ``horizon`` for the "direct" strategy, 1 for the
"recursive" one). A forecast runs the pipeline backwards: unscale, undo the differences from the
last observed values, exponentiate.

Settings that beat the baselines on the shared airline and sunspot series, and the figures, are
in ``docs/results.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.apps.estimator import Estimator, train_model
from rnnkit.apps.forecast.evaluation import ForecastEvaluation, compare_with_baselines
from rnnkit.cells.base import Cell
from rnnkit.data.batching import SequenceData
from rnnkit.nn.models import SequenceRegressor

STRATEGIES = ("direct", "recursive")
SCALINGS = ("standard", "minmax", None)
#: The largest magnitude a series may have: the square of a difference of two such values
#: (RMSE, the standard deviation) stays finite in float64.
MAX_MAGNITUDE = 1e150
#: The furthest a forecaster forecasts (``horizon``), by default: a forecast that far reads the
#: model's own forecasts back up to that many times (about 15 s on one core for a 64-unit LSTM
#: over 24 steps); further than this is almost always a typo. Raise
#: ``RNNForecaster.max_horizon`` to go further.
MAX_HORIZON = 100_000


class RNNForecaster(Estimator):
    """Forecast a univariate series with a recurrent network over sliding windows.

    Horizons are bounded by the class attribute ``max_horizon`` (:data:`MAX_HORIZON`, 100,000
    steps), which a subclass or a user may raise.

    Args:
        window: W, the past steps the network reads for one forecast.
        horizon: the number of steps forecast by default (``predict``, ``backtest``).
        strategy: "direct": the network outputs all ``horizon`` steps at once (one output per
            step); "recursive": a one-step network fed its own forecasts.
        season: m, the period of the seasonal-naive baseline and of the MASE denominator.
        hidden_size, num_layers, cell: the recurrent stack ("lstm", "gru" or "rnn").
        scaling: "standard" (zero mean, unit variance), "minmax" (onto [0, 1]) or None;
            fitted on the training part only (inputs and targets of the training windows,
            never the validation part).
        difference: False, True (first differences :math:`t_i - t_{i-1}`, for trending series)
            or an int m (differences at lag m, e.g. 12 for monthly seasonality); undone at
            prediction from the last observed values.
        log: model :math:`\\log y` (for positive series with multiplicative growth or seasonality;
            applied before differencing).
        epochs, batch_size, lr, clip_norm: Adam training of the MSE on the scaled targets.
        val_fraction: the last fraction of the windows held out for validation (their targets
            start after the last training target: no overlap); 0 for none.
        patience: early stopping after this many epochs without a better validation loss
            (needs ``val_fraction`` > 0); the best parameters are kept.
        seed: initialisation and batch order.
        dtype: "float64" or "float32", the network's dtype.
        quiet: no progress bar.

    Fitted attributes: ``model_`` (a :class:`~rnnkit.SequenceRegressor`), ``scaler_`` (dict
    with "center" and "scale"), ``scaler_end_`` (the scaler saw the transformed ``y[:scaler_end_]``
    only), ``tail_`` (the last values of the training series, the default history of
    ``predict``), ``n_windows_`` (training, validation), ``history_`` (the trainer's logged rows,
    column by column), ``n_epochs_`` (epochs trained: fewer than ``epochs`` after early stopping).

    Example:
        >>> import numpy as np
        >>> y = 10 + np.sin(np.arange(80) * 2 * np.pi / 12)
        >>> f = RNNForecaster(window=12, horizon=3, hidden_size=8, epochs=5, quiet=True).fit(y)
        >>> f.predict().shape, f.predict(horizon=7).shape, f.predict(y[:40]).shape
        ((3,), (7,), (3,))
    """

    def __init__(
        self,
        window: int = 24,
        horizon: int = 1,
        strategy: str = "direct",
        season: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        scaling: str | None = "standard",
        difference: bool | int = False,
        log: bool = False,
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-2,
        val_fraction: float = 0.0,
        patience: int | None = None,
        clip_norm: float | None = 1.0,
        seed: int = 0,
        dtype: str = "float64",
        quiet: bool = False,
    ) -> None:
        self.window = window
        self.horizon = horizon
        self.strategy = strategy
        self.season = season
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.scaling = scaling
        self.difference = difference
        self.log = log
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.val_fraction = val_fraction
        self.patience = patience
        self.clip_norm = clip_norm
        self.seed = seed
        self.dtype = dtype
        self.quiet = quiet

    # -- checks ---------------------------------------------------------------------------------

    max_horizon: int = MAX_HORIZON

    def _check_horizon(self, horizon: Any) -> int:
        horizon = _checks.positive_int("horizon", horizon)
        if horizon > self.max_horizon:
            raise ValueError(
                f"horizon must be at most {self.max_horizon:,} steps (RNNForecaster.max_horizon), "
                f"got {horizon:,}: forecasting that far reads the model's own forecasts back "
                "that many times"
            )
        return horizon

    def check_params(self) -> None:
        """Validate the constructor arguments (done by ``fit``, as in scikit-learn)."""
        _checks.positive_int("window", self.window)
        self._check_horizon(self.horizon)
        _checks.rng(self.seed)  # type and sign
        _checks.positive_int("season", self.season)
        _checks.positive_int("hidden_size", self.hidden_size)
        _checks.positive_int("num_layers", self.num_layers)
        _checks.positive_int("epochs", self.epochs)
        _checks.positive_int("batch_size", self.batch_size)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {list(SCALINGS)}, got {self.scaling!r}")
        Cell.named(self.cell)  # ValueError naming the known cells
        _checks.boolean("log", self.log)
        _checks.boolean("quiet", self.quiet)
        self._lag()
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        _checks.probability("val_fraction", self.val_fraction)
        if self.patience is not None:
            _checks.positive_int("patience", self.patience)
            if self.val_fraction == 0:
                raise ValueError("patience needs validation windows: set val_fraction > 0")
        _checks.float_dtype(self.dtype)

    def _lag(self) -> int:
        """The differencing lag: 0 (none), 1 (``difference=True``) or the int given."""
        d = self.difference
        if isinstance(d, (bool, np.bool_)):
            return int(d)
        if isinstance(d, (int, np.integer)) and d >= 1:
            return int(d)
        raise ValueError(f"difference must be True, False or a positive int lag, got {d!r}")

    def _series(self, name: str, y: Any, log: bool) -> np.ndarray:
        try:
            arr = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a numeric series: {err}") from None
        if arr.ndim == 2 and arr.shape[1] == 1:  # a one-column table
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D series (N,), got shape {arr.shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be finite, got {arr[i]} at index {i}")
        big = np.abs(arr) > MAX_MAGNITUDE
        if big.any():
            i = int(np.argmax(big))
            raise ValueError(
                f"{name} has {arr[i]:g} at index {i}: values beyond +-{MAX_MAGNITUDE:g} overflow "
                "the squares that scaling and the error metrics take; divide the series by a "
                "power of ten first"
            )
        if log and (arr <= 0).any():
            i = int(np.argmax(arr <= 0))
            raise ValueError(f"{name} must be positive with log=True, got {arr[i]} at index {i}")
        return arr

    def _check_length(self, what: str, size: int) -> None:
        """One training window needs ``window`` inputs, its target step(s) and the lag."""
        lag = self._lag()
        W, O = self.window, (self.horizon if self.strategy == "direct" else 1)
        need = W + O + lag
        if size < need:
            extra = f" + difference lag {lag}" if lag else ""
            raise ValueError(
                f"{what} is too short: window {W} + {O} target step(s){extra} need at least "
                f"{need} points, got {size}"
            )

    # -- the transform pipeline -----------------------------------------------------------------

    def _transform(self, y: np.ndarray, log: bool, lag: int) -> np.ndarray:
        """y (..., L) -> log -> lag differences (..., L - lag), unscaled."""
        t = np.log(y) if log else y
        return t[..., lag:] - t[..., :-lag] if lag else t

    def _fit_scaler(self, d: np.ndarray) -> dict[str, float]:
        if self.scaling == "standard":
            center, scale = float(d.mean()), float(d.std())
        elif self.scaling == "minmax":
            center, scale = float(d.min()), float(d.max() - d.min())
        else:
            center, scale = 0.0, 1.0
        return {"center": center, "scale": scale if scale > 0 else 1.0}

    # -- fit ------------------------------------------------------------------------------------

    def fit(
        self,
        y: Any,
        *,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        checkpoint_seconds: float | None = 60.0,
        callbacks: tuple = (),
    ) -> RNNForecaster:
        """Fit on the series ``y`` (N,): every window of ``window`` steps and the value(s)
        after it form one training example. Returns ``self``.

        Args:
            y: the training series.
            checkpoint: a path to checkpoint training to (see :class:`~rnnkit.Trainer` for
                when).
            resume: continue from ``checkpoint`` if it exists (the same series and parameters
                are expected); a killed fit ends exactly as the uninterrupted one would.
            checkpoint_seconds: the longest time between two checkpoints (None: no timed ones).
            callbacks: :class:`~rnnkit.Trainer` callbacks, ``callback(event, trainer, row)``.
        """
        self.check_params()
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path> to resume from")
        lag = self._lag()
        y = self._series("y", y, self.log)
        W, O = self.window, (self.horizon if self.strategy == "direct" else 1)
        self._check_length("y", y.size)
        d = self._transform(y, self.log, lag)  # (N - lag,)
        n = d.size - W - O + 1  # windows
        n_val = round(self.val_fraction * n)
        if self.val_fraction > 0 and n_val == 0:
            n_val = 1
        # validation windows start O - 1 windows later, so their targets follow the training ones
        n_train = n - n_val - (O - 1 if n_val else 0)
        if n_train < 1:
            raise ValueError(
                f"y is too short for val_fraction={self.val_fraction}: {n} windows leave "
                f"{n_train} for training; lower val_fraction or give more points (got {y.size})"
            )
        train_end = n_train + W + O - 1  # the training windows read d[:train_end]
        self.scaler_ = self._fit_scaler(d[:train_end])
        self.scaler_end_ = train_end + lag
        z = (d - self.scaler_["center"]) / self.scaler_["scale"]  # (N - lag,)
        idx = np.arange(n)[:, None]
        x = z[idx + np.arange(W)][:, :, None]  # (n, W, 1)
        target = z[idx + W + np.arange(O)]  # (n, O)
        dtype = _checks.float_dtype(self.dtype)
        train = SequenceData(x[:n_train], target[:n_train], self.batch_size, dtype=dtype)
        val = None
        if n_val:
            first = n - n_val
            val = SequenceData(
                x[first:], target[first:], self.batch_size, shuffle=False, dtype=dtype
            )
        self.model_ = SequenceRegressor(
            1,
            self.hidden_size,
            O,
            self.num_layers,
            cell=self.cell,
            pooling="last",
            dtype=dtype,
            seed=self.seed,
        )
        trainer = train_model(
            self.model_,
            train,
            loss="mse",
            val=val,
            epochs=self.epochs,
            lr=float(self.lr),
            clip_norm=self.clip_norm,
            patience=self.patience,
            seed=self.seed,
            checkpoint_path=checkpoint,
            checkpoint_seconds=checkpoint_seconds,
            resume=resume,
            quiet=self.quiet,
            desc="forecaster",
            unit="window",
            callbacks=tuple(callbacks),
        )
        self.history_ = trainer.history
        self.n_epochs_ = trainer.result.epoch
        self.stopped_ = trainer.result.stopped  # "epochs", "early_stopping" or "interrupted"
        self.n_windows_ = (n_train, n_val)
        self.tail_ = y[-(W + lag) :].copy()
        # what predict needs, frozen at fit time: set_params afterwards cannot break predict
        self.fitted_ = {
            "window": W,
            "outputs": O,
            "lag": lag,
            "log": bool(self.log),
            "horizon": self.horizon,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dtype": dtype.name,
        }
        return self

    # -- predict --------------------------------------------------------------------------------

    def _forecast(self, histories: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts (B, horizon) following each row of ``histories`` (B, L), L >= W + lag,
        in the original units. A direct model longer than its output reads its own forecasts
        back in blocks of its output size."""
        cfg = self.fitted_
        W, O, lag, log = cfg["window"], cfg["outputs"], cfg["lag"], cfg["log"]
        center, scale = self.scaler_["center"], self.scaler_["scale"]
        t = np.log(histories) if log else histories  # (B, L)
        d = self._transform(histories, log, lag)  # (B, L - lag)
        z = ((d[:, -W:] - center) / scale).T[:, :, None]  # (W, B, 1)
        z = z.astype(cfg["dtype"])
        blocks, done = [], 0
        with self.model_.evaluation() as model:
            while done < horizon:
                out, _, _ = model.forward(z)  # (B, O)
                take = min(O, horizon - done)
                blocks.append(out[:, :take])
                z = np.concatenate([z, out[:, :take].T[:, :, None]])[-W:]  # (W, B, 1)
                done += take
        d_hat = np.concatenate(blocks, axis=1).astype(np.float64) * scale + center  # (B, h)
        if lag:
            # t_{T+k} = t_{T+k-lag} + d_{T+k}, reading back earlier forecasts when k > lag
            ext = np.concatenate([t[:, -lag:], np.empty_like(d_hat)], axis=1)  # (B, lag + h)
            for k in range(horizon):
                ext[:, lag + k] = ext[:, k] + d_hat[:, k]
            t_hat = ext[:, lag:]
        else:
            t_hat = d_hat
        with np.errstate(over="ignore"):
            y_hat = np.exp(t_hat) if log else t_hat
        if not np.isfinite(y_hat).all():
            raise ValueError(
                "the forecast overflows float64 (the model's output grows without bound over "
                f"this horizon of {horizon} steps): forecast fewer steps, or check the series"
            )
        return y_hat

    def predict(self, y_history: Any = None, horizon: int | None = None) -> np.ndarray:
        """Forecast the ``horizon`` (default: the constructor's) steps that follow the end of
        the training series, or of ``y_history`` if given (only its last ``window`` values,
        plus the differencing lag, are read). Returns (horizon,)."""
        self._check_fitted()
        cfg = self.fitted_
        horizon = cfg["horizon"] if horizon is None else self._check_horizon(horizon)
        if y_history is None:
            hist = self.tail_
        else:
            hist = self._series("y_history", y_history, cfg["log"])
            need = cfg["window"] + cfg["lag"]
            if hist.size < need:
                raise ValueError(
                    f"y_history is too short: needs at least {need} points "
                    f"(window {cfg['window']} + difference lag {cfg['lag']}), got {hist.size}"
                )
        return self._forecast(hist[None, -(cfg["window"] + cfg["lag"]) :], horizon)[0]

    # -- evaluation -----------------------------------------------------------------------------

    def _clone(self) -> RNNForecaster:
        return type(self)(**self.get_params())

    def _evaluate(
        self, y: np.ndarray, origins: np.ndarray, horizon: int, refit: bool, **fit_options: Any
    ) -> ForecastEvaluation:
        """Model and baselines forecast ``horizon`` steps from every origin, from y[:origin]
        (the first fit with ``fit_options``)."""
        est = self._clone().fit(y[: origins[0]], **fit_options)
        if refit:
            fc = []
            for o in origins:
                if o != origins[0]:
                    est = self._clone().fit(y[:o])
                fc.append(est.predict(horizon=horizon))
            model_fc = np.array(fc)
        else:
            cfg = est.fitted_
            L = cfg["window"] + cfg["lag"]
            hist = np.stack([y[o - L : o] for o in origins])  # (F, L)
            model_fc = est._forecast(hist, horizon)  # (F, h)
        return compare_with_baselines(y, origins, model_fc, self.season, refit=refit, estimator=est)

    def backtest(
        self,
        y: Any,
        initial: int,
        step: int = 1,
        folds: int | None = None,
        horizon: int | None = None,
        refit: bool = False,
    ) -> ForecastEvaluation:
        """Rolling-origin evaluation (time-series cross-validation).

        The forecast origins are ``initial, initial + step, ...`` (the first ``folds`` of them
        if given) while a whole ``horizon`` (default: the constructor's) of actual values
        follows. At each origin o the model and the three baselines forecast ``y[o:o+horizon]``
        from ``y[:o]``.

        With ``refit=False`` (the default, and the cheap standard) the network is fitted once,
        on ``y[:initial]``, and then only the origin rolls forward: each forecast reads the
        actual history before its origin, never anything after it. With ``refit=True`` a fresh
        network is fitted on ``y[:o]`` at every origin (one fit per fold: expensive).

        Metrics pool every fold and step; MASE is scaled by the seasonal-naive in-sample MAE of
        ``y[:initial]``. ``self`` is left untouched: the fitted copy is in the result's
        ``estimator``.

        Returns:
            A :class:`ForecastEvaluation`.
        """
        y = self._series("y", y, bool(self.log))
        initial = _checks.positive_int("initial", initial)
        step = _checks.positive_int("step", step)
        horizon = self._check_horizon(self.horizon if horizon is None else horizon)
        _checks.boolean("refit", refit)
        if initial + horizon > y.size:
            raise ValueError(
                f"no forecast origin: initial {initial} + horizon {horizon} need at least "
                f"{initial + horizon} points, got {y.size}"
            )
        if initial < 2 or initial <= _checks.positive_int("season", self.season):
            raise ValueError(
                f"initial must exceed the season ({self.season}) and 1 (the baselines and MASE "
                f"need it), got {initial}"
            )
        origins = np.arange(initial, y.size - horizon + 1, step)
        if folds is not None:
            origins = origins[: _checks.positive_int("folds", folds)]
        self.check_params()
        self._check_length(f"the first training part y[:{initial}]", initial)
        return self._evaluate(y, origins, horizon, refit)

    def evaluate_holdout(self, y: Any, test_size: int, **fit_options: Any) -> ForecastEvaluation:
        """Fit on all but the last ``test_size`` points and forecast them all from the end of
        the training part, as one ``test_size``-step forecast: no test value is ever read (a
        direct model with ``horizon == test_size`` does it in one pass; otherwise the network
        reads its own forecasts back, step by step or block by block). The baselines forecast
        the same steps from the same history; MASE is scaled on the training part. ``self`` is
        left untouched (the fitted copy is the result's ``estimator``). ``fit_options`` go to
        :meth:`fit` (``checkpoint``, ``resume``, ``callbacks``, ...).

        Returns:
            A :class:`ForecastEvaluation` with one fold.
        """
        y = self._series("y", y, bool(self.log))
        test_size = _checks.positive_int("test_size", test_size)
        if test_size >= y.size:
            raise ValueError(
                f"test_size must be below the series' length {y.size}, got {test_size}"
            )
        origin = y.size - test_size
        if origin < 2 or origin <= _checks.positive_int("season", self.season):
            raise ValueError(
                f"the training part ({origin} points) must exceed the season ({self.season}) and 1"
            )
        self.check_params()
        self._check_length(f"the training part y[:-{test_size}]", origin)
        return self._evaluate(y, np.array([origin]), test_size, refit=False, **fit_options)

    # -- saving ---------------------------------------------------------------------------------

    def _get_state(self) -> dict[str, Any]:
        return {
            "fitted": dict(self.fitted_),
            "scaler": dict(self.scaler_),
            "scaler_end": int(self.scaler_end_),
            "tail": self.tail_.copy(),
            "n_windows": [int(n) for n in self.n_windows_],
            "n_epochs": int(self.n_epochs_),
            "model": self.model_.state_dict(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        cfg = dict(state["fitted"])
        model = SequenceRegressor(
            1,
            cfg["hidden_size"],
            cfg["outputs"],
            cfg["num_layers"],
            cell=cfg["cell"],
            pooling="last",
            dtype=np.dtype(cfg["dtype"]),
            seed=0,
        )
        model.load_state_dict(state["model"])
        model.eval()
        self.fitted_ = cfg
        self.scaler_ = {k: float(v) for k, v in state["scaler"].items()}
        self.scaler_end_ = int(state["scaler_end"])
        self.tail_ = np.asarray(state["tail"], dtype=np.float64)
        self.n_windows_ = tuple(state["n_windows"])
        self.history_ = {}
        self.n_epochs_ = int(state["n_epochs"])
        self.model_ = model
