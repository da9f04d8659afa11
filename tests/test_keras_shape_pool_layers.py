"""ZeroPadding1D, Cropping1D, UpSampling1D, SpatialDropout1D and the global
poolings against Keras 3 itself (skipped when Keras is not installed): the
same model built by both with Keras's weights predicts the same (masks
included) and takes the same SGD step (Keras differentiates with its own
autodiff); tied maxima and masked steps get the gradient jax.grad gives;
configs, output shapes and mask support are Keras's; models move between the
two as .keras and legacy .h5 files."""

import os

import numpy as np
import pytest

keras_ref = pytest.importorskip("keras")
import rnnfast  # noqa: E402
from keras_harness import check_config_matches_keras, both, targets_for  # noqa: E402
from rnnfast.layers import Context  # noqa: E402

# Keras's own deprecation and user warnings (NumPy 2 compatibility, a mask
# reaching a layer that drops it, ...) are not ours.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
TRAINABLE = BACKEND in ("jax", "tensorflow", "torch")
# float32 against float32: sums of a few dozen terms in different orders.
TOL = dict(rtol=1e-5, atol=1e-6)


def seq(shape, *make, head=2, seed=1):
    """Input -> Dense(3) -> the layers under test -> Flatten -> Dense(head):
    the first Dense gives the layers a gradient to pass back (and, with its
    bias, makes zero padding visible downstream)."""
    def build(K):
        K.utils.set_random_seed(seed)
        return K.Sequential([K.Input(shape), K.layers.Dense(3, activation="tanh")] +
                            [f(K) for f in make] + [K.layers.Flatten(), K.layers.Dense(head)])
    return build


def text(*make, seed=2, steps=7):
    """int ids -> Embedding(mask_zero=True) -> the layers under test (ending
    in a pooling or an RNN, which honours whatever mask reaches it) -> Dense(2)."""
    def build(K):
        K.utils.set_random_seed(seed)
        return K.Sequential([K.Input((steps,), dtype="int32"),
                             K.layers.Embedding(9, 4, mask_zero=True)] +
                            [f(K) for f in make] + [K.layers.Dense(2)])
    return build


def mixed(K):
    """A functional model with every layer: two branches from one sequence."""
    K.utils.set_random_seed(3)
    inp = K.Input((6, 3), name="series")
    h = K.layers.Dense(4, activation="tanh")(inp)
    h = K.layers.SpatialDropout1D(0.3)(h)
    a = K.layers.UpSampling1D(2)(K.layers.Cropping1D((1, 2))(h))           # 6 steps
    b = K.layers.ZeroPadding1D((2, 1), data_format="channels_first")(h)    # [6, 7]
    b = K.layers.GlobalMaxPooling1D(data_format="channels_first")(b)       # [6]
    a = K.layers.GlobalAveragePooling1D(keepdims=True)(a)                  # [1, 4]
    m = K.layers.Concatenate()([K.layers.Flatten()(a), b])
    return K.Model(inp, K.layers.Dense(2, name="head")(m))


