"""Reshape, Permute, ZeroPadding1D, Cropping1D and UpSampling1D (Keras 3's
layers/reshaping/): the batch axis stays first; each backward undoes the data
movement (slices off the padding, pads back the cropped steps, sums the
repeated copies)."""

from __future__ import annotations

import numpy as np

from .convolutional import standardize_data_format, standardize_tuple
from .layer import Layer, as_float
from .registry import register


def _resolve(input_dims, target):
    """The target shape with its one -1 worked out (None if it cannot be yet)."""
    target = list(target)
    unknown = [i for i, d in enumerate(target) if d == -1]
    if not unknown:
        known_in = None if any(d is None for d in input_dims) else int(np.prod(input_dims))
        if known_in is not None and known_in != int(np.prod(target)):
            raise ValueError(f"total size of the new array must be unchanged: input shape "
                             f"{tuple(input_dims)}, target_shape {tuple(target)}")
        return tuple(target)
    known = int(np.prod([d for d in target if d != -1]))
    if any(d is None for d in input_dims):
        target[unknown[0]] = None
        return tuple(target)
    size = int(np.prod(input_dims))
    if known == 0 or size % known:
        raise ValueError(f"total size of the new array must be unchanged: input shape "
                         f"{tuple(input_dims)} cannot be reshaped to {tuple(target)}")
    target[unknown[0]] = size // known
    return tuple(target)


@register
class Reshape(Layer):
    """Reshapes the non-batch axes to `target_shape` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target = tuple(int(d) for d in target_shape)
        if sum(1 for d in target if d == -1) > 1 or any(d < -1 or d == 0 for d in target):
            raise ValueError(f"Reshape: target_shape must hold positive sizes and at most one -1, "
                             f"got {tuple(target_shape)}")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + _resolve(tuple(input_shape[1:]), self.target_shape)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        try:
            y = x.reshape((x.shape[0],) + self.target_shape)
        except ValueError:
            raise ValueError(f"Reshape '{self.name}': inputs of shape {x.shape} cannot be reshaped "
                             f"to (batch,) + {self.target_shape}") from None
        if training:
            ctx.saved = x.shape
        return y

    def backward(self, ctx, grad, need_input_grad=True):
        return np.reshape(grad, ctx.saved) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class Permute(Layer):
    """Permutes the non-batch axes: `dims` is a permutation of 1..rank-1."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer. The set of "
                             f"indices in `dims` must be consecutive and start from 1. Received "
                             f"dims={tuple(dims)}")
        self.dims = dims
        self._inverse = (0,) + tuple(int(i) + 1 for i in np.argsort(dims))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute(dims={self.dims}) expects inputs of rank "
                             f"{len(self.dims) + 1}, got shape {tuple(input_shape)}")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        if x.ndim != len(self.dims) + 1:
            raise ValueError(f"Permute '{self.name}' expects inputs of rank {len(self.dims) + 1}, "
                             f"got shape {x.shape}")
        return np.ascontiguousarray(np.transpose(x, (0,) + self.dims))

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        return np.ascontiguousarray(np.transpose(grad, self._inverse))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


def _check_rank3(layer, shape, layout="(batch, steps, features)"):
    """Keras's InputSpec(ndim=3) of the 1-D reshaping layers."""
    if len(shape) != 3:
        raise ValueError(f"{type(layer).__name__} '{layer.name}' expects inputs of rank 3 "
                         f"{layout}, got shape {tuple(shape)}")


@register
class ZeroPadding1D(Layer):
    """Adds `padding` = (before, after) zero steps on the time axis (axis 1,
    or 2 with data_format='channels_first'). Not mask-aware, as in Keras: an
    incoming mask stops here."""

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)

    def _axis(self):
        return 2 if self.data_format == "channels_first" else 1

    def _layout(self):
        return ("(batch, features, steps)" if self.data_format == "channels_first"
                else "(batch, steps, features)")

    def compute_output_shape(self, input_shape):
        _check_rank3(self, input_shape, self._layout())
        out = list(input_shape)
        axis = self._axis()
        if out[axis] is not None:
            out[axis] += self.padding[0] + self.padding[1]
        return tuple(out)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        _check_rank3(self, x.shape, self._layout())
        pads = [(0, 0)] * 3
        pads[self._axis()] = self.padding
        return np.pad(x, pads)

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        grad = np.asarray(grad)
        before, after = self.padding
        index = [slice(None)] * 3
        index[self._axis()] = slice(before, grad.shape[self._axis()] - after)
        return np.ascontiguousarray(grad[tuple(index)])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@register
class Cropping1D(Layer):
    """Removes `cropping` = (before, after) steps from the time axis (axis 1;
    Keras's Cropping1D has no data_format). Not mask-aware, as in Keras."""

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)

    def _check_length(self, shape):
        if shape[1] is not None and sum(self.cropping) >= shape[1]:
            raise ValueError(f"Cropping1D '{self.name}': `cropping` must leave at least one step "
                             f"of the input: cropping={self.cropping} removes {sum(self.cropping)} "
                             f"of the {shape[1]} steps of inputs of shape {tuple(shape)}")

    def compute_output_shape(self, input_shape):
        _check_rank3(self, input_shape)
        self._check_length(input_shape)
        steps = None if input_shape[1] is None else input_shape[1] - sum(self.cropping)
        return (input_shape[0], steps, input_shape[2])

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        _check_rank3(self, x.shape)
        self._check_length(x.shape)
        if training:
            ctx.saved = x.shape
        return x[:, self.cropping[0]:x.shape[1] - self.cropping[1]]

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        grad = np.asarray(grad)
        dx = np.zeros(ctx.saved, dtype=grad.dtype)
        dx[:, self.cropping[0]:ctx.saved[1] - self.cropping[1]] = grad
        return dx

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


@register
class UpSampling1D(Layer):
    """Repeats each time step `size` times (np.repeat on axis 1). Not
    mask-aware, as in Keras."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
            raise TypeError(f"UpSampling1D: expected an integer value for `size`, got "
                            f"{type(size).__name__} ({size!r})")
        if size <= 0:
            raise ValueError(f"UpSampling1D: argument `size` should be a positive integer. "
                             f"Received: size={size}")
        self.size = int(size)

    def compute_output_shape(self, input_shape):
        _check_rank3(self, input_shape)
        steps = None if input_shape[1] is None else input_shape[1] * self.size
        return (input_shape[0], steps, input_shape[2])

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        _check_rank3(self, x.shape)
        return np.repeat(x, self.size, axis=1)

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        grad = np.asarray(grad)
        n, steps, features = grad.shape
        # Output step t*size + k is a copy of input step t: its gradient sums the copies'.
        return grad.reshape(n, steps // self.size, self.size, features).sum(axis=2)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
