"""torch.nn.Conv1d / Conv2d / LayerNorm / BatchNorm1d / BatchNorm2d <-> the
rnnfast layers that compute the same function.

Layouts: torch's conv ``weight`` is ``[out, in/groups, *kernel]``, Keras's
``kernel`` is ``[*kernel, in/groups, out]`` (a transpose); ``bias``,
LayerNorm's ``weight``/``bias`` (Keras ``gamma``/``beta``) and BatchNorm's
``weight``, ``bias``, ``running_mean``, ``running_var`` (Keras ``gamma``,
``beta``, ``moving_mean``, ``moving_variance``) are the same arrays.

Semantics that do not carry over exactly: torch's BatchNorm updates
``running_var`` with the *unbiased* batch variance and ``momentum`` weights the
new batch (Keras: the old value, and the biased variance); the converted
layer has ``momentum = 1 - torch momentum`` and predicts identically, but
training it updates its moving variance the Keras way. Torch convolutions
that pad other than 'valid'/'same' (asymmetric effect, reflect, ...) have no
Keras counterpart and raise ConversionError.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np

from ._common import ConversionError, as_numpy, float_dtype, require_torch

_KINDS = ("Conv1d", "Conv2d", "LayerNorm", "BatchNorm1d", "BatchNorm2d")


def is_torch_layer(obj) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and type(obj).__name__ in _KINDS and isinstance(obj, torch.nn.Module)


def _conv_padding(module, where):
    """Keras's padding name for a torch convolution's padding."""
    if module.padding_mode != "zeros":
        raise ConversionError(f"{where}: padding_mode={module.padding_mode!r}; Keras "
                              f"convolutions pad with zeros only")
    pad = module.padding
    if isinstance(pad, str):
        return pad  # 'valid' or 'same' (torch's 'same' splits the padding as Keras does)
    if all(p == 0 for p in pad):
        return "valid"
    # Symmetric padding equal to 'same' (stride 1: total (k-1)*dilation, even).
    same = all(s == 1 and 2 * p == d * (k - 1) for p, s, d, k in
               zip(pad, module.stride, module.dilation, module.kernel_size))
    if same:
        return "same"
    raise ConversionError(f"{where}: padding={tuple(pad)} is neither 0 ('valid') nor the "
                          f"padding of 'same'; put a ZeroPadding layer before a 'valid' "
                          f"convolution instead")


def from_torch_layer(module, *, data_format="channels_first", dtype=None):
    """The rnnfast layer computing what a torch.nn.Conv1d, Conv2d, LayerNorm,
    BatchNorm1d or BatchNorm2d module computes, with its weights.

    ``data_format``: "channels_first" (default) takes torch's own input layout
    ([N, C, L] or [N, C, H, W]); "channels_last" takes Keras's. LayerNorm
    normalizes the last axes in both. ``dtype``: float32 or float64 (default:
    the weights')."""
    from .. import layers

    kind = type(module).__name__
    where = f"from_torch({kind})"
    if not is_torch_layer(module):
        raise ConversionError(f"from_torch converts torch.nn.Conv1d, Conv2d, LayerNorm, "
                              f"BatchNorm1d and BatchNorm2d layers (and RNN/LSTM/GRU modules); "
                              f"got {type(module).__name__}")
    state = {k: as_numpy(v, k, where) for k, v in module.state_dict().items()
             if k != "num_batches_tracked"}
    if dtype is None:
        dtype = next(iter(state.values())).dtype if state else np.float32
    dtype = float_dtype(dtype, where).name
    if kind in ("Conv1d", "Conv2d"):
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"{where}: data_format must be 'channels_first' or 'channels_last', "
                             f"got {data_format!r}")
        rank = 1 if kind == "Conv1d" else 2
        cls = layers.Conv1D if rank == 1 else layers.Conv2D
        layer = cls(module.out_channels, tuple(module.kernel_size), strides=tuple(module.stride),
                    padding=_conv_padding(module, where), dilation_rate=tuple(module.dilation),
                    groups=module.groups, use_bias=module.bias is not None,
                    data_format=data_format, dtype=dtype)
        shape = ((None, module.in_channels) + (None,) * rank if data_format == "channels_first"
                 else (None,) + (None,) * rank + (module.in_channels,))
    elif kind == "LayerNorm":
        n = len(module.normalized_shape)
        affine = module.elementwise_affine
        layer = layers.LayerNormalization(axis=-1 if n == 1 else list(range(-n, 0)),
                                          epsilon=module.eps, scale=affine,
                                          center=affine and module.bias is not None, dtype=dtype)
        shape = (None,) + tuple(module.normalized_shape)
    else:
        if not module.track_running_stats:
            raise ConversionError(f"{where}: track_running_stats=False (batch statistics in "
                                  f"inference too) has no Keras counterpart")
        if module.momentum is None:
            raise ConversionError(f"{where}: momentum=None (a cumulative average) has no Keras "
                                  f"counterpart")
        layer = layers.BatchNormalization(axis=1 if data_format == "channels_first" else -1,
                                          momentum=1.0 - module.momentum, epsilon=module.eps,
                                          center=module.affine, scale=module.affine, dtype=dtype)
        rest = (None,) if kind == "BatchNorm1d" else (None, None)
        shape = ((None, module.num_features) + rest if data_format == "channels_first"
                 else (None,) + rest + (module.num_features,))
    layer.build(shape)
    load_torch_state_dict(layer, state)
    return layer


