"""torch.nn.RNN / LSTM / GRU <-> rnnfast recurrent layers.

The cells compute the same functions; only the layouts differ:

- torch's ``weight_ih_l{k}`` is ``[G*H, I]`` and ``weight_hh_l{k}`` ``[G*H, H]``;
  Keras's (and rnnfast's) ``kernel`` is ``[I, G*H]`` and ``recurrent_kernel``
  ``[H, G*H]``: transposes.
- Gate order: LSTM i, f, g, o is Keras's i, f, c, o; GRU r, z, n is Keras's
  z, r, h with the first two blocks swapped.
- torch has two bias vectors. For SimpleRNN and LSTM they only ever appear
  summed, so Keras's single bias is ``b_ih + b_hh``. torch's GRU is Keras's
  ``reset_after=True`` GRU, whose bias ``[2, 3H]`` is exactly ``[b_ih; b_hh]``.
- ``num_layers`` is a stack of layers; ``bidirectional`` is
  ``Bidirectional(merge_mode="concat")``; ``dropout`` (applied in training
  between layers) is a ``Dropout`` layer between them.
- rnnfast takes batch-major ``[batch, time, features]`` inputs, like torch with
  ``batch_first=True``; with ``batch_first=False`` transpose the first two axes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping

import numpy as np

from ..layers import registry
from ._common import ConversionError, as_numpy, float_dtype, require_torch

_MODES = {"RNN_TANH": ("RNN", "tanh"), "RNN_RELU": ("RNN", "relu"), "LSTM": ("LSTM", None),
          "GRU": ("GRU", None)}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _gru_swap(units):
    """Column order that turns Keras's z, r, h blocks into torch's r, z, n
    (and back: the permutation is its own inverse)."""
    u = units
    return np.r_[u:2 * u, 0:u, 2 * u:3 * u]


def _as_numpy(value, name):
    return as_numpy(value, name)


# ---- torch -> rnnfast ---------------------------------------------------------------------

def _module_spec(module):
    """(state dict, mode, nonlinearity, dropout) of a torch.nn.RNN/LSTM/GRU."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.RNN, LSTM or GRU or its state_dict(), got "
                        f"{type(module).__name__}")
    if not isinstance(module, torch.nn.RNNBase) or getattr(module, "mode", None) not in _MODES:
        raise ConversionError(f"from_torch converts torch.nn.RNN, LSTM and GRU modules; "
                              f"{type(module).__name__} has no rnnfast counterpart")
    if getattr(module, "proj_size", 0):
        raise ConversionError(f"from_torch: LSTM with proj_size={module.proj_size} (projected "
                              f"hidden states) has no rnnfast counterpart")
    mode, nonlinearity = _MODES[module.mode]
    state = {k: _as_numpy(v, k) for k, v in module.state_dict().items()}
    return state, mode, nonlinearity, float(module.dropout)


