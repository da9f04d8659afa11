"""rnnfast.interop: Keras files and PyTorch modules to and from rnnfast.

Without Keras, TensorFlow or torch: the committed fixtures in tests/data
(Keras-written .keras/.h5 files, a tf.keras-2-style .h5, torch state dicts as
.npz, with Keras's and torch's own outputs; tests/data/make_interop_fixtures.py
made them) load to models with the same predictions, round trips through
rnnfast's writers keep predictions, and broken, forged or unsupported files
raise clear errors. h5py (a dependency, for Keras files) is needed
by the tests that read or write HDF5. With keras or torch importable, the
live round trips run too: rnnfast -> .keras -> keras.models.load_model,
Keras -> rnnfast -> Keras, torch -> rnnfast -> torch.
"""

import gzip
import io
import itertools
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnnfast
from rnnfast import layers
from rnnfast.interop import (ConversionError, FormatError, from_keras, from_torch, to_keras,
                             to_torch, to_torch_state_dict)

DATA = Path(__file__).parent / "data"
EXPECTED = dict(np.load(DATA / "keras_expected.npz", allow_pickle=False))
TORCH = np.load(DATA / "torch_state_dicts.npz", allow_pickle=False)
TORCH_CASES = json.loads(str(TORCH["cases"]))

try:
    import h5py
except ImportError:
    h5py = None
needs_h5py = pytest.mark.skipif(h5py is None, reason="h5py is not installed")

# fixture file -> key of its inputs and predictions in keras_expected.npz
KERAS_FILES = {"keras3_stack.keras": "stack", "keras3_stack.h5": "stack",
               "keras3_embedding_compiled.keras": "embedding_compiled",
               "keras2_style.h5": "keras2_style"}


@pytest.fixture(autouse=True)
def fresh_names():
    rnnfast.backend.clear_session()
    yield


def unpack(name, tmp_path):
    """A fixture file as Keras wrote it (they are stored gzip-compressed)."""
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / (name + ".gz")).read_bytes()))
    return path


