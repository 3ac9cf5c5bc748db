"""Set the thread count of NumPy's BLAS at run time.

A recurrent network multiplies small matrices at every time step; on a few cores, OpenBLAS's
threads cost more than they save there (measured: 1 thread trains a character LSTM 1.8x faster
than 2 on a quiet 2-core machine, and 15x faster when the other core is busy). The command uses
one thread unless told otherwise; the library leaves the choice to its user.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _openblas() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries NumPy loaded (wheels bundle them beside the package)."""
    root = os.path.dirname(np.__file__)
    patterns = [
        os.path.join(root + ".libs", "*openblas*"),
        os.path.join(root, ".libs", "*openblas*"),
        os.path.join(root, "_core", "*openblas*"),
    ]
    libs = []
    for pattern in patterns:
        for path in glob.glob(pattern):
            try:
                libs.append(ctypes.CDLL(path))  # already loaded: this returns the same library
            except OSError:
                continue
    return libs


def set_blas_threads(n: int) -> bool:
    """Use ``n`` threads in NumPy's OpenBLAS from now on; False if that cannot be done here
    (another BLAS, or none found), in which case nothing changes."""
    try:
        from threadpoolctl import threadpool_limits  # the maintained way, when installed
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")
        return True
    for lib in _openblas():
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                return True
    return False
