"""Data-parallel scaling of rnnfast.distribution, measured and modelled.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py \
        [--bucket-mb 2] [--mpich-async-progress]

Measures W2 and W3 (compare.py's workloads, LSTM), and W3x2 (W3 with two
LSTM layers), training steps at a fixed global batch with 1 rank (all cores)
and 2 ranks (mpiexec -n 2, the cores split). With 2 ranks each step is run
three ways, alternating (MODES): a blocking allreduce after the backward,
the gradient buckets all started after the backward, and the buckets
started (Iallreduce) as the backward completes them. It reports the step
times, the allreduce time each leaves on the step ("exposed"), the share of
the gradient bytes reduced before the backward ended, and the hidden share.
Then it models 2-64 machines from the measured compute time per sample and
the gradient bytes per step: a ring allreduce costs 2(n-1)/n * bytes /
bandwidth + 2(n-1) * latency, on 10 Gb/s (latency 20 us) and 100 Gb/s (5 us)
networks, and a step is compute + allreduce (no overlap) or max(compute,
allreduce) (perfect overlap). It prints the predicted efficiency at the
workload's global batch and the global batch that 90% efficiency needs
without overlap.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {"W2": dict(batch=64, time=100, input=32, units=[64], out=1),
             "W3": dict(batch=64, time=100, input=128, units=[256], out=10),
             # Not one of compare.py's: W3 with a second LSTM, so that the top LSTM's
             # gradients have a backward below them to overlap with.
             "W3x2": dict(batch=64, time=100, input=128, units=[256, 256], out=10)}
NETWORKS = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 5e-6)}
# How two ranks allreduce, alternating step by step so that all see the same
# machine load: one blocking Allreduce after the backward (overlap=False); the
# buckets, all started after the backward (the same code as the next, without
# the backward's hook); the buckets started as the backward completes them.
MODES = ("blocking", "at end", "overlap")


def child(workload, bucket_mb, repeats=30, warmup=3):
    """Train steps of `workload`; with several ranks, alternately with the
    blocking allreduce and with the overlapped buckets (so that both see the
    same machine load), plus a synchronized allreduce of the gradients' bytes
    alone (after a barrier: the transfer without the ranks' skew)."""
    import numpy as np

    import rnnfast as keras
    from rnnfast import distribution

    dist = distribution.DataParallel(bucket_mb=bucket_mb)
    distribution.set_distribution(dist)
    spec = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"], spec["time"], spec["input"])).astype("float32")
    y = rng.standard_normal((spec["batch"], spec["out"])).astype("float32")
    keras.utils.set_random_seed(0)
    units = spec["units"]
    model = keras.Sequential([keras.Input((spec["time"], spec["input"]))] +
                             [keras.layers.LSTM(u, return_sequences=i < len(units) - 1)
                              for i, u in enumerate(units)] + [keras.layers.Dense(spec["out"])])
    model.compile(loss="mse", optimizer="adam")
    # What the allreduce adds to a step ("exposed"): all of the blocking
    # allreduce (packing included), or packing and starting the buckets plus
    # what finish() still waits for; the least over the ranks, see below.
    exposed, buckets, done = [0.0], [0], [0.0]
    inner, make = dist.allreduce_gradients, dist.gradient_buckets
    mode = ["blocking"]

    def timed_allreduce(grads, weight):
        t = time.perf_counter()
        out = inner(grads, weight)
        exposed[0] += time.perf_counter() - t
        return out

    def timed_buckets(variables, weight):
        b = make(variables, weight)
        finish, ready = b.finish, b.ready
        if mode[0] == "at end":  # the backward's hook does nothing: finish() reports all
            b.ready = lambda variables: None

        def timed_finish():
            b.ready = ready
            out = finish()
            exposed[0] += b.pack_seconds + b.wait_seconds
            buckets[0] = len(b.buffers)
            done[0] = b.bytes_done_in_backward / sum(buf.nbytes for buf in b.buffers)
            return out
        b.finish = timed_finish
        return b

    dist.allreduce_gradients, dist.gradient_buckets = timed_allreduce, timed_buckets
    grad_bytes = sum(w.value.size for w in model.trainable_weights) * 4
    modes = MODES if distribution.size() > 1 else ("overlap",)
    samples = {m: ([], [], []) for m in modes}
    alone = []
    comm = distribution._comm()
    flat = np.ones(grad_bytes // 4, np.float32)
    for i in range(warmup + repeats):
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:  # each follows each
            mode[0] = m
            dist.overlap = m != "blocking"
            exposed[0] = done[0] = 0.0
            t = time.perf_counter()
            model.train_on_batch(x, y)
            step = time.perf_counter() - t
            if comm is not None:
                # The rank that ends its backward last waits for the transfer only;
                # the others also wait for it (the ranks' skew, not the allreduce).
                exposed[0] = min(comm.allgather(exposed[0]))
            if i >= warmup:
                for out, value in zip(samples[m], (step, exposed[0], done[0])):
                    out.append(value)
        if comm is not None:
            from mpi4py import MPI

            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            alone.append(time.perf_counter() - t)
    med = statistics.median
    if distribution.is_main():
        print(json.dumps({m: {"step": med(s), "exposed": med(e), "done_in_backward": med(d)}
                          for m, (s, e, d) in samples.items()} |
                         {"alone": med(alone) if alone else 0.0, "grad_bytes": grad_bytes,
                          "ranks": distribution.size(), "threads": keras.get_num_threads(),
                          "buckets": buckets[0]}))


def run(workload, ranks, bucket_mb=2.0, env=None):
    cmd = [sys.executable, __file__, "--child", workload, str(bucket_mb)]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, **(env or {})))
    return json.loads(out.stdout.strip().splitlines()[-1])


