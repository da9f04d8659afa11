"""Makes the interop fixtures in tests/data (used by tests/test_interop.py).

The files were produced, from the repository root, by

    PYTHONPATH=/work/main/python:/tmp/kdeps KERAS_BACKEND=jax /work/venv/bin/python tests/data/make_interop_fixtures.py

where /tmp/kdeps held keras 3.15.1, jax 0.10.2 and h5py 3.16.0, and the
virtual environment torch 2.13.0+cpu and numpy 2.4.6. Any environment with
Keras 3 (any backend), h5py and torch does: rnnfast itself is not used, so
the expected values come from Keras and PyTorch only.

Written (Keras files gzip-compressed to keep them a few KB; the tests unpack
them, and the unpacked bytes are exactly what Keras wrote):

- keras3_stack.keras.gz: a Keras 3 .keras file of a float model: LSTM,
  Bidirectional(GRU), TimeDistributed(Dense), SimpleRNN(relu, go_backwards),
  Dropout, Dense, with random weights (biases included).
- keras3_stack.h5.gz: the same model through Keras 3's legacy HDF5 writer
  (model.save("x.h5")), the format of Keras 2's model.save. Keras 2 itself is
  not installable next to Keras 3, so this is the legacy layout as Keras 3
  writes it.
- keras3_embedding_compiled.keras.gz: Embedding(mask_zero), Bidirectional(LSTM,
  merge_mode="sum"), GRU(reset_after=False, go_backwards), RNN(LSTMCell),
  RepeatVector, Flatten, Activation, Dense; compiled with Adam and trained
  one step, so the file holds compile_config and the optimizer's state.
- keras2_style.h5.gz: an HDF5 file written here with h5py in the layout and
  spelling of tf.keras 2.x's model.save("x.h5") (keras_version 2.12.0,
  time_major/implementation/batch_input_shape in the configs, string dtypes,
  "kernel:0" weight names, a Keras 2 training_config). It is synthesized,
  not produced by Keras 2; its weights and expected predictions come from the
  equivalent Keras 3 model (Masking, GRU, LSTM, Dense).
- keras_expected.npz: inputs x_<name> and Keras's predictions y_<name> for
  stack, embedding_compiled and keras2_style (the .h5 copy of stack shares
  x_stack/y_stack), and the Keras 3 optimizer state count of
  embedding_compiled.
- torch_state_dicts.npz: state dicts of torch.nn.RNN/LSTM/GRU modules, keys
  "<case>/<parameter>", with "<case>/x" (batch-major input), "<case>/y"
  (the module's output with batch_first=True) and "<case>/h_last" (the last
  layer's final hidden state(s), concatenated when bidirectional); "cases"
  is a JSON string describing each case's constructor arguments.
"""

import gzip
import io
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def gz(path, data):
    with open(path, "wb") as f:
        # mtime=0: the same bytes give the same .gz.
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=9) as g:
            g.write(data)


def randomize(model, rng):
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


