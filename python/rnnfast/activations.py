"""Activation functions with Keras 3 names, signatures and formulas (NumPy).

Every built-in activation also carries its derivative, since rnnfast has no
autodiff: ``fn.backward(x, y, dy, **params) -> dx`` where ``x`` is the
activation's input, ``y = fn(x, **params)`` its output, ``dy`` the gradient
flowing into ``y`` and ``params`` the same keyword parameters the forward call
used (``relu.backward(x, y, dy, negative_slope=0.1)``,
``softmax.backward(x, y, dy, axis=1)``). The result has ``x``'s shape and
dtype (for ``crelu`` and ``glu``, which change the size of ``axis``, ``dy``
has the output's shape).

Where the derivative can be read off the output alone (tanh, sigmoid,
exponential, softmax, log_softmax, linear) ``x`` may be None; everywhere
``y`` may be None (it is then recomputed from ``x``). At the kinks of the
piecewise-linear activations the derivative is taken as 0, like the C++
kernels do.

``get``/``serialize``/``deserialize`` follow ``keras.activations``: built-ins
serialize to their name string ("tanh"), ``get(None)`` is ``linear``, and
``"swish"``/``"hard_swish"`` are aliases of ``silu``/``hard_silu``.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any, Callable, Mapping

import numpy as np

from . import _serialization

__all__ = [
    "ACTIVATION_NAMES", "ALL_OBJECTS_DICT", "celu", "crelu", "deserialize", "elu",
    "exponential", "gelu", "get", "get_backward", "glu", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid",
    "log_softmax", "mish", "relu", "relu6", "selu", "serialize", "sigmoid", "silu",
    "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
    "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink", "threshold",
]

# SELU constants (Klambauer et al., 2017), as Keras uses them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- helpers

def _as_float(x) -> np.ndarray:
    """x as a floating array (non-float input becomes float32, Keras's floatx)."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return x


def _like(value, x: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=x.dtype)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) <= 1 never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _stable_softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)).
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


_erf = np.frompyfunc(math.erf, 1, 1)


def _erf_array(x: np.ndarray) -> np.ndarray:
    """Exact erf elementwise (NumPy has none; math.erf is correctly rounded)."""
    return _erf(x.astype(np.float64)).astype(x.dtype)


def _grad_inputs(fn: Callable, x, y, dy, needs_x: bool, **params):
    if needs_x and x is None:
        raise ValueError(f"{fn.__name__}.backward needs the input x")
    if x is not None:
        x = _as_float(x)
    if y is None:
        if x is None:
            raise ValueError(f"{fn.__name__}.backward needs x or y")
        y = fn(x, **params)
    y = np.asarray(y)
    dy = np.asarray(dy)
    dtype = np.result_type(x if x is not None else y, dy)
    if dtype.kind != "f":
        dtype = np.dtype(np.float32)
    return x, y, dy, dtype


def _attach(backward: Callable, *, needs_x: bool) -> Callable:
    """Decorator: fn.backward = backward; fn.backward_needs_x = needs_x."""
    def wrap(fn):
        fn.backward = backward
        fn.backward_needs_x = needs_x
        backward.__name__ = f"{fn.__name__}_backward"
        backward.__qualname__ = backward.__name__
        return fn
    return wrap


# --------------------------------------------------------------------------- activations

def _tanh_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(tanh, x, y, dy, False)
    return (dy * (1 - y * y)).astype(dt, copy=False)


@_attach(_tanh_backward, needs_x=False)
def tanh(x):
    """Hyperbolic tangent: ``(exp(x) - exp(-x)) / (exp(x) + exp(-x))``."""
    return np.tanh(_as_float(x))


def _sigmoid_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(sigmoid, x, y, dy, False)
    return (dy * y * (1 - y)).astype(dt, copy=False)


