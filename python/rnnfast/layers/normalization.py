"""LayerNormalization and BatchNormalization (Keras 3's layers/normalization/)
on the C++ kernels (``rnnfast._core.layer_norm_*``, ``batch_norm_*``), which
work on a [rows, features] matrix: the normalized axes (LayerNormalization)
or the channel axis (BatchNormalization) are moved last and flattened."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .core import _serialize
from .layer import Layer, as_float
from .registry import register


def _norm_axes(axis, rank, what):
    axes = sorted({a if a >= 0 else a + rank for a in axis})
    if any(a < 0 or a >= rank for a in axes) or len(axes) != len(axis):
        raise ValueError(f"{what}: axis {axis} is out of bounds (or repeated) for inputs of rank "
                         f"{rank}")
    if 0 in axes:
        raise ValueError(f"{what}: axis {axis} includes the batch axis 0")
    return axes


class _Moved:
    """x with `axes` moved last and flattened to [rows, features], and back."""

    def __init__(self, shape, axes):
        rank = len(shape)
        self.perm = [a for a in range(rank) if a not in axes] + list(axes)
        self.identity = self.perm == list(range(rank))
        self.inverse = list(np.argsort(self.perm))
        self.moved_shape = tuple(shape[a] for a in self.perm)
        self.features = int(np.prod([shape[a] for a in axes]))

    def to2d(self, x):
        if not self.identity:
            x = np.transpose(x, self.perm)
        return np.ascontiguousarray(x).reshape(-1, self.features)

    def back(self, y2):
        y = y2.reshape(self.moved_shape)
        return y if self.identity else np.ascontiguousarray(np.transpose(y, self.inverse))


def _weight_args(layer, kind):
    return dict(regularizer=getattr(layer, f"{kind}_regularizer"),
                constraint=getattr(layer, f"{kind}_constraint"))


@register
class LayerNormalization(Layer):
    """Normalizes each example over `axis` (default the last):
    (x - mean) / sqrt(var + epsilon) * gamma + beta."""

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        if rms_scaling:
            raise ValueError("LayerNormalization: rms_scaling=True (deprecated in Keras 3) is not "
                             "supported by rnnfast")
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but "
                            f"received: {axis!r}")
        if not float(epsilon) > 0:
            raise ValueError(f"LayerNormalization: epsilon must be positive, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = False
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)

    def _axes(self, rank):
        axis = self.axis if isinstance(self.axis, list) else [self.axis]
        return _norm_axes(axis, rank, f"LayerNormalization '{self.name}'")

    def compute_output_shape(self, input_shape):
        self._axes(len(input_shape))
        return input_shape

    def build(self, input_shape):
        axes = self._axes(len(input_shape))
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(f"LayerNormalization '{self.name}': the normalized axes {self.axis} "
                             f"must have known sizes, got input shape {tuple(input_shape)}")
        self._rank = len(input_shape)
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma",
                                         **_weight_args(self, "gamma"))
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, "beta",
                                        **_weight_args(self, "beta"))
        self._shape = shape
        self.built = True

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        axes = self._axes(x.ndim)
        if tuple(x.shape[a] for a in axes) != self._shape:
            raise ValueError(f"LayerNormalization '{self.name}' was built for sizes {self._shape} "
                             f"on axes {self.axis}, got inputs of shape {x.shape}")
        moved = _Moved(x.shape, axes)
        x2 = moved.to2d(x)
        gamma = None if self.gamma is None else self.gamma.value.reshape(-1)
        beta = None if self.beta is None else self.beta.value.reshape(-1)
        out = _core.layer_norm_forward(x2, gamma, beta, epsilon=self.epsilon,
                                       return_stats=training)
        if training:
            y2, mean, rstd = out
            ctx.saved = (moved, x2, mean, rstd)
        else:
            y2 = out
        return moved.back(y2)

    def backward(self, ctx, grad, need_input_grad=True):
        moved, x2, mean, rstd = ctx.saved
        dy2 = moved.to2d(np.asarray(grad, dtype=x2.dtype))
        gamma = None if self.gamma is None else self.gamma.value.reshape(-1)
        train = self.trainable
        dx, dg, db = _core.layer_norm_backward(
            x2, mean, rstd, gamma, dy2, compute_dx=need_input_grad,
            compute_dgamma=train and self.gamma is not None,
            compute_dbeta=train and self.beta is not None)
        if dg is not None:
            self.gamma.add_grad(dg.reshape(self._shape))
        if db is not None:
            self.beta.add_grad(db.reshape(self._shape))
        return moved.back(dx) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers_module.serialize(self.beta_initializer),
                "gamma_initializer": initializers_module.serialize(self.gamma_initializer),
                "beta_regularizer": _serialize(regularizers_module, self.beta_regularizer),
                "gamma_regularizer": _serialize(regularizers_module, self.gamma_regularizer),
                "beta_constraint": _serialize(constraints_module, self.beta_constraint),
                "gamma_constraint": _serialize(constraints_module, self.gamma_constraint)}


@register
class BatchNormalization(Layer):
    """Normalizes each channel (`axis`) over the batch and the other axes.

    Training (``training=True`` on a trainable layer) uses this batch's mean
    and (biased) variance and updates ``moving = moving * momentum + batch *
    (1 - momentum)``, exactly as Keras 3 does; inference uses the moving
    statistics. With a mask ([batch, steps] for [batch, steps, channels]),
    the statistics are weighted by it as in Keras."""

    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None, renorm_momentum=0.99,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if renorm:
            raise ValueError("BatchNormalization: renorm=True is not supported by rnnfast")
        if synchronized:
            raise ValueError("BatchNormalization: synchronized=True needs the TensorFlow "
                             "backend's distribution; rnnfast does not support it")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"BatchNormalization: axis must be an integer, got {axis!r}")
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        if not float(epsilon) > 0:
            raise ValueError(f"BatchNormalization: epsilon must be positive, got {epsilon!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = False
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = float(renorm_momentum)
        self.beta_initializer = initializers_module.get(beta_initializer)
        self.gamma_initializer = initializers_module.get(gamma_initializer)
        self.moving_mean_initializer = initializers_module.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers_module.get(moving_variance_initializer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_constraint = constraints_module.get(beta_constraint)
        self.gamma_constraint = constraints_module.get(gamma_constraint)

    def _axis(self, rank):
        return _norm_axes([self.axis], rank, f"BatchNormalization '{self.name}'")[0]

    def compute_output_shape(self, input_shape):
        self._axis(len(input_shape))
        return input_shape

    def build(self, input_shape):
        axis = self._axis(len(input_shape))
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f"BatchNormalization '{self.name}': axis {self.axis} must have a known "
                             f"size, got input shape {tuple(input_shape)}")
        shape = (channels,)
        self._input_rank = len(input_shape)  # which torch BatchNorm module matches (interop)
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma",
                                         **_weight_args(self, "gamma"))
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, "beta",
                                        **_weight_args(self, "beta"))
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, "moving_mean",
                                           trainable=False)
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer,
                                               "moving_variance", trainable=False)
        self.built = True

    def _masked_moments(self, x2, w):
        """Keras's weighted moments: w [rows] (0/1), divided by sum(w) + 1e-7."""
        s = w.sum(dtype=x2.dtype) + x2.dtype.type(1e-7)
        mean = (x2 * w[:, None]).sum(axis=0) / s
        var = (np.where(w[:, None] > 0, x2 - mean, 0) ** 2).sum(axis=0) / s
        return mean.astype(x2.dtype), var.astype(x2.dtype), s

    def forward(self, ctx, inputs, training=False, mask=None):
        x = as_float(inputs, self.compute_dtype)
        axis = self._axis(x.ndim)
        if x.shape[axis] != self.moving_mean.shape[0]:
            raise ValueError(f"BatchNormalization '{self.name}' was built for "
                             f"{self.moving_mean.shape[0]} channels on axis {self.axis}, got "
                             f"inputs of shape {x.shape}")
        moved = _Moved(x.shape, [axis])
        x2 = moved.to2d(x)
        gamma = None if self.gamma is None else self.gamma.value
        beta = None if self.beta is None else self.beta.value
        batch_stats = bool(training) and self.trainable
        w = s = None
        if batch_stats:
            if mask is not None:
                m = np.asarray(mask)
                if m.shape != x.shape[:-1] or axis != x.ndim - 1:
                    raise ValueError(f"BatchNormalization '{self.name}': the mask must have the "
                                     f"inputs' shape without the channel (last) axis, got mask "
                                     f"shape {m.shape} for inputs of shape {x.shape}")
                w = m.reshape(-1).astype(x2.dtype)
                mean, var, s = self._masked_moments(x2, w)
            else:
                mean, var = _core.batch_norm_moments(x2)
            mom = self.momentum
            self.moving_mean.value[...] = self.moving_mean.value * mom + mean * (1.0 - mom)
            self.moving_variance.value[...] = self.moving_variance.value * mom + var * (1.0 - mom)
        else:
            mean, var = self.moving_mean.value.copy(), self.moving_variance.value.copy()
        y2 = _core.batch_norm_apply(x2, mean, var, gamma, beta, epsilon=self.epsilon)
        if training:
            ctx.saved = (moved, x2, mean, var, batch_stats, w, s)
        return moved.back(y2)

    def backward(self, ctx, grad, need_input_grad=True):
        moved, x2, mean, var, batch_stats, w, s = ctx.saved
        dy2 = moved.to2d(np.asarray(grad, dtype=x2.dtype))
        gamma = None if self.gamma is None else self.gamma.value
        train = self.trainable
        want_g = train and self.gamma is not None
        want_b = train and self.beta is not None
        if batch_stats and w is None:
            dx, dg, db = _core.batch_norm_backward(x2, mean, var, gamma, dy2, epsilon=self.epsilon,
                                                   compute_dx=need_input_grad,
                                                   compute_dgamma=want_g, compute_dbeta=want_b)
        else:
            dx, dg, db = self._backward_numpy(x2, mean, var, gamma, dy2, batch_stats, w, s)
        if want_g:
            self.gamma.add_grad(dg)
        if want_b:
            self.beta.add_grad(db)
        return moved.back(dx) if need_input_grad else None

    def _backward_numpy(self, x2, mean, var, gamma, dy, batch_stats, w, s):
        """Fixed statistics (inference, or a frozen layer), or masked batch
        statistics: the chain rule through Keras's weighted moments."""
        rstd = (1.0 / np.sqrt(var + x2.dtype.type(self.epsilon))).astype(x2.dtype)
        xc = x2 - mean
        db = dy.sum(axis=0)
        dg = (dy * xc * rstd).sum(axis=0)
        g = dy if gamma is None else dy * gamma
        dx = g * rstd
        if batch_stats:  # d/dvar and d/dmean of the masked statistics
            inside = (w > 0)[:, None]
            dvar = -0.5 * (g * xc).sum(axis=0) * rstd ** 3
            dmean = -(g * rstd).sum(axis=0) + dvar * (-2.0 * np.where(inside, xc, 0)).sum(axis=0) / s
            dx = dx + dvar * 2.0 * np.where(inside, xc, 0) / s + dmean * w[:, None] / s
        return dx.astype(x2.dtype), dg.astype(x2.dtype), db.astype(x2.dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers_module.serialize(self.beta_initializer),
                "gamma_initializer": initializers_module.serialize(self.gamma_initializer),
                "moving_mean_initializer":
                    initializers_module.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers_module.serialize(self.moving_variance_initializer),
                "beta_regularizer": _serialize(regularizers_module, self.beta_regularizer),
                "gamma_regularizer": _serialize(regularizers_module, self.gamma_regularizer),
                "beta_constraint": _serialize(constraints_module, self.beta_constraint),
                "gamma_constraint": _serialize(constraints_module, self.gamma_constraint),
                "synchronized": self.synchronized, "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum}
