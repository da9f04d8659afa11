"""Functional models: keras.Model(inputs, outputs) on the one graph engine.
Whole-model gradients against float64 finite differences for the shapes of
graph Keras users build (encoder-decoder with states, shared layers, residual
stacks, several inputs and outputs, nested models, masks), training with
several outputs, structure queries, summaries, configs, and clear errors."""

import json

import numpy as np
import pytest

import rnnfast as keras
from layer_harness import numeric_gradient
from rnnfast import layers


@pytest.fixture(autouse=True)
def float64_and_fresh_names():
    keras.backend.clear_session()
    keras.backend.set_floatx("float64")
    keras.utils.set_random_seed(3)
    yield
    keras.backend.set_floatx("float32")


def check_model_gradients(model, x, y, rtol=1e-5, atol=1e-8):
    """compute_loss_and_gradients against central differences of compute_loss."""
    _, _, pairs = model.compute_loss_and_gradients(model.prepare_inputs(x), y)
    got = [(v, g.copy()) for v, g in pairs]
    assert got, "the model has no trainable weights"
    for v, g in got:
        num = numeric_gradient(lambda: model.compute_loss(x, y), v.value)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=v.path)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def encoder_decoder(cell="LSTM"):
    Cell = getattr(layers, cell)
    enc_in = keras.Input((5, 3), name="enc")
    dec_in = keras.Input((4, 2), name="dec")
    enc_out = Cell(6, return_state=True, name="encoder")(enc_in)
    states = enc_out[1:]
    dec_seq = Cell(6, return_sequences=True, name="decoder")(dec_in, initial_state=states)
    out = layers.TimeDistributed(layers.Dense(3), name="head")(dec_seq)
    return keras.Model([enc_in, dec_in], out, name="seq2seq")


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_encoder_decoder_states_gradients(cell):
    model = encoder_decoder(cell)
    model.compile(loss="mse", optimizer="sgd")
    x = [rand(2, 5, 3), rand(2, 4, 2, seed=1)]
    y = rand(2, 4, 3, seed=2)
    check_model_gradients(model, x, y)
    # The states wire the encoder into the decoder: its weights get a gradient.
    _, _, pairs = model.compute_loss_and_gradients(model.prepare_inputs(x), y)
    enc = {v.path: g for v, g in pairs if v.path.startswith("encoder")}
    assert enc and all(np.abs(g).max() > 0 for g in enc.values())


def test_encoder_decoder_matches_running_the_pieces():
    model = encoder_decoder("LSTM")
    x = [rand(2, 5, 3), rand(2, 4, 2, seed=1)]
    enc, dec, head = (model.get_layer(n) for n in ("encoder", "decoder", "head"))
    _, h, c = enc(x[0])
    want = head(dec(x[1], initial_state=[h, c]))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-12)
    np.testing.assert_allclose(model(x), want, rtol=1e-12)


def test_shared_layer_sums_gradients():
    """A siamese model: one LSTM on two inputs (one set of weights)."""
    a, b = keras.Input((4, 3)), keras.Input((4, 3))
    shared = layers.LSTM(5, name="shared")
    ha, hb = shared(a), shared(b)
    diff = layers.Subtract()([ha, hb])
    out = layers.Dense(1, activation="sigmoid")(layers.Multiply()([diff, diff]))
    model = keras.Model([a, b], out)
    assert [l.name for l in model.layers].count("shared") == 1
    assert len(model.weights) == 3 + 2
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    check_model_gradients(model, [rand(3, 4, 3), rand(3, 4, 3, seed=1)],
                          np.array([[1.0], [0.0], [1.0]]))


def test_residual_stack_and_fan_out():
    inp = keras.Input((6, 4))
    x = layers.GRU(4, return_sequences=True)(inp)
    y = layers.GRU(4, return_sequences=True)(x)
    x = layers.Add()([x, y])  # x feeds two layers: its gradient is the sum
    z = layers.LSTM(4, return_sequences=True)(x)
    x = layers.Add()([x, z, inp])
    out = layers.Dense(2)(layers.LSTM(3)(x))
    model = keras.Model(inp, out)
    model.compile(loss="mse", optimizer="sgd")
    check_model_gradients(model, rand(2, 6, 4), rand(2, 2, seed=1))


