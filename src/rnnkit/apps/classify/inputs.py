r"""How :class:`~rnnkit.apps.RNNClassifier` turns series into network inputs.

Input: N series, each (T_n, C): a list of arrays of any lengths (1-D arrays are univariate), a
2-D array (N, T) of univariate series, or a 3-D array (N, T, C). Every series goes through the
same preparation, at ``fit`` and at prediction (:class:`~rnnkit.apps.RNNClassifier` runs it
with its settings and, for ``"global"``, the statistics it fitted):

1. **Missing values** (NaN). Trailing steps where every channel is NaN are cut: that is how a
   shorter series is padded to the length of the others in an array. The NaNs left are filled
   per channel by linear interpolation between the nearest observed values, with the nearest
   observed value before the first and after the last one; a channel that is NaN throughout
   the series becomes 0 (its mean after normalisation). A series with no value at all is an
   error. Infinities are errors.
2. **Normalisation** (``normalize``): ``"series"`` z-normalises each series per channel,
   :math:`x'_{tc} = (x_{tc} - \mu_c) / \sigma_c` over that series' own steps (the UCR
   archive's convention: amplitude and offset do not count; a constant channel becomes 0);
   ``"global"`` uses one mean and standard deviation per channel, fitted over every step of the
   training set; ``None`` leaves the values as they are.
3. **Windows as steps** (``window``, ``stride``): with ``window = w`` the network reads, at
   each of its steps, the w consecutive values of a window, flattened step by step into
   w * C features; the windows start every ``stride = s`` steps (default s = w: side by side),
   so a series of T steps becomes 1 + ceil(max(T - w, 0) / s) network steps (the last window
   completed with copies of the last value). ``window=1, stride=s`` keeps every s-th value.
   This is the RNN's answer to long series on small data sets: over 150 to 250 raw steps an
   LSTM barely trains (on GunPoint and ArrowHead it stays near chance for hundreds of epochs;
   a PyTorch LSTM does the same on GunPoint), while over 10 to 30 steps of windows it trains
   in seconds, and the input projection ``W_ih`` acts as a learned filter bank on each window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TINY = 1e-8  # a channel whose standard deviation is below this is treated as constant


def as_series(X: Any) -> list[np.ndarray]:
    """X in any accepted form -> a list of clean float64 series (T_n, C): trailing all-NaN steps
    cut, other NaNs interpolated; errors name the series at fault."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X must be a list of series, a 2-D array (N, T) or a 3-D array (N, T, C), "
                f"got an array of shape {X.shape}"
            )
        items = list(X)
    elif isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
        raise TypeError(f"X must be a list of series or an array, got {type(X).__name__}")
    else:
        items = list(X)
    if not items:
        raise ValueError("X must hold at least one series, got none")
    out = []
    for n, item in enumerate(items):
        try:
            x = np.asarray(item, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"X[{n}] must be a numeric array (T,) or (T, C): {err}") from None
        if x.ndim == 1:
            x = x[:, None]  # (T, 1)
        if x.ndim != 2:
            raise ValueError(f"X[{n}] must be 1-D (T,) or 2-D (T, C), got shape {x.shape}")
        if x.shape[1] == 0:
            raise ValueError(f"X[{n}] has no channels (shape {x.shape})")
        if out and x.shape[1] != out[0].shape[1]:
            raise ValueError(
                f"X[{n}] has {x.shape[1]} channels, X[0] has {out[0].shape[1]}: every series "
                "must have the same channels"
            )
        out.append(clean(f"X[{n}]", x))
    return out


def clean(name: str, x: np.ndarray) -> np.ndarray:
    """One series (T, C): cut trailing all-NaN steps, interpolate the other NaNs per channel."""
    if len(x) == 0:
        raise ValueError(f"{name} is empty (0 time steps)")
    if np.isinf(x).any():
        t, c = np.argwhere(np.isinf(x))[0]
        raise ValueError(f"{name} must be finite or NaN, got {x[t, c]} at step {t}, channel {c}")
    missing = np.isnan(x)  # (T, C)
    if not missing.any():
        return x
    observed = ~missing.all(axis=1)  # (T,) steps with at least one value
    if not observed.any():
        raise ValueError(f"{name} has no values: every entry is NaN")
    x = x[: np.flatnonzero(observed)[-1] + 1].copy()  # trailing padding cut
    missing = missing[: len(x)]
    steps = np.arange(len(x))
    for c in np.flatnonzero(missing.any(axis=0)):
        have = ~missing[:, c]
        if have.any():
            # np.interp holds the end values beyond the first and last observed steps
            x[missing[:, c], c] = np.interp(steps[missing[:, c]], steps[have], x[have, c])
        else:
            x[:, c] = 0.0
    return x


def as_labels(y: Any, n: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be 1-D, one label per series, got shape {labels.shape}")
    if len(labels) != n:
        raise ValueError(
            f"X and y must have the same length, got {n} series and {len(labels)} labels"
        )
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        first = int(np.flatnonzero(np.isnan(labels))[0])
        raise ValueError(f"y must not contain NaN, got NaN at index {first}")
    return labels


def safe_scale(std: np.ndarray) -> np.ndarray:
    """Standard deviations to divide by: 1 for (near-)constant channels."""
    return np.where(std < TINY, 1.0, std)


def windows(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(T, C) -> (n, window * C), n = 1 + ceil(max(T - window, 0) / stride): the windows of
    ``window`` steps starting every ``stride`` steps, each flattened step by step; the last
    window is completed with copies of the last step.

    >>> windows(np.arange(7.0)[:, None], 3, 2).tolist()
    [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [4.0, 5.0, 6.0]]
    """
    T, C = x.shape
    n = 1 + -(-max(T - window, 0) // stride)
    pad = (n - 1) * stride + window - T
    x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])  # ((n - 1) * stride + window, C)
    starts = np.arange(n) * stride
    steps = starts[:, None] + np.arange(window)  # (n, window)
    return x[steps].reshape(n, window * C)


def normalise(
    series: list[np.ndarray],
    mode: str | None,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Clean series (T_n, C) normalised per ``mode``: "series" (each by its own steps),
    "global" (by ``mean`` and ``scale`` (C,), see :func:`global_stats`) or None (unchanged)."""
    if mode == "series":
        return [(x - x.mean(axis=0)) / safe_scale(x.std(axis=0)) for x in series]
    if mode == "global":
        return [(x - mean) / scale for x in series]
    return series


def global_stats(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the scale (C,) per channel over every step of every series."""
    steps = np.concatenate(series)  # (sum T_n, C)
    return steps.mean(axis=0), safe_scale(steps.std(axis=0))


def network_steps(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """A normalised series (T, C) -> the network's input steps (n, window * C)."""
    if window == 1 and stride == 1:
        return x
    return windows(x, window, stride)
