"""PNG plots of training runs, forecasts, classifiers and the diagnostics of
:mod:`rnnkit.apps.diagnose`.

matplotlib is an optional extra (``pip install 'rnnkit[plot]'``): this module imports it only
inside its functions, so ``import rnnkit.apps.plots`` works without it and :func:`available` says
whether the plots can be drawn. The figures are drawn with matplotlib's object interface on the
Agg canvas, never through ``pyplot``: no global backend is switched, no window opens and no
figure is left behind in a notebook.

Every function takes the data and a ``path``, writes one PNG there and returns the path (a
:class:`pathlib.Path`).

Example:
    >>> import os, tempfile
    >>> from rnnkit.apps import plots
    >>> rows = [{"step": s, "kind": "train", "loss": 3.0 / (s + 1)} for s in range(1, 60)]
    >>> rows += [{"step": s, "kind": "val", "loss": 3.2 / (s + 1)} for s in (20, 40, 59)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     if plots.available():  # the 'plot' extra is installed
    ...         path = plots.training_curves(rows, os.path.join(d, "loss.png"))
    ...         assert path.stat().st_size > 0
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "matplotlib is not installed: pip install 'rnnkit[plot]' (or pip install matplotlib)"

#: Display forms of characters that would be invisible as tick labels.
_VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"}


def available() -> bool:
    """Whether matplotlib can be imported, so that the plot functions work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas, outside pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    with warnings.catch_warnings():
        # user text may hold characters the default font lacks: a box is drawn, that is enough
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(path, format="png")
    return path


def _finite_positive(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values) & (values > 0)]


def _use_log_scale(values: np.ndarray, ratio: float = 30.0) -> bool:
    """A log scale when the positive values span more than ``ratio`` (and none is <= 0)."""
    finite = values[np.isfinite(values)]
    if not finite.size or finite.min() <= 0:
        return False
    return finite.max() / finite.min() > ratio


