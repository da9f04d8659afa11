"""The kernels' own thread pool: results do not depend on the thread count,
kernels run concurrently from several Python threads, and a fork()ed child can
use the kernels after the parent did (the OpenMP failure mode)."""

import multiprocessing
import threading
import warnings

import numpy as np
import pytest

import rnnfast
from kernel_harness import (Case, kernel_backward, kernel_forward, make_arrays, make_kernel,
                            output_grads, reference_forward)

# Big enough for the per-step product to be split over two threads.
BIG = [Case(c, B=48, T=5, I=16, U=96, mask=True, seed=8) for c in ("simple_rnn", "lstm", "gru")]
# Small weights: the batch's rows are split over the threads, in training too.
ROWS = [Case(c, B=50, T=6, I=16, U=40, mask=True, initial_state=True, input_dropout=1,
             recurrent_dropout=1, seed=12) for c in ("simple_rnn", "lstm", "gru")]


@pytest.fixture
def threads():
    saved = rnnfast.get_num_threads()
    yield rnnfast.set_num_threads
    rnnfast.set_num_threads(saved)


def run(case):
    a = make_arrays(case)
    dy, ds = output_grads(case)
    k = make_kernel(case)
    y, states = kernel_forward(case, k, a)
    return [y, *states, *kernel_backward(case, k, a, dy, ds).values()]


@pytest.mark.parametrize("case", BIG + ROWS, ids=lambda c: f"{c.cell}-U{c.U}")
def test_thread_count_does_not_change_results(case, threads):
    threads(1)
    one = run(case)
    threads(2)
    two = run(case)
    threads(4)  # more threads than cores: the barrier must still make progress
    four = run(case)
    for a, b, c in zip(one, two, four):
        if a is None:
            continue
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


def run_concurrently(job, cases):
    """{i: job(case)} with every case on its own Python thread, all at once."""
    results, errors = {}, []

    def work(i, case):
        try:
            results[i] = job(case)
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(cases)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not errors
    assert len(results) == len(cases)
    return results


def test_concurrent_python_threads(threads):
    threads(2)

    def job(case):
        a = make_arrays(case)
        for _ in range(5):
            y, _ = kernel_forward(case, make_kernel(case), a, training=False)
        return y, reference_forward(case, a)[0]

    for y, ref in run_concurrently(job, BIG * 2).values():
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_concurrent_training_with_row_split(threads):
    # Python threads (one per case) train, forward and backward, at once: a
    # caller that finds the pool busy runs alone, so a forward may split rows
    # over two members and its backward run on one (or the reverse);
    # gradients must not change.
    threads(2)
    expected = [run(c) for c in ROWS]

    def job(case):
        for _ in range(3):
            run(case)
        return run(case)

    for i, got in run_concurrently(job, ROWS).items():
        for a, b in zip(got, expected[i]):
            if b is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _child(q):
    case = BIG[1]
    a = make_arrays(case)
    y, _ = kernel_forward(case, make_kernel(case), a, training=False)
    q.put(float(np.abs(y - reference_forward(case, a)[0]).max()))


def test_forked_child_can_run_kernels(threads):
    threads(2)
    run(BIG[1])  # the parent's pool has started its workers
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a multi-threaded process; the
        # pool is built to survive it, which is what this test checks.
        warnings.simplefilter("ignore", DeprecationWarning)
        p = ctx.Process(target=_child, args=(q,))
        p.start()
    p.join(timeout=120)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung")
    assert p.exitcode == 0
    assert q.get(timeout=5) < 1e-10
