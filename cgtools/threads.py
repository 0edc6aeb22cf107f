"""How many BLAS threads a run uses: the cores this process may run on that others are not keeping busy.

OpenBLAS starts one thread per core whether or not the cores are free; with one of two cores taken by another
process, its two threads take turns on the one left and a forward pass gets several times slower. So each run
limits the BLAS to `thread_count()` threads (CGTOOLS_THREADS, or `--threads N` on the command line, decides
instead) and gives the BLAS its own setting back afterwards.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from cgtools.errors import CgError

ENV_VAR = "CGTOOLS_THREADS"
DECISION_SECONDS = 5.0  # how long a decision (and the list of loaded BLAS libraries) is reused
LOAD_WINDOW = 60.0  # the load average's time constant, in seconds

_chosen: int | None = None  # set by use_threads (the command line's --threads); wins over CGTOOLS_THREADS
_decided: tuple[float, int] | None = None  # (when, how many threads)
_blas_libraries: list | None = None  # threadpoolctl's controllers of the BLAS libraries loaded, found once
_own_baseline = (time.monotonic(), time.process_time())  # where this process's own CPU use is counted from


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask where the system has one, else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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


def busy_elsewhere() -> int:
    """Cores kept busy by other processes: the 1-minute load average less this process's share, rounded down."""
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
    """From now on runs use `n` BLAS threads (None: decide again from the cores and the load)."""
    global _chosen
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
