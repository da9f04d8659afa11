"""Self-checks for the convolution, pooling and normalization references.

1. Every hand-written backward against float64 central differences of the
   same reference forward.
2. Where Keras is installed, every forward against Keras itself (keras.ops.conv,
   max_pool, average_pool, and the Keras layers for causal padding, groups and
   the normalizations): Keras is the arbiter of the semantics. Keras computes
   in float32 here, hence the float32-sized tolerances of those comparisons.
"""

import numpy as np
import pytest

from finite_differences import numeric_gradient

from .conv import conv_backward, conv_forward, conv_geometry
from .normalization import (batch_norm_backward, batch_norm_forward, batch_norm_moments,
                            layer_norm_backward, layer_norm_forward)
from .pooling import pool_backward, pool_forward

# Keras's own warnings (NumPy 2's __array__ deprecation, rms_scaling's deprecation).
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

RTOL, ATOL = 1e-6, 1e-8
K_RTOL, K_ATOL = 1e-5, 1e-5  # float64 reference against Keras's float32


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def weighted(f, w):
    """L = sum(w * f()): a scalar whose gradient w.r.t. f's output is w."""
    return lambda: float(np.sum(w * f()))


# ---- geometry ------------------------------------------------------------------------

@pytest.mark.parametrize("args, want", [
    ((7, 3, 1, 1, "valid"), (5, 0)),
    ((7, 3, 2, 1, "valid"), (3, 0)),
    ((7, 3, 1, 2, "valid"), (3, 0)),
    ((7, 3, 1, 1, "same"), (7, 1)),
    ((7, 4, 1, 1, "same"), (7, 1)),    # total 3: 1 before, 2 after
    ((8, 3, 2, 1, "same"), (4, 0)),    # total 1: 0 before, 1 after
    ((7, 3, 2, 1, "same"), (4, 1)),
    ((7, 3, 1, 3, "same"), (7, 3)),
    ((7, 3, 1, 2, "causal"), (7, 4)),
    ((7, 3, 2, 1, "causal"), (4, 2)),
])
def test_geometry(args, want):
    assert conv_geometry(*args) == want


def test_conv_forward_by_hand():
    # One channel, kernel [1, 2]: y_t = x_t + 2 x_{t+1} ('valid'); causal
    # shifts it so y_t = x_{t-1} + 2 x_t with x_{-1} = 0.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    k = np.array([1.0, 2.0]).reshape(2, 1, 1)
    np.testing.assert_array_equal(conv_forward(x, k)[0, :, 0], [5, 8, 11])
    np.testing.assert_array_equal(conv_forward(x, k, padding="causal")[0, :, 0], [2, 5, 8, 11])
    np.testing.assert_array_equal(conv_forward(x, k, padding="same")[0, :, 0], [5, 8, 11, 4])
    np.testing.assert_array_equal(conv_forward(x, k, dilation_rate=2)[0, :, 0], [7, 10])
    np.testing.assert_array_equal(conv_forward(x, k, bias=[0.5], strides=2)[0, :, 0], [5.5, 11.5])


def test_pool_forward_by_hand():
    x = np.array([1.0, 5.0, 3.0, -2.0, 4.0]).reshape(1, 5, 1)
    # 'same', pool 2 stride 2: out 3, total pad 1, after: windows {1,5} {3,-2} {4}
    np.testing.assert_array_equal(pool_forward(x, 2, padding="same")[0, :, 0], [5, 3, 4])
    np.testing.assert_array_equal(pool_forward(x, 2, padding="same", mode="avg")[0, :, 0],
                                  [3, 0.5, 4])
    np.testing.assert_array_equal(pool_forward(x, 3, 1, mode="max")[0, :, 0], [5, 5, 4])


# ---- finite differences --------------------------------------------------------------

CONV1D = [dict(padding=p, strides=s, dilation_rate=d, groups=g)
          for p in ("valid", "same", "causal") for s in (1, 2) for d in (1, 2)
          for g in (1, 2) if not (s > 1 and d > 1)]
