"""The built-in demo: forecasting the classic synthetic time series.

10,000 series of 50 steps (sum of two sines with random frequencies and
phases, plus noise), predict step 51; 7,000/2,000/1,000 split. A two-layer
recurrent network (default LSTM(20) -> LSTM(20) -> Dense(1)), written as
ordinary Keras code against rnnfast, is trained with Adam on mean squared
error, and its test MSE is printed next to the naive "last value" baseline.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import callbacks

CELLS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}


def generate_time_series(batch_size: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """[batch, n_steps, 1] float32: two sines with random frequencies and phases, plus noise."""
    freq1, freq2, offsets1, offsets2 = rng.random((4, batch_size, 1))
    t = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((t - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((t - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.random((batch_size, n_steps)) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


class EpochTimer(callbacks.Callback):
    """Collects the wall time of each epoch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def run(cell="lstm", epochs=5, units=20, batch_size=32, seed=42, verbose=1, out=None):
    import rnnfast as keras

    out = out or sys.stdout
    keras.utils.set_random_seed(seed)
    series = generate_time_series(10000, 51, np.random.default_rng(seed))
    X_train, y_train = series[:7000, :50], series[:7000, -1]
    X_valid, y_valid = series[7000:9000, :50], series[7000:9000, -1]
    X_test, y_test = series[9000:, :50], series[9000:, -1]

    Cell = getattr(keras.layers, CELLS[cell])
    model = keras.models.Sequential([
        Cell(units, return_sequences=True, input_shape=[None, 1]),
        Cell(units),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer="adam")
    print(f"rnnfast demo: 2-layer {CELLS[cell]}({units}) on the two-sine series, "
          f"{len(X_train)} train / {len(X_valid)} valid / {len(X_test)} test, batch {batch_size}, "
          f"{epochs} epochs", file=out)
    timer = EpochTimer()
    stdout, sys.stdout = sys.stdout, out  # the progress bar writes to sys.stdout
    try:
        model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose,
                  validation_data=(X_valid, y_valid), callbacks=[timer])
    finally:
        sys.stdout = stdout
    results = {
        "naive_mse": float(np.mean((X_test[:, -1] - y_test) ** 2)),
        "test_mse": float(model.evaluate(X_test, y_test, verbose=0)),
        "seconds_per_epoch": float(np.median(timer.times)),
    }
    steps = int(np.ceil(len(X_train) / batch_size))
    print("\n| model | test MSE |\n|---|---|", file=out)
    print(f"| naive last value | {results['naive_mse']:.4f} |", file=out)
    print(f"| {CELLS[cell]}({units}) x2 + Dense(1) | {results['test_mse']:.4f} |", file=out)
    print(f"\nseconds per epoch: {results['seconds_per_epoch']:.2f} ({steps} steps, "
          f"{1e3 * results['seconds_per_epoch'] / steps:.2f} ms per step)", file=out)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="rnnfast demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--units", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.units < 1 or args.batch_size < 1:
        p.error("--epochs, --units and --batch-size must be positive")
    run(args.cell, args.epochs, args.units, args.batch_size, args.seed, args.verbose)
    return 0
