"""Timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import time


def median_times(repeat: int, *fns) -> list[float]:
    """Median seconds of each function, timed in interleaved rounds so drifts in machine speed hit all alike."""
    for fn in fns:
        fn()  # warm up (compiles the plan, fills caches)
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
