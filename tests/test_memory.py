"""Freed arrays kept for the next run: with glibc, allocating and freeing arrays of a run's sizes over and over
costs no page faults once cgtools has run, where malloc's default hands each back to the system."""

import subprocess
import sys

import pytest

# Allocates and frees 8 MiB arrays (a MobileNet activation's size) and prints the page faults of the repeats.
FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from cgtools.memory import keep_freed_memory
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    np.ones(2 << 20, np.float32) + 1
before = faults()
for _ in range(50):
    np.ones(2 << 20, np.float32) + 1
print(faults() - before)
"""


def faults(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True,
                              check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_runs_freed_arrays_come_back_without_page_faults():
    assert faults("system") > 5000  # about a thousand a repeat here (8 MiB is 2,048 pages; some come huge)
    assert faults("kept") < 500


def test_a_run_keeps_freed_memory():
    import cgtools
    from cgtools.memory import keep_freed_memory

    keep_freed_memory.cache_clear()
    cgtools.load("examples/affine_square.json").run()
    assert keep_freed_memory.cache_info().currsize == 1  # the run asked for it
