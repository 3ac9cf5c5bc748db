"""The runtime: how the library's mathematics is executed, not what it computes.

- :mod:`rnnkit.runtime.kernels`: the compiled time loops and matrix products (the optional C
  extension) and the one function that chooses a cell's time loop, compiled or NumPy;
- :mod:`rnnkit.runtime.workspace`: recycled buffers for the large arrays;
- :mod:`rnnkit.runtime.memory`: the process-wide allocator knob :func:`keep_freed_memory`;
- :mod:`rnnkit.runtime.threads`: the threads of the BLAS beside rnnkit's own.

The library core (:mod:`rnnkit.cells`, :mod:`rnnkit.nn`, ...) reads and tests without any of the
compiled code: the cells import nothing from here but the workspace.
"""
