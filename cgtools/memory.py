"""Python's cycle collector, paused where cgtools makes many small objects and no reference cycles."""

from __future__ import annotations

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