def _targets(layer, where):
    """[(torch key, rnnfast variable, to_torch, from_torch)] of a layer."""
    from ..layers import BatchNormalization, LayerNormalization
    from ..layers.convolutional import BaseConv

    if not layer.built:
        raise ValueError(f"{where}: layer '{layer.name}' is not built yet")
    if isinstance(layer, BaseConv):
        r = layer.rank
        # Keras [*k, in/g, out] <-> torch [out, in/g, *k]
        to_t = (r + 1, r) + tuple(range(r))
        from_t = tuple(range(2, 2 + r)) + (1, 0)
        out = [("weight", layer.kernel, to_t, from_t)]
        if layer.bias is not None:
            out.append(("bias", layer.bias, None, None))
        return out
    if isinstance(layer, LayerNormalization):
        return [(k, v, None, None) for k, v in (("weight", layer.gamma), ("bias", layer.beta))
                if v is not None]
    if isinstance(layer, BatchNormalization):
        pairs = [("weight", layer.gamma), ("bias", layer.beta),
                 ("running_mean", layer.moving_mean), ("running_var", layer.moving_variance)]
        return [(k, v, None, None) for k, v in pairs if v is not None]
    raise ConversionError(f"{where}: layer '{layer.name}' ({type(layer).__name__}) is not a "
                          f"Conv1D, Conv2D, LayerNormalization or BatchNormalization layer")


def torch_state_dict(layer, *, prefix=""):
    """The layer's weights in torch's names and layouts, as NumPy arrays (no
    torch needed); ``prefix`` is prepended to the keys ("conv1.")."""
    out = {}
    for key, var, to_t, _ in _targets(layer, "torch_state_dict"):
        value = var.value if to_t is None else np.transpose(var.value, to_t)
        out[prefix + key] = np.ascontiguousarray(value)
    return out


