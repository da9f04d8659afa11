"""ZeroPadding1D, Cropping1D, UpSampling1D, SpatialDropout1D and the global
poolings (GlobalAverage/MaxPooling 1D/2D): forward against NumPy loops written
from the definitions below, backward against central finite differences in
float64 (and loops where the definition says more: tied maxima, masked
steps), argument and shape errors, masks, configs, and use in a Sequential
model through fit, save and load. Keras itself: test_keras_shape_pool_layers.py."""

import json

import numpy as np
import pytest

import rnnfast
from layer_harness import fd_check
from rnnfast import layers as L
from rnnfast.layers import Context

F64 = {"dtype": "float64"}
FORMATS = ["channels_last", "channels_first"]


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def run(layer, x, dy, mask=None):
    """(y, dx) of one training forward and its backward."""
    ctx = Context()
    layer.maybe_build(x.shape)
    y = layer.forward(ctx, x, training=True, mask=mask)
    return y, layer.backward(ctx, dy)


# ---- references, from the definitions -------------------------------------------------
# 1-D inputs are [N, T, C] (channels_first: [N, C, T]; the references transpose around it).

def to_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def from_last(y, data_format):
    return y if data_format == "channels_last" else np.moveaxis(y, -1, 1)


def zero_pad_ref(x, before, after, data_format="channels_last"):
    x = to_last(x, data_format)
    n, t, c = x.shape
    y = np.zeros((n, before + t + after, c))
    for i in range(n):
        for s in range(t):
            y[i, before + s] = x[i, s]
    return from_last(y, data_format)


def crop_ref(x, before, after):
    n, t, c = x.shape
    return np.array([[x[i, s] for s in range(before, t - after)] for i in range(n)])