CONV2D = [dict(padding="valid"), dict(padding="same"), dict(padding="same", strides=(2, 1)),
          dict(padding="valid", dilation_rate=(2, 1)), dict(padding="same", groups=2),
          dict(padding="same", strides=2, kernel=(2, 3))]


def _conv_fd(x, kernel, bias, opts, data_format="channels_last"):
    y = conv_forward(x, kernel, bias, data_format=data_format, **opts)
    w = rand(*y.shape, seed=9)
    dx, dk, db = conv_backward(x, kernel, w, data_format=data_format, **opts)
    loss = weighted(lambda: conv_forward(x, kernel, bias, data_format=data_format, **opts), w)
    for got, arr, name in ((dx, x, "x"), (dk, kernel, "kernel"), (db, bias, "bias")):
        np.testing.assert_allclose(got, numeric_gradient(loss, arr), rtol=RTOL, atol=ATOL,
                                   err_msg=name)


@pytest.mark.parametrize("opts", CONV1D, ids=str)
def test_conv1d_gradients(opts):
    x, k, b = rand(2, 7, 4, seed=1), rand(3, 4 // opts["groups"], 4, seed=2), rand(4, seed=3)
    _conv_fd(x, k, b, opts)


@pytest.mark.parametrize("opts", CONV2D, ids=str)
def test_conv2d_gradients(opts):
    opts = dict(opts)
    ks = opts.pop("kernel", (3, 2))
    g = opts.get("groups", 1)
    x, k, b = rand(1, 5, 4, 2, seed=4), rand(*ks, 2 // g, 2, seed=5), rand(2, seed=6)
    _conv_fd(x, k, b, opts)


def test_conv_channels_first_is_a_transpose():
    x, k, b = rand(2, 3, 6, seed=7), rand(2, 3, 2, seed=8), rand(2, seed=9)
    y = conv_forward(x, k, b, padding="same", data_format="channels_first")
    np.testing.assert_allclose(y, np.moveaxis(conv_forward(np.moveaxis(x, 1, -1), k, b,
                                                           padding="same"), -1, 1))
    _conv_fd(x, k, b, dict(padding="same"), data_format="channels_first")


POOLS = [dict(pool_size=2), dict(pool_size=3, strides=1), dict(pool_size=2, padding="same"),
         dict(pool_size=3, strides=2, padding="same"), dict(pool_size=2, strides=1,
                                                            padding="same")]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("opts", POOLS, ids=str)
@pytest.mark.parametrize("shape", [(2, 7, 3), (1, 5, 4, 2)], ids=["1d", "2d"])
def test_pool_gradients(shape, opts, mode):
    x = rand(*shape, seed=11)
    y = pool_forward(x, mode=mode, **opts)
    w = rand(*y.shape, seed=12)
    dx = pool_backward(x, w, mode=mode, **opts)
    # Random normal inputs have no ties, so max is differentiable there.
    np.testing.assert_allclose(dx, numeric_gradient(
        weighted(lambda: pool_forward(x, mode=mode, **opts), w), x), rtol=RTOL, atol=ATOL)


LN = [dict(axis=-1), dict(axis=[1, 2]), dict(axis=1), dict(axis=-1, center=False),
      dict(axis=[1, 2], scale=False), dict(axis=-1, rms_scaling=True),
      dict(axis=[1, 2], rms_scaling=True, epsilon=0.1)]


def _ln_case(opts, seed=0):
    opts = dict(opts)
    center, scale = opts.pop("center", True), opts.pop("scale", True)
    x = rand(2, 3, 4, seed=seed) * 2 + 0.5
    axes = opts["axis"] if isinstance(opts["axis"], list) else [opts["axis"]]
    pshape = tuple(x.shape[a] for a in axes)
    gamma = rand(*pshape, seed=seed + 1) if scale or opts.get("rms_scaling") else None
    beta = rand(*pshape, seed=seed + 2) if center and not opts.get("rms_scaling") else None
    return x, gamma, beta, opts


@pytest.mark.parametrize("opts", LN, ids=str)
def test_layer_norm_gradients(opts):
    x, gamma, beta, opts = _ln_case(opts)
    y = layer_norm_forward(x, gamma, beta, **opts)
    w = rand(*y.shape, seed=5)
    dx, dg, db = layer_norm_backward(x, w, gamma, **opts)
    loss = weighted(lambda: layer_norm_forward(x, gamma, beta, **opts), w)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=RTOL, atol=ATOL)
    if gamma is not None:
        np.testing.assert_allclose(dg, numeric_gradient(loss, gamma), rtol=RTOL, atol=ATOL)
    if beta is not None:
        np.testing.assert_allclose(db, numeric_gradient(loss, beta), rtol=RTOL, atol=ATOL)


def test_layer_norm_normalizes():
    x = rand(3, 5, seed=1) * 4 + 2
    y = layer_norm_forward(x, epsilon=0.0)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("axis, masked", [(-1, False), (1, False), (-1, True)])
def test_batch_norm_gradients(axis, masked, training):
    x = rand(3, 4, 2, seed=1) * 1.5 + 0.7
    n = x.shape[axis]
    gamma, beta = rand(n, seed=2), rand(n, seed=3)
    mm, mv = rand(n, seed=4), rand(n, seed=5) ** 2 + 0.5
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], bool) if masked else None
    kw = dict(axis=axis, epsilon=1e-3, mask=mask, training=training)

    def fwd():
        return batch_norm_forward(x, gamma, beta, mm, mv, **kw)[0]

    w = rand(*x.shape, seed=6)
    dx, dg, db = batch_norm_backward(x, w, gamma, mv, moving_mean=mm, **kw)
    loss = weighted(fwd, w)
    for got, arr, name in ((dx, x, "x"), (dg, gamma, "gamma"), (db, beta, "beta")):
        np.testing.assert_allclose(got, numeric_gradient(loss, arr), rtol=RTOL, atol=ATOL,
                                   err_msg=name)