def keras_fixtures(expected):
    import h5py
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    # -- a float model, as .keras and as legacy .h5 --------------------------------------
    stack = keras.Sequential([
        keras.Input(shape=(5, 3)),
        layers.LSTM(4, return_sequences=True),
        layers.Bidirectional(layers.GRU(3, return_sequences=True)),
        layers.TimeDistributed(layers.Dense(2)),
        layers.SimpleRNN(3, activation="relu", go_backwards=True),
        layers.Dropout(0.25),
        layers.Dense(1),
    ])
    randomize(stack, rng)
    x = rng.standard_normal((4, 5, 3)).astype("float32")
    expected["x_stack"], expected["y_stack"] = x, stack.predict(x, verbose=0)
    for suffix in (".keras", ".h5"):
        tmp = os.path.join(HERE, "_tmp" + suffix)
        stack.save(tmp)
        with open(tmp, "rb") as f:
            gz(os.path.join(HERE, "keras3_stack" + suffix + ".gz"), f.read())
        os.unlink(tmp)

    # -- token inputs, masks, every wrapper, compiled and trained ------------------------
    emb = keras.Sequential([
        keras.Input(shape=(6,), dtype="int32"),
        layers.Embedding(10, 4, mask_zero=True),
        layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="sum"),
        layers.GRU(3, reset_after=False, go_backwards=True, return_sequences=True),
        layers.RNN(layers.LSTMCell(2)),
        layers.RepeatVector(2),
        layers.Flatten(),
        layers.Activation("tanh"),
        layers.Dense(1, activation="sigmoid"),
    ])
    randomize(emb, rng)
    emb.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                metrics=["accuracy"])
    x = rng.integers(1, 10, (5, 6)).astype("int32")
    x[1, 4:] = 0
    x[3, 2:] = 0
    emb.train_on_batch(x, rng.integers(0, 2, (5, 1)).astype("float32"))
    expected["x_embedding_compiled"] = x
    expected["y_embedding_compiled"] = emb.predict(x, verbose=0)
    expected["optimizer_arrays_embedding_compiled"] = np.array(len(emb.optimizer.variables))
    tmp = os.path.join(HERE, "_tmp.keras")
    emb.save(tmp)
    with open(tmp, "rb") as f:
        gz(os.path.join(HERE, "keras3_embedding_compiled.keras.gz"), f.read())
    os.unlink(tmp)

    # -- tf.keras 2.x's legacy .h5, synthesized -----------------------------------------
    k3 = keras.Sequential([keras.Input(shape=(5, 3)), layers.Masking(0.0),
                           layers.GRU(4, return_sequences=True), layers.LSTM(3),
                           layers.Dense(2)])
    randomize(k3, rng)
    x = rng.standard_normal((4, 5, 3)).astype("float32")
    x[1, 3:] = 0.0
    expected["x_keras2_style"], expected["y_keras2_style"] = x, k3.predict(x, verbose=0)

    def init(class_name, **config):
        return {"class_name": class_name, "config": config}

    def recurrent(name, units, return_sequences, **extra):
        return {"name": name, "trainable": True, "dtype": "float32",
                "return_sequences": return_sequences, "return_state": False,
                "go_backwards": False, "stateful": False, "unroll": False, "time_major": False,
                "units": units, "activation": "tanh", "recurrent_activation": "sigmoid",
                "use_bias": True, "kernel_initializer": init("GlorotUniform", seed=None),
                "recurrent_initializer": init("Orthogonal", gain=1.0, seed=None),
                "bias_initializer": init("Zeros"), "kernel_regularizer": None,
                "recurrent_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None,
                "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
                "recurrent_dropout": 0.0, "implementation": 2, **extra}

    model_config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        init("InputLayer", batch_input_shape=[None, 5, 3], dtype="float32", sparse=False,
             ragged=False, name="masking_input"),
        init("Masking", name="masking", trainable=True, dtype="float32",
             batch_input_shape=[None, 5, 3], mask_value=0.0),
        init("GRU", **recurrent("gru", 4, True, reset_after=True)),
        init("LSTM", **recurrent("lstm", 3, False, unit_forget_bias=True)),
        init("Dense", name="dense", trainable=True, dtype="float32", units=2,
             activation="linear", use_bias=True,
             kernel_initializer=init("GlorotUniform", seed=None),
             bias_initializer=init("Zeros"), kernel_regularizer=None, bias_regularizer=None,
             activity_regularizer=None, kernel_constraint=None, bias_constraint=None),
    ]}, "keras_version": "2.12.0", "backend": "tensorflow"}
    training_config = {"loss": "mse", "metrics": [["mae"]], "weighted_metrics": None,
                       "loss_weights": None, "optimizer_config": {
                           "class_name": "Adam", "config": {
                               "name": "Adam", "learning_rate": 0.001, "decay": 0.0,
                               "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
                               "amsgrad": False}}}
    weights = {
        "masking": [],
        "gru": ["gru/gru_cell/kernel:0", "gru/gru_cell/recurrent_kernel:0",
                "gru/gru_cell/bias:0"],
        "lstm": ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0",
                 "lstm/lstm_cell/bias:0"],
        "dense": ["dense/kernel:0", "dense/bias:0"],
    }
    values = iter(k3.get_weights())
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = b"2.12.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        f.attrs["training_config"] = json.dumps(training_config).encode("utf8")
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([n.encode("utf8") for n in weights])
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.12.0"
        for layer, names in weights.items():
            g = group.create_group(layer)
            g.attrs["weight_names"] = np.array([n.encode("utf8") for n in names])
            for name in names:
                g.create_dataset(name, data=next(values))
    gz(os.path.join(HERE, "keras2_style.h5.gz"), buf.getvalue())


def torch_fixtures():
    import torch

    torch.manual_seed(0)
    cases = {
        "rnn_tanh": (torch.nn.RNN, {}),
        "rnn_relu_2layers_bidirectional_nobias": (torch.nn.RNN, dict(
            nonlinearity="relu", num_layers=2, bidirectional=True, bias=False)),
        "lstm_2layers_bidirectional": (torch.nn.LSTM, dict(num_layers=2, bidirectional=True)),
        "lstm_nobias_float64": (torch.nn.LSTM, dict(bias=False, dtype=torch.float64)),
        "gru_2layers": (torch.nn.GRU, dict(num_layers=2)),
        "gru_bidirectional_nobias": (torch.nn.GRU, dict(bidirectional=True, bias=False)),
    }
    arrays, described = {}, {}
    for name, (cls, kwargs) in cases.items():
        module = cls(2, 3, batch_first=True, **kwargs)
        with torch.no_grad():
            for p in module.parameters():
                p.uniform_(-0.5, 0.5)  # non-zero biases, both of them
        dtype = kwargs.get("dtype", torch.float32)
        x = torch.randn(2, 4, 2, dtype=dtype)
        y, h = module(x)
        h = h[0] if isinstance(h, tuple) else h
        last = torch.cat([h[-2], h[-1]], dim=-1) if kwargs.get("bidirectional") else h[-1]
        for key, value in module.state_dict().items():
            arrays[f"{name}/{key}"] = value.numpy()
        arrays[f"{name}/x"] = x.numpy()
        arrays[f"{name}/y"] = y.detach().numpy()
        arrays[f"{name}/h_last"] = last.detach().numpy()
        described[name] = dict(mode=cls.__name__, nonlinearity=kwargs.get("nonlinearity", "tanh"),
                               input_size=2, hidden_size=3,
                               num_layers=kwargs.get("num_layers", 1),
                               bias=kwargs.get("bias", True),
                               bidirectional=kwargs.get("bidirectional", False),
                               dtype=str(dtype).replace("torch.", ""))
    arrays["cases"] = np.array(json.dumps(described))
    np.savez_compressed(os.path.join(HERE, "torch_state_dicts.npz"), **arrays)


def main():
    expected = {}
    keras_fixtures(expected)
    np.savez_compressed(os.path.join(HERE, "keras_expected.npz"), **expected)
    torch_fixtures()
    for name in sorted(os.listdir(HERE)):
        print(f"{os.path.getsize(os.path.join(HERE, name)):8d}  {name}")


if __name__ == "__main__":
    main()
