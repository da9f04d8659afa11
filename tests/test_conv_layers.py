"""Conv1D, Conv2D, Max/AveragePooling1D/2D, LayerNormalization and
BatchNormalization: forwards against the NumPy references written from the
definitions (tests/reference/conv.py, pooling.py, normalization.py, checked
against Keras in tests/reference/test_conv_reference_selfcheck.py), every
gradient against float64 central differences, float32 against the float64
references, Keras's errors and configs."""

import numpy as np
import pytest

import rnnfast
from layer_harness import check_accumulates, fd_check
from finite_differences import numeric_gradient
from reference.conv import conv_backward, conv_forward
from reference.normalization import (batch_norm_backward, batch_norm_forward,
                                     layer_norm_backward, layer_norm_forward)
from reference.pooling import pool_backward, pool_forward
from rnnfast.layers import Context

L = rnnfast.layers
F64 = {"dtype": "float64"}
# float64 layer against float64 reference: only summation order differs.
EXACT = dict(rtol=1e-10, atol=1e-12)
# float32 layer against the float64 reference (sums of a few dozen O(1) terms).
F32 = dict(rtol=1e-5, atol=1e-5)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def cf(x, data_format):
    """A channels_last array in the given data format."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if data_format == "channels_first" else x


def built(layer, shape, weights):
    layer.maybe_build(tuple(shape))
    layer.set_weights(weights)
    return layer


def run_backward(layer, x, dy, training=True, mask=None):
    """(y, dx, [weight grads in layer.weights order]) of one forward/backward."""
    layer.zero_grad()
    ctx = Context()
    y = layer.forward(ctx, x, training=training, mask=mask)
    dx = layer.backward(ctx, dy)
    return y, dx, [v.grad for v in layer.trainable_weights]


# ---- Conv1D --------------------------------------------------------------------------

# Keras refuses strides > 1 together with dilation_rate > 1 (test_conv_errors).
CONV1D_GRID = [(p, s, d, g) for p in ("valid", "same", "causal") for s in (1, 2)
               for d in (1, 2, 3) for g in (1, 2) if not (s > 1 and d > 1)]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("padding, strides, dilation, groups", CONV1D_GRID)
def test_conv1d(padding, strides, dilation, groups, use_bias, data_format):
    x = cf(rand(2, 9, 4, seed=1), data_format)
    k, b = rand(3, 4 // groups, 6, seed=2), rand(6, seed=3)
    layer = built(L.Conv1D(6, 3, strides=strides, padding=padding, dilation_rate=dilation,
                           groups=groups, use_bias=use_bias, data_format=data_format, **F64),
                  x.shape, [k, b] if use_bias else [k])
    assert [v.shape for v in layer.weights] == [(3, 4 // groups, 6)] + [(6,)] * use_bias
    y = fd_check(layer, x)
    want = conv_forward(x, k, b if use_bias else None, strides=strides, padding=padding,
                        dilation_rate=dilation, groups=groups, data_format=data_format)
    np.testing.assert_allclose(y, want, **EXACT)
    assert tuple(layer.compute_output_shape((None,) + x.shape[1:])) == (None,) + want.shape[1:]


# strides 2 and dilation 2 along different axes are still strides > 1 with
# dilation > 1 for Keras, so each case has one of them.
CONV2D_GRID = [(p, s, d, g) for p in ("valid", "same")
               for s, d in (((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (1, 1)),
                            ((1, 1), (2, 2)), ((1, 1), (1, 3)))
               for g in (1, 2)]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding, strides, dilation, groups", CONV2D_GRID)
def test_conv2d(padding, strides, dilation, groups, data_format):
    x = cf(rand(2, 6, 7, 4, seed=4), data_format)
    k, b = rand(3, 2, 4 // groups, 4, seed=5), rand(4, seed=6)
    layer = built(L.Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation,
                           groups=groups, data_format=data_format, **F64), x.shape, [k, b])
    y = fd_check(layer, x)
    want = conv_forward(x, k, b, strides=strides, padding=padding, dilation_rate=dilation,
                        groups=groups, data_format=data_format)
    np.testing.assert_allclose(y, want, **EXACT)
    assert tuple(layer.compute_output_shape((None,) + x.shape[1:])) == (None,) + want.shape[1:]


ACTIVATIONS = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
               "relu": lambda z: np.maximum(z, 0)}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("rank", [1, 2])
def test_conv_activations(rank, activation):
    x = rand(2, *(5,) * rank, 3, seed=7)
    k, b = rand(*(2,) * rank, 3, 4, seed=8), rand(4, seed=9)
    cls = L.Conv1D if rank == 1 else L.Conv2D
    layer = built(cls(4, 2, padding="same", activation=activation, **F64), x.shape, [k, b])
    y = fd_check(layer, x)
    np.testing.assert_allclose(y, ACTIVATIONS[activation](conv_forward(x, k, b, padding="same")),
                               **EXACT)


@pytest.mark.parametrize("rank, opts", [
    (1, dict(padding="causal", dilation_rate=2, groups=2)),
    (1, dict(padding="same", strides=2)),
    (2, dict(padding="same", strides=(2, 1), groups=2)),
    (2, dict(padding="valid", dilation_rate=(2, 1))),
], ids=str)
def test_conv_float32_against_reference(rank, opts):
    """The float32 kernels: forward and every gradient against float64 NumPy."""
    x = rand(3, *(8,) * rank, 4, seed=10)
    k, b = rand(*(3,) * rank, 4 // opts.get("groups", 1), 6, seed=11), rand(6, seed=12)
    cls = L.Conv1D if rank == 1 else L.Conv2D
    layer = built(cls(6, 3, **opts), x.shape, [k, b])
    assert layer.kernel.value.dtype == np.float32
    want = conv_forward(x, k, b, **opts)
    dy = rand(*want.shape, seed=13)
    y, dx, (dk, db) = run_backward(layer, x.astype(np.float32), dy.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, **F32)
    rdx, rdk, rdb = conv_backward(x, k, dy, **opts)
    np.testing.assert_allclose(dx, rdx, **F32)
    np.testing.assert_allclose(dk, rdk, **F32)
    np.testing.assert_allclose(db, rdb, **F32)


@pytest.mark.parametrize("rank", [1, 2])
def test_conv_gradients_accumulate(rank):
    x = rand(2, *(6,) * rank, 4, seed=14)
    check_accumulates(L.Conv1D(4, 2, groups=2, padding="same", **F64) if rank == 1 else
                      L.Conv2D(4, (2, 3), strides=2, **F64), x)


def test_conv_default_initializers_and_build():
    layer = L.Conv2D(5, 3)
    y = layer(rand(2, 6, 6, 2).astype(np.float32))
    assert y.shape == (2, 4, 4, 5)
    assert [v.name for v in layer.weights] == ["kernel", "bias"]
    assert layer.kernel.shape == (3, 3, 2, 5)
    np.testing.assert_array_equal(layer.bias.value, 0)  # Keras: bias_initializer="zeros"
    # glorot_uniform: limit sqrt(6 / (fan_in + fan_out)), fans = taps * channels
    limit = np.sqrt(6 / (9 * 2 + 9 * 5))
    assert np.all(np.abs(layer.kernel.value) <= limit) and layer.kernel.value.std() > limit / 3


# ---- Conv errors ---------------------------------------------------------------------

def test_conv_errors():
    # The kernel spans more than a 'valid' input: Keras's "Computed output size
    # would be zero or negative ... kernel shape".
    with pytest.raises(ValueError, match="kernel"):
        L.Conv1D(2, 5)(rand(1, 3, 2))
    with pytest.raises(ValueError, match="kernel"):
        L.Conv2D(2, (2, 4), dilation_rate=(1, 2))(rand(1, 5, 6, 2))
    with pytest.raises(ValueError, match="dilation_rate"):
        L.Conv1D(2, 3, dilation_rate=-1)
    with pytest.raises(ValueError, match="dilation_rate"):
        L.Conv2D(2, 3, dilation_rate=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        L.Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="padding"):
        L.Conv1D(2, 3, padding="full")
    # Keras (3.15) refuses the combination in the constructor.
    with pytest.raises(ValueError, match="dilation_rate"):
        L.Conv1D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="dilation_rate"):
        L.Conv2D(2, 3, strides=(1, 2), dilation_rate=(2, 1))
    with pytest.raises(ValueError, match="strides"):
        L.Conv1D(2, 3, strides=0)
    with pytest.raises(ValueError, match="groups"):
        L.Conv1D(3, 3, groups=2)  # filters not divisible by groups
    with pytest.raises(ValueError, match="groups"):
        L.Conv1D(2, 3, groups=2)(rand(1, 5, 3))  # input channels not divisible
    with pytest.raises(ValueError, match="filters"):
        L.Conv2D(0, 3)
    layer = L.Conv1D(2, 3, **F64)
    layer.maybe_build((1, 5, 3))
    with pytest.raises(ValueError, match="channels"):
        layer(rand(1, 5, 4))


# ---- pooling -------------------------------------------------------------------------

POOL1D = [dict(pool_size=2), dict(pool_size=3, strides=1), dict(pool_size=2, strides=1,
                                                                  padding="same"),
          dict(pool_size=3, strides=2, padding="same"), dict(pool_size=3, padding="same"),
          dict(pool_size=2, strides=3)]
POOL2D = [dict(pool_size=(2, 2)), dict(pool_size=(3, 2), strides=(1, 2)),
          dict(pool_size=2, padding="same"), dict(pool_size=(3, 3), strides=(2, 1),
                                                  padding="same"),
          dict(pool_size=(2, 3), strides=1), dict(pool_size=(1, 2), padding="same")]
POOLS = [(1, o) for o in POOL1D] + [(2, o) for o in POOL2D]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("rank, opts", POOLS, ids=str)
def test_pooling(rank, opts, mode, data_format):
    x = cf(rand(2, *((7,) if rank == 1 else (5, 6)), 3, seed=15), data_format)
    name = ("MaxPooling" if mode == "max" else "AveragePooling") + f"{rank}D"
    layer = getattr(L, name)(data_format=data_format, **opts, **F64)
    assert layer.weights == []
    y = fd_check(layer, x)  # normal random inputs: no ties for max
    want = pool_forward(x, mode=mode, data_format=data_format, **opts)
    np.testing.assert_allclose(y, want, **EXACT)
    assert tuple(layer.compute_output_shape((None,) + x.shape[1:])) == (None,) + want.shape[1:]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("rank, opts", [(1, dict(pool_size=3, strides=2, padding="same")),
                                        (2, dict(pool_size=(2, 3), strides=1))], ids=str)
def test_pooling_float32_against_reference(rank, opts, mode):
    x = rand(2, *((9,) if rank == 1 else (5, 6)), 4, seed=16)
    name = ("MaxPooling" if mode == "max" else "AveragePooling") + f"{rank}D"
    want = pool_forward(x, mode=mode, **opts)
    dy = rand(*want.shape, seed=17)
    y, dx, _ = run_backward(getattr(L, name)(**opts), x.astype(np.float32),
                            dy.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, **F32)
    np.testing.assert_allclose(dx, pool_backward(x, dy, mode=mode, **opts), **F32)


def test_max_pooling_same_padding_never_picks_padding():
    # All inputs negative: a zero-padded max would output 0 at the ragged end.
    x = -(np.arange(5.0) + 1).reshape(1, 5, 1)
    np.testing.assert_array_equal(L.MaxPooling1D(2, padding="same", **F64)(x)[0, :, 0],
                                  [-1, -3, -5])
    # The average divides by the real cells only: the last window holds one.
    np.testing.assert_array_equal(L.AveragePooling1D(2, padding="same", **F64)(x)[0, :, 0],
                                  [-1.5, -3.5, -5])


def test_pooling_defaults_and_errors():
    p = L.MaxPooling2D()
    assert p.get_config()["pool_size"] == (2, 2) and p.get_config()["strides"] == (2, 2)
    assert L.AveragePooling1D(3).get_config()["strides"] == (3,)  # strides default: pool_size
    # (Keras takes this at construction and fails in the call; failing early is kinder.)
    with pytest.raises(ValueError, match="padding"):
        L.MaxPooling1D(2, padding="full")
    with pytest.raises(ValueError, match="pool_size"):
        L.AveragePooling2D(pool_size=(2, 0))
    with pytest.raises(ValueError, match="strides"):
        L.MaxPooling1D(2, strides=-1)


# ---- LayerNormalization --------------------------------------------------------------

LN = [dict(axis=-1), dict(axis=[1, 2]), dict(axis=1), dict(axis=-1, center=False),
      dict(axis=-1, scale=False), dict(axis=[1, 2], center=False, scale=False),
      dict(axis=[1, 2], epsilon=0.1), dict(axis=[1, 3])]


@pytest.mark.parametrize("opts", LN, ids=str)
def test_layer_normalization(opts):
    x = rand(2, 3, 4, 2, seed=18) * 2 + 0.5
    axes = opts["axis"] if isinstance(opts["axis"], list) else [opts["axis"]]
    pshape = tuple(x.shape[a] for a in axes)
    rms = opts.get("rms_scaling", False)
    gamma = rand(*pshape, seed=19) if opts.get("scale", True) or rms else None
    beta = rand(*pshape, seed=20) if opts.get("center", True) and not rms else None
    layer = built(L.LayerNormalization(**opts, **F64), x.shape,
                  [w for w in (gamma, beta) if w is not None])
    # Keras's weights: gamma and beta, shaped like the normalized axes.
    assert [(v.name, v.shape) for v in layer.weights] == \
        [(n, pshape) for n, w in (("gamma", gamma), ("beta", beta)) if w is not None]
    y = fd_check(layer, x)
    ref = {k: v for k, v in opts.items() if k in ("axis", "epsilon", "rms_scaling")}
    np.testing.assert_allclose(y, layer_norm_forward(x, gamma, beta, **ref), **EXACT)


def test_layer_normalization_float32_and_accumulation():
    x = rand(3, 5, 6, seed=21) * 3 - 1
    gamma, beta = rand(6, seed=22), rand(6, seed=23)
    dy = rand(*x.shape, seed=24)
    layer = built(L.LayerNormalization(), x.shape, [gamma, beta])
    y, dx, (dg, db) = run_backward(layer, x.astype(np.float32), dy.astype(np.float32))
    np.testing.assert_allclose(y, layer_norm_forward(x, gamma, beta), **F32)
    rdx, rdg, rdb = layer_norm_backward(x, dy, gamma)
    for got, want in ((dx, rdx), (dg, rdg), (db, rdb)):
        np.testing.assert_allclose(got, want, **F32)
    check_accumulates(L.LayerNormalization(axis=[1, 2], **F64), x)


def test_layer_normalization_rms_scaling_is_refused():
    # Deprecated in Keras 3 (it scales by the variance about the mean, not the
    # RMS); rnnfast refuses it rather than copy that.
    with pytest.raises(ValueError, match="rms_scaling"):
        L.LayerNormalization(rms_scaling=True)


def test_layer_normalization_defaults():
    layer = L.LayerNormalization()
    config = layer.get_config()
    assert config["epsilon"] == 1e-3 and config["center"] and config["scale"]
    assert config["rms_scaling"] is False
    y = layer(rand(2, 4, seed=1).astype(np.float32))  # gamma 1, beta 0
    np.testing.assert_allclose(y, layer_norm_forward(rand(2, 4, seed=1)), **F32)


# ---- BatchNormalization --------------------------------------------------------------

def bn_case(axis=-1, seed=25, shape=(4, 3, 2)):
    x = rand(*shape, seed=seed) * 1.5 + 0.7
    n = shape[axis]
    return x, [rand(n, seed=seed + 1), rand(n, seed=seed + 2), rand(n, seed=seed + 3),
               rand(n, seed=seed + 4) ** 2 + 0.5]


def fd_check_training(layer, x, mask=None, seed=0):
    """fd_check with the training-mode forward as the loss (fd_check's loss is
    the inference forward): the batch statistics depend on x, the moving ones,
    which each call moves, do not enter the output."""
    rng = np.random.default_rng(seed)
    ctx = Context()
    y = layer.forward(ctx, x, training=True, mask=mask)
    w = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(ctx, w)
    grads = [np.array(v.grad) for v in layer.trainable_weights]

    def loss():
        return float(np.sum(w * layer.forward(Context(), x, training=True, mask=mask)))

    for v, g in zip(layer.trainable_weights, grads):
        np.testing.assert_allclose(g, numeric_gradient(loss, v.value), rtol=1e-6, atol=1e-8,
                                   err_msg=v.path)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)
    return y


@pytest.mark.parametrize("axis, shape", [(-1, (4, 3, 2)), (1, (3, 2, 4, 3)), (-1, (5, 3))],
                         ids=["last", "channels_first", "dense"])
def test_batch_normalization_training(axis, shape):
    x, (g, b, mm, mv) = bn_case(axis, shape=shape)
    layer = built(L.BatchNormalization(axis=axis, momentum=0.7, epsilon=0.01, **F64), x.shape,
                  [g, b, mm, mv])
    assert [(v.name, v.trainable) for v in layer.weights] == [
        ("gamma", True), ("beta", True), ("moving_mean", False), ("moving_variance", False)]
    y = layer.forward(Context(), x, training=True)
    want, new_mm, new_mv = batch_norm_forward(x, g, b, mm, mv, axis=axis, epsilon=0.01,
                                              momentum=0.7, training=True)
    np.testing.assert_allclose(y, want, **EXACT)
    np.testing.assert_allclose(layer.moving_mean.value, new_mm, **EXACT)
    np.testing.assert_allclose(layer.moving_variance.value, new_mv, **EXACT)
    fd_check_training(layer, x)


def test_batch_normalization_moving_statistics_exact():
    # One channel, x = [1, 3]: batch mean 2, biased variance 1 (unbiased would be 2).
    layer = L.BatchNormalization(momentum=0.5, **F64)
    x = np.array([[1.0], [3.0]])
    layer.maybe_build(x.shape)
    for want_mm, want_mv in ((1.0, 1.0), (1.5, 1.0), (1.75, 1.0)):
        layer.forward(Context(), x, training=True)
        np.testing.assert_allclose(layer.moving_mean.value, [want_mm], rtol=1e-15)
        np.testing.assert_allclose(layer.moving_variance.value, [want_mv], rtol=1e-15)
    # x = [0, 4]: mean 2, variance 4: mm = 1.75*0.5 + 1, mv = 1*0.5 + 2.
    layer.forward(Context(), np.array([[0.0], [4.0]]), training=True)
    np.testing.assert_allclose(layer.moving_mean.value, [1.875], rtol=1e-15)
    np.testing.assert_allclose(layer.moving_variance.value, [2.5], rtol=1e-15)


def test_batch_normalization_moving_statistics_over_several_calls():
    x0, (g, b, mm, mv) = bn_case(-1)
    layer = built(L.BatchNormalization(momentum=0.9, **F64), x0.shape, [g, b, mm, mv])
    for i in range(4):
        x = rand(*x0.shape, seed=40 + i) * (i + 1) + i
        y = layer.forward(Context(), x, training=True)
        want, mm, mv = batch_norm_forward(x, g, b, mm, mv, momentum=0.9, training=True)
        np.testing.assert_allclose(y, want, **EXACT)
    np.testing.assert_allclose(layer.moving_mean.value, mm, **EXACT)
    np.testing.assert_allclose(layer.moving_variance.value, mv, **EXACT)
    # ... and inference then normalizes with them.
    x = rand(*x0.shape, seed=50)
    np.testing.assert_allclose(layer.call(x), batch_norm_forward(x, g, b, mm, mv)[0], **EXACT)


def test_batch_normalization_inference():
    x, (g, b, mm, mv) = bn_case(1, shape=(3, 4, 2))
    layer = built(L.BatchNormalization(axis=1, **F64), x.shape, [g, b, mm, mv])
    np.testing.assert_allclose(layer.forward(Context(), x, training=False),
                               batch_norm_forward(x, g, b, mm, mv, axis=1)[0], **EXACT)
    np.testing.assert_allclose(layer(x), batch_norm_forward(x, g, b, mm, mv, axis=1)[0], **EXACT)
    # Inference leaves the moving statistics alone.
    np.testing.assert_array_equal(layer.moving_mean.value, mm)
    np.testing.assert_array_equal(layer.moving_variance.value, mv)


def test_batch_normalization_frozen_uses_moving_statistics():
    """Keras normalizes with the batch statistics only when training AND the
    layer is trainable: a frozen layer is an affine map even in fit."""
    x, (g, b, mm, mv) = bn_case(-1)
    layer = built(L.BatchNormalization(**F64), x.shape, [g, b, mm, mv])
    layer.trainable = False
    dy = rand(*x.shape, seed=30)
    y, dx, _ = run_backward(layer, x, dy, training=True)
    np.testing.assert_allclose(y, batch_norm_forward(x, g, b, mm, mv)[0], **EXACT)
    np.testing.assert_allclose(dx, batch_norm_backward(x, dy, g, mv, moving_mean=mm)[0], **EXACT)
    np.testing.assert_array_equal(layer.moving_mean.value, mm)
    fd_check(layer, x)  # training and inference forwards agree here


def test_batch_normalization_float32_gradients_against_reference():
    x, (g, b, mm, mv) = bn_case(-1, shape=(6, 5, 3))
    layer = built(L.BatchNormalization(), x.shape, [g, b, mm, mv])
    dy = rand(*x.shape, seed=31)
    y, dx, (dg, db) = run_backward(layer, x.astype(np.float32), dy.astype(np.float32))
    np.testing.assert_allclose(y, batch_norm_forward(x, g, b, mm, mv, training=True)[0], **F32)
    rdx, rdg, rdb = batch_norm_backward(x, dy, g, training=True)
    for got, want in ((dx, rdx), (dg, rdg), (db, rdb)):
        np.testing.assert_allclose(got, want, **F32)


def test_batch_normalization_masked():
    """Masked entries (a mask shaped like x without its channel axis) take no
    part in the batch statistics, as in Keras (kept count + 1e-7 below)."""
    x, (g, b, mm, mv) = bn_case(-1, shape=(3, 4, 2))
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 0, 0, 0]], bool)
    layer = built(L.BatchNormalization(momentum=0.8, **F64), x.shape, [g, b, mm, mv])
    y = layer.forward(Context(), x, training=True, mask=mask)
    want, new_mm, new_mv = batch_norm_forward(x, g, b, mm, mv, momentum=0.8, training=True,
                                              mask=mask)
    np.testing.assert_allclose(y, want, **EXACT)
    np.testing.assert_allclose(layer.moving_mean.value, new_mm, **EXACT)
    np.testing.assert_allclose(layer.moving_variance.value, new_mv, **EXACT)
    fd_check_training(layer, x, mask=mask)


def test_batch_normalization_center_scale_off_and_accumulation():
    x, (g, b, mm, mv) = bn_case(-1)
    layer = built(L.BatchNormalization(center=False, scale=False, **F64), x.shape, [mm, mv])
    assert [v.name for v in layer.weights] == ["moving_mean", "moving_variance"]
    y = fd_check_training(layer, x)
    np.testing.assert_allclose(y, batch_norm_forward(x, None, None, training=True)[0], **EXACT)
    check_accumulates(L.BatchNormalization(**F64), x)


def test_normalization_defaults_and_errors():
    config = L.BatchNormalization().get_config()
    assert (config["axis"], config["momentum"], config["epsilon"]) == (-1, 0.99, 1e-3)
    layer = L.BatchNormalization(**F64)
    layer.maybe_build((3, 4, 2))
    with pytest.raises(ValueError, match="mask"):
        layer.forward(Context(), rand(3, 4, 2), training=True, mask=np.ones((3,), bool))


# ---- configs -------------------------------------------------------------------------

CONFIG_CASES = [
    lambda: L.Conv1D(4, 3, strides=2, padding="causal", groups=2, activation="relu",
                     use_bias=False, data_format="channels_first", name="c1"),
    lambda: L.Conv2D(6, (3, 2), dilation_rate=(2, 1), padding="same", groups=3,
                     kernel_initializer="he_normal", bias_initializer="ones"),
    lambda: L.MaxPooling1D(3, strides=1, padding="same"),
    lambda: L.MaxPooling2D((2, 3), data_format="channels_first"),
    lambda: L.AveragePooling1D(2, data_format="channels_first"),
    lambda: L.AveragePooling2D((3, 3), strides=(2, 1), padding="same"),
    lambda: L.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False),
    lambda: L.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-4, scale=False,
                                 gamma_initializer="ones", moving_variance_initializer="ones"),
]


@pytest.mark.parametrize("make", CONFIG_CASES, ids=range(len(CONFIG_CASES)))
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    # JSON-able, as .keras files store it
    import json
    assert json.loads(json.dumps(config)) == json.loads(json.dumps(again.get_config()))


def test_conv_with_a_custom_activation_runs_it_in_numpy():
    """A user's activation (with a backward) is not fused into the kernel:
    it runs on the linear convolution's output, and its gradient is checked."""
    def twice_softsign(x):
        return 2 * x / (1 + np.abs(x))

    twice_softsign.backward = lambda x, y, dy: dy * 2 / (1 + np.abs(x)) ** 2
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 3))
    layer = rnnfast.layers.Conv1D(4, 3, padding="causal", activation=twice_softsign,
                                  dtype="float64")
    layer.build(x.shape)
    linear = rnnfast.layers.Conv1D(4, 3, padding="causal", dtype="float64")
    linear.build(x.shape)
    linear.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x), twice_softsign(linear(x)), rtol=1e-12)
    fd_check(layer, x)