def test_attention_seq2seq_gradients_with_masks():
    enc_in = keras.Input((None,), dtype="int32")
    dec_in = keras.Input((None,), dtype="int32")
    emb = layers.Embedding(9, 4, mask_zero=True)
    enc_seq, h, c = layers.LSTM(5, return_sequences=True, return_state=True)(emb(enc_in))
    dec_seq = layers.LSTM(5, return_sequences=True)(emb(dec_in), initial_state=[h, c])
    context = layers.Attention(use_scale=True)([dec_seq, enc_seq])
    merged = layers.Concatenate()([dec_seq, context])
    out = layers.Dense(9, activation="softmax")(merged)
    model = keras.Model([enc_in, dec_in], out)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    xe = np.array([[3, 1, 4, 1, 5], [2, 7, 0, 0, 0]])
    xd = np.array([[1, 2, 3], [6, 0, 0]])
    y = np.array([[2, 3, 4], [5, 0, 0]])
    check_model_gradients(model, [xe, xd], y)
    # Padded steps: the loss skips them (the decoder's mask reaches the output).
    full = model.evaluate([xe, xd], y, verbose=0)
    y2 = y.copy()
    y2[1, 1:] = 8
    np.testing.assert_allclose(model.evaluate([xe, xd], y2, verbose=0), full, rtol=1e-12)


def test_masks_flow_along_edges():
    """Embedding(mask_zero) -> LSTM in a functional model: a padded batch gives
    each sequence's own result."""
    inp = keras.Input((None,), dtype="int32")
    out = layers.LSTM(4)(layers.Embedding(10, 3, mask_zero=True)(inp))
    model = keras.Model(inp, out)
    seqs = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5]]
    batch = model.predict(keras.utils.pad_sequences(seqs, padding="post"), verbose=0)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(batch[i], model.predict(np.array([s]), verbose=0)[0],
                                   rtol=1e-12)


def test_nested_models_as_layers():
    inner_seq = keras.Sequential([keras.Input((4, 3)), layers.LSTM(5, return_sequences=True),
                                  layers.Dense(3)], name="inner_seq")
    i = keras.Input((4, 3))
    inner_fn = keras.Model(i, layers.GRU(2)(i), name="inner_fn")
    inp = keras.Input((4, 3))
    x = inner_seq(inp)
    x = layers.Add()([x, inp])
    out = inner_fn(x)
    out2 = inner_fn(inp)  # a nested model called twice
    model = keras.Model(inp, layers.Concatenate()([out, out2]))
    model.compile(loss="mse", optimizer="sgd")
    check_model_gradients(model, rand(2, 4, 3), rand(2, 4, seed=1))
    assert [l.name for l in model.layers][:3] == [model.layers[0].name, "inner_seq", "add"] or \
        "inner_seq" in [l.name for l in model.layers]


def test_multi_output_training_and_log_names():
    inp = keras.Input((5, 3), name="series")
    h = layers.LSTM(6)(inp)
    reg = layers.Dense(2, name="value")(h)
    cls = layers.Dense(3, activation="softmax", name="kind")(h)
    model = keras.Model(inp, {"value": reg, "kind": cls})
    assert model.output_names == ["kind", "value"]
    model.compile(optimizer="sgd", loss={"value": "mse", "kind": "sparse_categorical_crossentropy"},
                  loss_weights={"value": 2.0, "kind": 0.5},
                  metrics={"kind": ["accuracy"], "value": ["mae"]})
    x = rand(8, 5, 3)
    y = {"value": rand(8, 2, seed=1), "kind": np.array([0, 1, 2, 0, 1, 2, 0, 1])}
    check_model_gradients(model, x, y)
    pred = model.predict(x, verbose=0)
    assert sorted(pred) == ["kind", "value"] and pred["value"].shape == (8, 2)
    mse = np.mean((pred["value"] - y["value"]) ** 2)
    ce = -np.mean(np.log(pred["kind"][np.arange(8), y["kind"]]))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "kind_loss", "value_loss", "kind_accuracy", "value_mae"] or \
        sorted(logs) == ["kind_accuracy", "kind_loss", "loss", "value_loss", "value_mae"]
    np.testing.assert_allclose(logs["value_loss"], mse, rtol=1e-10)
    np.testing.assert_allclose(logs["kind_loss"], ce, rtol=1e-10)
    np.testing.assert_allclose(logs["loss"], 2.0 * mse + 0.5 * ce, rtol=1e-10)
    np.testing.assert_allclose(logs["value_mae"], np.mean(np.abs(pred["value"] - y["value"])),
                               rtol=1e-10)
    values = model.evaluate(x, y, verbose=0)
    assert values == [logs[n] for n in model.metrics_names]
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert sorted(history.history) == ["kind_accuracy", "kind_loss", "loss", "value_loss",
                                       "value_mae"]


