"""The layer registry: classes register themselves with ``@register`` (no
hand-kept list), and configs are read back through it. Models register here
too, so that a model nested in another deserializes like any layer."""

from __future__ import annotations

from .. import _serialization

#: Class name -> class, filled by @register.
LAYERS: dict = {}


# Classes registered by modules above this package (the models), imported on
# first use so that a file can name them before rnnfast.models was imported.
_DEFERRED = {"Sequential": "rnnfast.models", "Functional": "rnnfast.models"}


def get_class(name):
    """The registered class called `name` (KeyError if none)."""
    if name not in LAYERS and name in _DEFERRED:
        import importlib

        importlib.import_module(_DEFERRED[name])
    return LAYERS[name]


def register(cls):
    """Class decorator: makes `cls` known to deserialize() by its class name."""
    LAYERS[cls.__name__] = cls
    return cls


def serialize(layer) -> dict:
    """A layer as Keras 3 writes it: {"module", "class_name", "config", "registered_name"}."""
    module = getattr(type(layer), "KERAS_MODULE", "keras.layers")
    return {"module": module, "class_name": type(layer).__name__,
            "config": layer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A layer from its serialized dict (Keras 3 or Keras 2 style)."""
    name = config.get("class_name") if isinstance(config, dict) else config
    if isinstance(name, str) and name in _DEFERRED:
        get_class(name)
    return _serialization.deserialize_object(config, LAYERS, "layer", custom_objects)