def upsample_ref(x, size):
    n, t, c = x.shape
    y = np.zeros((n, t * size, c))
    for i in range(n):
        for s in range(t * size):
            y[i, s] = x[i, s // size]  # output step s copies input step floor(s / size)
    return y


def upsample_backward_ref(dy, size):
    n, ts, c = dy.shape
    dx = np.zeros((n, ts // size, c))
    for i in range(n):
        for s in range(ts):
            dx[i, s // size] += dy[i, s]
    return dx


def spatial_cells(x_last):
    """The spatial positions of one [*spatial, C] sample."""
    return list(np.ndindex(*x_last.shape[1:-1]))


def global_pool_ref(x, mode, data_format="channels_last", keepdims=False, mask=None):
    """Mean or max over the spatial cells; with a [N, T] mask the mean over
    the unmasked steps (0/0 = NaN when none is)."""
    xl = to_last(x, data_format)
    n, c = xl.shape[0], xl.shape[-1]
    y = np.zeros((n, c))
    for i in range(n):
        cells = [p for p in spatial_cells(xl) if mask is None or mask[i][p[0]]]
        for k in range(c):
            vals = [xl[(i,) + p + (k,)] for p in cells]
            if mode == "max":
                y[i, k] = max(vals)
            else:
                y[i, k] = sum(vals) / len(vals) if vals else np.nan
    if keepdims:
        y = y.reshape((n,) + (1,) * (xl.ndim - 2) + (c,))
        y = from_last(y, data_format)
    return y


def global_pool_backward_ref(x, dy, mode, data_format="channels_last", mask=None):
    """dx: the mean spreads dy evenly over the (unmasked) cells; the max gives
    it to its maximum, split evenly among tied maxima (JAX's rule)."""
    xl = to_last(x, data_format)
    n, c = xl.shape[0], xl.shape[-1]
    dy = np.reshape(dy, (n, c))  # keepdims shapes hold the same values in (n, c) order
    dx = np.zeros(xl.shape)
    for i in range(n):
        cells = [p for p in spatial_cells(xl) if mask is None or mask[i][p[0]]]
        for k in range(c):
            if mode == "max":
                top = max(xl[(i,) + p + (k,)] for p in cells)
                cells_k = [p for p in cells if xl[(i,) + p + (k,)] == top]
            else:
                cells_k = cells
            for p in cells_k:
                dx[(i,) + p + (k,)] += dy[i, k] / len(cells_k)
    return from_last(dx, data_format)


# ---- ZeroPadding1D ---------------------------------------------------------------------

@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("padding, pads", [(1, (1, 1)), (3, (3, 3)), ((2, 0), (2, 0)),
                                           ((0, 3), (0, 3)), ((0, 0), (0, 0)), ([1, 2], (1, 2))])
def test_zero_padding1d(padding, pads, data_format):
    x = rand(2, 5, 3, seed=1)
    layer = L.ZeroPadding1D(padding, data_format=data_format, **F64)
    y = fd_check(layer, x)
    np.testing.assert_array_equal(y, zero_pad_ref(x, *pads, data_format))
    assert layer.padding == pads
    shape = (None,) + x.shape[1:]
    want = list(shape)
    want[1 if data_format == "channels_last" else 2] += sum(pads)
    assert layer.compute_output_shape(shape) == tuple(want) == (None,) + y.shape[1:]
    # an unknown time axis stays unknown
    unknown = (None, 5, None) if data_format == "channels_first" else (None, None, 3)
    assert layer.compute_output_shape(unknown) == unknown


def test_zero_padding1d_defaults_and_errors():
    layer = L.ZeroPadding1D()
    assert layer.padding == (1, 1) and layer.data_format == "channels_last"
    assert layer.supports_masking is False
    assert layer.compute_mask(np.zeros((2, 4, 3)), np.ones((2, 4), bool)) is None
    y = layer(np.ones((1, 2, 1), np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0, :, 0], [0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"`padding` argument must be a tuple of 2 integers, "
                                         r"each >= 0. Received padding=-1"):
        L.ZeroPadding1D(-1)
    with pytest.raises(ValueError, match=r"`padding`.*Received padding=\(1, -2\)"):
        L.ZeroPadding1D((1, -2))
    with pytest.raises(ValueError, match=r"`padding` argument must be a tuple of 2 integers"):
        L.ZeroPadding1D((1, 2, 3))
    with pytest.raises(ValueError, match=r"`padding` argument must be a tuple of 2 integers"):
        L.ZeroPadding1D("same")
    with pytest.raises(ValueError, match=r"`data_format` argument must be one of .* "
                                         r"Received: data_format=channels_middle"):
        L.ZeroPadding1D(data_format="channels_middle")
    with pytest.raises(ValueError, match=r"ZeroPadding1D '.*' expects inputs of rank 3 "
                                         r"\(batch, steps, features\), got shape \(2, 4\)"):
        L.ZeroPadding1D()(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"rank 3 \(batch, features, steps\), got shape "
                                         r"\(2, 4, 3, 1\)"):
        L.ZeroPadding1D(data_format="channels_first").compute_output_shape((2, 4, 3, 1))


# ---- Cropping1D ------------------------------------------------------------------------

@pytest.mark.parametrize("cropping, crops", [((1, 1), (1, 1)), (2, (2, 2)), ((0, 3), (0, 3)),
                                             ((3, 0), (3, 0)), ((0, 0), (0, 0)),
                                             ([4, 1], (4, 1))])
def test_cropping1d(cropping, crops):
    x = rand(3, 6, 2, seed=2)
    layer = L.Cropping1D(cropping, **F64)
    y = fd_check(layer, x)
    np.testing.assert_array_equal(y, crop_ref(x, *crops))
    assert layer.cropping == crops
    assert layer.compute_output_shape((None, 6, 2)) == (None, 6 - sum(crops), 2) \
        == (None,) + y.shape[1:]
    assert layer.compute_output_shape((4, None, 2)) == (4, None, 2)
    # backward puts the gradient back on the kept steps, zeros on the cropped ones
    dy = rand(*y.shape, seed=3)
    _, dx = run(layer, x, dy)
    assert np.all(dx[:, :crops[0]] == 0) and np.all(dx[:, 6 - crops[1]:] == 0)
    np.testing.assert_array_equal(dx[:, crops[0]:6 - crops[1]], dy)


def test_cropping1d_defaults_and_errors():
    layer = L.Cropping1D()
    assert layer.cropping == (1, 1)
    assert layer.supports_masking is False
    assert layer.compute_mask(np.zeros((2, 4, 3)), np.ones((2, 4), bool)) is None
    with pytest.raises(ValueError, match=r"`cropping` argument must be a tuple of 2 integers, "
                                         r"each >= 0. Received cropping=\(-1, 0\)"):
        L.Cropping1D((-1, 0))
    with pytest.raises(ValueError, match=r"`cropping` argument must be a tuple of 2 integers"):
        L.Cropping1D((1, 1, 1))
    # Keras's Cropping1D has no data_format argument
    with pytest.raises(TypeError, match="data_format"):
        L.Cropping1D(data_format="channels_last")
    # larger than the input: at the forward, at compute_output_shape, at a symbolic call
    msg = (r"Cropping1D '.*': `cropping` must leave at least one step of the input: "
           r"cropping=\(2, 2\) removes 4 of the 4 steps")
    with pytest.raises(ValueError, match=msg):
        L.Cropping1D((2, 2))(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match=msg):
        L.Cropping1D((2, 2)).compute_output_shape((None, 4, 2))
    with pytest.raises(ValueError, match=r"cropping=\(3, 2\) removes 5 of the 4 steps"):
        L.Cropping1D((3, 2))(rnnfast.Input((4, 2)))
    with pytest.raises(ValueError, match=r"expects inputs of rank 3 \(batch, steps, features\), "
                                         r"got shape \(1, 4, 2, 2\)"):
        L.Cropping1D()(np.zeros((1, 4, 2, 2)))


# ---- UpSampling1D ----------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3])
def test_up_sampling1d(size):
    x = rand(2, 4, 3, seed=4)
    layer = L.UpSampling1D(size, **F64)
    y = fd_check(layer, x)
    np.testing.assert_array_equal(y, upsample_ref(x, size))
    assert layer.compute_output_shape((None, 4, 3)) == (None, 4 * size, 3) \
        == (None,) + y.shape[1:]
    assert layer.compute_output_shape((None, None, 3)) == (None, None, 3)
    dy = rand(*y.shape, seed=5)
    np.testing.assert_allclose(run(layer, x, dy)[1], upsample_backward_ref(dy, size),
                               rtol=1e-15, atol=0)


def test_up_sampling1d_defaults_and_errors():
    layer = L.UpSampling1D()
    assert layer.size == 2 and layer.supports_masking is False
    assert layer.compute_mask(np.zeros((2, 4, 3)), np.ones((2, 4), bool)) is None
    with pytest.raises(ValueError, match=r"`size` should be a positive integer. Received: size=0"):
        L.UpSampling1D(0)
    with pytest.raises(ValueError, match=r"size=-2"):
        L.UpSampling1D(-2)
    # Keras raises TypeError for a size that is not an int
    with pytest.raises(TypeError, match=r"integer value for `size`, got float"):
        L.UpSampling1D(1.5)
    with pytest.raises(TypeError, match=r"integer value for `size`, got bool"):
        L.UpSampling1D(True)
    with pytest.raises(ValueError, match=r"UpSampling1D '.*' expects inputs of rank 3"):
        L.UpSampling1D()(np.zeros((3, 4)))


# ---- SpatialDropout1D ------------------------------------------------------------------

def test_spatial_dropout1d_inference_is_identity():
    x = rand(3, 5, 4, seed=6)
    layer = L.SpatialDropout1D(0.5, **F64)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    ctx = Context()
    layer.forward(ctx, x, training=False)
    dy = rand(*x.shape, seed=7)
    np.testing.assert_array_equal(layer.backward(ctx, dy), dy)


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.8])
def test_spatial_dropout1d_drops_whole_channels(rate):
    x = rand(40, 6, 50, seed=8) + 10  # no zeros in x: a zero in y is a dropped value
    layer = L.SpatialDropout1D(rate, seed=3, **F64)
    dy = rand(*x.shape, seed=9)
    y, dx = run(layer, x, dy)
    # one draw per (sample, channel), the same at every step ...
    kept = y[:, 0] != 0
    np.testing.assert_array_equal(y != 0, np.broadcast_to(kept[:, None], y.shape))
    # ... the kept channels scaled by 1/(1-rate), and the backward by the same
    scale = np.where(kept, 1 / (1 - rate), 0.0)[:, None, :]
    np.testing.assert_array_equal(y, x * scale)
    np.testing.assert_array_equal(dx, dy * scale)
    # 2000 draws: the dropped fraction is within 4.5 standard deviations of rate
    sd = np.sqrt(rate * (1 - rate) / kept.size)
    assert abs((1 - kept.mean()) - rate) < 4.5 * sd


def test_spatial_dropout1d_rates_zero_and_one():
    x = rand(2, 3, 4, seed=10)
    dy = rand(2, 3, 4, seed=11)
    y, dx = run(L.SpatialDropout1D(0.0, **F64), x, dy)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)
    # rate=1 is allowed, as in Keras's Dropout: everything dropped, no gradient through
    y, dx = run(L.SpatialDropout1D(1.0, **F64), x, dy)
    np.testing.assert_array_equal(y, np.zeros_like(x))
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def test_spatial_dropout1d_seeds():
    x = np.ones((8, 3, 16))
    a = [L.SpatialDropout1D(0.5, seed=5)(x, training=True) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])  # the same seed, the same first mask
    layer = L.SpatialDropout1D(0.5, seed=5)
    first, second = layer(x, training=True), layer(x, training=True)
    assert not np.array_equal(first, second)  # the layer's stream moves on
    # unseeded layers draw from rnnfast's global generator
    rnnfast.utils.set_random_seed(12)
    b = L.SpatialDropout1D(0.5)(x, training=True)
    rnnfast.utils.set_random_seed(12)
    np.testing.assert_array_equal(L.SpatialDropout1D(0.5)(x, training=True), b)


def test_spatial_dropout1d_contexts_are_independent():
    """Two calls keep their own masks (a layer shared in a graph)."""
    layer = L.SpatialDropout1D(0.5, seed=1, **F64)
    x = np.ones((6, 2, 10))
    c1, c2 = Context(), Context()
    y1 = layer.forward(c1, x, training=True)
    y2 = layer.forward(c2, x, training=True)
    assert not np.array_equal(y1, y2)
    np.testing.assert_array_equal(layer.backward(c1, x), y1)
    np.testing.assert_array_equal(layer.backward(c2, x), y2)


def test_spatial_dropout1d_config_masks_and_errors():
    layer = L.SpatialDropout1D(0.3, seed=7, name="sd")
    # Keras's spatial dropouts write these four keys only, dtype as a string
    assert layer.get_config() == {"rate": 0.3, "seed": 7, "name": "sd", "dtype": "float32"}
    assert layer.supports_masking is True
    m = np.array([[1, 0, 1]], bool)
    assert layer.compute_mask(np.zeros((1, 3, 2)), m) is m
    assert layer.compute_output_shape((None, 3, 2)) == (None, 3, 2)
    # Keras 2 wrote Dropout's keys for it; they are read and dropped
    k2 = {"name": "sd", "trainable": True, "dtype": "float32", "rate": 0.3,
          "noise_shape": None, "seed": None}
    assert L.SpatialDropout1D.from_config(k2).rate == 0.3
    for bad in (-0.1, 1.5, "0.5", None):
        with pytest.raises(ValueError, match=r"argument `rate`. Expected a float value between "
                                             r"0 and 1. Received: rate="):
            L.SpatialDropout1D(bad)
    # Keras's constructor takes rate, seed, name and dtype only
    with pytest.raises(TypeError, match="noise_shape"):
        L.SpatialDropout1D(0.5, noise_shape=(None, 1, 3))
    with pytest.raises(ValueError, match=r"SpatialDropout1D '.*' expects inputs of rank 3 "
                                         r"\(batch, steps, channels\), got shape \(2, 5\)"):
        L.SpatialDropout1D(0.5)(np.zeros((2, 5)), training=True)
    with pytest.raises(ValueError, match=r"rank 3"):
        L.SpatialDropout1D(0.5).compute_output_shape((None, 4, 4, 2))


# ---- global pooling --------------------------------------------------------------------

GLOBAL = [("GlobalAveragePooling1D", "avg", 1), ("GlobalMaxPooling1D", "max", 1),
          ("GlobalAveragePooling2D", "avg", 2), ("GlobalMaxPooling2D", "max", 2)]


def spatial_input(rank, data_format, seed):
    x = rand(3, *((6,) if rank == 1 else (4, 5)), 2, seed=seed)  # channels_last, C = 2
    return x if data_format == "channels_last" else np.ascontiguousarray(np.moveaxis(x, -1, 1))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("cls, mode, rank", GLOBAL, ids=[g[0] for g in GLOBAL])
def test_global_pooling(cls, mode, rank, data_format, keepdims):
    x = spatial_input(rank, data_format, seed=20)  # normal random values: no tied maxima
    layer = getattr(L, cls)(data_format=data_format, keepdims=keepdims, **F64)
    assert layer.weights == []
    y = fd_check(layer, x)
    want = global_pool_ref(x, mode, data_format, keepdims)
    np.testing.assert_allclose(y, want, rtol=1e-14, atol=0)
    dy = rand(*y.shape, seed=21)
    np.testing.assert_allclose(run(layer, x, dy)[1],
                               global_pool_backward_ref(x, dy, mode, data_format),
                               rtol=1e-14, atol=0)
    shape = (None,) + x.shape[1:]
    channels = x.shape[-1] if data_format == "channels_last" else x.shape[1]
    if not keepdims:
        expected = (None, channels)
    elif data_format == "channels_last":
        expected = (None,) + (1,) * rank + (channels,)
    else:
        expected = (None, channels) + (1,) * rank
    assert layer.compute_output_shape(shape) == expected == (None,) + y.shape[1:]
    # the output shape does not depend on the spatial sizes, known or not
    unknown = tuple(d if d == channels else None for d in shape)
    assert layer.compute_output_shape(unknown) == expected


@pytest.mark.parametrize("cls, mode, rank", GLOBAL, ids=[g[0] for g in GLOBAL])
def test_global_pooling_float32(cls, mode, rank):
    x = spatial_input(rank, "channels_last", seed=22)
    layer = getattr(L, cls)()
    y, dx = run(layer, x.astype(np.float32), np.ones((3, 2), np.float32))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y, global_pool_ref(x, mode), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, global_pool_backward_ref(x, np.ones((3, 2)), mode),
                               rtol=1e-6, atol=1e-7)


