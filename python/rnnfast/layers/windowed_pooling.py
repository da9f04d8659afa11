"""MaxPooling1D/2D and AveragePooling1D/2D (Keras 3's layers/pooling/) on the
C++ kernels (``rnnfast._core.pool_forward`` / ``pool_backward``). Like the
convolutions they run in channels_last on a 2-D grid (a 1-D input [N, T, C]
is [N, 1, T, C]). With padding='same', max pooling ignores the padded cells
and average pooling divides by the cells inside the input, as Keras does."""

from __future__ import annotations

import numpy as np

from .. import _core
from .convolutional import (from_channels_last, same_padding, standardize_data_format,
                            standardize_padding, standardize_tuple, to_channels_last)
from .layer import Layer, as_float
from .registry import register


class BasePooling(Layer):
    rank = 0
    mode = "max"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(pool_size if strides is None else strides, self.rank,
                                         "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)

    def _spatial(self, shape):
        return tuple(shape[1:-1]) if self.data_format == "channels_last" else tuple(shape[2:])

    def _check_rank(self, shape):
        if len(shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of rank "
                             f"{self.rank + 2} ({self.data_format}), got shape {tuple(shape)}")

    def _out_size(self, size, i):
        if size is None:
            return None
        p, s = self.pool_size[i], self.strides[i]
        if self.padding == "same":
            return (size - 1) // s + 1
        if size < p:
            raise ValueError(f"{type(self).__name__} '{self.name}': pool_size {self.pool_size} is "
                             f"larger than the input ({size} along spatial axis {i}) with "
                             f"padding='valid' (computed output size would be zero or negative)")
        return (size - p) // s + 1

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = tuple(self._out_size(s, i) for i, s in enumerate(self._spatial(input_shape)))
        if self.data_format == "channels_last":
            return (input_shape[0],) + spatial + (input_shape[-1],)
        return (input_shape[0], input_shape[1]) + spatial

    def _geometry(self, spatial):
        pads = [same_padding(n, p, s) if self.padding == "same" else (0, 0)
                for n, p, s in zip(spatial, self.pool_size, self.strides)]
        if self.rank == 1:
            return dict(pool_size=(1, self.pool_size[0]), strides=(1, self.strides[0]),
                        padding=((0, 0), pads[0]), mode=self.mode)
        return dict(pool_size=self.pool_size, strides=self.strides, padding=tuple(pads),
                    mode=self.mode)

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        self._check_rank(x.shape)
        spatial = self._spatial(x.shape)
        for i, size in enumerate(spatial):
            self._out_size(size, i)
        xl = to_channels_last(x, self.data_format)
        x4 = xl[:, None] if self.rank == 1 else xl
        geo = self._geometry(spatial)
        keep = training and self.mode == "max"
        out = _core.pool_forward(x4, return_argmax=keep, **geo)
        y, argmax = out if keep else (out, None)
        if training:
            ctx.saved = (x4.shape, argmax, geo)
        y = y[:, 0] if self.rank == 1 else y
        return from_channels_last(y, self.data_format)

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        shape, argmax, geo = ctx.saved
        dy = to_channels_last(np.asarray(grad, dtype=self.compute_dtype), self.data_format)
        dy = dy[:, None] if self.rank == 1 else dy
        dx = _core.pool_backward(dy, input_shape=shape, argmax=argmax, **geo)
        dx = dx[:, 0] if self.rank == 1 else dx
        return from_channels_last(dx, self.data_format)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


@register
class MaxPooling1D(BasePooling):
    rank, mode = 1, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register
class MaxPooling2D(BasePooling):
    rank, mode = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register
class AveragePooling1D(BasePooling):
    rank, mode = 1, "average"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@register
class AveragePooling2D(BasePooling):
    rank, mode = 2, "average"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
