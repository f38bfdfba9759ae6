"""Process-wide settings: NumPy's BLAS on one thread except where large products need them all;
interrupts that third-party code would swallow held until it returns."""

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


DEFERRED = """
import contextlib, os, signal
from firs.cli import _interrupt
from firs.runtime import deferred_interrupts
signal.signal(signal.SIGTERM, _interrupt)  # as `firs` sets it up
finished = False
try:
    with deferred_interrupts():
        with contextlib.suppress(BaseException):  # as OpenVINO's conversion does with what it traces
            os.kill(os.getpid(), signal.SIGTERM)
        finished = True
except KeyboardInterrupt:
    assert finished, "the block did not run to its end"
    assert signal.getsignal(signal.SIGTERM) is _interrupt, "the handler is not back"
    print("interrupted after the block")
"""


def test_an_interrupt_that_third_party_code_would_swallow_takes_effect_after_it() -> None:
    # A fresh interpreter: a signal sent to the test process would reach the threads earlier tests left.
    done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "interrupted after the block", done.stderr