def test_global_max_pooling_ties_share_the_gradient():
    """Equal maxima split the gradient evenly (JAX's reduce_max rule; the
    Keras test file checks this against jax.grad)."""
    x = np.array([[[1.0, 5.0], [3.0, 5.0], [3.0, 5.0], [2.0, 4.0]]])  # [1, T=4, C=2]
    dy = np.array([[6.0, 3.0]])
    y, dx = run(L.GlobalMaxPooling1D(**F64), x, dy)
    np.testing.assert_array_equal(y, [[3.0, 5.0]])
    np.testing.assert_array_equal(dx, [[[0, 1], [3, 1], [3, 1], [0, 0]]])
    np.testing.assert_array_equal(dx, global_pool_backward_ref(x, dy, "max"))
    # 2-D, channels_first: a three-way tie over both spatial axes
    x2 = np.array([[[[1.0, 7.0], [7.0, 7.0]]]])  # [1, C=1, 2, 2]
    _, dx2 = run(L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True, **F64), x2,
                 np.array([[[[1.5]]]]))
    np.testing.assert_array_equal(dx2, [[[[0, 0.5], [0.5, 0.5]]]])
    # a NaN in a slice: NaN max and NaN gradient for that slice, as JAX gives
    x3 = np.array([[[1.0, 2.0], [np.nan, 1.0]]])
    y3, dx3 = run(L.GlobalMaxPooling1D(**F64), x3, np.ones((1, 2)))
    assert np.isnan(y3[0, 0]) and y3[0, 1] == 2.0
    assert np.all(np.isnan(dx3[0, :, 0]))
    np.testing.assert_array_equal(dx3[0, :, 1], [1, 0])


