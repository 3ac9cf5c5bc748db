"""Builds the optional C extension rnnkit.runtime.kernels._native; everything else is in pyproject.toml.

The extension needs only a C compiler and the Python headers (no NumPy headers, no BLAS). If it
cannot be built, the install still succeeds and rnnkit runs its NumPy loops (with a one-line
warning).

Environment: RNNKIT_NO_VARIANTS=1 compiles the loops for the baseline instruction set only
(on x86-64 they are otherwise also compiled for AVX2 and AVX-512, chosen at run time);
RNNKIT_CFLAGS adds compiler flags.
"""

import os
import sys

from setuptools import Extension, setup

KERNELS = "src/rnnkit/runtime/kernels"

HEADERS = [
    "vmath.h",
    "microkernel.h",
    "gemm.h",
    "loop_parts.h",
    "lstm_loops.h",
    "gru_loops.h",
    "rnn_loops.h",
    "step_loops.h",
    "variant.h",
    "step_plan.h",
    "adam.h",
]

# -fno-trapping-math lets GCC turn the clamps of the vectorised exp into blends below AVX-512
# (else those loops run scalar: 6x slower with AVX2); the loops read no floating-point flags.
# -g0: the debug information Python's default flags ask for would triple the library's size.
# -fno-math-errno: square roots as instructions (vectorised), not calls that may set errno.
args = [] if sys.platform == "win32" else ["-O3", "-std=gnu11", "-fno-trapping-math", "-g0"]
args += [] if sys.platform == "win32" else ["-fno-math-errno"]
macros = [("RNNKIT_NO_VARIANTS", "1")] if os.environ.get("RNNKIT_NO_VARIANTS") else []
args += os.environ.get("RNNKIT_CFLAGS", "").split()

setup(
    ext_modules=[
        Extension(
            "rnnkit.runtime.kernels._native",
            sources=[f"{KERNELS}/_native.c"],
            depends=[f"{KERNELS}/{name}" for name in HEADERS],
            extra_compile_args=args,
            define_macros=macros,
            optional=True,  # no compiler: install anyway, run the NumPy loops
        )
    ]
)
