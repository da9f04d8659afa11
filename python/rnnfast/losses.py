"""Losses with Keras 3 names, arguments, defaults, formulas and configs.

rnnfast has no autodiff, so every loss also gives its derivative:

* ``loss.call(y_true, y_pred)``: the unreduced per-sample losses, as Keras
  computes them (e.g. ``mean(square(y_pred - y_true), axis=-1)`` for MSE, of
  shape ``y_pred.shape[:-1]``).
* ``loss.grad(y_true, y_pred)``: an array ``G`` of ``y_pred``'s shape and
  dtype with ``G[..., j] = d call(y_true, y_pred)[...] / d y_pred[..., j]``.
  Every built-in loss is separable over all axes but the one it reduces, so
  this is the whole Jacobian. Where Keras clips (probabilities to
  ``[eps, 1 - eps]``, ``max(y_pred, eps)`` ...) ``G`` is the derivative of the
  clipped expression: 0 where the clip is active.
* ``loss(y_true, y_pred, sample_weight=None)``: the reduced loss (a Python
  float; an array for ``reduction="none"``/``None``) with Keras 3's
  ``reduce_weighted_values`` semantics.
* ``loss.value_and_grad(y_true, y_pred, sample_weight=None, mask=None)``:
  ``(reduced loss, d reduced loss / d y_pred)``.

Reductions (Keras 3's ``reduce_weighted_values``/``apply_mask``), with
``values`` the per-sample losses, ``sw`` the sample weights and ``m`` a mask
of ``values``'s shape:

* ``"sum_over_batch_size"`` and ``"mean"``: ``sum(values * sw * m) /
  count(m)`` (``/ values.size`` without a mask): Keras scales the mask by
  ``size / count(m)`` before the usual ``sum / size``. 0 if nothing is valid.
* ``"sum"``: ``sum(values * sw * m)``.
* ``"mean_with_sample_weight"``: ``sum(values * sw * m) / sum(sw * m)``
  (``/ values.size`` when there are neither weights nor a mask), the sums
  taken over the weights broadcast to ``values``'s shape. (Keras sums the
  weight array as given, so a scalar or broadcast weight there does not give
  a weighted mean; for weights of the values' shape both agree.)
* ``"none"``/``None``: ``values * sw * m``; ``value_and_grad`` then gives the
  sum of those and its gradient (what differentiating a non-scalar loss
  means in TensorFlow).

``sample_weight`` is matched to ``values`` like Keras (a trailing axis of
size 1 is squeezed/added, then NumPy broadcasting), plus one rnnfast
extension: a weight whose shape is the leading part of ``values``'s (``[B]``
against ``[B, T]`` losses of a ``return_sequences`` output) weighs every
timestep of its sample. Keras 3 would raise (or broadcast along the wrong
axis when ``B == T``) there.

``y_true``/``y_pred`` shapes: the wrapper squeezes or expands the last axis
like Keras's ``squeeze_or_expand_to_same_rank``: ``y_true [B]`` with
``y_pred [B, 1]`` becomes ``[B, 1]`` (per-sample losses ``[B]``), and
``y_pred [B, T, 1]`` with ``y_true [B, T]`` is squeezed to ``[B, T]``
(losses ``[B]``, the mean over ``T``, as in Keras). ``y_true`` may be of any
numeric dtype; integer labels are fine.

Numerics: computed in float64, returned in ``y_pred``'s float dtype (float32
for non-float ``y_pred``). ``from_logits=True`` crossentropies use the exact
log-sigmoid / log-softmax forms (Keras's TensorFlow and JAX backends); with
probabilities, Keras's clipping to ``[1e-7, 1 - 1e-7]`` (after normalizing
the probabilities to sum to 1 for the categorical ones).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from . import _serialization
from ._naming import to_snake_case

__all__ = [
    "ALL_OBJECTS_DICT", "BinaryCrossentropy", "CategoricalCrossentropy", "CategoricalHinge",
    "Hinge", "Huber", "KLDivergence", "LogCosh", "Loss", "LossFunctionWrapper",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "SparseCategoricalCrossentropy", "SquaredHinge",
    "binary_crossentropy", "categorical_crossentropy", "categorical_hinge", "deserialize",
    "get", "get_compile_loss", "hinge", "huber", "kl_divergence", "kld",
    "kullback_leibler_divergence", "log_cosh", "logcosh", "mae", "mape",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "mse", "msle", "numerical_gradient",
    "reduce_weighted_values", "serialize", "sparse_categorical_crossentropy",
    "squared_hinge", "squeeze_or_expand_to_same_rank",
]

_MODULE = "keras.losses"
_EPSILON = 1e-7  # keras.backend.epsilon()
_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


# --------------------------------------------------------------------------- helpers



def standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError("Invalid value for argument `reduction`. Expected one of "
                         f"{set(_REDUCTIONS)}. Received: reduction={reduction}")
    return reduction


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Keras 3's rule: when the ranks differ by exactly one and the longer
    one ends in an axis of size 1, that axis is squeezed, except that a rank-1
    partner is expanded instead (``[B]`` with ``[B, 1]`` gives ``[B, 1]``)."""
    x1 = np.asarray(x1)
    x2 = np.asarray(x2)
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _float_dtype(y_pred) -> np.dtype:
    dt = np.asarray(y_pred).dtype
    return dt if dt.kind == "f" else np.dtype(np.float32)


