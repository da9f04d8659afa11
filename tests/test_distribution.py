"""Data-parallel training on MPI (rnnfast.distribution). The mpiexec tests
need mpi4py and an MPI (the rnnfast[mpi] extra: mpi4py and the mpich wheel)
and skip cleanly without them."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast import distribution

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "train_script.py")
BUCKETS = os.path.join(os.path.dirname(__file__), "mpi", "bucket_script.py")


def mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'rnnfast[mpi]')")
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec")
    return exe


def env():
    e = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(rnnfast.__file__)))
    e["PYTHONPATH"] = root + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(args, timeout=120):
    return subprocess.run(args, env=env(), capture_output=True, text=True, timeout=timeout)


class FakeComm:
    def __init__(self, rank, size):
        self.r, self.s = rank, size

    def Get_rank(self):
        return self.r

    def Get_size(self):
        return self.s


@pytest.mark.parametrize("n,size", [(10, 2), (7, 3), (64, 4), (5, 5)])
def test_shards_are_disjoint_and_cover_the_batch(monkeypatch, n, size):
    seen = []
    for r in range(size):
        monkeypatch.setitem(distribution._state, "comm", FakeComm(r, size))
        part = distribution.DataParallel().shard(n)
        seen += list(range(n))[part]
        assert part.stop - part.start in (n // size, n // size + 1)
    assert sorted(seen) == list(range(n))


def test_single_process_api():
    assert distribution.rank() == 0 and distribution.size() == 1 and distribution.is_main()
    assert distribution.list_devices() == ["cpu:0"]
    with pytest.raises(ValueError, match="DataParallel"):
        distribution.set_distribution(object())


def test_two_ranks_train_exactly_as_one_process(tmp_path):
    exe = mpiexec()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    r1 = run([sys.executable, SCRIPT, str(one), "train"])
    assert r1.returncode == 0, r1.stderr
    r2 = run([exe, "-n", "2", sys.executable, SCRIPT, str(two), "train"])
    assert r2.returncode == 0, r2.stderr
    w1, w2 = np.load(one / "weights.npz"), np.load(two / "weights.npz")
    assert len(w1.files) == len(w2.files) == 8
    for k in w1.files:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-10, atol=1e-12, err_msg=k)
    h1 = json.loads((one / "history.json").read_text())
    h2 = json.loads((two / "history.json").read_text())
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-10)
    np.testing.assert_allclose(h2["mae"], h1["mae"], rtol=1e-10)
    # evaluate and predict: sharded, then averaged / gathered on every rank.
    e1 = np.load(one / "eval_r0.npz")
    for r in (0, 1):
        e2 = np.load(two / f"eval_r{r}.npz")
        np.testing.assert_allclose(e2["scores"], e1["scores"], rtol=1e-10)
        np.testing.assert_allclose(e2["pred"], e1["pred"], rtol=1e-10, atol=1e-12)
    assert e1["pred"].shape == (21, 1)
    # Checkpoints are written by rank 0 only (the first fit's three epochs; the resumed
    # fit has no checkpoint callback).
    names = sorted(p.name for p in two.iterdir() if p.name.startswith("ckpt"))
    assert names == ["ckpt_r0_1.weights.h5", "ckpt_r0_2.weights.h5", "ckpt_r0_3.weights.h5"]


def test_an_exception_on_one_rank_stops_every_rank(tmp_path):
    exe = mpiexec()
    r = run([exe, "-n", "2", sys.executable, SCRIPT, str(tmp_path), "raise"], timeout=60)
    assert r.returncode != 0
    assert "rank 1 fails" in r.stderr
    assert not (tmp_path / "weights.npz").exists()


@pytest.mark.parametrize("mode,trainable,weights,buckets", [
    # (bucket sizes: smaller than any gradient, a few gradients, larger than all)
    ("sequential", 8, 8, [8, 4, 1]),
    # A layer shared by two graph steps, a nested model, a frozen layer, a regularizer
    # and an output without a loss (its Dense gets no gradient: zeros).
    ("shared", 9, 11, [9, 3, 1]),
    ("generator", 8, 8, [8, 4, 1]),
    ("pydataset", 8, 8, [8, 4, 1]),
])
def test_bucketed_overlapped_allreduce_trains_exactly_as_one_process(tmp_path, mode, trainable,
                                                                     weights, buckets):
    exe = mpiexec()
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    r1 = run([sys.executable, BUCKETS, str(one), mode])
    assert r1.returncode == 0, r1.stderr
    r2 = run([exe, "-n", "2", sys.executable, BUCKETS, str(two), mode])
    assert r2.returncode == 0, r2.stderr
    res1 = json.loads((one / "results.json").read_text())
    res2 = json.loads((two / "results.json").read_text())
    assert list(res2) == ["1e-09_True", "0.0005_True", "64.0_True", "4.0_False"]
    # The buckets of the last step: one per gradient, a few, one; none when blocking.
    assert [res2[k]["buckets"] for k in res2] == buckets + [0]
    for key in res2:
        assert res2[key]["trainable"] == trainable
        w1, w2 = np.load(one / f"weights_{key}.npz"), np.load(two / f"weights_{key}.npz")
        assert len(w1.files) == len(w2.files) == weights
        for k in w1.files:
            np.testing.assert_allclose(w2[k], w1[k], rtol=1e-10, atol=1e-12, err_msg=f"{key} {k}")
        np.testing.assert_allclose(res2[key]["loss"], res1[key]["loss"], rtol=1e-10)
    # Training moved every weight that has a gradient: not the frozen Dense's nor the
    # loss-less output's (Adam does not move a weight whose gradients are all zero).
    start, end = np.load(two / "weights_initial.npz"), np.load(two / "weights_64.0_True.npz")
    moved = sum(not np.array_equal(start[k], end[k]) for k in start.files)
    assert moved == (7 if mode == "shared" else 8)


def test_bucket_size_is_checked():
    with pytest.raises(ValueError, match="bucket_mb"):
        distribution.DataParallel(bucket_mb=0)


def test_ready_plan_releases_a_shared_layer_after_its_last_backward_step():
    # Functional.backward's hook: each weight once, at the earliest forward step of
    # the layers owning it (the backward reaches it last).
    a, b = rnnfast.Input((4, 3)), rnnfast.Input((4, 3))
    shared = rnnfast.layers.LSTM(2)
    ha, hb = shared(a), shared(b)
    out = rnnfast.layers.Dense(1)(rnnfast.layers.Concatenate()([ha, hb]))
    aux = rnnfast.layers.Dense(2)(hb)
    model = rnnfast.Model([a, b], [out, aux])
    plan = model._ready_plan()
    at = {id(v): i for i, vs in enumerate(plan) for v in vs}
    assert sorted(len(vs) for vs in plan) == [0, 0, 2, 2, 3]
    assert sum(len(vs) for vs in plan) == len(model.weights) == 7
    steps = [i for i, s in enumerate(model._steps) if s.layer is shared]
    assert len(steps) == 2
    assert {at[id(v)] for v in shared.weights} == {min(steps)}
    # The hook: one call per step, the last step first, each with the plan's weights.
    calls = []
    model._train_ctx.on_grads_ready = lambda vs: calls.append(list(vs))
    model.compile(loss=["mse", None])
    x = np.ones((2, 4, 3), np.float32)
    model.train_on_batch([x, x], [np.ones((2, 1)), np.ones((2, 2))])
    del model._train_ctx.on_grads_ready
    assert [[id(v) for v in c] for c in calls] == [[id(v) for v in vs] for vs in plan[::-1]]
