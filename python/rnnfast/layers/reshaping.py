"""Reshape and Permute (Keras 3's layers/reshaping/): the batch axis stays
first; their backward undoes the reshape or the transposition."""

from __future__ import annotations

import numpy as np

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
