"""Process-wide settings for fast CPU inference."""

from __future__ import annotations

import ctypes
import os

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


def default_threads() -> int:
    """Torch intra-op threads: all cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)))