def _parse_state(state, mode, prefix):
    """Checks a state dict's keys and shapes; returns its layout."""
    if prefix is None:
        prefixes = {k[:-len("weight_ih_l0")] for k in state if k.endswith("weight_ih_l0")}
        if len(prefixes) > 1:
            raise ConversionError(f"from_torch: the state dict holds several recurrent modules "
                                  f"({sorted(prefixes)}); pass prefix= to choose one")
        prefix = prefixes.pop() if prefixes else ""
    params, unknown = {}, []
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        m = _KEY.match(key[len(prefix):])
        if m is None:
            unknown.append(key)
            continue
        kind, layer, reverse = m.group(1), int(m.group(2)), bool(m.group(3))
        if kind == "weight_hr":
            raise ConversionError(f"from_torch: {key} is the projection of an LSTM with proj_size "
                                  f"> 0, which has no rnnfast counterpart")
        params[(kind, layer, reverse)] = _as_numpy(value, key)
    if unknown:
        raise ConversionError(f"from_torch: unexpected entries {sorted(unknown)} in the state "
                              f"dict of a torch.nn.RNN, LSTM or GRU")
    if ("weight_ih", 0, False) not in params or ("weight_hh", 0, False) not in params:
        raise ConversionError(f"from_torch: the state dict has no {prefix}weight_ih_l0 and "
                              f"{prefix}weight_hh_l0; it is not that of a torch.nn.RNN, LSTM or "
                              f"GRU")
    w_hh = params[("weight_hh", 0, False)]
    if w_hh.ndim != 2 or w_hh.shape[1] == 0:
        raise ConversionError(f"from_torch: {prefix}weight_hh_l0 has shape {w_hh.shape}, "
                              f"expected [gates * hidden_size, hidden_size]")
    hidden = w_hh.shape[1]
    gates = w_hh.shape[0] // hidden if w_hh.shape[0] % hidden == 0 else None
    by_gates = {1: "RNN", 3: "GRU", 4: "LSTM"}
    if mode is None:
        if gates not in by_gates:
            raise ConversionError(f"from_torch: {prefix}weight_hh_l0 has shape {w_hh.shape}, "
                                  f"which fits no torch.nn.RNN (1 gate), GRU (3) or LSTM (4)")
        mode = by_gates[gates]
    elif gates != _GATES[mode]:
        raise ConversionError(f"from_torch: {prefix}weight_hh_l0 has shape {w_hh.shape}, not "
                              f"that of a torch.nn.{mode} (hidden size {hidden})")
    num_layers = 1 + max(layer for _, layer, _ in params)
    bidirectional = any(reverse for _, _, reverse in params)
    bias = ("bias_ih", 0, False) in params
    directions = (False, True) if bidirectional else (False,)
    G, H = _GATES[mode], hidden
    input_size = params[("weight_ih", 0, False)].shape[-1]
    expected = {}
    for layer in range(num_layers):
        for reverse in directions:
            inputs = input_size if layer == 0 else H * len(directions)
            expected[("weight_ih", layer, reverse)] = (G * H, inputs)
            expected[("weight_hh", layer, reverse)] = (G * H, H)
            if bias:
                expected[("bias_ih", layer, reverse)] = (G * H,)
                expected[("bias_hh", layer, reverse)] = (G * H,)

    def key_name(k):
        return f"{prefix}{k[0]}_l{k[1]}{'_reverse' if k[2] else ''}"

    missing = sorted(key_name(k) for k in expected if k not in params)
    extra = sorted(key_name(k) for k in params if k not in expected)
    if missing or extra:
        raise ConversionError(f"from_torch: the state dict of a {num_layers}-layer "
                              f"{'bidirectional ' if bidirectional else ''}torch.nn.{mode} "
                              f"{'with' if bias else 'without'} bias "
                              f"{'lacks ' + str(missing) if missing else ''}"
                              f"{' and ' if missing and extra else ''}"
                              f"{'has unexpected ' + str(extra) if extra else ''}")
    for k, shape in expected.items():
        if params[k].shape != shape:
            raise ConversionError(f"from_torch: {key_name(k)} has shape {params[k].shape}, "
                                  f"expected {shape}")
    return params, dict(mode=mode, input_size=int(input_size), hidden_size=int(H),
                        num_layers=num_layers, bias=bias, bidirectional=bidirectional)


def _keras_weights(mode, params, layer, reverse, bias, dtype):
    """[kernel, recurrent_kernel(, bias)] of one direction of one torch layer
    (computed in float64, so that summing the biases loses nothing)."""
    kernel = params[("weight_ih", layer, reverse)].astype(np.float64).T
    recurrent = params[("weight_hh", layer, reverse)].astype(np.float64).T
    swap = _gru_swap(recurrent.shape[0]) if mode == "GRU" else slice(None)
    out = [kernel[:, swap], recurrent[:, swap]]
    if bias:
        b_ih = params[("bias_ih", layer, reverse)].astype(np.float64)
        b_hh = params[("bias_hh", layer, reverse)].astype(np.float64)
        out.append(np.stack([b_ih[swap], b_hh[swap]]) if mode == "GRU" else b_ih + b_hh)
    return [np.ascontiguousarray(w, dtype=dtype) for w in out]


