"""Sequential models: the seed programs run unchanged with `import rnnfast as
keras` and learn; whole-model gradients match finite differences; masking,
Bidirectional and TimeDistributed match running the pieces by hand; fit,
evaluate, predict and their options behave as in Keras."""

import json

import numpy as np
import pytest

import rnnfast as keras
from layer_harness import numeric_gradient
from rnnfast import layers
from rnnfast.layers import Context


def generate_time_series(batch_size, n_steps, rng):
    freq1, freq2, offsets1, offsets2 = rng.random((4, batch_size, 1))
    time = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.random((batch_size, n_steps)) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(42)
    s = generate_time_series(10000, 51, rng)
    return {"X_train": s[:7000, :50], "y_train": s[:7000, -1], "X_valid": s[7000:9000, :50],
            "y_valid": s[7000:9000, -1], "X_test": s[9000:, :50], "y_test": s[9000:, -1]}


def last_time_step_mse(Y_true, Y_pred):
    return keras.metrics.mean_squared_error(Y_true[:, -1], Y_pred[:, -1])


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_seed_program_learns(series, cell):
    """The textbook's deep RNN, verbatim but for the cell, beats the naive forecast."""
    keras.utils.set_random_seed(7)
    Cell = getattr(keras.layers, cell)
    model = keras.models.Sequential([
        Cell(20, return_sequences=True, input_shape=[None, 1]),
        Cell(20),
        keras.layers.Dense(1)
    ])
    model.compile(loss="mse", optimizer="adam")
    history = model.fit(series["X_train"], series["y_train"], epochs=3, verbose=0,
                        validation_data=(series["X_valid"], series["y_valid"]))
    test_mse = model.evaluate(series["X_test"], series["y_test"], verbose=0)
    naive = float(np.mean((series["X_test"][:, -1] - series["y_test"]) ** 2))
    assert isinstance(test_mse, float)
    assert test_mse < 0.5 * naive, (test_mse, naive)
    assert sorted(history.history) == ["loss", "val_loss"] and len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_seed_programs_linear_and_add_form(series):
    keras.utils.set_random_seed(3)
    linear = keras.models.Sequential([
        keras.layers.Flatten(input_shape=[50, 1]),
        keras.layers.Dense(1)
    ])
    linear.compile(loss="mse", optimizer="adam")
    linear.fit(series["X_train"], series["y_train"], epochs=5, verbose=0)
    naive = float(np.mean((series["X_test"][:, -1] - series["y_test"]) ** 2))
    assert linear.evaluate(series["X_test"], series["y_test"], verbose=0) < naive

    model = keras.models.Sequential()
    model.add(keras.layers.SimpleRNN(1, input_shape=[None, 1]))
    model.compile(loss="mse", optimizer="adam")
    model.fit(series["X_train"][:512], series["y_train"][:512], epochs=1, verbose=0)
    assert model.predict(series["X_test"][:10], verbose=0).shape == (10, 1)


