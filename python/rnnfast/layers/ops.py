"""Keras operations that Keras 3 records in functional graphs as nodes of
their own (``keras.src.ops``), so that rnnfast reads the files Keras writes.

Keras computes an Embedding's ``mask_zero`` mask as ``ops.not_equal(ids, 0)``
and, in some graphs, passes it to the next layer as an explicit ``mask=``
argument: the saved config then holds a ``NotEqual`` node. Operations are not
layers: they hold no weights and are left out of ``model.layers``, as in
Keras."""

from __future__ import annotations

import numpy as np

from .layer import Layer
from .registry import register


class Operation(Layer):
    """A weightless graph node that Keras writes as an op, not a layer."""

    IS_OPERATION = True
    KERAS_MODULE = "keras.src.ops.numpy"

    def get_config(self):
        return {"name": self.name}


@register
class NotEqual(Operation):
    """x1 != x2 (a boolean tensor; no gradient)."""

    output_dtype = "bool"

    def forward(self, ctx, x1, x2=None, training=False, mask=None):
        return np.not_equal(np.asarray(x1), np.asarray(x2))

    def backward(self, ctx, grad, need_input_grad=True):
        return None

    def compute_output_spec(self, input_shape, x2=None, **kwargs):
        if isinstance(x2, tuple):  # another tensor's shape
            return tuple(np.broadcast_shapes(tuple(1 if d is None else d for d in input_shape),
                                             tuple(1 if d is None else d for d in x2)))
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return None
