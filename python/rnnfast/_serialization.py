"""Keras 3-style serialization of objects (initializers, regularizers, ...).

``serialize_object`` gives the dict Keras 3 writes in configs and ``.keras``
files::

    {"module": "keras.initializers", "class_name": "GlorotUniform",
     "config": {"seed": None}, "registered_name": None}

``deserialize_object`` accepts that dict, a bare ``{"class_name", "config"}``
dict (Keras 2 files), a string name, an instance or a callable."""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable, Mapping

_custom_objects: dict = {}
# The custom_objects of a loader running in this thread (load_model's): they
# reach every lookup while it builds the model, as Keras's custom_object_scope.
_scoped = contextvars.ContextVar("rnnfast_custom_objects", default=None)


def register_custom_object(name: str, obj: Any) -> None:
    """Makes ``obj`` resolvable by name in configs (like Keras's custom_objects)."""
    _custom_objects[name] = obj


def registered_objects() -> Mapping[str, Any]:
    """The registered custom objects, and those of the custom_object_scope
    active in this thread (which take precedence)."""
    scoped = _scoped.get()
    return {**_custom_objects, **scoped} if scoped else _custom_objects


class custom_object_scope:
    """While active (in this thread), ``custom_objects`` resolve by name in
    configs, as registered ones do: a layer's activation, initializer, ...
    deserialized without a custom_objects argument of its own."""

    def __init__(self, custom_objects: Mapping[str, Any] | None):
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self):
        self._token = _scoped.set({**(_scoped.get() or {}), **self.custom_objects})
        return self

    def __exit__(self, *exc):
        _scoped.reset(self._token)
        return False


def serialize_object(obj: Any, module: str) -> Any:
    if obj is None:
        return None
    get_config = getattr(obj, "get_config", None)
    if get_config is None:
        name = getattr(obj, "__name__", None)
        if name is None:
            raise TypeError(f"cannot serialize {obj!r}: it has no get_config() and no name")
        return name
    return {"module": module, "class_name": type(obj).__name__, "config": get_config(),
            "registered_name": None}


def _takes_custom_objects(fn) -> bool:
    try:
        return "custom_objects" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def deserialize_object(identifier: Any, module_objects: Mapping[str, Any], kind: str,
                       custom_objects: Mapping[str, Any] | None = None,
                       instantiate_strings: bool = True) -> Any:
    """Resolves `identifier` against `module_objects` (name -> class or function).

    kind names the sort of object in error messages ("initializer", ...).
    A string naming a class gives an instance built with default arguments
    when instantiate_strings is true."""
    if identifier is None:
        return None
    objects = dict(module_objects)
    objects.update(registered_objects())
    if custom_objects:
        objects.update(custom_objects)
    if isinstance(identifier, Mapping):
        if "class_name" not in identifier:
            raise ValueError(f"cannot read a {kind} from {identifier!r}: no 'class_name'")
        name = identifier["class_name"]
        config = dict(identifier.get("config") or {})
        cls = objects.get(name)
        if cls is None:
            raise ValueError(f"unknown {kind} {name!r}; known: {sorted(module_objects)}")
        if isinstance(cls, type):
            from_config: Callable = getattr(cls, "from_config", None) or cls
            if custom_objects and _takes_custom_objects(from_config):
                return from_config(config, custom_objects=custom_objects)
            return from_config(config)
        return cls
    if isinstance(identifier, str):
        obj = objects.get(identifier)
        if obj is None:
            raise ValueError(f"unknown {kind} {identifier!r}; known: {sorted(module_objects)}")
        if isinstance(obj, type) and instantiate_strings:
            return obj()
        return obj
    if callable(identifier):
        return identifier
    raise TypeError(f"could not interpret {kind} {identifier!r}: expected a name, a config "
                    f"dict, an instance or a callable")
