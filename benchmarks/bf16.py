"""Mixed precision: rnnfast float32 vs rnnfast mixed_bfloat16 vs PyTorch CPU
bf16 autocast, in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bf16.py
        [--workloads W3 W4] [--cells LSTM GRU] [--rounds 3] [--threads 2]
        [--torch-fp32] [--demo-epochs 20] [--json out.json]

The workloads and models are benchmarks/compare.py's (W3: batch 64, T=100,
input 128, RNN(256) -> Dense(10); W4: batch 128, T=50, input 512,
RNN(1024) -> Dense(10); MSE, Adam). Columns, each the median over rounds of
a median over repeats, every (framework, case) in its own process, the
frameworks alternating within a round:
  rnnfast fp32   train_on_batch / predict_on_batch, float32 policy
  rnnfast bf16   the same with keras.mixed_precision.set_global_policy("mixed_bfloat16")
  rnnfast bf16-vnni  (where the CPU has AMX) the same with RNNFAST_AMX=0: every bf16 GEMM
                 on VDPBF16PS instead of AMX tiles
  torch bf16     a plain PyTorch step (nn.LSTM/nn.GRU, Adam) with the forward and loss under
                 torch.autocast("cpu", dtype=torch.bfloat16) (backward and Adam
                 outside, as PyTorch's AMP recipe has them)
  torch fp32     (with --torch-fp32) the same step without autocast
and the speed-ups of rnnfast bf16 over rnnfast fp32 and over torch bf16.
Which path rnnfast's mixed layers ran ("amx_bf16", "avx512_bf16", or "float32"
where the CPU lacks AVX512-BF16) is printed with the table.

It first prints the GEMM GFLOP/s of the machine (1024^3): float32, and the bf16
GEMM with AMX and with VDPBF16PS only where they run.

--demo-epochs N also trains the demo's forecaster (two LSTM(20) layers, the
two-sine series, 7000 training series, batch 32) for N epochs with each
policy and prints the final training and validation losses (issue: within 2%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the workloads, models and timing of compare.py)

REPEATS = {"W1": 30, "W2": 20, "W3": 8, "W4": 3}
COLUMNS = ("rnnfast-fp32", "rnnfast-bf16", "rnnfast-bf16-vnni", "torch-bf16", "torch-fp32")


def run_rnnfast(w, cell, policy, repeats, threads):
    import rnnfast

    rnnfast.set_num_threads(threads)
    rnnfast.mixed_precision.set_global_policy(policy)
    model = compare.keras_like_model(rnnfast, w, cell)
    x, y = compare.data(w)
    train = compare.timed(lambda: model.train_on_batch(x, y), repeats, 1)
    infer = compare.timed(lambda: model.predict_on_batch(x), repeats, 1)
    return {"train": train, "infer": infer, "path": rnnfast.mixed_precision.bf16_status()["path"]}


def run_torch(w, cell, autocast, repeats, threads):
    import contextlib

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = compare.torch_rnn_net(torch, w, cell)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_np, y_np = compare.data(w)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def ctx():
        return (torch.autocast("cpu", dtype=torch.bfloat16) if autocast
                else contextlib.nullcontext())

    def step():
        opt.zero_grad()
        with ctx():
            loss = torch.nn.functional.mse_loss(net(x).float(), y)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad(), ctx():
            net(x)

    return {"train": compare.timed(step, repeats, 1), "infer": compare.timed(infer, repeats, 1)}


def demo(policy, epochs):
    import numpy as np

    import rnnfast as keras
    from rnnfast.demo import generate_time_series

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(42)
    series = generate_time_series(10000, 51, np.random.default_rng(42))
    model = keras.models.Sequential([keras.layers.LSTM(20, return_sequences=True,
                                                       input_shape=[None, 1]),
                                     keras.layers.LSTM(20), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    h = model.fit(series[:7000, :50], series[:7000, -1], epochs=epochs, batch_size=32, verbose=0,
                  validation_data=(series[7000:9000, :50], series[7000:9000, -1]))
    return {"loss": h.history["loss"], "val_loss": h.history["val_loss"],
            "path": keras.mixed_precision.bf16_status()["path"]}


def ceiling(threads):
    """GEMM GFLOP/s of this machine (1024^3, `threads` threads): float32, and
    the bf16 GEMM with AMX and with VDPBF16PS only, where they run."""
    import rnnfast
    from rnnfast import _core

    res = {"fp32": _core.gemm_gflops(1024, 1024, 1024, threads=threads, repeats=5)}
    status = rnnfast.mixed_precision.bf16_status()
    if status["enabled"]:  # not with RNNFAST_BF16=0
        for name, amx in (("bf16-amx", True), ("bf16-vnni", False)):
            if amx and not status.get("amx_supported"):
                continue
            rnnfast.mixed_precision.set_amx_enabled(amx)
            res[name] = _core.gemm_gflops(1024, 1024, 1024, threads=threads, repeats=5, bf16=True)
    return res


def child(args):
    if args.child == "ceiling":
        res = ceiling(args.threads)
    elif args.child == "demo":
        res = demo(args.policy, args.epochs)
    elif args.child.startswith("rnnfast"):
        res = run_rnnfast(args.workload, args.cell, args.policy, args.repeats, args.threads)
    else:
        res = run_torch(args.workload, args.cell, args.child == "torch-bf16", args.repeats,
                        args.threads)
    print(json.dumps(res))


def spawn(argv, env=None):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], capture_output=True,
                         text=True, env=None if env is None else dict(os.environ, **env))
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="+", default=["W3", "W4"], choices=list(REPEATS))
    p.add_argument("--cells", nargs="+", default=["LSTM", "GRU"], choices=list(compare.CELLS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=0, help="per process (default: per workload)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--torch-fp32", action="store_true", help="also time PyTorch without autocast")
    p.add_argument("--demo-epochs", type=int, default=0)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--cell", help=argparse.SUPPRESS)
    p.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=20, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    columns = [c for c in COLUMNS if not (args.no_torch and c.startswith("torch"))
               and (c != "torch-fp32" or args.torch_fp32)]
    import rnnfast

    if not rnnfast.mixed_precision.bf16_status().get("amx_supported"):
        columns.remove("rnnfast-bf16-vnni")
    if not args.no_torch and not compare.available("torch"):
        columns = [c for c in columns if not c.startswith("torch")]
        print("(PyTorch is not installed: its columns are left out)")
    raw = {"ceiling": spawn(["--child", "ceiling", "--threads", str(args.threads)])}
    print("GEMM GFLOP/s (1024^3, " + str(args.threads) + " threads): " +
          ", ".join(f"{k} {v:.0f}" for k, v in raw["ceiling"].items()), flush=True)
    for w in args.workloads:
        for cell in args.cells:
            repeats = args.repeats or REPEATS[w]
            runs = {c: [] for c in columns}
            for r in range(args.rounds):
                order = columns if r % 2 == 0 else columns[::-1]
                for c in order:
                    argv = ["--child", c, "--workload", w, "--cell", cell, "--repeats",
                            str(repeats), "--threads", str(args.threads), "--policy",
                            "mixed_bfloat16" if c.startswith("rnnfast-bf16") else "float32"]
                    runs[c].append(spawn(argv, {"RNNFAST_AMX": "0"} if c.endswith("vnni")
                                         else None))
            raw[f"{w}-{cell}"] = runs
            med = {c: {k: 1e3 * statistics.median(x[k] for x in runs[c]) for k in ("train", "infer")}
                   for c in columns}
            path = runs["rnnfast-bf16"][0]["path"]
            line = [f"{w} {cell:4s}"] + [f"{c} {med[c]['train']:8.1f}" for c in columns]
            print(" | ".join(line) + " ms/train step")
            sp = med["rnnfast-fp32"]["train"] / med["rnnfast-bf16"]["train"]
            msg = f"    rnnfast bf16 ({path}) vs fp32: train {sp:.2f}x, inference " \
                  f"{med['rnnfast-fp32']['infer'] / med['rnnfast-bf16']['infer']:.2f}x"
            if "torch-bf16" in med:
                msg += (f"; vs torch bf16 autocast: train "
                        f"{med['torch-bf16']['train'] / med['rnnfast-bf16']['train']:.2f}x, "
                        f"inference {med['torch-bf16']['infer'] / med['rnnfast-bf16']['infer']:.2f}x")
            if "rnnfast-bf16-vnni" in med:
                v = med["rnnfast-bf16-vnni"]
                msg += (f"; AMX vs VDPBF16PS only: train {v['train'] / med['rnnfast-bf16']['train']:.2f}x, "
                        f"inference {v['infer'] / med['rnnfast-bf16']['infer']:.2f}x")
            print(msg)
            print("    inference ms: " + ", ".join(f"{c} {med[c]['infer']:.1f}" for c in columns),
                  flush=True)
    if args.demo_epochs:
        res = {pol: spawn(["--child", "demo", "--policy", pol, "--epochs", str(args.demo_epochs)])
               for pol in ("float32", "mixed_bfloat16")}
        raw["demo"] = res
        a, b = res["float32"], res["mixed_bfloat16"]
        print(f"demo LSTM(20) x2, {args.demo_epochs} epochs: final loss float32 {a['loss'][-1]:.6f}, "
              f"mixed_bfloat16 ({b['path']}) {b['loss'][-1]:.6f} "
              f"({100 * (b['loss'][-1] / a['loss'][-1] - 1):+.2f}%); val_loss "
              f"{a['val_loss'][-1]:.6f} vs {b['val_loss'][-1]:.6f} "
              f"({100 * (b['val_loss'][-1] / a['val_loss'][-1] - 1):+.2f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
