"""Weight constraints with Keras 3 names, arguments, formulas and configs.

A constraint is applied after each optimizer step: ``c(w)`` returns the
projected weights as a new array of ``w``'s shape (and floating dtype).
Norms are taken over ``axis`` (an int or a list/tuple of ints; for a
``Dense`` kernel ``(input_dim, units)`` axis 0 constrains each unit's
incoming weight vector), and divisions use Keras's ``epsilon`` 1e-7.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from . import _serialization

__all__ = [
    "ALL_OBJECTS_DICT", "Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    "deserialize", "get", "max_norm", "min_max_norm", "non_neg", "serialize", "unit_norm",
]

_MODULE = "keras.constraints"
_EPSILON = 1e-7  # keras.backend.epsilon()


def _as_array(w) -> np.ndarray:
    w = np.asarray(w)
    if w.dtype.kind != "f":
        w = w.astype(np.float32)
    return w


def _norms(w: np.ndarray, axis) -> np.ndarray:
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weights (here: ``w``)."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Rescales each weight vector whose norm exceeds ``max_value``:
    ``w * clip(norm, 0, max_value) / (epsilon + norm)``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = _as_array(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``max(w, 0)``."""

    def __call__(self, w):
        w = _as_array(w)
        return np.maximum(w, 0).astype(w.dtype, copy=False)


class UnitNorm(Constraint):
    """``w / (epsilon + norm)``: unit-norm weight vectors."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _as_array(w)
        return (w / (_EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each weight vector's norm into ``[min_value, max_value]`` at
    ``rate``: ``w * desired / (epsilon + norm)`` with ``desired = rate *
    clip(norm, min_value, max_value) + (1 - rate) * norm``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        w = _as_array(w)
        norms = _norms(w, self.axis)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras 3 exported aliases: the classes themselves.
max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm

_CLASSES = (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)

#: Name -> class, as ``keras.constraints`` resolves strings.
ALL_OBJECTS_DICT: dict = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update({"constraint": Constraint, "max_norm": MaxNorm,
                         "min_max_norm": MinMaxNorm, "non_neg": NonNeg,
                         "unit_norm": UnitNorm})


def serialize(constraint) -> Any:
    """``{"module": "keras.constraints", "class_name", "config", "registered_name": None}``."""
    return _serialization.serialize_object(constraint, _MODULE)


def deserialize(config, custom_objects: Mapping[str, Any] | None = None):
    """A constraint from a config dict or a name."""
    return _serialization.deserialize_object(config, ALL_OBJECTS_DICT, "constraint",
                                             custom_objects=custom_objects)


def get(identifier):
    """Keras 3 ``constraints.get``: None -> None; a name -> an instance with
    default arguments; a config dict; an instance or callable (as is)."""
    if identifier is None:
        return None
    if isinstance(identifier, Mapping):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier)
        if obj is None:
            obj = _serialization.registered_objects().get(identifier)
        if obj is None:
            raise ValueError(f"Could not interpret constraint identifier: {identifier!r}. "
                             f"Known: {sorted(ALL_OBJECTS_DICT)}")
    else:
        obj = identifier
    if callable(obj):
        if inspect.isclass(obj):
            obj = obj()
        return obj
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
