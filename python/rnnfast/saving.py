"""rnnfast's own model file: architecture, weights, compile settings and
optimizer state in one zip archive (recommended suffix ``.rnnfast``).

Members (all small JSON documents are deflated; arrays are stored
uncompressed, so that the memory a file can make the loader allocate is
bounded by the file's own size):

- ``metadata.json``: ``{"format": "rnnfast.model", "format_version": 1,
  "rnnfast_version", "date_saved", "weights": [variable paths],
  "optimizer_state": n, "rng": {...}}``
- ``config.json``: the model's config as Keras 3 writes it
  (``{"module": "keras", "class_name": "Sequential", "config": {...}}``) and
  ``compile_config`` (optimizer, loss, metrics, loss_weights).
- ``model.weights.npz``: the weights, ``w0000``, ``w0001``, ... in
  ``model.weights`` order (NumPy .npy members, read with allow_pickle=False).
- ``optimizer.npz``: the optimizer's state (``optimizer.get_state()``).

Nothing in a file is executed on load: JSON and raw .npy arrays only. Writes
go to a temporary file beside the target, which is then renamed over it, so
an interrupted save never leaves a half-written file where a good one was
(``_io.atomic_write``: the file gets 0666 less the umask, or keeps the mode of
the one it replaces, and temporaries of killed saves go at the next save).
Loading restores rnnfast's random state as it was at save time, so that
training resumes exactly where it stopped.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import zipfile

import numpy as np

from . import _io, _rng, _serialization
from ._io import FormatError
from . import _budget

FORMAT = "rnnfast.model"
FORMAT_VERSION = 1
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 1_000_000

_REQUIRED = ("metadata.json", "config.json", "model.weights.npz")
MODEL_CLASSES = ("Sequential", "Functional")


def _file_kind(path):
    """"rnnfast", "keras" (a .keras zip) or "h5" (HDF5), by content."""
    head = _io.file_head(path)
    if head == _io.H5_MAGIC:
        return "h5"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except _io.ZIP_ERRORS:
            return "rnnfast"  # _open reports the damage
        if "model.weights.h5" in names and "model.weights.npz" not in names:
            return "keras"
    return "rnnfast"


# ---- writing ---------------------------------------------------------------------------

def npz_bytes(arrays) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)
            zf.writestr(name + ".npy", member.getvalue())
    return buf.getvalue()


def _rng_state(model):
    layer_states = {}
    for layer in _all_layers(model):
        rng = getattr(layer, "_rng", None)
        if isinstance(rng, np.random.Generator):
            layer_states[layer.name] = rng.bit_generator.state
    return {"global": _rng.global_rng().bit_generator.state, "layers": layer_states}


def _all_layers(model):
    out = []

    def walk(layer):
        out.append(layer)
        for sub in getattr(layer, "_layers", []):
            walk(sub)

    for layer in model.layers:
        walk(layer)
    return out


def write_atomically(path, data: bytes) -> None:
    _io.write_bytes_atomically(path, data)


def save_model(model, filepath, overwrite=True, include_optimizer=True) -> None:
    """Writes `model` to `filepath`: Keras 3's format for a ``.keras`` name
    (``keras.models.load_model`` reads it), rnnfast's own otherwise (see the
    module docstring)."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    if filepath.endswith(".keras"):
        from .interop import _keras_format

        _keras_format.to_keras(model, filepath, include_optimizer=include_optimizer)
        return
    if not model.built:
        raise ValueError("save(): the model is not built yet; call it on data or build() it first")
    weights = model.weights
    opt_state = []
    if include_optimizer and model.optimizer is not None and getattr(model.optimizer, "built", False):
        opt_state = model.optimizer.get_state()
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "rnnfast_version": __import__("rnnfast").__version__,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "weights": [v.path for v in weights],
        "optimizer_state": len(opt_state),
        "rng": _rng_state(model),
    }
    config = {"module": "keras", "class_name": type(model).__name__, "config": model.get_config(),
              "registered_name": None,
              "compile_config": model.get_compile_config() if include_optimizer else None}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata, indent=2), zipfile.ZIP_DEFLATED)
        zf.writestr("config.json", json.dumps(config, indent=2), zipfile.ZIP_DEFLATED)
        zf.writestr("model.weights.npz", npz_bytes((f"w{i:04d}", v.value) for i, v in
                                                     enumerate(weights)), zipfile.ZIP_STORED)
        if opt_state:
            zf.writestr("optimizer.npz", npz_bytes((f"s{i:04d}", a) for i, a in enumerate(opt_state)),
                        zipfile.ZIP_STORED)
    write_atomically(filepath, buf.getvalue())