def rezip(src, dst, replace=None, drop=()):
    """A copy of a zip archive with members replaced or dropped."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            zout.writestr(info.filename, replace.pop(info.filename, None) or zin.read(info))
        for name, data in replace.items():
            zout.writestr(name, data)
    return dst


def edit_config(src, dst, edit):
    with zipfile.ZipFile(src) as z:
        config = json.loads(z.read("config.json"))
    edit(config)
    return rezip(src, dst, {"config.json": json.dumps(config)})


def edit_weights(src, dst, edit):
    """A .keras copy whose model.weights.h5 went through edit(h5py.File)."""
    with zipfile.ZipFile(src) as z:
        buf = io.BytesIO(z.read("model.weights.h5"))
    with h5py.File(buf, "r+") as f:
        edit(f)
    return rezip(src, dst, {"model.weights.h5": buf.getvalue()})


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def assert_close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# rnnfast models covering every layer and option that a .keras file carries.
def model_recurrent():
    return randomize(rnnfast.Sequential([
        layers.Input(shape=(5, 3)), layers.Masking(0.0),
        layers.SimpleRNN(4, activation="relu", use_bias=False, return_sequences=True),
        layers.LSTM(3, go_backwards=True, unit_forget_bias=False, return_sequences=True),
        layers.GRU(3, reset_after=False, recurrent_activation="hard_sigmoid",
                   return_sequences=True),
        layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode="ave"),
        layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), merge_mode="mul"),
        layers.TimeDistributed(layers.Dense(2, activation="tanh")),
        layers.RNN(layers.GRUCell(2)),
        layers.RepeatVector(3), layers.Flatten(), layers.Dropout(0.2),
        layers.Activation("relu"), layers.Dense(1)]))


def model_tokens():
    return randomize(rnnfast.Sequential([
        layers.Input(shape=(6,), dtype="int32"), layers.Embedding(9, 3, mask_zero=True),
        layers.Bidirectional(layers.LSTM(2, dropout=0.1, recurrent_dropout=0.1)),
        layers.Dense(2, activation="softmax")]))


def model_float64():
    return randomize(rnnfast.Sequential([
        layers.Input(shape=(4, 2), dtype="float64"),
        layers.LSTM(3, return_sequences=True, dtype="float64"),
        layers.RNN(layers.LSTMCell(2, dtype="float64"), dtype="float64"),
        layers.Dense(1, dtype="float64")]))


RNNFAST_MODELS = {"recurrent": model_recurrent, "tokens": model_tokens, "float64": model_float64}


def inputs_for(name):
    rng = np.random.default_rng(1)
    if name == "tokens":
        x = rng.integers(1, 9, (4, 6)).astype("int32")
        x[1, 3:] = 0
        return x
    x = rng.standard_normal((4, 5, 3) if name == "recurrent" else (4, 4, 2))
    if name == "recurrent":
        x[2, 3:] = 0.0  # masked steps
    return x.astype("float64" if name == "float64" else "float32")


# ---- Keras fixtures, read without Keras --------------------------------------------------

@needs_h5py
@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_keras_fixture_predictions(name, tmp_path):
    key = KERAS_FILES[name]
    model = from_keras(unpack(name, tmp_path))
    assert_close(model.predict(EXPECTED["x_" + key], verbose=0), EXPECTED["y_" + key])


@needs_h5py
def test_keras_fixture_compile_and_optimizer_state(tmp_path):
    model = from_keras(unpack("keras3_embedding_compiled.keras", tmp_path))
    assert model.compiled and type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.iterations == 1  # the state Keras saved after one step
    assert len(model.optimizer.variables) == int(EXPECTED["optimizer_arrays_embedding_compiled"])
    assert np.isclose(model.optimizer.learning_rate, 0.01)
    legacy = from_keras(unpack("keras2_style.h5", tmp_path))  # Keras 2's training_config
    assert legacy.compiled and legacy.loss == "mse" and legacy.optimizer.iterations == 0
    assert not from_keras(unpack("keras2_style.h5", tmp_path), compile=False).compiled


@needs_h5py
@pytest.mark.parametrize("name", sorted(KERAS_FILES))
def test_keras_file_round_trip(name, tmp_path):
    """Keras file -> rnnfast -> to_keras -> rnnfast: same model, same predictions."""
    model = from_keras(unpack(name, tmp_path))
    to_keras(model, tmp_path / "again.keras")
    again = from_keras(tmp_path / "again.keras")
    x = EXPECTED["x_" + KERAS_FILES[name]]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.get_config() == model.get_config()
    assert again.compiled == model.compiled
    if model.compiled:
        for a, b in zip(again.optimizer.get_state(), model.optimizer.get_state()):
            np.testing.assert_array_equal(a, b)


@needs_h5py
@pytest.mark.parametrize("name", sorted(RNNFAST_MODELS))
def test_rnnfast_round_trip(name, tmp_path):
    """rnnfast -> .keras -> rnnfast for every layer kind and option."""
    model = RNNFAST_MODELS[name]()
    x = inputs_for(name)
    to_keras(model, tmp_path / "m.keras")
    again = from_keras(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert again.get_config() == model.get_config()
    assert [v.dtype for v in again.weights] == [v.dtype for v in model.weights]


@needs_h5py
@pytest.mark.parametrize("name", ["keras3_stack.keras", "keras3_embedding_compiled.keras"])
def test_to_keras_writes_keras_layout(name, tmp_path):
    """to_keras puts every array where Keras 3 itself put it, under the same names."""
    def layout(path):
        with zipfile.ZipFile(path) as z:
            members = sorted(z.namelist())
            config = json.loads(z.read("config.json"))
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
                items = []
                f.visititems(lambda n, o: items.append(
                    (n, getattr(o, "shape", None), o.attrs.get("name"))))
        return (members, sorted(items), config["class_name"], "compile_config" in config,
                bool(config["compile_config"]))

    keras_file = unpack(name, tmp_path)
    to_keras(from_keras(keras_file), tmp_path / "ours.keras")
    assert layout(tmp_path / "ours.keras") == layout(keras_file)


@needs_h5py
def test_to_keras_writes_atomically_and_checks_arguments(tmp_path):
    model = model_float64()
    target = tmp_path / "m.keras"
    target.write_bytes(b"old")
    to_keras(model, target)
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]  # no temporary file left
    assert zipfile.is_zipfile(target)
    with pytest.raises(ValueError, match=r"\.keras"):
        to_keras(model, tmp_path / "m.h5")
    with pytest.raises(ValueError, match="not built"):
        to_keras(rnnfast.Sequential([layers.Dense(1)]), tmp_path / "u.keras")
    with pytest.raises(TypeError, match="Sequential"):
        to_keras(layers.Dense(1), tmp_path / "d.keras")


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    keras_file = unpack("keras3_stack.keras", tmp_path)
    h5_file = unpack("keras3_stack.h5", tmp_path)
    model = model_float64()
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now fails
    for call in (lambda: from_keras(keras_file), lambda: from_keras(h5_file),
                 lambda: to_keras(model, tmp_path / "m.keras")):
        with pytest.raises(ImportError, match=r"needs h5py: pip install h5py"):
            call()


# ---- broken, forged and unsupported Keras files -------------------------------------------

def test_missing_and_non_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Keras model file"):
        from_keras(tmp_path / "absent.keras")
    with pytest.raises(FormatError, match="directory"):
        from_keras(tmp_path)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(FormatError, match="neither a Keras .keras file"):
        from_keras(garbage)
    with pytest.raises(TypeError, match="from_keras takes"):
        from_keras(42)


def test_truncated_keras_file(tmp_path):
    data = unpack("keras3_stack.keras", tmp_path).read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        (tmp_path / "cut.keras").write_bytes(data[:cut])
        with pytest.raises(FormatError, match="not a readable .keras file"):
            from_keras(tmp_path / "cut.keras")


def test_corrupted_member_is_detected(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = z.getinfo("config.json")
    # Flip bytes inside config.json's data: the CRC check catches it.
    start = info.header_offset + 30 + len(info.filename) + 100
    data[start:start + 4] = b"\x00\x01\x02\x03"
    (tmp_path / "bad.keras").write_bytes(bytes(data))
    with pytest.raises(FormatError, match="corrupted"):
        from_keras(tmp_path / "bad.keras")
    # A central directory entry that names another compression method.
    entry = bytes(src.read_bytes()).rfind(b"PK\x01\x02")  # the last member: model.weights.h5
    for method, message in ((8, "decompressing"), (99, "compression method")):
        data = bytearray(src.read_bytes())
        data[entry + 10:entry + 12] = method.to_bytes(2, "little")
        (tmp_path / "method.keras").write_bytes(bytes(data))
        with pytest.raises(FormatError, match=message):
            from_keras(tmp_path / "method.keras")


def test_missing_members(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)
    with pytest.raises(FormatError, match=r"lacks \['model.weights.h5'\]"):
        from_keras(rezip(src, tmp_path / "a.keras", drop={"model.weights.h5"}))
    with pytest.raises(FormatError, match=r"lacks \['config.json'\]"):
        from_keras(rezip(src, tmp_path / "b.keras", drop={"config.json"}))
    # Keras's weights_format="npz" pickles; refused with the reason.
    npz = rezip(src, tmp_path / "c.keras", {"model.weights.npz": b"x"}, drop={"model.weights.h5"})
    with pytest.raises(FormatError, match="pickle"):
        from_keras(npz)


def test_rnnfast_file_is_pointed_to_its_loader(tmp_path):
    model = model_float64()
    model.save(tmp_path / "m.rnnfast")
    with pytest.raises(FormatError, match="rnnfast.models.load_model"):
        from_keras(tmp_path / "m.rnnfast")


def test_bad_config_json(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)
    with pytest.raises(FormatError, match="config.json is not valid JSON"):
        from_keras(rezip(src, tmp_path / "a.keras", {"config.json": b"{not json"}))
    with pytest.raises(FormatError, match="lists no layers"):
        from_keras(edit_config(src, tmp_path / "b.keras", lambda c: c["config"].pop("layers")))


def test_forged_config_cannot_claim_unbounded_memory(tmp_path):
    def huge(config):
        config["config"]["layers"][1]["config"]["units"] = 10 ** 7  # a 1.6 GB LSTM kernel
    forged = edit_config(unpack("keras3_stack.keras", tmp_path), tmp_path / "f.keras", huge)
    with pytest.raises(FormatError, match="more weights than the file can hold"):
        from_keras(forged)


def test_unsupported_layers_and_models(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)

    def conv(config):
        config["config"]["layers"][1] = {"module": "keras.layers", "class_name": "Conv3D",
                                         "config": {"name": "conv3d", "filters": 2}}
    with pytest.raises(ConversionError, match=r"layer 1 \('conv3d'\) is a Keras Conv3D layer"):
        from_keras(edit_config(src, tmp_path / "a.keras", conv))

    def nested(config):  # inside a wrapper too
        config["config"]["layers"][2]["config"]["layer"]["class_name"] = "ConvLSTM1D"
    with pytest.raises(ConversionError, match="ConvLSTM1D"):
        from_keras(edit_config(src, tmp_path / "b.keras", nested))

    def functional(config):
        config["class_name"] = "Functional"
    with pytest.raises(ConversionError, match="functional model's config has no input_layers"):
        from_keras(edit_config(src, tmp_path / "c.keras", functional))

    def time_major(config):
        config["config"]["layers"][1]["config"]["time_major"] = True
    with pytest.raises(ConversionError, match="time_major=True"):
        from_keras(edit_config(src, tmp_path / "d.keras", time_major))

    def option(config):
        config["config"]["layers"][1]["config"]["activation"] = "gelu"
    with pytest.raises(ConversionError, match="cannot build this model.*gelu"):
        from_keras(edit_config(src, tmp_path / "e.keras", option))


def test_code_in_a_file_is_never_run(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)

    def lambda_layer(config):
        config["config"]["layers"].insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "config": {
                "name": "lambda", "function": {"class_name": "__lambda__", "config": {
                    "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwCp"}}}})
    with pytest.raises(ConversionError, match="Lambda, Python code stored in the file"):
        from_keras(edit_config(src, tmp_path / "a.keras", lambda_layer))

    def lambda_activation(config):
        config["config"]["layers"][-1]["config"]["activation"] = {
            "class_name": "__lambda__", "config": {"code": "AAAA"}}
    with pytest.raises(ConversionError, match="__lambda__"):
        from_keras(edit_config(src, tmp_path / "b.keras", lambda_activation))

    def custom(config):
        config["config"]["layers"][-1]["config"]["activation"] = {
            "module": "builtins", "class_name": "function", "config": "my_activation",
            "registered_name": "function"}
    with pytest.raises(ConversionError, match="custom object.*my_activation"):
        from_keras(edit_config(src, tmp_path / "c.keras", custom))
    # The caller's own function, by name: used for the file's.
    def my_activation(v):
        return v * 2.0
    model = from_keras(tmp_path / "c.keras", custom_objects={"my_activation": my_activation})
    assert model.layers[-1].activation is my_activation

    def custom_layer(config):
        config["config"]["layers"][1]["module"] = "my_package.layers"
    with pytest.raises(ConversionError, match="my_package.layers"):
        from_keras(edit_config(src, tmp_path / "d.keras", custom_layer))


@needs_h5py
def test_random_damage_to_keras_files(tmp_path):
    """Damaged .keras files fail with FormatError: the zip's checksums catch
    changed bytes before HDF5 reads them. (Legacy .h5 files have no
    checksums; see the README.)"""
    rng = np.random.default_rng(0)
    data = unpack("keras3_embedding_compiled.keras", tmp_path).read_bytes()
    path = tmp_path / "damaged.keras"
    for i in range(60):
        damaged = bytearray(data)
        if i % 3 == 0:
            damaged = damaged[:rng.integers(len(data))]
        else:
            at = rng.integers(len(data) - 8)
            damaged[at:at + 1 + i % 8] = rng.integers(0, 256, 1 + i % 8).astype(np.uint8).tobytes()
        path.write_bytes(bytes(damaged))
        try:
            from_keras(path)  # bytes outside every member (e.g. timestamps) change nothing
        except (FormatError, ConversionError):
            pass


@needs_h5py
def test_broken_weights_file(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)
    with pytest.raises(FormatError, match="model.weights.h5 is not a readable HDF5 file"):
        from_keras(rezip(src, tmp_path / "a.keras", {"model.weights.h5": b"\x89HDF garbage"}))
    with zipfile.ZipFile(src) as z:
        weights = z.read("model.weights.h5")
    with pytest.raises(FormatError, match="model.weights.h5"):
        from_keras(rezip(src, tmp_path / "b.keras",
                         {"model.weights.h5": weights[:len(weights) // 2]}))


@needs_h5py
def test_forged_dataset_shape_is_refused_before_reading(tmp_path):
    def forge(f):
        group = f["layers/lstm/cell/vars"]
        del group["0"]
        # Declares 40 GB and stores nothing: reading it would allocate it all.
        group.create_dataset("0", shape=(100_000, 100_000), dtype="f4", chunks=(1, 1000))
    forged = edit_weights(unpack("keras3_stack.keras", tmp_path), tmp_path / "f.keras", forge)
    assert forged.stat().st_size < 100_000
    with pytest.raises(FormatError, match=r"vars/0 has shape \(100000, 100000\) in the file.*"
                                          r"lstm_cell/kernel has shape \(3, 16\)"):
        from_keras(forged)


@needs_h5py
def test_weights_that_do_not_fit(tmp_path):
    src = unpack("keras3_stack.keras", tmp_path)
    cases = {
        "missing": (lambda f: f["layers/lstm/cell/vars"].__delitem__("2"), "holds arrays"),
        "extra": (lambda f: f["layers/dropout/vars"].create_dataset("0", data=[1.0]),
                  "holds arrays"),
        "group": (lambda f: f.__delitem__("layers/simple_rnn"), "has no layers/simple_rnn/cell"),
        "ints": (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                            f["layers/dense/vars"].create_dataset("1", data=np.array([3]))),
                 "not floats"),
        "soft link": (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                                 f["layers/dense/vars"].__setitem__(
                                     "1", h5py.SoftLink("/layers/lstm/cell/vars/2"))),
                      "SoftLink"),
        "external link": (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                                     f["layers/dense/vars"].__setitem__(
                                         "1", h5py.ExternalLink("/etc/passwd", "/x"))),
                          "ExternalLink"),
    }
    for i, (case, (edit, message)) in enumerate(cases.items()):
        with pytest.raises(FormatError, match=message):
            from_keras(edit_weights(src, tmp_path / f"{i}.keras", edit))


@needs_h5py
def test_broken_legacy_h5(tmp_path):
    src = unpack("keras3_stack.h5", tmp_path)
    data = src.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:len(data) // 2])
    with pytest.raises(FormatError, match="cut.h5"):
        from_keras(tmp_path / "cut.h5")

    def copy_with(name, edit):
        path = tmp_path / name
        path.write_bytes(data)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    kernel = "model_weights/lstm/sequential/lstm/lstm_cell/kernel"

    def forge(f):
        del f[kernel]
        f.create_dataset(kernel, shape=(50_000, 50_000), dtype="f8", chunks=(1, 1000))
    with pytest.raises(FormatError, match=r"has shape \(50000, 50000\) in the file"):
        from_keras(copy_with("forged.h5", forge))
    with pytest.raises(FormatError, match="listed in weight_names, is missing"):
        from_keras(copy_with("missing.h5", lambda f: f.__delitem__(kernel)))
    with pytest.raises(FormatError, match="has weights for 4 layers"):
        from_keras(copy_with("layers.h5", lambda f: f["model_weights"].attrs.__setitem__(
            "layer_names", np.array([b"lstm", b"bidirectional", b"time_distributed",
                                     b"simple_rnn"]))))
    with pytest.raises(FormatError, match="no model_config attribute"):
        from_keras(copy_with("config.h5", lambda f: f.attrs.__delitem__("model_config")))

    def weights_only(f):  # what Keras 2's save_weights("x.h5") writes: no model
        f.attrs["layer_names"] = f["model_weights"].attrs["layer_names"]
        f.attrs.__delitem__("model_config")
    with pytest.raises(FormatError, match="holds weights only"):
        from_keras(copy_with("weights.h5", weights_only))
    with pytest.raises(FormatError, match="model_config is not valid JSON"):
        from_keras(copy_with("json.h5", lambda f: f.attrs.__setitem__("model_config", b"{")))
    with pytest.raises(ConversionError, match="Keras 1.2.2"):
        from_keras(copy_with("old.h5", lambda f: f.attrs.__setitem__("keras_version", b"1.2.2")))

    def lambda_layer(f):
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2] = {"class_name": "Lambda", "config": {
            "name": "lambda", "function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"}}
        f.attrs["model_config"] = json.dumps(config).encode()
    with pytest.raises(ConversionError, match="Lambda, Python code"):
        from_keras(copy_with("lambda.h5", lambda_layer))


# ---- Keras itself, when installed --------------------------------------------------------

@pytest.fixture
def keras_ref():
    with warnings.catch_warnings():
        # Keras's and JAX's own import-time deprecation warnings are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        keras = pytest.importorskip("keras")
    return keras


def keras_warnings(test):
    """Keras's NumPy-2 deprecation warnings (Variable.__array__) and JAX's
    float64-without-x64 notice are not ours."""
    test = pytest.mark.filterwarnings("ignore::DeprecationWarning")(test)
    return pytest.mark.filterwarnings(
        "ignore:Explicitly requested dtype float64:UserWarning")(test)


@pytest.mark.parametrize("name", sorted(RNNFAST_MODELS))
@keras_warnings
@needs_h5py
def test_keras_loads_to_keras_files(name, tmp_path, keras_ref):
    model = RNNFAST_MODELS[name]()
    model.compile(optimizer="adam", loss="mse")
    x = inputs_for(name)
    to_keras(model, tmp_path / "m.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras_ref.models.load_model(tmp_path / "m.keras")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert loaded.compiled
    assert_close(np.asarray(loaded.predict(x, verbose=0)), model.predict(x, verbose=0))


@keras_warnings
@needs_h5py
def test_keras_rnnfast_keras_round_trip(tmp_path, keras_ref):
    """Keras -> rnnfast (live model and file) -> .keras -> Keras; training
    resumes with the optimizer's state in both directions."""
    keras_file = unpack("keras3_embedding_compiled.keras", tmp_path)
    original = keras_ref.models.load_model(keras_file)
    x, key = EXPECTED["x_embedding_compiled"], "y_embedding_compiled"
    live = from_keras(original)
    assert_close(live.predict(x, verbose=0), EXPECTED[key])
    model = from_keras(keras_file)
    to_keras(model, tmp_path / "back.keras")
    back = keras_ref.models.load_model(tmp_path / "back.keras")
    assert_close(np.asarray(back.predict(x, verbose=0)), EXPECTED[key])
    assert int(back.optimizer.iterations) == 1
    if keras_ref.backend.backend() == "numpy":
        return  # Keras's NumPy backend does not train
    y = np.random.default_rng(3).integers(0, 2, (len(x), 1)).astype("float32")
    for k in (original, back):
        k.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for ours, theirs in ((model, original), (model, back)):
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            assert_close(a, np.asarray(b))


