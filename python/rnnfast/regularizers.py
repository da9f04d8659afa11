"""Weight regularizers with Keras 3 names, arguments, formulas and configs.

``reg(w)`` gives the penalty as a Python float (Keras's formulas, e.g.
``L2: l2 * sum(w**2)``); since rnnfast has no autodiff every built-in also
has ``reg.gradient(w)``, the penalty's derivative with respect to ``w`` (an
array of ``w``'s shape and dtype; ``L1`` uses ``sign(w)``, 0 at 0).

As in Keras 3, ``l1``, ``l2``, ``l1_l2`` and ``orthogonal_regularizer`` are
the classes themselves (``l1_l2(l1=0.0, l2=0.0)`` defaults to no penalty),
and the strings ``get`` accepts are the class names and their snake-case
forms: "l1", "l2", "l1l2", "orthogonal_regularizer" (Keras 3 does not accept
"l1_l2").
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Mapping

import numpy as np

from . import _serialization
from .utils.blas import on_one_blas_thread

__all__ = [
    "ALL_OBJECTS_DICT", "L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer",
    "deserialize", "get", "l1", "l1_l2", "l2", "orthogonal_regularizer", "serialize",
    "validate_float_arg",
]

_MODULE = "keras.regularizers"
_EPSILON = 1e-7  # keras.backend.epsilon()


def validate_float_arg(value, name: str) -> float:
    """``float(value)`` for a finite, non-negative real number; ValueError otherwise."""
    if (not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
            or math.isinf(value) or math.isnan(value) or value < 0):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float."
                         f"Received: {name}={value}")
    return float(value)


def _as_array(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return x


class Regularizer:
    """Base class: ``__call__(w) -> float`` penalty, ``gradient(w) -> array``.

    Subclasses implement ``get_config`` for serialization; ``from_config``
    calls the constructor with the config."""

    def __call__(self, x) -> float:
        return 0.0

    def gradient(self, x) -> np.ndarray:
        """d penalty / d x (the base penalty is 0)."""
        return np.zeros_like(_as_array(x))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(**config)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{self} does not implement get_config()")

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(abs(x)) + l2 * sum(square(x))`` (None counts as 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        l1 = 0.0 if l1 is None else l1
        l2 = 0.0 if l2 is None else l2
        self.l1 = validate_float_arg(l1, name="l1")
        self.l2 = validate_float_arg(l2, name="l2")

    def __call__(self, x) -> float:
        x = _as_array(x)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(x), dtype=np.float64))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(x, dtype=np.float64)))
        return penalty

    def gradient(self, x) -> np.ndarray:
        x = _as_array(x)
        g = np.zeros(x.shape, dtype=np.float64)
        if self.l1:
            g += self.l1 * np.sign(x)
        if self.l2:
            g += 2.0 * self.l2 * x
        return g.astype(x.dtype)

    def get_config(self) -> dict:
        return {"l1": float(self.l1), "l2": float(self.l2)}


class L1(Regularizer):
    """``l1 * sum(abs(x))`` (``l1=None`` means the default 0.01)."""

    def __init__(self, l1=0.01):
        l1 = 0.01 if l1 is None else l1
        self.l1 = validate_float_arg(l1, name="l1")

    def __call__(self, x) -> float:
        return self.l1 * float(np.sum(np.abs(_as_array(x)), dtype=np.float64))

    def gradient(self, x) -> np.ndarray:
        x = _as_array(x)
        return (self.l1 * np.sign(x)).astype(x.dtype)

    def get_config(self) -> dict:
        return {"l1": float(self.l1)}


class L2(Regularizer):
    """``l2 * sum(square(x))`` (``l2=None`` means the default 0.01)."""

    def __init__(self, l2=0.01):
        l2 = 0.01 if l2 is None else l2
        self.l2 = validate_float_arg(l2, name="l2")

    def __call__(self, x) -> float:
        return self.l2 * float(np.sum(np.square(_as_array(x), dtype=np.float64)))

    def gradient(self, x) -> np.ndarray:
        x = _as_array(x)
        return (2.0 * self.l2 * x).astype(x.dtype)

    def get_config(self) -> dict:
        return {"l2": float(self.l2)}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns (``"columns"``) of a 2-D
    weight towards orthogonality: ``factor * 0.5 * sum_{i != j} |n_i . n_j|
    / (size * (size - 1) / 2)`` with ``n_i`` the L2-normalized rows/columns
    (normalized as ``x * min(1 / norm, 1 / epsilon)``)."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = validate_float_arg(factor, name="factor")
        if mode not in {"rows", "columns"}:
            raise ValueError('Invalid value for argument `mode`. Expected one of '
                             f'{{"rows", "columns"}}. Received: mode={mode}')
        self.mode = mode

    def _vectors(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError("Inputs to OrthogonalRegularizer must have rank 2. Received: "
                             f"inputs.shape={x.shape}")
        v = x.astype(np.float64)
        return v if self.mode == "rows" else v.T

    @staticmethod
    def _normalize(v: np.ndarray):
        norms = np.sqrt(np.sum(v * v, axis=1, keepdims=True))
        inv = np.minimum(1.0 / np.maximum(norms, 1e-300), 1.0 / _EPSILON)
        return v * inv, inv, norms

    @on_one_blas_thread  # see utils/blas.py
    def __call__(self, x) -> float:
        v = self._vectors(_as_array(x))
        size = v.shape[0]
        if size < 2:
            return 0.0
        n, _, _ = self._normalize(v)
        product = n @ n.T
        np.fill_diagonal(product, 0.0)
        num_pairs = size * (size - 1.0) / 2.0
        return float(self.factor * 0.5 * np.sum(np.abs(product)) / num_pairs)

    @on_one_blas_thread
    def gradient(self, x) -> np.ndarray:
        x = _as_array(x)
        v = self._vectors(x)
        size = v.shape[0]
        if size < 2:
            return np.zeros_like(x)
        n, inv, norms = self._normalize(v)
        s = np.sign(n @ n.T)
        np.fill_diagonal(s, 0.0)
        c = self.factor * 0.5 / (size * (size - 1.0) / 2.0)
        gn = 2.0 * c * (s @ n)  # d penalty / d n (s is symmetric)
        # n = v * inv with inv = 1 / |v| (or the constant 1 / epsilon for tiny rows).
        scaled = norms > _EPSILON
        radial = np.sum(n * gn, axis=1, keepdims=True)
        gv = np.where(scaled, (gn - n * radial) * inv, gn * inv)
        if self.mode == "columns":
            gv = gv.T
        return gv.astype(x.dtype)

    def get_config(self) -> dict:
        return {"factor": float(self.factor), "mode": self.mode}


# Keras 3 exported aliases: the classes themselves.
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)

#: Name -> class, as ``keras.regularizers`` resolves strings.
ALL_OBJECTS_DICT: dict = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update({"regularizer": Regularizer, "l1": L1, "l2": L2, "l1l2": L1L2,
                         "orthogonal_regularizer": OrthogonalRegularizer})


def serialize(regularizer) -> Any:
    """``{"module": "keras.regularizers", "class_name", "config", "registered_name": None}``."""
    return _serialization.serialize_object(regularizer, _MODULE)


def deserialize(config, custom_objects: Mapping[str, Any] | None = None):
    """A regularizer from a config dict or a name."""
    return _serialization.deserialize_object(config, ALL_OBJECTS_DICT, "regularizer",
                                             custom_objects=custom_objects)


def get(identifier):
    """Keras 3 ``regularizers.get``: None -> None; a name -> an instance with
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
            hint = (" (Keras 3 spells the L1L2 string 'l1l2'; or pass "
                    "L1L2(l1=..., l2=...))") if identifier == "l1_l2" else ""
            raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}"
                             f"{hint}. Known: {sorted(ALL_OBJECTS_DICT)}")
    else:
        obj = identifier
    if callable(obj):
        if inspect.isclass(obj):
            obj = obj()
        return obj
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
