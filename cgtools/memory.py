"""Memory as a run wants it: Python's cycle collector paused where cgtools makes many small objects and no
reference cycles, and freed arrays kept by malloc for the next run."""

from __future__ import annotations

import ctypes
import functools
import gc
from contextlib import contextmanager


@contextmanager
def collector_paused():
    """A run or a drawing makes thousands of lists, dicts and tuples and no cycles: the collector would find
    nothing, yet each pass it triggers rescans every object the process holds (10–30% of the time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, as malloc.h numbers them
MMAP_FROM = 32 << 20  # bytes: the largest mmap threshold glibc takes
TRIM_FROM = 256 << 20  # bytes of freed memory at the heap's top kept before any goes back to the system


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a run frees for the next one, as PyTorch's allocator keeps its cache.

    By default every block above a few megabytes is a fresh mmap, unmapped again when freed, so the next array of
    that size comes back as new pages, a page fault each 4 KiB: 250,000 faults, a third of a MobileNet forward and
    backward. Blocks up to 32 MiB now come from the heap, and up to 256 MiB of freed heap is kept. Whether glibc
    took it is returned; other C libraries (musl, macOS) are left as they are."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    return mallopt(M_MMAP_THRESHOLD, MMAP_FROM) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_FROM) == 1
