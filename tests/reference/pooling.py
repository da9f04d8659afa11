"""Max and average pooling (Keras 3's MaxPooling1D/2D, AveragePooling1D/2D)
written from the definition, in float64: loops over output positions, forward
and a hand-written backward.

Inputs are [N, *spatial, C] (channels_last; channels_first is a transpose
around it), one or two spatial axes. Windows are pool_size cells, strides
apart (Keras's default strides is pool_size). 'same' padding follows
TensorFlow: out = ceil(in / stride), total pad = max((out-1)*stride + pool - in,
0), the smaller half before. Padded cells take no part: max ignores them (as
-inf would), the average divides by the number of real cells in the window
(checked against Keras in test_conv_reference_selfcheck.py).
"""

import itertools

import numpy as np

from .conv import _from_last, _to_last, _tuple, conv_geometry


def _plan(x_shape, pool_size, strides, padding):
    nd = len(x_shape) - 2
    if nd not in (1, 2):
        raise ValueError("1 or 2 spatial axes")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding {padding!r}")
    ps = _tuple(pool_size, nd)
    st = ps if strides is None else _tuple(strides, nd)
    geo = [conv_geometry(x_shape[1 + a], ps[a], st[a], 1, padding) for a in range(nd)]
    return ps, st, geo, tuple(g[0] for g in geo)


def _window(o, ps, st, geo, spatial):
    """Input positions of output position o's window that are real cells."""
    cells = []
    for tap in itertools.product(*(range(k) for k in ps)):
        pos = tuple(o[a] * st[a] - geo[a][1] + tap[a] for a in range(len(o)))
        if all(0 <= p < n for p, n in zip(pos, spatial)):
            cells.append(pos)
    return cells


def pool_forward(x, pool_size, strides=None, padding="valid", mode="max",
                 data_format="channels_last"):
    x = _to_last(np.asarray(x, np.float64), data_format)
    ps, st, geo, out = _plan(x.shape, pool_size, strides, padding)
    y = np.zeros((x.shape[0],) + out + (x.shape[-1],))
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(s) for s in out)):
            cells = _window(o, ps, st, geo, x.shape[1:-1])
            for c in range(x.shape[-1]):
                vals = [x[(n,) + p + (c,)] for p in cells]
                y[(n,) + o + (c,)] = max(vals) if mode == "max" else sum(vals) / len(vals)
    return _from_last(y, data_format)


def pool_backward(x, dy, pool_size, strides=None, padding="valid", mode="max",
                  data_format="channels_last"):
    """dx: max sends each window's gradient to its (first) largest cell, the
    average spreads it evenly over the window's real cells; overlapping
    windows add up."""
    x = _to_last(np.asarray(x, np.float64), data_format)
    dy = _to_last(np.asarray(dy, np.float64), data_format)
    ps, st, geo, out = _plan(x.shape, pool_size, strides, padding)
    dx = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(s) for s in out)):
            cells = _window(o, ps, st, geo, x.shape[1:-1])
            for c in range(x.shape[-1]):
                g = dy[(n,) + o + (c,)]
                if mode == "max":
                    vals = [x[(n,) + p + (c,)] for p in cells]
                    dx[(n,) + cells[int(np.argmax(vals))] + (c,)] += g
                else:
                    for p in cells:
                        dx[(n,) + p + (c,)] += g / len(cells)
    return _from_last(dx, data_format)