def test_multi_output_lists_and_partial_losses():
    inp = keras.Input((3,))
    a = layers.Dense(2, name="a")(inp)
    b = layers.Dense(1, name="b")(inp)
    model = keras.Model(inp, [a, b])
    x, ya, yb = rand(6, 3), rand(6, 2, seed=1), rand(6, 1, seed=2)
    model.compile(optimizer="sgd", loss=["mse", None], metrics=[["mae"], []])
    logs = model.train_on_batch(x, [ya, yb], return_dict=True)
    assert sorted(logs) == ["a_mae", "loss"]  # one loss: no per-output loss entries (Keras)
    # An output without a loss gets no gradient: b's weights stay as they were.
    before = model.get_layer("b").get_weights()
    model.fit(x, [ya, yb], epochs=2, verbose=0)
    for w0, w1 in zip(before, model.get_layer("b").get_weights()):
        np.testing.assert_array_equal(w0, w1)
    model.compile(optimizer="sgd", loss="mse", loss_weights=[1.0, 3.0])
    pa, pb = model.predict(x, verbose=0)
    want = np.mean((pa - ya) ** 2) + 3 * np.mean((pb - yb) ** 2)
    np.testing.assert_allclose(model.evaluate(x, [ya, yb], verbose=0)[0], want, rtol=1e-10)
    with pytest.raises(ValueError, match=r"model has 2 output\(s\) \['a', 'b'\], got a list of 3"):
        model.compile(optimizer="sgd", loss=["mse"] * 3)
    with pytest.raises(ValueError, match="unknown output name"):
        model.compile(optimizer="sgd", loss={"c": "mse"})


def test_dict_inputs():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model({"a": a, "b": b}, layers.Dense(1)(layers.Concatenate()([a, b])))
    x = {"a": rand(4, 3), "b": rand(4, 2, seed=1)}
    p1 = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict([x["a"], x["b"]], verbose=0), p1)
    with pytest.raises(ValueError, match=r"missing input\(s\) \['b'\]"):
        model.predict({"a": x["a"]}, verbose=0)
    with pytest.warns(UserWarning, match=r"input\(s\) \['c'\] match no model input"):
        model.predict({**x, "c": x["a"]}, verbose=0)


def test_structure_queries_and_summary(capsys):
    model = encoder_decoder()
    assert [t.shape for t in model.inputs] == [(None, 5, 3), (None, 4, 2)]
    assert model.outputs[0].shape == (None, 4, 3)
    # Keras's order: by depth from the outputs, then by first visit.
    assert [l.name for l in model.layers] == ["enc", "dec", "encoder", "decoder", "head"]
    assert model.get_layer("decoder") is model.layers[3]
    assert model.get_layer(index=2).name == "encoder"
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    model.summary()
    out = capsys.readouterr().out
    for text in ("Connected to", "enc (InputLayer)", "decoder (LSTM)", "dec[0][0],",
                 "encoder[0][1],", "encoder[0][2]", "head", "(TimeDistributed)", "decoder[0][0]",
                 "Total params: 477"):
        assert text in out, (text, out)


