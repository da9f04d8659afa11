"""Layer and batch normalization (Keras 3's LayerNormalization and
BatchNormalization) written from the definitions, in float64, forward and a
hand-written backward. Each normalizes groups of entries: one group per
position of the axes it does not normalize over; the loops go over groups.

LayerNormalization: the group is one sample's entries over `axis` (int or
list); y = (x - mean) / sqrt(var + eps) * gamma + beta, var biased, gamma and
beta shaped like those axes. With rms_scaling Keras 3.15 computes
y = x / sqrt(var + eps) * gamma: the variance is still taken about the mean,
but the mean is not subtracted from x (that is what Keras does).

BatchNormalization: the group is one channel (`axis`) over all other axes.
Training uses the batch mean and biased variance; with a mask (shape of x
without its last axis) both are weighted sums over the kept entries divided by
(kept count + 1e-7), as Keras does. Moving statistics move as
moving = moving * momentum + batch_stat * (1 - momentum). Inference uses the
moving statistics.
"""

import itertools

import numpy as np

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), in Keras's masked moments


def _axes(axis, ndim):
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    return sorted(a % ndim for a in axes)


def _groups(shape, axes):
    """Index tuples (with slice(None) on `axes`) selecting each group."""
    others = [a for a in range(len(shape)) if a not in axes]
    for idx in itertools.product(*(range(shape[a]) for a in others)):
        full = [slice(None)] * len(shape)
        for a, i in zip(others, idx):
            full[a] = i
        yield tuple(full)


# ---- LayerNormalization --------------------------------------------------------------

def layer_norm_forward(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """gamma/beta are shaped like x's `axis` dimensions (None: scale 1 / shift 0)."""
    x = np.asarray(x, np.float64)
    axes = _axes(axis, x.ndim)
    y = np.zeros(x.shape)
    for sel in _groups(x.shape, axes):
        v = x[sel]  # the normalized axes, in order
        mean = v.mean()
        inv = 1.0 / np.sqrt(((v - mean) ** 2).mean() + epsilon)
        out = v * inv if rms_scaling else (v - mean) * inv
        if gamma is not None:
            out = out * gamma
        if beta is not None and not rms_scaling:
            out = out + beta
        y[sel] = out
    return y


def layer_norm_backward(x, dy, gamma=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """(dx, dgamma, dbeta) of L with dL/dy = dy."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    axes = _axes(axis, x.ndim)
    pshape = tuple(x.shape[a] for a in axes)
    dx, dgamma, dbeta = np.zeros(x.shape), np.zeros(pshape), np.zeros(pshape)
    for sel in _groups(x.shape, axes):
        v, d = x[sel], dy[sel]
        m = v.size
        mean = v.mean()
        inv = 1.0 / np.sqrt(((v - mean) ** 2).mean() + epsilon)
        g = d if gamma is None else d * gamma  # dL/d(normalized value)
        if rms_scaling:
            # out = v * inv; d inv / d v_i = -inv^3 (v_i - mean) / m
            dgamma += d * v * inv
            dx[sel] = g * inv - inv ** 3 * (v - mean) * np.sum(g * v) / m
        else:
            xhat = (v - mean) * inv
            dgamma += d * xhat
            dbeta += d
            dx[sel] = inv * (g - g.mean() - xhat * np.mean(g * xhat))
    return dx, dgamma, dbeta


# ---- BatchNormalization --------------------------------------------------------------

def _bn_weights(x, axis, mask):
    """Per-entry weights (1 kept, 0 masked) and the moments' denominator offset."""
    if mask is None:
        return np.ones(x.shape), 0.0
    m = np.asarray(mask).astype(np.float64)
    if m.shape != x.shape[:-1]:
        raise ValueError(f"mask shape {m.shape} for inputs {x.shape}")
    return np.broadcast_to(m[..., None], x.shape), KERAS_EPSILON


def batch_norm_moments(x, axis=-1, mask=None):
    """Per-channel batch mean and biased variance."""
    x = np.asarray(x, np.float64)
    ax = axis % x.ndim
    w, e = _bn_weights(x, ax, mask)
    mean, var = np.zeros(x.shape[ax]), np.zeros(x.shape[ax])
    for c in range(x.shape[ax]):
        v, wc = np.take(x, c, axis=ax), np.take(w, c, axis=ax)
        mean[c] = np.sum(wc * v) / (np.sum(wc) + e)
        var[c] = np.sum(wc * (v - mean[c]) ** 2) / (np.sum(wc) + e)
    return mean, var


def batch_norm_forward(x, gamma=None, beta=None, moving_mean=None, moving_variance=None,
                       axis=-1, epsilon=1e-3, momentum=0.99, training=False, mask=None):
    """(y, new_moving_mean, new_moving_variance); inference leaves them as given."""
    x = np.asarray(x, np.float64)
    ax = axis % x.ndim
    n = x.shape[ax]
    mm = np.zeros(n) if moving_mean is None else np.asarray(moving_mean, np.float64)
    mv = np.ones(n) if moving_variance is None else np.asarray(moving_variance, np.float64)
    if training:
        mean, var = batch_norm_moments(x, ax, mask)
        new_mm, new_mv = mm * momentum + mean * (1 - momentum), mv * momentum + var * (1 - momentum)
    else:
        mean, var, new_mm, new_mv = mm, mv, mm, mv
    y = np.zeros(x.shape)
    for c in range(n):
        out = (np.take(x, c, axis=ax) - mean[c]) / np.sqrt(var[c] + epsilon)
        if gamma is not None:
            out = out * gamma[c]
        if beta is not None:
            out = out + beta[c]
        sel = [slice(None)] * x.ndim
        sel[ax] = c
        y[tuple(sel)] = out
    return y, new_mm, new_mv


def batch_norm_backward(x, dy, gamma=None, moving_variance=None, axis=-1, epsilon=1e-3,
                        training=False, mask=None, moving_mean=None):
    """(dx, dgamma, dbeta). Training differentiates through the batch mean and
    variance (weighted, as in batch_norm_moments); inference only through the
    affine map with the fixed moving statistics."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    ax = axis % x.ndim
    n = x.shape[ax]
    w, e = _bn_weights(x, ax, mask)
    dx, dgamma, dbeta = np.zeros(x.shape), np.zeros(n), np.zeros(n)
    for c in range(n):
        v, d, wc = np.take(x, c, axis=ax), np.take(dy, c, axis=ax), np.take(w, c, axis=ax)
        gam = 1.0 if gamma is None else gamma[c]
        if training:
            D = np.sum(wc) + e
            mean = np.sum(wc * v) / D
            var = np.sum(wc * (v - mean) ** 2) / D
        else:
            mean = 0.0 if moving_mean is None else moving_mean[c]
            var = 1.0 if moving_variance is None else moving_variance[c]
        inv = 1.0 / np.sqrt(var + epsilon)
        xhat = (v - mean) * inv
        dgamma[c] = np.sum(d * xhat)
        dbeta[c] = np.sum(d)
        g = d * gam  # dL/dxhat
        dxc = g * inv
        if training:
            # y = (x - mean) inv: through inv (var) and through mean, which
            # also enters var.
            dvar = np.sum(g * (v - mean)) * -0.5 * inv ** 3
            dmean = -inv * np.sum(g) + dvar * np.sum(-2.0 * wc * (v - mean)) / D
            dxc = dxc + dmean * wc / D + dvar * 2.0 * wc * (v - mean) / D
        sel = [slice(None)] * x.ndim
        sel[ax] = c
        dx[tuple(sel)] = dxc
    return dx, dgamma, dbeta
