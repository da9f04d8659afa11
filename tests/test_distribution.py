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
