"""Input and InputLayer: a model's entry points (Keras 3)."""

from __future__ import annotations

import numpy as np

from .. import _config
from .layer import Layer, normalize_shape
from .node import KerasTensor, Node
from .registry import register


@register
class InputLayer(Layer):
    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, ragged=None, **kwargs):
        # Keras 2 configs write batch_input_shape / input_shape.
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        input_shape = kwargs.pop("input_shape", None)
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name")
        super().__init__(name=name, **kwargs)
        if sparse or ragged:
            raise ValueError("InputLayer: sparse and ragged inputs are not supported by rnnfast")
        if optional:
            raise ValueError("InputLayer: optional inputs are not supported by rnnfast")
        if input_tensor is not None:
            raise ValueError("InputLayer: input_tensor is not supported by rnnfast")
        if batch_shape is None:
            batch_shape = batch_input_shape
        if batch_shape is None:
            shape = shape if shape is not None else input_shape
            if shape is None:
                raise ValueError("InputLayer needs a shape (or batch_shape)")
            batch_shape = (batch_size,) + normalize_shape(shape)
        self.batch_shape = normalize_shape(batch_shape)
        # Integer inputs (token ids for an Embedding) are passed through as they are.
        self.input_dtype = str(np.dtype(dtype or _config.floatx()))
        self.output_dtype = self.input_dtype
        self.built = True
        Node(self, [], {}, KerasTensor(self.batch_shape, self.input_dtype, name=self.name))

    def forward(self, ctx, inputs, training=False, mask=None):
        return inputs

    def backward(self, ctx, grad, need_input_grad=True):
        return grad if need_input_grad else None

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.input_dtype, "sparse": False,
                "ragged": False, "name": self.name, "optional": False}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic model input of the given shape (batch axis excluded)."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       batch_shape=batch_shape, name=name, input_tensor=tensor, optional=optional)
    return layer.output