@_attach(_sigmoid_backward, needs_x=False)
def sigmoid(x):
    """Sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    return _stable_sigmoid(_as_float(x))


def _hard_sigmoid_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(hard_sigmoid, x, y, dy, True)
    return (dy * np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)).astype(dt, copy=False)


@_attach(_hard_sigmoid_backward, needs_x=True)
def hard_sigmoid(x):
    """Keras 3 hard sigmoid: ``relu6(x + 3) / 6`` (0 below -3, 1 above 3)."""
    x = _as_float(x)
    return np.clip(x + 3, 0, 6) / _like(6, x)


def _hard_silu_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(hard_silu, x, y, dy, True)
    d = np.where(x >= 3, 1.0, np.where(x > -3, (2 * x + 3) / 6.0, 0.0))
    return (dy * d).astype(dt, copy=False)


@_attach(_hard_silu_backward, needs_x=True)
def hard_silu(x):
    """Hard SiLU (hard swish): ``x * relu6(x + 3) / 6``."""
    x = _as_float(x)
    return x * (np.clip(x + 3, 0, 6) / _like(6, x))


hard_swish = hard_silu


def _relu_core(x, negative_slope, max_value, threshold):
    """Keras's ReLU: returns (output, d output / dx) pieces for the backward."""
    if threshold != 0:
        a = x * (x > threshold).astype(x.dtype)
    elif max_value == 6:
        a = np.clip(x, 0, 6)
    else:
        a = np.maximum(x, 0)
    if max_value is not None:
        a = np.clip(a, 0, max_value).astype(x.dtype, copy=False)
    if negative_slope != 0:
        a = a - _like(negative_slope, x) * np.maximum(threshold - x, 0).astype(x.dtype)
    return a


