"""NumPy's BLAS beside the kernels' threads (rnnfast/utils/blas.py): the
products rnnfast leaves to NumPy run on one BLAS thread, so that OpenBLAS's
workers, which spin for ~0.1 s after a threaded call, do not take a core from
the recurrent kernels."""

import contextlib

import numpy as np
import pytest
import threadpoolctl

import rnnfast
from rnnfast import layers
from rnnfast import regularizers as R
from rnnfast.utils import blas


def blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_single_thread_blas_limits_and_restores():
    before = blas_threads()
    if not before or max(before) == 1:
        pytest.skip("NumPy's BLAS runs on one thread here anyway")
    with blas.single_thread_blas():
        assert blas_threads() == [1] * len(before)
        a = np.ones((300, 300))
        np.testing.assert_allclose(a @ a, np.full((300, 300), 300.0))
    assert blas_threads() == before


def test_single_thread_blas_nested_and_concurrent_restore_the_original():
    """Two threads in overlapping contexts: the second must not take the
    first's limit of 1 for the original count."""
    import threading

    before = blas_threads()
    if not before or max(before) == 1:
        pytest.skip("NumPy's BLAS runs on one thread here anyway")
    entered, release = threading.Event(), threading.Event()

    def other():
        with blas.single_thread_blas():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    with blas.single_thread_blas():  # entered while the other thread's limit holds
        with blas.single_thread_blas():
            assert blas_threads() == [1] * len(before)
    assert blas_threads() == [1] * len(before)  # the other thread is still inside
    release.set()
    t.join(10)
    assert blas_threads() == before


@pytest.fixture
def counted(monkeypatch):
    """Counts the single_thread_blas() contexts entered (the decorator looks
    it up at each call)."""
    n = [0]

    @contextlib.contextmanager
    def counting():
        n[0] += 1
        yield

    monkeypatch.setattr(blas, "single_thread_blas", counting)
    return n


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
def test_attention_products_run_on_one_blas_thread(cls, counted):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v = rng.standard_normal((2, 5, 4)).astype(np.float32)
    inp_q, inp_v = rnnfast.Input((3, 4)), rnnfast.Input((5, 4))
    # use_scale: a weight, so that training runs the layer's backward
    model = rnnfast.Model([inp_q, inp_v], getattr(layers, cls)(use_scale=True)([inp_q, inp_v]))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch([q, v], np.zeros((2, 3, 4), np.float32))
    assert counted[0] == 2  # forward and backward
    model.predict_on_batch([q, v])
    assert counted[0] == 3


def test_orthogonal_regularizer_runs_on_one_blas_thread(counted):
    reg = R.OrthogonalRegularizer(factor=0.3)
    w = np.random.default_rng(1).standard_normal((6, 4))
    reg(w)
    reg.gradient(w)
    assert counted[0] == 2
