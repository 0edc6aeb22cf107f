"""The light ResNet-50 forward on a quiet machine and with one core kept busy by another process, with and without
the thread policy (cgtools/threads.py), in one process.

    python bench/bench_busy.py [--repeat N] [--settle SECONDS]

"without" lets the BLAS use every core this process may run on; "with" uses the policy's decision, taken after
the spinning child has run for --settle seconds (the policy reads the 1-minute load average, which follows a new
load with a one-minute time constant); "1 thread" is what the policy should pick with one of two cores taken.
Prints each time and its ratio to the quiet time. Target: with the policy, busy ≤ 1.5× quiet.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
from timing import median_times, record


def spin():
    while True:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.0)
    args = parser.parse_args()

    import onnx

    import cgtools
    from cgtools import threads

    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_resnet50.onnx")
    graph = cgtools.load(path)
    (leaf,) = graph.leaves_of("input")
    n = int(np.prod(leaf.shape))
    feed = {leaf.name: (np.arange(n).reshape(leaf.shape) / n).astype(np.float32)}

    def forward_with(count):
        def forward():
            threads.use_threads(count)
            graph.run(feed, backward=False)
        return forward

    cores = threads.usable_cores()
    print(f"usable cores {cores}, 1-minute load {os.getloadavg()[0]:.2f}")
    (quiet,) = median_times(args.repeat, forward_with(None))
    print(f"quiet, policy ({threads.thread_count()} threads): {quiet * 1e3:.0f} ms")
    spinner = multiprocessing.Process(target=spin, daemon=True)
    spinner.start()
    try:
        time.sleep(args.settle)
        threads.use_threads(None)
        decided = threads.thread_count()
        print(f"one core busy; 1-minute load {os.getloadavg()[0]:.2f}, policy decides {decided} threads")
        times = median_times(args.repeat, forward_with(cores), forward_with(None), forward_with(1))
    finally:
        spinner.kill()
    for name, t in zip((f"without policy ({cores} threads)", f"with policy ({decided} threads)", "1 thread"), times):
        print(f"busy, {name}: {t * 1e3:.0f} ms = {t / quiet:.2f}× quiet")
    record(f"light ResNet-50 forward, one core busy, thread policy ({decided} threads)", times[1],
           peer="the same, quiet", theirs=quiet, target="≤ 1.5×", met=times[1] <= 1.5 * quiet)
    record(f"light ResNet-50 forward, one core busy, {cores} threads (no policy)", times[0], peer="the same, quiet",
           theirs=quiet)


if __name__ == "__main__":
    main()