def _prep(y_true, y_pred):
    """float64 copies of y_true/y_pred after Keras's squeeze/expand, plus
    y_pred's original shape and output dtype."""
    y_pred = np.asarray(y_pred)
    shape, dtype = y_pred.shape, _float_dtype(y_pred)
    yt, yp = squeeze_or_expand_to_same_rank(np.asarray(y_true), y_pred)
    return yt.astype(np.float64), yp.astype(np.float64), shape, dtype


def _finish_grad(g: np.ndarray, shape, dtype) -> np.ndarray:
    return np.asarray(g, dtype=np.float64).reshape(shape).astype(dtype, copy=False)


def _check_same_shape(yt, yp, fn_name):
    if yt.shape != yp.shape:
        try:
            np.broadcast_shapes(yt.shape, yp.shape)
        except ValueError:
            raise ValueError(f"In {fn_name}, y_true and y_pred have incompatible shapes: "
                             f"y_true.shape={yt.shape}, y_pred.shape={yp.shape}") from None


def _inside(x, lo, hi):
    """1.0 where clip(x, lo, hi) passes x through (its derivative), else 0."""
    return ((x >= lo) & (x <= hi)).astype(np.float64)


def _stable_sigmoid(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    shifted = x - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _normalize_axis(axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type "
                         f"{type(axis)}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an input of rank {ndim}")
    return int(axis) % ndim


def _attach_gradient(fn: Callable, gradient: Callable, output_mask: Callable | None = None):
    fn.gradient = gradient
    if output_mask is not None:
        fn.output_mask = output_mask
    return fn


# --------------------------------------------------------------------------- functions

def mean_squared_error(y_true, y_pred):
    """``mean(square(y_true - y_pred), axis=-1)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    return np.mean(np.square(yt - yp), axis=-1).astype(dtype)


def _mse_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    g = 2.0 * (yp - yt) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def _last_dim(yp):
    return yp.shape[-1] if yp.ndim else 1


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_true - y_pred), axis=-1)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    return np.mean(np.abs(yt - yp), axis=-1).astype(dtype)


def _mae_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    g = np.sign(yp - yt) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), 1e-7)), axis=-1)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    diff = np.abs((yt - yp) / np.maximum(np.abs(yt), _EPSILON))
    return (100.0 * np.mean(diff, axis=-1)).astype(dtype)


def _mape_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    g = 100.0 * np.sign(yp - yt) / np.maximum(np.abs(yt), _EPSILON) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean(square(log(maximum(y_pred, 1e-7) + 1) - log(maximum(y_true, 1e-7) + 1)),
    axis=-1)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    d = np.log(np.maximum(yp, _EPSILON) + 1.0) - np.log(np.maximum(yt, _EPSILON) + 1.0)
    return np.mean(np.square(d), axis=-1).astype(dtype)


def _msle_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    p = np.maximum(yp, _EPSILON)
    d = np.log(p + 1.0) - np.log(np.maximum(yt, _EPSILON) + 1.0)
    g = 2.0 * d / (p + 1.0) * (yp >= _EPSILON) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def huber(y_true, y_pred, delta=1.0):
    """``mean(where(|e| <= delta, 0.5 * e**2, delta * |e| - 0.5 * delta**2), axis=-1)``
    with ``e = y_pred - y_true``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    delta = float(delta)
    err = yp - yt
    a = np.abs(err)
    v = np.where(a <= delta, 0.5 * np.square(err), delta * a - 0.5 * delta * delta)
    return np.mean(v, axis=-1).astype(dtype)


def _huber_grad(y_true, y_pred, delta=1.0):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    delta = float(delta)
    err = yp - yt
    g = np.where(np.abs(err) <= delta, err, delta * np.sign(err)) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``, computed as
    ``x + softplus(-2x) - log(2)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    x = yp - yt
    v = x + np.logaddexp(-2.0 * x, 0.0) - np.log(2.0)
    return np.mean(v, axis=-1).astype(dtype)


def _log_cosh_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    g = np.tanh(yp - yt) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def _hinge_labels(yt):
    """Keras: labels that are all 0 or 1 are converted to -1/1."""
    if yt.size and np.all((yt == 0) | (yt == 1)):
        return 2.0 * yt - 1.0
    return yt


def hinge(y_true, y_pred):
    """``mean(maximum(1 - y_true * y_pred, 0), axis=-1)``; 0/1 labels become -1/1."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    yt = _hinge_labels(yt)
    return np.mean(np.maximum(1.0 - yt * yp, 0.0), axis=-1).astype(dtype)


def _hinge_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    yt = _hinge_labels(yt)
    g = np.where(1.0 - yt * yp > 0.0, -yt, 0.0) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def squared_hinge(y_true, y_pred):
    """``mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``; 0/1 labels become -1/1."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    yt = _hinge_labels(yt)
    return np.mean(np.square(np.maximum(1.0 - yt * yp, 0.0)), axis=-1).astype(dtype)


def _squared_hinge_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    yt = _hinge_labels(yt)
    g = -2.0 * yt * np.maximum(1.0 - yt * yp, 0.0) / _last_dim(yp)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def categorical_hinge(y_true, y_pred):
    """``maximum(neg - pos + 1, 0)`` with ``pos = sum(y_true * y_pred, -1)`` and
    ``neg = max((1 - y_true) * y_pred, -1)``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    yt = np.broadcast_to(yt, yp.shape)
    pos = np.sum(yt * yp, axis=-1)
    neg = np.max((1.0 - yt) * yp, axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0).astype(dtype)


def _categorical_hinge_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    yt = np.broadcast_to(yt, yp.shape)
    other = (1.0 - yt) * yp
    pos = np.sum(yt * yp, axis=-1)
    neg = np.max(other, axis=-1)
    active = (neg - pos + 1.0 > 0.0)[..., None]
    onehot = np.zeros_like(yp)
    np.put_along_axis(onehot, np.argmax(other, axis=-1)[..., None], 1.0, axis=-1)
    g = np.where(active, (1.0 - yt) * onehot - yt, 0.0)
    return _finish_grad(g, shape, dtype)


def kl_divergence(y_true, y_pred):
    """``sum(t * log(t / p), axis=-1)`` with ``t, p`` clipped to ``[1e-7, 1]``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    t = np.clip(yt, _EPSILON, 1.0)
    p = np.clip(yp, _EPSILON, 1.0)
    return np.sum(t * np.log(t / p), axis=-1).astype(dtype)


def _kl_divergence_grad(y_true, y_pred):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    t = np.clip(yt, _EPSILON, 1.0)
    p = np.clip(yp, _EPSILON, 1.0)
    g = -t / p * _inside(yp, _EPSILON, 1.0)
    return _finish_grad(np.broadcast_to(g, yp.shape), shape, dtype)


def _bce_elementwise(yt, yp, from_logits):
    if from_logits:
        # softplus(x) - t * x, stably.
        return np.maximum(yp, 0.0) - yp * yt + np.log1p(np.exp(-np.abs(yp)))
    p = np.clip(yp, _EPSILON, 1.0 - _EPSILON)
    return -(yt * np.log(p) + (1.0 - yt) * np.log(1.0 - p))


def _smooth_binary(yt, label_smoothing):
    if label_smoothing:
        return yt * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return yt


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``mean(-(t * log(p) + (1 - t) * log(1 - p)), axis)`` with ``p`` clipped to
    ``[1e-7, 1 - 1e-7]`` (``from_logits``: ``p = sigmoid(y_pred)``, computed
    exactly) and ``t = y_true * (1 - label_smoothing) + 0.5 * label_smoothing``."""
    yt, yp, _, dtype = _prep(y_true, y_pred)
    yt = _smooth_binary(yt, float(label_smoothing))
    _check_same_shape(yt, yp, "binary_crossentropy")
    e = _bce_elementwise(yt, yp, from_logits)
    e = np.broadcast_to(e, np.broadcast_shapes(yt.shape, yp.shape))
    return np.mean(e, axis=_normalize_axis(axis, e.ndim) if e.ndim else None).astype(dtype)


def _binary_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0,
                              axis=-1):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    yt = _smooth_binary(yt, float(label_smoothing))
    n = yp.shape[_normalize_axis(axis, yp.ndim)] if yp.ndim else 1
    if from_logits:
        g = _stable_sigmoid(yp) - yt
    else:
        p = np.clip(yp, _EPSILON, 1.0 - _EPSILON)
        g = (-yt / p + (1.0 - yt) / (1.0 - p)) * _inside(yp, _EPSILON, 1.0 - _EPSILON)
    return _finish_grad(np.broadcast_to(g / n, yp.shape), shape, dtype)


def _smooth_categorical(yt, label_smoothing):
    if label_smoothing:
        return yt * (1.0 - label_smoothing) + label_smoothing / yt.shape[-1]
    return yt


def _cce_last(t, p, from_logits):
    """Per-row crossentropy along the last axis, and its gradient w.r.t. p."""
    if from_logits:
        logp = _log_softmax(p)
        loss = -np.sum(t * logp, axis=-1)
        grad = np.exp(logp) * np.sum(t, axis=-1, keepdims=True) - t
        return loss, grad
    s = np.sum(p, axis=-1, keepdims=True)
    q = p / s
    qc = np.clip(q, _EPSILON, 1.0 - _EPSILON)
    loss = -np.sum(t * np.log(qc), axis=-1)
    gq = -t / qc * _inside(q, _EPSILON, 1.0 - _EPSILON)
    grad = (gq - np.sum(gq * q, axis=-1, keepdims=True)) / s
    return loss, grad


def _cce_prepare(y_true, y_pred, label_smoothing, axis):
    yt, yp, shape, dtype = _prep(y_true, y_pred)
    if yt.shape != yp.shape:
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={yt.shape}, output.shape={yp.shape}")
    if yp.ndim < 1:
        raise ValueError("Arguments `target` and `output` must be at least rank 1.")
    ax = _normalize_axis(axis, yp.ndim)
    t = np.moveaxis(yt, ax, -1)
    p = np.moveaxis(yp, ax, -1)
    return _smooth_categorical(t, float(label_smoothing)), p, ax, shape, dtype


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-sum(t * log(p), axis)`` with ``p = y_pred / sum(y_pred)`` clipped to
    ``[1e-7, 1 - 1e-7]`` (``from_logits``: ``log p = log_softmax(y_pred)``) and
    ``t = y_true * (1 - label_smoothing) + label_smoothing / num_classes``."""
    if np.ndim(y_pred) and np.shape(y_pred)[-1] == 1:
        warnings.warn("In loss categorical_crossentropy, expected y_pred.shape to be "
                      "(batch_size, num_classes) with num_classes > 1. Received: "
                      f"y_pred.shape={np.shape(y_pred)}. Consider using 'binary_crossentropy' "
                      "if you only have 2 classes.", SyntaxWarning, stacklevel=2)
    t, p, _, _, dtype = _cce_prepare(y_true, y_pred, label_smoothing, axis)
    return _cce_last(t, p, from_logits)[0].astype(dtype)


def _categorical_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    t, p, ax, shape, dtype = _cce_prepare(y_true, y_pred, label_smoothing, axis)
    g = np.moveaxis(_cce_last(t, p, from_logits)[1], -1, ax)
    return _finish_grad(g, shape, dtype)


def _sparse_prepare(y_true, y_pred, ignore_class, axis):
    y_pred = np.asarray(y_pred)
    shape, dtype = y_pred.shape, _float_dtype(y_pred)
    yt, yp = squeeze_or_expand_to_same_rank(np.asarray(y_true), y_pred)
    if yt.ndim == yp.ndim and yt.ndim and yt.shape[-1] == 1:
        yt = yt[..., 0]
    if yp.ndim < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: "
                         f"output.shape={yp.shape}")
    ax = _normalize_axis(axis, yp.ndim)
    p = np.moveaxis(yp.astype(np.float64), ax, -1)
    if yt.shape != p.shape[:-1]:
        raise ValueError("Arguments `target` and `output` must have the same shape up until "
                         f"the last dimension: target.shape={yt.shape}, "
                         f"output.shape={yp.shape}")
    if ignore_class is not None:
        valid = np.asarray(yt != ignore_class)
    else:
        valid = np.ones(yt.shape, dtype=bool)
    labels = np.where(valid, yt, 0).astype(np.int64)
    num_classes = p.shape[-1]
    if np.any(labels[valid] >= num_classes):
        raise ValueError(f"Received a label value of {int(labels[valid].max())} which is "
                         f"outside the valid range of [0, {num_classes - 1}]")
    # Negative labels give an all-zero target row (a zero loss), as Keras's
    # NumPy/JAX one_hot does.
    t = np.zeros(p.shape, dtype=np.float64)
    ok = valid & (labels >= 0)
    np.put_along_axis(t, np.where(ok, labels, 0)[..., None], ok[..., None].astype(np.float64),
                      axis=-1)
    return t, p, valid, ax, shape, dtype


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Categorical crossentropy against integer labels (``y_true`` of shape
    ``y_pred.shape[:-1]``, or with a trailing axis of size 1). Entries whose
    label is ``ignore_class`` get a zero loss and are masked out of the
    reduction (Keras sets a mask on the result)."""
    t, p, valid, _, _, dtype = _sparse_prepare(y_true, y_pred, ignore_class, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = _cce_last(np.where(valid[..., None], t, 0.0),
                         np.where(valid[..., None], p, 1.0), from_logits)[0]
    return np.where(valid, loss, 0.0).astype(dtype)


def _sparse_categorical_crossentropy_grad(y_true, y_pred, from_logits=False,
                                          ignore_class=None, axis=-1):
    t, p, valid, ax, shape, dtype = _sparse_prepare(y_true, y_pred, ignore_class, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = _cce_last(np.where(valid[..., None], t, 0.0),
                      np.where(valid[..., None], p, 1.0), from_logits)[1]
    g = np.where(valid[..., None], g, 0.0)
    return _finish_grad(np.moveaxis(g, -1, ax), shape, dtype)


def _sparse_categorical_crossentropy_mask(y_true, y_pred, from_logits=False,
                                          ignore_class=None, axis=-1):
    if ignore_class is None:
        return None
    return _sparse_prepare(y_true, y_pred, ignore_class, axis)[2]


_attach_gradient(mean_squared_error, _mse_grad)
_attach_gradient(mean_absolute_error, _mae_grad)
_attach_gradient(mean_absolute_percentage_error, _mape_grad)
_attach_gradient(mean_squared_logarithmic_error, _msle_grad)
_attach_gradient(huber, _huber_grad)
_attach_gradient(log_cosh, _log_cosh_grad)
_attach_gradient(hinge, _hinge_grad)
_attach_gradient(squared_hinge, _squared_hinge_grad)
_attach_gradient(categorical_hinge, _categorical_hinge_grad)
_attach_gradient(kl_divergence, _kl_divergence_grad)
_attach_gradient(binary_crossentropy, _binary_crossentropy_grad)
_attach_gradient(categorical_crossentropy, _categorical_crossentropy_grad)
_attach_gradient(sparse_categorical_crossentropy, _sparse_categorical_crossentropy_grad,
                 _sparse_categorical_crossentropy_mask)

# Keras's aliases.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy


# --------------------------------------------------------------------------- numerics

def numerical_gradient(fn: Callable, y_true, y_pred, **kwargs) -> np.ndarray:
    """Central differences, in float64, of a per-sample loss function.

    ``fn(y_true, y_pred, **kwargs)`` must give per-sample losses of shape
    ``y_pred.shape[:-1]`` (each depending only on its own row ``y_pred[i, :]``)
    or of ``y_pred``'s shape (elementwise). Index ``j`` of the last axis is
    perturbed at every other position at once, so this costs
    ``2 * y_pred.shape[-1]`` calls of ``fn``. Returns a float64 array of
    ``y_pred``'s shape."""
    yp = np.array(y_pred, dtype=np.float64)
    yt = np.asarray(y_true)
    if yt.dtype.kind == "f":
        yt = yt.astype(np.float64)
    base = np.asarray(fn(yt, yp, **kwargs))
    if yp.ndim == 0:
        h = 6e-6 * max(1.0, abs(float(yp)))
        hi = np.asarray(fn(yt, yp + h, **kwargs), dtype=np.float64)
        lo = np.asarray(fn(yt, yp - h, **kwargs), dtype=np.float64)
        return np.asarray((hi - lo) / (2.0 * h))
    if base.shape == yp.shape[:-1]:
        elementwise = False
    elif base.shape == yp.shape:
        elementwise = True
    else:
        raise ValueError(f"cannot differentiate a loss function whose per-sample losses have "
                         f"shape {base.shape} for y_pred of shape {yp.shape}: expected "
                         f"{yp.shape[:-1]} or {yp.shape}")
    g = np.zeros_like(yp)
    for j in range(yp.shape[-1]):
        x = yp[..., j]
        h = 6e-6 * np.maximum(1.0, np.abs(x))
        plus = yp.copy()
        plus[..., j] = x + h
        minus = yp.copy()
        minus[..., j] = x - h
        step = plus[..., j] - minus[..., j]
        diff = (np.asarray(fn(yt, plus, **kwargs), dtype=np.float64)
                - np.asarray(fn(yt, minus, **kwargs), dtype=np.float64))
        if elementwise:
            diff = diff[..., j]
        g[..., j] = diff / step
    return g


