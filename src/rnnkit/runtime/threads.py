"""The threads of the BLAS that NumPy calls, beside rnnkit's own.

A recurrent network multiplies small matrices at every time step; on a few cores the BLAS's
threads cost more there than they save (``docs/performance.md`` has the measurements). The
``rnnkit`` command runs the BLAS on one thread unless ``OPENBLAS_NUM_THREADS`` or
``OMP_NUM_THREADS`` says otherwise; the library leaves the choice to its user. rnnkit's compiled
loops have threads of their own, set apart: :func:`rnnkit.runtime.kernels.set_num_threads`.

The BLAS is reached through threadpoolctl, which knows OpenBLAS, MKL, BLIS and FlexiBLAS, and
the OpenMP runtimes too (:func:`thread_pools`). It is imported by the first call here, not by
``import rnnkit``.
"""

from __future__ import annotations

from typing import Any

from rnnkit import _checks

#: threadpoolctl's controllers of the BLAS libraries, found at the first call and kept: the
#: search of the loaded libraries costs a hundred times a call to one (docs/performance.md).
_controllers: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    global _controllers
    if _controllers is None:
        from threadpoolctl import ThreadpoolController

        _controllers = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _controllers


def set_blas_threads(n: int) -> bool:
    """Run the BLAS on at most ``n`` threads from now on; False when no BLAS was found (then
    nothing changes).

    The limit applies to every BLAS library loaded at the first call of this module (NumPy's
    among them); one loaded afterwards (importing PyTorch loads its own) keeps its own setting.
    """
    n = _checks.positive_int("n", n)
    controllers = _blas_controllers()
    for lib in controllers:
        lib.set_num_threads(n)
    return bool(controllers)


def blas_threads() -> int | None:
    """The most threads the BLAS runs on now (see :func:`set_blas_threads`), or None when no
    BLAS was found."""
    counts = [lib.get_num_threads() for lib in _blas_controllers()]
    return max(counts) if counts else None


def thread_pools() -> list[dict[str, Any]]:
    """Every native thread pool loaded now, BLAS and OpenMP, as threadpoolctl describes them:
    dicts with "user_api" ("blas" or "openmp"), "internal_api" ("openblas", "mkl", "blis",
    ...), "num_threads", "version", "filepath" and, for OpenBLAS, "architecture" (the kernel
    family it chose for this CPU) and "threading_layer"."""
    from threadpoolctl import threadpool_info

    return threadpool_info()