@keras_warnings
@needs_h5py
@pytest.mark.parametrize("name", ["keras3_stack.keras", "keras3_stack.h5"])
def test_keras_reads_what_rnnfast_converted(name, tmp_path, keras_ref):
    model = from_keras(unpack(name, tmp_path))
    to_keras(model, tmp_path / "m.keras")
    loaded = keras_ref.models.load_model(tmp_path / "m.keras")
    assert_close(np.asarray(loaded.predict(EXPECTED["x_stack"], verbose=0)), EXPECTED["y_stack"])


# ---- PyTorch fixtures, read without torch -------------------------------------------------

def torch_case(name):
    prefix = name + "/"
    state = {k[len(prefix):]: TORCH[k] for k in TORCH.files if k.startswith(prefix)}
    data = {k: state.pop(k) for k in ("x", "y", "h_last")}
    return state, data, TORCH_CASES[name]


def nonlinearity_of(case):
    return case["nonlinearity"] if case["mode"] == "RNN" else None


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_fixture_predictions(name):
    state, data, case = torch_case(name)
    model = from_torch(state, nonlinearity=nonlinearity_of(case))
    assert model.layers[0].compute_dtype == np.dtype(case["dtype"])
    assert_close(model.predict(data["x"], verbose=0), data["y"])
    last = from_torch(state, nonlinearity=nonlinearity_of(case), return_sequences=False)
    assert_close(last.predict(data["x"], verbose=0), data["h_last"])


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_state_dict_round_trip(name):
    state, data, case = torch_case(name)
    model = from_torch(state, nonlinearity=nonlinearity_of(case))
    back, config = to_torch_state_dict(model)
    expected = {k: v for k, v in case.items() if k != "nonlinearity" or case["mode"] == "RNN"}
    assert config == {**expected, "dropout": 0.0}
    assert sorted(back) == sorted(state)
    for key, value in back.items():
        if key.startswith("bias") and case["mode"] != "GRU":
            # Keras keeps one bias, their sum: it all comes back in bias_ih.
            other = key.replace("bias_hh", "bias_ih") if "hh" in key else \
                key.replace("bias_ih", "bias_hh")
            total = state[key] + state[other]
            assert_close(value, total if "_ih" in key else np.zeros_like(total))
        else:
            np.testing.assert_array_equal(value, state[key])
        assert value.dtype == state[key].dtype
    again = from_torch(back, nonlinearity=nonlinearity_of(case))
    assert_close(again.predict(data["x"], verbose=0), data["y"])


