"""Data-parallel scaling of rnnfast.distribution, measured and modelled.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py

Measures W2 and W3 (compare.py's workloads, LSTM) training steps at a fixed
global batch with 1 rank (all cores) and 2 ranks (mpiexec -n 2, the cores
split), reporting the step time and the time spent in the gradient allreduce
(blocking: no overlap yet). Then models 2-64 machines from the measured
compute time per sample and the gradient bytes per step: a ring allreduce
costs 2(n-1)/n * bytes / bandwidth + 2(n-1) * latency, on 10 Gb/s (latency
20 us) and 100 Gb/s (5 us) networks, and a step is compute + allreduce
(no overlap) or max(compute, allreduce) (perfect overlap). It prints the
predicted efficiency at the workload's global batch and the global batch
that 90% efficiency needs without overlap.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {"W2": dict(batch=64, time=100, input=32, units=64, out=1),
             "W3": dict(batch=64, time=100, input=128, units=256, out=10)}
NETWORKS = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 5e-6)}


def child(workload, repeats=20, warmup=3):
    import numpy as np

    import rnnfast as keras
    from rnnfast import distribution

    distribution.set_distribution(distribution.DataParallel())
    spec = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"], spec["time"], spec["input"])).astype("float32")
    y = rng.standard_normal((spec["batch"], spec["out"])).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((spec["time"], spec["input"])),
                              keras.layers.LSTM(spec["units"]), keras.layers.Dense(spec["out"])])
    model.compile(loss="mse", optimizer="adam")
    spent = [0.0]
    dist = distribution.distribution()
    inner = dist.allreduce_gradients

    def timed_allreduce(grads, weight):
        t = time.perf_counter()
        out = inner(grads, weight)
        spent[0] += time.perf_counter() - t
        return out

    dist.allreduce_gradients = timed_allreduce
    for _ in range(warmup):
        model.train_on_batch(x, y)
    steps, reduces = [], []
    for _ in range(repeats):
        spent[0] = 0.0
        t = time.perf_counter()
        model.train_on_batch(x, y)
        steps.append(time.perf_counter() - t)
        reduces.append(spent[0])
    grad_bytes = sum(w.size for w in model.get_weights()) * 4
    if distribution.is_main():
        print(json.dumps({"step": statistics.median(steps), "allreduce": statistics.median(reduces),
                          "grad_bytes": grad_bytes, "ranks": distribution.size(),
                          "threads": keras.get_num_threads()}))


def run(workload, ranks):
    cmd = [sys.executable, __file__, "--child", workload]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ring_allreduce(n, nbytes, bandwidth, latency):
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def main():
    if "--child" in sys.argv:
        return child(sys.argv[sys.argv.index("--child") + 1])
    print("| workload | ranks x threads | step ms | allreduce ms | share of step | speed-up |")
    print("|---|---|---|---|---|---|")
    measured = {}
    for w in WORKLOADS:
        one = run(w, 1)
        two = run(w, 2)
        measured[w] = one
        for r in (one, two):
            print(f"| {w} | {r['ranks']} x {r['threads']} | {r['step'] * 1e3:.2f} | "
                  f"{r['allreduce'] * 1e3:.3f} | {r['allreduce'] / r['step']:.1%} | "
                  f"{one['step'] / r['step']:.2f}x |")
    print()
    print("Model (one machine's measured compute per sample; ring allreduce of the gradients):")
    print("| workload | network | machines | global batch | efficiency, no overlap | "
          "efficiency, overlap | batch for 90% (no overlap) |")
    print("|---|---|---|---|---|---|---|")
    for w, r in measured.items():
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
