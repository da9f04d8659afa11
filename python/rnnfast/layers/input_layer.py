"""Input and InputLayer: declare a model's input shape (Keras 3)."""

from __future__ import annotations

from .layer import Layer, normalize_shape


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
        if batch_shape is None:
            batch_shape = batch_input_shape
        if batch_shape is None:
            shape = shape if shape is not None else input_shape
            if shape is None:
                raise ValueError("InputLayer needs a shape (or batch_shape)")
            batch_shape = (batch_size,) + normalize_shape(shape)
        self.batch_shape = normalize_shape(batch_shape)
        # Integer inputs (token ids for an Embedding) are passed through as they are.
        self.input_dtype = dtype or "float32"
        self.built = True

    def call(self, inputs, training=False, mask=None):
        return inputs

    def backward(self, grad):
        return grad

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.input_dtype, "sparse": False,
                "ragged": False, "optional": False, "name": self.name}


class KerasTensor:
    """What Input() returns: a placeholder carrying the input's shape, which
    Sequential turns back into its InputLayer."""

    def __init__(self, layer: InputLayer):
        self._input_layer = layer
        self.shape = layer.batch_shape
        self.dtype = layer.input_dtype
        self.name = layer.name

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic model input of the given shape (batch axis excluded)."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       batch_shape=batch_shape, name=name, input_tensor=tensor, optional=optional)
    return KerasTensor(layer)
