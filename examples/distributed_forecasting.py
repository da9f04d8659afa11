"""Data-parallel training on MPI: the two-sine forecaster (a 2-layer LSTM)
trained by every rank on its shard of each global batch.

    pip install ".[mpi]"
    mpiexec -n 2 python examples/distributed_forecasting.py      # two processes
    python examples/distributed_forecasting.py                    # one process, same program

Under mpiexec the ranks start from rank 0's weights, sum their shards'
gradients with one allreduce per step, and stop together; rank 0 prints the
progress and the result. `batch_size` is the global batch.
"""

import argparse
import time

import numpy as np

import rnnfast as keras
from rnnfast.demo import generate_time_series


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--series", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64, help="global batch, split over the ranks")
    args = p.parse_args(argv)

    keras.distribution.set_distribution(keras.distribution.DataParallel())
    main_rank = keras.distribution.is_main()
    keras.utils.set_random_seed(42)  # the same data on every rank
    series = generate_time_series(args.series, 51, np.random.default_rng(42))
    n_train = int(0.8 * len(series))
    x_train, y_train = series[:n_train, :50], series[:n_train, 50]
    x_valid, y_valid = series[n_train:, :50], series[n_train:, 50]
    model = keras.Sequential([keras.Input((None, 1)), keras.layers.LSTM(20, return_sequences=True),
                              keras.layers.LSTM(20), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_valid, y_valid), verbose=2 if main_rank else 0)
    if main_rank:
        mse = model.evaluate(x_valid, y_valid, verbose=0)
        print(f"{keras.distribution.size()} rank(s): validation MSE {mse:.4f}, "
              f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
