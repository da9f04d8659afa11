"""The layer base class and weights.

rnnfast has no autodiff: every layer implements ``call`` (forward, keeping
what its backward needs when ``training`` is true) and ``backward`` (the
gradient of the loss with respect to its input, given the gradient with
respect to its output; it also stores its weights' gradients in
``Variable.grad``). A Sequential model chains them.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from .. import _config
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module



def dtype_policy(name: str) -> dict:
    """Keras 3 writes a layer's dtype as a policy; the same dict keeps configs interchangeable."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def resolve_dtype(dtype) -> np.dtype:
    if isinstance(dtype, dict):  # a Keras 3 dtype policy
        dtype = (dtype.get("config") or {}).get("name")
    if dtype is None:
        dtype = _config.floatx()
    if dtype not in _config.SUPPORTED_FLOATX:
        raise ValueError(f"rnnfast layers compute in float32 or float64; got dtype={dtype!r}")
    return np.dtype(dtype)

_name_counts: defaultdict = defaultdict(int)


def unique_name(base: str) -> str:
    """Keras-style automatic names: lstm, lstm_1, lstm_2, ..."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def reset_names() -> None:
    _name_counts.clear()


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


class BudgetExceeded(ValueError):
    """Raised by add_weight when a loader's allocation budget would be exceeded."""


_budget = None  # bytes add_weight may still allocate (None: no limit)


class allocation_budget:
    """While active, add_weight refuses to allocate more than `nbytes` in all:
    a model rebuilt from a file's config cannot claim more memory than the
    file's weights (a forged config cannot make the loader run out of memory)."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)

    def __enter__(self):
        global _budget
        self._saved = _budget
        _budget = self.nbytes
        return self

    def __exit__(self, *exc):
        global _budget
        _budget = self._saved
        return False


class Variable:
    """A weight: a NumPy array updated in place, plus Keras's attributes.

    ``value`` is the array (never rebound after creation, so kernels and the
    optimizer can hold on to it); ``grad`` holds the last backward's gradient.
    """

    def __init__(self, value, name: str, trainable: bool = True, regularizer=None,
                 constraint=None, path: str | None = None, dtype="float32"):
        self.value = np.array(value, dtype=dtype, order="C", copy=True)
        self.name = name
        self.path = path or name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint
        self.grad = None

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        return self.value.copy()

    def assign(self, value):
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"cannot assign a value of shape {value.shape} to variable "
                             f"'{self.path}' of shape {self.value.shape}")
        self.value[...] = value
        return self

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def as_float(x, dtype=np.float32):
    """Inputs in the layer's float type (Keras casts inputs to the layer's dtype)."""
    x = np.asarray(x)
    if x.dtype != dtype:
        x = x.astype(dtype)
    return x


def normalize_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(None if d is None else int(d) for d in shape)


class Layer:
    """Base class of rnnfast's layers (Keras 3 names and arguments)."""

    #: Whether the layer passes an incoming mask on (Keras's supports_masking).
    supports_masking = False

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, input_dim=None,
                 batch_input_shape=None, batch_size=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        self.compute_dtype = resolve_dtype(dtype)
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self._variables: list[Variable] = []
        self._layers: list[Layer] = []  # sublayers whose weights this layer owns
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        # The input shape the user declared (Keras 2 style), batch dim included.
        if batch_input_shape is not None:
            self._batch_input_shape = normalize_shape(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + normalize_shape(input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, int(input_dim))
        else:
            self._batch_input_shape = None
        self._cache = None
        self._path_prefix = ""  # set by a parent layer (an RNN for its cell)

    # ---- weights -----------------------------------------------------------------

    def add_weight(self, shape, initializer="glorot_uniform", name=None, trainable=True,
                   regularizer=None, constraint=None, dtype=None):
        shape = normalize_shape(shape)
        global _budget
        if _budget is not None:
            nbytes = int(np.prod(shape, dtype=np.float64)) * self.compute_dtype.itemsize
            if nbytes > _budget:
                raise BudgetExceeded(f"weight '{name}' of layer '{self.name}' with shape {shape} "
                                     f"needs {nbytes} bytes")
            _budget -= nbytes
        init = initializers_module.get(initializer)
        value = np.asarray(init(shape, dtype=self.compute_dtype.name), dtype=self.compute_dtype)
        if value.shape != shape:
            raise ValueError(f"initializer for '{name}' returned shape {value.shape}, expected {shape}")
        var = Variable(value, name=name or f"variable_{len(self._variables)}", trainable=trainable,
                       regularizer=regularizers_module.get(regularizer),
                       constraint=constraints_module.get(constraint),
                       path=f"{self._path_prefix}{self.name}/{name}", dtype=self.compute_dtype)
        self._variables.append(var)
        return var

    @property
    def weights(self) -> list:
        out = list(self._variables)
        for layer in self._layers:
            out += layer.weights
        return out

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        out = [v for v in self._variables if v.trainable]
        for layer in self._layers:
            out += layer.trainable_weights
        return out

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def get_weights(self) -> list:
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"layer '{self.name}' expects {len(params)} weight arrays with shapes "
                f"{[v.shape for v in params]}, got {len(weights)}")
        for v, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != v.shape:
                raise ValueError(f"layer '{self.name}': weight '{v.name}' has shape {v.shape}, "
                                 f"got an array of shape {w.shape}")
        for v, w in zip(params, weights):
            v.value[...] = w

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"layer '{self.name}' is not built yet: call it on data or build() it "
                             f"first to count its parameters")
        return int(sum(v.value.size for v in self.weights))

    @property
    def losses(self) -> list:
        """Regularization penalties of this layer's weights (floats)."""
        return [float(v.regularizer(v.value)) for v in self.weights
                if v.regularizer is not None and (v.trainable and self.trainable)]

    # ---- the forward/backward protocol ---------------------------------------------

    def build(self, input_shape) -> None:
        self.built = True

    def maybe_build(self, input_shape) -> None:
        if not self.built:
            self.build(normalize_shape(input_shape))
            self.built = True

    def call(self, inputs, training=False, mask=None):
        raise NotImplementedError(f"{type(self).__name__}.call")

    def backward(self, grad):
        """dL/d(input) from dL/d(output); sets the gradients of this layer's weights.

        Needs the cache of the last call(..., training=True)."""
        raise NotImplementedError(f"{type(self).__name__} has no backward pass")

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def forward(self, inputs, training=False, mask=None):
        """Builds if needed, runs call, applies the activity regularizer."""
        self.maybe_build(np.shape(inputs))
        out = self.call(inputs, training=training, mask=mask)
        return out

    def activity_penalty(self, outputs) -> float:
        if self.activity_regularizer is None:
            return 0.0
        return float(self.activity_regularizer(outputs))

    def activity_gradient(self, outputs):
        return self.activity_regularizer.gradient(outputs)

    def __call__(self, inputs, *args, training=False, mask=None, **kwargs):
        """Runs the layer on NumPy data (inference unless training=True)."""
        if args:
            raise TypeError(f"{type(self).__name__}.__call__ takes the inputs and keyword "
                            f"arguments only")
        self.maybe_build(np.shape(inputs) if not isinstance(inputs, (list, tuple)) else
                         [np.shape(i) for i in inputs])
        return self.call(inputs, training=training, mask=mask, **kwargs)

    # ---- configuration ----------------------------------------------------------

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable,
                "dtype": dtype_policy(self.compute_dtype.name)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("build_config", None)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