S1, S2 = (8, 3), (4, 5, 2)
CASES = {
    "zero_padding": seq(S1, lambda K: K.layers.ZeroPadding1D((1, 2))),
    "zero_padding_channels_first": seq(
        S1, lambda K: K.layers.ZeroPadding1D(2, data_format="channels_first")),
    "cropping": seq(S1, lambda K: K.layers.Cropping1D((2, 1))),
    "cropping_after_only": seq(S1, lambda K: K.layers.Cropping1D((0, 5))),
    "up_sampling": seq(S1, lambda K: K.layers.UpSampling1D(3)),
    "pad_crop_up": seq(S1, lambda K: K.layers.ZeroPadding1D((0, 3)),
                       lambda K: K.layers.Dense(2, activation="tanh"),
                       lambda K: K.layers.Cropping1D((4, 0)), lambda K: K.layers.UpSampling1D()),
    "spatial_dropout": seq(S1, lambda K: K.layers.SpatialDropout1D(0.5)),
    "global_average_1d": seq(S1, lambda K: K.layers.GlobalAveragePooling1D()),
    "global_average_1d_channels_first_keepdims": seq(
        S1, lambda K: K.layers.GlobalAveragePooling1D(data_format="channels_first",
                                                      keepdims=True)),
    "global_max_1d": seq(S1, lambda K: K.layers.GlobalMaxPooling1D()),
    "global_max_1d_channels_first": seq(
        S1, lambda K: K.layers.GlobalMaxPooling1D(data_format="channels_first")),
    "global_max_1d_keepdims": seq(S1, lambda K: K.layers.GlobalMaxPooling1D(keepdims=True)),
    "global_average_2d": seq(S2, lambda K: K.layers.GlobalAveragePooling2D()),
    "global_average_2d_channels_first_keepdims": seq(
        S2, lambda K: K.layers.GlobalAveragePooling2D(data_format="channels_first",
                                                      keepdims=True)),
    "global_max_2d": seq(S2, lambda K: K.layers.GlobalMaxPooling2D(keepdims=True)),
    "global_max_2d_channels_first": seq(
        S2, lambda K: K.layers.GlobalMaxPooling2D(data_format="channels_first")),
    # masks: the average honours the embedding's mask, through an RNN too ...
    "masked_average": text(lambda K: K.layers.GlobalAveragePooling1D()),
    "masked_rnn_average": text(lambda K: K.layers.LSTM(5, return_sequences=True),
                               lambda K: K.layers.GlobalAveragePooling1D()),
    # ... spatial dropout passes it on to the RNN ...
    "masked_spatial_dropout_rnn": text(lambda K: K.layers.SpatialDropout1D(0.4),
                                       lambda K: K.layers.GRU(5)),
    # ... and the max, padding, cropping and upsampling drop it (the RNN then runs unmasked)
    "masked_max_ignores_mask": text(lambda K: K.layers.GlobalMaxPooling1D()),
    "masked_padding_drops_mask": text(lambda K: K.layers.ZeroPadding1D(1),
                                      lambda K: K.layers.GRU(5)),
    "masked_cropping_drops_mask": text(lambda K: K.layers.Cropping1D((0, 2)),
                                       lambda K: K.layers.SimpleRNN(5)),
    "masked_up_sampling_drops_mask": text(lambda K: K.layers.UpSampling1D(2),
                                          lambda K: K.layers.GlobalAveragePooling1D()),
    "mixed": mixed,
}
# Keras's and rnnfast's dropout masks come from different generators: these
# cases are compared at inference only (the masks' law is checked below).
RANDOM_IN_TRAINING = {"spatial_dropout", "masked_spatial_dropout_rnn", "mixed"}


def inputs_for(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        x = rng.integers(1, 9, shape).astype("int32")
        x[1, shape[1] // 2:] = 0  # padding, masked
        x[2, -1] = 0
        x[3, :2] = 0  # leading padding too
        return x
    return rng.standard_normal(shape).astype("float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_match_keras(name):
    k, r = both(CASES[name])
    x = inputs_for(k)
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), **TOL)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("name", sorted(set(CASES) - RANDOM_IN_TRAINING))
def test_one_sgd_step_matches_keras(name):
    k, r = both(CASES[name])
    x, y = inputs_for(k), targets_for(k)
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.1))
    lk = float(k.train_on_batch(x, y))
    lr = float(r.train_on_batch(x, y))
    np.testing.assert_allclose(lr, lk, rtol=1e-5)
    for wk, wr, v in zip(k.get_weights(), r.get_weights(), r.weights):
        np.testing.assert_allclose(wr, wk, err_msg=v.path, **TOL)
    # and the step moved the first layer: the gradient went through the layers under test
    first = both(CASES[name])[0].get_weights()[0]
    assert not np.allclose(k.get_weights()[0], first)


def test_fully_masked_sample_is_nan_in_both():
    """GlobalAveragePooling1D divides 0 by 0 for a sample whose steps are all
    masked: Keras gives NaN, and so does rnnfast."""
    k, r = both(CASES["masked_average"])
    x = inputs_for(k)
    x[0] = 0
    pk, pr = k.predict(x, verbose=0), r.predict(x, verbose=0)
    assert np.all(np.isnan(pk[0])) and np.all(np.isnan(pr[0]))
    np.testing.assert_allclose(pr[1:], pk[1:], **TOL)


# ---- gradients against jax.grad -------------------------------------------------------

jax_only = pytest.mark.skipif(BACKEND != "jax", reason="compares with jax's autodiff")


