"""Run by tests/test_distribution.py under mpiexec (and once without it): a
Keras program that trains a 2-layer LSTM + GRU model in float64 under a
data-parallel distribution and saves the weights, logs and checkpoints."""

import json
import sys

import numpy as np

import rnnfast as keras

out, mode = sys.argv[1], sys.argv[2]
keras.distribution.set_distribution(keras.distribution.DataParallel())
rank = keras.distribution.rank()
keras.backend.set_floatx("float64")
keras.utils.set_random_seed(0)
rng = np.random.default_rng(42)
x = rng.standard_normal((40, 6, 3))
y = rng.standard_normal((40, 1))
model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(5, return_sequences=True),
                          keras.layers.GRU(4), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
callbacks = [keras.callbacks.ModelCheckpoint(f"{out}/ckpt_r{rank}_{{epoch}}.weights.h5",
                                             save_weights_only=True)]
if mode == "raise" and rank == 1:
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("rank 1 fails")
    callbacks.append(Boom())
# Shuffled: rank 0 draws each epoch's order as one process would, and shares it.
hist = model.fit(x, y, batch_size=10, epochs=3, shuffle=True, verbose=0, callbacks=callbacks)
# A resumed fit starts from rank 0's weights and optimizer state: rank 1's are
# spoiled first, which only the broadcast can repair.
if rank == 1:
    for w in model.weights:
        w.value[...] *= 3.0
    for slot in model.optimizer._variables:
        slot[...] += 1.0
hist2 = model.fit(x, y, batch_size=10, epochs=1, shuffle=True, verbose=0)
hist.history["loss"] += hist2.history["loss"]
# Sharded and averaged / gathered; the same on every rank (21 samples: batches of 10,
# 10 and 1, the last one leaving rank 1 without a sample).
scores = model.evaluate(x[:21], y[:21], batch_size=10, verbose=0)
pred = model.predict(x[:21], batch_size=10, verbose=0)
np.savez(f"{out}/eval_r{rank}.npz", scores=np.array(scores), pred=pred)
if rank == 0:
    np.savez(f"{out}/weights.npz", *model.get_weights())
    with open(f"{out}/history.json", "w") as f:
        json.dump(hist.history, f)
