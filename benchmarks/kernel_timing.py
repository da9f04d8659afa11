"""Times one recurrent layer's forward + backward (and inference forward) for
rnnfast's kernels or PyTorch, on one shape; prints a CSV line per cell.

    python benchmarks/kernel_timing.py --framework rnnfast
    python benchmarks/kernel_timing.py --framework torch

Run each framework in its own process (PyTorch's threads slow down when
another process competes for the cores); --alternate does that for both,
several rounds, and prints the medians side by side. FLOPs: forward
2*B*T*(I+U)*G*U, backward twice that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def flops(cell, B, T, I, U, backward):
    f = 2.0 * B * T * (I + U) * GATES[cell] * U
    return f * 3 if backward else f


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_rnnfast(cell, B, T, I, U, threads, repeats):
    import rnnfast
    from rnnfast import _core

    rnnfast.set_num_threads(threads)
    G = GATES[cell]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    k = (rng.standard_normal((I, G * U)) / np.sqrt(I)).astype(np.float32)
    r = (rng.standard_normal((U, G * U)) / np.sqrt(U)).astype(np.float32)
    b = np.zeros((2, G * U) if cell == "gru" else G * U, np.float32)
    kern = {"simple_rnn": _core.SimpleRNNKernel, "lstm": _core.LSTMKernel, "gru": _core.GRUKernel}[cell](U)
    dy = np.ones((B, T, U), np.float32)
    # Preallocated outputs, as a training loop would keep them.
    y = np.empty((B, T, U), np.float32)
    outs = dict(dx_out=np.empty_like(x), dkernel_out=np.empty_like(k),
                drecurrent_kernel_out=np.empty_like(r), dbias_out=np.empty_like(b))

    def train():
        kern.forward(x, k, r, b, training=True, out=y)
        kern.backward(k, r, doutputs=dy, **outs)

    def infer():
        kern.forward(x, k, r, b, training=False, out=y)

    return median_time(train, repeats), median_time(infer, repeats)


def time_torch(cell, B, T, I, U, threads, repeats):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mod = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        I, U, batch_first=True)
    x = torch.randn(B, T, I, requires_grad=True)
    dy = torch.ones(B, T, U)

    def train():
        y, _ = mod(x)
        y.backward(dy)

    def infer():
        with torch.no_grad():
            mod(x)

    return median_time(train, repeats), median_time(infer, repeats)


def run_one(args):
    fn = time_rnnfast if args.framework == "rnnfast" else time_torch
    res = {}
    for cell in args.cells:
        train, infer = fn(cell, args.batch, args.time, args.input, args.units, args.threads, args.repeats)
        res[cell] = (train, infer)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=["rnnfast", "torch"], default="rnnfast")
    p.add_argument("--alternate", type=int, default=0, metavar="ROUNDS",
                   help="run both frameworks in separate processes, alternating, ROUNDS times")
    p.add_argument("--cells", nargs="+", default=list(GATES), choices=list(GATES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=100)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    shape = (args.batch, args.time, args.input, args.units)
    if not args.alternate:
        res = run_one(args)
        if args.json:
            print(json.dumps(res))
            return
        print("framework,cell,B,T,I,U,threads,train_ms,train_gflops,infer_ms,infer_gflops")
        for cell, (tr, inf) in res.items():
            print(f"{args.framework},{cell},{','.join(map(str, shape))},{args.threads},"
                  f"{tr * 1e3:.2f},{flops(cell, *shape, True) / tr / 1e9:.1f},"
                  f"{inf * 1e3:.2f},{flops(cell, *shape, False) / inf / 1e9:.1f}")
        return
    runs = {"rnnfast": [], "torch": []}
    base = [sys.executable, __file__, "--json", "--cells", *args.cells, "--batch", str(args.batch),
            "--time", str(args.time), "--input", str(args.input), "--units", str(args.units),
            "--threads", str(args.threads), "--repeats", str(args.repeats)]
    for _ in range(args.alternate):
        for fw in runs:
            out = subprocess.run(base + ["--framework", fw], capture_output=True, text=True, check=True)
            runs[fw].append(json.loads(out.stdout))
    print(f"B={args.batch} T={args.time} I={args.input} U={args.units} float32, {args.threads} threads, "
          f"medians of {args.alternate} alternating processes x {args.repeats} repeats")
    print("| cell | rnnfast train ms (GFLOP/s) | torch train ms (GFLOP/s) | speed-up | "
          "rnnfast infer ms | torch infer ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for cell in args.cells:
        med = {fw: [statistics.median(r[cell][i] for r in runs[fw]) for i in (0, 1)] for fw in runs}
        (rt, ri), (tt, ti) = med["rnnfast"], med["torch"]
        print(f"| {cell} | {rt * 1e3:.1f} ({flops(cell, *shape, True) / rt / 1e9:.0f}) | "
              f"{tt * 1e3:.1f} ({flops(cell, *shape, True) / tt / 1e9:.0f}) | {tt / rt:.2f}x | "
              f"{ri * 1e3:.1f} | {ti * 1e3:.1f} | {ti / ri:.2f}x |")


if __name__ == "__main__":
    main()
