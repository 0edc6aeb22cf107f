"""How many BLAS threads a run uses: the cores this process may run on that others are not keeping busy.

OpenBLAS starts one thread per core whether or not the cores are free; with one of two cores taken by another
process, its two threads take turns on the one left and a forward pass gets several times slower. So each run
limits the BLAS to `thread_count()` threads (CGTOOLS_THREADS, or `--threads N` on the command line, decides
instead) and gives the BLAS its own setting back afterwards.

How busy the cores are is measured where Linux counts it (/proc/stat): the CPU time the usable cores spent
busy since the last decision, less this process's own. The 1-minute load average, the fallback elsewhere (and
for windows too short or too old to trust), follows a new load with a one-minute lag.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from cgtools.errors import CgError

ENV_VAR = "CGTOOLS_THREADS"
DECISION_SECONDS = 5.0  # how long a decision (and the list of loaded BLAS libraries) is reused
LOAD_WINDOW = 60.0  # the load average's time constant, in seconds

_chosen: int | None = None  # set by use_threads (the command line's --threads); wins over CGTOOLS_THREADS
_decided: tuple[float, int] | None = None  # (when, how many threads)
_blas_libraries: list | None = None  # threadpoolctl's controllers of the BLAS libraries loaded, found once
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # parallel_map's (process id, size, threads)
_own_baseline = (time.monotonic(), time.process_time())  # where this process's own CPU use is counted from
PROC_STAT = "/proc/stat"
MEASURED_WINDOW = (0.25, 60.0)  # seconds: a shorter window holds too few clock ticks, a longer one is stale
BUSY_SHARE = 0.75  # the share of a core other processes must use for it to count as busy


def usable_core_set() -> set:
    """The cores this process may run on: its affinity mask where the system has one, else every core."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    return len(usable_core_set())


def own_load() -> float:
    """This process's share of the 1-minute load average: the CPU seconds it (all its threads) used over the
    last minute or so, per second. The average decays with a one-minute time constant, so a run of a few
    seconds adds about its CPU seconds / 60, as this does."""
    global _own_baseline
    now, cpu = time.monotonic(), time.process_time()
    since, cpu_since = _own_baseline
    share = (cpu - cpu_since) / max(LOAD_WINDOW, now - since)
    if now - since > LOAD_WINDOW:
        _own_baseline = (now, cpu)
    return share


def busy_ticks(cores: set) -> int | None:
    """The clock ticks these cores have spent busy since boot (/proc/stat), or None without that file."""
    try:
        with open(PROC_STAT) as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    busy = 0
    for line in lines:
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            user, nice, system, _idle, _iowait, *rest = (int(t) for t in ticks)
            busy += user + nice + system + sum(rest[:3])  # and irq, softirq, steal
    return busy


def cpu_sample() -> tuple[float, int | None, float]:
    return time.monotonic(), busy_ticks(usable_core_set()), time.process_time()


_last_sample = cpu_sample()


def measured_busy() -> float | None:
    """Cores kept busy by other processes since the last measurement (their CPU seconds per second), or None
    when the window is too short or too old to tell, or Linux's figures are missing."""
    global _last_sample
    now = cpu_sample()
    (since, busy_before, own_before), (then, busy_now, own_now) = _last_sample, now
    window = then - since
    if busy_before is None or busy_now is None or window < MEASURED_WINDOW[0]:
        return None
    _last_sample = now
    if window > MEASURED_WINDOW[1]:
        return None
    others = (busy_now - busy_before) / os.sysconf("SC_CLK_TCK") - (own_now - own_before)
    return max(0.0, others / window)


def busy_elsewhere() -> int:
    """Cores kept busy by other processes: measured since the last decision where Linux tells, else the
    1-minute load average less this process's share, rounded down."""
    measured = measured_busy()
    if measured is not None:  # a core counts as taken when others used three quarters of it: ticks are coarse
        return int(measured + 1 - BUSY_SHARE)
    if not hasattr(os, "getloadavg"):
        return 0
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load figure on this system
        return 0
    return max(0, int(load - own_load()))


def requested() -> int | None:
    """The count CGTOOLS_THREADS asks for, if set."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise CgError(f"{ENV_VAR} must be a whole number of threads, 1 or more; found {text!r}")
    return int(text)


def thread_count() -> int:
    """How many BLAS threads a run should use: what use_threads chose, else CGTOOLS_THREADS, else the usable
    cores less those busy elsewhere, at least 1."""
    return _chosen or requested() or max(1, usable_cores() - busy_elsewhere())


def use_threads(n: int | None) -> None:
    """From now on runs use `n` BLAS threads (None: decide again from the cores and the load). The count already
    chosen keeps its decision: finding the BLAS libraries again costs a millisecond, a small model's whole run."""
    global _chosen
    if n is not None and n == _chosen:
        return
    _chosen = n
    forget_decision()


def decided_count() -> int:
    """thread_count(), reused for DECISION_SECONDS: a run takes milliseconds, the load changes over seconds."""
    global _decided, _blas_libraries
    now = time.monotonic()
    if _decided is None or now - _decided[0] > DECISION_SECONDS:
        _decided = (now, thread_count())
        _blas_libraries = None  # look again: a library loaded since (torch's, say) gets limited too
    return _decided[1]


def forget_decision() -> None:
    """Decide afresh on the next run (after the environment or the machine changed)."""
    global _decided, _blas_libraries
    _decided = _blas_libraries = None


def blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded. Finding them scans every loaded library
    (~0.5 ms), so it is done once per decision; reading or setting a count then costs microseconds."""
    global _blas_libraries
    if _blas_libraries is None:
        from threadpoolctl import ThreadpoolController

        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_libraries


@contextmanager
def blas_threads(n: int | None = None):
    """Limit the BLAS to `n` threads (by default the decided count) inside the block, and give each library its
    own count back after. A library already at `n` is left alone, so nested runs cost a few microseconds."""
    n = n or decided_count()
    changed = []
    for library in blas_libraries():
        before = library.get_num_threads()
        if before != n:
            library.set_num_threads(n)
            changed.append((library, before))
    try:
        yield n
    finally:
        for library, before in changed:
            library.set_num_threads(before)


def parallel_map(fn, items) -> list:
    """[fn(item) for item in items], on as many threads as a run may use: numpy lets go of Python's lock inside
    its loops, so the blocks of one big elementwise computation run side by side. In this thread when one
    thread is all there is."""
    global _pool
    n = min(decided_count(), len(items))
    if n <= 1:
        return [fn(item) for item in items]
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < n:  # a forked child has the pool but no threads
        _pool = (os.getpid(), n, ThreadPoolExecutor(n, thread_name_prefix="cgtools"))
    return list(_pool[2].map(fn, items))