MASKS = [np.array([[1, 1, 0, 0, 1, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], bool),
         np.array([[0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 1]], bool)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("mask", MASKS, ids=["mask0", "mask1"])
def test_global_average_pooling1d_mask(mask, data_format, keepdims):
    x = spatial_input(1, data_format, seed=23)
    layer = L.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims, **F64)
    assert layer.supports_masking is True
    y = fd_check(layer, x, mask=mask)
    np.testing.assert_allclose(y, global_pool_ref(x, "avg", data_format, keepdims, mask=mask),
                               rtol=1e-14, atol=0)
    dy = rand(*y.shape, seed=24)
    dx = run(layer, x, dy, mask=mask)[1]
    np.testing.assert_allclose(dx, global_pool_backward_ref(x, dy, "avg", data_format, mask),
                               rtol=1e-14, atol=0)
    # masked steps get no gradient, and their values do not matter (even NaN)
    masked = ~mask[:, None, :] if data_format == "channels_first" else ~mask[:, :, None]
    masked = np.broadcast_to(masked, x.shape)
    assert np.all(dx[masked] == 0)
    np.testing.assert_array_equal(layer(np.where(masked, np.nan, x), mask=mask), y)
    # integer and float masks mean the same (Keras casts to bool); no mask goes out
    np.testing.assert_array_equal(layer(x, mask=mask.astype(np.float32)), y)
    assert layer.compute_mask(x, mask) is None


def test_global_average_pooling1d_fully_masked_row_is_nan():
    """Keras divides 0 by 0 for a sample with every step masked; the gradient
    of its (masked) steps is still 0."""
    x = rand(2, 3, 2, seed=25)
    mask = np.array([[1, 0, 1], [0, 0, 0]], bool)
    y, dx = run(L.GlobalAveragePooling1D(**F64), x, np.ones((2, 2)), mask=mask)
    np.testing.assert_allclose(y[0], (x[0, 0] + x[0, 2]) / 2, rtol=1e-15)
    assert np.all(np.isnan(y[1]))
    np.testing.assert_array_equal(dx[1], np.zeros((3, 2)))
    np.testing.assert_array_equal(dx[0], [[0.5, 0.5], [0, 0], [0.5, 0.5]])


def test_global_average_pooling1d_masked_then_unmasked_context():
    """One context reused for a masked call, then an unmasked one (a graph
    node's context lives across steps): the backward follows the last call."""
    layer = L.GlobalAveragePooling1D(**F64)
    x = rand(3, 6, 2, seed=26)
    ctx = Context()
    layer.forward(ctx, x, training=True, mask=MASKS[0])
    layer.forward(ctx, x, training=True)
    np.testing.assert_allclose(layer.backward(ctx, np.ones((3, 2))), np.full(x.shape, 1 / 6),
                               rtol=1e-15)


def test_global_max_pooling_ignores_masks():
    # Keras's GlobalMaxPooling1D does not support masking: the max over every step
    x = rand(3, 6, 2, seed=27)
    layer = L.GlobalMaxPooling1D(**F64)
    assert layer.supports_masking is False
    np.testing.assert_array_equal(layer(x, mask=MASKS[1]), x.max(axis=1))
    assert layer.compute_mask(x, MASKS[1]) is None
    assert L.GlobalAveragePooling2D().supports_masking is False
    assert L.GlobalMaxPooling2D().supports_masking is False


def test_global_pooling_defaults_and_errors():
    for cls, _, rank in GLOBAL:
        layer = getattr(L, cls)()
        assert layer.data_format == "channels_last" and layer.keepdims is False
        with pytest.raises(ValueError, match=r"`data_format` argument must be one of"):
            getattr(L, cls)(data_format="NHWC")
        bad = (2, 3) if rank == 2 else (2, 3, 4, 5)
        with pytest.raises(ValueError, match=rf"{cls} '.*' expects inputs of rank {rank + 2} "
                                             rf".*\(channels_last\), got shape "
                                             rf"{re_shape(bad)}"):
            layer(np.zeros(bad))
        with pytest.raises(ValueError, match=rf"expects inputs of rank {rank + 2}"):
            layer.compute_output_shape(bad)
    with pytest.raises(ValueError, match=r"rank 3 \(batch, channels, steps\) \(channels_first\)"):
        L.GlobalMaxPooling1D(data_format="channels_first")(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"rank 4 \(batch, dim1, dim2, channels\)"):
        L.GlobalAveragePooling2D()(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"the mask must have shape \(batch, steps\) = \(2, 4\) "
                                         r"for inputs of shape \(2, 3, 4\) \(channels_first\), "
                                         r"got \(2, 3\)"):
        L.GlobalAveragePooling1D(data_format="channels_first")(np.zeros((2, 3, 4)),
                                                               mask=np.ones((2, 3)))
    assert L.GlobalAvgPool1D is L.GlobalAveragePooling1D
    assert L.GlobalMaxPool2D is L.GlobalMaxPooling2D


def re_shape(shape):
    return "\\(" + ", ".join(str(d) for d in shape) + "\\)"


def test_weightless_layers_skip_the_input_gradient():
    x = rand(2, 6, 3, seed=28)
    for layer in (L.ZeroPadding1D(), L.Cropping1D(), L.UpSampling1D(), L.SpatialDropout1D(0.5),
                  L.GlobalAveragePooling1D(), L.GlobalMaxPooling1D()):
        ctx = Context()
        y = layer.forward(ctx, x, training=True)
        assert layer.backward(ctx, np.ones_like(y), need_input_grad=False) is None


# ---- configs ---------------------------------------------------------------------------

CONFIG_CASES = [
    lambda: L.ZeroPadding1D(),
    lambda: L.ZeroPadding1D((2, 0), data_format="channels_first", name="pad"),
    lambda: L.Cropping1D(),
    lambda: L.Cropping1D((0, 3), trainable=False),
    lambda: L.UpSampling1D(),
    lambda: L.UpSampling1D(4, dtype="float64"),
    lambda: L.SpatialDropout1D(0.2),
    lambda: L.SpatialDropout1D(0.4, seed=3, dtype="float64"),
    lambda: L.GlobalAveragePooling1D(),
    lambda: L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True),
    lambda: L.GlobalMaxPooling1D(keepdims=True),
    lambda: L.GlobalAveragePooling2D(data_format="channels_first"),
    lambda: L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True),
]


