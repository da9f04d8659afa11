"""rnnfast's own model file: round trips, exact resume, atomic writes, and
clear errors for missing, truncated, corrupted, forged or other-version files."""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import rnnfast as keras
from rnnfast import layers, saving

DATA = np.random.default_rng(0)
X = DATA.random((96, 6, 2), dtype=np.float32)
Y = DATA.random((96, 1), dtype=np.float32)


def last_step_mae(y_true, y_pred):
    return np.mean(np.abs(y_true - y_pred), axis=-1)


def build():
    model = keras.Sequential([
        layers.Input(shape=(6, 2)),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True, recurrent_dropout=0.2)),
        layers.GRU(4, dropout=0.1, kernel_regularizer="l2"),
        layers.Dropout(0.25),
        layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.01, clipnorm=1.0),
                  metrics=["mae"])
    return model


@pytest.fixture(autouse=True)
def fresh():
    keras.backend.clear_session()
    yield


def test_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = build()
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "model.rnnfast"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert loaded.get_config() == model.get_config()
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(loaded.optimizer.get_state(), model.optimizer.get_state()):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["model.rnnfast"]


def test_resume_equals_uninterrupted_training(tmp_path):
    """2 epochs, save, load, 1 more = 3 epochs straight, bit for bit (shuffling,
    dropout and Adam's state included)."""
    keras.utils.set_random_seed(7)
    straight = build()
    straight.fit(X, Y, epochs=3, batch_size=16, verbose=0)

    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    first = build()
    first.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "ckpt.rnnfast")
    keras.utils.set_random_seed(999)  # whatever happens in between
    resumed = keras.models.load_model(tmp_path / "ckpt.rnnfast")
    resumed.fit(X, Y, epochs=3, initial_epoch=2, batch_size=16, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(3)
    model = build()
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "a.rnnfast")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    model.fit(X, Y, epochs=2, initial_epoch=1, batch_size=16, verbose=0)
    code = (f"import numpy as np, rnnfast as keras\n"
            f"m = keras.models.load_model({str(tmp_path / 'a.rnnfast')!r})\n"
            f"m.fit(np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'y.npy')!r}), "
            f"epochs=2, initial_epoch=1, batch_size=16, verbose=0)\n"
            f"m.save_weights({str(tmp_path / 'w.npz')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
    other = build()
    other.load_weights(tmp_path / "w.npz")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_interrupted_save_leaves_the_previous_file(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    model = build()
    path = tmp_path / "m.rnnfast"
    model.save(path)
    before = path.read_bytes()
    model.fit(X, Y, epochs=1, verbose=0)

    def broken(f):
        f.write(b"partial data")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    from rnnfast import _io

    real = _io.atomic_write
    monkeypatch.setattr(_io, "atomic_write", lambda p, write: real(p, broken))
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.rnnfast"]  # the temporary is gone
    keras.models.load_model(path)


def test_overwrite_false(tmp_path):
    model = build()
    path = tmp_path / "m.rnnfast"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    assert path.read_bytes() == b"keep me"


def saved_bytes(tmp_path):
    keras.utils.set_random_seed(0)
    model = build()
    model.fit(X[:32], Y[:32], epochs=1, verbose=0)
    path = tmp_path / "good.rnnfast"
    model.save(path)
    return path.read_bytes()


def rewrite(data, replace):
    """The archive with some members replaced (name -> bytes, or None to drop)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    dst.writestr(info, replace[info.filename])
            else:
                dst.writestr(info, src.read(info.filename))
        for name, content in replace.items():
            if content is not None and name not in src.namelist():
                dst.writestr(name, content)
    return out.getvalue()


def npy_member(shape_text, payload=b""):
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}"
    header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload


def forged_weights(data, member_bytes):
    weights = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("model.weights.npz")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i, name in enumerate(sorted(weights.namelist())):
            z.writestr(name, member_bytes if i == 0 else weights.read(name))
    return out.getvalue()


def corrupt_cases(good):
    meta = json.loads(zipfile.ZipFile(io.BytesIO(good)).read("metadata.json"))
    config = json.loads(zipfile.ZipFile(io.BytesIO(good)).read("config.json"))
    huge = json.loads(json.dumps(config))
    huge["config"]["layers"][2]["config"]["units"] = 200_000  # GRU: 480 GB of weights
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {
        "empty": (b"", "not an rnnfast model file"),
        "truncated": (good[: len(good) // 2], "not an rnnfast model file|corrupted|truncated"),
        "random bytes": (bytes(range(256)) * 40, "not an rnnfast model file"),
        "other version": (rewrite(good, {"metadata.json": json.dumps({**meta, "format_version": 2})}),
                          "written in format version 2; this rnnfast .* reads version 1"),
        "not rnnfast": (rewrite(good, {"metadata.json": json.dumps({"format": "other"})}),
                        "does not describe an rnnfast model"),
        "bad json": (rewrite(good, {"config.json": "{not json"}), "config.json is not valid JSON"),
        "missing weights": (rewrite(good, {"model.weights.npz": None}), r"missing \['model.weights.npz'\]"),
        "forged npy header": (rewrite(good, {"model.weights.npz": forged_weights(good, npy_member("(100000000000,)"))}),
                              r"declares \(100000000000,\) float32 but holds"),
        "pickled array": (rewrite(good, {"model.weights.npz": forged_weights(good, pickled.getvalue())}),
                          "holds Python objects; refused"),
        "forged config": (rewrite(good, {"config.json": json.dumps(huge)}),
                          "needs more weights than the file holds"),
        # A .keras zip is read as one (by content, whatever its name).
        "keras file": (rewrite(good, {"model.weights.npz": None, "model.weights.h5": b"x"}),
                       "model.weights.h5 is not a readable HDF5 file"),
    }


@pytest.mark.parametrize("case", ["empty", "truncated", "random bytes", "other version", "not rnnfast",
                                  "bad json", "missing weights", "forged npy header", "pickled array",
                                  "forged config", "keras file"])
def test_bad_files_raise_clear_errors(tmp_path, case):
    data, message = corrupt_cases(saved_bytes(tmp_path))[case]
    path = tmp_path / "bad.rnnfast"
    path.write_bytes(data)
    with pytest.raises(saving.FormatError, match=message):
        keras.models.load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        keras.models.load_model(tmp_path / "nothing.rnnfast")


def test_custom_objects_and_compile_false(tmp_path):
    model = keras.Sequential([layers.SimpleRNN(3, input_shape=(6, 2)), layers.Dense(1)])
    model.compile(loss="mae", optimizer="sgd", metrics=[last_step_mae])
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "m.rnnfast"
    model.save(path)
    with pytest.raises(ValueError, match="custom_objects"):
        keras.models.load_model(path)
    loaded = keras.models.load_model(path, custom_objects={"last_step_mae": last_step_mae})
    assert loaded.evaluate(X, Y, verbose=0, return_dict=True).keys() == {"loss", "last_step_mae"}
    plain = keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(plain.predict(X, verbose=0), model.predict(X, verbose=0))
    assert plain.optimizer is None


def test_model_checkpoint_saves_loadable_models(tmp_path):
    keras.utils.set_random_seed(2)
    model = build()
    path = str(tmp_path / "best.rnnfast")
    model.fit(X, Y, epochs=3, verbose=0, validation_data=(X, Y),
              callbacks=[keras.callbacks.ModelCheckpoint(path, save_best_only=True)])
    assert os.path.exists(path)
    keras.models.load_model(path).predict(X, verbose=0)
    weights_path = str(tmp_path / "w_{epoch:02d}.npz")
    model.fit(X, Y, epochs=2, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(weights_path, save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["best.rnnfast", "w_01.npz", "w_02.npz"]


def test_load_weights_checks(tmp_path):
    model = build()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    other = keras.Sequential([layers.Input(shape=(6, 2)), layers.LSTM(3), layers.Dense(1)])
    with pytest.raises(ValueError, match="holds 11 arrays, expected 5"):
        other.load_weights(path)
    with pytest.raises(FileNotFoundError):
        other.load_weights(tmp_path / "none.npz")