def keras_vjp(layer, x, ct, mask=None):
    import jax
    import jax.numpy as jnp

    kwargs = {} if mask is None else {"mask": jnp.asarray(mask)}
    _, vjp = jax.vjp(lambda a: layer(a, **kwargs), jnp.asarray(x))
    return np.asarray(vjp(jnp.asarray(ct))[0])


def rnnfast_backward(layer, x, ct, mask=None):
    ctx = Context()
    layer.forward(ctx, x, training=True, mask=mask)
    return layer.backward(ctx, ct)


@jax_only
@pytest.mark.parametrize("cls, x, kw", [
    ("GlobalMaxPooling1D", [[[1, 5], [3, 5], [3, 5], [2, 4]], [[0, 0], [0, 0], [0, 0], [0, 0]]],
     {}),
    ("GlobalMaxPooling1D", [[[1, 2, 2, 0], [7, 7, 1, 7]]], {"data_format": "channels_first"}),
    ("GlobalMaxPooling2D", [[[[1, 7], [7, 7]], [[3, 0], [3, 3]]]],
     {"data_format": "channels_first", "keepdims": True}),
    ("GlobalMaxPooling2D", [[[[2, -1], [2, -1]], [[0, -1], [2, -3]]]], {}),
], ids=range(4))
def test_tied_maxima_share_the_gradient_as_jax(cls, x, kw):
    x = np.asarray(x, np.float32)
    k_layer, r_layer = getattr(keras_ref.layers, cls)(**kw), getattr(rnnfast.layers, cls)(**kw)
    y = np.asarray(k_layer(x))
    np.testing.assert_array_equal(r_layer(x), y)
    ct = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    want = keras_vjp(k_layer, x, ct)
    assert np.any((want != 0) & (np.abs(want) < np.abs(ct).max() - 1e-6))  # a real split
    np.testing.assert_allclose(rnnfast_backward(r_layer, x, ct), want, rtol=1e-6, atol=0)


