"""Conv1D, Conv2D, pooling, LayerNormalization and BatchNormalization against
Keras 3 itself (skipped when Keras is not installed): the same model built by
both with Keras's weights predicts the same, takes the same SGD step (Keras
differentiates with its own autodiff), BatchNormalization's moving statistics
follow the same path through fit, the layers' configs have Keras's keys and
values, and the models move between the two as .keras and legacy .h5 files."""

import os

import numpy as np
import pytest

keras_ref = pytest.importorskip("keras")
import rnnfast  # noqa: E402
from keras_harness import check_config_matches_keras, both, targets_for  # noqa: E402

# Keras's own deprecation and user warnings (NumPy 2 compatibility, ...) are not ours.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

TRAINABLE = os.environ.get("KERAS_BACKEND", "tensorflow") in ("jax", "tensorflow", "torch")
# float32 against float32: both sum a few dozen terms in different orders.
TOL = dict(rtol=1e-5, atol=1e-6)


def random_normalization_weights(k, seed=0):
    """Keras initialises gamma 1, beta 0, moving mean 0 and variance 1, which
    would hide a swapped or ignored weight: give them random values."""
    rng = np.random.default_rng(seed)
    for layer in k.layers:
        if "normalization" in layer.name:
            ws = [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
            for w, v in zip(ws, layer.weights):
                if "variance" in v.path:
                    w[...] = w ** 2 + 0.5
            layer.set_weights(ws)


def seq(shape, *make, head=2, seed=1):
    """Input -> the layers under test -> Flatten -> Dense(head)."""
    def build(K):
        K.utils.set_random_seed(seed)
        m = K.Sequential([K.Input(shape)] + [f(K) for f in make] +
                         [K.layers.Flatten(), K.layers.Dense(head)])
        random_normalization_weights(m) if K is keras_ref else None
        return m
    return build


def cnn(K):
    """A small image model with every layer: conv, batch norm, both poolings,
    a grouped strided conv, layer norm."""
    K.utils.set_random_seed(7)
    inp = K.Input((8, 8, 2), name="image")
    h = K.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = K.layers.BatchNormalization()(h)
    h = K.layers.MaxPooling2D()(h)
    h = K.layers.Conv2D(4, (2, 2), strides=2, groups=2, activation="tanh")(h)
    h = K.layers.AveragePooling2D(2, strides=1, padding="same")(h)
    h = K.layers.Flatten()(h)
    h = K.layers.LayerNormalization()(K.layers.Dense(6, activation="tanh")(h))
    m = K.Model(inp, K.layers.Dense(3, name="head")(h))
    if K is keras_ref:
        random_normalization_weights(m, seed=1)
    return m


def text_cnn(K):
    """1-D: causal dilated convolution, pooling, channels_first branch."""
    K.utils.set_random_seed(8)
    inp = K.Input((12, 3), name="series")
    h = K.layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")(inp)
    h = K.layers.MaxPooling1D(2, padding="same")(h)
    h = K.layers.Conv1D(4, 2, groups=2, data_format="channels_first")(h)
    h = K.layers.AveragePooling1D(2, data_format="channels_first")(h)
    h = K.layers.BatchNormalization(axis=1)(h)
    m = K.Model(inp, K.layers.Dense(2, name="head")(K.layers.Flatten()(h)))
    if K is keras_ref:
        random_normalization_weights(m, seed=2)
    return m


def masked_batch_norm(K):
    """Embedding(mask_zero) -> BatchNormalization: the padding steps take no
    part in the batch statistics (Keras's masked moments) -> masked LSTM."""
    K.utils.set_random_seed(9)
    m = K.Sequential([K.Input((6,), dtype="int32"), K.layers.Embedding(9, 3, mask_zero=True),
                      K.layers.BatchNormalization(momentum=0.7), K.layers.LSTM(4),
                      K.layers.Dense(2)])
    if K is keras_ref:
        random_normalization_weights(m, seed=3)
    return m


S1, S2 = (10, 4), (6, 7, 2)
CASES = {
    "conv1d_valid": seq(S1, lambda K: K.layers.Conv1D(6, 3)),
    "conv1d_same_strides": seq(S1, lambda K: K.layers.Conv1D(6, 3, strides=2, padding="same",
                                                             activation="relu")),
    "conv1d_causal_dilation_groups": seq(S1, lambda K: K.layers.Conv1D(
        6, 3, padding="causal", dilation_rate=3, groups=2, activation="tanh")),
    "conv1d_channels_first_no_bias": seq(S1, lambda K: K.layers.Conv1D(
        3, 2, strides=2, use_bias=False, data_format="channels_first")),
    "conv2d_valid": seq(S2, lambda K: K.layers.Conv2D(4, (3, 2))),
    "conv2d_same_strides_groups": seq(S2, lambda K: K.layers.Conv2D(
        4, 3, strides=(2, 1), padding="same", groups=2, activation="sigmoid")),
    "conv2d_dilation": seq(S2, lambda K: K.layers.Conv2D(3, (2, 2), dilation_rate=(2, 3))),
    "conv2d_channels_first": seq((2, 6, 7), lambda K: K.layers.Conv2D(
        4, 3, padding="same", data_format="channels_first")),
    "max_pooling1d": seq(S1, lambda K: K.layers.Conv1D(4, 2),
                         lambda K: K.layers.MaxPooling1D(3, strides=2)),
    "average_pooling1d_same": seq(S1, lambda K: K.layers.Conv1D(4, 2),
                                  lambda K: K.layers.AveragePooling1D(3, padding="same")),
    "max_pooling1d_channels_first": seq(S1, lambda K: K.layers.Conv1D(4, 2),
                                        lambda K: K.layers.MaxPooling1D(
                                            2, padding="same", data_format="channels_first")),
    "max_pooling2d_same": seq(S2, lambda K: K.layers.Conv2D(3, 2),
                              lambda K: K.layers.MaxPooling2D((2, 3), padding="same")),
    "average_pooling2d": seq(S2, lambda K: K.layers.Conv2D(3, 2),
                             lambda K: K.layers.AveragePooling2D((2, 2), strides=1)),
    "average_pooling2d_channels_first_same": seq(
        (2, 6, 7), lambda K: K.layers.Conv2D(3, 2, data_format="channels_first"),
        lambda K: K.layers.AveragePooling2D(3, strides=2, padding="same",
                                            data_format="channels_first")),
    "layer_normalization": seq(S1, lambda K: K.layers.Dense(5),
                               lambda K: K.layers.LayerNormalization()),
    "layer_normalization_axes": seq(S2, lambda K: K.layers.Conv2D(3, 2),
                                    lambda K: K.layers.LayerNormalization(axis=[1, 2],
                                                                          epsilon=1e-2)),
    "layer_normalization_no_center": seq(S1, lambda K: K.layers.Conv1D(3, 2),
                                         lambda K: K.layers.LayerNormalization(center=False)),
    "batch_normalization": seq(S1, lambda K: K.layers.Conv1D(4, 3),
                               lambda K: K.layers.BatchNormalization(momentum=0.8)),
    "batch_normalization_axis1_no_scale": seq(S2, lambda K: K.layers.Conv2D(3, 2),
                                              lambda K: K.layers.BatchNormalization(
                                                  axis=1, scale=False, epsilon=0.01)),
    "cnn": cnn,
    "text_cnn": text_cnn,
    "batch_normalization_masked": masked_batch_norm,
}


def inputs_for(model, n=4, seed=0):
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    if "int" in str(model.inputs[0].dtype):
        x = rng.integers(1, 9, shape).astype("int32")
        for i in range(n):
            x[i, (i * 2 + 1) % shape[1] + 1:] = 0  # padding of various lengths, masked
        return x
    return rng.standard_normal(shape).astype("float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_match_keras(name):
    k, r = both(CASES[name])
    x = inputs_for(k)
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), **TOL)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_sgd_step_matches_keras(name):
    """train_on_batch: batch statistics in BatchNormalization (and its moving
    statistics moved once), gradients through every layer, the same step."""
    k, r = both(CASES[name])
    x, y = inputs_for(k), targets_for(k)
    before = k.get_weights()
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.1))
    lk = float(k.train_on_batch(x, y))
    lr = float(r.train_on_batch(x, y))
    np.testing.assert_allclose(lr, lk, rtol=1e-5)
    for wk, wr, w0, v in zip(k.get_weights(), r.get_weights(), before, r.weights):
        np.testing.assert_allclose(wr, wk, err_msg=v.path, **TOL)
        # every weight moved (moving statistics too), so a skipped update cannot
        # pass; not a bias, whose gradient is 0 when a normalization follows.
        assert v.name == "bias" or not np.allclose(wk, w0), v.path


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("name", ["batch_normalization", "cnn", "text_cnn",
                                  "batch_normalization_masked"])
