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


# ---- GRU with unbounded activations where it overflows -------------------------------------

UNBOUNDED_GRU = [("linear", "sigmoid"), ("relu", "sigmoid"), ("linear", "linear"),
                 ("tanh", "linear"), ("relu", "relu"), ("linear", "hard_sigmoid")]


def gru_overflow_case(activation, recurrent_activation, reset_after, seed, scale):
    """Inputs that overflow float32 inside the cell, and Keras's and rnnfast's
    GRU layers with the same weights."""
    rng = np.random.default_rng(seed)
    I, U = 3, 5
    x = (rng.standard_normal((3, 8, I)) * scale).astype("float32")
    weights = [rng.standard_normal((I, 3 * U)).astype("float32"),
               rng.standard_normal((U, 3 * U)).astype("float32"),
               rng.standard_normal((2, 3 * U) if reset_after else (3 * U,)).astype("float32")]
    layers = []
    for K in (keras_ref, rnnfast):
        layer = K.layers.GRU(U, activation=activation, recurrent_activation=recurrent_activation,
                             reset_after=reset_after, return_sequences=True)
        layer.build(x.shape)
        layer.set_weights(weights)
        layers.append(layer)
    return x, weights, layers


def assert_same_values(ours, theirs, what, summed=False):
    """NaN, +inf and -inf in the same places; the finite values close. A
    gradient (summed) adds up products over gates, rows and steps in another
    order than XLA: its rounding is relative to the largest values (terms of
    1e10 cancelling to 1e6 differed by 1e-3 relatively)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(ours), test(theirs), err_msg=f"{what}: {name} differ")
    finite = np.isfinite(theirs)
    scale = np.abs(theirs[finite]).max(initial=0.0) if summed else 0.0
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-5 * scale,
                               err_msg=what)


@pytest.fixture
def fresh_jax_caches():
    """Each of these tests builds a dozen Keras layers (and traces gradients)
    anew: on the JAX backend their compiled programs stayed in JAX's caches,
    20-45 MB per test, which the rest of the session carried (this file's peak
    went from 655 to 1465 MB)."""
    yield
    if keras_ref.backend.backend() == "jax":
        import jax

        jax.clear_caches()


@pytest.mark.usefixtures("fresh_jax_caches")
def test_gru_overflow_state_is_inf_as_in_keras():
    """z = 1/2 and hh = inf (a linear candidate overflowing): Keras's
    z * h + (1 - z) * hh gives inf; the algebraically equal hh + z * (h - hh)
    that rnnfast computed gave inf - inf = NaN."""
    x = np.full((1, 1, 1), 10.0, "float32")
    weights = [np.array([[0.0, 0.0, 1e38]], "float32"), np.zeros((1, 3), "float32"),
               np.zeros((2, 3), "float32")]
    out = []
    for K in (keras_ref, rnnfast):
        layer = K.layers.GRU(1, activation="linear", return_sequences=True)
        layer.build(x.shape)
        layer.set_weights(weights)
        out.append(np.asarray(layer(x)))
    assert np.isposinf(out[0]).all()  # Keras's value, which rnnfast must give
    assert_same_values(out[1], out[0], "GRU output")


@pytest.mark.usefixtures("fresh_jax_caches")
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("activation,recurrent_activation", UNBOUNDED_GRU)
def test_gru_overflow_outputs_match_keras(activation, recurrent_activation, reset_after):
    for seed in range(3):
        for scale in (1e10, 1e19, 1e30, 1e37):
            x, _, (k, r) = gru_overflow_case(activation, recurrent_activation, reset_after, seed,
                                             scale)
            assert_same_values(r(x), k(x), f"seed {seed}, inputs x{scale:g}")


@pytest.mark.usefixtures("fresh_jax_caches")
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "jax",
                    reason="the gradients come from jax.grad")
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("activation,recurrent_activation", UNBOUNDED_GRU)
def test_gru_overflow_gradients_match_keras(activation, recurrent_activation, reset_after):
    """The backward's non-finite values are autodiff's of Keras's form: d z is
    dh * h_prev - dh * hh (dh * (h_prev - hh) gave inf where autodiff's
    inf - inf gives NaN)."""
    import jax
    import jax.numpy as jnp

    for seed in range(3):
        for scale in (1e10, 1e19, 1e30):
            x, weights, (k, _) = gru_overflow_case(activation, recurrent_activation, reset_after,
                                                   seed, scale)
            dy = np.random.default_rng(seed + 10).standard_normal((3, 8, 5)).astype("float32")
            fixed = [v.value for v in k.non_trainable_variables]

            def loss(x, *w):
                y, _ = k.stateless_call(list(w), fixed, x)
                return jnp.sum(y * dy)

            theirs = jax.grad(loss, argnums=(0, 1, 2, 3))(x, *weights)
            kernel = rnnfast._core.GRUKernel(5, activation=activation,
                                             recurrent_activation=recurrent_activation,
                                             reset_after=reset_after)
            kernel.forward(x, *weights, training=True)
            dx, _, dk, dr, db = kernel.backward(weights[0], weights[1], doutputs=dy)
            for name, ours, t in zip(("dx", "dkernel", "drecurrent_kernel", "dbias"),
                                     (dx, dk, dr, db), theirs):
                assert_same_values(ours, t, f"{name}, seed {seed}, inputs x{scale:g}",
                                   summed=True)