def _relu_backward(x, y, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    x, y, dy, dt = _grad_inputs(relu, x, y, dy, True, negative_slope=negative_slope,
                                max_value=max_value, threshold=threshold)
    if negative_slope != 0 and max_value is None and threshold == 0:
        d = np.where(x > 0, 1.0, np.where(x < 0, negative_slope, 0.0))
        return (dy * d).astype(dt, copy=False)
    # Positive part: x where x > threshold (or > 0), then clipped to [0, max_value].
    pass_ = x > (threshold if threshold != 0 else 0)
    if max_value is not None:
        pos = np.where(pass_, x, 0)
        pass_ = pass_ & (pos > 0) & (pos < max_value)
    d = pass_.astype(np.float64)
    if negative_slope != 0:
        # - slope * relu(threshold - x) has slope `negative_slope` where x < threshold.
        d = d + np.where(x < threshold, negative_slope, 0.0)
    return (dy * d).astype(dt, copy=False)


@_attach(_relu_backward, needs_x=True)
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit, Keras 3 semantics.

    ``max(x, 0)`` by default; values at or below ``threshold`` are zeroed
    (``x * (x > threshold)``), the result is clipped to ``[0, max_value]``
    when ``max_value`` is set, and ``negative_slope * relu(threshold - x)``
    is subtracted when ``negative_slope`` is non-zero."""
    x = _as_float(x)
    if negative_slope != 0 and max_value is None and threshold == 0:
        return leaky_relu(x, negative_slope=negative_slope)
    return _relu_core(x, negative_slope, max_value, threshold)


def _relu6_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(relu6, x, y, dy, True)
    return (dy * ((x > 0) & (x < 6))).astype(dt, copy=False)


@_attach(_relu6_backward, needs_x=True)
def relu6(x):
    """ReLU capped at 6: ``min(max(x, 0), 6)``."""
    return np.clip(_as_float(x), 0, 6)


def _leaky_relu_backward(x, y, dy, negative_slope=0.2):
    x, y, dy, dt = _grad_inputs(leaky_relu, x, y, dy, True, negative_slope=negative_slope)
    d = np.where(x > 0, 1.0, np.where(x < 0, negative_slope, 0.0))
    return (dy * d).astype(dt, copy=False)


@_attach(_leaky_relu_backward, needs_x=True)
def leaky_relu(x, negative_slope=0.2):
    """``x`` for ``x >= 0``, ``negative_slope * x`` otherwise."""
    x = _as_float(x)
    return np.where(x >= 0, x, _like(negative_slope, x) * x)


def _elu_backward(x, y, dy, alpha=1.0):
    x, y, dy, dt = _grad_inputs(elu, x, y, dy, True, alpha=alpha)
    d = np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0).astype(np.float64)))
    return (dy * d).astype(dt, copy=False)


@_attach(_elu_backward, needs_x=True)
def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    x = _as_float(x)
    return np.where(x > 0, x, _like(alpha, x) * np.expm1(np.minimum(x, 0)))


def _selu_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(selu, x, y, dy, True)
    d = _SELU_SCALE * np.where(x > 0, 1.0,
                               _SELU_ALPHA * np.exp(np.minimum(x, 0).astype(np.float64)))
    return (dy * d).astype(dt, copy=False)


@_attach(_selu_backward, needs_x=True)
def selu(x):
    """Scaled ELU: ``scale * elu(x, alpha)`` with alpha=1.67326324, scale=1.05070098."""
    x = _as_float(x)
    return _like(_SELU_SCALE, x) * elu(x, alpha=_SELU_ALPHA)


def _softplus_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(softplus, x, y, dy, True)
    return (dy * _stable_sigmoid(x.astype(np.float64))).astype(dt, copy=False)


@_attach(_softplus_backward, needs_x=True)
def softplus(x):
    """``log(exp(x) + 1)``, computed without overflow."""
    return _stable_softplus(_as_float(x))


def _softsign_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(softsign, x, y, dy, True)
    return (dy / np.square(1 + np.abs(x.astype(np.float64)))).astype(dt, copy=False)


@_attach(_softsign_backward, needs_x=True)
def softsign(x):
    """``x / (abs(x) + 1)``."""
    x = _as_float(x)
    return x / (np.abs(x) + 1)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _softmax_backward(x, y, dy, axis=-1):
    x, y, dy, dt = _grad_inputs(softmax, x, y, dy, False, axis=axis)
    axis = _axis(axis)
    return (y * (dy - np.sum(dy * y, axis=axis, keepdims=True))).astype(dt, copy=False)


@_attach(_softmax_backward, needs_x=False)
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (an int or a tuple of ints)."""
    x = _as_float(x)
    axis = _axis(axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_backward(x, y, dy, axis=-1):
    x, y, dy, dt = _grad_inputs(log_softmax, x, y, dy, False, axis=axis)
    axis = _axis(axis)
    return (dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)).astype(dt, copy=False)


@_attach(_log_softmax_backward, needs_x=False)
def log_softmax(x, axis=-1):
    """``x - log(sum(exp(x)))`` along ``axis``, computed stably."""
    x = _as_float(x)
    axis = _axis(axis)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _linear_backward(x, y, dy):
    dy = np.asarray(dy)
    ref = x if x is not None else y
    dt = np.result_type(ref, dy) if ref is not None else dy.dtype
    return dy.astype(dt if dt.kind == "f" else np.float32, copy=True)


@_attach(_linear_backward, needs_x=False)
def linear(x):
    """Identity: returns ``x`` unmodified."""
    return x


def _exponential_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(exponential, x, y, dy, False)
    return (dy * y).astype(dt, copy=False)


@_attach(_exponential_backward, needs_x=False)
def exponential(x):
    """``exp(x)`` (inf on overflow, without a warning, as in Keras)."""
    with np.errstate(over="ignore"):
        return np.exp(_as_float(x))


def _gelu_backward(x, y, dy, approximate=False):
    x, y, dy, dt = _grad_inputs(gelu, x, y, dy, True, approximate=approximate)
    x64 = x.astype(np.float64)
    if approximate:
        t = np.tanh(_SQRT_2_OVER_PI * (x64 + _GELU_CUBIC * x64 ** 3))
        d = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * _SQRT_2_OVER_PI * (
            1 + 3 * _GELU_CUBIC * x64 * x64)
    else:
        cdf = 0.5 * (1 + _erf_array(x64 * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x64 * x64)
        d = cdf + x64 * pdf
    return (dy * d).astype(dt, copy=False)


@_attach(_gelu_backward, needs_x=True)
def gelu(x, approximate=False):
    """Gaussian error linear unit.

    ``0.5 * x * (1 + erf(x / sqrt(2)))``; with ``approximate=True`` the tanh
    form ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``."""
    x = _as_float(x)
    if approximate:
        inner = _like(_SQRT_2_OVER_PI, x) * (x + _like(_GELU_CUBIC, x) * x ** 3)
        return _like(0.5, x) * x * (1 + np.tanh(inner))
    return _like(0.5, x) * x * (1 + _erf_array(x * _like(_INV_SQRT_2, x)))


def _silu_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(silu, x, y, dy, True)
    x64 = x.astype(np.float64)
    s = _stable_sigmoid(x64)
    return (dy * (s * (1 + x64 * (1 - s)))).astype(dt, copy=False)


@_attach(_silu_backward, needs_x=True)
def silu(x):
    """SiLU / swish: ``x * sigmoid(x)``."""
    x = _as_float(x)
    return x * _stable_sigmoid(x)


swish = silu


def _mish_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(mish, x, y, dy, True)
    x64 = x.astype(np.float64)
    t = np.tanh(_stable_softplus(x64))
    return (dy * (t + x64 * (1 - t * t) * _stable_sigmoid(x64))).astype(dt, copy=False)


@_attach(_mish_backward, needs_x=True)
def mish(x):
    """Mish: ``x * tanh(softplus(x))``."""
    x = _as_float(x)
    return x * np.tanh(_stable_softplus(x))


def _crelu_backward(x, y, dy, axis=-1):
    x, y, dy, dt = _grad_inputs(crelu, x, y, dy, True, axis=axis)
    d_pos, d_neg = np.split(dy, 2, axis=axis)
    return (d_pos * (x > 0) - d_neg * (x < 0)).astype(dt, copy=False)


@_attach(_crelu_backward, needs_x=True)
def crelu(x, axis=-1):
    """Concatenated ReLU: ``concatenate([relu(x), relu(-x)], axis)`` (doubles ``axis``).

    Its backward takes ``dy`` of the output's (doubled) shape."""
    x = _as_float(x)
    return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=axis)


def _celu_backward(x, y, dy, alpha=1.0):
    x, y, dy, dt = _grad_inputs(celu, x, y, dy, True, alpha=alpha)
    d = np.where(x > 0, 1.0, np.exp(np.minimum(x, 0).astype(np.float64) / alpha))
    return (dy * d).astype(dt, copy=False)


@_attach(_celu_backward, needs_x=True)
def celu(x, alpha=1.0):
    """``x`` for ``x >= 0``, ``alpha * (exp(x / alpha) - 1)`` otherwise."""
    x = _as_float(x)
    return np.maximum(x, 0) + _like(alpha, x) * np.expm1(np.minimum(x, 0) / _like(alpha, x))


def _split_halves(x, axis):
    if x.shape[axis] % 2:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={x.shape} "
                         f"with axis={axis}")
    return np.split(x, 2, axis=axis)


