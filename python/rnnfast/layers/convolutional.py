"""Conv1D and Conv2D (Keras 3's layers/convolutional/) on the C++ kernels
(``rnnfast._core.conv_forward`` / ``conv_backward``: im2col + GEMM, bias and
the common activations fused). Both run as a 2-D convolution in
channels_last; a 1-D input [N, T, C] is the image [N, 1, T, C], and
channels_first inputs are transposed on the way in and out."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import activations as activations_module
from .. import backend as backend_module
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .core import _serialize, apply_activation_backward
from .layer import Layer, as_float
from .registry import register

# Activations the kernels apply (and differentiate) themselves.
_FUSED = {"linear": "linear", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
          "hard_sigmoid": "hard_sigmoid"}


def standardize_tuple(value, n, name, allow_zero=False):
    """An int or n ints as a tuple of n ints (Keras's argument check)."""
    msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value!r}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(msg) from None
        if len(values) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                       for v in values):
            raise ValueError(msg)
        values = tuple(int(v) for v in values)
    low = 0 if allow_zero else 1
    if any(v < low for v in values):
        raise ValueError(f"The `{name}` argument must be a tuple of {n} integers, each "
                         f"{'>= 0' if allow_zero else '> 0'}. Received {name}={value!r}")
    return values


def standardize_data_format(data_format):
    if data_format is None:
        return backend_module.image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"The `data_format` argument must be one of {{'channels_first', "
                         f"'channels_last'}}. Received: data_format={data_format}")
    return data_format


def standardize_padding(value, allow_causal=False):
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    padding = str(value).lower() if isinstance(value, str) else value
    if padding not in allowed:
        hint = " ('causal' is for Conv1D only)" if padding == "causal" else ""
        raise ValueError(f"The `padding` argument must be one of {set(allowed)}{hint}. "
                         f"Received: padding={value!r}")
    return padding