def test_seq2seq_program_with_user_metric(series):
    """The textbook's sequence-to-sequence forecaster with its NumPy metric."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    s = generate_time_series(1000, 50 + 10, rng)
    X = s[:, :50]
    Y = np.empty((1000, 50, 10), np.float32)
    for step_ahead in range(1, 10 + 1):
        Y[..., step_ahead - 1] = s[..., step_ahead:step_ahead + 50, 0]
    model = keras.models.Sequential([
        keras.layers.GRU(20, return_sequences=True, input_shape=[None, 1]),
        keras.layers.GRU(20, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(10))
    ])
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  metrics=[last_time_step_mse])
    history = model.fit(X[:800], Y[:800], epochs=2, verbose=0, validation_data=(X[800:], Y[800:]))
    assert set(history.history) == {"loss", "last_time_step_mse", "val_loss", "val_last_time_step_mse"}
    loss, metric = model.evaluate(X[800:], Y[800:], verbose=0)
    pred = model.predict(X[800:], verbose=0)
    np.testing.assert_allclose(metric, np.mean((pred[:, -1] - Y[800:, -1]) ** 2), rtol=1e-4)
    np.testing.assert_allclose(loss, np.mean((pred - Y[800:]) ** 2), rtol=1e-4)


def numeric_model_grads(model, x, y):
    return [numeric_gradient(lambda: model.compute_loss(x, y), v.value)
            for v in model.trainable_weights]


def test_whole_model_gradients_match_finite_differences():
    """Embedding(mask_zero) -> Bidirectional(LSTM) -> GRU -> Dense(sigmoid), binary
    crossentropy, with weight and activity regularizers, in float64."""
    keras.backend.set_floatx("float64")
    try:
        keras.utils.set_random_seed(5)
        model = keras.Sequential([
            layers.Embedding(9, 3, mask_zero=True),
            layers.Bidirectional(layers.LSTM(3, return_sequences=True, kernel_regularizer="l2")),
            layers.GRU(2, reset_after=False, activity_regularizer=keras.regularizers.L1(0.01)),
            layers.Dense(1, activation="sigmoid", bias_regularizer=keras.regularizers.L2(0.1)),
        ])
        model.compile(loss="binary_crossentropy", optimizer="sgd")
        x = np.array([[1, 4, 2, 0, 0], [3, 3, 8, 7, 1], [5, 0, 0, 0, 0]])
        y = np.array([[1.0], [0.0], [1.0]])
        _, _, pairs = model.compute_loss_and_gradients(x, y)
        assert all(v.dtype == np.float64 for v, _ in pairs)
        for (v, g), num in zip(pairs, numeric_model_grads(model, x, y)):
            np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8, err_msg=v.path)
    finally:
        keras.backend.set_floatx("float32")


@pytest.mark.parametrize("first", ["LSTM", "GRU", "SimpleRNN"])
def test_first_recurrent_layer_gradients_without_input_gradient(first):
    """The training step asks the first layer for no dL/dx (compute_dx=False in the
    kernel); its weight gradients must still match finite differences, and asking
    for the input gradient gives the same weight gradients plus dL/dx."""
    keras.backend.set_floatx("float64")
    try:
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input(shape=(6, 3)),
            getattr(layers, first)(5, return_sequences=True),
            layers.LSTM(4),
            layers.Dense(2),
        ])
        model.compile(loss="mse", optimizer="sgd")
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((4, 6, 3)), rng.standard_normal((4, 2))
        _, _, pairs = model.compute_loss_and_gradients(x, y)
        for (v, g), num in zip(pairs, numeric_model_grads(model, x, y)):
            np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8, err_msg=v.path)
        saved = [g.copy() for _, g in pairs]
        for need, expect_dx in ((False, False), (True, True)):
            ctx = Context()
            model.zero_grad()
            pred = model.forward(ctx, x, training=True)
            dx = model.backward(ctx, 2 * (pred - y) / y.size, need_input_grad=need)
            assert (dx is not None) == expect_dx
            if expect_dx:
                assert dx.shape == x.shape
            for v, g in zip(model.trainable_weights, saved):
                np.testing.assert_allclose(v.grad, g, rtol=1e-12, atol=1e-15, err_msg=v.path)
    finally:
        keras.backend.set_floatx("float32")


def test_sequence_output_loss_is_masked():
    """A padded, masked sequence output contributes no loss at masked steps (Keras 3)."""
    keras.backend.set_floatx("float64")
    try:
        model = keras.Sequential([layers.Masking(0.0, input_shape=(4, 2)),
                                  layers.SimpleRNN(3, return_sequences=True),
                                  layers.TimeDistributed(layers.Dense(1))])
        model.compile(loss="mse", optimizer="sgd")
        x = np.random.default_rng(0).standard_normal((2, 4, 2))
        x[1, 2:] = 0.0
        y = np.random.default_rng(1).standard_normal((2, 4, 1))
        pred = model.predict(x, verbose=0)
        valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
        expected = np.mean(((pred - y)[..., 0])[valid] ** 2)
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-10)
        _, _, pairs = model.compute_loss_and_gradients(x, y)
        for (v, g), num in zip(pairs, numeric_model_grads(model, x, y)):
            np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9, err_msg=v.path)
    finally:
        keras.backend.set_floatx("float32")


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_variable_length_batch_equals_each_sequence_alone(cell, padding):
    keras.utils.set_random_seed(11)
    seqs = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5]]
    x = keras.utils.pad_sequences(seqs, padding=padding)
    model = keras.Sequential([layers.Embedding(10, 4, mask_zero=True),
                              getattr(layers, cell)(6)])
    batch = model.predict(x, verbose=0)
    for i, s in enumerate(seqs):
        alone = model.predict(np.array([s]), verbose=0)
        np.testing.assert_allclose(batch[i], alone[0], rtol=1e-5, atol=1e-6)


def test_bidirectional_equals_two_layers_by_hand():
    keras.utils.set_random_seed(2)
    x = np.random.default_rng(0).standard_normal((3, 6, 4)).astype(np.float32)
    bi = layers.Bidirectional(layers.LSTM(5, return_sequences=True))
    out = bi(x)
    fwd = layers.LSTM(5, return_sequences=True)
    bwd = layers.LSTM(5, return_sequences=True, go_backwards=True)
    fwd(x), bwd(x)
    w = bi.get_weights()
    fwd.set_weights(w[:3])
    bwd.set_weights(w[3:])
    expected = np.concatenate([fwd(x), bwd(x)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    for mode, fn in (("sum", np.add), ("mul", np.multiply), ("ave", lambda a, b: (a + b) / 2)):
        b2 = layers.Bidirectional(layers.LSTM(5, return_sequences=True), merge_mode=mode)
        b2(x)
        b2.set_weights(w)
        np.testing.assert_allclose(b2(x), fn(fwd(x), bwd(x)[:, ::-1]), rtol=1e-5, atol=1e-6)
    # With a mask, each direction zeroes its masked outputs (Keras's
    # zero_output_for_mask), the backward one in its own (reversed) order.
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    fwd_z = layers.LSTM(5, return_sequences=True, zero_output_for_mask=True)
    bwd_z = layers.LSTM(5, return_sequences=True, go_backwards=True, zero_output_for_mask=True)
    fwd_z(x), bwd_z(x)
    fwd_z.set_weights(w[:3])
    bwd_z.set_weights(w[3:])
    by_hand = np.concatenate([fwd_z(x, mask=mask), bwd_z(x, mask=mask)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(bi(x, mask=mask), by_hand, rtol=1e-6)
    assert np.all(by_hand[~mask] == 0) and np.all(np.abs(by_hand[mask]).sum(-1) > 0)
    back_alone = layers.LSTM(5, return_sequences=True, go_backwards=True)
    back_alone(x)
    back_alone.set_weights(w[3:])
    carried = back_alone(x, mask=mask)[:, ::-1]  # without zeroing: the carried state
    np.testing.assert_allclose(by_hand[1, :4, 5:], carried[1, :4], rtol=1e-6)
    none = layers.Bidirectional(layers.LSTM(5), merge_mode=None)
    none(x)
    none.set_weights(w)
    f_last, b_last = none(x)
    np.testing.assert_allclose(f_last, fwd(x)[:, -1], rtol=1e-6)


def test_time_distributed_equals_dense_per_step():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    td = layers.TimeDistributed(layers.Dense(4, activation="relu"))
    y = td(x)
    dense = td.layer
    for t in range(5):
        np.testing.assert_allclose(y[:, t], dense(x[:, t]), rtol=1e-6)


def test_fit_options_and_history(series):
    keras.utils.set_random_seed(1)
    x, y = series["X_train"][:600], series["y_train"][:600]
    model = keras.Sequential([layers.GRU(8, input_shape=(50, 1)), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    h = model.fit(x, y, batch_size=64, epochs=3, validation_split=0.25, verbose=0,
                  sample_weight=np.ones(600), initial_epoch=1)
    assert h.epoch == [1, 2]
    assert set(h.history) == {"loss", "mae", "val_loss", "val_mae"}
    # validation_split takes the last 25%, before shuffling, as Keras does.
    val = model.evaluate(x[450:], y[450:], verbose=0, return_dict=True)
    np.testing.assert_allclose(val["loss"], h.history["val_loss"][-1], rtol=1e-5)
    assert model.metrics_names == ["loss", "mae"]


def test_early_stopping_and_callbacks(series):
    keras.utils.set_random_seed(1)
    x, y = series["X_train"][:256], series["y_train"][:256]
    model = keras.Sequential([layers.SimpleRNN(4, input_shape=(50, 1)), layers.Dense(1)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.0))
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    h = model.fit(x, y, epochs=20, verbose=0, validation_data=(x, y),
                  callbacks=[keras.callbacks.EarlyStopping(patience=2), cb])
    assert len(h.epoch) == 3 and seen == [0, 1, 2]  # no improvement with lr 0


def test_verbose_output(series, capsys):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([layers.LSTM(2, input_shape=(50, 1)), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    model.fit(series["X_train"][:64], series["y_train"][:64], epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "2/2 - " in out and "loss: " in out


def test_evaluate_predict_and_batch_methods(series):
    keras.utils.set_random_seed(4)
    x, y = series["X_test"][:100], series["y_test"][:100]
    model = keras.Sequential([layers.LSTM(3, input_shape=(50, 1)), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam", metrics=["mae", "mse"])
    pred = model.predict(x, batch_size=7, verbose=0)
    # float32 with other batch sizes: GEMM blocking differs, so rounding does too.
    np.testing.assert_allclose(pred, model(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred[:5], model.predict_on_batch(x[:5]), rtol=1e-5, atol=1e-6)
    loss, mae, mse = model.evaluate(x, y, batch_size=13, verbose=0)
    np.testing.assert_allclose(loss, np.mean((pred - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(mae, np.mean(np.abs(pred - y)), rtol=1e-5)
    np.testing.assert_allclose(mse, loss, rtol=1e-6)
    d = model.test_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(d["loss"], loss, rtol=1e-5)
    before = model.get_weights()
    model.train_on_batch(x[:32], y[:32])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_sgd_step_applies_the_gradient():
    keras.backend.set_floatx("float64")
    try:
        model = keras.Sequential([layers.GRU(3, input_shape=(4, 2)), layers.Dense(1)])
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((5, 4, 2)), rng.standard_normal((5, 1))
        _, _, pairs = model.compute_loss_and_gradients(x, y)
        lr = float(np.float32(0.1))  # Keras keeps the learning rate in float32
        expected = [v.value - lr * g for v, g in pairs]
        model.train_on_batch(x, y)
        for w, e in zip(model.get_weights(), expected):
            np.testing.assert_allclose(w, e, rtol=1e-12)
    finally:
        keras.backend.set_floatx("float32")


def test_classification_accuracy_resolution():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (64, 7))
    y = (x.sum(axis=1) > 70).astype(np.float32)
    model = keras.Sequential([layers.Embedding(20, 4), layers.LSTM(4),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(x, y, epochs=1, verbose=0)
    pred = model.predict(x, verbose=0)
    acc = model.evaluate(x, y, verbose=0)[1]
    np.testing.assert_allclose(acc, np.mean((pred[:, 0] > 0.5) == y), rtol=1e-6)
    assert "accuracy" in h.history
    multi = keras.Sequential([layers.Embedding(20, 4), layers.GRU(4), layers.Dense(3, activation="softmax")])
    multi.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["acc"])
    labels = x[:, 0] % 3
    multi.fit(x, labels, epochs=1, verbose=0)
    acc = multi.evaluate(x, labels, verbose=0, return_dict=True)["acc"]
    np.testing.assert_allclose(acc, np.mean(multi.predict(x, verbose=0).argmax(-1) == labels), rtol=1e-6)


def test_summary(capsys):
    model = keras.models.Sequential([
        keras.layers.LSTM(20, return_sequences=True, input_shape=[None, 1]),
        keras.layers.LSTM(20),
        keras.layers.Dense(1)
    ])
    model.summary()
    out = capsys.readouterr().out
    for text in ("lstm (LSTM)", "(None, None, 20)", "1,760", "lstm_1 (LSTM)", "(None, 20)", "3,280",
                 "dense (Dense)", "(None, 1)", "21", "Total params: 5,061 (19.77 KB)",
                 "Trainable params: 5,061", "Non-trainable params: 0"):
        assert text in out, text


@pytest.fixture(autouse=True)
def fresh_names():
    keras.backend.clear_session()
    yield


def test_config_and_json_round_trip(series):
    model = keras.Sequential([layers.Input(shape=(None, 1)),
                              layers.Bidirectional(layers.GRU(4, return_sequences=True)),
                              layers.LSTM(3, dropout=0.1), layers.Dense(2, activation="tanh")])
    clone = keras.models.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = series["X_test"][:8]
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    again = keras.models.model_from_json(model.to_json())
    assert json.loads(again.to_json())["config"]["layers"] == json.loads(model.to_json())["config"]["layers"]
    assert [l.name for l in again.layers] == [l.name for l in model.layers]


def test_reproducible_with_seed(series):
    def run():
        keras.utils.set_random_seed(123)
        model = keras.Sequential([layers.LSTM(4, dropout=0.2, recurrent_dropout=0.2, input_shape=(50, 1)),
                                  layers.Dropout(0.3), layers.Dense(1)])
        model.compile(loss="mse", optimizer="adam")
        model.fit(series["X_train"][:200], series["y_train"][:200], epochs=2, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_stateful_model_and_reset_states():
    model = keras.Sequential([layers.GRU(3, stateful=True, batch_input_shape=(2, 4, 1)), layers.Dense(1)])
    x = np.random.default_rng(0).random((2, 4, 1)).astype(np.float32)
    first = model.predict(x, verbose=0, batch_size=2)
    second = model.predict(x, verbose=0, batch_size=2)
    assert not np.allclose(first, second)
    model.reset_states()
    np.testing.assert_allclose(model.predict(x, verbose=0, batch_size=2), first, rtol=1e-6)


def test_one_batch_predict_matches_the_batched_loop():
    # predict(verbose=0) of at most one batch, without callbacks, skips the
    # adapter and callback machinery: the same values as the general loop
    # (callbacks=[] takes it), fresh arrays, the same errors.
    rng = np.random.default_rng(7)
    x = rng.random((3, 5, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((5, 3)), layers.LSTM(4), layers.Dense(2)])
    fast = model.predict(x, verbose=0)
    ref = model.predict(x, verbose=0, callbacks=[])
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(fast, model.predict(x, verbose=0, batch_size=3, callbacks=[]))
    model.predict(2 * x, verbose=0)  # the caller's array, not a buffer the next call reuses
    np.testing.assert_array_equal(fast, ref)
    inp_a, inp_b = keras.Input((5, 3), name="a"), keras.Input((2,), name="b")
    h = layers.GRU(4)(inp_a)
    two = keras.Model([inp_a, inp_b], {"p": layers.Dense(1)(h),
                                       "q": layers.Concatenate()([h, inp_b])})
    xb = rng.random((3, 2)).astype(np.float32)
    got, ref = two.predict([x, xb], verbose=0), two.predict([x, xb], verbose=0, callbacks=[])
    assert sorted(got) == ["p", "q"]
    for k in got:
        np.testing.assert_array_equal(got[k], ref[k])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        model.predict(x, verbose=0, batch_size=-1)
    with pytest.raises(ValueError, match="got no data"):
        model.predict(x[:0], verbose=0)
    with pytest.raises(ValueError, match=r"shape \(None, 5, 3\)"):
        model.predict(x[:, :, :2], verbose=0)
    # A stateful model streamed one step per call, against a copy run
    # through the general loop.
    def stream():
        return keras.Sequential([keras.Input(batch_shape=(1, None, 3)),
                                 layers.GRU(4, stateful=True), layers.Dense(1)])
    s1, s2 = stream(), stream()
    s2.set_weights(s1.get_weights())
    outs = []
    for t in range(5):
        step = x[:1, t:t + 1]
        outs.append(s1.predict(step, verbose=0))
        np.testing.assert_array_equal(outs[-1], s2.predict(step, verbose=0, callbacks=[]))
    assert not np.allclose(outs[0], outs[-1])  # the state was carried


def test_structure_and_errors():
    model = keras.Sequential(name="m")
    model.add(layers.Dense(3, input_shape=(4,)))
    model.add(layers.Dense(2))
    assert [l.name for l in model.layers] == ["dense", "dense_1"]
    assert model.output_shape == (None, 2) and model.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    model.pop()
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="unique names"):
        model.add(layers.Dense(2, name="dense"))
    with pytest.raises(TypeError, match="Only instances of `keras.Layer`"):
        model.add("dense")
    with pytest.raises(ValueError, match=r"You must call `compile\(\)`"):
        model.fit(np.zeros((2, 4)), np.zeros((2, 3)), verbose=0)
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        model.fit(np.zeros((3, 4)), np.zeros((2, 3)), verbose=0)
    with pytest.raises(ValueError, match="loss"):
        keras.Sequential([layers.Dense(1)]).compile(loss="not_a_loss")
    bad = keras.Sequential([layers.LSTM(2, return_state=True, input_shape=(3, 1))]) \
        if False else keras.Sequential([layers.LSTM(2, return_state=True)])
    with pytest.raises(ValueError, match="several outputs"):
        bad.predict(np.zeros((1, 3, 1)), verbose=0)


def test_save_and_load_weights(tmp_path):
    model = keras.Sequential([layers.LSTM(3, input_shape=(5, 2)), layers.Dense(1)])
    path = tmp_path / "w.npz"
    model.save_weights(path)
    other = keras.Sequential([layers.LSTM(3, input_shape=(5, 2)), layers.Dense(1)])
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left behind


def test_train_on_batch_reports_this_batch_not_a_running_mean():
    """Keras 3 resets the metrics in train_on_batch: each call returns the loss
    and metrics of its own batch (computed before that step's update)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype("float32")
    y = rng.standard_normal((16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    for _ in range(3):  # predict_on_batch touches no metric
        pred = model.predict_on_batch(x)
        mse, mae = float(np.mean((pred - y) ** 2)), float(np.mean(np.abs(pred - y)))
        loss, mae_logged = model.train_on_batch(x, y)
        np.testing.assert_allclose([loss, mae_logged], [mse, mae], rtol=1e-5)
