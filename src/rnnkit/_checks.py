"""Argument checks shared by the public API: each failure names the argument, what was expected
and what came, so that no bare NumPy broadcasting or index error escapes from deep inside."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

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
    if finite:
        finite_values(name, value)
    return value


def finite_values(name: str, value: np.ndarray) -> np.ndarray:
    """``value`` if every element is finite; a ValueError naming the first bad index if not."""
    if not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))[0]
        raise ValueError(
            f"{name} must be finite, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return value


def regular_array(value: Any, expected: str) -> np.ndarray:
    """``np.asarray(value)``, or TypeError "<expected>, got a <type> that is not a regular
    array" for a ragged nesting of sequences."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{expected}, got a {type(value).__name__} that is not a regular array"
        ) from None


def lengths(value: Any, T: int, B: int) -> np.ndarray:
    """Valid steps per sequence: integers in [0, T], shape (B,)."""
    arr = regular_array(value, f"lengths must be an integer array of shape ({B},)")
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


def entry(where: str, key: str) -> str:
    """An argument's name in messages: ``lr`` as given to a constructor (``where`` empty), or its
    path in a loaded dict, ``state_dict['hyperparams']['lr']``."""
    return f"{where}[{key!r}]" if where else key


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a Python float within the given bounds; the message states the range."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    if low is not None and high is not None:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        want = " and ".join(parts)
    kind = "a float" if allow_inf else "a finite float"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be {kind} {want}, got {type(value).__name__} {value!r}")
    if isinstance(value, np.complexfloating):
        raise TypeError(f"{name} must be {kind} {want}, got complex {value!r}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ValueError(f"{name} must be {kind} {want}, got {out}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {kind} {want}, got {value!r}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {kind} {want}, got {value!r}")
    return out


def nonnegative(name: str, value: Any) -> float:
    """A finite float >= 0."""
    return real(name, value, low=0.0)


def positive(name: str, value: Any) -> float:
    """A finite float > 0."""
    return real(name, value, low=0.0, low_open=True)


def fraction(name: str, value: Any) -> float:
    """A finite float in [0, 1)."""
    return real(name, value, low=0.0, high=1.0, high_open=True)


def integer(name: str, value: Any, *, low: int) -> int:
    """``value`` as a Python int >= ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return int(value)


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {options}, got {value!r}")
    return value


def mapping(name: str, value: Any, what: str) -> Mapping[Any, Any]:
    """A Mapping; ``what`` describes its entries in the message (``dict of <what>``)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of {what}, got {type(value).__name__}")
    return value


def keys_exactly(
    name: str, value: Any, expected: list[str], what: str, *, keys: str = "the keys"
) -> None:
    """``value`` must be a Mapping (of ``what``) whose keys are exactly ``expected``."""
    mapping(name, value, what)
    missing = [k for k in expected if k not in value]
    extra = [k for k in value if k not in expected]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + (
            [f"unexpected {extra}"] if extra else []
        )
        raise ValueError(f"{name} must have exactly {keys} {expected}, got {'; '.join(parts)}")


def float_arrays(name: str, value: Any, what: str, in_place: str) -> dict[Any, np.ndarray]:
    """A dict of writeable float32 / float64 arrays to update in place (a shallow copy of
    ``value``: the same arrays); ``in_place`` says who writes, for the read-only error."""
    for key, arr in mapping(name, value, what).items():
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name}[{key!r}] must be a numpy.ndarray, got {type(arr).__name__}")
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}[{key!r}] must have dtype float32 or float64, got {arr.dtype}")
        if not arr.flags.writeable:
            raise ValueError(f"{name}[{key!r}] is read-only; {in_place}")
    return dict(value)


def like(name: str, value: Any, ref: np.ndarray, ref_name: str = "the parameter") -> np.ndarray:
    """A NumPy array with the shape and dtype of ``ref`` (a gradient or state of a parameter)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.shape != ref.shape:
        raise ValueError(
            f"{name} must have shape {fmt_shape(ref.shape)} like {ref_name}, "
            f"got {fmt_shape(value.shape)}"
        )
    if value.dtype != ref.dtype:
        raise TypeError(f"{name} must have dtype {ref.dtype} like {ref_name}, got {value.dtype}")
    return value


def same(name: str, value: Any, expected: Any, why: str) -> None:
    """``value`` must equal ``expected`` (a saved type name, say); ``why`` says whose it is."""
    if value != expected:
        raise ValueError(f"{name} must be {expected!r} ({why}), got {value!r}")


# -- declared arguments ----------------------------------------------------------------------------

REQUIRED = inspect.Parameter.empty  # the default of an argument that has none


class Hyper(NamedTuple):
    """A hyper-parameter, declared once: its keyword ``name``, its ``default`` (``REQUIRED`` for
    none) and ``check(name, value)``, which returns the value as a ``state_dict`` stores it
    (Python floats, ints, bools, str, lists) or raises an error naming ``name``."""

    name: str
    default: Any
    check: Callable[[str, Any], Any]


def signature(first: str, declared: Sequence[Hyper]) -> inspect.Signature:
    """A constructor's signature: ``first`` (the object it works on), then the ``declared``."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(first, kind)]
        + [inspect.Parameter(h.name, kind, default=h.default) for h in declared]
    )


def bind(cls: type, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments of a call ``cls(*args, **kwargs)`` by name, defaults filled in, as the
    signature of ``cls`` binds them (a TypeError names ``cls`` as Python's own would)."""
    try:
        bound = inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{cls.__name__}() {e}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def declared(where: str, values: Mapping[str, Any], hypers: Sequence[Hyper]) -> dict[str, Any]:
    """``values`` checked and normalised by the ``hypers``, in their order: a constructor's
    arguments (``where`` empty), or the dict ``where`` of a loaded state_dict, which must then
    have exactly the declared keys."""
    if where:
        keys_exactly(where, values, [h.name for h in hypers], "hyper-parameters")
    return {h.name: h.check(entry(where, h.name), values[h.name]) for h in hypers}
