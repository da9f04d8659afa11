"""Sequential: a linear stack of layers (Keras 3's models/sequential.py).

It is a functional model built from its list: once the input shape is known
(an Input first, a layer's input_shape, or the first data), the layers are
called one after the other on symbolic tensors, and the resulting graph runs
forward and backward through the one engine of ``functional.py``."""

from __future__ import annotations

import numpy as np

from ..layers import registry
from ..layers.input_layer import InputLayer
from ..layers.layer import BUILD_LOCK, Layer, dtype_policy, normalize_shape
from ..layers.node import KerasTensor
from ..layers.registry import register
from .functional import Functional
from .model import Model


@register
class Sequential(Functional):
    """A linear stack of layers (Keras 3's Sequential)."""

    KERAS_MODULE = "keras"

    def __init__(self, layers=None, trainable=True, name=None):
        Model.__init__(self, name=name, trainable=trainable)
        self._stack: list[Layer] = []
        self._input_layer: InputLayer | None = None
        self._build_shape = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._input_layer is not None and self._stack:
            self.build()

    # ---- structure ------------------------------------------------------------------

    def add(self, layer, rebuild=True):
        if isinstance(layer, KerasTensor):
            if layer._keras_history is None or not isinstance(layer._keras_history[0], InputLayer):
                raise TypeError("Sequential.add takes layers, or a keras.Input(...) first")
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of `keras.Layer` can be added to a Sequential model. "
                            f"Received: {layer!r} (of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("Sequential: an Input/InputLayer must come first, and only once")
            self._input_layer = layer
        else:
            if any(lyr.name == layer.name for lyr in self._stack):
                raise ValueError(f"All layers added to a Sequential model should have unique names. "
                                 f"Name '{layer.name}' is already the name of a layer in this model. "
                                 f"Update the `name` argument to pass a unique name.")
            if not self._stack and self._input_layer is None and layer._batch_input_shape is not None:
                self._input_layer = InputLayer(batch_shape=layer._batch_input_shape,
                                               dtype=self._input_dtype(layer))
            self._stack.append(layer)
        self._invalidate()
        if rebuild and self._input_layer is not None and self._stack:
            self.build()

    def pop(self, rebuild=True):
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        self._invalidate()
        if rebuild and self._input_layer is not None and self._stack:
            self.build()
        return layer

    def _invalidate(self):
        self.built = False
        self._layers = list(self._stack)

    @staticmethod
    def _input_dtype(first):
        # Token ids for an Embedding stay integers; otherwise the first layer's float type.
        return "int32" if first.accepts_integer_inputs else first.compute_dtype.name

    @property
    def layers(self) -> list:
        return list(self._stack)

    @property
    def output_names(self):
        return [self._stack[-1].name] if self._stack else ["output"]

    def _input_count(self):
        return 1

    def _output_count(self):
        return 1

    def build(self, input_shape=None):
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Sequential.build() needs an input_shape (or an Input first layer)")
            input_shape = self._input_layer.batch_shape
        shape = normalize_shape(input_shape)
        if not self._stack:
            raise ValueError("The model has no layers")
        self._check_shapes = self._input_layer is not None
        if self._input_layer is None:
            self._input_layer = InputLayer(batch_shape=shape,
                                           dtype=self._input_dtype(self._stack[0]))
        self._build_shape = shape
        x = self._input_layer.output
        for layer in self._stack:
            x = layer(x)
            if isinstance(x, list):
                raise ValueError(f"Layer '{layer.name}' has several outputs (return_state=True?): "
                                 f"Sequential models need one output per layer")
        self._init_graph(self._input_layer.output, x)

    def _ensure_built(self, inputs):
        if not self.built:
            if not self._stack:
                raise ValueError("The model has no layers")
            self.build(np.shape(inputs if not isinstance(inputs, (list, tuple)) or
                                not isinstance(inputs[0], np.ndarray) else inputs[0]))

    def prepare_inputs(self, inputs):
        if not self.built:
            with BUILD_LOCK:
                if not self.built:
                    self._ensure_built(inputs)
        return super().prepare_inputs(inputs)

    def maybe_build(self, input_shape):
        if not self.built:
            with BUILD_LOCK:
                if not self.built:
                    self.build(input_shape)

    @property
    def input_shape(self):
        return None if self._input_layer is None else self._input_layer.batch_shape

    @property
    def output_shape(self):
        if self.input_shape is None:
            raise AttributeError("The model has no defined input shape yet")
        return self.compute_output_shape(self.input_shape)

    def compute_output_shape(self, input_shape):
        shape = normalize_shape(input_shape)
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def compute_mask(self, inputs, mask=None):
        return None

    # ---- config ---------------------------------------------------------------------

    def get_config(self):
        layers = []
        if self._input_layer is not None:
            layers.append(registry.serialize(self._input_layer))
        layers += [registry.serialize(lyr) for lyr in self._stack]
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": dtype_policy(self.compute_dtype.name), "layers": layers}
        if self._build_shape is not None:
            config["build_input_shape"] = list(self._build_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(registry.deserialize(layer_config, custom_objects), rebuild=False)
        shape = config.get("build_input_shape")
        if model._input_layer is not None and model._stack:
            model.build()
        elif shape is not None and model._stack:
            model.build(shape)
        return model