def test_config_json_and_saving_round_trip(tmp_path):
    model = encoder_decoder()
    model.compile(loss="mse", optimizer="adam")
    x = [rand(3, 5, 3), rand(3, 4, 2, seed=1)]
    y = rand(3, 4, 3, seed=2)
    model.fit(x, y, epochs=1, verbose=0)
    want = model.predict(x, verbose=0)
    config = model.get_config()
    assert config["input_layers"] == [["enc", 0, 0], ["dec", 0, 0]]
    assert config["output_layers"] == ["head", 0, 0]
    dec = next(l for l in config["layers"] if l["name"] == "decoder")
    state = dec["inbound_nodes"][0]["kwargs"]["initial_state"]
    assert [s["config"]["keras_history"] for s in state] == [["encoder", 0, 1], ["encoder", 0, 2]]
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=1e-12)
    again = keras.models.model_from_json(model.to_json())
    assert json.loads(again.to_json()) == json.loads(model.to_json())
    path = tmp_path / "m.rnnfast"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-12)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequential_and_functional_are_one_engine():
    """The same layers as a Sequential and as a Model train identically."""
    def build(kind):
        keras.utils.set_random_seed(5)
        stack = [layers.LSTM(6, return_sequences=True), layers.GRU(4), layers.Dense(1)]
        if kind == "seq":
            return keras.Sequential([keras.Input((7, 2))] + stack)
        x = inp = keras.Input((7, 2))
        for layer in stack:
            x = layer(x)
        return keras.Model(inp, x)

    x, y = rand(16, 7, 2), rand(16, 1, seed=1)
    runs = []
    for kind in ("seq", "fn"):
        m = build(kind)
        m.compile(loss="mse", optimizer="adam")
        keras.utils.set_random_seed(9)
        m.fit(x, y, epochs=2, batch_size=4, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_bad_graphs_are_refused():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    out = layers.Dense(1)(b)
    with pytest.raises(ValueError, match=r"graph disconnected: the outputs depend on Input 'b'"):
        keras.Model(a, out)
    h = layers.Dense(2)(a)
    with pytest.raises(ValueError, match=r"input 0 .* is the output of layer 'dense\w*', not a "
                                         r"keras.Input"):
        keras.Model(h, layers.Dense(1)(h))
    with pytest.raises(ValueError, match="not a symbolic tensor"):
        keras.Model(a, np.zeros(3))
    with pytest.raises(ValueError, match=r"Layer 'lstm\w*' \(LSTM\) cannot be called on inputs of "
                                         r"shape \(None, 3\): expected inputs of shape \(batch, "
                                         r"time, features\)|expects inputs of shape"):
        layers.LSTM(2)(a)
    d = layers.Dense(2)
    d(a)
    with pytest.raises(ValueError, match=r"built for inputs with 3 features"):
        d(keras.Input((4,)))
    with pytest.raises(ValueError, match="initial_state must hold 2 state"):
        layers.LSTM(2)(keras.Input((5, 3)), initial_state=[layers.Dense(2)(a)])
    model = keras.Model(a, layers.Dense(1)(a))
    with pytest.raises(ValueError, match=r"input 'a' expects arrays of shape \(None, 3\), got "
                                         r"\(4, 5\)"):
        model.predict(np.zeros((4, 5)), verbose=0)
    two = keras.Model([a, b], layers.Add()([a, b]))
    with pytest.raises(ValueError, match=r"takes 2 inputs \['a', 'b'\]"):
        two.predict(np.zeros((4, 3)), verbose=0)
    with pytest.raises(NotImplementedError, match="subclassed models"):
        class Custom(keras.Model):
            def call(self, x):
                return x
        Custom()


def test_symbolic_operators_build_merge_layers():
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], (a + b) * a - b)
    x = [rand(2, 3), rand(2, 3, seed=1)]
    np.testing.assert_allclose(model.predict(x, verbose=0), (x[0] + x[1]) * x[0] - x[1])
    with pytest.raises(TypeError, match="is symbolic"):
        np.asarray(a)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
                                       "Adamax", "Nadam", "Ftrl", "Lion"])
@pytest.mark.parametrize("clip", [{}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0},
                                  {"clipvalue": 0.5}])
def test_scalar_weights_train_with_every_optimizer(optimizer, clip):
    """Attention's scale and concat_score_weight are 0-d weights."""
    q, v = keras.Input((4, 3)), keras.Input((5, 3))
    att = layers.Attention(use_scale=True, score_mode="concat")
    model = keras.Model([q, v], layers.Dense(1)(layers.Flatten()(att([layers.Dense(3)(q), v]))))
    model.compile(loss="mse", optimizer=getattr(keras.optimizers, optimizer)(**clip))
    before = [w.copy() for w in att.get_weights()]
    model.fit([rand(8, 4, 3), rand(8, 5, 3, seed=1)], rand(8, 1, seed=2), epochs=2, verbose=0)
    after = att.get_weights()
    assert all(a.shape == () for a in after)
    assert any(a != b for a, b in zip(after, before))