def from_torch(module_or_state_dict, *, return_sequences=True, nonlinearity=None, dtype=None,
               prefix=None):
    """An rnnfast Sequential computing what a torch.nn.RNN, LSTM or GRU computes.

    ``module_or_state_dict``: the module, or its ``state_dict()`` (tensors or
    NumPy arrays, e.g. read from an ``.npz``); from a state dict the kind,
    sizes, ``num_layers``, ``bidirectional`` and ``bias`` are read off the
    keys and shapes. ``prefix``: the keys' prefix when the state dict is a
    larger model's (found by itself when there is one recurrent module).

    The model takes batch-major inputs ``[batch, time, input_size]`` (torch's
    ``batch_first=True``; for ``batch_first=False`` modules feed
    ``x.transpose(1, 0, 2)``) and starts from zero states (torch's
    ``hx=None``). It returns torch's ``output`` (batch-major), or with
    ``return_sequences=False`` the last layer's final hidden state, torch's
    ``h_n[-1]`` (``cat(h_n[-2], h_n[-1])`` when bidirectional). Layers:
    ``SimpleRNN``, ``LSTM`` or ``GRU(reset_after=True)``, one per torch layer,
    each wrapped in ``Bidirectional(merge_mode="concat")`` when bidirectional,
    with ``Dropout(dropout)`` between them when torch's ``dropout`` > 0.

    ``nonlinearity``: "tanh" or "relu" for a torch.nn.RNN given as a state
    dict (its keys do not say; default "tanh"). ``dtype``: "float32" or
    "float64" (default: the weights' own, which must be one of those).
    ``proj_size`` > 0 raises ConversionError, as do malformed state dicts.
    """
    from .. import layers
    from ._torch_layers import from_torch_layer, is_torch_layer

    if is_torch_layer(module_or_state_dict):
        return from_torch_layer(module_or_state_dict, dtype=dtype)
    Sequential = registry.get_class("Sequential")

    if isinstance(module_or_state_dict, Mapping):
        state, mode, module_nonlinearity, dropout = module_or_state_dict, None, None, 0.0
    else:
        state, mode, module_nonlinearity, dropout = _module_spec(module_or_state_dict)
        prefix = ""
    params, spec = _parse_state(state, mode, prefix)
    mode = spec["mode"]
    if nonlinearity is not None:
        if mode != "RNN":
            raise ValueError(f"from_torch: nonlinearity applies to torch.nn.RNN, not {mode}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"from_torch: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        if module_nonlinearity is not None and nonlinearity != module_nonlinearity:
            raise ValueError(f"from_torch: nonlinearity={nonlinearity!r}, but the module's is "
                             f"{module_nonlinearity!r}")
    nonlinearity = nonlinearity or module_nonlinearity or "tanh"
    if dtype is None:
        source = params[("weight_ih", 0, False)].dtype
        if source not in (np.float32, np.float64):
            raise ConversionError(f"from_torch: the weights are {source}; rnnfast computes in "
                                  f"float32 or float64: pass dtype='float32'")
        dtype = source
    dtype = float_dtype(dtype, "from_torch")
    H, bias, bidirectional = spec["hidden_size"], spec["bias"], spec["bidirectional"]

    def make(last):
        rs = return_sequences or not last
        if mode == "LSTM":
            layer = layers.LSTM(H, use_bias=bias, return_sequences=rs, dtype=dtype.name)
        elif mode == "GRU":
            layer = layers.GRU(H, use_bias=bias, reset_after=True, return_sequences=rs,
                               dtype=dtype.name)
        else:
            layer = layers.SimpleRNN(H, activation=nonlinearity, use_bias=bias,
                                     return_sequences=rs, dtype=dtype.name)
        return layers.Bidirectional(layer, merge_mode="concat", dtype=dtype.name) \
            if bidirectional else layer

    n = spec["num_layers"]
    recurrent = [make(k == n - 1) for k in range(n)]
    stack = [layers.Input(shape=(None, spec["input_size"]), dtype=dtype.name)]
    for k, layer in enumerate(recurrent):
        if k and dropout > 0:
            stack.append(layers.Dropout(dropout, dtype=dtype.name))
        stack.append(layer)
    model = Sequential(stack)
    for k, layer in enumerate(recurrent):
        weights = _keras_weights(mode, params, k, False, bias, dtype)
        if bidirectional:
            weights += _keras_weights(mode, params, k, True, bias, dtype)
        layer.set_weights(weights)
    return model


# ---- rnnfast -> torch ---------------------------------------------------------------------

def _cell_mode(layer, where):
    from ..layers.rnn.gru import GRUCell
    from ..layers.rnn.lstm import LSTMCell
    from ..layers.rnn.simple_rnn import SimpleRNNCell

    cell = layer.cell
    if isinstance(cell, SimpleRNNCell):
        if cell._activation_name not in ("tanh", "relu"):
            raise ConversionError(f"{where}: activation={cell._activation_name!r}; torch.nn.RNN "
                                  f"computes tanh or relu")
        return "RNN", cell._activation_name
    if isinstance(cell, (LSTMCell, GRUCell)):
        kind = "LSTM" if isinstance(cell, LSTMCell) else "GRU"
        if cell._activation_name != "tanh" or cell._recurrent_activation_name != "sigmoid":
            raise ConversionError(f"{where}: activation={cell._activation_name!r}, "
                                  f"recurrent_activation={cell._recurrent_activation_name!r}; "
                                  f"torch.nn.{kind} computes tanh and sigmoid")
        if kind == "GRU" and not cell.reset_after:
            raise ConversionError(f"{where}: GRU(reset_after=False) has no torch counterpart; "
                                  f"torch.nn.GRU is Keras's reset_after=True")
        return kind, None
    raise ConversionError(f"{where}: cell {type(cell).__name__} has no torch counterpart")


def _check_direction(layer, where, ignore_training_options):
    """(mode, nonlinearity) of one rnnfast recurrent layer that torch can run."""
    from ..layers.rnn.base import RNN

    if not isinstance(layer, RNN):
        raise ConversionError(f"{where}: {type(layer).__name__} has no torch.nn.RNN/LSTM/GRU "
                              f"counterpart")
    if not layer.built:
        raise ValueError(f"{where}: the layer is not built yet (it has no weights); build the "
                         f"model first")
    mode = _cell_mode(layer, where)
    if layer.stateful:
        raise ConversionError(f"{where}: stateful=True has no torch.nn counterpart (pass the "
                              f"states to the torch module yourself)")
    if not ignore_training_options:
        cell = layer.cell
        options = [f"{name}={getattr(cell, name)}" for name in ("dropout", "recurrent_dropout")
                   if getattr(cell, name) > 0]
        options += [name for name in ("kernel_regularizer", "recurrent_regularizer",
                                      "bias_regularizer", "kernel_constraint",
                                      "recurrent_constraint", "bias_constraint")
                    if getattr(cell, name) is not None]
        if layer.activity_regularizer is not None:
            options.append("activity_regularizer")
        if options:
            raise ConversionError(f"{where} has {', '.join(options)}, training-time options that "
                                  f"torch.nn's recurrent modules do not have; predictions do not "
                                  f"depend on them: pass ignore_training_options=True to convert "
                                  f"without them")
    return mode


def _torch_layers(model_or_layers, ignore_training_options):
    """[(directions, name)] of a stack that one torch module can compute,
    and the dropout between its layers."""
    from ..layers import Dropout, InputLayer, Layer
    from ..layers.rnn.bidirectional import Bidirectional
    Sequential = registry.get_class("Sequential")

    if isinstance(model_or_layers, Sequential):
        if not model_or_layers.built:
            raise ValueError("to_torch: the model is not built yet; call it on data or build() it "
                             "first")
        items = model_or_layers.layers
    elif isinstance(model_or_layers, Layer):
        items = [model_or_layers]
    elif isinstance(model_or_layers, (list, tuple)):
        items = list(model_or_layers)
    else:
        raise TypeError(f"to_torch takes an rnnfast Sequential, a layer or a list of layers, got "
                        f"{type(model_or_layers).__name__}")
    items = [layer for layer in items if not isinstance(layer, InputLayer)]
    entries, gaps, pending = [], [], None
    for i, layer in enumerate(items):
        where = f"layer '{getattr(layer, 'name', layer)}'"
        if isinstance(layer, Dropout):
            if not entries or pending is not None:
                raise ConversionError(f"to_torch: {where} (Dropout) must sit between two "
                                      f"recurrent layers, where torch applies its dropout")
            if layer.noise_shape is not None:
                raise ConversionError(f"to_torch: {where} has a noise_shape; torch's dropout "
                                      f"between layers has none")
            pending = layer.rate
            continue
        if isinstance(layer, Bidirectional):
            if layer.merge_mode != "concat":
                raise ConversionError(f"to_torch: {where} has merge_mode={layer.merge_mode!r}; "
                                      f"bidirectional torch modules concatenate the directions")
            forward, backward = layer.forward_layer, layer.backward_layer
            if getattr(forward, "go_backwards", True) or not getattr(backward, "go_backwards",
                                                                     False):
                raise ConversionError(f"to_torch: {where} must read forwards, then backwards")
            directions = [forward, backward]
        else:
            if not hasattr(layer, "cell"):
                raise ConversionError(
                    f"to_torch: {where} ({type(layer).__name__}) has no counterpart in "
                    f"torch.nn.RNN/LSTM/GRU; to_torch converts a stack of SimpleRNN, LSTM or GRU "
                    f"layers (optionally Bidirectional, with Dropout between them)"
                    + (f": convert model.layers[:{i}]" if entries else ""))
            if layer.go_backwards:
                raise ConversionError(f"to_torch: {where} has go_backwards=True; torch reads "
                                      f"backwards only as the second direction of a "
                                      f"bidirectional module")
            directions = [layer]
        if entries:
            gaps.append(pending or 0.0)
        pending = None
        entries.append((directions, where))
    if not entries:
        raise ConversionError("to_torch: no recurrent layers to convert")
    if pending is not None:
        raise ConversionError("to_torch: a Dropout after the last recurrent layer has no "
                              "counterpart in torch's recurrent modules")
    if len(set(gaps)) > 1:
        raise ConversionError(f"to_torch: torch applies one dropout rate between all layers; the "
                              f"stack has {gaps}")
    return entries, (gaps[0] if gaps else 0.0)


def to_torch_state_dict(model_or_layers, *, ignore_training_options=False):
    """``(state_dict, config)``: the torch weights of a stack of rnnfast
    recurrent layers as NumPy arrays, and the arguments of the torch module
    that takes them (``config["mode"]`` is "RNN", "LSTM" or "GRU"; the other
    keys are torch.nn.RNN/LSTM/GRU constructor arguments). Needs no torch.

    The stack: SimpleRNN (tanh or relu), LSTM (tanh/sigmoid) or
    GRU(reset_after=True) layers, all of one kind, size and bias setting,
    each optionally wrapped in Bidirectional(merge_mode="concat"), every one
    but the last with return_sequences=True, with optionally one Dropout of
    one rate between each two. Anything else raises ConversionError, and so
    do dropout, recurrent_dropout, regularizers and constraints unless
    ``ignore_training_options=True`` (they change training, not predictions).
    Keras's single bias goes to ``bias_ih`` and ``bias_hh`` is zero, except
    for GRU, which has both.
    """
    entries, dropout = _torch_layers(model_or_layers, ignore_training_options)
    state, first = {}, None
    names = ("kind", "activation", "units", "use_bias", "directions", "dtype")
    for k, (directions, where) in enumerate(entries):
        for d, layer in enumerate(directions):
            mode, nonlinearity = _check_direction(layer, f"to_torch: {where}",
                                                  ignore_training_options)
            cell = layer.cell
            key = (mode, nonlinearity, cell.units, cell.use_bias, len(directions),
                   cell.compute_dtype)
            if first is None:
                first, input_size = key, cell.kernel.shape[0]
            elif key != first:
                diff = [f"{n}: {a} vs {b}" for n, a, b in zip(names, first, key) if a != b]
                raise ConversionError(f"to_torch: {where} differs from the first recurrent layer "
                                      f"({', '.join(diff)}); one torch module has layers of one "
                                      f"kind, size, bias setting and dtype")
            if k < len(entries) - 1 and not layer.return_sequences:
                raise ConversionError(f"to_torch: {where} has return_sequences=False but feeds "
                                      f"another recurrent layer; in torch every layer but the "
                                      f"last returns sequences")
            H = cell.units
            kernel, recurrent = cell.kernel.value, cell.recurrent_kernel.value
            if k > 0 and kernel.shape[0] != H * len(directions):
                raise ConversionError(f"to_torch: {where} takes {kernel.shape[0]} features, but "
                                      f"the layer before it gives {H * len(directions)}")
            suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
            if mode == "GRU":
                swap = _gru_swap(H)
                kernel, recurrent = kernel[:, swap], recurrent[:, swap]
            state["weight_ih" + suffix] = np.ascontiguousarray(kernel.T)
            state["weight_hh" + suffix] = np.ascontiguousarray(recurrent.T)
            if cell.use_bias:
                bias = cell.bias.value
                if mode == "GRU":
                    b_ih, b_hh = bias[0][swap], bias[1][swap]
                else:  # only the sum matters: all of it in b_ih
                    b_ih, b_hh = bias, np.zeros_like(bias)
                state["bias_ih" + suffix] = np.ascontiguousarray(b_ih)
                state["bias_hh" + suffix] = np.ascontiguousarray(b_hh)
    mode, nonlinearity, units, use_bias, n_directions, dtype = first
    config = dict(mode=mode, input_size=int(input_size), hidden_size=int(units),
                  num_layers=len(entries), bias=bool(use_bias), bidirectional=n_directions == 2,
                  dropout=float(dropout))
    if mode == "RNN":
        config["nonlinearity"] = nonlinearity
    config["dtype"] = dtype.name
    return state, config


def to_torch(model_or_layers, *, batch_first=True, ignore_training_options=False):
    """A torch.nn.RNN, LSTM or GRU computing what a stack of rnnfast recurrent
    layers computes (see to_torch_state_dict for which stacks qualify).

    ``batch_first=True`` (default) takes the same ``[batch, time, features]``
    inputs as rnnfast. The module's ``output`` is the rnnfast stack's output
    when its last layer returns sequences, otherwise ``h_n[-1]`` (bidirectional:
    ``cat(h_n[-2], h_n[-1])``) is. The module is in torch's default training
    mode; call ``.eval()`` for inference when it has dropout.
    """
    from ..layers import BatchNormalization, LayerNormalization
    from ..layers.convolutional import BaseConv
    from ._torch_layers import to_torch_layer

    if isinstance(model_or_layers, (BaseConv, LayerNormalization, BatchNormalization)):
        return to_torch_layer(model_or_layers)
    torch = require_torch()
    state, config = to_torch_state_dict(model_or_layers,
                                        ignore_training_options=ignore_training_options)
    config = dict(config)
    cls = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[config.pop("mode")]
    dtype = {"float32": torch.float32, "float64": torch.float64}[config.pop("dtype")]
    module = cls(**config, batch_first=batch_first, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    return module