def test_state_dict_prefix_and_dtype():
    state, data, case = torch_case("gru_2layers")
    wrapped = {"encoder.rnn." + k: v for k, v in state.items()}
    wrapped["head.weight"] = np.zeros((2, 3), np.float32)  # another module's entry
    assert_close(from_torch(wrapped).predict(data["x"], verbose=0), data["y"])
    wrapped["decoder.rnn.weight_ih_l0"] = state["weight_ih_l0"]
    with pytest.raises(ConversionError, match="several recurrent modules.*prefix="):
        from_torch(wrapped)
    assert_close(from_torch(wrapped, prefix="encoder.rnn.").predict(data["x"], verbose=0),
                 data["y"])
    model64 = from_torch(state, dtype="float64")
    assert model64.layers[0].compute_dtype == np.float64
    assert_close(model64.predict(data["x"].astype("float64"), verbose=0), data["y"])
    half = {k: v.astype(np.float16) for k, v in state.items()}
    with pytest.raises(ConversionError, match="float16.*dtype='float32'"):
        from_torch(half)
    assert from_torch(half, dtype="float32").layers[0].compute_dtype == np.float32


def test_malformed_state_dicts():
    state, _, _ = torch_case("lstm_2layers_bidirectional")
    cases = [
        ({**state, "weight_hr_l0": np.zeros((3, 3), np.float32)}, "proj_size"),
        ({k: v for k, v in state.items() if k != "bias_hh_l1_reverse"},
         r"lacks \['bias_hh_l1_reverse'\]"),
        ({**state, "weight_ih_l2": state["weight_ih_l1"]}, "lacks"),
        ({**state, "weight_ih_l1": state["weight_ih_l0"]}, r"weight_ih_l1 has shape \(12, 2\), "
                                                           r"expected \(12, 6\)"),
        ({**state, "batch_norm.weight": np.ones(3, np.float32)}, "unexpected entries"),
        ({k: v for k, v in state.items() if not k.startswith("weight_hh_l0")}, "no weight_ih_l0"),
        ({**state, "weight_hh_l0": np.zeros((10, 3), np.float32)}, "fits no torch.nn"),
        ({k: v.astype(np.int32) for k, v in state.items()}, "int32 values, not floats"),
    ]
    for bad, message in cases:
        with pytest.raises(ConversionError, match=message):
            from_torch(bad)
    with pytest.raises(ValueError, match="nonlinearity applies to torch.nn.RNN"):
        from_torch(state, nonlinearity="relu")
    rnn, _, _ = torch_case("rnn_tanh")
    with pytest.raises(ValueError, match="'tanh' or 'relu'"):
        from_torch(rnn, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="from_torch takes"):
        from_torch([1, 2, 3])