def test_layer_outputs_make_sub_models_and_helper_functions():
    """Keras idioms: Model(model.input, model.get_layer(...).output), and the
    lowercase merge functions (keras.layers.concatenate, ...)."""
    inp = keras.Input((5, 3), name="x")
    h = layers.LSTM(4, return_sequences=True, name="features")(inp)
    a, b = layers.Dense(2, name="a")(h), layers.Dense(2, name="b")(h)
    merged = layers.concatenate([layers.add([a, b]), layers.multiply([a, b]),
                                 layers.subtract([a, b]), layers.average([a, b]),
                                 layers.maximum([a, b]), layers.minimum([a, b])])
    out = layers.dot([layers.Dense(3)(merged), layers.Dense(3)(merged)], axes=2)
    model = keras.Model(inp, out)
    assert model.input is inp and model.output is out
    assert model.input_shape == (None, 5, 3) and model.output_shape == (None, 5, 5)
    features = keras.Model(model.input, model.get_layer("features").output)
    x = rand(2, 5, 3)
    np.testing.assert_allclose(features.predict(x, verbose=0),
                               model.get_layer("features")(x), rtol=1e-12)
    assert features.get_layer("features") is model.get_layer("features")  # shared weights
    with pytest.raises(AttributeError, match="never been called"):
        _ = layers.Dense(2).output


def test_keras_lstm_seq2seq_program_with_inference_models():
    """Keras's character-level seq2seq example (teacher forcing), with its
    separate encoder and decoder models for inference sharing the trained
    layers: the decoding loop reproduces the training model's outputs."""
    keras.backend.set_floatx("float32")
    tokens, latent, T_in, T_out = 6, 8, 5, 4
    encoder_inputs = keras.Input(shape=(None, tokens))
    encoder = keras.layers.LSTM(latent, return_state=True)
    _, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    decoder_inputs = keras.Input(shape=(None, tokens))
    decoder_lstm = keras.layers.LSTM(latent, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = keras.layers.Dense(tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    enc = np.eye(tokens, dtype="float32")[rng.integers(0, tokens, (64, T_in))]
    dec = np.eye(tokens, dtype="float32")[rng.integers(0, tokens, (64, T_out))]
    target = np.roll(dec, -1, axis=1)
    history = model.fit([enc, dec], target, batch_size=16, epochs=3, validation_split=0.2,
                        verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]

    encoder_model = keras.Model(encoder_inputs, encoder_states)
    decoder_state_input_h = keras.Input(shape=(latent,))
    decoder_state_input_c = keras.Input(shape=(latent,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_outputs, state_h, state_c = decoder_lstm(decoder_inputs,
                                                     initial_state=decoder_states_inputs)
    decoder_model = keras.Model([decoder_inputs] + decoder_states_inputs,
                                [decoder_dense(decoder_outputs), state_h, state_c])
    states = encoder_model.predict(enc[:3], verbose=0)
    assert isinstance(states, list) and states[0].shape == (3, latent)
    steps = []
    for t in range(T_out):  # one step at a time, carrying the states
        out, h, c = decoder_model.predict([dec[:3, t:t + 1]] + states, verbose=0)
        steps.append(out[:, 0])
        states = [h, c]
    np.testing.assert_allclose(np.stack(steps, 1), model.predict([enc[:3], dec[:3]], verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_nested_model_passes_its_output_mask_on():
    i = keras.Input((None,), dtype="int32")
    inner = keras.Model(i, layers.Embedding(10, 4, mask_zero=True)(i))
    a = keras.Input((None,), dtype="int32")
    model = keras.Model(a, layers.LSTM(3)(inner(a)))
    seqs = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5, 8, 9]]
    batch = model.predict(keras.utils.pad_sequences(seqs, maxlen=6, padding="post"), verbose=0)
    for k, s in enumerate(seqs):
        np.testing.assert_allclose(batch[k], model.predict(np.array([s]), verbose=0)[0],
                                   rtol=1e-12)


def test_one_mask_goes_with_the_first_output_only():
    """Attention's output carries the query mask; its scores output does not."""
    q_in = keras.Input((4,), dtype="int32")
    v = keras.Input((5, 3))
    q = layers.Embedding(7, 3, mask_zero=True)(q_in)
    out, scores = layers.Attention()([q, v], return_attention_scores=True)
    model = keras.Model([q_in, v], [out, scores])
    model.compile(loss=["mse", "mse"], optimizer="sgd")
    xq = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    xv = rand(2, 5, 3)
    y = [rand(2, 4, 3, seed=1), rand(2, 4, 5, seed=2)]
    po, ps = model.predict([xq, xv], verbose=0)
    valid = xq != 0
    want_out = np.mean(((po - y[0]) ** 2).mean(-1)[valid])
    want_scores = np.mean((ps - y[1]) ** 2)
    logs = model.evaluate([xq, xv], y, verbose=0, return_dict=True)
    names = model.output_names
    np.testing.assert_allclose(logs[f"{names[0]}_loss"], want_out, rtol=1e-10)
    np.testing.assert_allclose(logs[f"{names[1]}_loss"], want_scores, rtol=1e-10)
    check_model_gradients(model, [xq, xv], y)


def test_activity_regularizers_per_batch_and_inside_nested_models():
    """Keras 3 divides an activity penalty by the batch size; a nested model's
    penalties count in the loss as their gradients count in the step."""
    i = keras.Input((5, 3))
    inner = keras.Model(i, layers.Dense(4, activity_regularizer=keras.regularizers.L2(0.1))(i))
    a = keras.Input((5, 3))
    model = keras.Model(a, layers.LSTM(2, activity_regularizer=keras.regularizers.L1(0.05))(
        inner(a)))
    model.compile(loss="mse", optimizer="sgd")
    x, y = rand(3, 5, 3), rand(3, 2, seed=1)
    check_model_gradients(model, x, y)
    hidden = inner.predict(x, verbose=0)
    pred = model.predict(x, verbose=0)
    want = np.mean((pred - y) ** 2) + 0.1 * np.sum(hidden ** 2) / 3 + 0.05 * np.sum(np.abs(pred)) / 3
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want, rtol=1e-10)


def test_class_weight_does_not_weight_the_validation_split():
    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(3, activation="softmax")(inp))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x, y = rand(10, 3), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    h = model.fit(x, y, class_weight={0: 0.2, 1: 1.0, 2: 3.0}, validation_split=0.3,
                  shuffle=False, epochs=1, verbose=0)
    np.testing.assert_allclose(h.history["val_loss"][0], model.evaluate(x[7:], y[7:], verbose=0),
                               rtol=1e-6)


def test_metric_names_are_unique_as_in_keras():
    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(3, activation="softmax")(inp))
    model.compile(loss="categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy", "mae", "mae"], weighted_metrics=["accuracy"])
    x, labels = rand(6, 3), np.array([0, 1, 2, 0, 1, 2])
    y = np.eye(3)[labels]
    sw = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "mae", "mae_1", "weighted_accuracy"]
    hit = model.predict(x, verbose=0).argmax(-1) == labels
    np.testing.assert_allclose(logs["accuracy"], hit.mean(), rtol=1e-6)
    np.testing.assert_allclose(logs["weighted_accuracy"], (hit * sw).sum() / sw.sum(), rtol=1e-6)


