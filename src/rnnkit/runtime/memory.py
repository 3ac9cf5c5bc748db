"""Keep freed memory for reuse, instead of giving it back to the system after every step.

A training step allocates and frees the same large arrays again and again (the input
projection, the states and gates saved for the backward pass, the gradients). With glibc's
defaults the freed top of the heap is returned to the system, and arrays above the mmap
threshold are mapped and unmapped each time, so the next step touches fresh pages and pays a
page fault per 4 KiB. rnnkit's own large arrays avoid this through :mod:`rnnkit.runtime.workspace`,
which recycles them; this setting covers every other array of the process as well (NumPy's
temporaries, the reference loops' arrays, an application's own): even without the workspace
it removes the page faults of a training step, and shortens it (``docs/performance.md``).

:func:`keep_freed_memory` tells glibc's allocator to keep ``top_pad`` bytes of freed memory at
the top of the heap (``mallopt(M_TOP_PAD)``) and to serve arrays up to 32 MiB from the heap
(``M_MMAP_THRESHOLD``, its largest value). It is a setting of the whole process, which an
application, not a library, should choose: the ``rnnkit`` command calls it; ``import rnnkit``
does not. The price: up to ``top_pad`` bytes of freed memory stay with the process.
"""

from __future__ import annotations

import ctypes
import sys

_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's limit on 64-bit systems


def keep_freed_memory(top_pad: int = 256 << 20) -> bool:
    """Keep up to ``top_pad`` bytes of freed memory for reuse (see the module docstring).

    Returns True when the allocator took the setting, False where it does not apply (not
    Linux with glibc).
    """
    if isinstance(top_pad, bool) or not isinstance(top_pad, int) or top_pad < 0:
        raise ValueError(f"top_pad must be a non-negative int (bytes), got {top_pad!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    pad = min(top_pad, 2**31 - 1)
    return bool(mallopt(_M_TOP_PAD, pad)) and bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX))