def test_batch_norm_training_normalizes_and_moves():
    x = rand(6, 3, seed=1) * 3 + 1
    y, mm, mv = batch_norm_forward(x, training=True, epsilon=0.0, momentum=0.9)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(mm, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mv, 0.9 + 0.1 * x.var(axis=0), rtol=1e-12)


# ---- against Keras -------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def f32(a):
    return np.asarray(a, np.float32)


def _keras_conv_layer(keras, nd, kernel, bias, opts, data_format="channels_last"):
    cls = keras.layers.Conv1D if nd == 1 else keras.layers.Conv2D
    layer = cls(kernel.shape[-1], kernel.shape[:nd], use_bias=bias is not None,
                data_format=data_format, **opts)
    return layer


@pytest.mark.parametrize("opts", CONV1D, ids=str)
def test_conv1d_forward_matches_keras(keras, opts):
    x, k, b = rand(2, 7, 4, seed=1), rand(3, 4 // opts["groups"], 4, seed=2), rand(4, seed=3)
    want = conv_forward(x, k, b, **opts)
    if opts["padding"] != "causal":
        # keras.ops.conv takes the groups from the kernel's input-channel axis.
        got = keras.ops.conv(f32(x), f32(k), strides=opts["strides"], padding=opts["padding"],
                             dilation_rate=opts["dilation_rate"]) + f32(b)
        np.testing.assert_allclose(np.asarray(got), want, rtol=K_RTOL, atol=K_ATOL)
    layer = keras.layers.Conv1D(4, 3, **opts)
    layer.build(x.shape)
    layer.set_weights([f32(k), f32(b)])
    np.testing.assert_allclose(np.asarray(layer(f32(x))), want, rtol=K_RTOL, atol=K_ATOL)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("opts", CONV2D, ids=str)
def test_conv2d_forward_matches_keras(keras, opts, data_format):
    opts = dict(opts)
    ks = opts.pop("kernel", (3, 2))
    g = opts.get("groups", 1)
    x, k, b = rand(2, 5, 4, 2, seed=4), rand(*ks, 2 // g, 2, seed=5), rand(2, seed=6)
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1)
    want = conv_forward(x, k, b, data_format=data_format, **opts)
    layer = keras.layers.Conv2D(2, ks, data_format=data_format, **opts)
    layer.build(x.shape)
    layer.set_weights([f32(k), f32(b)])
    np.testing.assert_allclose(np.asarray(layer(f32(x))), want, rtol=K_RTOL, atol=K_ATOL)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("opts", POOLS, ids=str)
@pytest.mark.parametrize("shape", [(2, 7, 3), (1, 5, 4, 2)], ids=["1d", "2d"])
def test_pool_forward_matches_keras(keras, shape, opts, mode):
    x = rand(*shape, seed=11)
    op = keras.ops.max_pool if mode == "max" else keras.ops.average_pool
    # (strides given explicitly: Keras's JAX ops mishandle strides=None)
    got = op(f32(x), opts["pool_size"], strides=opts.get("strides", opts["pool_size"]),
             padding=opts.get("padding", "valid"))
    np.testing.assert_allclose(np.asarray(got), pool_forward(x, mode=mode, **opts),
                               rtol=K_RTOL, atol=K_ATOL)


def test_pool_same_padding_conventions_match_keras(keras):
    # Padded cells: not counted by the average, never the max (all inputs negative).
    x = -np.arange(1.0, 6.0).reshape(1, 5, 1)
    for op, mode, want in ((keras.ops.average_pool, "avg", [-1.5, -3.5, -5]),
                           (keras.ops.max_pool, "max", [-1, -3, -5])):
        got = np.asarray(op(f32(x), 2, strides=2, padding="same"))[0, :, 0]
        np.testing.assert_allclose(got, want, rtol=1e-7)
        np.testing.assert_allclose(pool_forward(x, 2, padding="same", mode=mode)[0, :, 0], want)


@pytest.mark.parametrize("opts", LN, ids=str)
def test_layer_norm_forward_matches_keras(keras, opts):
    x, gamma, beta, ref_opts = _ln_case(opts)
    layer = keras.layers.LayerNormalization(**opts)
    layer.build(x.shape)
    layer.set_weights([f32(a) for a in (gamma, beta) if a is not None])
    np.testing.assert_allclose(np.asarray(layer(f32(x))),
                               layer_norm_forward(x, gamma, beta, **ref_opts),
                               rtol=K_RTOL, atol=K_ATOL)


@pytest.mark.parametrize("axis, masked", [(-1, False), (1, False), (-1, True)])
def test_batch_norm_matches_keras(keras, axis, masked):
    x = rand(3, 4, 2, seed=1) * 1.5 + 0.7
    n = x.shape[axis]
    gamma, beta = rand(n, seed=2), rand(n, seed=3)
    mm, mv = rand(n, seed=4), rand(n, seed=5) ** 2 + 0.5
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], bool) if masked else None
    layer = keras.layers.BatchNormalization(axis=axis, momentum=0.8)
    layer.build(x.shape)
    layer.set_weights([f32(a) for a in (gamma, beta, mm, mv)])
    y_inf, _, _ = batch_norm_forward(x, gamma, beta, mm, mv, axis=axis)
    np.testing.assert_allclose(np.asarray(layer(f32(x), training=False)), y_inf,
                               rtol=K_RTOL, atol=K_ATOL)
    y, new_mm, new_mv = batch_norm_forward(x, gamma, beta, mm, mv, axis=axis, momentum=0.8,
                                           training=True, mask=mask)
    np.testing.assert_allclose(np.asarray(layer(f32(x), training=True, mask=mask)), y,
                               rtol=K_RTOL, atol=K_ATOL)
    got_mm, got_mv = (np.asarray(v) for v in layer.get_weights()[2:])
    np.testing.assert_allclose(got_mm, new_mm, rtol=K_RTOL, atol=K_ATOL)
    np.testing.assert_allclose(got_mv, new_mv, rtol=K_RTOL, atol=K_ATOL)
    # Biased variance: the moving variance moved towards var with ddof=0.
    mean, var = batch_norm_moments(x, axis, mask)
    np.testing.assert_allclose(new_mv, 0.8 * mv + 0.2 * var, rtol=1e-12)
