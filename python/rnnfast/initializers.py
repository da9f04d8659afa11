"""Weight initializers with Keras 3 names, arguments, defaults and configs.

Each initializer is called as ``init(shape, dtype=None)`` and returns a NumPy
array (``dtype=None``: the package's floatx, float32 unless changed).

Randomness: an initializer built with an integer ``seed`` returns the same
values on every call (a fresh ``np.random.Generator(seed)`` per call, as
Keras 3 documents for integer seeds); with ``seed=None`` it draws from
rnnfast's global generator (``rnnfast._rng.global_rng()``, reset by
``rnnfast.utils.set_random_seed``), so successive calls differ but a seeded
program is reproducible. A ``np.random.Generator`` may also be passed as the
seed (the analogue of ``keras.random.SeedGenerator``: draws advance it).
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Mapping

import numpy as np

from . import _rng, _serialization
from ._naming import to_snake_case
from .utils.blas import single_thread_blas

__all__ = [
    "ALL_OBJECTS_DICT", "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform",
    "Identity", "IdentityInitializer", "Initializer", "LecunNormal", "LecunUniform", "Ones",
    "Orthogonal", "OrthogonalInitializer", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "Zeros", "compute_fans", "constant", "deserialize", "get",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "identity", "lecun_normal",
    "lecun_uniform", "ones", "orthogonal", "random_normal", "random_uniform", "serialize",
    "truncated_normal", "variance_scaling", "zeros",
]

_MODULE = "keras.initializers"
# stddev of a standard normal truncated to [-2, 2]: VarianceScaling divides by
# it so that the truncated draw has the requested standard deviation.
_TRUNCATED_STDDEV = 0.87962566103423978


# --------------------------------------------------------------------------- helpers

def _floatx() -> np.dtype:
    """The package's default float type (Keras's floatx; float32 unless set)."""
    try:
        from ._config import floatx
    except ImportError:  # pragma: no cover - settings module absent
        return np.dtype(np.float32)
    return np.dtype(floatx())


def _standardize_dtype(dtype) -> np.dtype:
    if dtype is None:
        return _floatx()
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"invalid dtype {dtype!r}") from e


def _float_dtype(dtype) -> np.dtype:
    dtype = _standardize_dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"random initializers need a floating dtype; received dtype={dtype}")
    return dtype


def _standardize_shape(shape) -> tuple:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError as e:
        raise ValueError(f"invalid shape {shape!r}: expected a tuple of ints") from e
    out = []
    for dim in shape:
        if dim is None or not isinstance(dim, numbers.Integral) or isinstance(dim, bool) \
                or dim < 0:
            raise ValueError(f"invalid shape {shape!r}: every dimension must be an "
                             f"integer >= 0")
        out.append(int(dim))
    return tuple(out)


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, as Keras computes them.

    With both ``input_axes`` and ``output_axes`` (Keras 3.15), the fans are
    the products of those axes' sizes. Otherwise: scalars (1, 1); vectors
    (n, n); matrices ``(in, out)``; higher ranks are convolution kernels
    ``(..., input_depth, depth)`` whose leading dimensions form the receptive
    field."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (int(np.prod([shape[a] for a in input_axes], dtype=np.int64)),
                int(np.prod([shape[a] for a in output_axes], dtype=np.int64)))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive_field = 1
    for dim in shape[:-2]:
        receptive_field *= dim
    return int(shape[-2] * receptive_field), int(shape[-1] * receptive_field)


def _truncated_standard_normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Standard normal draws with every value beyond 2 redrawn (float64)."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    n_bad = int(np.count_nonzero(bad))
    while n_bad:
        z[bad] = rng.standard_normal(n_bad)
        bad = np.abs(z) > 2.0
        n_bad = int(np.count_nonzero(bad))
    return z


# --------------------------------------------------------------------------- base

class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)``.

    ``get_config()`` returns the constructor arguments; ``from_config`` calls
    the constructor with them."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError("Initializer subclasses must implement the `__call__()` "
                                  "method.")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(**config)

    def clone(self):
        return self.__class__.from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- constants

class Constant(Initializer):
    """Fills with ``value`` (a scalar, or an array broadcastable to the shape)."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        shape = _standardize_shape(shape)
        dtype = _standardize_dtype(dtype)
        return np.array(np.broadcast_to(np.asarray(self.value, dtype=dtype), shape))

    def get_config(self) -> dict:
        value = self.value
        if isinstance(value, np.ndarray) and value.ndim > 0:
            value = {"class_name": "__numpy__",
                     "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
        elif isinstance(value, (np.generic, np.ndarray)):
            value = value.item()
        return {"value": value}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        value = config.get("value", 0.0)
        if isinstance(value, Mapping) and value.get("class_name") in ("__numpy__",
                                                                      "__tensor__"):
            inner = value.get("config", {})
            value = np.asarray(inner["value"], dtype=inner.get("dtype"))
        return cls(value)


class Zeros(Initializer):
    """Fills with 0."""

    def __call__(self, shape, dtype=None):
        return np.zeros(_standardize_shape(shape), dtype=_standardize_dtype(dtype))


class Ones(Initializer):
    """Fills with 1."""

    def __call__(self, shape, dtype=None):
        return np.ones(_standardize_shape(shape), dtype=_standardize_dtype(dtype))


class Identity(Initializer):
    """``gain * eye(rows, cols)``; 2-D shapes only (non-square allowed)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = _standardize_shape(shape)
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        dtype = _standardize_dtype(dtype)
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain}


# --------------------------------------------------------------------------- random

class RandomInitializer(Initializer):
    """Base of the random initializers: holds and serializes ``seed``."""

    def __init__(self, seed=None):
        init_seed = seed
        if isinstance(seed, Mapping):
            # A serialized keras.random.SeedGenerator: {"class_name": "SeedGenerator",
            # "config": {"seed": int}}; behaves as an advancing generator.
            inner = seed.get("config", seed)
            seed = np.random.default_rng(inner.get("seed"))
            init_seed = None
        elif isinstance(seed, np.random.Generator):
            init_seed = None
        elif seed is not None and (not isinstance(seed, numbers.Integral)
                                   or isinstance(seed, (bool, np.bool_))):
            raise ValueError("`seed` argument should be an integer, None or a "
                             f"numpy.random.Generator. Received: seed={seed!r}")
        elif seed is not None:
            seed = init_seed = int(seed)
        self._init_seed = init_seed
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        if isinstance(self.seed, np.random.Generator):
            return self.seed
        return _rng.seeded_rng(self.seed)

    def get_config(self) -> dict:
        return {"seed": self._init_seed}


class RandomNormal(RandomInitializer):
    """Normal draws with ``mean`` and ``stddev``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape, dtype = _standardize_shape(shape), _float_dtype(dtype)
        z = self._rng().standard_normal(shape)
        return (self.mean + self.stddev * z).astype(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Normal draws with ``mean`` and ``stddev``, values more than two
    standard deviations from the mean redrawn."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape, dtype = _standardize_shape(shape), _float_dtype(dtype)
        z = _truncated_standard_normal(self._rng(), shape)
        return (self.mean + self.stddev * z).astype(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    """Uniform draws in ``[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape, dtype = _standardize_shape(shape), _float_dtype(dtype)
        u = self._rng().random(shape)
        return (self.minval + (self.maxval - self.minval) * u).astype(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Draws scaled to the weight shape: ``n`` is fan_in, fan_out or their
    mean (``mode``); ``"truncated_normal"`` gives stddev ``sqrt(scale / n)``
    after truncation at 2 (pre-truncation stddev divided by 0.8796...),
    ``"untruncated_normal"`` stddev ``sqrt(scale / n)``, ``"uniform"`` the
    range ``[-limit, limit]`` with ``limit = sqrt(3 * scale / n)``.
    ``"normal"`` is read as ``"truncated_normal"``."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        if not isinstance(scale, numbers.Real) or scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in self._MODES:
            raise ValueError(f"Invalid `mode` argument: {mode}. Please use one of "
                             f"{set(self._MODES)}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"Invalid `distribution` argument: {distribution}. Please use "
                             f"one of {set(self._DISTRIBUTIONS)}")
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        super().__init__(seed=seed)

    def _variance(self, shape) -> float:
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        if self.mode == "fan_in":
            n = max(1.0, fan_in)
        elif self.mode == "fan_out":
            n = max(1.0, fan_out)
        else:
            n = max(1.0, (fan_in + fan_out) / 2.0)
        return self.scale / n

    def __call__(self, shape, dtype=None):
        shape, dtype = _standardize_shape(shape), _float_dtype(dtype)
        scale = self._variance(shape)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / _TRUNCATED_STDDEV
            values = stddev * _truncated_standard_normal(rng, shape)
        elif self.distribution == "untruncated_normal":
            values = math.sqrt(scale) * rng.standard_normal(shape)
        else:
            limit = math.sqrt(3.0 * scale)
            values = -limit + 2.0 * limit * rng.random(shape)
        return values.astype(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _FixedVarianceScaling(VarianceScaling):
    """VarianceScaling with fixed parameters; the config holds only the seed."""

    _PARAMS: dict = {}

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(seed=seed, input_axes=input_axes, output_axes=output_axes, **self._PARAMS)

    def get_config(self) -> dict:
        return {"seed": self._init_seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))``."""
    _PARAMS = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal, stddev ``sqrt(2 / (fan_in + fan_out))``."""
    _PARAMS = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal, stddev ``sqrt(1 / fan_in)``."""
    _PARAMS = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


class LecunUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(3 / fan_in)``."""
    _PARAMS = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


class HeNormal(_FixedVarianceScaling):
    """Truncated normal, stddev ``sqrt(2 / fan_in)``."""
    _PARAMS = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


class HeUniform(_FixedVarianceScaling):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / fan_in)``."""
    _PARAMS = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


class Orthogonal(RandomInitializer):
    """``gain`` times an orthogonal matrix from the QR decomposition of a
    normal matrix, the shape flattened to ``(prod(shape[:-1]), shape[-1])``:
    orthonormal columns when it is tall or square, orthonormal rows when
    wide. Needs rank >= 2."""

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape, dtype = _standardize_shape(shape), _float_dtype(dtype)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        num_rows = 1
        for dim in shape[:-1]:
            num_rows *= dim
        num_cols = shape[-1]
        flat_shape = (max(num_rows, num_cols), min(num_rows, num_cols))
        a = self._rng().standard_normal(flat_shape)
        with single_thread_blas():  # see utils/blas.py
            q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if num_rows < num_cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}


# Keras 3 exported aliases.
IdentityInitializer = Identity
OrthogonalInitializer = Orthogonal
constant = Constant
zeros = Zeros
ones = Ones
identity = Identity
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
he_normal = HeNormal
he_uniform = HeUniform
orthogonal = Orthogonal


# --------------------------------------------------------------------------- lookup

_CLASSES = (Initializer, Constant, Identity, Ones, Zeros, GlorotNormal, GlorotUniform,
            HeNormal, HeUniform, LecunNormal, LecunUniform, RandomNormal, TruncatedNormal,
            RandomUniform, VarianceScaling, Orthogonal)

#: Name -> class, as ``keras.initializers`` resolves strings and class names.
ALL_OBJECTS_DICT: dict = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update({to_snake_case(cls.__name__): cls for cls in _CLASSES})
ALL_OBJECTS_DICT.update({
    "uniform": RandomUniform, "normal": RandomNormal, "one": Ones, "zero": Zeros,
    # Class names of earlier Keras 3 releases (and their snake-case forms).
    "OrthogonalInitializer": Orthogonal, "orthogonal_initializer": Orthogonal,
    "IdentityInitializer": Identity, "identity_initializer": Identity,
})


def serialize(initializer) -> Any:
    """``{"module": "keras.initializers", "class_name", "config",
    "registered_name": None}`` (a plain function: its name)."""
    return _serialization.serialize_object(initializer, _MODULE)


def deserialize(config, custom_objects: Mapping[str, Any] | None = None):
    """An initializer from a config dict (Keras 3 or Keras 2 style) or a name."""
    return _serialization.deserialize_object(config, ALL_OBJECTS_DICT, "initializer",
                                             custom_objects=custom_objects)


def _array_initializer(value: np.ndarray):
    def initialize_fn(shape, dtype=None):
        shape = _standardize_shape(shape)
        if shape != tuple(value.shape):
            raise ValueError(f"Expected `shape` to be {tuple(value.shape)} for direct tensor "
                             f"as initializer. Received shape={shape}")
        return np.array(value, dtype=_standardize_dtype(dtype))
    return initialize_fn


def get(identifier):
    """Keras 3 ``initializers.get``: None -> None; a name (class name,
    snake-case name or alias) -> an instance with default arguments; a config
    dict; an instance or a function ``f(shape, dtype=None)`` (returned as
    is); a class (instantiated); a NumPy array (returned by calls with its
    exact shape)."""
    if identifier is None:
        return None
    if isinstance(identifier, Mapping):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = deserialize({"class_name": identifier, "config": {}})
    elif isinstance(identifier, (np.ndarray, np.generic)):
        obj = _array_initializer(np.asarray(identifier))
    else:
        obj = identifier
    if callable(obj):
        if inspect.isclass(obj):
            obj = obj()
        return obj
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")
