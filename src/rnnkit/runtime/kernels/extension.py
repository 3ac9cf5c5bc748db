"""The C extension ``rnnkit.runtime.kernels._native``: loading it, whether to use it
(``RNNKIT_KERNELS``), its threads, and what its loops cover. See :mod:`rnnkit.runtime.kernels`.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

import numpy as np

ENV = "RNNKIT_KERNELS"
CHOICES = ("auto", "compiled", "numpy")
ENV_THREADS = "RNNKIT_NUM_THREADS"

#: The fewest batch rows (one tile of the AVX-512 micro-kernel), and multiply-adds of the
#: recurrent products, worth a thread of their own: starting and waking a thread costs tens of
#: microseconds to a millisecond on a shared machine (measurements: docs/performance.md).
MIN_ROWS_PER_THREAD = 6
MIN_WORK_PER_THREAD = 8_000_000

_module: ModuleType | None = None  # the extension, once loaded
_reason: str | None = None  # why the extension is unavailable, once tried
_tried = False
_warned = False
_max_threads: int | None = None


def _load() -> None:
    global _module, _reason, _tried
    _tried = True
    try:
        from rnnkit.runtime.kernels import _native as module
    except ImportError as exc:
        _reason = f"the extension rnnkit.runtime.kernels._native did not import ({exc})"
        return
    _module = module


def native() -> ModuleType | None:
    """The extension module, ready to run, or None when it is unavailable (see :func:`reason`)."""
    if not _tried:
        _load()
    return _module


def products() -> ModuleType | None:
    """The extension for the computations around the loops (matrix products, optimiser
    updates): the module, unless ``RNNKIT_KERNELS=numpy`` or it does not load; decided at each
    call, without the warnings of :func:`use_compiled` (the recurrent layers give them)."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    return None if choice == "numpy" else native()


def reason() -> str | None:
    """Why the compiled loops are unavailable, or None when they are available."""
    native()
    return _reason


def use_compiled() -> bool:
    """Whether a layer made now should run the compiled loops (see the package docstring)."""
    global _warned
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "numpy":
        return False
    if native() is not None:
        return True
    if choice == "compiled":
        raise RuntimeError(f"{ENV}=compiled, but {_reason}")
    if not _warned:
        _warned = True
        warnings.warn(
            f"rnnkit: {_reason}; using the slower NumPy loops (set {ENV}=numpy to silence this)",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


def set_num_threads(n: int | None) -> None:
    """Run the compiled loops on at most ``n`` threads (None: the default, the environment
    variable ``RNNKIT_NUM_THREADS`` or else the CPUs this process may use)."""
    global _max_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    _max_threads = n


def get_num_threads() -> int:
    """The most threads the compiled loops use (see :func:`set_num_threads`)."""
    global _max_threads
    if _max_threads is None:
        env = os.environ.get(ENV_THREADS, "").strip()
        if env:
            if not env.isdigit() or int(env) < 1:
                raise ValueError(f"{ENV_THREADS} must be a positive integer, got {env!r}")
            _max_threads = int(env)
        elif hasattr(os, "sched_getaffinity"):
            _max_threads = max(1, len(os.sched_getaffinity(0)))
        else:
            _max_threads = os.cpu_count() or 1
    return _max_threads


def threads_for(B: int, work: int) -> int:
    """Threads for a loop over B independent rows doing ``work`` multiply-adds in all."""
    return max(1, min(get_num_threads(), B // MIN_ROWS_PER_THREAD, work // MIN_WORK_PER_THREAD))


def covers(dtype: np.dtype, shape: tuple[int, ...], reg: Any) -> bool:
    """Whether the compiled loops cover a call: no regularisation inside the recurrence
    (recurrent dropout, zoneout), float32 or float64, and no empty dimension in ``shape``. The
    compiled loops run the NumPy ones for the rest (silently: the result is the same)."""
    return reg is None and dtype in (np.float32, np.float64) and all(shape)


def mask2d(mask: np.ndarray | None, T: int, B: int) -> np.ndarray | None:
    """A length mask (T, B, 1) as the loops take it: C-contiguous (T, B) bool, or None."""
    return None if mask is None else np.ascontiguousarray(mask, dtype=np.bool_).reshape(T, B)


def isa() -> str | None:
    """The instruction set the compiled loops run on (``avx512``, ``avx2``, ``baseline``), or
    None when they are unavailable."""
    module = native()
    return None if module is None else module.isa()[0]