@pytest.mark.parametrize("make", CONFIG_CASES, ids=range(len(CONFIG_CASES)))
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    # JSON, as .keras files store it, and through the registry
    plain = json.loads(json.dumps(L.serialize(layer)))
    back = L.deserialize(plain)
    assert type(back) is type(layer)
    assert json.loads(json.dumps(back.get_config())) == plain["config"]


def test_config_values():
    assert L.ZeroPadding1D((2, 3), name="p").get_config() == {
        "name": "p", "trainable": True, "dtype": L.layer.dtype_policy("float32"),
        "padding": (2, 3), "data_format": "channels_last"}
    assert L.Cropping1D(name="c").get_config()["cropping"] == (1, 1)
    assert "data_format" not in L.Cropping1D().get_config()
    assert L.UpSampling1D(3).get_config()["size"] == 3
    c = L.GlobalMaxPooling2D(keepdims=True, data_format="channels_first").get_config()
    assert (c["keepdims"], c["data_format"]) == (True, "channels_first")


# ---- in a model: fit, save, load -------------------------------------------------------

def sequence_model():
    rnnfast.utils.set_random_seed(4)
    model = rnnfast.Sequential([
        rnnfast.Input((8, 3)),
        L.SpatialDropout1D(0.2),
        L.ZeroPadding1D((1, 2)),
        L.Dense(4, activation="tanh"),
        L.Cropping1D((2, 1)),
        L.UpSampling1D(2),
        L.LSTM(5, return_sequences=True),
        L.GlobalMaxPooling1D(),
        L.Dense(1),
    ])
    model.compile(loss="mse", optimizer=rnnfast.optimizers.Adam(learning_rate=0.02))
    return model


