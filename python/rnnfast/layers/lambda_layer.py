"""Lambda: a Python function as a layer (Keras 3's layers/core/lambda_layer.py).

rnnfast has no autodiff, so it cannot differentiate the function: training
through a Lambda needs the function to carry its gradient as an attribute,
``function.backward(inputs, outputs, grad) -> input gradient`` (the same
convention as rnnfast's activations); without one, a training step that
needs the gradient raises a clear error. A Lambda that nothing trainable
lies before (on a model's inputs) trains fine without it.

Saving writes the function by name; loading never runs code from a file, so
the function must be passed back in ``custom_objects``.
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import _serialization, _tree
from .layer import Layer
from .registry import register


def _shape_probe(shape, fill):
    return tuple(fill if d is None else d for d in shape)


@register
class Lambda(Layer):
    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {function!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = mask
        self.supports_masking = mask is not None
        self._output_shape = output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_mask = "mask" in params
        self._fn_training = "training" in params

    def _call_fn(self, inputs, mask, training):
        kwargs = dict(self.arguments)
        if self._fn_mask:
            kwargs["mask"] = mask
        if self._fn_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def forward(self, ctx, inputs, training=False, mask=None):
        y = self._call_fn(inputs, mask, training)
        if training:
            ctx.saved = (inputs, y)
        return y

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        backward = getattr(self.function, "backward", None)
        if backward is None:
            name = getattr(self.function, "__name__", repr(self.function))
            raise ValueError(
                f"Lambda layer '{self.name}' (function {name}) has no gradient: rnnfast has no "
                f"autodiff and cannot differentiate a Python function, and training needs the "
                f"gradient through it. Give the function a backward(inputs, outputs, grad) "
                f"attribute returning the inputs' gradient, or build the computation from layers "
                f"that have one (Add, Multiply, Concatenate, Reshape, Permute, Dot, ...)")
        inputs, y = ctx.saved
        return backward(inputs, y, grad, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is not None:
            if callable(self._output_shape):
                return self._output_shape(input_shape)
            batch = _tree.flatten(input_shape)[0] if isinstance(input_shape, list) else \
                input_shape[0]
            shape = tuple(self._output_shape)
            if shape and isinstance(shape[0], (list, tuple)):
                return [(batch,) + tuple(s) for s in shape]
            return (batch,) + shape
        # Infer by running the function on zeros twice, with the unknown sizes
        # set to 2 and then to 3: sizes that follow them are unknown too.
        try:
            outs = []
            for fill in (2, 3):
                x = _map_shapes(lambda s: np.zeros(_shape_probe(s, fill), self.compute_dtype),
                                input_shape)
                outs.append(self._call_fn(x, None, False))
        except Exception as e:
            raise ValueError(f"could not infer the output shape of Lambda '{self.name}' ({e}); "
                             f"pass output_shape=") from None
        a, b = (_tree.flatten(o) if isinstance(o, (list, tuple)) else [o] for o in outs)
        shapes = [tuple(None if i == 0 or da != db else da
                        for i, (da, db) in enumerate(zip(np.shape(p), np.shape(q))))
                  for p, q in zip(a, b)]
        return shapes if isinstance(outs[0], (list, tuple)) else shapes[0]

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def get_config(self):
        config = {**super().get_config(), "function": _function_config(self.function, self.name),
                  "arguments": self.arguments}
        if self._output_shape is not None:
            config["output_shape"] = _function_config(self._output_shape, self.name) \
                if callable(self._output_shape) else list(self._output_shape)
        if self.mask is not None:
            config["mask"] = _function_config(self.mask, self.name) if callable(self.mask) \
                else self.mask
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("build_config", None)
        for key in ("function", "output_shape", "mask"):
            if key in config and isinstance(config[key], (dict, str)):
                config[key] = _function_from_config(config[key], custom_objects, config.get("name"))
        if isinstance(config.get("output_shape"), list):
            config["output_shape"] = tuple(config["output_shape"])
        return cls(**config)


def _map_shapes(fn, shapes):
    """fn on each shape of a shape or a list of shapes."""
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return [_map_shapes(fn, s) for s in shapes]
    return fn(tuple(shapes))


def _function_config(fn, layer_name):
    name = getattr(fn, "__name__", None)
    if name is None or name == "<lambda>":
        raise ValueError(f"Lambda '{layer_name}': an anonymous (lambda) function cannot be saved, "
                         f"because rnnfast never runs code stored in a file; use a named function "
                         f"and pass it in custom_objects when loading")
    return {"module": getattr(fn, "__module__", None), "class_name": "function", "config": name,
            "registered_name": "function"}


def _function_from_config(config, custom_objects, layer_name):
    if isinstance(config, dict):
        if config.get("class_name") == "__lambda__":
            raise ValueError(f"Lambda '{layer_name}' holds Python code (a lambda) in the file; "
                             f"rnnfast never runs code from a file")
        name = config.get("config")
    else:
        name = config
    objects = dict(_serialization.registered_objects())
    objects.update(custom_objects or {})
    if not isinstance(name, str) or name not in objects:
        raise ValueError(f"Lambda '{layer_name}' calls the function {name!r}; rnnfast never runs "
                         f"code from a file, so pass it in custom_objects={{{name!r}: ...}}")
    return objects[name]