@jax_only
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_masked_average_gradient_matches_jax(data_format):
    """Including a sample with every step masked: NaN output, zero gradient."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 4) if data_format == "channels_last" else (3, 4, 5))
    x = x.astype(np.float32)
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], bool)
    kw = dict(data_format=data_format, keepdims=True)
    k_layer = keras_ref.layers.GlobalAveragePooling1D(**kw)
    r_layer = rnnfast.layers.GlobalAveragePooling1D(**kw)
    y = np.asarray(k_layer(x, mask=mask))
    np.testing.assert_allclose(r_layer(x, mask=mask), y, **TOL)  # NaN where Keras has NaN
    ct = rng.standard_normal(y.shape).astype(np.float32)
    want = keras_vjp(k_layer, x, ct, mask)
    np.testing.assert_allclose(rnnfast_backward(r_layer, x, ct, mask), want, **TOL)
    assert np.all(want[1] == 0)


def test_spatial_dropout_masks_follow_keras_law():
    """Keras's and rnnfast's masks come from different generators; their law
    is the same: whole channels, kept ones scaled by 1/(1-rate)."""
    x = np.random.default_rng(2).standard_normal((64, 5, 32)).astype(np.float32) + 10
    for K in (keras_ref, rnnfast):
        y = np.asarray(K.layers.SpatialDropout1D(0.25, seed=4)(x, training=True))
        kept = y[:, 0] != 0
        every_step = np.broadcast_to(kept[:, None], y.shape)
        np.testing.assert_array_equal(y != 0, every_step)
        np.testing.assert_allclose(y[every_step], x[every_step] / np.float32(0.75), rtol=1e-6)
        sd = np.sqrt(0.25 * 0.75 / kept.size)  # 2048 draws
        assert abs((1 - kept.mean()) - 0.25) < 4.5 * sd, K.__name__
        np.testing.assert_array_equal(K.layers.SpatialDropout1D(0.25)(x), x)


# ---- configs, shapes, masks -----------------------------------------------------------

CONFIGS = [
    ("ZeroPadding1D", dict()),
    ("ZeroPadding1D", dict(padding=(3, 0), data_format="channels_first")),
    ("ZeroPadding1D", dict(padding=2)),
    ("Cropping1D", dict()),
    ("Cropping1D", dict(cropping=(0, 4))),
    ("Cropping1D", dict(cropping=3)),
    ("UpSampling1D", dict()),
    ("UpSampling1D", dict(size=5)),
    ("SpatialDropout1D", dict(rate=0.25)),
    ("SpatialDropout1D", dict(rate=0.5, seed=11)),
    ("GlobalAveragePooling1D", dict()),
    ("GlobalAveragePooling1D", dict(data_format="channels_first", keepdims=True)),
    ("GlobalMaxPooling1D", dict(keepdims=True)),
    ("GlobalAveragePooling2D", dict(data_format="channels_first")),
    ("GlobalMaxPooling2D", dict()),
    ("GlobalMaxPooling2D", dict(data_format="channels_first", keepdims=True)),
]


@pytest.mark.parametrize("cls, kw", CONFIGS, ids=[f"{c}-{sorted(k)}" for c, k in CONFIGS])
def test_configs_match_keras(cls, kw):
    check_config_matches_keras(cls, kw)


SHAPES = [
    ("ZeroPadding1D", dict(padding=(1, 2)), [(None, 5, 3), (2, None, 3)]),
    ("ZeroPadding1D", dict(data_format="channels_first"), [(None, 5, 3), (2, 3, None)]),
    ("Cropping1D", dict(cropping=(1, 2)), [(None, 5, 3), (2, None, 3)]),
    ("UpSampling1D", dict(size=3), [(None, 5, 3), (2, None, 3)]),
    ("SpatialDropout1D", dict(rate=0.5), [(None, 5, 3)]),
    ("GlobalAveragePooling1D", dict(), [(None, 5, 3), (2, None, 3)]),
    ("GlobalAveragePooling1D", dict(data_format="channels_first", keepdims=True),
     [(None, 5, 3), (2, 3, None)]),
    ("GlobalMaxPooling1D", dict(keepdims=True), [(None, 5, 3)]),
    ("GlobalAveragePooling2D", dict(keepdims=True), [(None, 4, 5, 3), (2, None, None, 3)]),
    ("GlobalMaxPooling2D", dict(data_format="channels_first"), [(None, 3, 4, 5)]),
    ("GlobalMaxPooling2D", dict(data_format="channels_first", keepdims=True),
     [(None, 3, None, 5)]),
]


@pytest.mark.parametrize("cls, kw, shapes", SHAPES, ids=range(len(SHAPES)))
def test_output_shapes_and_masks_match_keras(cls, kw, shapes):
    k_layer = getattr(keras_ref.layers, cls)(**kw)
    r_layer = getattr(rnnfast.layers, cls)(**kw)
    for shape in shapes:
        assert r_layer.compute_output_shape(shape) == tuple(k_layer.compute_output_shape(shape))
    assert r_layer.supports_masking == k_layer.supports_masking
    # what goes out with an incoming [batch, steps] mask: Keras's compute_mask when the
    # layer supports masking; otherwise Keras drops the mask
    shape = tuple(2 if d is None else d for d in shapes[0])
    x = np.ones(shape, np.float32)
    mask = np.ones(shape[:2], bool)
    out = k_layer.compute_mask(x, mask) if k_layer.supports_masking else None
    got = r_layer.compute_mask(x, mask)
    assert (got is None) == (out is None)
    if out is not None:
        np.testing.assert_array_equal(got, np.asarray(out))


# ---- files ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mixed", "masked_rnn_average", "global_max_2d_channels_first",
                                  "pad_crop_up", "masked_spatial_dropout_rnn"])
def test_keras_files_both_ways(name, tmp_path):
    k, r = both(CASES[name])
    x = inputs_for(k)
    want = k.predict(x, verbose=0)
    # rnnfast -> Keras: model.save("x.keras") writes Keras 3's format.
    r.compile(loss="mse", optimizer="adam")
    r.save(tmp_path / "r.keras")
    back = keras_ref.models.load_model(tmp_path / "r.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), want, **TOL)
    # Keras -> rnnfast: load_model reads Keras's .keras and legacy .h5 directly.
    k.compile(loss="mse", optimizer="adam")
    k.save(tmp_path / "k.keras")
    k.save(tmp_path / "k.h5")
    for f in ("k.keras", "k.h5"):
        loaded = rnnfast.models.load_model(tmp_path / f)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), want, err_msg=f, **TOL)
        for wk, wl in zip(k.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(wl, wk, err_msg=f)
