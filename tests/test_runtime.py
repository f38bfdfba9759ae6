"""Process-wide settings: NumPy's BLAS on one thread except where large products need them all."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from firs.runtime import all_blas_threads, default_threads, limit_blas_threads
limit_blas_threads()  # before NumPy is loaded, as at `firs`'s start
import threadpoolctl

def blas():
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

assert blas() == {1}, blas()
with all_blas_threads():
    assert blas() == {default_threads()}, blas()
assert blas() == {1}, blas()
print("ok")
"""


def test_blas_runs_on_one_thread_except_inside_all_blas_threads() -> None:
    # A fresh interpreter: the limit is process-wide and would outlive this test.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
