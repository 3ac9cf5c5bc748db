"""PyTorch, an optional dependency of the test suite: the parity tests need it, nothing else does.

Without it (``pip install -e . pytest``) the tests marked ``@requires_torch`` skip, saying why, and
the rest of their module runs. A module made only of parity tests skips whole with
``pytest.importorskip("torch")`` instead. An installed torch that fails to import is an error, not
a skip: a broken install must not pass as a missing one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


def optional_import(name: str) -> ModuleType | None:
    """The module ``name``, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:  # installed, but something it imports is missing
            raise
        return None


#: The torch module, or None.
torch = optional_import("torch")

#: Skips a parity test where torch is not installed.
requires_torch = pytest.mark.skipif(
    torch is None,
    reason="PyTorch is not installed: the parity tests need it (pip install -e '.[test]')",
)
