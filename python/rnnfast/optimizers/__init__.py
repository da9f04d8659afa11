"""Optimizers with Keras 3's names, defaults, update rules and configs
(``keras.optimizers``).

``get("adam")``, ``get({"class_name": "Adam", "config": {...}})`` and
``get(instance)`` give an optimizer; ``serialize``/``deserialize`` write and
read Keras 3's ``{"module": "keras.optimizers", "class_name", "config",
"registered_name"}`` dicts. Names are case-insensitive, as in Keras.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .. import _serialization
from . import schedules
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .ftrl import Ftrl
from .lion import Lion
from .nadam import Nadam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Nadam", "Adamax",
    "Ftrl", "Lion", "schedules", "get", "serialize", "deserialize",
]

_MODULE = "keras.optimizers"
ALL_OBJECTS = {cls.__name__: cls for cls in (
    Optimizer, SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Nadam, Adamax, Ftrl, Lion)}
_BY_LOWER = {name.lower(): name for name in ALL_OBJECTS}

# Keys of Keras 2 optimizer configs that Keras 3 optimizers do not take.
_KERAS2_KEYS = ("is_legacy_optimizer", "jit_compile")


def serialize(optimizer) -> Any:
    """The Keras 3 dict of an optimizer (learning rate schedules nested as dicts)."""
    return _serialization.serialize_object(optimizer, _MODULE)


def _canonical(name: Any) -> Any:
    if isinstance(name, str) and name not in ALL_OBJECTS:
        return _BY_LOWER.get(name.lower(), name)
    return name


def deserialize(config, custom_objects: Optional[Mapping[str, Any]] = None):
    """An optimizer from ``serialize``'s dict, a ``{"class_name", "config"}`` dict or a name.

    Unknown names raise ValueError naming them."""
    if isinstance(config, Optimizer):
        return config
    custom = dict(custom_objects or {})
    if isinstance(config, str):
        name = config if config in custom else _canonical(config)
        return _serialization.deserialize_object(name, ALL_OBJECTS, "optimizer",
                                                 custom_objects=custom)
    if isinstance(config, Mapping):
        if "class_name" not in config:
            raise ValueError(f"cannot read an optimizer from {config!r}: no 'class_name'")
        name = config["class_name"]
        if name not in custom:
            name = _canonical(name)
        inner = dict(config.get("config") or {})
        for key in _KERAS2_KEYS:
            inner.pop(key, None)
        if inner.get("decay", None) == 0:      # Keras 2's default; nothing is lost
            inner.pop("decay")
        if isinstance(inner.get("learning_rate"), Mapping):
            inner["learning_rate"] = schedules.deserialize(dict(inner["learning_rate"]),
                                                           custom_objects=custom)
        return _serialization.deserialize_object({"class_name": name, "config": inner},
                                                 ALL_OBJECTS, "optimizer",
                                                 custom_objects=custom)
    raise ValueError(f"Could not interpret optimizer identifier: {config!r}")


def get(identifier):
    """An optimizer from a name ('adam', 'SGD', ...), a config dict or an instance."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, Mapping)):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if isinstance(obj, Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