def test_torch_dropout_maps_to_dropout_layers():
    state, data, case = torch_case("gru_2layers")
    model = from_torch(state)
    model_d = rnnfast.Sequential([layers.Input(shape=(None, 2)), model.layers[0],
                                  layers.Dropout(0.3), model.layers[1]])
    assert [type(l).__name__ for l in model_d.layers] == ["GRU", "Dropout", "GRU"]
    _, config = to_torch_state_dict(model_d)
    assert config["dropout"] == 0.3 and config["num_layers"] == 2
    assert_close(model_d.predict(data["x"], verbose=0), data["y"])  # inference ignores it


def stack(*items, shape=(None, 2)):
    return rnnfast.Sequential([layers.Input(shape=shape), *items])


def built(layer, shape):
    stack(layer, shape=shape)
    return layer


def test_to_torch_refuses_what_torch_cannot_compute():
    lstm = lambda **kw: layers.LSTM(3, return_sequences=True, **kw)  # noqa: E731
    cases = [
        (stack(lstm(), layers.Dense(1)), r"Dense\) has no counterpart.*model.layers\[:1\]"),
        (stack(layers.GRU(3, reset_after=False)), "reset_after=False"),
        (stack(lstm(recurrent_activation="hard_sigmoid")), "hard_sigmoid"),
        (stack(layers.SimpleRNN(3, activation="sigmoid")), "tanh or relu"),
        (stack(lstm(), layers.GRU(3)), "kind: LSTM vs GRU"),
        (stack(lstm(), layers.LSTM(4)), "units: 3 vs 4"),
        (stack(lstm(), layers.LSTM(3, use_bias=False)), "use_bias: True vs False"),
        (stack(layers.Bidirectional(lstm(), merge_mode="sum")), "merge_mode='sum'"),
        (stack(lstm(go_backwards=True)), "go_backwards=True"),
        (stack(layers.LSTM(3), layers.RepeatVector(2)), "RepeatVector"),
        ([built(layers.LSTM(3), (None, 2)), built(layers.LSTM(3), (None, 3))],
         "return_sequences=False"),
        ([built(lstm(), (None, 2)), built(lstm(), (None, 2))], "takes 2 features, but the layer "
                                                               "before it gives 3"),
        (stack(lstm(), layers.Dropout(0.1), lstm(), lstm()), "one dropout rate"),
        (stack(lstm(), layers.Dropout(0.1)), "after the last recurrent layer"),
        (stack(layers.Dropout(0.1), lstm()), "between two recurrent layers"),
        (rnnfast.Sequential([layers.Input(batch_shape=(2, 4, 2)), lstm(stateful=True)]),
         "stateful=True"),
        (stack(lstm(recurrent_dropout=0.2)), "recurrent_dropout=0.2.*ignore_training_options"),
        (stack(lstm(kernel_regularizer="l2")), "kernel_regularizer"),
        (stack(layers.Dense(2)), "Dense"),
    ]
    for model, message in cases:
        with pytest.raises(ConversionError, match=message):
            to_torch_state_dict(model)
    _, config = to_torch_state_dict(stack(lstm(dropout=0.5)), ignore_training_options=True)
    assert config["mode"] == "LSTM"
    with pytest.raises(ValueError, match="not built"):
        to_torch_state_dict(rnnfast.Sequential([layers.LSTM(3)]))
    with pytest.raises(TypeError, match="to_torch takes"):
        to_torch_state_dict("lstm")