def _glu_backward(x, y, dy, axis=-1):
    x, y, dy, dt = _grad_inputs(glu, x, y, dy, True, axis=axis)
    a, b = _split_halves(x.astype(np.float64), axis)
    s = _stable_sigmoid(b)
    return np.concatenate([dy * s, dy * a * s * (1 - s)], axis=axis).astype(dt, copy=False)


@_attach(_glu_backward, needs_x=True)
def glu(x, axis=-1):
    """Gated linear unit: ``a * sigmoid(b)`` with ``a, b`` the two halves of
    ``x`` along ``axis`` (halves that axis; the backward's ``dy`` has the
    output's shape)."""
    x = _as_float(x)
    a, b = _split_halves(x, axis)
    return a * _stable_sigmoid(b)


def _hard_tanh_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(hard_tanh, x, y, dy, True)
    return (dy * ((x > -1) & (x < 1))).astype(dt, copy=False)


@_attach(_hard_tanh_backward, needs_x=True)
def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return np.clip(_as_float(x), -1, 1)


def _hard_shrink_backward(x, y, dy, threshold=0.5):
    x, y, dy, dt = _grad_inputs(hard_shrink, x, y, dy, True, threshold=threshold)
    return (dy * (np.abs(x) > threshold)).astype(dt, copy=False)


@_attach(_hard_shrink_backward, needs_x=True)
def hard_shrink(x, threshold=0.5):
    """``x`` where ``|x| > threshold``, 0 elsewhere."""
    x = _as_float(x)
    return np.where(np.abs(x) > threshold, x, _like(0, x))


def _soft_shrink_backward(x, y, dy, threshold=0.5):
    x, y, dy, dt = _grad_inputs(soft_shrink, x, y, dy, True, threshold=threshold)
    return (dy * (np.abs(x) > threshold)).astype(dt, copy=False)


@_attach(_soft_shrink_backward, needs_x=True)
def soft_shrink(x, threshold=0.5):
    """``x - threshold`` above ``threshold``, ``x + threshold`` below
    ``-threshold``, 0 between."""
    x = _as_float(x)
    t = _like(threshold, x)
    return np.where(x > t, x - t, np.where(x < -t, x + t, _like(0, x)))


