"""Keras model files <-> rnnfast models.

Two Keras formats are read:

- Keras 3's ``.keras``: a zip of ``config.json`` (the model's config),
  ``metadata.json`` and ``model.weights.h5``, an HDF5 file with one group per
  layer, named by Keras 3's saving walk (``layers/<snake_case class>[_n]``,
  then ``cell``, ``forward_layer``/``backward_layer`` or ``layer`` for wrapped
  layers, each with its own weights in ``vars/0``, ``vars/1``, ...).
- The legacy ``.h5`` of ``model.save("x.h5")`` (Keras 2, and Keras 3's legacy
  writer): attribute ``model_config`` (JSON) and group ``model_weights``,
  whose ``layer_names`` and per-layer ``weight_names`` attributes list the
  arrays in weight order.

``to_keras`` writes the first, as Keras 3.15 does.

Loading never runs code from a file (no pickle, Keras ``Lambda`` layers and
custom objects are refused) and never reads an array before its declared
shape and type were checked against the model's weight; the model built from
the config may not claim more memory than the file could hold (a forged
config cannot exhaust memory), and no zip member is decompressed when it
declares more than the model needs (a zip bomb is refused unread). HDF5
links to other files, external and virtual datasets are refused: every
weight comes from the file itself.
"""

from __future__ import annotations

import copy
import datetime
import io
import json
import os
import sys
import warnings
import zipfile

import numpy as np

from .._naming import to_snake_case
from ..layers import registry
from ..layers.registry import LAYERS
from .. import _budget, _io, _serialization
from ..layers.rnn.base import RNN
from ..layers.rnn.bidirectional import Bidirectional
from ..layers.rnn.time_distributed import TimeDistributed
from .._io import H5_MAGIC, FormatError, file_head
from .._io import write_bytes_atomically as write_atomically
from ._common import ConversionError, require_h5py

MAX_JSON_BYTES = 64 * 1024 * 1024
# Keras stores model.weights.h5 uncompressed; deflated (a re-zipped file),
# real weights shrink a few times at most, so a weights member that claims
# more than this multiple of its compressed size is refused unread.
MAX_WEIGHTS_RATIO = 64
# Building may allocate up to twice the weights file's size (plus this): real
# weights are stored uncompressed, so a genuine file always fits.
BUDGET_SLACK = 1 << 16
# model.weights.h5 may hold, besides 8 bytes per weight (float64 at most) and
# as many optimizer slots per trainable weight as Keras's optimizers keep
# (Adam with amsgrad, EMA and gradient accumulation: 5), HDF5's own metadata:
# Keras's files take some 3 KiB per layer and 0.6 KiB per array.
OPTIMIZER_SLOTS = 5
H5_BASE_BYTES = 64 * 1024
H5_LAYER_BYTES = 8 * 1024
H5_ARRAY_BYTES = 2 * 1024
# The Keras release whose .keras layout to_keras writes (checked against it).
KERAS_FORMAT_VERSION = "3.15.1"