def test_clear_errors_for_mismatched_targets_and_metrics():
    inp = keras.Input((3,))
    a, b = layers.Dense(2, name="a")(inp), layers.Dense(1, name="b")(inp)
    two = keras.Model(inp, [a, b])
    with pytest.raises(ValueError, match=r"metrics: the model has 2 outputs \['a', 'b'\]; pass a "
                                         r"dict keyed by output name"):
        two.compile(loss="mse", optimizer="sgd", metrics=["mae", "mse", "mape"])
    one = keras.Model(inp, a)
    one.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="y: the model has one of them, got a list of 2 arrays"):
        one.fit(rand(4, 3), [rand(4, 2), rand(4, 2)], verbose=0)
    seq_a, seq_b = keras.Input((None, 2)), keras.Input((None, 2))
    summed = keras.Model([seq_a, seq_b], layers.Add(name="sum")([seq_a, seq_b]))
    with pytest.raises(ValueError, match=r"Add 'sum' cannot merge inputs of shapes "
                                         r"\[\(1, 3, 2\), \(1, 4, 2\)\]"):
        summed.predict([rand(1, 3, 2), rand(1, 4, 2)], verbose=0)
    with pytest.raises(ValueError, match=r"the loss 'mse' cannot compare targets of shape "
                                         r"\(4, 3\) with predictions of shape \(4, 2\)"):
        one.fit(rand(4, 3), rand(4, 3), verbose=0)


def test_nested_functional_output_index_in_configs():
    i = keras.Input((5, 3))
    inner = keras.Model(i, layers.LSTM(4)(i), name="inner")
    a = keras.Input((5, 3), name="a")
    model = keras.Model(a, inner(a))
    # Keras counts a nested functional model's construction as its node 0.
    assert model.get_config()["output_layers"] == ["inner", 1, 0]
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = rand(2, 5, 3)
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0))