def ring_allreduce(n, nbytes, bandwidth, latency):
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def main():
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        return child(sys.argv[i + 1], float(sys.argv[i + 2]))
    bucket_mb = float(sys.argv[sys.argv.index("--bucket-mb") + 1]) \
        if "--bucket-mb" in sys.argv else 2.0
    # MPICH's own progress thread instead of rnnfast's polling one (it spins a core).
    env = {"MPIR_CVAR_ASYNC_PROGRESS": "1"} if "--mpich-async-progress" in sys.argv else None
    print(f"Medians of 30 steps, buckets of {bucket_mb:g} MB. exposed: the allreduce time a "
          f"step does not hide (packing included), on the rank that waits least (the last to "
          f"arrive: no skew). alone: the same bytes allreduced after a barrier. in backward: "
          f"the share of the gradient bytes reduced before the backward ended. hidden = "
          f"1 - exposed(overlap) / exposed(at end).")
    print("| workload | ranks x threads | buckets | step ms: blocking / at end / overlap | "
          "exposed ms: blocking / at end / overlap | alone ms | in backward | hidden | "
          "speed-up (overlap) |")
    print("|---|---|---|---|---|---|---|---|---|")
    measured = {}
    for w in WORKLOADS:
        one = run(w, 1)
        two = run(w, 2, bucket_mb, env)
        measured[w] = {"step": one["overlap"]["step"], "grad_bytes": one["grad_bytes"]}
        print(f"| {w} | 1 x {one['threads']} | - | {one['overlap']['step'] * 1e3:.2f} | - | - | - "
              f"| - | 1.00x |")
        steps = " / ".join(f"{two[m]['step'] * 1e3:.2f}" for m in MODES)
        waits = " / ".join(f"{two[m]['exposed'] * 1e3:.3f}" for m in MODES)
        hidden = 1 - two["overlap"]["exposed"] / two["at end"]["exposed"]
        print(f"| {w} | 2 x {two['threads']} | {two['buckets']} | {steps} | {waits} | "
              f"{two['alone'] * 1e3:.3f} | {two['overlap']['done_in_backward']:.0%} | "
              f"{hidden:.0%} | {one['overlap']['step'] / two['overlap']['step']:.2f}x |")
    print()
    print("Model (one machine's measured compute per sample; ring allreduce of the gradients):")
    print("| workload | network | machines | global batch | efficiency, no overlap | "
          "efficiency, overlap | batch for 90% (no overlap) |")
    print("|---|---|---|---|---|---|---|")
    for w, r in measured.items():
        if w not in ("W2", "W3"):
            continue
        per_sample = r["step"] / WORKLOADS[w]["batch"]
        for net, (bw, lat) in NETWORKS.items():
            for n in (2, 4, 8, 16, 32, 64):
                batch = WORKLOADS[w]["batch"] * n  # weak scaling: the per-machine batch stays
                compute = per_sample * batch / n
                comm = ring_allreduce(n, r["grad_bytes"], bw, lat)
                eff = compute / (compute + comm)
                eff_overlap = compute / max(compute, comm)
                need = 9 * comm / per_sample * n  # compute = 9 x comm at 90%
                print(f"| {w} | {net} | {n} | {batch} | {eff:.0%} | {eff_overlap:.0%} | "
                      f"{need:.0f} |")


if __name__ == "__main__":
    main()
