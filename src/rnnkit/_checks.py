"""Argument checks shared by the public API: each failure names the argument, what was expected
and what came, so that no bare NumPy broadcasting or index error escapes from deep inside."""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int, which must be >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def float_dtype(value: Any) -> np.dtype:
    """np.float32 or np.float64, given as a type, a dtype or a name."""
    if value is None:  # np.dtype(None) is float64, which would silently override the default
        raise TypeError("dtype must be np.float32 or np.float64, got None")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be np.float32 or np.float64, got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype}")
    return dtype


def rng(seed: Any) -> np.random.Generator:
    """A NumPy Generator from an int seed, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")


def fmt_shape(shape: tuple[Any, ...]) -> str:
    """(T, B, 8) for a mix of names and sizes; (5,) for a 1-tuple."""
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def array(
    name: str,
    value: Any,
    shape: tuple[Any, ...],
    dtype: np.dtype,
    *,
    finite: bool = False,
) -> np.ndarray:
    """Check that ``value`` is a NumPy array of the given shape and dtype.

    ``shape`` mixes ints (sizes that must match) and strings (named free sizes such as "T",
    which must be >= 1); the message shows it as written, e.g. ``(T, B, 8)``.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of shape {fmt_shape(shape)} and dtype {dtype}, "
            f"got {type(value).__name__}"
        )
    if value.ndim != len(shape):
        raise ValueError(
            f"{name} must be {len(shape)}-D with shape {fmt_shape(shape)}, "
            f"got {value.ndim}-D with shape {fmt_shape(value.shape)}"
        )
    for want, got in zip(shape, value.shape, strict=True):
        if isinstance(want, str) and got < 1:
            raise ValueError(
                f"{name} must have shape {fmt_shape(shape)} with {want} >= 1, "
                f"got {fmt_shape(value.shape)}"
            )
        if not isinstance(want, str) and got != want:
            raise ValueError(
                f"{name} must have shape {fmt_shape(shape)}, got {fmt_shape(value.shape)}"
            )
    if value.dtype != dtype:
        raise TypeError(
            f"{name} must have dtype {dtype} (the layer's dtype), got {value.dtype}; "
            f"convert it with .astype(np.{dtype}) or build the layer with dtype=np.{value.dtype}"
            if value.dtype in FLOAT_DTYPES
            else f"{name} must have dtype {dtype} (the layer's dtype), got {value.dtype}"
        )
    if finite and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))[0]
        raise ValueError(
            f"{name} must be finite, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return value


def lengths(value: Any, T: int, B: int) -> np.ndarray:
    """Valid steps per sequence: integers in [0, T], shape (B,)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # a ragged nesting of sequences
        raise TypeError(
            f"lengths must be an integer array of shape ({B},), got a {type(value).__name__} "
            "that is not a regular array"
        ) from None
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must be an integer array of shape ({B},), got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(
            f"lengths must have shape ({B},) (one length per sequence), got {fmt_shape(arr.shape)}"
        )
    bad = (arr < 0) | (arr > T)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"lengths must lie in [0, {T}] (T = {T}), got lengths[{i}] = {arr[i]}")
    return arr.astype(np.intp)


def probability(name: str, value: Any, *, upper_inclusive: bool = False) -> float:
    """A float in [0, 1), or [0, 1] with ``upper_inclusive``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    value = float(value)
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def features(name: str, value: Any, size: int, dtype: np.dtype) -> np.ndarray:
    """An array (..., size) of the given dtype, at least 1-D."""
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of shape (..., {size}) and dtype {dtype}, "
            f"got {type(value).__name__}"
        )
    if value.ndim < 1 or value.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {fmt_shape(value.shape)}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the layer's dtype), got {value.dtype}")
    return value


def token_ids(name: str, value: Any, vocab: int) -> np.ndarray:
    """Integer ids in [0, vocab), any shape."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of token ids, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= vocab)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must lie in [0, {vocab}) (the vocabulary size), got {arr[index]} at index "
            f"{index}"
        )
    return arr
