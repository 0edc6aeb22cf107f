"""Timing shared by the benchmarks."""

from __future__ import annotations

import gc
import json
import statistics
import time


def median_times(repeat: int, *fns) -> list[float]:
    """Median seconds of each function, timed in interleaved rounds so drifts in machine speed hit all alike;
    every other round runs them in reverse order, so none always inherits the caches another left. As timeit
    does, the cycle collector is off while they run: a collection one contender's garbage triggers would
    otherwise land in whichever runs next."""
    for fn in fns:
        fn()  # warm up (compiles the plan, fills caches)
    times = [[] for _ in fns]
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for round_ in range(repeat):
            pairs = list(zip(fns, times))
            for fn, record in pairs if round_ % 2 == 0 else reversed(pairs):
                start = time.perf_counter()
                fn()
                record.append(time.perf_counter() - start)
    finally:
        if collecting:
            gc.enable()
    return [statistics.median(t) for t in times]


def record(benchmark: str, ours: float, *, peer: str = "", theirs: float | None = None, target: str = "",
           met: bool | None = None, unit: str = "s") -> None:
    """One row of `make bench`'s table (bench/summary.py collects them from every script's output): what was
    measured, cgtools' figure, the peer's and their ratio, the target and whether it is met."""
    row = {"benchmark": benchmark, "ours": ours, "unit": unit, "peer": peer, "theirs": theirs,
           "ratio": ours / theirs if theirs else None, "target": target, "met": met}
    print("BENCH " + json.dumps(row), flush=True)
