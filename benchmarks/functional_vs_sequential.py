"""Training step time of a functional model against the same Sequential model.

Both run through one engine (models/functional.py); this measures what the
functional API costs on top of a Sequential: one LSTM layer and a Dense head,
built once as ``keras.Sequential([...])`` and once as ``keras.Model(inputs,
outputs)`` with the same weights, trained with ``train_on_batch`` in one
process, alternating the two every round. Prints CSV rows and the median
ratio per workload (functional / Sequential; 1.00 = the same time).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/functional_vs_sequential.py
    python benchmarks/functional_vs_sequential.py --rounds 9 --steps 50 --workloads W1 W2

Workloads (the reference ones, shared/workloads.md, with one LSTM layer):
W1 batch 32, T=50, input 1, units 20; W2 64/100/32/64; W3 64/100/128/256;
W4 128/50/512/1024.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import rnnfast as keras

WORKLOADS = {"W1": (32, 50, 1, 20), "W2": (64, 100, 32, 64), "W3": (64, 100, 128, 256),
             "W4": (128, 50, 512, 1024)}


def build(kind, T, I, U):
    keras.utils.set_random_seed(0)
    lstm, head = keras.layers.LSTM(U), keras.layers.Dense(1)
    if kind == "sequential":
        model = keras.Sequential([keras.Input((T, I)), lstm, head])
    else:
        inp = keras.Input((T, I))
        model = keras.Model(inp, head(lstm(inp)))
    model.compile(loss="mse", optimizer="adam")
    return model


def step_time(model, x, y, steps):
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - t) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3"], choices=sorted(WORKLOADS))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=0, help="steps per timing (default: ~0.5 s)")
    args = p.parse_args(argv)
    print("workload,round,sequential_ms,functional_ms,ratio")
    summary = {}
    for name in args.workloads:
        B, T, I, U = WORKLOADS[name]
        rng = np.random.default_rng(1)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        y = rng.standard_normal((B, 1)).astype(np.float32)
        models = {kind: build(kind, T, I, U) for kind in ("sequential", "functional")}
        models["functional"].set_weights(models["sequential"].get_weights())
        for m in models.values():  # warm up: workspaces, optimizer slots
            step_time(m, x, y, 3)
        steps = args.steps or max(3, int(0.5 / step_time(models["sequential"], x, y, 3)))
        ratios = []
        for r in range(args.rounds):
            order = ("sequential", "functional") if r % 2 == 0 else ("functional", "sequential")
            t = {kind: step_time(models[kind], x, y, steps) for kind in order}
            ratios.append(t["functional"] / t["sequential"])
            print(f"{name},{r},{t['sequential'] * 1e3:.3f},{t['functional'] * 1e3:.3f},"
                  f"{ratios[-1]:.3f}", flush=True)
        summary[name] = (statistics.median(ratios), min(ratios), max(ratios))
    print()
    for name, (med, lo, hi) in summary.items():
        print(f"{name}: functional / Sequential train step = {med:.3f} (median of "
              f"{args.rounds} rounds; range {lo:.3f}-{hi:.3f})")


if __name__ == "__main__":
    main()