def _tanh_shrink_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(tanh_shrink, x, y, dy, True)
    t = np.tanh(x.astype(np.float64))
    return (dy * t * t).astype(dt, copy=False)


@_attach(_tanh_shrink_backward, needs_x=True)
def tanh_shrink(x):
    """``x - tanh(x)``."""
    x = _as_float(x)
    return x - np.tanh(x)


def _threshold_backward(x, y, dy, threshold=None, default_value=None):
    if threshold is None:
        raise TypeError("threshold.backward needs the `threshold` the forward used")
    x, y, dy, dt = _grad_inputs(threshold_fn, x, y, dy, True, threshold=threshold,
                                default_value=0.0 if default_value is None else default_value)
    return (dy * (x > threshold)).astype(dt, copy=False)


@_attach(_threshold_backward, needs_x=True)
def threshold(x, threshold, default_value):
    """``x`` where ``x > threshold``, ``default_value`` elsewhere."""
    x = _as_float(x)
    return np.where(x > threshold, x, _like(default_value, x))


threshold_fn = threshold  # the function, where the name `threshold` is a parameter


def _log_sigmoid_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(log_sigmoid, x, y, dy, True)
    return (dy * _stable_sigmoid(-x.astype(np.float64))).astype(dt, copy=False)


@_attach(_log_sigmoid_backward, needs_x=True)
def log_sigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``, computed without overflow."""
    x = _as_float(x)
    return -_stable_softplus(-x)


def _squareplus_backward(x, y, dy, b=4):
    x, y, dy, dt = _grad_inputs(squareplus, x, y, dy, True, b=b)
    x64 = x.astype(np.float64)
    return (dy * 0.5 * (1 + x64 / np.sqrt(x64 * x64 + b))).astype(dt, copy=False)


@_attach(_squareplus_backward, needs_x=True)
def squareplus(x, b=4):
    """``(x + sqrt(x**2 + b)) / 2``."""
    x = _as_float(x)
    return (x + np.sqrt(x * x + _like(b, x))) / _like(2, x)


def _sparse_plus_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(sparse_plus, x, y, dy, True)
    x64 = x.astype(np.float64)
    d = np.where(x64 <= -1, 0.0, np.where(x64 < 1, 0.5 * (x64 + 1), 1.0))
    return (dy * d).astype(dt, copy=False)


@_attach(_sparse_plus_backward, needs_x=True)
def sparse_plus(x):
    """0 for ``x <= -1``, ``(x + 1)**2 / 4`` for ``-1 < x < 1``, ``x`` for ``x >= 1``."""
    x = _as_float(x)
    return np.where(x <= -1, _like(0, x),
                    np.where(x < 1, _like(0.25, x) * np.square(x + 1), x))


def _sparse_sigmoid_backward(x, y, dy):
    x, y, dy, dt = _grad_inputs(sparse_sigmoid, x, y, dy, True)
    return (dy * np.where((x > -1) & (x < 1), 0.5, 0.0)).astype(dt, copy=False)


@_attach(_sparse_sigmoid_backward, needs_x=True)
def sparse_sigmoid(x):
    """0 for ``x <= -1``, ``(x + 1) / 2`` for ``-1 < x < 1``, 1 for ``x >= 1``."""
    x = _as_float(x)
    return np.clip(_like(0.5, x) * (x + 1), 0, 1)


def _sparsemax_backward(x, y, dy, axis=-1):
    x, y, dy, dt = _grad_inputs(sparsemax, x, y, dy, False, axis=axis)
    support = (y > 0).astype(np.float64)
    count = np.maximum(np.sum(support, axis=axis, keepdims=True), 1.0)
    mean = np.sum(dy * support, axis=axis, keepdims=True) / count
    return (support * (dy - mean)).astype(dt, copy=False)


@_attach(_sparsemax_backward, needs_x=False)
def sparsemax(x, axis=-1):
    """Euclidean projection of ``x`` onto the probability simplex along
    ``axis``: ``max(x - tau(x), 0)``."""
    x = _as_float(x)
    z = np.moveaxis(x, axis, -1)
    n = z.shape[-1]
    z_sorted = -np.sort(-z, axis=-1)
    cumsum = np.cumsum(z_sorted, axis=-1)
    k = np.arange(1, n + 1, dtype=x.dtype)
    k_z = np.sum(1 + k * z_sorted > cumsum, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, k_z - 1, axis=-1) - 1) / k_z.astype(x.dtype)
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------- lookup

_BUILTINS = (relu, leaky_relu, relu6, softmax, celu, elu, selu, softplus, softsign,
             squareplus, soft_shrink, sparse_plus, silu, gelu, glu, tanh, tanh_shrink,
             threshold, sigmoid, sparse_sigmoid, exponential, hard_sigmoid, hard_silu,
             hard_tanh, hard_shrink, linear, mish, log_softmax, log_sigmoid, sparsemax, crelu)

#: Name -> function, as ``keras.activations`` resolves strings (aliases included).
ALL_OBJECTS_DICT: dict = {fn.__name__: fn for fn in _BUILTINS}
ALL_OBJECTS_DICT["swish"] = silu
ALL_OBJECTS_DICT["hard_swish"] = hard_silu

#: Every string ``get`` accepts.
ACTIVATION_NAMES: tuple = tuple(sorted(ALL_OBJECTS_DICT))

_BUILTIN_IDS = {id(fn) for fn in _BUILTINS}


def _unknown(identifier) -> ValueError:
    return ValueError(f"Could not interpret activation function identifier: {identifier!r}. "
                      f"Known activations: {', '.join(ACTIVATION_NAMES)}")


def _lookup(name: str, custom_objects: Mapping[str, Any] | None = None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in ALL_OBJECTS_DICT:
        return ALL_OBJECTS_DICT[name]
    registered = _serialization.registered_objects()
    if name in registered:
        return registered[name]
    raise _unknown(name)


def serialize(activation) -> Any:
    """Keras 3 ``activations.serialize``: a built-in gives its name ("tanh",
    "silu" for swish); a custom function gives ``{"module", "class_name":
    "function", "config": name, "registered_name": name}``; an object with
    ``get_config`` gives the usual ``{"module", "class_name", "config",
    "registered_name"}`` dict."""
    if activation is None:
        return None
    if id(activation) in _BUILTIN_IDS:
        return activation.__name__
    if hasattr(activation, "get_config"):
        return _serialization.serialize_object(activation, type(activation).__module__)
    if isinstance(activation, types.FunctionType) and activation.__name__ != "<lambda>":
        return {"module": activation.__module__, "class_name": "function",
                "config": activation.__name__, "registered_name": activation.__name__}
    raise ValueError(f"Unknown activation function {activation!r} cannot be serialized: "
                     f"use a built-in activation ({', '.join(ACTIVATION_NAMES)}), a named "
                     f"function registered with rnnfast's custom objects, or an object "
                     f"with get_config()")


def deserialize(config, custom_objects: Mapping[str, Any] | None = None) -> Callable:
    """Inverse of ``serialize``: a name, a ``{"class_name": "function",
    "config": name}`` dict (Keras 3 functions), a ``{"class_name": name}``
    dict (legacy) or a class config dict of a registered custom object."""
    if isinstance(config, str):
        return _lookup(config, custom_objects)
    if isinstance(config, Mapping):
        class_name = config.get("class_name")
        inner = config.get("config")
        if class_name == "function" and isinstance(inner, str):
            name = config.get("registered_name") or inner
            try:
                return _lookup(inner, custom_objects)
            except ValueError:
                return _lookup(name, custom_objects)
        if isinstance(class_name, str) and class_name in ALL_OBJECTS_DICT:
            return ALL_OBJECTS_DICT[class_name]
        objects = dict(ALL_OBJECTS_DICT)
        return _serialization.deserialize_object(config, objects, "activation",
                                                 custom_objects=custom_objects)
    raise _unknown(config)


def get(identifier) -> Callable:
    """Keras 3 ``activations.get``: None -> ``linear``; a name; a config dict;
    a callable (returned as is)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        obj = _lookup(identifier)
    elif isinstance(identifier, Mapping):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj
    raise _unknown(identifier)


def get_backward(activation) -> Callable | None:
    """The derivative ``(x, y, dy) -> dx`` of an activation, or None when it
    has none (a custom function without a ``backward`` attribute).

    Also resolves names and ``functools.partial`` over a built-in (the
    partial's keyword parameters are passed on to the backward)."""
    fn = get(activation)
    if isinstance(fn, functools.partial) and not fn.args:
        inner = getattr(fn.func, "backward", None)
        if inner is None:
            return None
        return functools.partial(inner, **fn.keywords)
    return getattr(fn, "backward", None)