def test_fit_moves_batch_statistics_as_keras(name):
    """Three batches per epoch, two epochs, no shuffling: the moving mean and
    variance (updated from each batch's mean and biased variance) and every
    weight after fit, and the inference predictions with them."""
    k, r = both(CASES[name])
    x, y = inputs_for(k, n=12, seed=3), targets_for(k, n=12, seed=4)
    hist = {}
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.05))
        hist[K] = m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(hist[rnnfast]["loss"], hist[keras_ref]["loss"], rtol=1e-5)
    for wk, wr, v in zip(k.get_weights(), r.get_weights(), r.weights):
        np.testing.assert_allclose(wr, wk, err_msg=v.path, **TOL)
    moving = [v for v in r.weights if "moving" in v.path]
    assert moving and all(not v.trainable for v in moving)
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), **TOL)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
def test_frozen_batch_normalization_matches_keras():
    """trainable=False: Keras normalizes with the moving statistics even in
    fit, and leaves them (and gamma, beta) alone."""
    k, r = both(CASES["batch_normalization"])
    for m in (k, r):
        m.layers[1].trainable = False
    x, y = inputs_for(k), targets_for(k)
    before = k.layers[1].get_weights()
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.1))
    np.testing.assert_allclose(float(r.train_on_batch(x, y)), float(k.train_on_batch(x, y)),
                               rtol=1e-5)
    for wk, wr, v in zip(k.get_weights(), r.get_weights(), r.weights):
        np.testing.assert_allclose(wr, wk, err_msg=v.path, **TOL)
    for a, b in zip(r.layers[1].get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["cnn", "text_cnn", "batch_normalization_axis1_no_scale",
                                  "layer_normalization_axes", "conv1d_channels_first_no_bias"])