# ---- reading -----------------------------------------------------------------------------

def _read_json(zf, name, path, archive_size):
    raw = _io.read_member(zf, name, _io.json_member_limit(archive_size, MAX_JSON_BYTES), path)
    return _io.parse_json(raw, f"{path}: {name}")


def read_npz(data: bytes, what: str, expected: int | None = None, kinds: str = "f"):
    """Arrays of an uncompressed .npz held in memory, checked before any
    allocation: every member's .npy header must describe exactly the bytes
    that follow it, of a dtype kind in `kinds` (floats: no ints, bools,
    complex numbers, strings or Python objects, so no pickle)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except _io.ZIP_ERRORS as e:
        raise FormatError(f"{what} is not a readable .npz ({e})") from None
    if len(infos) > MAX_ARRAYS or (expected is not None and len(infos) != expected):
        raise FormatError(f"{what} holds {len(infos)} arrays, expected {expected}")
    out = []
    for info in sorted(infos, key=lambda i: i.filename):
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(data) or \
                not info.filename.endswith(".npy"):
            raise FormatError(f"{what}: member {info.filename} is compressed, larger than the "
                              f"file or not a .npy array")
        try:
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise FormatError(f"{what}: {info.filename} uses .npy version {version}")
                header_len = f.tell()
                if dtype.hasobject:
                    raise FormatError(f"{what}: {info.filename} holds Python objects; refused")
                if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype:
                    raise FormatError(f"{what}: {info.filename} holds {dtype} values, not "
                                      f"{'floats' if kinds == 'f' else 'numbers'}; refused")
                nbytes = math.prod(shape) * dtype.itemsize  # exact: no int64 overflow
                if header_len + nbytes != info.file_size:
                    raise FormatError(f"{what}: {info.filename} declares {shape} {dtype} but holds "
                                      f"{info.file_size - header_len} bytes")
                raw = f.read(nbytes)
        except FormatError:
            raise
        except _io.ZIP_ERRORS + (TypeError, SyntaxError) as e:
            raise FormatError(f"{what}: {info.filename} is corrupted ({e})") from None
        if len(raw) != nbytes:
            raise FormatError(f"{what}: {info.filename} is truncated")
        arr = np.frombuffer(raw, dtype=dtype)
        arr = arr.reshape(shape, order="F" if fortran else "C")
        out.append((info.filename[:-4], np.array(arr, copy=True)))
    return out


def _open(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    try:
        zf = zipfile.ZipFile(path)
    except _io.ZIP_ERRORS as e:
        raise FormatError(f"{path} is not an rnnfast model file (not a zip archive, truncated "
                          f"or corrupted: {e})") from None
    names = set(zf.namelist())
    missing = [n for n in _REQUIRED if n not in names]
    if missing:
        zf.close()
        if "model.weights.h5" in names:
            raise FormatError(f"{path} is a Keras .keras file; read it with "
                              f"rnnfast.interop.from_keras")
        raise FormatError(f"{path} is not an rnnfast model file: missing {missing}")
    return zf


def _member_bytes(zf, name, path, archive_size):
    """A stored member, no larger than the archive."""
    if zf.getinfo(name).compress_type != zipfile.ZIP_STORED:
        raise FormatError(f"{path}: {name} must be stored uncompressed")
    return _io.read_member(zf, name, archive_size, path)


# Raised by building, compiling or filling a model from a damaged config:
# reported as FormatError naming the file.
_CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
                  RecursionError)


# Modules a config may name without custom objects: what rnnfast writes for its
# own classes and Keras writes for its built-ins.
_OWN_MODULES = ("keras", "rnnfast")


def _check_labels(obj, path, custom, trail=""):
    """Refuses a "module" or "registered_name" that rnnfast never writes for
    its own classes, as the .keras loader refuses them (FormatError naming the
    file and the field): they do not choose what is loaded (class names
    resolve in rnnfast's registries only), but a config that claims a class
    from another module was not written for rnnfast's. A class or function
    the caller passes in custom_objects (or registered) is the caller's own:
    its labels are not checked, and nothing below it, as in the .keras loader."""
    from .layers import registry

    if isinstance(obj, dict):
        cls = obj.get("class_name")
        if isinstance(cls, str):
            fn_name = obj.get("config") if cls == "function" else None
            registered = obj.get("registered_name")
            if cls in custom or (isinstance(fn_name, str) and fn_name in custom) or \
                    (isinstance(registered, str) and registered in custom):
                return
            at = f"{trail}." if trail else ""
            if "module" in obj:
                module = obj["module"]
                own = getattr(registry.LAYERS.get(cls), "KERAS_MODULE", None)
                if not isinstance(module, str) or (module.split(".")[0] not in _OWN_MODULES
                                                   and module != own):
                    shown = fn_name if cls == "function" else cls
                    raise FormatError(f"{path}: config.json's {at}module is {module!r} (for "
                                      f"{shown!r}), not a module of Keras or rnnfast; a custom "
                                      f"object must be passed in custom_objects (nothing is "
                                      f"imported from a file)")
            # None for built-ins; Keras writes "Functional" and, for functions,
            # "function" or the function's name.
            allowed = (cls, "function", fn_name) if cls == "function" else (cls,)
            if registered is not None and registered not in allowed:
                expected = " or ".join(repr(a) for a in (None,) + tuple(dict.fromkeys(allowed)))
                raise FormatError(f"{path}: config.json's {at}registered_name is {registered!r} "
                                  f"for class {cls!r}, expected {expected}; a custom object must "
                                  f"be passed in custom_objects")
        for key, value in obj.items():
            if trail == "" and key == "compile_config":
                continue  # checked when the model is compiled (load_model(compile=True))
            _check_labels(value, path, custom, f"{trail}.{key}" if trail else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _check_labels(value, path, custom, f"{trail}[{i}]")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Reads a model file, told apart by content: rnnfast's own (``model.save``
    to any name but ``.keras``), a Keras 3 ``.keras`` file or a legacy Keras
    ``.h5`` file (read through ``rnnfast.interop``; needs h5py)."""
    path = os.fspath(filepath)
    kind = _file_kind(path)
    if kind in ("keras", "h5"):
        from .interop import _keras_format

        return _keras_format.from_keras(path, compile=compile, custom_objects=custom_objects)
    try:
        return _load_rnnfast(path, custom_objects, compile)
    except _budget.BudgetExceeded as e:
        raise FormatError(f"{path}: the model needs more memory than the file holds ({e}); the "
                          f"file is corrupted or forged") from None
    except RecursionError:
        raise FormatError(f"{path}: config.json nests too deeply to build") from None


def _load_rnnfast(path, custom_objects, compile):
    size = os.path.getsize(path)
    with _open(path) as zf:
        metadata = _read_json(zf, "metadata.json", path, size)
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise FormatError(f"{path}: metadata.json does not describe an rnnfast model")
        version = metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatError(f"{path} was written in format version {version!r}; this "
                              f"rnnfast ({__import__('rnnfast').__version__}) reads version "
                              f"{FORMAT_VERSION}")
        config = _read_json(zf, "config.json", path, size)
        weight_data = _member_bytes(zf, "model.weights.npz", path, size)
        opt_data = _member_bytes(zf, "optimizer.npz", path, size) \
            if "optimizer.npz" in zf.namelist() else None
    names = metadata.get("weights")
    if not isinstance(names, list):
        raise FormatError(f"{path}: metadata.json lists no weights")
    weights = read_npz(weight_data, f"{path}: model.weights.npz", expected=len(names))
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES or \
            not isinstance(config.get("config"), dict):
        raise FormatError(f"{path}: config.json holds no Sequential or functional model")
    custom = _serialization.registered_objects() | dict(custom_objects or {})
    _check_labels(config, path, custom)
    if compile:
        _check_labels(config.get("compile_config"), path, custom, "compile_config")
    with _serialization.custom_object_scope(custom_objects):
        return _build_rnnfast(path, config, metadata, weights, opt_data, custom_objects, compile)


def _build_rnnfast(path, config, metadata, weights, opt_data, custom_objects, compile):
    from .layers import registry

    # Building may not allocate more than the file's weights: a forged config
    # cannot make the loader allocate unbounded memory.
    budget = sum(a.nbytes for _, a in weights)
    try:
        with _budget.allocation_budget(budget * 2 + 1024):
            model = registry.LAYERS[config["class_name"]].from_config(
                config["config"], custom_objects=custom_objects)
    except _budget.BudgetExceeded as e:
        raise FormatError(f"{path}: the architecture needs more weights than the file holds ({e})") \
            from None
    except _CONFIG_ERRORS as e:
        raise FormatError(f"{path}: config.json is not a valid model config ({e!r})") from None
    variables = model.weights
    if len(variables) != len(weights):
        raise FormatError(f"{path}: the model has {len(variables)} weights, the file {len(weights)}")
    for v, (_, arr) in zip(variables, weights):
        if arr.shape != v.shape:
            raise FormatError(f"{path}: weight {v.path} has shape {v.shape} in the model, "
                              f"{arr.shape} in the file")
    model.set_weights([a for _, a in weights])
    compile_config = config.get("compile_config")
    if compile and compile_config:
        if not isinstance(compile_config, dict):
            raise FormatError(f"{path}: config.json's compile_config is not a JSON object")
        try:
            model.compile_from_config(compile_config, custom_objects=custom_objects)
        except _CONFIG_ERRORS as e:
            raise FormatError(f"{path}: cannot compile the model as config.json says ({e}); pass "
                              f"its custom objects in custom_objects, or load with "
                              f"compile=False") from None
        if opt_data is not None:
            _restore_optimizer(model, opt_data, metadata.get("optimizer_state"), path)
    _restore_rng(metadata.get("rng"), model, path)
    return model


def _restore_optimizer(model, data, expected, path):
    what = f"{path}: optimizer.npz"
    state = [a for _, a in read_npz(data, what, expected=expected, kinds="fiu")]
    try:
        model.optimizer.build(model.trainable_weights)
        targets = model.optimizer.variables
        if len(state) != len(targets):
            raise ValueError(f"{len(state)} arrays for {len(targets)} variables")
        for i, (a, t) in enumerate(zip(state, targets)):
            if (a.dtype.kind == "f") != (np.asarray(t).dtype.kind == "f"):
                raise ValueError(f"array {i} holds {a.dtype} values for a "
                                 f"{np.asarray(t).dtype} variable")
        model.optimizer.set_state(state)
    except _CONFIG_ERRORS as e:
        raise FormatError(f"{what}: the optimizer state does not fit the model ({e})") from None


def _restore_rng(state, model, path):
    """Every saved random state is checked on a fresh generator before any is
    applied: a forged one changes nothing."""
    if not isinstance(state, dict):
        return
    targets = []
    if state.get("global"):
        targets.append(("global", _rng.global_rng(), state["global"]))
    layers = {l.name: l for l in _all_layers(model)}
    saved_layers = state.get("layers") or {}
    if not isinstance(saved_layers, dict):
        raise FormatError(f"{path}: metadata.json's random state of the layers is not a JSON "
                          f"object")
    for name, s in saved_layers.items():
        rng = getattr(layers.get(name), "_rng", None)
        if isinstance(rng, np.random.Generator):
            targets.append((f"layer {name!r}", rng, s))
    for what, rng, s in targets:
        try:
            type(rng.bit_generator)().state = s
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as e:
            raise FormatError(f"{path}: metadata.json's random state ({what}) is invalid "
                              f"({type(e).__name__}: {e})") from None
    for _, rng, s in targets:
        rng.bit_generator.state = s


__all__ = ["FormatError", "load_model", "save_model"]
