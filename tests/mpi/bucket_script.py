"""Run by tests/test_distribution.py under mpiexec (and once without it): one
model trained in float64 under data-parallel distributions with several
gradient bucket sizes (and the blocking allreduce), saving each run's weights
and how many buckets its last step used.

    bucket_script.py OUT MODE      MODE: sequential, shared, generator or pydataset

"shared" is a functional model with a layer called at two graph steps (its
gradients are complete only after the earlier step's backward), a nested
model, a frozen layer, a weight regularizer and an output without a loss
(its Dense gets no gradient). "generator" and "pydataset" train from a
Python generator and a shuffled PyDataset (a short last batch included)."""

import json
import sys

import numpy as np

import rnnfast as keras
from rnnfast import distribution

out, mode = sys.argv[1], sys.argv[2]
keras.backend.set_floatx("float64")
rng = np.random.default_rng(7)
x = rng.standard_normal((42, 6, 3))
x2 = rng.standard_normal((42, 6, 3))
y = rng.standard_normal((42, 1))
# (bucket_mb, overlap): smaller than any gradient (one bucket each), a few
# gradients per bucket, larger than all of them (one bucket), and blocking.
CONFIGS = [(1e-9, True), (0.0005, True), (64.0, True), (4.0, False)]


def build():
    keras.utils.set_random_seed(0)
    if mode == "shared":
        a, b = keras.Input((6, 3), name="a"), keras.Input((6, 3), name="b")
        frozen = keras.layers.Dense(3, trainable=False)
        shared = keras.layers.LSTM(5)
        ha, hb = shared(frozen(a)), shared(b)
        nested = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh")])
        h = keras.layers.Concatenate()([nested(ha), hb])
        main = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.01), name="main")(h)
        aux = keras.layers.Dense(2, name="aux")(hb)  # no loss: its weights get no gradient
        model = keras.Model([a, b], [main, aux])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=["mse", None])
        return model
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(5, return_sequences=True),
                              keras.layers.GRU(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 5  # 42 samples: four batches of 10 and one of 2

    def __getitem__(self, i):
        return x[10 * i:10 * i + 10], y[10 * i:10 * i + 10]


def batches():
    while True:
        for i in range(0, 40, 8):
            yield x[i:i + 8], y[i:i + 8]


def train(model):
    if mode == "shared":
        return model.fit([x, x2], [y, np.zeros((42, 2))], batch_size=10, epochs=2, verbose=0)
    if mode == "generator":
        return model.fit(batches(), steps_per_epoch=5, epochs=2, verbose=0)
    if mode == "pydataset":
        return model.fit(Batches(), epochs=2, shuffle=True, verbose=0)
    return model.fit(x, y, batch_size=10, epochs=2, shuffle=True, verbose=0)


results = {}
for bucket_mb, overlap in CONFIGS:
    dist = distribution.DataParallel(bucket_mb=bucket_mb, overlap=overlap)
    made = []
    make = dist.gradient_buckets
    dist.gradient_buckets = lambda variables, weight: made.append(make(variables, weight)) or made[-1]
    distribution.set_distribution(dist)
    model = build()
    if distribution.is_main():
        np.savez(f"{out}/weights_initial.npz", *model.get_weights())
    hist = train(model)
    key = f"{bucket_mb}_{overlap}"
    results[key] = {"buckets": len(made[-1].buffers) if made else 0,
                    "trainable": len(model.trainable_weights), "loss": hist.history["loss"]}
    if distribution.is_main():
        np.savez(f"{out}/weights_{key}.npz", *model.get_weights())
if distribution.is_main():
    with open(f"{out}/results.json", "w") as f:
        json.dump(results, f)