def _align_weights(w, shape) -> np.ndarray:
    """Matches a weight (or mask) array to the losses' shape: Keras's
    squeeze/expand of a trailing size-1 axis, then per-sample weights over
    trailing axes (rnnfast), then NumPy broadcasting."""
    w = np.asarray(w, dtype=np.float64)
    nd = len(shape)
    if nd == w.ndim + 1 and shape[-1] == 1:
        w = w[..., None]
    elif w.ndim == nd + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if 0 < w.ndim < nd and w.shape == tuple(shape[:w.ndim]):
        w = w.reshape(w.shape + (1,) * (nd - w.ndim))
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(f"sample_weight/mask of shape {np.shape(w)} cannot be matched to the "
                         f"per-sample losses of shape {tuple(shape)}") from None


def _weights_and_divisor(shape, sample_weight, mask, reduction):
    """(W, divisor): the reduced loss is ``sum(values * W) / divisor`` (for
    ``"none"``: ``values * W``), W of ``shape`` or None (all ones)."""
    size = int(np.prod(shape)) if len(shape) else 1
    w = None
    if mask is not None:
        m = _align_weights(np.asarray(mask).astype(np.float64), shape)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = float(np.sum(m))
            m = m * (size / valid if valid else 0.0)
        w = m
    if sample_weight is not None:
        sw = _align_weights(sample_weight, shape)
        w = sw if w is None else w * sw
    if reduction in (None, "none", "sum") or len(shape) == 0:
        # (Keras returns a scalar loss weighted but undivided.)
        return w, 1.0
    if reduction == "mean_with_sample_weight" and w is not None:
        return w, float(np.sum(w))
    return w, float(size)


