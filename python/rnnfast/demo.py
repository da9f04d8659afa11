"""The built-in demo: forecasting the classic synthetic time series.

10,000 series of 50 steps (sum of two sines with random frequencies and
phases, plus noise), predict step 51; 7,000/2,000/1,000 split. A two-layer
recurrent network (default LSTM(20) -> LSTM(20) -> Dense(1)) is trained with
Adam on mean squared error, and its test MSE is printed next to the naive
"last value" baseline.

The training loop here calls the kernels of rnnfast._core directly (forward,
backward, a NumPy Dense head and Adam), so it also shows how the kernel API
is used.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import _core

KERNELS = {"lstm": (_core.LSTMKernel, 4), "gru": (_core.GRUKernel, 3),
           "simple_rnn": (_core.SimpleRNNKernel, 1)}


def generate_time_series(batch_size: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """[batch, n_steps, 1] float32: two sines with random frequencies and phases, plus noise."""
    freq1, freq2, offsets1, offsets2 = rng.random((4, batch_size, 1))
    t = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((t - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((t - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.random((batch_size, n_steps)) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


def glorot_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def orthogonal(rng, rows, cols):
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return (q if rows >= cols else q.T)[:rows, :cols].astype(np.float32)


class RecurrentLayer:
    """One recurrent layer's weights (Keras layout and initializers) and kernel."""

    def __init__(self, cell, input_size, units, rng):
        kernel_cls, gates = KERNELS[cell]
        self.cell, self.units = cell, units
        self.kernel_obj = kernel_cls(units)
        self.kernel = glorot_uniform(rng, input_size, gates * units)
        self.recurrent_kernel = np.concatenate(
            [orthogonal(rng, units, units) for _ in range(gates)], axis=1)
        self.bias = np.zeros((2, 3 * units) if cell == "gru" else gates * units, np.float32)
        if cell == "lstm":
            self.bias[units:2 * units] = 1.0  # Keras's unit_forget_bias

    @property
    def params(self):
        return [self.kernel, self.recurrent_kernel, self.bias]

    def forward(self, x, training):
        return self.kernel_obj.forward(x, self.kernel, self.recurrent_kernel, self.bias,
                                       training=training)

    def backward(self, doutputs=None, dlast=None):
        if self.cell == "lstm" and dlast is not None:
            dlast = (dlast, None)
        dx, _, dk, dr, db = self.kernel_obj.backward(self.kernel, self.recurrent_kernel,
                                                     doutputs=doutputs, dfinal_state=dlast)
        return dx, [dk, dr, db]


class Adam:
    """Keras's Adam (learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7)."""

    def __init__(self, params, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.params, self.lr, self.b1, self.b2, self.eps = params, learning_rate, beta_1, beta_2, epsilon
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        alpha = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (1 - self.b1) * (g - m)
            v += (1 - self.b2) * (g * g - v)
            p -= alpha * m / (np.sqrt(v) + self.eps)


class Model:
    """Recurrent(units, return_sequences) -> Recurrent(units) -> Dense(1)."""

    def __init__(self, cell, units, rng):
        self.rnn1 = RecurrentLayer(cell, 1, units, rng)
        self.rnn2 = RecurrentLayer(cell, units, units, rng)
        self.dense_w = glorot_uniform(rng, units, 1)
        self.dense_b = np.zeros(1, np.float32)
        self.params = self.rnn1.params + self.rnn2.params + [self.dense_w, self.dense_b]

    def predict(self, x, batch_size=1024):
        out = []
        for i in range(0, len(x), batch_size):
            y1, _ = self.rnn1.forward(x[i:i + batch_size], training=False)
            _, last = self.rnn2.forward(y1, training=False)
            h = last[0] if isinstance(last, tuple) else last
            out.append(h @ self.dense_w + self.dense_b)
        return np.concatenate(out)

    def train_step(self, x, y):
        """One Adam-ready gradient of the batch's mean squared error; returns (loss, grads)."""
        y1, _ = self.rnn1.forward(x, training=True)
        _, last = self.rnn2.forward(y1, training=True)
        h = last[0] if isinstance(last, tuple) else last
        pred = h @ self.dense_w + self.dense_b
        err = pred - y
        loss = float(np.mean(err ** 2))
        dpred = (2.0 / err.size) * err
        dh = dpred @ self.dense_w.T
        dy1, g2 = self.rnn2.backward(dlast=dh)
        _, g1 = self.rnn1.backward(doutputs=dy1)
        return loss, g1 + g2 + [h.T @ dpred, dpred.sum(axis=0)]


def progress(epoch, epochs, done, total, loss, start, out):
    width = 30
    filled = int(width * done / total)
    elapsed = time.perf_counter() - start
    eta = elapsed / max(done, 1) * (total - done)
    bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
    tail = f"{elapsed:.1f}s" if done == total else f"ETA: {eta:.1f}s"
    out.write("\r" if out.isatty() else "")
    out.write(f"Epoch {epoch}/{epochs} {done}/{total} [{bar}] - {tail} - loss: {loss:.4f}")
    out.flush()


def run(cell="lstm", epochs=5, units=20, batch_size=32, seed=42, out=sys.stdout):
    rng = np.random.default_rng(seed)
    series = generate_time_series(10000, 51, rng)
    x_train, y_train = series[:7000, :50], series[:7000, -1]
    x_valid, y_valid = series[7000:9000, :50], series[7000:9000, -1]
    x_test, y_test = series[9000:, :50], series[9000:, -1]
    model = Model(cell, units, rng)
    opt = Adam(model.params)
    steps = int(np.ceil(len(x_train) / batch_size))
    epoch_times = []
    interactive = getattr(out, "isatty", lambda: False)()
    out.write(f"rnnfast demo: 2-layer {cell}({units}) on the two-sine series, "
              f"{len(x_train)} train / {len(x_valid)} valid / {len(x_test)} test, "
              f"batch {batch_size}, {epochs} epochs\n")
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        start = time.perf_counter()
        total = 0.0
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss, grads = model.train_step(x_train[idx], y_train[idx])
            opt.step(grads)
            total += loss * len(idx)
            # A live bar on terminals; one line per epoch in logs.
            if (interactive and i % 20 == 0) or i == steps - 1:
                progress(epoch, epochs, i + 1, steps, total / ((i * batch_size) + len(idx)), start, out)
        epoch_times.append(time.perf_counter() - start)
        val = float(np.mean((model.predict(x_valid) - y_valid) ** 2))
        out.write(f" - val_loss: {val:.4f}\n")
    results = {
        "naive_mse": float(np.mean((x_test[:, -1] - y_test) ** 2)),
        "test_mse": float(np.mean((model.predict(x_test) - y_test) ** 2)),
        "seconds_per_epoch": float(np.median(epoch_times)),
    }
    out.write("\n| model | test MSE |\n|---|---|\n")
    out.write(f"| naive last value | {results['naive_mse']:.4f} |\n")
    out.write(f"| {cell}({units}) x2 + Dense(1) | {results['test_mse']:.4f} |\n")
    out.write(f"\nseconds per epoch: {results['seconds_per_epoch']:.2f} "
              f"({steps} steps, {1e3 * results['seconds_per_epoch'] / steps:.2f} ms per step)\n")
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="rnnfast demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=sorted(KERNELS), default="lstm")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--units", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.units < 1 or args.batch_size < 1:
        p.error("--epochs, --units and --batch-size must be positive")
    run(args.cell, args.epochs, args.units, args.batch_size, args.seed)
    return 0