def _as_1d(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


# -- training ---------------------------------------------------------------------------------


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """The centred moving average over ``window`` values (narrower at both ends), so that the
    smoothed curve does not lag behind a falling loss; NaN-free input."""
    csum = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(len(values))
    lo = np.maximum(idx - window // 2, 0)
    hi = np.minimum(idx + window - window // 2, len(values))
    return (csum[hi] - csum[lo]) / (hi - lo)


def _rows_of(rows: Sequence[Mapping[str, Any]], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) of the rows of one kind with a finite loss (CSV strings accepted)."""
    steps, losses = [], []
    for row in rows:
        if row.get("kind") != kind or "loss" not in row or "step" not in row:
            continue
        try:
            step, loss = float(row["step"]), float(row["loss"])
        except (TypeError, ValueError):
            continue
        if math.isfinite(loss):
            steps.append(step)
            losses.append(loss)
    return np.asarray(steps), np.asarray(losses)


def training_curves(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Training loss (raw, faint, and smoothed) and validation loss (markers) against step.

    Args:
        rows: metric-log rows (:meth:`rnnkit.training.MetricLog.read`): dicts with ``step``,
            ``kind`` ("train", "val"; others are ignored) and ``loss``; values may be strings.
            Rows with a non-finite loss are left out.
        path: where to write the PNG.
        title: the title (default "Training and validation loss").

    The y axis is logarithmic when the losses span more than a factor of 30.
    """
    if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
    train_steps, train_loss = _rows_of(rows, "train")
    val_steps, val_loss = _rows_of(rows, "val")
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    if train_loss.size:
        ax.plot(train_steps, train_loss, color="C0", alpha=0.3, lw=0.8, label="training (per step)")
        window = max(1, len(train_loss) // 25)
        if window > 1:
            ax.plot(
                train_steps,
                _smooth(train_loss, window),
                color="C0",
                lw=2,
                label=f"training (moving average of {window} steps)",
            )
    if val_loss.size:
        ax.plot(val_steps, val_loss, color="C3", marker="o", ms=5, lw=1.2, label="validation")
        best = int(np.argmin(val_loss))
        ax.annotate(
            f"best {val_loss[best]:.3g}",
            (val_steps[best], val_loss[best]),
            textcoords="offset points",
            xytext=(0, 9),
            ha="center",
            fontsize=8,
            color="C3",
        )
    if not train_loss.size and not val_loss.size:
        ax.text(
            0.5, 0.5, "no finite losses logged", ha="center", va="center", transform=ax.transAxes
        )
    if _use_log_scale(np.concatenate([train_loss, val_loss])):
        ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_title(title or "Training and validation loss")
    ax.grid(True, which="major", alpha=0.3)
    if train_loss.size or val_loss.size:
        ax.legend()
    return _save(fig, path)


# -- forecasting ------------------------------------------------------------------------------


def forecast(
    actual: Any,
    forecast: Any,
    path: str | os.PathLike,
    *,
    history: Any = None,
    baselines: Mapping[str, Any] | None = None,
    index: Sequence[Any] | None = None,
    title: str = "",
) -> Path:
    """The model's forecast against the actual values, after the history, with baselines.

    Args:
        actual: the true values over the forecast horizon, (N,).
        forecast: the model's forecast of them, (N,).
        path: where to write the PNG.
        history: optional values before the horizon, (M,), drawn in grey.
        baselines: optional name -> forecast (N,) of simple methods (naive, seasonal naive...),
            drawn dashed.
        index: optional labels of every point, (M + N,) (or (N,) without history), such as
            dates; shown as tick labels.
        title: the title (default "Forecast").
    """
    actual = _as_1d("actual", actual)
    predicted = _as_1d("forecast", forecast)
    if predicted.shape != actual.shape:
        raise ValueError(
            f"forecast must have the shape of actual {actual.shape}, got {predicted.shape}"
        )
    past = np.empty(0) if history is None else _as_1d("history", history)
    baselines = dict(baselines or {})
    for name, values in baselines.items():
        values = _as_1d(f"baselines[{name!r}]", values)
        if values.shape != actual.shape:
            raise ValueError(
                f"baselines[{name!r}] must have the shape of actual {actual.shape}, "
                f"got {values.shape}"
            )
        baselines[name] = values
    M, N = len(past), len(actual)
    if index is not None and len(index) != M + N:
        raise ValueError(
            f"index must have one label per point, {M} + {N} = {M + N}, got {len(index)}"
        )
    fig = _figure(10, 4.5)
    from matplotlib.ticker import MaxNLocator  # importable: _figure succeeded

    ax = fig.add_subplot()
    horizon = np.arange(M, M + N)
    if M:
        # the history line runs into the first actual value, so the series looks continuous
        ax.plot(
            np.arange(M + 1)[: M + (N > 0)],
            np.concatenate([past, actual[:1]]),
            color="0.55",
            lw=1.2,
            label="history",
        )
        ax.axvline(M - 0.5, color="0.4", ls=":", lw=1)
        ax.text(
            M - 0.5,
            1.0,
            " forecast start",
            transform=ax.get_xaxis_transform(),
            va="top",
            ha="left",
            fontsize=8,
            color="0.3",
        )
    ax.plot(
        horizon,
        actual,
        color="black",
        lw=1.6,
        marker="o" if N <= 60 else None,
        ms=3,
        label="actual",
    )
    ax.plot(horizon, predicted, color="C3", lw=2.2, label="model forecast")
    styles = [("C0", "--"), ("C2", "-."), ("C4", ":"), ("C1", (0, (5, 1, 1, 1)))]
    for k, (name, values) in enumerate(baselines.items()):
        color, ls = styles[k % len(styles)]
        ax.plot(horizon, values, color=color, ls=ls, lw=1.5, label=f"{name} (baseline)")
    if index is not None:
        n_ticks = min(M + N, 8)
        ticks = np.unique(np.linspace(0, M + N - 1, n_ticks).round().astype(int))
        ax.set_xticks(ticks, [str(index[i]) for i in ticks], rotation=20, ha="right")
        ax.set_xlabel("time")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("time step")
    ax.set_ylabel("value")
    ax.set_title(title or "Forecast")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return _save(fig, path)


# -- classification ---------------------------------------------------------------------------


def confusion_matrix(
    cm: Any, classes: Sequence[Any], path: str | os.PathLike, title: str = ""
) -> Path:
    """A confusion matrix: counts written in the cells, colour by the fraction of each true class.

    Args:
        cm: counts (K, K), rows the true classes and columns the predicted ones.
        classes: the K class labels.
        path: where to write the PNG.
        title: the title (default "Confusion matrix"); the accuracy is added below it.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {cm.shape}")
    K = cm.shape[0]
    classes = [str(c) for c in classes]
    if len(classes) != K:
        raise ValueError(f"classes must have {K} labels (one per row of cm), got {len(classes)}")
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)  # (K, K) row-normalised
    size = min(max(4.5, 0.6 * K + 2.5), 16)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    if K <= 30:
        font = 10 if K <= 10 else 7
        for i in range(K):
            for j in range(K):
                count = cm[i, j]
                text = f"{count:g}" if np.issubdtype(cm.dtype, np.floating) else f"{count}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set_xticks(
        np.arange(K),
        classes,
        rotation=45 if max(map(len, classes)) > 3 else 0,
        ha="right" if max(map(len, classes)) > 3 else "center",
    )
    ax.set_yticks(np.arange(K), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = cm.sum()
    accuracy = f"accuracy {np.trace(cm) / total:.1%} of {total:g}" if total else "no examples"
    ax.set_title(f"{title or 'Confusion matrix'}\n{accuracy}")
    return _save(fig, path)


# -- translation ------------------------------------------------------------------------------


def attention(
    weights: Any,
    source_tokens: Sequence[Any],
    target_tokens: Sequence[Any],
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Attention weights of a sequence-to-sequence model: the source tokens along the x axis,
    the output tokens down the y axis, one cell per (output step, source token), darker for
    more weight (0 to 1).

    Args:
        weights: one (T, S) array (as :meth:`rnnkit.apps.Translator.attention_weights` gives:
            T output steps, S source tokens), or a list of them, one panel each.
        source_tokens: the S labels of the columns (a space is shown as "\u2423"); for a list
            of weights, a list of such label lists.
        target_tokens: the T labels of the rows; for a list of weights, a list of them.
        path: where to write the PNG.
        titles: one title per panel (default: none).
        title: the figure's title (default "Attention").
    """
    single = isinstance(weights, np.ndarray) or (
        isinstance(weights, Sequence) and len(weights) > 0 and np.ndim(weights[0]) == 1
    )
    if single:
        weights, source_tokens, target_tokens = [weights], [source_tokens], [target_tokens]
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or not weights:
        raise ValueError("weights must be a (T, S) array or a non-empty list of them")
    n = len(weights)
    for name, labels in (("source_tokens", source_tokens), ("target_tokens", target_tokens)):
        if not isinstance(labels, Sequence) or len(labels) != n:
            raise ValueError(f"{name} must hold one list of labels per panel ({n})")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one title per panel ({n}), got {len(titles)}")
    panels = []
    for i, (w, src, tgt) in enumerate(zip(weights, source_tokens, target_tokens)):
        arr = np.asarray(w, dtype=np.float64)
        what = "weights" if single else f"weights[{i}]"
        if arr.ndim != 2 or 0 in arr.shape:
            raise ValueError(f"{what} must be a non-empty 2-D (T, S) array, got shape {arr.shape}")
        T, S = arr.shape
        if len(src) != S or len(tgt) != T:
            raise ValueError(
                f"{what} has shape ({T}, {S}): it needs {S} source tokens and {T} target "
                f"tokens, got {len(src)} and {len(tgt)}"
            )
        panels.append((arr, [_char_label(t) for t in src], [_char_label(t) for t in tgt]))
    cols = min(n, 2)
    rows = -(-n // cols)
    cell = 0.32  # inches per token
    width = max(max(len(p[1]) for p in panels) * cell + 1.6, 3.5)
    height = max(max(len(p[2]) for p in panels) * cell + 1.2, 2.5)
    fig = _figure(min(width * cols + 1.0, 24.0), min(height * rows + 0.6, 30.0))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    image = None
    for k, (ax, (arr, src, tgt)) in enumerate(zip(axes, panels)):
        image = ax.imshow(arr, cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest")
        font = 9 if max(arr.shape) <= 30 else 6
        ax.set_xticks(np.arange(len(src)), src, fontsize=font, rotation=90 if len(src) > 20 else 0)
        ax.set_yticks(np.arange(len(tgt)), tgt, fontsize=font)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=10)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes[:n]), shrink=0.8, label="attention weight")
    fig.suptitle(title or "Attention")
    return _save(fig, path)


# -- diagnostics ------------------------------------------------------------------------------


#: Panel titles of the arrays :func:`rnnkit.apps.diagnose.activations` returns.
_PANEL_NAMES = {
    "h": "h: hidden state",
    "c": "c: cell state",
    "i": "i: input gate",
    "f": "f: forget gate",
    "g": "g: candidate (tanh)",
    "o": "o: output gate",
    "r": "r: reset gate",
    "z": "z: update gate (1 keeps the old state)",
    "n": "n: candidate (tanh)",
}


def _char_label(label: Any) -> str:
    text = str(label)
    return _VISIBLE.get(text, text)


def activations(
    matrix: Any,
    path: str | os.PathLike,
    *,
    title: str = "",
    xlabels: Sequence[Any] | None = None,
    ylabel: str = "unit",
) -> Path:
    """Heatmaps of activations over time: one unit per row, one time step per column.

    Args:
        matrix: (T, N) activations, or a mapping name -> (T, N) for one panel each (all with the
            same T), as :func:`rnnkit.apps.diagnose.activations` returns.
        path: where to write the PNG.
        title: the figure's title.
        xlabels: optional T labels of the time steps, such as the characters of the input (a
            space is shown as "\u2423", a newline as "\u21b5"); thinned out when T is large.
        ylabel: the label of the rows.

    Colours: values within [0, 1] (sigmoid gates) on a sequential scale from 0 to 1; others on a
    diverging scale centred on 0 (from -1 to 1 when they lie within it, as tanh outputs do).
    """
    panels = dict(matrix) if isinstance(matrix, Mapping) else {"": matrix}
    if not panels:
        raise ValueError("matrix must hold at least one (T, N) array, got an empty mapping")
    arrays = {}
    for name, value in panels.items():
        arr = np.asarray(value, dtype=np.float64)
        what = f"matrix[{name!r}]" if name else "matrix"
        if arr.ndim != 2 or 0 in arr.shape:
            raise ValueError(f"{what} must be a non-empty 2-D (T, N) array, got shape {arr.shape}")
        arrays[name] = arr
    T = next(iter(arrays.values())).shape[0]
    for name, arr in arrays.items():
        if arr.shape[0] != T:
            raise ValueError(f"every panel must have T = {T} steps, {name!r} has {arr.shape[0]}")
    if xlabels is not None and len(xlabels) != T:
        raise ValueError(f"xlabels must have one label per time step ({T}), got {len(xlabels)}")
    heights = [min(max(arr.shape[1] * 0.06, 1.2), 5.0) for arr in arrays.values()]
    width = min(max(6.0, 0.16 * T + 2.5), 24.0)
    fig = _figure(width, sum(heights) + 0.6 * len(arrays) + 0.8)
    axes = fig.subplots(len(arrays), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, arr) in zip(axes, arrays.items()):
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo >= 0.0 and hi <= 1.0:
            cmap, vmin, vmax = "viridis", 0.0, 1.0
        else:
            bound = 1.0 if (lo >= -1.0 and hi <= 1.0) else max(abs(lo), abs(hi))
            cmap, vmin, vmax = "RdBu_r", -bound, bound
        image = ax.imshow(
            arr.T,
            aspect="auto",
            interpolation="nearest",
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            origin="lower",
        )
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
        ax.set_ylabel(f"{name}\n{ylabel}" if name else ylabel)
        if name:
            ax.set_title(_PANEL_NAMES.get(name, name), fontsize=10, loc="left")
    last = axes[-1]
    if xlabels is not None:
        step = max(1, math.ceil(T / 120))
        ticks = np.arange(0, T, step)
        last.set_xticks(
            ticks,
            [_char_label(xlabels[i]) for i in ticks],
            fontsize=8 if T <= 80 else 6,
            family="monospace",
        )
        last.set_xlabel("input (time \u2192)")
    else:
        last.set_xlabel("time step")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def gradient_flow(curves: Mapping[str, Any], path: str | os.PathLike, *, title: str = "") -> Path:
    """The norm of dL/dh_t against the distance from the loss, log scale, one line per model.

    Args:
        curves: name -> norms (T,), entry k at distance k (k = 0 at the loss), as
            :func:`rnnkit.apps.diagnose.gradient_flow` returns; or (S, T) for S seeds, drawn as the
            mean over seeds with the band from the smallest to the largest.
        path: where to write the PNG.
        title: the title (default "Gradient flow through time").

    Values that are 0 (underflow) or not finite are left out of the log scale.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping name -> array of norms")
    fig = _figure(8, 4.8)
    ax = fig.add_subplot()
    positive, n_seeds = [], set()
    for k, (name, values) in enumerate(curves.items()):
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] < 1:
            raise ValueError(f"curves[{name!r}] must be (T,) or (S, T), got shape {arr.shape}")
        arr = np.where(np.isfinite(arr) & (arr > 0), arr, np.nan)
        seeds = arr if arr.ndim == 2 else arr[None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after underflow
            mean = np.nanmean(seeds, axis=0)
            lo, hi = np.nanmin(seeds, axis=0), np.nanmax(seeds, axis=0)
        distance = np.arange(arr.shape[-1])
        color = f"C{k % 10}"
        ax.plot(distance, mean, color=color, lw=2, label=name)
        n_seeds.add(len(seeds))
        if len(seeds) > 1:
            ax.fill_between(distance, lo, hi, color=color, alpha=0.2, lw=0)
        positive.append(_finite_positive(seeds.ravel()))
    values = np.concatenate(positive)
    if values.size:
        ax.set_yscale("log")
        ax.set_ylim(max(values.min() / 3, 1e-300), values.max() * 3)
    ax.set_xlabel("distance from the loss k (steps back in time)")
    ax.set_ylabel("\u2016\u2202L/\u2202h$_{T-k}$\u2016  (log scale)")
    ax.set_title(title or "Gradient flow through time")
    ax.grid(True, which="major", alpha=0.3)
    many = sorted(n for n in n_seeds if n > 1)
    note = None
    if many:
        counts = "/".join(str(n) for n in many)
        note = f"mean over {counts} seeds; shaded: min to max"
    ax.legend(loc="lower left", title=note, title_fontsize=8)
    return _save(fig, path)