def reduce_weighted_values(values, sample_weight=None, mask=None,
                           reduction="sum_over_batch_size"):
    """Keras 3's reduction of per-sample losses (see the module docstring).
    Returns a Python float, or the weighted array for ``"none"``/``None``."""
    reduction = standardize_reduction(reduction)
    values = np.asarray(values)
    dtype = _float_dtype(values)
    v = values.astype(np.float64)
    w, divisor = _weights_and_divisor(v.shape, sample_weight, mask, reduction)
    if w is None:
        weighted = v
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            weighted = np.where(w != 0.0, v * w, 0.0)
    if reduction in (None, "none"):
        return weighted.astype(dtype)
    if weighted.size == 0 or divisor == 0.0:
        return 0.0
    return float(np.sum(weighted) / divisor)


# --------------------------------------------------------------------------- classes

def _as_pred(y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(np.float32)
    return y_pred


def _as_true(y_true, y_pred: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)
    if y_true.dtype != y_pred.dtype and y_true.dtype.kind not in "iu":
        y_true = y_true.astype(y_pred.dtype)
    return y_true


class Loss:
    """Base class (``keras.losses.Loss``). Subclasses implement
    ``call(y_true, y_pred)`` returning per-sample losses; ``grad`` defaults to
    central differences of ``call`` (see ``numerical_gradient``), so a custom
    subclass trains without further work, more slowly; override ``grad`` to
    give the exact derivative."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self._dtype = dtype or "float32"

    @property
    def dtype(self):
        return self._dtype

    # --- to implement
    def call(self, y_true, y_pred):
        raise NotImplementedError

    def grad(self, y_true, y_pred) -> np.ndarray:
        """``G[..., j] = d call(y_true, y_pred)[...] / d y_pred[..., j]``, of
        ``y_pred``'s shape and dtype (central differences of ``call`` here)."""
        y_pred = _as_pred(y_pred)
        g = numerical_gradient(self.call, y_true, y_pred)
        return g.astype(y_pred.dtype)

    def _output_mask(self, y_true, y_pred):
        """A boolean mask of the per-sample losses the loss itself sets (Keras's
        mask on the result of ``call``), or None."""
        return None

    # --- reductions
    def _merged_mask(self, y_true, y_pred, mask):
        out = self._output_mask(y_true, y_pred)
        if mask is None:
            return out
        mask = np.asarray(mask).astype(bool)
        return mask if out is None else (mask & out)

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = _as_pred(y_pred)
        y_true = _as_true(y_true, y_pred)
        values = np.asarray(self.call(y_true, y_pred))
        mask = self._merged_mask(y_true, y_pred, mask)
        return reduce_weighted_values(values, sample_weight=sample_weight, mask=mask,
                                      reduction=self.reduction)

    def value_and_grad(self, y_true, y_pred, sample_weight=None, mask=None):
        """``(loss, dloss/dy_pred)`` for the reduced loss ``self(y_true, y_pred,
        sample_weight)`` with an optional boolean ``mask`` of the per-sample
        losses' shape (an output mask: masked entries are left out, and the
        mean of "sum_over_batch_size" is over the unmasked ones). For
        reduction "none" the loss is the sum of the weighted losses."""
        y_pred = _as_pred(y_pred)
        y_true = _as_true(y_true, y_pred)
        values = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        g = np.asarray(self.grad(y_true, y_pred), dtype=np.float64)
        mask = self._merged_mask(y_true, y_pred, mask)
        w, divisor = _weights_and_divisor(values.shape, sample_weight, mask, self.reduction)
        if values.size == 0 or divisor == 0.0:
            return 0.0, np.zeros(y_pred.shape, dtype=y_pred.dtype)
        if w is None:
            total = float(np.sum(values))
            upstream = np.full(values.shape, 1.0 / divisor)
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                total = float(np.sum(np.where(w != 0.0, values * w, 0.0)))
            upstream = w / divisor
        loss = total / divisor
        upstream = self._expand_upstream(upstream, g.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            grad = np.where(upstream != 0.0, upstream * g, 0.0)
        return loss, grad.astype(y_pred.dtype)

    def _reduced_axis(self, ndim):
        return ndim - 1

    def _expand_upstream(self, upstream, pred_shape):
        """Broadcasts d loss / d values onto y_pred's shape: the per-sample
        losses drop one axis of y_pred (or, after Keras's squeeze of a trailing
        size-1 axis, are a leading part of its shape)."""
        vs, ps = upstream.shape, tuple(pred_shape)
        if vs == ps:
            return upstream
        nd = len(ps)
        if len(vs) == nd - 1:
            ax = self._reduced_axis(nd)
            if vs == ps[:ax] + ps[ax + 1:]:
                return np.expand_dims(upstream, ax)
        if len(vs) < nd and vs == ps[:len(vs)]:
            return upstream.reshape(vs + (1,) * (nd - len(vs)))
        raise ValueError(f"per-sample losses of shape {vs} do not match y_pred of shape {ps}")

    # --- config
    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _serialize_function(fn) -> Any:
    name = getattr(fn, "__name__", None)
    if name is None:
        raise TypeError(f"cannot serialize {fn!r}: it has no name")
    module = _MODULE if _BUILTIN_FUNCTIONS.get(name) is fn else getattr(fn, "__module__", None)
    return {"module": module, "class_name": "function", "config": name,
            "registered_name": "function"}


def _deserialize_function(spec, functions: Mapping[str, Callable], kind: str,
                          custom_objects=None) -> Callable:
    if callable(spec):
        return spec
    if isinstance(spec, Mapping):
        if spec.get("class_name") != "function":
            raise ValueError(f"cannot read a {kind} function from {spec!r}")
        spec = spec.get("config")
    if not isinstance(spec, str):
        raise ValueError(f"cannot read a {kind} function from {spec!r}")
    return _serialization.deserialize_object(spec, functions, f"{kind} function",
                                             custom_objects=custom_objects,
                                             instantiate_strings=False)


class LossFunctionWrapper(Loss):
    """A Loss around ``fn(y_true, y_pred, **kwargs)`` returning per-sample
    losses (``keras.losses.LossFunctionWrapper``); ``y_true``/``y_pred`` are
    first squeezed/expanded to the same rank like Keras.

    The gradient is ``fn.gradient(y_true, y_pred, **kwargs)`` when ``fn`` has
    that attribute (same signature, returning an array of ``y_pred``'s shape
    with ``G[..., j] = d fn(...)[...] / d y_pred[..., j]``); otherwise it is
    computed numerically: central differences in float64, perturbing one
    index ``j`` of the last axis at a time at every other position at once
    (``2 * y_pred.shape[-1]`` calls of ``fn`` per batch). That needs each
    per-sample loss to depend only on its own row of the last axis (true of
    any ``mean``/``sum(..., axis=-1)`` loss) and ``fn`` to compute in the
    dtype it is given.

    ``name`` defaults to ``fn.__name__``."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper needs a callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction,
                         dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def grad(self, y_true, y_pred) -> np.ndarray:
        y_pred = _as_pred(y_pred)
        shape, dtype = y_pred.shape, y_pred.dtype
        yt, yp = squeeze_or_expand_to_same_rank(y_true, y_pred)
        gradient = getattr(self.fn, "gradient", None)
        if gradient is not None:
            g = gradient(yt, yp, **self._fn_kwargs)
        else:
            g = numerical_gradient(self.fn, yt, yp, **self._fn_kwargs)
        return np.asarray(g, dtype=np.float64).reshape(shape).astype(dtype, copy=False)

    def _output_mask(self, y_true, y_pred):
        fn_mask = getattr(self.fn, "output_mask", None)
        if fn_mask is None:
            return None
        yt, yp = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return fn_mask(yt, yp, **self._fn_kwargs)

    def _reduced_axis(self, ndim):
        axis = self._fn_kwargs.get("axis", -1)
        try:
            return _normalize_axis(axis, ndim)
        except ValueError:
            return ndim - 1

    def get_config(self) -> dict:
        config = super().get_config()
        config["fn"] = _serialize_function(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        config = dict(config)
        if "fn" in config:
            config["fn"] = _deserialize_function(config["fn"], _FUNCTION_NAMES, "loss")
        return cls(**config)

    def __repr__(self) -> str:
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


class MeanSquaredError(LossFunctionWrapper):
    """``mean(square(y_true - y_pred), axis=-1)`` (``keras.losses.MeanSquaredError``)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)

    def value_and_grad(self, y_true, y_pred, sample_weight=None, mask=None):
        # The training loop's common case in a few NumPy calls: unweighted,
        # unmasked, same shapes. The mean over the last axis and then over the
        # samples is the mean over all elements.
        if (sample_weight is None and mask is None and self.reduction == "sum_over_batch_size"
                and isinstance(y_pred, np.ndarray) and isinstance(y_true, np.ndarray)
                and y_true.shape == y_pred.shape and y_pred.size > 0
                and y_pred.dtype.kind == "f" and y_true.dtype.kind in "fiu"):
            diff = y_pred.astype(np.float64) - y_true
            # np.mean's own arithmetic (a pairwise sum, then one division)
            # without its Python wrapper: ~3.5 us of a W1 training step.
            loss = float(np.add.reduce(np.square(diff), axis=None) / diff.size)
            return loss, (diff * (2.0 / y_pred.size)).astype(y_pred.dtype)
        return super().value_and_grad(y_true, y_pred, sample_weight=sample_weight, mask=mask)

    def get_config(self):
        return Loss.get_config(self)


class MeanAbsoluteError(LossFunctionWrapper):
    """``mean(abs(y_true - y_pred), axis=-1)``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """``100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), eps)), axis=-1)``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error",
                 dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction,
                         dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """``mean(square(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)), axis=-1)``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error",
                 dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction,
                         dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class Huber(LossFunctionWrapper):
    """Huber loss, quadratic for ``|error| <= delta`` and linear beyond. Its
    config includes ``delta`` (Keras 3 leaves it out, so a reloaded Huber
    there falls back to ``delta=1``)."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)
        self.delta = delta

    def get_config(self):
        config = Loss.get_config(self)
        config["delta"] = self.delta
        return config


