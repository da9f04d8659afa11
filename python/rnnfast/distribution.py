"""Data-parallel training across processes on MPI (mpi4py), behind Keras 3's
``keras.distribution`` names.

    import rnnfast as keras
    keras.distribution.initialize()                       # no-op in one process
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model.fit(x, y, batch_size=64, ...)                   # under: mpiexec -n 4 python train.py

Every rank runs the same program. Under a data-parallel distribution
``fit`` (and ``evaluate``, ``predict``: their logs averaged, their outputs
gathered on every rank) gives each rank a contiguous shard of every global batch
(``batch_size`` stays the global batch, as in Keras), broadcasts rank 0's
weights at the start, and sums the shards' gradients with one in-place
allreduce of a fused buffer, each weighted by its share of the batch, so
that the step equals the single-process step on the whole batch. Logs are
averaged over the ranks (by samples), the progress bar and file-writing
callbacks (ModelCheckpoint, CSVLogger) run on rank 0 only, ranks stop
together, and an exception on one rank aborts them all (MPI_Abort) instead of
leaving the others waiting in a collective.
"""

from __future__ import annotations

import os
import sys

import numpy as np

_state = {"comm": None, "distribution": None}

# Environment variables that MPI launchers set in the processes they start.
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS", "HYDI_CONTROL_FD", "SLURM_PROCID")


def _under_launcher() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def initialize(num_threads=None):
    """Joins the MPI job when started by mpiexec/mpirun/srun (a no-op in a
    single process). Each rank then uses its share of the cores (cores /
    ranks on this node) unless `num_threads` says otherwise."""
    if _state["comm"] is not None or not _under_launcher():
        return
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("distributed training needs mpi4py and an MPI: pip install "
                          "'rnnfast[mpi]'") from None
    comm = MPI.COMM_WORLD
    _state["comm"] = comm
    if num_threads is None:
        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        num_threads = max(1, (cores or 1) // local)
    import rnnfast

    rnnfast.set_num_threads(num_threads)


def _comm():
    return _state["comm"]


def rank() -> int:
    c = _comm()
    return 0 if c is None else c.Get_rank()


def size() -> int:
    c = _comm()
    return 1 if c is None else c.Get_size()


def is_main() -> bool:
    return rank() == 0


def list_devices(device_type=None):
    """One CPU device per rank ("cpu:0", "cpu:1", ...)."""
    if device_type not in (None, "cpu", "CPU"):
        return []
    return [f"cpu:{r}" for r in range(size())]


class DeviceMesh:
    """Keras's DeviceMesh, for data parallelism only: one axis over the ranks."""

    def __init__(self, shape=None, axis_names=("batch",), devices=None):
        self.devices = list(devices) if devices is not None else list_devices()
        self.shape = tuple(shape) if shape is not None else (len(self.devices),)
        self.axis_names = tuple(axis_names)


class DataParallel:
    """Replicates the model on every rank and splits each global batch
    between them (Keras's ``keras.distribution.DataParallel``)."""

    def __init__(self, device_mesh=None, devices=None):
        self.device_mesh = device_mesh or DeviceMesh(devices=devices)

    # ---- what the trainer calls ----------------------------------------------------

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of a batch of n samples."""
        r, s = rank(), size()
        return slice(n * r // s, n * (r + 1) // s)

    def broadcast_weights(self, variables, optimizer=None):
        """Rank 0's weights (and optimizer state, when it has some: a resumed
        run) to every rank, in place."""
        c = _comm()
        if c is None:
            return
        for v in variables:
            c.Bcast(v.value, root=0)
        if optimizer is not None:
            slots = list(getattr(optimizer, "_variables", []))
            counts = c.allgather(len(slots))
            if len(set(counts)) > 1:
                raise RuntimeError(f"the ranks' optimizers hold different numbers of state "
                                   f"arrays ({counts}): build the same model and optimizer on "
                                   f"every rank")
            for a in slots + [optimizer._iterations]:
                c.Bcast(a, root=0)

    def shared_rng(self):
        """The shuffling every rank must agree on: rank 0 draws each
        permutation from rnnfast's global generator, exactly as one process
        would, and broadcasts it."""
        return _SharedPermutation()

    def allreduce_gradients(self, grads, weight):
        """sum over ranks of weight * g, for every gradient, in one fused
        in-place allreduce (float64 buffer: the sum of float32 gradients
        loses nothing)."""
        c = _comm()
        if c is None:
            return grads
        from mpi4py import MPI

        dtype = np.result_type(*[g.dtype for g in grads]) if grads else np.float64
        flat = np.concatenate([np.ravel(g).astype(dtype, copy=False) * dtype.type(weight)
                               for g in grads]) if grads else np.zeros(0, dtype)
        c.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        out, offset = [], 0
        for g in grads:
            n = np.size(g)
            out.append(flat[offset:offset + n].reshape(np.shape(g)).astype(g.dtype, copy=False))
            offset += n
        return out

    def average_logs(self, logs, samples):
        """Logs averaged over the ranks, each weighted by the samples it saw."""
        c = _comm()
        if c is None or not logs:
            return logs
        keys = sorted(k for k, v in logs.items() if np.ndim(v) == 0)
        vec = np.array([float(logs[k]) * samples for k in keys] + [float(samples)])
        total = c.allreduce(vec)
        out = dict(logs)
        for i, k in enumerate(keys):
            out[k] = total[i] / total[-1] if total[-1] else logs[k]
        return out

    def allgather(self, obj):
        """[each rank's obj], in rank order (small per-batch results)."""
        c = _comm()
        return [obj] if c is None else c.allgather(obj)

    def any(self, flag: bool) -> bool:
        c = _comm()
        return bool(flag) if c is None else bool(c.allreduce(int(bool(flag)), op=_max()))

    def abort(self, exc):
        c = _comm()
        if c is not None and size() > 1:
            sys.stderr.write(f"rnnfast rank {rank()}: {type(exc).__name__}: {exc}; aborting all "
                             f"ranks\n")
            sys.stderr.flush()
            c.Abort(1)


class _SharedPermutation:
    def permutation(self, n):
        from . import _rng

        c = _comm()
        order = _rng.global_rng().permutation(n) if is_main() else None
        return order if c is None else c.bcast(order, root=0)


def _max():
    from mpi4py import MPI

    return MPI.MAX


def set_distribution(value):
    """Makes `value` (a DataParallel, or None) the distribution fit uses.
    Joins the MPI job first when started by an MPI launcher."""
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(f"rnnfast supports DataParallel distributions only, got "
                         f"{type(value).__name__}")
    initialize()
    _state["distribution"] = value


def distribution():
    """The distribution in force (None: one process, no distribution)."""
    return _state["distribution"]


def active():
    """The distribution when it spans more than one rank, else None."""
    d = _state["distribution"]
    return d if d is not None and size() > 1 else None


__all__ = ["DataParallel", "DeviceMesh", "distribution", "initialize", "is_main", "list_devices",
           "rank", "set_distribution", "size"]