def test_keras_files_both_ways(name, tmp_path):
    k, r = both(CASES[name])
    x = inputs_for(k)
    want = k.predict(x, verbose=0)
    # rnnfast -> Keras: model.save("x.keras") writes Keras 3's format.
    r.compile(loss="mse", optimizer="adam")
    r.save(tmp_path / "r.keras")
    back = keras_ref.models.load_model(tmp_path / "r.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), want, **TOL)
    for wk, wb in zip(k.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(wb, wk)
    # Keras -> rnnfast: load_model reads Keras's .keras and legacy .h5 directly.
    k.compile(loss="mse", optimizer="adam")
    k.save(tmp_path / "k.keras")
    k.save(tmp_path / "k.h5")
    for f in ("k.keras", "k.h5"):
        loaded = rnnfast.models.load_model(tmp_path / f)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), want, err_msg=f, **TOL)
        for wk, wl in zip(k.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(wl, wk, err_msg=f)


# ---- configs -------------------------------------------------------------------------

CONFIGS = [
    ("Conv1D", dict(filters=4, kernel_size=3)),
    ("Conv1D", dict(filters=4, kernel_size=3, strides=2, padding="causal", groups=2,
                    activation="relu", use_bias=False, data_format="channels_first")),
    ("Conv2D", dict(filters=6, kernel_size=(3, 2))),
    ("Conv2D", dict(filters=6, kernel_size=3, dilation_rate=(2, 1), padding="same", groups=3,
                    kernel_initializer="he_normal", bias_initializer="ones")),
    ("MaxPooling1D", dict()),
    ("MaxPooling1D", dict(pool_size=3, strides=1, padding="same")),
    ("MaxPooling2D", dict(pool_size=(2, 3), data_format="channels_first")),
    ("AveragePooling1D", dict(pool_size=2, data_format="channels_first")),
    ("AveragePooling2D", dict(pool_size=(3, 3), strides=(2, 1), padding="same")),
    ("LayerNormalization", dict()),
    ("LayerNormalization", dict(axis=[1, 2], epsilon=1e-5, center=False)),
    ("BatchNormalization", dict()),
    ("BatchNormalization", dict(axis=1, momentum=0.9, epsilon=1e-4, scale=False)),
]


@pytest.mark.parametrize("cls, kw", CONFIGS, ids=[f"{c}-{sorted(k)}" for c, k in CONFIGS])
def test_configs_match_keras(cls, kw):
    check_config_matches_keras(cls, kw)
