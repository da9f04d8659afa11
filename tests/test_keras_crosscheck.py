"""Cross-checks against Keras 3 itself, when it is installed (skipped otherwise).

Same architecture, same weights (get_weights/set_weights move between the two
unchanged): the predictions agree, configs load across, and one SGD step of
train_on_batch (Keras computes its gradients with its own autodiff, e.g. on the
JAX backend) moves the weights the same way.
"""

import os

import numpy as np
import pytest

keras_ref = pytest.importorskip("keras")
import rnnfast  # noqa: E402

# Keras's own deprecation and user warnings (NumPy 2 compatibility, ...) are not ours.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

TRAINABLE_BACKENDS = ("jax", "tensorflow", "torch")


def both(build):
    """The same model built by Keras and by rnnfast, with Keras's weights."""
    k = build(keras_ref)
    r = build(rnnfast)
    r.set_weights(k.get_weights())
    return k, r


MODELS = {
    "lstm_stack": lambda K: K.Sequential([K.Input(shape=(7, 3)),
                                          K.layers.LSTM(5, return_sequences=True),
                                          K.layers.LSTM(4), K.layers.Dense(2)]),
    "gru_reset_after": lambda K: K.Sequential([K.Input(shape=(7, 3)), K.layers.GRU(6),
                                               K.layers.Dense(1)]),
    "gru_reset_before_backwards": lambda K: K.Sequential([
        K.Input(shape=(7, 3)), K.layers.GRU(4, reset_after=False, go_backwards=True,
                                            return_sequences=True),
        K.layers.TimeDistributed(K.layers.Dense(2))]),
    "simple_rnn_relu": lambda K: K.Sequential([K.Input(shape=(7, 3)),
                                               K.layers.SimpleRNN(5, activation="relu"),
                                               K.layers.Dense(1, activation="sigmoid")]),
    "bidirectional_masked": lambda K: K.Sequential([
        K.Input(shape=(7,), dtype="int32"), K.layers.Embedding(12, 4, mask_zero=True),
        K.layers.Bidirectional(K.layers.LSTM(3, return_sequences=True)),
        K.layers.Bidirectional(K.layers.GRU(3), merge_mode="sum"), K.layers.Dense(1)]),
    "masking_layer": lambda K: K.Sequential([K.Input(shape=(7, 3)), K.layers.Masking(0.0),
                                             K.layers.LSTM(4), K.layers.Dense(1)]),
}


def data(name):
    rng = np.random.default_rng(0)
    if name == "bidirectional_masked":
        x = rng.integers(1, 12, (5, 7))
        x[1, 4:] = 0
        x[3, 2:] = 0
        return x.astype("int32")
    x = rng.standard_normal((5, 7, 3)).astype("float32")
    if name == "masking_layer":
        x[2, 5:] = 0.0
    return x


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictions_match_keras(name):
    k, r = both(MODELS[name])
    x = data(name)
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_configs_load_across(name):
    k, r = both(MODELS[name])
    for layer_k, layer_r in zip(k.layers, r.layers):
        again_r = type(layer_r).from_config(layer_k.get_config())
        assert again_r.get_config()["name"] == layer_k.name
        again_k = type(layer_k).from_config(layer_r.get_config())
        assert again_k.name == layer_r.name


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") not in TRAINABLE_BACKENDS,
                    reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_sgd_step_matches_keras(name):
    k, r = both(MODELS[name])
    x = data(name)
    y = np.random.default_rng(1).standard_normal((5,) + k.output_shape[1:]).astype("float32")
    if name == "simple_rnn_relu":
        y = (y > 0).astype("float32")
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.5))
    k.train_on_batch(x, y)
    r.train_on_batch(x, y)
    for wk, wr in zip(k.get_weights(), r.get_weights()):
        np.testing.assert_allclose(wr, wk, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("loss,kwargs", [("mean_squared_error", {}), ("huber", {}),
                                         ("binary_crossentropy", {}),
                                         ("categorical_crossentropy", {"from_logits": True})])
def test_losses_match_keras(loss, kwargs):
    rng = np.random.default_rng(0)
    y_true = rng.random((6, 4)).astype("float32")
    y_pred = rng.random((6, 4)).astype("float32")
    if loss == "categorical_crossentropy":
        y_true = np.eye(4, dtype="float32")[rng.integers(0, 4, 6)]
    ours = rnnfast.losses.get(loss).__class__(**kwargs)
    theirs = getattr(keras_ref.losses, type(ours).__name__)(**kwargs)
    np.testing.assert_allclose(ours(y_true, y_pred), float(theirs(y_true, y_pred)), rtol=1e-5)