def same_padding(size, window, stride, dilation=1):
    """(before, after) zeros of Keras/XLA 'same' padding: the smaller half first."""
    span = dilation * (window - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return (total // 2, total - total // 2)


def to_channels_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def from_channels_last(y, data_format):
    return y if data_format == "channels_last" else np.ascontiguousarray(np.moveaxis(y, -1, 1))


class BaseConv(Layer):
    """Shared by Conv1D and Conv2D (Keras's BaseConv)."""

    rank = 0

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        cls = type(self).__name__
        if lora_rank:
            raise ValueError(f"{cls}: lora_rank is not supported by rnnfast")
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"Invalid value for argument `filters`. Expected a strictly positive "
                             f"value. Received filters={filters!r}.")
        if not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: "
                             f"groups={groups!r}.")
        if filters % groups:
            raise ValueError(f"The number of filters must be evenly divisible by the number of "
                             f"groups. Received: groups={groups}, filters={filters}.")
        n = self.rank
        self.filters = int(filters)
        self.groups = int(groups)
        self.kernel_size = standardize_tuple(kernel_size, n, "kernel_size")
        self.strides = standardize_tuple(strides, n, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, n, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=n == 1)
        self.data_format = standardize_data_format(data_format)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = activations_module.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        # The built-in functions themselves (a custom callable runs in NumPy).
        self._fused = next((name for name in _FUSED
                            if getattr(activations_module, name) is self.activation), None)

    # ---- shapes --------------------------------------------------------------------

    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _spatial(self, shape):
        return tuple(shape[1:-1]) if self.data_format == "channels_last" else tuple(shape[2:])

    def _check_rank(self, shape):
        if len(shape) != self.rank + 2:
            layout = ("(batch, steps, channels)" if self.rank == 1 else
                      "(batch, height, width, channels)")
            if self.data_format == "channels_first":
                layout = ("(batch, channels, steps)" if self.rank == 1 else
                          "(batch, channels, height, width)")
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of rank "
                             f"{self.rank + 2} {layout}, got shape {tuple(shape)}")

    def _pads(self, spatial):
        """((before, after) per spatial axis) for the kernels."""
        pads = []
        for i, size in enumerate(spatial):
            k, s, d = self.kernel_size[i], self.strides[i], self.dilation_rate[i]
            if self.padding == "valid":
                pads.append((0, 0))
            elif self.padding == "causal":
                pads.append((d * (k - 1), 0))
            else:
                pads.append(same_padding(size, k, s, d))
        return pads

    def _out_size(self, size, i):
        if size is None:
            return None
        k, s, d = self.kernel_size[i], self.strides[i], self.dilation_rate[i]
        if self.padding == "valid":
            out = (size - d * (k - 1) - 1) // s + 1
            if out <= 0:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': kernel_size {self.kernel_size} with "
                    f"dilation_rate {self.dilation_rate} spans {d * (k - 1) + 1} steps, more than "
                    f"the {size} of the input along spatial axis {i} with padding='valid' "
                    f"(computed output size would be zero or negative)")
            return out
        return (size - 1) // s + 1

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = tuple(self._out_size(s, i) for i, s in enumerate(self._spatial(input_shape)))
        if self.data_format == "channels_last":
            return (input_shape[0],) + spatial + (self.filters,)
        return (input_shape[0], self.filters) + spatial

    def build(self, input_shape):
        self._check_rank(input_shape)
        channels = input_shape[self._channel_axis()]
        if channels is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel axis of its input "
                             f"must be known, got input shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"The number of input channels must be evenly divisible by the number "
                             f"of groups. Received groups={self.groups}, but the input has "
                             f"{channels} channels (full input shape is {tuple(input_shape)}).")
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(self.kernel_size + (channels // self.groups, self.filters),
                                      self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    # ---- forward / backward ------------------------------------------------------------

    def _geometry(self, spatial):
        pads = self._pads(spatial)
        if self.rank == 1:
            return dict(strides=(1, self.strides[0]), dilation=(1, self.dilation_rate[0]),
                        padding=((0, 0), pads[0]), groups=self.groups)
        return dict(strides=self.strides, dilation=self.dilation_rate, padding=tuple(pads),
                    groups=self.groups)

    def _kernel4(self, k):
        return k.reshape((1,) + k.shape) if self.rank == 1 else k

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        self._check_rank(x.shape)
        channels = self.kernel.shape[-2] * self.groups
        if x.shape[self._channel_axis()] != channels:
            raise ValueError(f"{type(self).__name__} '{self.name}' was built for inputs with "
                             f"{channels} channels, got shape {x.shape} (data_format="
                             f"'{self.data_format}')")
        spatial = self._spatial(x.shape)
        for i, size in enumerate(spatial):
            self._out_size(size, i)  # a clear error for a kernel larger than a 'valid' input
        xl = to_channels_last(x, self.data_format)
        x4 = xl[:, None] if self.rank == 1 else xl
        geo = self._geometry(spatial)
        bias = None if self.bias is None else self.bias.value
        act = self._fused or "linear"
        z = _core.conv_forward(x4, self._kernel4(self.kernel.value), bias, activation=act, **geo)
        y = z if self._fused else self.activation(z)
        if training:
            ctx.saved = (x4, z, y, geo, x.shape)
        y = y[:, 0] if self.rank == 1 else y
        return from_channels_last(y, self.data_format)

    def backward(self, ctx, grad, need_input_grad=True):
        x4, z, y, geo, shape = ctx.saved
        dy = to_channels_last(np.asarray(grad, dtype=x4.dtype), self.data_format)
        dy = dy[:, None] if self.rank == 1 else dy
        if self._fused:
            act = self._fused
        else:  # the activation in NumPy, then a linear convolution backward
            dy = np.asarray(apply_activation_backward(self.activation, z, y, dy), dtype=x4.dtype)
            act = "linear"
        dx, dk, db = _core.conv_backward(x4, self._kernel4(self.kernel.value), dy,
                                         y if act != "linear" else None, activation=act,
                                         compute_dx=need_input_grad,
                                         compute_dbias=self.bias is not None, **geo)
        if self.trainable:
            self.kernel.add_grad(dk.reshape(self.kernel.shape))
            if self.bias is not None:
                self.bias.add_grad(db)
        if not need_input_grad:
            return None
        dx = dx[:, 0] if self.rank == 1 else dx
        return from_channels_last(dx, self.data_format)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "activation": activations_module.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers_module.serialize(self.kernel_initializer),
                "bias_initializer": initializers_module.serialize(self.bias_initializer),
                "kernel_regularizer": _serialize(regularizers_module, self.kernel_regularizer),
                "bias_regularizer": _serialize(regularizers_module, self.bias_regularizer),
                "activity_regularizer": _serialize(regularizers_module, self.activity_regularizer),
                "kernel_constraint": _serialize(constraints_module, self.kernel_constraint),
                "bias_constraint": _serialize(constraints_module, self.bias_constraint)}


@register
class Conv1D(BaseConv):
    """1-D convolution over time: [batch, steps, channels] -> [batch, new_steps, filters]
    (padding 'valid', 'same' or 'causal')."""

    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias, **kwargs)


@register
class Conv2D(BaseConv):
    """2-D convolution: [batch, height, width, channels] -> [batch, new_h, new_w, filters]."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias, **kwargs)
