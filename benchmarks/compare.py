"""rnnfast against PyTorch (and Keras when installed) on the reference workloads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py [--quick]
        [--keras-python /path/to/venv-with-tensorflow/bin/python]

W1 'tutorial': batch 32, T=50, input 1, RNN(20, return_sequences) -> RNN(20) -> Dense(1)
W2 'small':    batch 64, T=100, input 32, RNN(64) -> Dense(1)
W3 'medium':   batch 64, T=100, input 128, RNN(256) -> Dense(10)
W4 'large':    batch 128, T=50, input 512, RNN(1024) -> Dense(10)
each for SimpleRNN, LSTM and GRU; float32, 2 threads, MSE, Adam.

Every (framework, case) runs in its own process, frameworks alternating, and
the medians over rounds are reported: one training step (forward, loss,
backward, Adam update, through each framework's public API: rnnfast's
train_on_batch, a plain PyTorch loop, Keras's train_on_batch), one inference
forward, and the process's peak RSS. GFLOP/s count 2*B*T*(I+U)*G*U per
recurrent layer forward and three times that for a training step. The FP32
GEMM ceiling is measured in the same run with NumPy's BLAS and with Eigen
(through rnnfast._core.gemm_gflops). --quick runs W1 and W2 once with few
repeats (a smoke test for CI; no assertions on time anywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "W1": dict(batch=32, time=50, input=1, units=[20, 20], out=1),
    "W2": dict(batch=64, time=100, input=32, units=[64], out=1),
    "W3": dict(batch=64, time=100, input=128, units=[256], out=10),
    "W4": dict(batch=128, time=50, input=512, units=[1024], out=10),
}
CELLS = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
# What users get today (shared/workloads.md, this machine kind, train step / inference ms):
# used for the Keras column when Keras is not installed here.
KERAS_REFERENCE_TRAIN = {
    ("W1", "SimpleRNN"): 6.1, ("W1", "LSTM"): 9.6, ("W1", "GRU"): 11.9,
    ("W2", "SimpleRNN"): 8.2, ("W2", "LSTM"): 20.5, ("W2", "GRU"): 22.3,
    ("W3", "SimpleRNN"): 36.9, ("W3", "LSTM"): 137.0, ("W3", "GRU"): 119.0,
    ("W4", "SimpleRNN"): 252.0, ("W4", "LSTM"): 1308.0, ("W4", "GRU"): 1290.0,
}


def flops(w, cell, train):
    spec = WORKLOADS[w]
    total, inp = 0.0, spec["input"]
    for u in spec["units"]:
        total += 2.0 * spec["batch"] * spec["time"] * (inp + u) * CELLS[cell] * u
        inp = u
    return 3 * total if train else total


def data(w, seed=0):
    import numpy as np

    spec = WORKLOADS[w]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec["batch"], spec["time"], spec["input"])).astype("float32")
    y = rng.standard_normal((spec["batch"], spec["out"])).astype("float32")
    return x, y


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def keras_like_model(K, w, cell):
    spec = WORKLOADS[w]
    Cell = getattr(K.layers, cell)
    layers = [K.Input(shape=(spec["time"], spec["input"]))]
    for i, u in enumerate(spec["units"]):
        layers.append(Cell(u, return_sequences=i < len(spec["units"]) - 1))
    layers.append(K.layers.Dense(spec["out"]))
    model = K.Sequential(layers)
    model.compile(loss="mse", optimizer="adam")
    return model


def run_rnnfast(w, cell, repeats, warmup, threads):
    import rnnfast

    rnnfast.set_num_threads(threads)
    model = keras_like_model(rnnfast, w, cell)
    x, y = data(w)
    train = timed(lambda: model.train_on_batch(x, y), repeats, warmup)
    infer = timed(lambda: model.predict_on_batch(x), repeats, warmup)
    return {"train": train, "infer": infer, "rss": peak_rss_mb()}


def run_keras(w, cell, repeats, warmup, threads):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except ImportError:
        pass
    model = keras_like_model(keras, w, cell)
    x, y = data(w)
    train = timed(lambda: model.train_on_batch(x, y), repeats, warmup)
    infer = timed(lambda: model.predict_on_batch(x), repeats, warmup)
    return {"train": train, "infer": infer, "rss": peak_rss_mb(),
            "backend": keras.backend.backend()}


def run_torch(w, cell, repeats, warmup, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = WORKLOADS[w]
    Cell = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[cell]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [spec["input"]] + spec["units"]
            self.rnns = torch.nn.ModuleList(Cell(a, b, batch_first=True)
                                            for a, b in zip(sizes, sizes[1:]))
            self.dense = torch.nn.Linear(spec["units"][-1], spec["out"])

        def forward(self, x):
            for rnn in self.rnns:
                x, _ = rnn(x)
            return self.dense(x[:, -1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_np, y_np = data(w)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net(x)

    return {"train": timed(step, repeats, warmup), "infer": timed(infer, repeats, warmup),
            "rss": peak_rss_mb()}


def gemm_ceiling(threads, size=2048, repeats=5):
    import numpy as np

    import rnnfast
    from rnnfast import _core

    a = np.random.default_rng(0).standard_normal((size, size)).astype("float32")
    b = np.random.default_rng(1).standard_normal((size, size)).astype("float32")
    t = timed(lambda: a @ b, repeats, 1)
    rnnfast.set_num_threads(threads)
    return {"numpy": 2.0 * size ** 3 / t / 1e9,
            "eigen": _core.gemm_gflops(size, size, size, threads=threads, repeats=repeats)}


def child(args):
    if args.child == "ceiling":
        print(json.dumps(gemm_ceiling(args.threads, size=args.size)))
        return
    fn = {"rnnfast": run_rnnfast, "torch": run_torch, "keras": run_keras}[args.child]
    res = fn(args.workload, args.cell, args.repeats, args.warmup, args.threads)
    print(json.dumps(res))


def available(module, python=sys.executable):
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="W1 and W2, one round, few repeats")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=0, help="timed repeats per process (default by size)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--frameworks", nargs="+", default=["rnnfast", "torch", "keras"])
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    p.add_argument("--keras-python", metavar="PYTHON", default=sys.executable,
                   help="interpreter with Keras (and TensorFlow) installed, e.g. a separate venv")
    p.add_argument("--child", choices=["rnnfast", "torch", "keras", "ceiling"], help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=2048, help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--cell", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.rounds, args.workloads = 1, [w for w in args.workloads if w in ("W1", "W2")]
    python = {"rnnfast": sys.executable, "torch": sys.executable, "keras": args.keras_python}
    frameworks = [f for f in args.frameworks if f == "rnnfast" or available(f, python[f])]
    missing = sorted(set(args.frameworks) - set(frameworks))
    results = {}
    # The ceiling is measured after every round and its median reported: the
    # shared hosts these benchmarks run on change speed by up to 1.5x for
    # minutes at a time, so one measurement at the end can land in another phase
    # than most of the table.
    ceilings = []
    for r in range(args.rounds):
        for w in args.workloads:
            repeats = args.repeats or ({"W1": 50, "W2": 30, "W3": 10, "W4": 4}[w] if not args.quick else 5)
            for cell in args.cells:
                for fw in frameworks:
                    cmd = [python[fw], __file__, "--child", fw, "--workload", w, "--cell", cell,
                           "--repeats", str(repeats), "--threads", str(args.threads)]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        raise SystemExit(f"{fw} {w} {cell} failed")
                    results.setdefault((w, cell, fw), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
        # In a child too: a forked child's peak RSS starts from its parent's
        # (Linux keeps ru_maxrss across fork and exec), so the parent stays small.
        cmd = [sys.executable, __file__, "--child", "ceiling", "--threads", str(args.threads),
               "--size", "1024" if args.quick else "2048"]
        ceilings.append(json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                                  check=True).stdout.strip().splitlines()[-1]))
    ceiling = {k: statistics.median(c[k] for c in ceilings) for k in ("numpy", "eigen")}
    spread = {k: (min(c[k] for c in ceilings), max(c[k] for c in ceilings)) for k in ceiling}

    def med(w, cell, fw, key):
        rs = results.get((w, cell, fw))
        return statistics.median(r[key] for r in rs) if rs else None

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads {args.threads}; rounds {args.rounds}; frameworks measured: {frameworks}"
          + (f"; not installed: {missing}" if missing else ""))
    print(f"FP32 GEMM ceiling ({args.threads} threads, {'1024' if args.quick else '2048'}^3, median of "
          f"{len(ceilings)} round(s)): NumPy BLAS {ceiling['numpy']:.0f} GFLOP/s "
          f"({spread['numpy'][0]:.0f}-{spread['numpy'][1]:.0f}), Eigen {ceiling['eigen']:.0f} GFLOP/s "
          f"({spread['eigen'][0]:.0f}-{spread['eigen'][1]:.0f})")
    print()
    print("| case | rnnfast train ms (GFLOP/s) | torch train ms | keras train ms | speed-up vs torch "
          "| vs faster anchor | rnnfast infer ms | torch infer ms | RSS MB rnnfast / torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    speedups, of_ceiling = [], []
    top = max(ceiling.values())
    for w in args.workloads:
        for cell in args.cells:
            rt, ri = med(w, cell, "rnnfast", "train"), med(w, cell, "rnnfast", "infer")
            tt, ti = med(w, cell, "torch", "train"), med(w, cell, "torch", "infer")
            kt = med(w, cell, "keras", "train")
            keras_txt = f"{kt * 1e3:.1f}" if kt else f"({KERAS_REFERENCE_TRAIN[(w, cell)]:.1f} ref)"
            k_ms = kt * 1e3 if kt else KERAS_REFERENCE_TRAIN[(w, cell)]
            anchor = min(x for x in (tt * 1e3 if tt else None, k_ms) if x is not None)
            sp_t = f"{tt / rt:.2f}x" if tt else "-"
            if tt:
                speedups.append(tt / rt)
            if w in ("W3", "W4"):
                of_ceiling.append(f"{w} {cell} {flops(w, cell, True) / rt / 1e9 / top:.0%}")
            rss = f"{med(w, cell, 'rnnfast', 'rss'):.0f} / " + (f"{med(w, cell, 'torch', 'rss'):.0f}" if tt else "-")
            print(f"| {w} {cell} | {rt * 1e3:.2f} ({flops(w, cell, True) / rt / 1e9:.0f}) | "
                  f"{f'{tt * 1e3:.2f}' if tt else '-'} | {keras_txt} | {sp_t} | {anchor / (rt * 1e3):.2f}x | "
                  f"{ri * 1e3:.2f} | {ti * 1e3 if ti else float('nan'):.2f} | {rss} |")
    if speedups:
        geo = statistics.geometric_mean(speedups)
        print(f"\ngeometric mean of the training speed-ups over PyTorch: {geo:.2f}x")
    if of_ceiling:
        print(f"training GFLOP/s against the higher GEMM ceiling ({top:.0f}): " + ", ".join(of_ceiling))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceiling": ceiling, "ceilings": ceilings, "results": {"|".join(k): v for k, v in results.items()}}, f,
                      indent=1)


if __name__ == "__main__":
    main()
