"""Batch-1 inference latency: rnnfast against PyTorch (issue 21, item 2).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/latency.py [--rounds 5] [--threads 2]

Cases, for LSTM and GRU with U = 64 and 256:
  sequence  one sequence of T=100 steps, I=32: RNN(U) -> Dense(1), the whole
            sequence per call (rnnfast: predict_on_batch and model(x); PyTorch:
            the module under torch.inference_mode()).
  stream    one new step of a stream, I=32: a stateful RNN(U) -> Dense(1) fed
            [1, 1, 32] per call, its state carried between calls (rnnfast:
            stateful=True and predict_on_batch / model(x) / predict; PyTorch: the module
            called with the previous call's (h, c) / h).
Each (framework, case) runs in its own process, frameworks alternating round
by round; the table gives the medians over rounds of each process's median
latency, and PyTorch / rnnfast (> 1: rnnfast is faster). rnnfast's best of
predict_on_batch and model(x) is the one compared, and both are printed;
Keras's `predict(x, verbose=0)` (the fit-style loop, one batch) gets its own
ratio column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from compare import timed as _timed  # benchmarks/ is on sys.path when run as a script

CELLS = ("LSTM", "GRU")
UNITS = (64, 256)
T, I = 100, 32


def timed(fn, repeats):
    return _timed(fn, repeats, warmup=50)


def data(units):
    import numpy as np

    rng = np.random.default_rng(units)
    return rng.standard_normal((1, T, I)).astype("float32")


def run_rnnfast(cell, units, repeats, threads):
    import rnnfast as keras

    keras.set_num_threads(threads)
    x = data(units)
    Layer = getattr(keras.layers, cell)
    model = keras.Sequential([keras.Input((T, I)), Layer(units), keras.layers.Dense(1)])
    seq_pred = timed(lambda: model.predict_on_batch(x), repeats)
    seq_call = timed(lambda: model(x), repeats)
    seq_fit_api = timed(lambda: model.predict(x, verbose=0), repeats)
    stream = keras.Sequential([keras.Input(batch_shape=(1, None, I)), Layer(units, stateful=True),
                               keras.layers.Dense(1)])
    step = x[:, :1]
    st_pred = timed(lambda: stream.predict_on_batch(step), repeats)
    st_call = timed(lambda: stream(step), repeats)
    st_fit_api = timed(lambda: stream.predict(step, verbose=0), repeats)
    return {"sequence": min(seq_pred, seq_call), "stream": min(st_pred, st_call),
            "sequence_predict_on_batch": seq_pred, "sequence_call": seq_call,
            "stream_predict_on_batch": st_pred, "stream_call": st_call,
            "sequence_predict": seq_fit_api, "stream_predict": st_fit_api}


def run_torch(cell, units, repeats, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[cell](I, units, batch_first=True)
    dense = torch.nn.Linear(units, 1)
    x = torch.from_numpy(data(units))
    step = x[:, :1].contiguous()
    state = [None]

    def sequence():
        y, _ = rnn(x)
        return dense(y[:, -1])

    def stream():
        y, state[0] = rnn(step, state[0])
        return dense(y[:, -1])

    with torch.inference_mode():
        return {"sequence": timed(sequence, repeats), "stream": timed(stream, repeats)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", choices=["rnnfast", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--cell", help=argparse.SUPPRESS)
    p.add_argument("--units", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run = run_rnnfast if args.child == "rnnfast" else run_torch
        print(json.dumps(run(args.cell, args.units, args.repeats, args.threads)))
        return
    results = {}
    for r in range(args.rounds):
        for cell in CELLS:
            for units in UNITS:
                order = ("rnnfast", "torch") if r % 2 == 0 else ("torch", "rnnfast")
                for fw in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", fw, "--cell", cell, "--units",
                         str(units), "--repeats", str(args.repeats), "--threads", str(args.threads)],
                        capture_output=True, text=True, check=True, env=os.environ)
                    results.setdefault((cell, units, fw), []).append(
                        json.loads(out.stdout.strip().splitlines()[-1]))
    med = statistics.median
    print(f"Batch-1 latency, {args.threads} threads, medians of {args.rounds} rounds "
          f"(each the median of {args.repeats} calls), microseconds.")
    print("| cell | U | case | rnnfast predict_on_batch | rnnfast model(x) | rnnfast "
          "predict(verbose=0) | PyTorch | PyTorch / rnnfast | PyTorch / rnnfast predict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in CELLS:
        for units in UNITS:
            ours, theirs = results[(cell, units, "rnnfast")], results[(cell, units, "torch")]
            for case in ("sequence", "stream"):
                a = med(o[case] for o in ours)
                b = med(t[case] for t in theirs)
                pob = med(o[f"{case}_predict_on_batch"] for o in ours)
                call = med(o[f"{case}_call"] for o in ours)
                api = med(o[f"{case}_predict"] for o in ours)
                print(f"| {cell} | {units} | {case} | {pob * 1e6:.0f} | {call * 1e6:.0f} | "
                      f"{api * 1e6:.0f} | {b * 1e6:.0f} | {b / a:.2f}x | {b / api:.2f}x |")


if __name__ == "__main__":
    main()
