"""The core's only dependency is NumPy: ``import rnnkit``, and importing any module of the package
(the command included), must not import PyTorch or matplotlib. Only the parity tests, the
benchmarks and the plot functions, when called, use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rnnkit

OPTIONAL = ("torch", "matplotlib")

# Runs in a fresh interpreter (this one has whatever the other tests imported) and checks after
# each import, so that the message names the module that pulled an optional package in.
PROBE = """\
import importlib, pkgutil, sys

def optional_loaded():
    return [name for name in sys.argv[1:] if name in sys.modules]

import rnnkit

assert not optional_loaded(), f"import rnnkit imports {optional_loaded()}"
for module in pkgutil.walk_packages(rnnkit.__path__, "rnnkit."):
    importlib.import_module(module.name)
    assert not optional_loaded(), f"import {module.name} imports {optional_loaded()}"
    print(module.name)
"""


def test_no_module_imports_torch_or_matplotlib():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *OPTIONAL], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    package = Path(rnnkit.__file__).parent
    modules = {
        ".".join(("rnnkit", *path.relative_to(package).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in package.rglob("*.py")
    } - {"rnnkit"}
    missed = modules - set(result.stdout.split())
    assert not missed, f"modules not imported by the check: {sorted(missed)}"
