"""Core layers: Dense, Activation, Dropout, Flatten, RepeatVector, Masking."""

from __future__ import annotations

import numpy as np

from .. import _core, _rng
from .. import activations as activations_module
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .layer import Layer, as_float
from .registry import register


def _serialize(module, obj):
    return module.serialize(obj) if obj is not None else None


def apply_activation_backward(act, z, y, dy):
    """dL/dz for y = act(z); the identity when act is linear."""
    if act is activations_module.linear:
        return dy
    backward = getattr(act, "backward", None)
    if backward is None:
        raise ValueError(f"activation {getattr(act, '__name__', act)!r} has no derivative: rnnfast "
                         f"trains built-in activations only (give the function a "
                         f"backward(x, y, dy) attribute to use your own)")
    return backward(z, y, dy)


@register
class Dense(Layer):
    """Densely connected layer on the last axis of inputs of any rank."""

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if quantization_config is not None:
            raise ValueError("Dense: quantization_config is not supported by rnnfast")
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        if lora_rank is not None:
            raise ValueError("Dense: lora_rank is not supported by rnnfast")
        self.units = int(units)
        self.activation = activations_module.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers_module.get(kernel_initializer)
        self.bias_initializer = initializers_module.get(bias_initializer)
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': the last axis of its input must be known, got "
                             f"input shape {input_shape}")
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        if x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"Dense '{self.name}' expects inputs with {self.kernel.shape[0]} "
                             f"features on the last axis, got shape {x.shape}")
        x2 = x.reshape(-1, x.shape[-1])
        # Products on rnnfast's threads: NumPy's BLAS threads would compete with them.
        z = _core.matmul(x2, self.kernel.value)
        if self.bias is not None:
            z += self.bias.value
        y = z if self.activation is activations_module.linear else self.activation(z)
        if training:
            ctx.saved = (x2, z, y, x.shape)
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, ctx, grad, need_input_grad=True):
        x2, z, y, shape = ctx.saved
        dz = apply_activation_backward(self.activation, z, y, grad.reshape(-1, self.units))
        dz = np.asarray(dz, dtype=x2.dtype)
        if self.trainable:
            self.kernel.add_grad(_core.matmul(x2, dz, trans_a=True))
            if self.bias is not None:
                self.bias.add_grad(dz.sum(axis=0))
        if not need_input_grad:
            return None
        return _core.matmul(dz, self.kernel.value, trans_b=True).reshape(shape)

    def compute_output_shape(self, input_shape):
        if self.built and input_shape[-1] is not None and input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"Dense '{self.name}' was built for inputs with "
                             f"{self.kernel.shape[0]} features on the last axis, got shape "
                             f"{tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
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
class Activation(Layer):
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations_module.get(activation)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        y = self.activation(x)
        if training:
            ctx.saved = (x, y)
        return y

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        x, y = ctx.saved
        return apply_activation_backward(self.activation, x, y, grad)

    def get_config(self):
        return {**super().get_config(), "activation": activations_module.serialize(self.activation)}


@register
class Dropout(Layer):
    """Zeroes a fraction `rate` of the inputs while training, scaling the rest by 1/(1-rate)."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"Dropout: rate must be in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        if not training or self.rate == 0:
            ctx.saved = None
            return x
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        rng = self._rng or _rng.global_rng()
        keep = (rng.random(shape) >= self.rate).astype(x.dtype)
        scale = keep / x.dtype.type(1.0 - self.rate) if self.rate < 1 else keep
        ctx.saved = scale
        return x * scale

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        return grad if ctx.saved is None else grad * ctx.saved

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}


@register
class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        if training:
            ctx.saved = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, ctx, grad, need_input_grad=True):
        return grad.reshape(ctx.saved) if need_input_grad else None

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], n)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register
class RepeatVector(Layer):
    """[batch, features] -> [batch, n, features]."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"RepeatVector: n must be a positive integer, got {n!r}")
        self.n = int(n)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        if x.ndim != 2:
            raise ValueError(f"RepeatVector expects inputs of shape (batch, features), got {x.shape}")
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, ctx, grad, need_input_grad=True):
        return grad.sum(axis=1) if need_input_grad else None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector expects inputs of shape (batch, features), got "
                             f"{tuple(input_shape)}")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@register
class Masking(Layer):
    """Masks time steps whose features all equal mask_value (and zeroes them)."""

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def compute_mask(self, inputs, mask=None):
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        keep = np.any(x != self.mask_value, axis=-1, keepdims=True)
        if training:
            ctx.saved = keep
        return x * keep

    def backward(self, ctx, grad, need_input_grad=True):
        return grad * ctx.saved if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
