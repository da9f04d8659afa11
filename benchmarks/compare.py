"""rnnfast against PyTorch (and Keras when installed) on the reference workloads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py [--quick]
        [--workloads W1 W2 W3 W4 C1 C2 I1] [--cells SimpleRNN LSTM GRU]
        [--keras-python /path/to/venv-with-tensorflow/bin/python]

Recurrent workloads, each for SimpleRNN, LSTM and GRU (--cells):
W1 'tutorial': batch 32, T=50, input 1, RNN(20, return_sequences) -> RNN(20) -> Dense(1)
W2 'small':    batch 64, T=100, input 32, RNN(64) -> Dense(1)
W3 'medium':   batch 64, T=100, input 128, RNN(256) -> Dense(10)
W4 'large':    batch 128, T=50, input 512, RNN(1024) -> Dense(10)
Convolutional workloads (--cells does not apply; their own table):
C1 'WaveNet':  batch 32, T=200, input 1; Conv1D(20, 2, padding='causal', relu) with
               dilation_rate 1, 2, 4, 8, 1, 2, 4, 8 -> Conv1D(10, 1); targets [32, 200, 10]
               (PyTorch: nn.Conv1d after F.pad of dilation*(k-1) steps on the left, ReLU)
C2 'Conv-GRU': batch 32, T=200, input 1; Conv1D(20, 4, strides=2, 'valid') -> GRU(20,
               return_sequences) x 2 -> TimeDistributed(Dense(10)); targets [32, 99, 10]
I1 'CNN':      batch 64, 28x28x1 images; Conv2D(32, 3, relu) -> MaxPooling2D(2) ->
               Conv2D(64, 3, relu) -> GlobalAveragePooling2D -> Dense(10); MSE against
               [64, 10] real-valued targets (MSE rather than cross-entropy, in all three)
float32, 2 threads, MSE, Adam, channels-last inputs. The PyTorch models are the
idiomatic modules (nn.Conv1d/nn.Conv2d/nn.GRU/nn.MaxPool2d/nn.Linear, batch_first),
transposing to channels-first inside forward as a PyTorch user writes it. The
default run is all seven workloads; --workloads picks any of them.

Every (framework, case) runs in its own process, frameworks alternating, and
the medians over rounds are reported: one training step (forward, loss,
backward, Adam update, through each framework's public API: rnnfast's
train_on_batch, a plain PyTorch loop, Keras's train_on_batch), one inference
forward (predict_on_batch; torch.no_grad), and the process's peak RSS.
With more than one round, the training speed-up over PyTorch is also given
round by round (min/median/max of the rounds' own ratios): on a host whose
speed moves in phases, a round's two frameworks run within seconds of each
other.
GFLOP/s count 2 x the multiply-adds of each layer's forward pass, and three
times that for a training step:
    recurrent layer   2*B*T*(I+U)*G*U      (G = 1, 4, 3 for SimpleRNN, LSTM, GRU)
    convolution       2*B*P*K*Cin*Cout     (P output positions, K kernel elements)
    dense             2*B*P*I*O            (P = 1, or the time steps it is applied to)
(bias, activations, pooling and the loss are not counted). Per forward pass:
C1 74.8 MFLOP, C2 32.2 MFLOP, I1 310.5 MFLOP. The ratio columns are rnnfast
against the faster of PyTorch and Keras (> 1: rnnfast is faster). With the JAX
backend Keras's thread count is XLA's own (all cores), not --threads. The
FP32 GEMM ceiling is measured in the same run with NumPy's BLAS and with Eigen
(through rnnfast._core.gemm_gflops), and so is the arithmetic peak of
float32 multiply-adds on registers alone (rnnfast._core.fma_peak_gflops).
Against that peak the table's footer gives, for each W3/W4 case, the speed
that 1.5x PyTorch's time would take counting only the arithmetic no
implementation can skip (the GFLOP/s convention less the first layer's dL/dx);
above 100% of the peak, no float32 implementation reaches 1.5x on this machine.
--quick runs W1, W2, C1, C2 and I1 (of
those selected) once with few repeats (a smoke test for CI; no assertions on
time anywhere).

--device gpu runs the recurrent workloads W1-W4 on a CUDA GPU: rnnfast with
RNNFAST_DEVICE=gpu (rnnfast._cuda), PyTorch with the module and data on
"cuda" (cuDNN), timed with torch.cuda.synchronize(); Keras is left out. The
ceiling is then the GPU's FP32 GEMM speed (torch.matmul on 8192^2 with TF32
off), and each GFLOP/s figure's share of it is printed. rnnfast's train time
on the GPU is a step of fit (weights and optimizer state kept on the device,
CUDA graphs replayed); train_on_batch's is kept in the JSON beside it.
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

# Convolutional workloads: input shape and target shape, without the batch.
CONV_WORKLOADS = {
    "C1": dict(name="WaveNet", batch=32, input=(200, 1), target=(200, 10),
               dilations=(1, 2, 4, 8) * 2, filters=20, kernel=2, out=10),
    "C2": dict(name="Conv-GRU", batch=32, input=(200, 1), target=(99, 10),
               filters=20, kernel=4, stride=2, units=[20, 20], out=10),
    "I1": dict(name="CNN", batch=64, input=(28, 28, 1), target=(10,),
               filters=[32, 64], kernel=3, out=10),
}
ALL_WORKLOADS = list(WORKLOADS) + list(CONV_WORKLOADS)
REPEATS = {"W1": 50, "W2": 30, "W3": 10, "W4": 4, "C1": 30, "C2": 30, "I1": 15}
QUICK = ("W1", "W2", "C1", "C2", "I1")


def conv_macs(w):
    """[(layer, multiply-adds of its forward pass)] for a convolutional workload."""
    spec = CONV_WORKLOADS[w]
    B, out = spec["batch"], spec["out"]
    macs = []
    if w == "C1":
        T, cin = spec["input"]
        for d in spec["dilations"]:
            macs.append((f"conv d={d}", B * T * spec["kernel"] * cin * spec["filters"]))
            cin = spec["filters"]
        macs.append(("conv 1x1", B * T * cin * out))
    elif w == "C2":
        T, cin = spec["input"]
        T = (T - spec["kernel"]) // spec["stride"] + 1
        macs.append(("conv", B * T * spec["kernel"] * cin * spec["filters"]))
        inp = spec["filters"]
        for u in spec["units"]:
            macs.append(("gru", B * T * (inp + u) * 3 * u))
            inp = u
        macs.append(("dense", B * T * inp * out))
    else:
        h, _, cin = spec["input"]
        k = spec["kernel"]
        for i, f in enumerate(spec["filters"]):
            h = h - k + 1
            macs.append((f"conv{i + 1}", B * h * h * k * k * cin * f))
            cin = f
            if i == 0:
                h //= 2  # MaxPooling2D(2)
        macs.append(("dense", B * cin * out))
    return macs


def flops(w, cell, train):
    if w in CONV_WORKLOADS:
        total = 2.0 * sum(m for _, m in conv_macs(w))
        return 3 * total if train else total
    spec = WORKLOADS[w]
    total, inp = 0.0, spec["input"]
    for u in spec["units"]:
        total += 2.0 * spec["batch"] * spec["time"] * (inp + u) * CELLS[cell] * u
        inp = u
    return 3 * total if train else total


def min_flops(w, cell, train):
    """The arithmetic a step cannot skip: flops() less the first recurrent
    layer's dL/dx in training (2*B*T*I*G*U), which the convention counts but no
    framework computes for a model's input. The dense head and the gate math
    are left out too, so this is a lower bound."""
    total = flops(w, cell, train)
    if train and w in WORKLOADS:
        spec = WORKLOADS[w]
        total -= 2.0 * spec["batch"] * spec["time"] * spec["input"] * CELLS[cell] * spec["units"][0]
    return total


def data(w, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    if w in CONV_WORKLOADS:
        spec = CONV_WORKLOADS[w]
        x = rng.standard_normal((spec["batch"],) + spec["input"]).astype("float32")
        y = rng.standard_normal((spec["batch"],) + spec["target"]).astype("float32")
        return x, y
    spec = WORKLOADS[w]
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
    if w in CONV_WORKLOADS:
        return keras_like_conv_model(K, w)
    spec = WORKLOADS[w]
    Cell = getattr(K.layers, cell)
    layers = [K.Input(shape=(spec["time"], spec["input"]))]
    for i, u in enumerate(spec["units"]):
        layers.append(Cell(u, return_sequences=i < len(spec["units"]) - 1))
    layers.append(K.layers.Dense(spec["out"]))
    model = K.Sequential(layers)
    model.compile(loss="mse", optimizer="adam")
    return model


def keras_like_conv_model(K, w):
    spec, L = CONV_WORKLOADS[w], K.layers
    layers = [K.Input(shape=spec["input"])]
    if w == "C1":
        for rate in spec["dilations"]:
            layers.append(L.Conv1D(spec["filters"], spec["kernel"], padding="causal",
                                   activation="relu", dilation_rate=rate))
        layers.append(L.Conv1D(spec["out"], 1))
    elif w == "C2":
        layers.append(L.Conv1D(spec["filters"], spec["kernel"], strides=spec["stride"],
                               padding="valid"))
        layers += [L.GRU(u, return_sequences=True) for u in spec["units"]]
        layers.append(L.TimeDistributed(L.Dense(spec["out"])))
    else:
        f1, f2 = spec["filters"]
        layers += [L.Conv2D(f1, spec["kernel"], activation="relu"), L.MaxPooling2D(),
                   L.Conv2D(f2, spec["kernel"], activation="relu"),
                   L.GlobalAveragePooling2D(), L.Dense(spec["out"])]
    model = K.Sequential(layers)
    model.compile(loss="mse", optimizer="adam")
    return model


def torch_conv_net(torch, w):
    """The PyTorch model of a convolutional workload, as a PyTorch user writes it."""
    nn, F = torch.nn, torch.nn.functional
    spec = CONV_WORKLOADS[w]

    class WaveNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [spec["input"][-1]] + [spec["filters"]] * len(spec["dilations"])
            self.convs = nn.ModuleList(nn.Conv1d(a, b, spec["kernel"], dilation=d)
                                       for a, b, d in zip(chans, chans[1:], spec["dilations"]))
            self.out = nn.Conv1d(spec["filters"], spec["out"], 1)

        def forward(self, x):
            x = x.transpose(1, 2)  # [B, T, C] -> [B, C, T]
            for conv in self.convs:
                x = F.relu(conv(F.pad(x, (conv.dilation[0] * (conv.kernel_size[0] - 1), 0))))
            return self.out(x).transpose(1, 2)

    class ConvGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(spec["input"][-1], spec["filters"], spec["kernel"],
                                  stride=spec["stride"])
            sizes = [spec["filters"]] + spec["units"]
            self.grus = nn.ModuleList(nn.GRU(a, b, batch_first=True)
                                      for a, b in zip(sizes, sizes[1:]))
            self.dense = nn.Linear(sizes[-1], spec["out"])

        def forward(self, x):
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
            for gru in self.grus:
                x, _ = gru(x)
            return self.dense(x)

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            f1, f2 = spec["filters"]
            self.conv1 = nn.Conv2d(spec["input"][-1], f1, spec["kernel"])
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(f1, f2, spec["kernel"])
            self.dense = nn.Linear(f2, spec["out"])

        def forward(self, x):
            x = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
            x = self.pool(F.relu(self.conv1(x)))
            x = F.relu(self.conv2(x))
            return self.dense(x.mean(dim=(2, 3)))

    return {"C1": WaveNet, "C2": ConvGRU, "I1": CNN}[w]()


def run_rnnfast(w, cell, repeats, warmup, threads, device="cpu"):
    if device == "gpu":
        os.environ["RNNFAST_DEVICE"] = "gpu"
    import rnnfast

    rnnfast.set_num_threads(threads)
    model = keras_like_model(rnnfast, w, cell)
    x, y = data(w)
    train = timed(lambda: model.train_on_batch(x, y), repeats, warmup)
    infer = timed(lambda: model.predict_on_batch(x), repeats, warmup)
    out = {"train": train, "infer": infer, "rss": peak_rss_mb()}
    if device == "gpu":
        # fit keeps the recurrent weights and optimizer state on the device and
        # replays CUDA graphs; train_on_batch copies the weights each call. A
        # step of fit over `repeats` copies of the batch, median of 3 fits.
        import numpy as np

        xs, ys = np.concatenate([x] * repeats), np.concatenate([y] * repeats)

        def fit():
            model.fit(xs, ys, batch_size=len(x), epochs=1, shuffle=False, verbose=0)

        out["train_on_batch"] = train
        out["train"] = timed(fit, 3, 1) / repeats
    return out


def run_keras(w, cell, repeats, warmup, threads, device="cpu"):
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


def run_torch(w, cell, repeats, warmup, threads, device="cpu"):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if w in CONV_WORKLOADS:
        return run_torch_net(torch, torch_conv_net(torch, w), w, repeats, warmup)
    return run_torch_net(torch, torch_rnn_net(torch, w, cell), w, repeats, warmup, device)


def torch_rnn_net(torch, w, cell):
    """The idiomatic PyTorch model of a recurrent workload (also benchmarks/bf16.py's)."""
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

    return Net()


def run_torch_net(torch, net, w, repeats, warmup, device="cpu"):
    dev = "cuda" if device == "gpu" else "cpu"
    net = net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_np, y_np = data(w)
    x, y = torch.from_numpy(x_np).to(dev), torch.from_numpy(y_np).to(dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        sync()

    def infer():
        with torch.no_grad():
            net(x)
        sync()

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
            "eigen": _core.gemm_gflops(size, size, size, threads=threads, repeats=repeats),
            "peak": _core.fma_peak_gflops(threads=threads, repeats=repeats)}


def gpu_ceiling(size=8192, repeats=5):
    """The GPU's FP32 GEMM speed (TF32 off: the recurrent kernels compute in FP32)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(size, size, device="cuda")
    b = torch.randn(size, size, device="cuda")

    def mm():
        a @ b
        torch.cuda.synchronize()

    t = timed(mm, repeats, 2)
    return {"numpy": 2.0 * size ** 3 / t / 1e9, "eigen": 2.0 * size ** 3 / t / 1e9}


def child(args):
    if args.child == "ceiling":
        print(json.dumps(gpu_ceiling() if args.device == "gpu"
                         else gemm_ceiling(args.threads, size=args.size)))
        return
    fn = {"rnnfast": run_rnnfast, "torch": run_torch, "keras": run_keras}[args.child]
    res = fn(args.workload, args.cell, args.repeats, args.warmup, args.threads, args.device)
    print(json.dumps(res))


def available(module, python=sys.executable):
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="W1, W2, C1, C2 and I1 (of those selected), one round, few repeats")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=0, help="timed repeats per process (default by size)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workloads", nargs="+", default=ALL_WORKLOADS, choices=ALL_WORKLOADS,
                   help="recurrent W1-W4 and convolutional C1 (WaveNet), C2 (Conv-GRU), I1 (CNN)")
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--frameworks", nargs="+", default=["rnnfast", "torch", "keras"])
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="gpu: W1-W4 on a CUDA GPU against PyTorch on cuda")
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
        args.rounds, args.workloads = 1, [w for w in args.workloads if w in QUICK]
    if args.device == "gpu":
        args.workloads = [w for w in args.workloads if w in WORKLOADS]
        args.frameworks = [f for f in args.frameworks if f != "keras"]
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
            repeats = args.repeats or (REPEATS[w] if not args.quick else 5)
            for cell in (["-"] if w in CONV_WORKLOADS else args.cells):
                for fw in frameworks:
                    cmd = [python[fw], __file__, "--child", fw, "--workload", w, "--cell", cell,
                           "--repeats", str(repeats), "--threads", str(args.threads),
                           "--device", args.device]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        raise SystemExit(f"{fw} {w} {cell} failed")
                    results.setdefault((w, cell, fw), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
        # In a child too: a forked child's peak RSS starts from its parent's
        # (Linux keeps ru_maxrss across fork and exec), so the parent stays small.
        cmd = [sys.executable, __file__, "--child", "ceiling", "--threads", str(args.threads),
               "--size", "1024" if args.quick else "2048", "--device", args.device]
        ceilings.append(json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                                  check=True).stdout.strip().splitlines()[-1]))
    ceiling = {k: statistics.median(c[k] for c in ceilings) for k in ("numpy", "eigen")}
    spread = {k: (min(c[k] for c in ceilings), max(c[k] for c in ceilings)) for k in ceiling}
    # The best round's: a peak, and the bound that makes "unreachable" claims safe.
    peak = max((c["peak"] for c in ceilings if "peak" in c), default=None)

    def med(w, cell, fw, key):
        rs = results.get((w, cell, fw))
        return statistics.median(r[key] for r in rs) if rs else None

    def per_round(w, cell, fw, key):
        return [r[key] for r in results.get((w, cell, fw), [])]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"threads {args.threads}; rounds {args.rounds}; frameworks measured: {frameworks}"
          + (f"; not installed: {missing}" if missing else ""))
    if args.device == "gpu":
        print(f"GPU FP32 GEMM ceiling (torch.matmul, 8192^3, TF32 off, median of {len(ceilings)} "
              f"round(s)): {ceiling['numpy']:.0f} GFLOP/s")
    else:
        print(f"FP32 GEMM ceiling ({args.threads} threads, {'1024' if args.quick else '2048'}^3, median of "
            f"{len(ceilings)} round(s)): NumPy BLAS {ceiling['numpy']:.0f} GFLOP/s "
            f"({spread['numpy'][0]:.0f}-{spread['numpy'][1]:.0f}), Eigen {ceiling['eigen']:.0f} GFLOP/s "
            f"({spread['eigen'][0]:.0f}-{spread['eigen'][1]:.0f})")
        print(f"FP32 multiply-add peak (registers only, {args.threads} threads, best of "
              f"{len(ceilings)} round(s)): {peak:.0f} GFLOP/s")
    rnn_workloads = [w for w in args.workloads if w in WORKLOADS]
    conv_workloads = [w for w in args.workloads if w in CONV_WORKLOADS]
    if rnn_workloads:
        print()
        backends = sorted({r.get("backend") for k, rs in results.items() if k[2] == "keras"
                           for r in rs if r.get("backend")})
        print_rnn_table(args, med, ceiling, rnn_workloads, ", ".join(backends) or None, peak)
        print_paired_rounds(args, per_round, rnn_workloads)
    if conv_workloads:
        print()
        print_conv_table(med, conv_workloads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceiling": ceiling, "ceilings": ceilings, "results": {"|".join(k): v for k, v in results.items()}}, f,
                      indent=1)


def print_rnn_table(args, med, ceiling, workloads, keras_backend=None, peak=None):
    def ms(v):
        return f"{v * 1e3:.2f}" if v else "-"

    print("| case | rnnfast train ms (GFLOP/s) | torch train ms | keras train ms | speed-up vs torch "
          "| vs faster anchor | rnnfast infer ms | torch infer ms | keras infer ms | infer vs faster "
          "| RSS MB rnnfast / torch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    speedups, of_ceiling = [], []
    top = max(ceiling.values())
    for w in workloads:
        for cell in args.cells:
            rt, ri = med(w, cell, "rnnfast", "train"), med(w, cell, "rnnfast", "infer")
            tt, ti = med(w, cell, "torch", "train"), med(w, cell, "torch", "infer")
            kt, ki = med(w, cell, "keras", "train"), med(w, cell, "keras", "infer")
            # On the GPU there is no Keras anchor (its reference times are CPU ones).
            ref = None if args.device == "gpu" else KERAS_REFERENCE_TRAIN[(w, cell)]
            keras_txt = f"{kt * 1e3:.1f}" if kt else (f"({ref:.1f} ref)" if ref else "-")
            k_ms = kt * 1e3 if kt else ref
            anchor = min(x for x in (tt * 1e3 if tt else None, k_ms) if x is not None)
            infer_anchor = min((x for x in (ti, ki) if x), default=None)
            sp_i = f"{infer_anchor / ri:.2f}x" if infer_anchor else "-"
            sp_t = f"{tt / rt:.2f}x" if tt else "-"
            if tt:
                speedups.append(tt / rt)
            if w in ("W3", "W4"):
                of_ceiling.append(f"{w} {cell} {flops(w, cell, True) / rt / 1e9 / top:.0%}")
            rss = f"{med(w, cell, 'rnnfast', 'rss'):.0f} / " + (f"{med(w, cell, 'torch', 'rss'):.0f}" if tt else "-")
            print(f"| {w} {cell} | {rt * 1e3:.2f} ({flops(w, cell, True) / rt / 1e9:.0f}) | "
                  f"{ms(tt)} | {keras_txt} | {sp_t} | {anchor / (rt * 1e3):.2f}x | "
                  f"{ms(ri)} | {ms(ti)} | {ms(ki)} | {sp_i} | {rss} |")
    if keras_backend:
        print(f"\nKeras backend: {keras_backend} (a number in parentheses is the reference time of "
              "shared/workloads.md, Keras on TensorFlow, not measured in this run)")
    if speedups:
        geo = statistics.geometric_mean(speedups)
        print(f"\ngeometric mean of the training speed-ups over PyTorch: {geo:.2f}x")
    if of_ceiling:
        print(f"training GFLOP/s against the higher GEMM ceiling ({top:.0f}): " + ", ".join(of_ceiling))
    if peak:
        print_needed_for_target(args, med, workloads, peak)


def print_needed_for_target(args, med, workloads, peak, target=1.5):
    """What `target` x PyTorch's time would take, as a share of the multiply-add
    peak, counting only min_flops(): over 100%, no float32 implementation of the
    same arithmetic reaches it on this machine."""
    for mode in ("train", "infer"):
        parts = []
        for w in workloads:
            if w not in ("W3", "W4"):
                continue
            for cell in args.cells:
                tt = med(w, cell, "torch", mode)
                if tt:
                    need = min_flops(w, cell, mode == "train") / (tt / target) / 1e9
                    parts.append(f"{w} {cell} {need / peak:.0%}")
        if parts:
            print(f"{mode}: arithmetic speed {target}x PyTorch would need, of the {peak:.0f} GFLOP/s "
                  f"multiply-add peak (over 100%: unreachable in float32): " + ", ".join(parts))


def print_paired_rounds(args, per_round, workloads):
    """The training speed-up over PyTorch round by round: each round runs both
    frameworks within seconds of each other, so on a host whose speed moves in
    phases a round's ratio is steadier than the ratio of the medians."""
    lines = []
    for w in workloads:
        for cell in args.cells:
            ours, theirs = per_round(w, cell, "rnnfast", "train"), per_round(w, cell, "torch", "train")
            if len(ours) < 2 or len(ours) != len(theirs):
                continue
            r = sorted(t / o for o, t in zip(ours, theirs))
            lines.append(f"{w} {cell} {r[0]:.2f}/{statistics.median(r):.2f}/{r[-1]:.2f}x")
    if lines:
        print("training speed-up over PyTorch within each round (min/median/max): " +
              ", ".join(lines))


def print_conv_table(med, workloads):
    """ms (GFLOP/s) per framework for a training step and an inference forward; the ratios
    are the faster of PyTorch and Keras over rnnfast (> 1: rnnfast is faster)."""
    fws = ("rnnfast", "torch", "keras")

    def cell(t, w, train):
        return f"{t * 1e3:.2f} ({flops(w, '-', train) / t / 1e9:.1f})" if t else "-"

    def ratio(ts):
        anchors = [t for t in ts[1:] if t]
        return f"{min(anchors) / ts[0]:.2f}x" if anchors and ts[0] else "-"

    print("| case | rnnfast train ms (GFLOP/s) | torch train ms (GFLOP/s) | keras train ms (GFLOP/s) "
          "| train vs faster | rnnfast infer ms (GFLOP/s) | torch infer ms (GFLOP/s) "
          "| keras infer ms (GFLOP/s) | infer vs faster "
          "| RSS MB rnnfast / torch / keras |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in workloads:
        tr = [med(w, "-", fw, "train") for fw in fws]
        inf = [med(w, "-", fw, "infer") for fw in fws]
        rss = " / ".join(f"{r:.0f}" if r else "-" for r in (med(w, "-", fw, "rss") for fw in fws))
        print(f"| {w} {CONV_WORKLOADS[w]['name']} | " + " | ".join(cell(t, w, True) for t in tr)
              + f" | {ratio(tr)} | " + " | ".join(cell(t, w, False) for t in inf)
              + f" | {ratio(inf)} | {rss} |")


if __name__ == "__main__":
    main()
