"""Stateful metrics with Keras 3 names, arguments, defaults and configs.

``update_state(y_true, y_pred, sample_weight=None)`` accumulates,
``result()`` gives a Python float (0.0 before any update, like Keras's
``divide_no_nan``), ``reset_state()`` starts over.

Accumulation follows Keras 3's ``Mean``/``reduce_to_samplewise_values``:
the per-sample values of a ``MeanMetricWrapper`` (e.g. ``[B, T]`` accuracies
of a ``return_sequences`` output) are first averaged over the axes the
sample weight lacks, then ``total += sum(values * sample_weight)`` and
``count += sum(sample_weight)`` (``count += B`` without weights). A weight of
the values' full shape (or a mask) thus gives ``sum(v * w) / sum(w)`` over
all entries. Accumulators are float64 (Keras keeps float32 variables).

``get`` accepts Keras 3's names (class names and their snake-case forms:
"accuracy", "binary_accuracy", "mean_squared_error", ...; "mse", "mae",
"mape", "msle", "bce"), config dicts, Metric classes and instances, and plain
callables (wrapped in ``MeanMetricWrapper`` named after the function). As in
``keras.metrics.get``, "accuracy" is the exact-match ``Accuracy``; the
shape-dependent choice ``compile(metrics=["accuracy"])`` makes is
``resolve_accuracy`` (or ``get_compile_metric``).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from . import _serialization
from ._naming import to_snake_case
from . import losses as _losses
from .losses import (binary_crossentropy, categorical_crossentropy, categorical_hinge, hinge,
                     huber, kl_divergence, kld, kullback_leibler_divergence, log_cosh, logcosh,
                     mae, mape, mean_absolute_error, mean_absolute_percentage_error,
                     mean_squared_error, mean_squared_logarithmic_error, mse, msle,
                     sparse_categorical_crossentropy, squared_hinge,
                     squeeze_or_expand_to_same_rank)

__all__ = [
    "ALL_OBJECTS_DICT", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy",
    "CategoricalAccuracy", "CategoricalCrossentropy", "CategoricalHinge", "Hinge",
    "KLDivergence", "LogCoshError", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanMetricWrapper", "MeanSquaredError", "MeanSquaredLogarithmicError", "Metric",
    "RootMeanSquaredError", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "SquaredHinge", "Sum", "TopKCategoricalAccuracy",
    "accuracy", "binary_accuracy", "binary_crossentropy", "categorical_accuracy",
    "categorical_crossentropy", "categorical_hinge", "deserialize", "get",
    "get_compile_metric", "hinge", "huber", "kl_divergence", "kld",
    "kullback_leibler_divergence", "log_cosh", "logcosh", "mae", "mape",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "mse", "msle", "resolve_accuracy", "serialize",
    "sparse_categorical_accuracy", "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy", "squared_hinge", "top_k_categorical_accuracy",
]

_MODULE = "keras.metrics"




# --------------------------------------------------------------------------- functions

def accuracy(y_true, y_pred):
    """``mean(y_true == y_pred, axis=-1)`` (exact equality)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).astype(y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return np.mean(np.equal(y_true, y_pred).astype(np.float32), axis=-1)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """``mean(y_true == (y_pred > threshold), axis=-1)``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    threshold = 0.5 if threshold is None else threshold
    pred = (y_pred > np.asarray(threshold, dtype=y_pred.dtype)).astype(y_true.dtype)
    return np.mean(np.equal(y_true, pred).astype(np.float32), axis=-1)


def categorical_accuracy(y_true, y_pred):
    """``argmax(y_true, -1) == argmax(y_pred, -1)`` per sample (one-hot labels)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = np.argmax(y_true, axis=-1)
    org_shape = labels.shape
    reshape = False
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
        reshape = True
    matches = np.equal(labels, np.argmax(y_pred, axis=-1)).astype(np.float32)
    return matches.reshape(org_shape) if reshape else matches


def sparse_categorical_accuracy(y_true, y_pred):
    """``y_true == argmax(y_pred, -1)`` per sample (integer labels, with or
    without a trailing axis of size 1)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    org_shape = y_true.shape
    reshape = False
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
        reshape = True
    pred = np.argmax(y_pred, axis=-1).astype(y_true.dtype)
    matches = np.equal(y_true, pred).astype(np.float32)
    if reshape:
        matches = matches.reshape(org_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches[..., 0]
    return matches


def _in_top_k(targets, predictions, k):
    """Keras's ``in_top_k``: the target's score is >= the k-th largest score
    (ties at the boundary count as in)."""
    targets = targets.astype(np.int64)
    num_classes = predictions.shape[-1]
    if k >= num_classes:
        kth = np.min(predictions, axis=-1)
    elif k < 1:
        return np.zeros(targets.shape, dtype=bool)
    else:
        kth = -np.partition(-predictions, k - 1, axis=-1)[:, k - 1]
    valid = (targets >= 0) & (targets < num_classes)
    score = np.take_along_axis(predictions, np.where(valid, targets, 0)[:, None], axis=-1)[:, 0]
    return valid & (score >= kth)


def _top_k(labels, y_pred, k):
    org_shape = labels.shape
    preds = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 2 else y_pred
    flat = labels.reshape(-1) if labels.ndim > 1 else labels
    matches = _in_top_k(flat, preds, int(k)).astype(np.float32)
    return matches.reshape(org_shape) if labels.ndim > 1 else matches


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether ``argmax(y_true)`` is among the ``k`` highest ``y_pred`` scores."""
    y_pred = np.asarray(y_pred)
    labels = np.argmax(np.asarray(y_true), axis=-1)
    return _top_k(labels, y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether the integer label is among the ``k`` highest ``y_pred`` scores."""
    y_pred = np.asarray(y_pred)
    return _top_k(np.asarray(y_true), y_pred, k)


# --------------------------------------------------------------------------- base

def _align(w: np.ndarray, shape) -> np.ndarray:
    """Keras's squeeze/expand of a trailing size-1 axis of a mask against
    a weight, then per-sample broadcasting over trailing axes (rnnfast)."""
    nd = len(shape)
    if nd == w.ndim + 1 and shape[-1] == 1:
        w = w[..., None]
    elif w.ndim == nd + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if 0 < w.ndim < nd and w.shape == tuple(shape[:w.ndim]):
        w = w.reshape(w.shape + (1,) * (nd - w.ndim))
    return w


def _merge_mask(sample_weight, mask):
    """Keras's ``apply_mask(..., reduction="sum")``: the mask (as 0/1) times
    the sample weight."""
    if mask is None:
        return sample_weight
    m = np.asarray(mask).astype(np.float64)
    if sample_weight is None:
        return m
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim > m.ndim:
        m = _align(m, sw.shape)
    else:
        sw = _align(sw, m.shape)
    return m * sw


def _reduce_to_samplewise(values, sample_weight, reduce_fn=np.mean):
    """Keras 3's ``reduce_to_samplewise_values``: (per-sample weighted values,
    per-sample weights or None); ``reduce_fn`` is ``np.mean`` for Mean and
    ``np.sum`` for Sum."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        if values.ndim > sw.ndim:
            values = reduce_fn(values, axis=tuple(range(sw.ndim, values.ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} cannot be "
                             f"matched to values of shape {values.shape}") from None
        values = values * sw
        if sw.ndim > 1:
            sw = reduce_fn(sw, axis=tuple(range(1, sw.ndim)))
        sample_weight = sw
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Metric:
    """Base class (``keras.metrics.Metric``): subclasses implement
    ``update_state``, ``result`` and ``reset_state``. ``m(...)`` updates and
    returns the result."""

    def __init__(self, dtype=None, name=None):
        self.name = name or to_snake_case(type(self).__name__)
        self._dtype = dtype or "float32"
        self._direction = None

    @property
    def dtype(self):
        return self._dtype

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state``."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values, _ = _reduce_to_samplewise(values, sample_weight, reduce_fn=np.sum)
        self.total += float(np.sum(values))

    def reset_state(self):
        self.total = 0.0

    def result(self) -> float:
        return float(self.total)


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state``: keeps
    ``total`` and ``count``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        if type(values) in (float, int) and type(sample_weight) in (float, int, type(None)):
            # A Python number (the training loop's loss, weighted by the batch
            # size): the same float64 arithmetic as below without NumPy's
            # per-call overhead (~25 us of a 0.5 ms W1 training step).
            sw = 1.0 if sample_weight is None else float(sample_weight)
            self.total += float(values) * sw
            self.count += sw
            return
        values, sample_weight = _reduce_to_samplewise(values, sample_weight)
        self.total += float(np.sum(values))
        if sample_weight is not None:
            self.count += float(np.sum(sample_weight))
        elif values.ndim >= 1:
            self.count += values.shape[0]
        else:
            self.count += 1.0

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def result(self) -> float:
        return float(self.total / self.count) if self.count else 0.0


_LOSS_FUNCTIONS = frozenset(_losses._BUILTIN_FUNCTIONS.values())


class MeanMetricWrapper(Mean):
    """The weighted mean over all batches of ``fn(y_true, y_pred, **kwargs)``,
    a function giving per-sample values. ``update_state`` also takes an
    optional boolean ``mask`` of the values' shape (Keras takes it from
    ``y_pred``'s mask): masked entries get weight 0. ``name`` defaults to
    ``fn.__name__``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper needs a callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None) or "mean_metric_wrapper",
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        try:
            if fn in _LOSS_FUNCTIONS:
                self._direction = "down"
        except TypeError:
            pass

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        values = self._fn(np.asarray(y_true), np.asarray(y_pred), **self._fn_kwargs)
        sample_weight = _merge_mask(sample_weight, mask)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        config["fn"] = _losses._serialize_function(self._fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        config = dict(config)
        if "fn" in config:
            config["fn"] = _losses._deserialize_function(config["fn"], _FUNCTION_NAMES,
                                                         "metric")
        return cls(**config)


# --------------------------------------------------------------------------- regression

class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``mean_squared_error`` over all samples seen."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``mean_absolute_error`` over all samples seen."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """The mean of ``mean_absolute_percentage_error`` over all samples seen."""

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """The mean of ``mean_squared_logarithmic_error`` over all samples seen."""

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class LogCoshError(MeanMetricWrapper):
    """The mean of ``log_cosh`` over all samples seen."""

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(log_cosh, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class RootMeanSquaredError(Mean):
    """``sqrt`` of the weighted mean of the squared errors (each sample's
    squared errors averaged first, as Keras's ``Mean`` does)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = np.asarray(y_true, dtype=np.float64)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return super().update_state(np.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


# --------------------------------------------------------------------------- hinge / probabilistic

class Hinge(MeanMetricWrapper):
    """The mean of ``hinge`` over all samples seen."""

    def __init__(self, name="hinge", dtype=None):
        super().__init__(hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class SquaredHinge(MeanMetricWrapper):
    """The mean of ``squared_hinge`` over all samples seen."""

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class CategoricalHinge(MeanMetricWrapper):
    """The mean of ``categorical_hinge`` over all samples seen."""

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class KLDivergence(MeanMetricWrapper):
    """The mean of ``kl_divergence`` over all samples seen."""

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryCrossentropy(MeanMetricWrapper):
    """The mean of ``binary_crossentropy`` over all samples seen."""

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        super().__init__(binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(MeanMetricWrapper):
    """The mean of ``categorical_crossentropy`` over all samples seen."""

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        super().__init__(categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """The mean of ``sparse_categorical_crossentropy`` over all samples seen."""

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 axis=-1):
        super().__init__(sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, axis=axis)
        self.from_logits = from_logits
        self.axis = axis
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "axis": self.axis}


# --------------------------------------------------------------------------- accuracy

class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true`` exactly."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` equals the 0/1 label."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if threshold is not None and (threshold <= 0 or threshold >= 1):
            raise ValueError("Invalid value for argument `threshold`. Expected a value in "
                             f"interval (0, 1). Received: threshold={threshold}")
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` matches the one-hot label."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` matches the integer label."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label is among the top ``k`` predictions."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the top ``k`` predictions."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


# --------------------------------------------------------------------------- registry

_CLASSES = (Metric, Mean, Sum, MeanMetricWrapper, MeanSquaredError, RootMeanSquaredError,
            MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
            LogCoshError, Hinge, SquaredHinge, CategoricalHinge, KLDivergence,
            BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
            Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy)

ALL_OBJECTS_DICT: dict = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update({to_snake_case(cls.__name__): cls for cls in _CLASSES})
ALL_OBJECTS_DICT.update({
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
})

# Per-sample functions, for MeanMetricWrapper configs and for names that are
# no metric class (e.g. "huber", "kld", "logcosh": rnnfast wraps them).
_FUNCTION_NAMES: dict = dict(_losses._FUNCTION_NAMES)
_FUNCTION_NAMES.update({f.__name__: f for f in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
    top_k_categorical_accuracy, sparse_top_k_categorical_accuracy)})


def serialize(metric):
    """A Keras 3 config dict for a Metric; a function's name otherwise."""
    return _serialization.serialize_object(metric, _MODULE)


def deserialize(config, custom_objects=None):
    """A Metric from a config dict or a class name."""
    if isinstance(config, Mapping) and config.get("class_name") == "function":
        return _losses._deserialize_function(config, _FUNCTION_NAMES, "metric", custom_objects)
    return _serialization.deserialize_object(config, ALL_OBJECTS_DICT, "metric",
                                             custom_objects=custom_objects)


def _wrap(obj, name=None) -> Metric:
    if isinstance(obj, Metric):
        return obj
    if inspect.isclass(obj):
        if not issubclass(obj, Metric):
            raise ValueError(f"Could not interpret metric identifier: {obj!r}")
        return obj()
    if callable(obj):
        return MeanMetricWrapper(obj, name=name or getattr(obj, "__name__", None))
    raise ValueError(f"Could not interpret metric identifier: {obj!r}")


def get(identifier):
    """A Metric instance from a name, a config dict, a Metric class or
    instance (returned as is) or a callable (wrapped in MeanMetricWrapper
    named after the function; Keras returns the bare function and leaves the
    wrapping to ``compile``). Names that Keras 3 knows only as functions
    ("huber", "kld", "logcosh", ...) give a MeanMetricWrapper of that
    name. Unknown names raise ValueError."""
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, Mapping):
        return _wrap(deserialize(identifier))
    if isinstance(identifier, str):
        if identifier in ALL_OBJECTS_DICT:
            return ALL_OBJECTS_DICT[identifier]()
        if identifier in _FUNCTION_NAMES:
            return MeanMetricWrapper(_FUNCTION_NAMES[identifier], name=identifier)
        try:
            obj = _serialization.deserialize_object(identifier, {}, "metric",
                                                    instantiate_strings=False)
        except ValueError:
            raise ValueError(f"Could not interpret metric identifier: {identifier!r}; "
                             f"known: {sorted(ALL_OBJECTS_DICT)}") from None
        return _wrap(obj, name=identifier)
    if callable(identifier):
        return _wrap(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def _loss_kind(loss):
    """"binary", "sparse", "categorical" or None for a loss identifier."""
    if loss is None:
        return None
    if isinstance(loss, str):
        key = to_snake_case(loss) if loss[:1].isupper() else loss
        key = {"bce": "binary_crossentropy"}.get(key.lower(), key)
    else:
        key = getattr(loss, "__name__", None) or type(loss).__name__
        fn = getattr(loss, "fn", None)
        if fn is not None and getattr(fn, "__name__", None):
            key = fn.__name__
        key = to_snake_case(key) if key[:1].isupper() else key
    if key in ("binary_crossentropy", "binary_focal_crossentropy"):
        return "binary"
    if key == "sparse_categorical_crossentropy":
        return "sparse"
    if key in ("categorical_crossentropy", "categorical_focal_crossentropy"):
        return "categorical"
    return None


def resolve_accuracy(loss, y_true_shape, y_pred_shape, name="accuracy") -> Metric:
    """The metric ``compile(metrics=["accuracy"])`` gives (Keras 3's
    ``compile_utils.get_metric``), named ``name`` ("accuracy" or "acc": Keras
    keeps the user's string):

    * ``BinaryAccuracy`` when ``y_pred``'s last axis is 1;
    * else ``SparseCategoricalAccuracy`` when ``y_true`` has a lower rank than
      ``y_pred``, or a last axis of 1 against more classes;
    * else ``CategoricalAccuracy``.

    Keras 3 decides from the shapes alone; ``loss`` (a loss identifier) is
    only consulted when ``y_true_shape`` is None (unknown): binary / sparse
    categorical crossentropy then pick binary / sparse categorical accuracy."""
    y_pred_shape = tuple(y_pred_shape)
    yp_last = y_pred_shape[-1] if y_pred_shape else None
    if yp_last == 1:
        return BinaryAccuracy(name=name)
    if y_true_shape is None:
        kind = _loss_kind(loss)
        if kind == "binary":
            return BinaryAccuracy(name=name)
        if kind == "sparse":
            return SparseCategoricalAccuracy(name=name)
        return CategoricalAccuracy(name=name)
    y_true_shape = tuple(y_true_shape)
    yt_last = y_true_shape[-1] if y_true_shape else None
    if len(y_true_shape) < len(y_pred_shape) or (
            yt_last == 1 and yp_last is not None and yp_last > 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def get_compile_metric(identifier, y_true_shape=None, y_pred_shape=None, loss=None):
    """The metric ``compile(metrics=[identifier])`` uses (Keras 3's
    ``compile_utils.get_metric``): "accuracy"/"acc" (any case) go through
    ``resolve_accuracy``; a string names the metric after itself
    (``"mse"`` logs as "mse"); other identifiers keep their object's name."""
    if identifier is None:
        return None
    if str(identifier).lower() in ("accuracy", "acc"):
        if y_pred_shape is None:
            raise ValueError(f"metric {identifier!r} needs the output's shape")
        return resolve_accuracy(loss, y_true_shape, y_pred_shape, name=str(identifier))
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric
