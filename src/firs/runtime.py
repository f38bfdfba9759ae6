"""Process-wide settings for fast CPU inference."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    With glibc's defaults every batch of activations is a fresh mmap, and batched
    inference spends its time in page faults: measured on the 2-core dev machine,
    EfficientNet-Lite0 batch 32 took 61 ms/image before and 17 ms/image after
    (bench/embed_speed.py). No-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass


def limit_blas_threads() -> None:
    """NumPy's linear algebra on one thread. Its calls here are small (a whitening is one
    matrix-vector product); between them OpenBLAS's idle workers spin, and in a search that
    spin took a whole core from the networks (gdb: `blas_thread_server` in sched_yield; a fine
    search cost 100 core-ms before, 76 after, the same answers per second from one worker
    at 155 % CPU instead of 199 %)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # for the BLAS libraries loaded from now on
    import numpy  # noqa: F401  (loads its OpenBLAS: a limit set before finds nothing to limit)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def all_blas_threads() -> contextlib.AbstractContextManager[object]:
    """Within it, NumPy's linear algebra on every core: for the few large products (a
    whitening's moments over a whole catalogue) that gain from them."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=default_threads(), user_api="blas")


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc malloc_trim): the allocator is tuned
    to keep it for inference, so after a burst of large uploads the process would stay big."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def default_threads() -> int:
    """Torch intra-op threads: all cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive inside the block take effect as it ends, as a
    KeyboardInterrupt. For third-party code that would swallow the interrupt: OpenVINO's
    conversion traces a torch module and turns any exception inside into its own failure (or
    retries), so a build stopped then went on, or failed with an internal error. Only the main
    thread receives signals; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda signum, _frame: arrived.append(signum)) for number in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if arrived:
        raise KeyboardInterrupt
