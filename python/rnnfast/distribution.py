"""Data-parallel training across processes on MPI (mpi4py), behind Keras 3's
``keras.distribution`` names.

    import rnnfast as keras
    keras.distribution.initialize()                       # no-op in one process
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model.fit(x, y, batch_size=64, ...)                   # under: mpiexec -n 4 python train.py

Every rank runs the same program. Under a data-parallel distribution
``fit`` (and ``evaluate``, ``predict``: their logs averaged, their outputs
gathered on every rank) gives each rank a contiguous shard of every global batch
(``batch_size`` stays the global batch, as in Keras; a generator or PyDataset
is read whole on every rank, which keeps its shard of each batch), broadcasts
rank 0's weights at the start, and sums the shards' gradients, each weighted
by its share of the batch, so that the step equals the single-process step on
the whole batch. The gradients go in buckets of ``bucket_mb`` (in-place
NumPy buffers), each allreduced (Iallreduce) as soon as the backward has
completed it, while the backward goes on below. Logs are
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

    def __init__(self, device_mesh=None, devices=None, bucket_mb=2.0, overlap=True):
        """`bucket_mb`: the size of the fused gradient buffers allreduced
        together (Horovod's fusion buffer, PyTorch DDP's bucket_cap_mb).
        `overlap`: start each bucket's allreduce (non-blocking) as soon as the
        backward has completed its gradients; False: one blocking allreduce
        of all gradients after the backward."""
        self.device_mesh = device_mesh or DeviceMesh(devices=devices)
        if not bucket_mb > 0:
            raise ValueError(f"bucket_mb must be positive, got {bucket_mb}")
        self.bucket_mb = float(bucket_mb)
        self.overlap = bool(overlap)

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
        flat = np.empty(sum(np.size(g) for g in grads), dtype)
        offset = 0
        for g in grads:  # scaled straight into the buffer: one pass, as the buckets do
            np.multiply(np.ravel(g), dtype.type(weight), out=flat[offset:offset + np.size(g)])
            offset += np.size(g)
        c.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        out, offset = [], 0
        for g in grads:
            n = np.size(g)
            out.append(flat[offset:offset + n].reshape(np.shape(g)).astype(g.dtype, copy=False))
            offset += n
        return out

    def gradient_buckets(self, variables, weight):
        """A _GradientBuckets that allreduces weight * gradient of each of
        `variables` (the trainable weights) as the backward completes them."""
        return _GradientBuckets(_comm(), variables, weight, int(self.bucket_mb * 2 ** 20))

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


# How often the progress thread lets MPI advance the started allreduces.
_POLL_SECONDS = 2e-4


class _GradientBuckets:
    """Gradients fused into buckets of about `nbytes`, each allreduced in place
    with a non-blocking Iallreduce as soon as it fills, while the backward
    goes on with the layers below (as Horovod and PyTorch DDP do).

    ``ready(variables)`` is the backward's hook (Functional.backward calls it
    after each step with the weights that step completed). Every rank runs the
    same graph, so the weights come in the same order everywhere and the
    ranks form the same buckets and issue the same collectives. ``finish()``
    waits for them all and returns the summed gradients in `variables` order.
    A weight without a gradient (it does not reach the loss) counts as zeros,
    and a regularizer's gradient is added, as ``compute_loss_and_gradients``
    does, so the sum is the single-process gradient.

    MPI moves a non-blocking collective along only inside MPI calls (MPICH's
    own progress thread, MPIR_CVAR_ASYNC_PROGRESS, spins a core). So while
    buckets are in flight a thread calls Testall every _POLL_SECONDS; the
    kernels release the GIL, so it runs during a layer's backward. Without
    MPI_THREAD_SERIALIZED or better, the backward tests between layers only."""

    def __init__(self, comm, variables, weight, nbytes):
        self.comm, self.variables, self.weight, self.nbytes = comm, list(variables), weight, nbytes
        self.wanted = {id(v) for v in self.variables}
        self.done = {}      # id(variable) -> (bucket index, offset)
        self.pending = []   # (variable, gradient) of the bucket being filled
        self.pending_bytes = 0
        self.buffers, self.requests = [], []
        self.lock = self.stop = self.poller = None
        # Where the communication costs the step time: packing and starting the
        # buckets (in the backward's thread) and finish()'s wait (the allreduce
        # not hidden).
        self.pack_seconds = self.wait_seconds = 0.0
        self.bytes_done_in_backward = 0  # of the buckets' bytes, reduced before finish()

    def ready(self, variables):
        for v in variables:
            if id(v) not in self.wanted or id(v) in self.done:
                continue
            self.done[id(v)] = None
            g = v.grad
            if v.regularizer is not None:
                g = (0 if g is None else g) + v.regularizer.gradient(v.value)
            self.pending.append((v, g))
            self.pending_bytes += v.value.nbytes
            if self.pending_bytes >= self.nbytes:
                self._flush()
        if self.requests and self.poller is None:
            from mpi4py import MPI

            MPI.Request.Testall(self.requests)

    def _flush(self, poll=True):
        if not self.pending:
            return
        import time

        from mpi4py import MPI

        t = time.perf_counter()
        dtype = np.result_type(*[v.value.dtype for v, _ in self.pending])
        buf = np.empty(sum(v.value.size for v, _ in self.pending), dtype)
        scale = dtype.type(self.weight)
        offset, b = 0, len(self.buffers)
        for v, g in self.pending:
            n = v.value.size
            part = buf[offset:offset + n]
            if g is None:
                part[...] = 0
            else:
                np.multiply(np.ravel(g), scale, out=part)
            self.done[id(v)] = (b, offset)
            offset += n
        self.buffers.append(buf)
        self.pending, self.pending_bytes = [], 0
        if self.lock is None and poll:
            self._start_poller(MPI)
        if self.lock is None:
            self.requests.append(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
        else:
            with self.lock:
                self.requests.append(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
        self.pack_seconds += time.perf_counter() - t

    def _start_poller(self, MPI):
        if MPI.Query_thread() < MPI.THREAD_SERIALIZED:
            return
        import threading

        self.lock, self.stop = threading.Lock(), threading.Event()

        def poll():
            while not self.stop.wait(_POLL_SECONDS):
                with self.lock:  # MPI forbids two threads testing one request at once
                    MPI.Request.Testall(self.requests)

        self.poller = threading.Thread(target=poll, name="rnnfast-allreduce", daemon=True)
        self.poller.start()

    def close(self):
        """Stops the progress thread (finish does; so does a failed step)."""
        if self.poller is not None:
            self.stop.set()
            self.poller.join()
            self.poller = None

    def finish(self):
        import time

        from mpi4py import MPI

        # Weights the backward never reported (none, with a Functional model)
        # join the last bucket, in the same order on every rank.
        self.ready([v for v in self.variables if id(v) not in self.done])
        self.close()
        for buf, request in zip(self.buffers, self.requests):
            if request.Test():
                self.bytes_done_in_backward += buf.nbytes
        self._flush(poll=False)  # the last bucket: Waitall is next, no thread needed
        t = time.perf_counter()
        MPI.Request.Waitall(self.requests)
        self.wait_seconds = time.perf_counter() - t
        out = []
        for v in self.variables:
            b, offset = self.done[id(v)]
            g = self.buffers[b][offset:offset + v.value.size].reshape(v.value.shape)
            out.append(g.astype(v.value.dtype, copy=False))
        return out


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
