"""The thread policy: how many BLAS threads a run gets, from the cores, the load, CGTOOLS_THREADS and --threads,
read back from OpenBLAS itself (threadpoolctl) while a run is under way."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import cgtools
from cgtools import threads
from cgtools.ops import REGISTRY, Operation, register_op
from helpers import run_in_process


def openblas_threads() -> int:
    [openblas] = [lib for lib in threadpool_info() if lib["internal_api"] == "openblas"]
    return openblas["num_threads"]


@pytest.fixture(autouse=True)
def fresh_decision(monkeypatch):
    """Each test decides afresh, with no CGTOOLS_THREADS or --threads left from elsewhere."""
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    threads.use_threads(None)
    yield
    threads.use_threads(None)


@pytest.fixture
def seen_in_runs(monkeypatch):
    """A graph (file) whose one op records OpenBLAS's thread count each time a run executes it."""
    seen = []
    monkeypatch.setitem(REGISTRY, "BlasThreads", None)

    @register_op("BlasThreads")
    class BlasThreads(Operation):
        """x, noting the BLAS's thread count"""

        @staticmethod
        def forward(ctx, x):
            seen.append(openblas_threads())
            return x

    graph = {"cgtools": "1.0", "inputs": [{"name": "x", "value": [1.0, 2.0]}],
             "nodes": [{"op": "BlasThreads", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}
    return seen, graph


def other_than(n: int) -> int:
    return 1 if n != 1 else 2


def test_the_count_is_the_usable_cores_less_the_load_others_make(monkeypatch):
    monkeypatch.setattr(threads, "measured_busy", lambda: None)  # no /proc/stat: the load average decides
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "own_load", lambda: 0.5)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.7, 0.0, 0.0))
    assert threads.thread_count() == 2  # 2.7 - 0.5 = 2.2: two cores busy elsewhere
    monkeypatch.setattr(os, "getloadavg", lambda: (1.4, 0.0, 0.0))
    assert threads.thread_count() == 4  # 0.9: none busy elsewhere, this process makes the rest
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert threads.thread_count() == 1  # never none
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.thread_count() == 1  # pinned to one core (taskset) on a quiet machine


def test_without_an_affinity_mask_or_a_load_figure_every_core_counts(monkeypatch):
    monkeypatch.setattr(threads, "PROC_STAT", "/nonexistent/stat")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "getloadavg", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert threads.thread_count() == 6


def test_the_environment_variable_then_use_threads_win(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 0.0, 0.0))
    monkeypatch.setenv(threads.ENV_VAR, "3")
    assert threads.thread_count() == 3
    threads.use_threads(2)
    assert threads.thread_count() == 2
    monkeypatch.setenv(threads.ENV_VAR, "lots")
    threads.use_threads(None)
    with pytest.raises(cgtools.CgError, match="CGTOOLS_THREADS must be a whole number of threads, 1 or more; "
                                              "found 'lots'"):
        threads.thread_count()


def test_busy_cores_are_measured_from_linux_accounting_less_this_process(monkeypatch):
    """Between two samples 0.5 s apart the usable cores were busy 140 ticks (1.4 s at 100 ticks a second), of
    which this process's threads used 0.4 s: the others kept 2 cores busy, and 4 usable cores leave 2."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    monkeypatch.setattr(threads, "_last_sample", (10.0, 1000, 3.0))
    monkeypatch.setattr(threads, "cpu_sample", lambda: (10.5, 1140, 3.4))
    assert threads.thread_count() == 2
    monkeypatch.setattr(threads, "_last_sample", (10.0, 1000, 3.0))
    assert threads.measured_busy() == pytest.approx(2.0)
    monkeypatch.setattr(threads, "_last_sample", (10.0, 1015, 3.0))  # 1.7 cores: one taken, the other still ours
    assert threads.busy_elsewhere() == 1
    monkeypatch.setattr(threads, "_last_sample", (10.45, 1000, 3.0))  # 0.05 s: too few ticks to tell
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.measured_busy() is None and threads.thread_count() == 4
    monkeypatch.setattr(threads, "_last_sample", (-100.0, 0, 0.0))  # a window of minutes: stale
    assert threads.measured_busy() is None


def test_a_process_spinning_beside_takes_its_core_from_the_count(monkeypatch):
    """A real spinning process, measured through /proc/stat within a second: never more threads than the
    cores it leaves (fewer when others are busy too)."""
    import multiprocessing
    import time

    cores = threads.usable_cores()
    spinner = multiprocessing.get_context("fork").Process(target=spin, daemon=True)
    spinner.start()
    try:
        monkeypatch.setattr(threads, "_last_sample", threads.cpu_sample())  # the window starts with the spinner
        time.sleep(0.5)
        assert threads.thread_count() <= max(1, cores - 1)
    finally:
        spinner.kill()


def spin():
    while True:
        pass


def test_a_decision_is_reused_for_a_few_seconds(monkeypatch):
    monkeypatch.setattr(threads, "measured_busy", lambda: None)
    calls = []
    monkeypatch.setattr(os, "getloadavg", lambda: calls.append(1) or (0.0, 0.0, 0.0))
    first = threads.decided_count()
    assert [threads.decided_count() for _ in range(50)] == [first] * 50 and len(calls) == 1
    monkeypatch.setattr(threads, "DECISION_SECONDS", 0.0)
    threads.decided_count()
    assert len(calls) == 2


def test_choosing_the_same_count_again_keeps_the_decision_and_the_libraries_found(monkeypatch):
    threads.use_threads(1)
    threads.decided_count(), threads.blas_libraries()
    monkeypatch.setattr(threads, "thread_count", lambda: pytest.fail("decided again"))
    monkeypatch.setattr("threadpoolctl.ThreadpoolController", lambda: pytest.fail("libraries looked for again"))
    try:
        for _ in range(3):
            threads.use_threads(1)
            assert threads.decided_count() == 1 and threads.blas_libraries()
    finally:
        threads.use_threads(None)


def test_a_run_applies_the_limit_to_openblas_and_restores_it_after(seen_in_runs):
    seen, document = seen_in_runs
    before = openblas_threads()
    threads.use_threads(other_than(before))
    graph = cgtools.load(document)
    graph.run(backward=False)
    assert seen == [other_than(before)]
    assert openblas_threads() == before
    np.testing.assert_array_equal(graph.run(backward=False).values["y"], [1.0, 2.0])


def test_the_threads_option_wins_over_the_environment_and_lasts_one_command(seen_in_runs, tmp_path, capsys,
                                                                             monkeypatch):
    seen, document = seen_in_runs
    path = tmp_path / "g.json"
    path.write_text(json.dumps(document))
    before = openblas_threads()
    monkeypatch.setenv(threads.ENV_VAR, str(other_than(before) + 1))
    assert run_in_process(capsys, "run", path, "--no-backward", "--threads", other_than(before)).returncode == 0
    assert run_in_process(capsys, "run", path, "--no-backward").returncode == 0
    assert seen == [other_than(before), other_than(before) + 1]
    assert openblas_threads() == before
    help_text = run_in_process(capsys, "run", "--help").stdout
    assert "--threads N" in help_text and "CGTOOLS_THREADS" in help_text


def test_blocks_computed_on_several_threads_give_the_very_same_numbers():
    """Erf, Sigmoid and depthwise Conv split big tensors into blocks, run side by side on the threads a run
    may use (threads.parallel_map): the same numbers, bit for bit, on one thread or two."""
    from cgtools.ops.conv import Conv
    from cgtools.ops.nn import sigmoid
    from cgtools.ops.unary import erf

    rng = np.random.default_rng(0)
    x = rng.standard_normal(300_000).astype(np.float32)
    image, filters = rng.standard_normal((2, 64, 40, 40)), rng.standard_normal((64, 1, 3, 3))  # 4 row blocks

    def computed():
        ctx = cgtools.ops.Context()
        ctx.needs_grad = [True, True]
        y = Conv.forward(ctx, image, filters, group=64, pads=[1, 1, 1, 1])
        return [erf(x), sigmoid(x), y, *Conv.backward(ctx, np.ones_like(y))[:2]]

    threads.use_threads(1)
    alone = computed()
    threads.use_threads(2)
    assert threads.parallel_map(lambda k: k * k, range(10)) == [k * k for k in range(10)]
    for one, two in zip(alone, computed()):
        np.testing.assert_array_equal(one, two)


def test_a_forked_child_runs_blocks_on_threads_of_its_own():
    """A process forked after the pool started has the pool's object but none of its threads: it makes its own
    instead of waiting forever for threads that are not there."""
    import multiprocessing

    from cgtools.ops.unary import erf

    threads.use_threads(2)
    x = np.linspace(-3, 3, 200_000, dtype=np.float32)
    expected = erf(x)  # the pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(erf, (x,))
        np.testing.assert_array_equal(child.get(timeout=60), expected)
