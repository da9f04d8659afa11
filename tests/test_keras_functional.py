"""Functional models and their layers against Keras 3 itself (skipped when
Keras is not installed): the same graph built by both with Keras's weights
predicts the same, takes the same SGD step (Keras differentiates with its own
autodiff), and moves between the two as .keras and legacy .h5 files."""

import os

import numpy as np
import pytest

keras_ref = pytest.importorskip("keras")
import rnnfast  # noqa: E402
from keras_harness import both  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

TRAINABLE = os.environ.get("KERAS_BACKEND", "tensorflow") in ("jax", "tensorflow", "torch")


def two_branches(merge, in_shape=(6,), units=(4, 4), head=2):
    def build(K):
        K.utils.set_random_seed(1)
        inp = K.Input(in_shape, name="x")
        a = K.layers.Dense(units[0], activation="tanh", name="a")(inp)
        b = K.layers.Dense(units[1], activation="tanh", name="b")(inp)
        m = merge(K)([a, b])
        if len(m.shape) > 2:
            m = K.layers.Flatten(name="flat")(m)
        return K.Model(inp, K.layers.Dense(head, name="head")(m))
    return build


def seq_attention(make, causal=False, masks=False, scores=False, key=False):
    def build(K):
        K.utils.set_random_seed(2)
        if masks:
            q_in = K.Input((5,), dtype="int32", name="q")
            v_in = K.Input((6,), dtype="int32", name="v")
            emb = K.layers.Embedding(9, 3, mask_zero=True, name="emb")
            q_seq = K.layers.LSTM(4, return_sequences=True, name="q_rnn")(emb(q_in))
            v_seq = K.layers.LSTM(4, return_sequences=True, name="v_rnn")(emb(v_in))
        else:
            q_in = K.Input((5, 3), name="q")
            v_in = K.Input((6, 3), name="v")
            q_seq = K.layers.GRU(4, return_sequences=True, name="q_rnn")(q_in)
            v_seq = K.layers.GRU(4, return_sequences=True, name="v_rnn")(v_in)
        args = [q_seq, v_seq] + ([K.layers.Dense(4, name="key")(v_seq)] if key else [])
        out = make(K)(args, use_causal_mask=causal, return_attention_scores=scores)
        outs = list(out) if scores else [out]
        flat = [K.layers.Flatten(name=f"flat{i}")(o) for i, o in enumerate(outs)]
        merged = flat[0] if len(flat) == 1 else K.layers.Concatenate(name="cat")(flat)
        return K.Model([q_in, v_in], K.layers.Dense(2, name="head")(merged))
    return build


CASES = {
    "add": two_branches(lambda K: K.layers.Add()),
    "subtract": two_branches(lambda K: K.layers.Subtract()),
    "multiply": two_branches(lambda K: K.layers.Multiply()),
    "average": two_branches(lambda K: K.layers.Average()),
    "maximum": two_branches(lambda K: K.layers.Maximum()),
    "minimum": two_branches(lambda K: K.layers.Minimum()),
    "concatenate": two_branches(lambda K: K.layers.Concatenate(), units=(3, 5)),
    "dot": two_branches(lambda K: K.layers.Dot(axes=1)),
    "dot_normalize": two_branches(lambda K: K.layers.Dot(axes=-1, normalize=True)),
    "reshape_permute": lambda K: (lambda inp: K.Model(inp, K.layers.Dense(2)(K.layers.Flatten()(
        K.layers.Permute((2, 1))(K.layers.Reshape((3, 4))(K.layers.Dense(12)(inp)))))))(
            K.Input((5,))),
    "dot_sequences": lambda K: (lambda a, b: K.Model([a, b], K.layers.Dense(1)(K.layers.Flatten()(
        K.layers.Dot(axes=(2, 2))([K.layers.Dense(3)(a), K.layers.Dense(3)(b)])))))(
            K.Input((4, 2)), K.Input((5, 2))),
    "attention": seq_attention(lambda K: K.layers.Attention()),
    "attention_scale_concat": seq_attention(lambda K: K.layers.Attention(use_scale=True,
                                                                         score_mode="concat")),
    "attention_causal_scores": seq_attention(lambda K: K.layers.Attention(use_scale=True),
                                             causal=True, scores=True),
    "attention_masks_key": seq_attention(lambda K: K.layers.Attention(), masks=True, key=True),
    "additive_attention": seq_attention(lambda K: K.layers.AdditiveAttention()),
    "additive_attention_masks": seq_attention(lambda K: K.layers.AdditiveAttention(), masks=True,
                                              causal=True),
}