# Keras classes that hold Python code in the file.
_CODE_CLASSES = ("Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
_RECURRENT = ("SimpleRNN", "LSTM", "GRU", "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell")


# ---- reading ---------------------------------------------------------------------------

def from_keras(path_or_model, *, compile=True, custom_objects=None):
    """An rnnfast model (Sequential or functional) from a Keras model file or a
    live Keras model.

    ``path_or_model``: a Keras 3 ``.keras`` file, a legacy Keras 2 ``.h5``
    file (``model.save("x.h5")``; recognised by content, not by name), or a
    Keras ``Sequential`` object. The layers must be ones rnnfast implements.
    ``compile``: compile the model as the file (or live model) says: loss,
    metrics and optimizer settings, and from a .keras file the optimizer's
    state too, so that training resumes where Keras stopped (the optimizer
    weights of legacy .h5 files, in Keras 2's layout, are not read).

    Raises FileNotFoundError, FormatError (truncated, corrupted or forged
    file), ConversionError (a model rnnfast cannot represent: functional
    models, unknown layers, Lambda layers, custom objects), ImportError
    (h5py missing).
    """
    if isinstance(path_or_model, (str, bytes, os.PathLike)):
        path = os.fsdecode(path_or_model)
        head = file_head(path, "Keras model file")
        if head.startswith(b"PK"):
            read = _read_keras_zip
        elif head == H5_MAGIC:
            read = _read_legacy_h5
        else:
            raise FormatError(f"{path} is neither a Keras .keras file (a zip archive) nor a "
                              f"legacy Keras .h5 file (HDF5): the file is corrupted or of another "
                              f"kind")
        try:
            return read(path, compile, custom_objects)
        except _budget.BudgetExceeded as e:  # what escaped the checks below
            raise FormatError(f"{path}: the model needs more memory than the file can hold ({e}); "
                              f"the file is corrupted or forged") from None
        except RecursionError:
            raise FormatError(f"{path}: the model config nests too deeply to build") from None
    if hasattr(path_or_model, "get_config") and hasattr(path_or_model, "get_weights"):
        return _from_keras_object(path_or_model, compile, custom_objects)
    raise TypeError(f"from_keras takes a path to a .keras or .h5 file or a Keras model, got "
                    f"{type(path_or_model).__name__}")


def _major_version(version, where):
    if version is None:
        return None
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise FormatError(f"{where}: unreadable Keras version {version!r}") from None
    if major < 2:
        raise ConversionError(f"{where} was written by Keras {version}; rnnfast reads files of "
                              f"Keras 2 and 3")
    return major


def _parse_json(raw, what):
    return _io.parse_json(raw, what)


def _check_no_code(obj, where, trail="config", custom_objects=None):
    """Refuses whatever would mean running code from the file: Keras Lambda
    layers and functions, and custom (non-Keras) classes or functions, unless
    the caller supplies them by name in custom_objects (then nothing from the
    file runs: the caller's own object is used)."""
    custom = custom_objects or {}
    if isinstance(obj, dict):
        cls = obj.get("class_name")
        if isinstance(cls, str):
            if cls == "Lambda" and _named_function(obj, custom):
                return
            if cls in custom or (cls == "function" and isinstance(obj.get("config"), str)
                                 and obj["config"] in custom):
                return
            if cls in _CODE_CLASSES:
                raise ConversionError(f"{where}: {trail} is a Keras {cls}, Python code stored in "
                                      f"the file; rnnfast never runs code from a file and cannot "
                                      f"load it")
            module = obj.get("module")
            if isinstance(module, str) and module.split(".")[0] != "keras":
                shown = obj.get("config") if cls == "function" else cls
                raise ConversionError(f"{where}: {trail} is a custom object ({shown!r} from module "
                                      f"{module!r}); rnnfast loads only Keras's built-in layers "
                                      f"and functions")
        for key, value in obj.items():
            _check_no_code(value, where, f"{trail}.{key}", custom)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _check_no_code(value, where, f"{trail}[{i}]", custom)


def _named_function(lambda_config, custom):
    """Whether a Lambda's function is named in the file and given by the caller."""
    fn = (lambda_config.get("config") or {}).get("function")
    if isinstance(fn, dict) and fn.get("class_name") == "function":
        fn = fn.get("config")
    return isinstance(fn, str) and fn in custom


def _check_layer(layer_config, where, trail):
    if not isinstance(layer_config, dict) or not isinstance(layer_config.get("class_name"), str) \
            or not isinstance(layer_config.get("config", {}), dict):
        raise FormatError(f"{where}: {trail} is not a layer config ({str(layer_config)[:80]!r})")
    cls = layer_config["class_name"]
    if cls not in LAYERS:
        name = layer_config.get("config", {}).get("name")
        raise ConversionError(f"{where}: {trail} ({name!r}) is a Keras {cls} layer, which rnnfast "
                              f"does not implement; rnnfast reads models made of "
                              f"{', '.join(sorted(LAYERS))}")
    config = layer_config.get("config", {})
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(config.get(key), (dict, list)):
            _check_layer(config[key], where, f"{trail}.{key}")
    if cls in _MODEL_CLASSES:
        for i, inner in enumerate(_layer_list(config, where)):
            _check_layer(inner, where, f"{trail}.layers[{i}]")


def _adapt_layer(layer_config, where, keras_major):
    """Keras 2 spellings that rnnfast's (Keras 3) layers do not take."""
    cls = layer_config["class_name"]
    if cls == "Model":  # Keras 2's name of a functional model nested as a layer
        cls = layer_config["class_name"] = "Functional"
    config = layer_config.setdefault("config", {})
    if cls in _RECURRENT:
        if config.pop("time_major", False):
            raise ConversionError(f"{where}: layer {config.get('name')!r} has time_major=True; "
                                  f"rnnfast's recurrent layers take batch-major inputs only")
        if cls.endswith("Cell"):
            config.pop("implementation", None)
        # Keras 2.0 and 2.1 GRUs had no reset_after and computed its False form.
        if keras_major is not None and keras_major < 3 and cls in ("GRU", "GRUCell"):
            config.setdefault("reset_after", False)
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(config.get(key), dict):
            _adapt_layer(config[key], where, keras_major)
    if cls in _MODEL_CLASSES:
        for inner in config.get("layers", []):
            _adapt_layer(inner, where, keras_major)


def _layer_list(config, where):
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        raise FormatError(f"{where}: a model config lists no layers")
    return layers


def _build_model(model_config, where, budget, keras_major, custom_objects=None):
    """A built rnnfast model (Sequential or functional) from a Keras model
    config, checked first: no code, only layers rnnfast implements."""
    if not isinstance(model_config, dict) or not isinstance(model_config.get("class_name"), str):
        raise FormatError(f"{where}: the model config is not a Keras model config")
    _check_no_code(model_config, where, custom_objects=custom_objects)
    cls = model_config["class_name"]
    if cls not in _MODEL_CLASSES:
        raise ConversionError(f"{where} holds a Keras {cls!r} model (a subclassed model?); rnnfast "
                              f"reads Sequential and functional models")
    inner = model_config.get("config")
    if isinstance(inner, list):  # Keras 2.1 and older wrote the layer list itself
        inner = {"layers": inner}
    inner = copy.deepcopy(inner)
    for i, layer_config in enumerate(_layer_list(inner, where)):
        _check_layer(layer_config, where, f"layer {i}")
        _adapt_layer(layer_config, where, keras_major)
    model_class = registry.get_class("Sequential" if cls == "Sequential" else "Functional")
    try:
        # The caller's objects resolve everywhere (a layer's activation too).
        with _serialization.custom_object_scope(custom_objects):
            if budget is None:
                model = model_class.from_config(inner, custom_objects=custom_objects)
            else:
                with _budget.allocation_budget(budget):
                    model = model_class.from_config(inner, custom_objects=custom_objects)
    except _budget.BudgetExceeded as e:
        raise FormatError(f"{where}: the config declares more weights than the file can hold "
                          f"({e}); the file is corrupted or forged") from None
    except (ConversionError, FormatError):
        raise
    except RecursionError:
        raise FormatError(f"{where}: the model config nests too deeply to build") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as e:
        raise ConversionError(f"{where}: rnnfast cannot build this model from its config: {e}") \
            from None
    if not model.built:
        raise ConversionError(f"{where}: the model has no input shape (it was saved before being "
                              f"built), so its weights cannot be placed")
    return model


def _compile(model, compile_config, where):
    if not compile_config:
        return
    if not isinstance(compile_config, dict):
        raise FormatError(f"{where}: the compile config is not a JSON object")
    try:
        model.compile_from_config(compile_config)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ConversionError(f"{where}: rnnfast cannot compile the model as the file says ({e}); "
                              f"load it with compile=False and call compile() yourself") from None


# -- .keras ------------------------------------------------------------------------------

def _zip_json(zf, name, path, archive_size):
    """A JSON member, no larger than configs get for an archive of this size
    (checked before it is decompressed)."""
    limit = _io.json_member_limit(archive_size, MAX_JSON_BYTES)
    return _parse_json(_io.read_member(zf, name, limit, path), f"{path}: {name}")


def _weights_capacity(info, archive_size):
    """The most bytes a genuine model.weights.h5 member of this size holds."""
    if info.compress_type == zipfile.ZIP_STORED:
        return min(info.compress_size, archive_size)
    return info.compress_size * MAX_WEIGHTS_RATIO


def _weights_limit(model):
    """The most bytes model.weights.h5 needs for `model`'s weights, its
    optimizer's and HDF5's metadata: a larger member is refused unread."""
    elements = sum(int(np.prod(v.shape)) for v in model.weights)
    trainable = model.trainable_weights
    slots = sum(int(np.prod(v.shape)) for v in trainable) * OPTIMIZER_SLOTS
    arrays = len(model.weights) + (2 + len(trainable) * OPTIMIZER_SLOTS)
    return 8 * (elements + slots) + H5_BASE_BYTES + H5_LAYER_BYTES * len(_saving_walk(model)) + \
        H5_ARRAY_BYTES * arrays


def _read_keras_zip(path, compile, custom_objects=None):
    size = os.path.getsize(path)
    try:
        zf = zipfile.ZipFile(path)
    except _io.ZIP_ERRORS as e:
        raise FormatError(f"{path} is not a readable .keras file (truncated or corrupted zip "
                          f"archive: {e})") from None
    with zf:  # members are read by _io.read_member, which reports their damage
        names = set(zf.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            _explain_missing(zf, names, path, size)
        config = _zip_json(zf, "config.json", path, size)
        metadata = _zip_json(zf, "metadata.json", path, size) if "metadata.json" in names else {}
        info = zf.getinfo("model.weights.h5")
        if info.file_size > _weights_capacity(info, size):
            raise FormatError(f"{path}: model.weights.h5 declares {info.file_size} bytes, more "
                              f"than its {info.compress_size} bytes in the archive can hold; the "
                              f"file is corrupted or forged")
        version = metadata.get("keras_version") if isinstance(metadata, dict) else None
        # The model first: the weights member may not be larger than it needs.
        model = _build_model(config, path, 2 * info.file_size + BUDGET_SLACK,
                             _major_version(version, path), custom_objects)
        weights = _io.read_member(zf, "model.weights.h5", _weights_limit(model), path)
    h5py = require_h5py()
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except (OSError, ValueError, RuntimeError) as e:
        raise FormatError(f"{path}: model.weights.h5 is not a readable HDF5 file ({e})") from None
    try:
        with h5:
            _read_keras3_weights(h5py, h5, model, path)
            if compile and config.get("compile_config"):
                _compile(model, config["compile_config"], path)
                _read_optimizer_state(h5py, h5, model, path)
    except (FormatError, ConversionError):
        raise
    except (OSError, KeyError, RuntimeError, UnicodeError, ValueError, TypeError) as e:
        raise FormatError(f"{path}: model.weights.h5 is corrupted ({type(e).__name__}: {e})") \
            from None
    return model


def _explain_missing(zf, names, path, size):
    if "model.weights.npz" in names:
        metadata = {}
        if "metadata.json" in names:
            try:
                metadata = _zip_json(zf, "metadata.json", path, size)
            except FormatError:
                pass
        if isinstance(metadata, dict) and metadata.get("format") == "rnnfast.model":
            raise FormatError(f"{path} is an rnnfast model file; read it with "
                              f"rnnfast.models.load_model")
        raise FormatError(f"{path} keeps its weights in model.weights.npz (Keras's "
                          f"weights_format='npz'), which Keras writes with pickle; rnnfast reads "
                          f"only model.weights.h5 (Keras's default), because it never unpickles")
    missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
    raise FormatError(f"{path} is not a Keras .keras file: the archive lacks {missing}")


def _saving_walk(model):
    """(HDF5 path, layer) pairs as Keras 3's saving walks a model: the model at
    the root, its layers under layers/<snake_case class name> (with _1, _2,
    ... for repeats; a functional model's Input layers included), then each
    wrapper's sublayers under the attribute that holds them, and a nested
    model's layers under its own layers/."""
    out = []

    def walk_model(m, prefix):
        out.append((prefix, m))
        used = {}
        layers = m.layers
        if type(m).__name__ == "Functional":
            layers = [layer for layer in m._layers]
        for layer in layers:
            name = to_snake_case(type(layer).__name__)
            if name in used:
                used[name] += 1
                name = f"{name}_{used[name]}"
            else:
                used[name] = 0
            walk(layer, f"{prefix}/layers/{name}" if prefix else f"layers/{name}")

    def walk(layer, path):
        if type(layer).__name__ in ("Sequential", "Functional"):
            walk_model(layer, path)
            return
        out.append((path, layer))
        if isinstance(layer, RNN):
            walk(layer.cell, path + "/cell")
        elif isinstance(layer, Bidirectional):
            walk(layer.forward_layer, path + "/forward_layer")
            walk(layer.backward_layer, path + "/backward_layer")
        elif isinstance(layer, TimeDistributed):
            walk(layer.layer, path + "/layer")

    walk_model(model, "")
    return out


def _h5_get(h5py, parent, path, where):
    """The object at `path` below `parent`, or None; hard links only (soft
    and external links could point anywhere, even into other files)."""
    node = parent
    for part in path.split("/"):
        if not part or not isinstance(node, h5py.Group) or part not in node:
            return None
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise FormatError(f"{where}: {path} is a {type(link).__name__}; rnnfast reads weights "
                              f"stored in the file itself only")
        node = node[part]
    return node


def _h5_read(h5py, dataset, variable, name, where):
    """A dataset's values, after checking its type and shape against the
    model's weight: a forged header cannot make the reader allocate more."""
    if not isinstance(dataset, h5py.Dataset):
        raise FormatError(f"{where}: {name} is not an array")
    if getattr(dataset, "is_virtual", False) or dataset.external:
        raise FormatError(f"{where}: {name} keeps its data outside the file; refused")
    if "dtype" in dataset.attrs:  # Keras marks bfloat16 weights this way
        raise ConversionError(f"{where}: {name} is stored as {dataset.attrs['dtype']!r}; rnnfast "
                              f"reads float16, float32 and float64 weights")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize not in (2, 4, 8):
        raise FormatError(f"{where}: {name} holds {dataset.dtype} values, not floats")
    if tuple(dataset.shape) != tuple(variable.shape):
        raise FormatError(f"{where}: {name} has shape {tuple(dataset.shape)} in the file, but the "
                          f"model's weight {variable.path} has shape {tuple(variable.shape)}")
    return np.asarray(dataset[()])


def _read_keras3_weights(h5py, h5, model, where):
    where = f"{where}: model.weights.h5"
    legacy_root = "_layer_checkpoint_dependencies" in h5  # .keras files of Keras 2.13-2.15
    for path, layer in _saving_walk(model):
        variables = list(layer._variables)
        group_path = f"{path}/vars" if path else "vars"
        group = _h5_get(h5py, h5, group_path, where)
        if group is None and legacy_root and path:
            group_path = group_path.replace("layers", "_layer_checkpoint_dependencies", 1)
            group = _h5_get(h5py, h5, group_path, where)
        if group is None:
            if variables:
                raise FormatError(f"{where} has no {group_path}, the weights of layer "
                                  f"'{layer.name}'")
            continue
        if not isinstance(group, h5py.Group):
            raise FormatError(f"{where}: {group_path} is not a group")
        keys = sorted(group.keys(), key=lambda k: (len(k), k))
        expected = [str(i) for i in range(len(variables))]
        if keys != expected:
            raise FormatError(f"{where}: {group_path} holds arrays {keys}, but layer "
                              f"'{layer.name}' has {len(variables)} weights "
                              f"({[v.name for v in variables]})")
        values = [_h5_read(h5py, _h5_get(h5py, group, key, where), v, f"{group_path}/{key}", where)
                  for key, v in zip(keys, variables)]
        for v, value in zip(variables, values):
            v.assign(value)


def _read_optimizer_state(h5py, h5, model, where):
    """The optimizer's state (Keras 3's layout: iterations, learning rate,
    then its slots per trainable weight), so that training resumes where
    Keras stopped. As Keras does, a state that does not fit is skipped with a
    warning (a file saved before training has none)."""
    where = f"{where}: model.weights.h5"
    group = _h5_get(h5py, h5, "optimizer/vars", where)
    if group is None or model.optimizer is None:
        return
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{where}: optimizer/vars is not a group")
    optimizer = model.optimizer
    optimizer.build(model.trainable_weights)
    targets = optimizer.variables
    keys = sorted(group.keys(), key=lambda k: (len(k), k))
    datasets = [_h5_get(h5py, group, key, where) for key in keys]
    for key, dataset in zip(keys, datasets):
        if not isinstance(dataset, h5py.Dataset) or getattr(dataset, "is_virtual", False) \
                or dataset.external or dataset.dtype.kind not in "fiu":
            raise FormatError(f"{where}: optimizer/vars/{key} is not a numeric array stored in "
                              f"the file")
    if all(d.shape == () for d in datasets):
        return  # an optimizer saved before its first step: no slots to restore
    if keys != [str(i) for i in range(len(targets))] or \
            [tuple(d.shape) for d in datasets] != [tuple(t.shape) for t in targets]:
        warnings.warn(f"{where}: the saved optimizer state ({len(keys)} arrays) does not fit "
                      f"rnnfast's {type(optimizer).__name__} ({len(targets)} arrays); the "
                      f"optimizer starts afresh", stacklevel=3)
        return
    # Shapes checked: reading allocates no more than the optimizer's own state.
    values = [np.asarray(d[()]) for d in datasets]
    optimizer.set_state(values)


# -- legacy .h5 -----------------------------------------------------------------------------

def _attr(obj, name, where):
    if name not in obj.attrs:
        return None
    aid = obj.attrs.get_id(name)
    if int(np.prod(aid.shape or (), dtype=np.float64)) * aid.dtype.itemsize > MAX_JSON_BYTES:
        raise FormatError(f"{where}: attribute {name} is larger than {MAX_JSON_BYTES} bytes")
    return obj.attrs[name]


def _text(value, what):
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise FormatError(f"{what} is not text")


def _names(obj, name, where):
    """A list-of-names attribute; Keras splits long ones into name0, name1, ..."""
    value = _attr(obj, name, where)
    if value is None:
        value, chunk = [], 0
        while f"{name}{chunk}" in obj.attrs:
            value = list(value) + list(_attr(obj, f"{name}{chunk}", where))
            chunk += 1
    return [_text(v, f"{where}: attribute {name}") for v in np.asarray(value).reshape(-1)]


def _read_legacy_h5(path, compile, custom_objects=None):
    h5py = require_h5py()
    size = os.path.getsize(path)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError, RuntimeError) as e:
        raise FormatError(f"{path} is not a readable HDF5 file (truncated or corrupted: {e})") \
            from None
    try:
        with h5:
            return _legacy_model(h5py, h5, path, size, compile, custom_objects)
    except (FormatError, ConversionError, _budget.BudgetExceeded):
        raise
    except (OSError, KeyError, RuntimeError, UnicodeError, ValueError, TypeError) as e:
        raise FormatError(f"{path} is corrupted ({type(e).__name__}: {e})") from None


def _legacy_model(h5py, h5, path, size, compile, custom_objects=None):
    raw = _attr(h5, "model_config", path)
    if raw is None:
        if "layer_names" in h5.attrs or "model_weights" not in h5:
            raise FormatError(f"{path} holds weights only, no model config (it was written by "
                              f"save_weights): build the model and load the weights into it")
        raise FormatError(f"{path} has no model_config attribute: not a Keras model file")
    config = _parse_json(_text(raw, f"{path}: model_config"), f"{path}: model_config")
    version = _attr(h5, "keras_version", path)
    if version is None and isinstance(config, dict):
        version = config.get("keras_version")
    major = _major_version(None if version is None else _text(version, f"{path}: keras_version"),
                           path)
    model = _build_model(config, path, 2 * size + BUDGET_SLACK, major, custom_objects)
    group = _h5_get(h5py, h5, "model_weights", path)
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{path} has no model_weights group")
    saved = []
    for name in _names(group, "layer_names", path):
        layer_group = _h5_get(h5py, group, name, path)
        if not isinstance(layer_group, h5py.Group):
            raise FormatError(f"{path}: model_weights/{name}, listed in layer_names, is missing")
        weight_names = _names(layer_group, "weight_names", path)
        if weight_names:
            saved.append((name, layer_group, weight_names))
    # Keras matches layers with weights to saved groups with weights, in order.
    targets = [layer for layer in model.layers if layer.weights]
    if len(saved) != len(targets):
        raise FormatError(f"{path} has weights for {len(saved)} layers {[s[0] for s in saved]}, "
                          f"but the model has {len(targets)} layers with weights "
                          f"{[t.name for t in targets]}")
    for (name, layer_group, weight_names), layer in zip(saved, targets):
        variables = layer.weights
        if len(weight_names) != len(variables):
            raise FormatError(f"{path}: model_weights/{name} holds {len(weight_names)} weights, "
                              f"layer '{layer.name}' has {len(variables)}")
        values = []
        for weight_name, v in zip(weight_names, variables):
            where = f"model_weights/{name}/{weight_name}"
            dataset = _h5_get(h5py, layer_group, weight_name, path)
            if dataset is None:
                raise FormatError(f"{path}: {where}, listed in weight_names, is missing")
            values.append(_h5_read(h5py, dataset, v, where, path))
        for v, value in zip(variables, values):
            v.assign(value)
    if compile:
        raw = _attr(h5, "training_config", path)
        if raw is not None:
            training = _parse_json(_text(raw, f"{path}: training_config"),
                                   f"{path}: training_config")
            _compile(model, _compile_config_of(training, path), path)
    return model


def _compile_config_of(training, where):
    """Keras 2's training_config as a Keras 3 compile config."""
    if not isinstance(training, dict):
        raise FormatError(f"{where}: training_config is not a JSON object")
    optimizer = copy.deepcopy(training.get("optimizer_config"))
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict):
        opt = optimizer["config"]
        if "lr" in opt and "learning_rate" not in opt:
            opt["learning_rate"] = opt.pop("lr")
        if not opt.get("decay"):  # Keras 2 wrote decay=0.0 for "no decay"
            opt.pop("decay", None)
    metrics = training.get("metrics")
    # Keras 2 wrote one metric list per output; a Sequential has one output.
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], list):
        metrics = metrics[0]
    return {"optimizer": optimizer, "loss": training.get("loss"), "metrics": metrics,
            "weighted_metrics": training.get("weighted_metrics"),
            "loss_weights": training.get("loss_weights")}


