"""Pooling layers (Keras 3's layers/pooling/).

MaxPooling1D/2D and AveragePooling1D/2D run on the C++ kernels
(``rnnfast._core.pool_forward`` / ``pool_backward``). Like the convolutions
they work in channels_last on a 2-D grid (a 1-D input [N, T, C] is
[N, 1, T, C]). With padding='same', max pooling ignores the padded cells and
average pooling divides by the cells inside the input, as Keras does.

The global poolings GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D are
plain NumPy reductions over the spatial axes.

Semantics, as Keras 3.15 computes them:

- GlobalAveragePooling1D honours a [batch, steps] mask: the mean over the
  unmasked steps, sum(where(mask, x, 0)) / count. A sample with every step
  masked gets 0/0 = NaN, as in Keras; the gradient of masked steps is 0
  (also in that case, as JAX's autodiff of the where gives). It supports
  masking but returns no mask (compute_mask is None).
- The max poolings and GlobalAveragePooling2D do not support masking: an
  incoming mask is ignored (Keras warns and drops it) and none goes out.
- GlobalMaxPooling's gradient goes to the maximum. Ties (exactly equal
  maxima in one reduced slice, rare with real data) share it evenly, 1/k
  each: the rule of JAX's reduce_max gradient (and TensorFlow's), checked
  against jax.grad in the tests. A NaN in a slice makes its max and its
  gradient NaN, again as JAX does.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .convolutional import (from_channels_last, same_padding, standardize_data_format,
                            standardize_padding, standardize_tuple, to_channels_last)
from .layer import Layer, as_float
from .registry import register


class BaseGlobalPooling(Layer):
    """Reduces the `rank` spatial axes of [batch, *spatial, channels] inputs
    (channels_last) or [batch, channels, *spatial] (channels_first)."""

    rank = 1

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = keepdims

    def _axes(self):
        first = 1 if self.data_format == "channels_last" else 2
        return tuple(range(first, first + self.rank))

    def _check_rank(self, shape):
        if len(shape) != self.rank + 2:
            spatial = "steps" if self.rank == 1 else ", ".join(f"dim{i + 1}"
                                                               for i in range(self.rank))
            layout = (f"(batch, {spatial}, channels)" if self.data_format == "channels_last"
                      else f"(batch, channels, {spatial})")
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of rank "
                             f"{self.rank + 2} {layout} ({self.data_format}), got shape "
                             f"{tuple(shape)}")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        channels = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if not self.keepdims:
            return (input_shape[0], channels)
        ones = (1,) * self.rank
        if self.data_format == "channels_last":
            return (input_shape[0],) + ones + (channels,)
        return (input_shape[0], channels) + ones

    def _kept(self, grad, x_shape):
        """The output gradient with the reduced axes kept (length 1)."""
        shape = tuple(1 if i in self._axes() else d for i, d in enumerate(x_shape))
        return np.reshape(grad, shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class _GlobalAverage(BaseGlobalPooling):
    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        self._check_rank(x.shape)
        if training:
            ctx.saved = x.shape
        return np.mean(x, axis=self._axes(), keepdims=bool(self.keepdims))

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        shape = ctx.saved
        g = self._kept(np.asarray(grad), shape)
        n = int(np.prod([shape[a] for a in self._axes()]))
        return np.broadcast_to(g / g.dtype.type(n), shape).copy()


class _GlobalMax(BaseGlobalPooling):
    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        self._check_rank(x.shape)
        y = np.max(x, axis=self._axes(), keepdims=True)
        if training:
            ctx.saved = (x, y)
        return y if self.keepdims else np.squeeze(y, axis=self._axes())

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        x, y = ctx.saved
        g = self._kept(np.asarray(grad), x.shape)
        at_max = x == y  # every tied maximum of its slice (none if the slice holds a NaN)
        count = np.sum(at_max, axis=self._axes(), keepdims=True, dtype=g.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):  # count 0: NaN, as JAX
            return at_max * (g / count)


@register
class GlobalAveragePooling1D(_GlobalAverage):
    """The mean over the steps; with a [batch, steps] mask, over the unmasked
    steps only (see the module docstring)."""

    rank = 1
    supports_masking = True

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)

    def _mask(self, mask, x):
        steps = self._axes()[0]
        m = np.asarray(mask)
        if m.shape != (x.shape[0], x.shape[steps]):
            raise ValueError(f"GlobalAveragePooling1D '{self.name}': the mask must have shape "
                             f"(batch, steps) = {(x.shape[0], x.shape[steps])} for inputs of "
                             f"shape {x.shape} ({self.data_format}), got {m.shape}")
        # Keras casts the mask to bool and puts it on the steps' axis.
        return np.expand_dims(m.astype(bool), 2 if self.data_format == "channels_last" else 1)

    def forward(self, ctx, inputs, training=False, mask=None):
        if training:
            ctx.masked = None
        if mask is None:
            return super().forward(ctx, inputs, training=training)
        x = as_float(inputs, self.compute_dtype)
        self._check_rank(x.shape)
        m = self._mask(mask, x)
        steps = self._axes()[0]
        # where, not a product: a NaN or inf in a masked step must not reach the sum.
        total = np.sum(np.where(m, x, x.dtype.type(0)), axis=steps, keepdims=True)
        count = np.sum(m, axis=steps, keepdims=True, dtype=x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):  # all steps masked: NaN, as Keras
            y = total / count
        if training:
            ctx.saved, ctx.masked = x.shape, (m, count)
        return y if self.keepdims else np.squeeze(y, axis=steps)

    def backward(self, ctx, grad, need_input_grad=True):
        if ctx.masked is None:
            return super().backward(ctx, grad, need_input_grad)
        if not need_input_grad:
            return None
        shape, (m, count) = ctx.saved, ctx.masked
        g = self._kept(np.asarray(grad), shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = g / count
        return np.where(m, share, g.dtype.type(0))

    def compute_mask(self, inputs, mask=None):
        return None


@register
class GlobalMaxPooling1D(_GlobalMax):
    """The maximum over the steps. Ignores masks, as Keras does."""

    rank = 1

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register
class GlobalAveragePooling2D(_GlobalAverage):
    """The mean over both spatial axes."""

    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register
class GlobalMaxPooling2D(_GlobalMax):
    """The maximum over both spatial axes."""

    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


# Keras's shorter names for the same classes.
GlobalAvgPool1D, GlobalMaxPool1D = GlobalAveragePooling1D, GlobalMaxPooling1D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D


# ---- windowed pooling (C++ kernels) ----------------------------------------------

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