def test_to_torch_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        to_torch(stack(layers.LSTM(3)))


# ---- PyTorch itself, when installed ------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # tiny modules: threads only add overhead here
    return torch


TORCH_KINDS = {"RNN_TANH": ("RNN", {}), "RNN_RELU": ("RNN", {"nonlinearity": "relu"}),
               "LSTM": ("LSTM", {}), "GRU": ("GRU", {})}


def run_torch(module, x, batch_first):
    import torch

    xt = torch.from_numpy(x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2)))
    with torch.no_grad():
        y, h = module(xt)
    y = y.numpy()
    h = (h[0] if isinstance(h, tuple) else h).numpy()
    return (y if batch_first else y.transpose(1, 0, 2)), h


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first,bias", list(itertools.product(
    sorted(TORCH_KINDS), (1, 2), (False, True), (False, True), (False, True))))
def test_torch_rnnfast_torch(torch, kind, num_layers, bidirectional, batch_first, bias):
    torch.manual_seed(0)
    cls, kwargs = TORCH_KINDS[kind]
    module = getattr(torch.nn, cls)(3, 4, num_layers=num_layers, bidirectional=bidirectional,
                                    batch_first=batch_first, bias=bias, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    y, h = run_torch(module, x, batch_first)
    model = from_torch(module)  # batch-major inputs whatever batch_first is
    assert_close(model.predict(x, verbose=0), y)
    last = from_torch(module, return_sequences=False).predict(x, verbose=0)
    assert_close(last, np.concatenate([h[-2], h[-1]], -1) if bidirectional else h[-1])
    back = to_torch(model, batch_first=batch_first)
    assert type(back) is type(module) and back.batch_first == batch_first
    assert (back.num_layers, back.bidirectional, back.bias, back.mode) == \
        (num_layers, bidirectional, bias, module.mode)
    y2, h2 = run_torch(back, x, batch_first)
    assert_close(y2, y)
    assert_close(h2, h)


def test_torch_float64_and_dropout(torch):
    module = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.25, batch_first=True,
                           dtype=torch.float64).eval()
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    model = from_torch(module)
    assert [type(l).__name__ for l in model.layers] == ["LSTM", "Dropout", "LSTM"]
    assert model.layers[0].compute_dtype == np.float64
    y, _ = run_torch(module, x, True)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=1e-10, atol=1e-12)
    back = to_torch(model).eval()
    assert back.dropout == 0.25 and back.weight_ih_l0.dtype == torch.float64
    np.testing.assert_allclose(run_torch(back, x, True)[0], y, rtol=1e-10, atol=1e-12)