def masked_text_model():
    rnnfast.utils.set_random_seed(5)
    model = rnnfast.Sequential([
        rnnfast.Input((7,), dtype="int32"),
        L.Embedding(10, 4, mask_zero=True),
        L.SpatialDropout1D(0.1),
        L.GRU(6, return_sequences=True),
        L.GlobalAveragePooling1D(),
        L.Dense(1),
    ])
    model.compile(loss="mse", optimizer=rnnfast.optimizers.Adam(learning_rate=0.02))
    return model


def image_model():
    rnnfast.utils.set_random_seed(6)
    model = rnnfast.Sequential([
        rnnfast.Input((3, 4, 5)),
        L.Dense(4, activation="relu"),
        L.GlobalAveragePooling2D(data_format="channels_first", keepdims=True),
        L.Flatten(),
        L.Dense(2),
    ])
    model.compile(loss="mse", optimizer=rnnfast.optimizers.Adam(learning_rate=0.02))
    return model


def data_for(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    if model.inputs[0].dtype == "int32":
        x = rng.integers(1, 10, shape).astype(np.int32)
        for i in range(n):
            x[i, rng.integers(1, shape[1]):] = 0  # padded ends, at least one real step
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal((n,) + tuple(model.outputs[0].shape[1:])).astype(np.float32)
    return x, y


@pytest.mark.parametrize("build", [sequence_model, masked_text_model, image_model])
@pytest.mark.parametrize("ext", [".rnnfast", ".keras"])
def test_fit_save_load(build, ext, tmp_path):
    rnnfast.backend.clear_session()
    model = build()
    x, y = data_for(model)
    before = model.evaluate(x, y, verbose=0)
    hist = model.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert np.all(np.isfinite(hist))
    assert model.evaluate(x, y, verbose=0) < before  # the gradients reach the first layers
    path = tmp_path / f"model{ext}"
    model.save(path)
    loaded = rnnfast.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]


def test_masked_average_in_a_model_uses_the_embedding_mask():
    """Embedding(mask_zero) -> GlobalAveragePooling1D: padded steps take no
    part in the mean, whatever their embedding."""
    rnnfast.backend.clear_session()
    model = rnnfast.Sequential([rnnfast.Input((5,), dtype="int32"),
                                L.Embedding(6, 3, mask_zero=True),
                                L.GlobalAveragePooling1D()])
    table = model.layers[0].get_weights()[0]
    ids = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 1, 0]], np.int32)
    want = np.stack([table[[1, 2]].mean(axis=0), table[[3, 4, 5, 1]].mean(axis=0)])
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-6)