class LogCosh(LossFunctionWrapper):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(log_cosh, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class Hinge(LossFunctionWrapper):
    """``mean(maximum(1 - y_true * y_pred, 0), axis=-1)`` (0/1 labels become -1/1)."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(hinge, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class SquaredHinge(LossFunctionWrapper):
    """``mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class CategoricalHinge(LossFunctionWrapper):
    """``maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class KLDivergence(LossFunctionWrapper):
    """``sum(y_true * log(y_true / y_pred), axis=-1)``, both clipped to ``[eps, 1]``."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary crossentropy, averaged over ``axis`` (see ``binary_crossentropy``)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                      axis=self.axis)
        return config


class CategoricalCrossentropy(LossFunctionWrapper):
    """Categorical crossentropy against one-hot (or soft) labels along ``axis``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                      axis=self.axis)
        return config


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Categorical crossentropy against integer labels; entries labelled
    ``ignore_class`` are masked out of the loss and of its mean."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction,
                         dtype=dtype, from_logits=from_logits, ignore_class=ignore_class)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def get_config(self):
        config = Loss.get_config(self)
        config.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        return config


# --------------------------------------------------------------------------- registry

_BUILTIN_FUNCTIONS: dict = {f.__name__: f for f in (
    mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_logarithmic_error, huber, log_cosh, hinge, squared_hinge, categorical_hinge,
    kl_divergence, binary_crossentropy, categorical_crossentropy,
    sparse_categorical_crossentropy)}

_CLASSES = (Loss, LossFunctionWrapper, MeanSquaredError, MeanAbsoluteError,
            MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber, LogCosh, Hinge,
            SquaredHinge, CategoricalHinge, KLDivergence, BinaryCrossentropy,
            CategoricalCrossentropy, SparseCategoricalCrossentropy)

# The class computing each function with its default arguments.
_FUNCTION_CLASS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError, huber: Huber,
    log_cosh: LogCosh, hinge: Hinge, squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge, kl_divergence: KLDivergence,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}

ALL_OBJECTS_DICT: dict = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update(_BUILTIN_FUNCTIONS)
ALL_OBJECTS_DICT.update({
    "bce": binary_crossentropy, "BCE": binary_crossentropy,
    "kld": kl_divergence, "KLD": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "mae": mean_absolute_error, "MAE": mean_absolute_error,
    "mse": mean_squared_error, "MSE": mean_squared_error,
    "mape": mean_absolute_percentage_error, "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error, "MSLE": mean_squared_logarithmic_error,
    "logcosh": log_cosh,
})
_FUNCTION_NAMES = {k: v for k, v in ALL_OBJECTS_DICT.items() if not inspect.isclass(v)}


def serialize(loss):
    """Keras 3's form: a config dict for a Loss, ``{"class_name": "function",
    "config": name, ...}`` for a built-in loss function, else the name."""
    if loss is None:
        return None
    if isinstance(loss, Loss):
        return _serialization.serialize_object(loss, _MODULE)
    if inspect.isfunction(loss) and _BUILTIN_FUNCTIONS.get(loss.__name__) is loss:
        return _serialize_function(loss)
    return _serialization.serialize_object(loss, _MODULE)


def deserialize(config, custom_objects=None):
    """A Loss from a config dict or class name; a loss function from a
    function name or ``{"class_name": "function", ...}``."""
    if isinstance(config, Mapping) and config.get("class_name") == "function":
        return _deserialize_function(config, _FUNCTION_NAMES, "loss", custom_objects)
    return _serialization.deserialize_object(config, ALL_OBJECTS_DICT, "loss",
                                             custom_objects=custom_objects)


def _wrap(obj, name=None) -> Loss:
    """A Loss instance for a resolved identifier (class, function, instance)."""
    if isinstance(obj, Loss):
        return obj
    if inspect.isclass(obj):
        if not issubclass(obj, Loss):
            raise ValueError(f"Could not interpret loss identifier: {obj!r}")
        return obj()
    try:
        cls = _FUNCTION_CLASS.get(obj)
    except TypeError:  # unhashable callable
        cls = None
    if cls is not None:
        return cls(name=name or obj.__name__)
    if callable(obj):
        return LossFunctionWrapper(obj, name=name or getattr(obj, "__name__", None))
    raise ValueError(f"Could not interpret loss identifier: {obj!r}")


def get(identifier):
    """A Loss instance from a name ("mse", "mean_squared_error",
    "MeanSquaredError", "binary_crossentropy", "huber", "kld", ...), a config
    dict, a Loss class or instance (returned as is) or a callable (wrapped in
    LossFunctionWrapper).

    Unlike Keras (which hands back the bare function for a function name
    and leaves the wrapping to ``compile``), a function name gives the
    matching Loss class named after the Keras function: ``get("mse")`` is
    ``MeanSquaredError(name="mean_squared_error")``, ``get("huber")`` is
    ``Huber(name="huber")``."""
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, Mapping):
        return _wrap(deserialize(identifier))
    if isinstance(identifier, str):
        try:
            obj = _serialization.deserialize_object(identifier, ALL_OBJECTS_DICT, "loss",
                                                    instantiate_strings=False)
        except ValueError:
            raise ValueError(f"Could not interpret loss identifier: {identifier!r}; known: "
                             f"{sorted(ALL_OBJECTS_DICT)}") from None
        return _wrap(obj)
    if callable(identifier):
        return _wrap(identifier)
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def get_compile_loss(identifier, y_true_shape=None, y_pred_shape=None):
    """The loss ``model.compile(loss=identifier)`` uses (Keras 3's
    ``compile_utils.get_loss``): "crossentropy"/"ce" resolve to binary,
    sparse categorical or categorical crossentropy from the shapes (binary
    when ``y_pred``'s last axis is 1; sparse when ``y_true`` has a lower rank,
    or a last axis of 1 against more classes), and a string identifier names
    the loss (``get_compile_loss("mse").name == "mse"``)."""
    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in ("crossentropy", "ce"):
        if y_pred_shape is None:
            raise ValueError(f"loss={identifier!r} needs the output's shape to pick a "
                             "crossentropy")
        is_binary, is_sparse = _binary_or_sparse(y_true_shape, y_pred_shape)
        fn = (binary_crossentropy if is_binary else
              sparse_categorical_crossentropy if is_sparse else categorical_crossentropy)
        return _wrap(fn, name=identifier)
    loss = get(identifier)
    if isinstance(identifier, str) and not (identifier in ALL_OBJECTS_DICT
                                            and inspect.isclass(ALL_OBJECTS_DICT[identifier])):
        loss.name = identifier
    return loss


def _binary_or_sparse(y_true_shape, y_pred_shape):
    y_pred_shape = tuple(y_pred_shape)
    y_true_shape = tuple(y_pred_shape if y_true_shape is None else y_true_shape)
    yp_last = y_pred_shape[-1] if y_pred_shape else None
    yt_last = y_true_shape[-1] if y_true_shape else None
    is_binary = yp_last == 1
    is_sparse = (len(y_true_shape) < len(y_pred_shape)
                 or (yt_last == 1 and yp_last is not None and yp_last > 1))
    return is_binary, is_sparse