def test_torch_features_without_counterpart(torch):
    with pytest.raises(ConversionError, match="proj_size=2"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ConversionError, match="LSTMCell has no rnnfast counterpart"):
        from_torch(torch.nn.LSTMCell(3, 4))
    with pytest.raises(ConversionError, match="Linear has no rnnfast counterpart"):
        from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="module's is 'tanh'"):
        from_torch(torch.nn.RNN(3, 4), nonlinearity="relu")


def test_rnnfast_trained_stack_to_torch(torch):
    """An rnnfast model trained with Keras options torch lacks converts with
    ignore_training_options=True and predicts the same."""
    rnnfast.utils.set_random_seed(0)
    model = rnnfast.Sequential([
        layers.Input(shape=(5, 3)),
        layers.Bidirectional(layers.GRU(4, return_sequences=True, recurrent_dropout=0.2)),
        layers.Dropout(0.1),
        layers.Bidirectional(layers.GRU(4, kernel_regularizer="l2"))])
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
    model.fit(x, np.zeros((8, 8), np.float32), epochs=1, verbose=0)
    module = to_torch(model, ignore_training_options=True).eval()
    _, h = run_torch(module, x, True)
    assert_close(model.predict(x, verbose=0), np.concatenate([h[-2], h[-1]], -1))