def encoder_decoder(K):
    K.utils.set_random_seed(3)
    enc_in, dec_in = K.Input((5, 3), name="enc"), K.Input((4, 2), name="dec")
    _, h, c = K.layers.LSTM(6, return_state=True, name="encoder")(enc_in)
    seq = K.layers.LSTM(6, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    return K.Model([enc_in, dec_in], K.layers.TimeDistributed(K.layers.Dense(3), name="head")(seq))


def siamese(K):
    K.utils.set_random_seed(4)
    a, b = K.Input((4, 3), name="a"), K.Input((4, 3), name="b")
    shared = K.layers.GRU(5, name="shared")
    d = K.layers.Subtract()([shared(a), shared(b)])
    return K.Model([a, b], K.layers.Dense(1, activation="sigmoid")(K.layers.Multiply()([d, d])))


def multi_output(K):
    K.utils.set_random_seed(5)
    inp = K.Input((5, 3), name="series")
    h = K.layers.LSTM(6, name="rnn")(inp)
    return K.Model(inp, [K.layers.Dense(2, name="value")(h),
                         K.layers.Dense(3, activation="softmax", name="kind")(h)])


CASES.update({"encoder_decoder": encoder_decoder, "siamese": siamese})


def inputs_for(model, seed=0):
    rng = np.random.default_rng(seed)
    xs = []
    for t in model.inputs:
        shape = (4,) + tuple(t.shape[1:])
        if "int" in str(t.dtype):
            x = rng.integers(1, 9, shape).astype("int32")
            x[1, shape[1] // 2:] = 0  # padding, masked
            x[2, -1] = 0
            xs.append(x)
        else:
            xs.append(rng.standard_normal(shape).astype("float32"))
    return xs if len(xs) > 1 else xs[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_match_keras(name):
    k, r = both(CASES[name])
    x = inputs_for(k)
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_sgd_step_matches_keras(name):
    k, r = both(CASES[name])
    x = inputs_for(k)
    y = np.random.default_rng(1).standard_normal((4,) + tuple(k.outputs[0].shape[1:]))
    y = y.astype("float32")
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(loss="mse", optimizer=K.optimizers.SGD(learning_rate=0.5))
    lk = float(k.train_on_batch(x, y))
    lr = float(r.train_on_batch(x, y))
    np.testing.assert_allclose(lr, lk, rtol=1e-5)
    for wk, wr, v in zip(k.get_weights(), r.get_weights(), r.weights):
        np.testing.assert_allclose(wr, wk, rtol=2e-4, atol=2e-5, err_msg=v.path)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
def test_multi_output_losses_weights_and_logs_match_keras():
    k, r = both(multi_output)
    x = inputs_for(k)
    rng = np.random.default_rng(2)
    y = [rng.standard_normal((4, 2)).astype("float32"), np.array([0, 2, 1, 2])]
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(optimizer=K.optimizers.SGD(learning_rate=0.3),
                  loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.5, 2.0],
                  metrics=[["mae"], ["accuracy"]])
    logs_k = k.train_on_batch(x, y, return_dict=True)
    logs_r = r.train_on_batch(x, y, return_dict=True)
    assert sorted(logs_r) == sorted(logs_k)
    for key in logs_k:
        np.testing.assert_allclose(logs_r[key], float(logs_k[key]), rtol=1e-5, err_msg=key)
    for wk, wr in zip(k.get_weights(), r.get_weights()):
        np.testing.assert_allclose(wr, wk, rtol=2e-4, atol=2e-5)
    ek = k.evaluate(x, y, verbose=0)
    er = r.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(er, ek, rtol=1e-5)


@pytest.mark.parametrize("name", ["encoder_decoder", "siamese", "attention_masks_key",
                                  "additive_attention_masks",
                                  "attention_causal_scores", "reshape_permute"])
def test_keras_files_both_ways(name, tmp_path):
    k, r = both(CASES[name])
    x = inputs_for(k)
    want = k.predict(x, verbose=0)
    # rnnfast -> Keras: model.save("x.keras") writes Keras 3's format.
    r.compile(loss="mse", optimizer="adam")
    path = tmp_path / "r.keras"
    r.save(path)
    back = keras_ref.models.load_model(path)
    np.testing.assert_allclose(back.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # Keras -> rnnfast: load_model reads Keras's .keras and legacy .h5 directly.
    k.compile(loss="mse", optimizer="adam")
    k.save(tmp_path / "k.keras")
    k.save(tmp_path / "k.h5")
    for f in ("k.keras", "k.h5"):
        loaded = rnnfast.models.load_model(tmp_path / f)
        assert type(loaded).__name__ == "Functional"
        np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6,
                                   err_msg=f)


def test_nested_models_in_keras_files(tmp_path):
    def build(K):
        K.utils.set_random_seed(6)
        inner = K.Sequential([K.Input((4, 3)), K.layers.LSTM(5, return_sequences=True),
                              K.layers.Dense(3)], name="inner_seq")
        i = K.Input((4, 3))
        inner_fn = K.Model(i, K.layers.GRU(2)(i), name="inner_fn")
        inp = K.Input((4, 3), name="x")
        y = inner_fn(K.layers.Add()([inner(inp), inp]))
        return K.Model(inp, K.layers.Dense(1, name="head")(y))

    k, r = both(build)
    x = inputs_for(k)
    want = k.predict(x, verbose=0)
    np.testing.assert_allclose(r.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    r.save(tmp_path / "r.keras")
    np.testing.assert_allclose(keras_ref.models.load_model(tmp_path / "r.keras").predict(
        x, verbose=0), want, rtol=1e-5, atol=1e-6)
    k.save(tmp_path / "k.keras")
    np.testing.assert_allclose(rnnfast.models.load_model(tmp_path / "k.keras").predict(
        x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_sequential_keras_file_via_save(tmp_path):
    def build(K):
        K.utils.set_random_seed(7)
        return K.Sequential([K.Input((5, 2)), K.layers.GRU(3), K.layers.Dense(1)])

    k, r = both(build)
    x = inputs_for(k)
    r.save(tmp_path / "s.keras")
    np.testing.assert_allclose(keras_ref.models.load_model(tmp_path / "s.keras").predict(
        x, verbose=0), k.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    k.save(tmp_path / "k.h5")
    loaded = rnnfast.models.load_model(tmp_path / "k.h5")
    assert type(loaded).__name__ == "Sequential"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)


def _compile_both(k, r, **kw):
    for m, K in ((k, keras_ref), (r, rnnfast)):
        m.compile(optimizer=K.optimizers.SGD(learning_rate=0.1), **kw)


def test_masks_nested_models_and_initial_state_quirk_match_keras():
    """A nested model passes its output mask on; an RNN given initial_state
    tensors runs unmasked (Keras fills in the mask only for a call with one
    tensor argument) while its outputs keep the mask."""
    def build(K):
        K.utils.set_random_seed(8)
        i = K.Input((None,), dtype="int32")
        inner = K.Model(i, K.layers.Embedding(10, 4, mask_zero=True)(i), name="emb_model")
        a = K.Input((None,), dtype="int32", name="ids")
        seq, h, c = K.layers.LSTM(3, return_sequences=True, return_state=True, name="enc")(inner(a))
        dec = K.layers.LSTM(3, return_sequences=True, name="dec")(seq, initial_state=[h, c])
        return K.Model(a, K.layers.Dense(2, name="head")(dec))

    k, r = both(build)
    x = np.array([[3, 1, 4, 1, 5, 9], [2, 6, 0, 0, 0, 0], [5, 3, 5, 0, 0, 0]], "int32")
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    y = np.random.default_rng(0).standard_normal((3, 6, 2)).astype("float32")
    _compile_both(k, r, loss="mse")
    np.testing.assert_allclose(r.evaluate(x, y, verbose=0), k.evaluate(x, y, verbose=0),
                               rtol=1e-5)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
def test_activity_penalties_scores_masks_and_log_names_match_keras():
    def build(K):
        K.utils.set_random_seed(9)
        i = K.Input((5, 3))
        inner = K.Model(i, K.layers.Dense(4, activity_regularizer=K.regularizers.L2(0.1))(i),
                        name="inner")
        q_ids = K.Input((4,), dtype="int32", name="q")
        v_in = K.Input((5, 3), name="v")
        q = K.layers.Embedding(7, 4, mask_zero=True, name="emb")(q_ids)
        v = K.layers.LSTM(4, return_sequences=True, name="v_rnn",
                          activity_regularizer=K.regularizers.L1(0.05))(inner(v_in))
        out, scores = K.layers.Attention(name="att")([q, v], return_attention_scores=True)
        return K.Model([q_ids, v_in], [K.layers.Dense(3, name="out")(out),
                                       K.layers.Activation("linear", name="scores")(scores)])

    k, r = both(build)
    rng = np.random.default_rng(3)
    x = [np.array([[1, 2, 0, 0], [3, 4, 5, 0], [6, 0, 0, 0]], "int32"),
         rng.standard_normal((3, 5, 3)).astype("float32")]
    y = [rng.standard_normal((3, 4, 3)).astype("float32"),
         rng.random((3, 4, 5)).astype("float32")]
    _compile_both(k, r, loss=["mse", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["mae", "mae"], []], weighted_metrics=[["mae"], []])
    # (Keras itself cannot take per-sample weights for these masked rank-3 outputs.)
    lk = k.evaluate(x, y, verbose=0, return_dict=True)
    lr = r.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(lr) == sorted(lk)
    for key in lk:
        np.testing.assert_allclose(lr[key], float(lk[key]), rtol=1e-5, err_msg=key)
    k.train_on_batch(x, y)
    r.train_on_batch(x, y)
    for wk, wr, v in zip(k.get_weights(), r.get_weights(), r.weights):
        np.testing.assert_allclose(wr, wk, rtol=2e-4, atol=2e-5, err_msg=v.path)


@pytest.mark.skipif(not TRAINABLE, reason="Keras's numpy backend cannot train")
def test_one_loss_of_two_outputs_and_class_weight_split_match_keras():
    k, r = both(multi_output)
    x = inputs_for(k)
    x = np.concatenate([x, x[::-1], x])
    y = [np.zeros((12, 2), "float32"), np.array([0, 2, 1, 2, 0, 1, 1, 0, 2, 2, 1, 0])]
    _compile_both(k, r, loss=[None, "sparse_categorical_crossentropy"],
                  metrics=[["mae"], ["accuracy"]])
    ek, er = k.evaluate(x, y, verbose=0), r.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(er, ek, rtol=1e-5)
    k2, r2 = both(lambda K: (lambda m: K.Model(m.input, m.outputs[1]))(multi_output(K)))
    _compile_both(k2, r2, loss="sparse_categorical_crossentropy")
    hk = k2.fit(x, y[1], class_weight={0: 0.2, 1: 1.0, 2: 3.0}, validation_split=0.25,
                shuffle=False, epochs=2, batch_size=4, verbose=0)
    hr = r2.fit(x, y[1], class_weight={0: 0.2, 1: 1.0, 2: 3.0}, validation_split=0.25,
                shuffle=False, epochs=2, batch_size=4, verbose=0)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(hr.history[key], hk.history[key], rtol=1e-4, err_msg=key)


def test_model_from_a_live_keras_config():
    for name in ("encoder_decoder", "siamese", "attention_masks_key"):
        k = CASES[name](keras_ref)
        r = rnnfast.Model.from_config(k.get_config())
        r.set_weights(k.get_weights())
        x = inputs_for(k)
        np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_nested_functional_output_in_files(tmp_path):
    def build(K):
        K.utils.set_random_seed(10)
        i = K.Input((5, 3))
        inner = K.Model(i, K.layers.LSTM(4)(i), name="inner")
        a, b = K.Input((5, 3), name="a"), K.Input((5, 3), name="b")
        return K.Model([a, b], [inner(a), K.layers.Dense(1, name="head")(inner(b))])

    k, r = both(build)
    x = [np.random.default_rng(i).standard_normal((2, 5, 3)).astype("float32") for i in range(2)]
    want = k.predict(x, verbose=0)
    k.save(tmp_path / "k.keras")
    got = rnnfast.models.load_model(tmp_path / "k.keras").predict(x, verbose=0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    r.save(tmp_path / "r.keras")
    back = keras_ref.models.load_model(tmp_path / "r.keras").predict(x, verbose=0)
    for g, w in zip(back, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
