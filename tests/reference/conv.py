"""Convolution (Keras 3's Conv1D/Conv2D) written from the definition, in
float64: plain loops over output positions and kernel taps, forward and a
hand-written backward (the forward's loops, scattering instead of gathering).

Layouts are Keras's: inputs [N, *spatial, C_in] (channels_last; channels_first
is a transpose around it), kernel [*kernel_size, C_in / groups, filters],
bias [filters]. One or two spatial axes. Filter f belongs to group
f // (filters / groups) and sees that group's slice of the input channels.
"""

import itertools

import numpy as np


def _tuple(v, n):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * n


def _span(k, d):
    """Extent of a dilated kernel: k taps d apart."""
    return (k - 1) * d + 1


def conv_geometry(in_size, k, stride, dilation, padding):
    """(out_size, pad_before) along one spatial axis.

    valid : no padding, out = floor((in - span) / stride) + 1;
    same  : out = ceil(in / stride), total pad = max((out-1)*stride + span - in, 0),
            the smaller half before (TensorFlow/Keras convention);
    causal: (k-1)*dilation zeros before, none after, then as valid."""
    span = _span(k, dilation)
    if padding == "valid":
        return (in_size - span) // stride + 1, 0
    if padding == "same":
        out = -(-in_size // stride)
        total = max((out - 1) * stride + span - in_size, 0)
        return out, total // 2
    if padding == "causal":
        before = span - 1
        return (in_size + before - span) // stride + 1, before
    raise ValueError(f"padding {padding!r}")


def _plan(x_shape, kernel_shape, strides, padding, dilation_rate, groups):
    nd = len(x_shape) - 2
    if nd not in (1, 2):
        raise ValueError("1 or 2 spatial axes")
    if padding == "causal" and nd != 1:
        raise ValueError("causal padding is for one spatial axis")
    ks = kernel_shape[:nd]
    cg, filters = kernel_shape[nd], kernel_shape[nd + 1]
    if x_shape[-1] != cg * groups or filters % groups:
        raise ValueError(f"channels {x_shape[-1]} / kernel {kernel_shape} / groups {groups}")
    strides, dil = _tuple(strides, nd), _tuple(dilation_rate, nd)
    geo = [conv_geometry(x_shape[1 + a], ks[a], strides[a], dil[a], padding) for a in range(nd)]
    out = tuple(g[0] for g in geo)
    if min(out) <= 0:
        raise ValueError("output size would be zero or negative")
    return nd, ks, cg, filters, strides, dil, geo, out


def _taps(o, ks, strides, dil, geo, spatial):
    """(tap, input position) pairs of output position `o` that land inside
    the input; taps on padding contribute zero and are skipped."""
    for tap in itertools.product(*(range(k) for k in ks)):
        pos = tuple(o[a] * strides[a] - geo[a][1] + tap[a] * dil[a] for a in range(len(o)))
        if all(0 <= p < n for p, n in zip(pos, spatial)):
            yield tap, pos


def _to_last(x, data_format):
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def _from_last(y, data_format):
    return np.moveaxis(y, -1, 1) if data_format == "channels_first" else y


def conv_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
                 data_format="channels_last"):
    """y[n, o, f] = bias[f] + sum_{tap, c in group(f)} x[n, o*s - pad + tap*d, c] kernel[tap, c', f]."""
    x = _to_last(np.asarray(x, np.float64), data_format)
    kernel = np.asarray(kernel, np.float64)
    nd, ks, cg, filters, strides, dil, geo, out = _plan(x.shape, kernel.shape, strides, padding,
                                                        dilation_rate, groups)
    fg = filters // groups
    y = np.zeros((x.shape[0],) + out + (filters,))
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(s) for s in out)):
            for f in range(filters):
                g = f // fg
                acc = 0.0 if bias is None else float(bias[f])
                for tap, pos in _taps(o, ks, strides, dil, geo, x.shape[1:-1]):
                    for c in range(cg):
                        acc += x[(n,) + pos + (g * cg + c,)] * kernel[tap + (c, f)]
                y[(n,) + o + (f,)] = acc
    return _from_last(y, data_format)


def conv_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1, groups=1,
                  data_format="channels_last"):
    """(dx, dkernel, dbias) of L with dL/dy = dy, by the forward's loops."""
    x = _to_last(np.asarray(x, np.float64), data_format)
    dy = _to_last(np.asarray(dy, np.float64), data_format)
    kernel = np.asarray(kernel, np.float64)
    nd, ks, cg, filters, strides, dil, geo, out = _plan(x.shape, kernel.shape, strides, padding,
                                                        dilation_rate, groups)
    if dy.shape != (x.shape[0],) + out + (filters,):
        raise ValueError(f"dy shape {dy.shape}")
    fg = filters // groups
    dx, dk, db = np.zeros(x.shape), np.zeros(kernel.shape), np.zeros(filters)
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(s) for s in out)):
            for f in range(filters):
                g = f // fg
                gy = dy[(n,) + o + (f,)]
                db[f] += gy
                for tap, pos in _taps(o, ks, strides, dil, geo, x.shape[1:-1]):
                    for c in range(cg):
                        xi = (n,) + pos + (g * cg + c,)
                        dx[xi] += gy * kernel[tap + (c, f)]
                        dk[tap + (c, f)] += gy * x[xi]
    return _from_last(dx, data_format), dk, db