def load_torch_state_dict(layer, state_dict, *, prefix=""):
    """Sets a built Conv1D/Conv2D/LayerNormalization/BatchNormalization
    layer's weights from a torch module's state dict (tensors or arrays;
    keys with ``prefix``). Every expected key must be there with the shape
    the layer needs; nothing is written unless all are."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"load_torch_state_dict: state_dict must be a mapping, got "
                        f"{type(state_dict).__name__}")
    where = f"load_torch_state_dict(layer '{layer.name}')"
    staged = []
    for key, var, _, from_t in _targets(layer, where):
        if prefix + key not in state_dict:
            raise ConversionError(f"{where}: the state dict has no '{prefix + key}' (keys: "
                                  f"{sorted(state_dict)[:8]})")
        value = as_numpy(state_dict[prefix + key], prefix + key, where)
        value = value if from_t is None else np.transpose(value, from_t)
        if value.shape != var.shape:
            raise ConversionError(f"{where}: '{prefix + key}' gives shape {value.shape} in Keras "
                                  f"layout, the layer's '{var.name}' is {var.shape}")
        staged.append((var, value))
    for var, value in staged:
        var.value[...] = value


def to_torch_layer(layer):
    """A torch.nn module computing what an rnnfast Conv1D/Conv2D (channels_first
    inputs in torch), LayerNormalization (over trailing axes) or
    BatchNormalization (channel axis 1) layer computes, with its weights."""
    from ..layers import BatchNormalization, LayerNormalization
    from ..layers.convolutional import BaseConv

    torch = require_torch()
    where = f"to_torch(layer '{layer.name}')"
    state = torch_state_dict(layer)
    dtype = {"float32": torch.float32, "float64": torch.float64}[layer.compute_dtype.name]
    if isinstance(layer, BaseConv):
        if layer.activation.__name__ != "linear":
            raise ConversionError(f"{where}: activation '{layer.activation.__name__}' is a "
                                  f"separate module in torch; convert a linear convolution")
        if layer.padding == "causal":
            raise ConversionError(f"{where}: padding='causal' is left padding, which torch's "
                                  f"Conv1d does not have (pad with F.pad first)")
        cls = torch.nn.Conv1d if layer.rank == 1 else torch.nn.Conv2d
        k = layer.kernel.shape
        padding = layer.padding
        if padding == "same" and max(layer.strides) > 1:
            raise ConversionError(f"{where}: torch's padding='same' needs strides of 1")
        module = cls(k[-2] * layer.groups, k[-1], tuple(layer.kernel_size),
                     stride=tuple(layer.strides), padding=padding,
                     dilation=tuple(layer.dilation_rate), groups=layer.groups,
                     bias=layer.bias is not None, dtype=dtype)
    elif isinstance(layer, LayerNormalization):
        shape = layer._shape
        axes = layer.axis if isinstance(layer.axis, list) else [layer.axis]
        if sorted(axes) != list(range(-len(shape), 0)):
            raise ConversionError(f"{where}: torch's LayerNorm normalizes the last axes given as "
                                  f"negative indices; axis={layer.axis}")
        if layer.center and not layer.scale:
            raise ConversionError(f"{where}: center=True with scale=False has no torch LayerNorm "
                                  f"counterpart")
        module = torch.nn.LayerNorm(shape, eps=layer.epsilon, elementwise_affine=layer.scale,
                                    bias=layer.center, dtype=dtype)
    elif isinstance(layer, BatchNormalization):
        if layer.axis != 1:
            raise ConversionError(f"{where}: torch's BatchNorm normalizes axis 1; axis="
                                  f"{layer.axis}")
        if layer.center != layer.scale:
            raise ConversionError(f"{where}: torch's affine=True/False has gamma and beta "
                                  f"together; center={layer.center}, scale={layer.scale}")
        cls = torch.nn.BatchNorm2d if getattr(layer, "_input_rank", 3) == 4 else torch.nn.BatchNorm1d
        module = cls(layer.moving_mean.shape[0], eps=layer.epsilon,
                                      momentum=1.0 - layer.momentum, affine=layer.scale,
                                      dtype=dtype)
    else:
        _targets(layer, where)
        raise AssertionError
    missing, unexpected = module.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)
    missing = [m for m in missing if m != "num_batches_tracked"]
    if missing or unexpected:
        raise ConversionError(f"{where}: state dict mismatch: missing {missing}, unexpected "
                              f"{unexpected}")
    return module