# -- live Keras models ---------------------------------------------------------------------

def _from_keras_object(keras_model, compile, custom_objects=None):
    what = f"Keras model {getattr(keras_model, 'name', '')!r}"
    package = sys.modules.get(type(keras_model).__module__.split(".")[0])
    model = _build_model({"class_name": type(keras_model).__name__,
                          "config": keras_model.get_config()}, what, None,
                         _major_version(getattr(package, "__version__", None), what),
                         custom_objects)
    try:
        model.set_weights(keras_model.get_weights())
    except ValueError as e:
        raise ConversionError(f"{what}: its weights do not fit the rnnfast model ({e})") from None
    if compile and getattr(keras_model, "compiled", False) and \
            hasattr(keras_model, "get_compile_config"):
        _compile(model, keras_model.get_compile_config(), what)
    return model


# ---- writing ---------------------------------------------------------------------------

def to_keras(model, path, *, include_optimizer=True):
    """Writes `model` (a built rnnfast Sequential or functional model) to
    `path` as a Keras 3 ``.keras`` file, which ``keras.models.load_model``
    reads.

    ``include_optimizer``: for a compiled model, also write the loss,
    metrics and optimizer settings, and the optimizer's state, so that Keras
    compiles the model on load and training resumes where it stopped.

    The file is written atomically (a temporary file beside the target, then
    renamed over it). Needs h5py.
    """
    if type(model).__name__ not in ("Sequential", "Functional"):
        raise TypeError(f"to_keras writes rnnfast Sequential and functional models, got "
                        f"{type(model).__name__}")
    if not model.built:
        raise ValueError("to_keras: the model is not built yet; call it on data or build() it "
                         "first")
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"to_keras writes a .keras file, and Keras 3 loads only files named "
                         f"*.keras; got {path!r}")
    h5py = require_h5py()
    if type(model).__name__ == "Sequential":
        config = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
                  "registered_name": None,
                  "build_config": {"input_shape": list(model.input_shape)}}
    else:
        config = {"module": "keras.src.models.functional", "class_name": "Functional",
                  "config": model.get_config(), "registered_name": "Functional",
                  "build_config": {"input_shape": None}}
    optimizer_state = None
    config["compile_config"] = {}  # as Keras 3.15 writes for an uncompiled model
    if include_optimizer and model.compiled:
        config["compile_config"] = model.get_compile_config()
        optimizer_state = _optimizer_state(model)
    try:
        config_json = json.dumps(config)
    except TypeError as e:
        raise ConversionError(f"to_keras: the model's config cannot be written as JSON ({e}); a "
                              f"custom loss or metric? pass include_compile=False") from None
    metadata = {"keras_version": KERAS_FORMAT_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "saved_by": f"rnnfast {__import__('rnnfast').__version__}"}
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        # Every layer gets its (possibly empty) vars group, named as Keras
        # names it, so that Keras finds each layer's weights where it looks.
        for group_path, layer in _saving_walk(model):
            group = h5.create_group(f"{group_path}/vars" if group_path else "vars")
            group.attrs["name"] = layer.name
            for i, v in enumerate(layer._variables):
                group.create_dataset(str(i), data=v.value)
        if optimizer_state is not None:
            group = h5.create_group("optimizer/vars")
            group.attrs["name"] = model.optimizer.name
            for i, value in enumerate(optimizer_state):
                group.create_dataset(str(i), data=value)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", config_json)
        zf.writestr("model.weights.h5", weights.getvalue())
    write_atomically(path, archive.getvalue())


def _optimizer_state(model):
    """The optimizer's state in Keras 3's layout. Keras builds the optimizer
    when it compiles a loaded model, so an rnnfast optimizer that has not
    stepped yet is written as a fresh built one (zero slots), which Keras
    then reads without complaint."""
    from .. import optimizers

    optimizer = model.optimizer
    if not getattr(optimizer, "built", False):
        optimizer = optimizers.deserialize(optimizers.serialize(optimizer))
        optimizer.build(model.trainable_weights)
    return [np.array(v, copy=True) for v in optimizer.variables]
