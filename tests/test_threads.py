"""rnnkit.runtime.threads: the BLAS's thread count through threadpoolctl, imported on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rnnkit.runtime import threads


def test_set_blas_threads_sets_what_blas_threads_reads():
    before = threads.blas_threads()
    if before is None:
        pytest.skip("no BLAS found in this process")
    try:
        assert threads.set_blas_threads(1) is True
        assert threads.blas_threads() == 1
    finally:
        threads.set_blas_threads(before)
    assert threads.blas_threads() == before


def test_thread_pools_describe_the_blas():
    pools = threads.thread_pools()
    assert all({"user_api", "internal_api", "num_threads"} <= set(p) for p in pools)
    if threads.blas_threads() is not None:
        assert any(p["user_api"] == "blas" for p in pools)


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_bad_thread_counts_name_the_argument(n, error):
    with pytest.raises(error, match="n must be"):
        threads.set_blas_threads(n)


def test_import_rnnkit_does_not_import_threadpoolctl():
    code = "import sys, rnnkit; print('threadpoolctl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
