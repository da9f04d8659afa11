"""Layers through the public API: every layer's backward against central finite
differences in float64 (dtype="float64"), shapes, masks, and configs."""

import re

import numpy as np
import pytest

import rnnfast as keras
from layer_harness import check_accumulates, fd_check
from rnnfast import _budget, layers
from rnnfast.layers import Context

def seq(B=3, T=5, I=4, seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, I))


F64 = {"dtype": "float64"}


@pytest.mark.parametrize("activation", [None, "tanh", "sigmoid", "relu", "elu", "softmax", "gelu",
                                        "swish", "softplus", "selu"])
def test_dense_gradients(activation):
    layer = layers.Dense(5, activation=activation, **F64)
    fd_check(layer, np.random.default_rng(0).standard_normal((4, 3)) + 0.05)


def test_dense_on_sequences_and_without_bias():
    layer = layers.Dense(3, use_bias=False, **F64)
    y = fd_check(layer, seq(2, 4, 5))
    assert y.shape == (2, 4, 3) and len(layer.weights) == 1


RNN_CASES = [
    ("SimpleRNN", {}), ("SimpleRNN", {"return_sequences": True, "activation": "relu"}),
    ("LSTM", {}), ("LSTM", {"return_sequences": True, "go_backwards": True}),
    ("LSTM", {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False}),
    ("LSTM", {"use_bias": False, "return_sequences": True}),
    ("GRU", {}), ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"go_backwards": True, "activation": "linear"}),
]


@pytest.mark.parametrize("cls,kw", RNN_CASES, ids=[f"{c}-{sorted(k)}" for c, k in RNN_CASES])
def test_recurrent_gradients(cls, kw):
    layer = getattr(layers, cls)(4, **kw, **F64)
    fd_check(layer, seq())


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_gradients_with_mask(cls, return_sequences):
    mask = np.array([[True] * 5, [True, True, True, False, False], [False, True, True, True, True]])
    layer = getattr(layers, cls)(3, return_sequences=return_sequences, **F64)
    fd_check(layer, seq(), mask=mask)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_state_outputs_and_initial_state_gradients(cls, return_sequences):
    """return_state=True: gradients flow in through the state outputs too, and
    out to the initial states (an encoder-decoder's wiring)."""
    layer = getattr(layers, cls)(3, return_sequences=return_sequences, return_state=True, **F64)
    x = seq()
    rng = np.random.default_rng(4)
    n = 2 if cls == "LSTM" else 1
    states = [rng.standard_normal((3, 3)) for _ in range(n)]
    fd_check(layer, x, kwargs={"initial_state": states}, check_kwargs=("initial_state",))
    # An output nobody uses passes no gradient (None), as in a graph.
    fd_check(layer, x, kwargs={"initial_state": states}, skip_outputs=(0,),
             check_kwargs=("initial_state",), seed=1)
    fd_check(layer, x, skip_outputs=tuple(range(1, n + 1)), seed=2)


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(3, activation="tanh", **F64),
    lambda: layers.LSTM(3, return_sequences=True, **F64),
    lambda: layers.GRU(3, **F64),
    lambda: layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True, **F64), **F64),
    lambda: layers.TimeDistributed(layers.Dense(2, **F64), **F64),
])
def test_backward_accumulates_over_calls(make):
    """Two calls of one layer (two contexts), then both backwards: the weight
    gradients add up (a layer shared at two places in a model)."""
    check_accumulates(make(), seq())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients(merge_mode, return_sequences):
    layer = layers.Bidirectional(layers.LSTM(3, return_sequences=return_sequences, **F64),
                                 merge_mode=merge_mode, **F64)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    fd_check(layer, seq(), mask=mask)


def test_time_distributed_gradients():
    layer = layers.TimeDistributed(layers.Dense(3, activation="tanh", **F64), **F64)
    y = fd_check(layer, seq())
    assert y.shape == (3, 5, 3)


@pytest.mark.parametrize("make", [
    lambda: layers.RepeatVector(3, **F64), lambda: layers.Flatten(**F64),
    lambda: layers.Activation("tanh", **F64), lambda: layers.Masking(0.0, **F64),
    lambda: layers.Dropout(0.5, **F64)])
def test_shape_layers_gradients(make):
    layer = make()
    x = np.random.default_rng(2).standard_normal((3, 4)) if isinstance(layer, layers.RepeatVector) \
        else seq()
    if isinstance(layer, layers.Masking):
        # A masked step (all features equal mask_value) passes no gradient;
        # finite differences cannot probe it (a nudge unmasks it).
        xm = x.copy()
        xm[0, 1] = 0.0
        ctx = Context()
        layer.forward(ctx, xm, training=True)
        dx = layer.backward(ctx, np.ones_like(xm))
        assert np.all(dx[0, 1] == 0) and np.all(dx[0, 0] == 1)
    if isinstance(layer, layers.Dropout):
        # Training draws a mask; backward must use the same one.
        ctx = Context()
        y = layer.forward(ctx, x, training=True)
        g = np.random.default_rng(3).standard_normal(y.shape)
        dx = layer.backward(ctx, g)
        kept = y != 0
        np.testing.assert_allclose(dx[kept], g[kept] * 2.0)
        assert np.all(dx[~kept] == 0)
        assert 0.3 < kept.mean() < 0.7
        np.testing.assert_array_equal(layer.call(x, training=False), x)
        return
    fd_check(layer, x)


def test_embedding_gradient_and_mask():
    layer = layers.Embedding(7, 3, mask_zero=True, **F64)
    ids = np.array([[1, 2, 0, 0], [3, 3, 6, 0]])
    layer.maybe_build(ids.shape)
    ctx = Context()
    y = layer.forward(ctx, ids, training=True)
    g = np.random.default_rng(0).standard_normal(y.shape)
    assert layer.backward(ctx, g) is None
    expected = np.zeros((7, 3))
    for b in range(2):
        for t in range(4):
            expected[ids[b, t]] += g[b, t]
    np.testing.assert_allclose(layer.embeddings.grad, expected)
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    with pytest.raises(ValueError, match=r"index 7 is outside \[0, 7\)"):
        layer(np.array([[7]]))


def test_masking_layer_mask():
    x = seq()
    x[1, 2:] = 0.0
    m = layers.Masking()
    np.testing.assert_array_equal(m.compute_mask(x), np.any(x != 0, axis=-1))


def test_recurrent_output_shapes_and_states():
    x = seq(2, 6, 3).astype("float32")
    lstm = layers.LSTM(4, return_sequences=True, return_state=True)
    out, h, c = lstm(x)
    assert out.shape == (2, 6, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    np.testing.assert_allclose(out[:, -1], h, rtol=1e-6)
    gru = layers.GRU(4, return_state=True)
    out, h = gru(x)
    np.testing.assert_array_equal(out, h)
    assert layers.SimpleRNN(2).compute_output_shape((None, None, 3)) == (None, 2)
    assert lstm.compute_output_shape((None, 6, 3)) == [(None, 6, 4), (None, 4), (None, 4)]


def test_initial_state_and_cell_api():
    x = seq(2, 3, 4).astype("float32")
    lstm = layers.LSTM(5)
    h0 = np.full((2, 5), 0.1, np.float32)
    c0 = np.full((2, 5), -0.2, np.float32)
    y = lstm(x, initial_state=[h0, c0])
    # One step at a time through the cell gives the same as the whole sequence.
    states = [h0, c0]
    for t in range(3):
        out, states = lstm.cell.call(x[:, t], states)
    np.testing.assert_allclose(y, out, rtol=1e-5, atol=1e-6)


def test_stateful_layer_carries_state_between_calls():
    x = seq(2, 3, 4).astype("float32")
    stateful = layers.GRU(3, stateful=True, batch_input_shape=(2, 3, 4))
    stateful(x)
    second = stateful(x)
    plain = layers.GRU(3)
    plain.maybe_build(x.shape)
    plain.set_weights(stateful.get_weights())
    first = plain(x)
    np.testing.assert_allclose(second, plain(np.concatenate([x, x], axis=1)), rtol=1e-5, atol=1e-6)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x), first, rtol=1e-6)


def test_weight_shapes_and_order_match_keras():
    lstm = layers.LSTM(4)
    lstm.maybe_build((None, 7, 3))
    assert [w.shape for w in lstm.get_weights()] == [(3, 16), (4, 16), (16,)]
    assert [v.path for v in lstm.weights] == ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel",
                                              "lstm/lstm_cell/bias"] or \
        [v.name for v in lstm.weights] == ["kernel", "recurrent_kernel", "bias"]
    np.testing.assert_array_equal(lstm.get_weights()[2][4:8], 1.0)  # unit_forget_bias
    gru = layers.GRU(4)
    gru.maybe_build((None, 7, 3))
    assert [w.shape for w in gru.get_weights()] == [(3, 12), (4, 12), (2, 12)]
    gru_b = layers.GRU(4, reset_after=False)
    gru_b.maybe_build((None, 7, 3))
    assert gru_b.get_weights()[2].shape == (12,)
    rnn = layers.SimpleRNN(4)
    rnn.maybe_build((None, 7, 3))
    assert [w.shape for w in rnn.get_weights()] == [(3, 4), (4, 4), (4,)]
    assert rnn.count_params() == 12 + 16 + 4
    # Keras's orthogonal recurrent kernel: orthonormal rows of the [U, G*U] matrix.
    r = lstm.get_weights()[1]
    np.testing.assert_allclose(r @ r.T, np.eye(4), atol=1e-5)
    with pytest.raises(ValueError, match=r"weight 'kernel' has shape \(3, 16\)"):
        lstm.set_weights([np.zeros((3, 15)), r, np.zeros(16)])


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(3, return_sequences=True, dropout=0.2, recurrent_dropout=0.1, go_backwards=True,
                        kernel_regularizer="l2", recurrent_constraint="max_norm", seed=3),
    lambda: layers.GRU(2, reset_after=False, activation="relu", stateful=False),
    lambda: layers.SimpleRNN(2, activation="sigmoid", use_bias=False),
    lambda: layers.Dense(3, activation="relu", kernel_initializer="he_normal"),
    lambda: layers.Embedding(10, 4, mask_zero=True),
    lambda: layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode="sum"),
    lambda: layers.TimeDistributed(layers.Dense(2)),
    lambda: layers.Dropout(0.3, seed=1), lambda: layers.RepeatVector(4), lambda: layers.Flatten(),
    lambda: layers.Masking(-1.0), lambda: layers.Activation("softmax"),
])
def test_get_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    again = layers.deserialize(layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == config


def test_unsupported_recurrent_activation_is_a_clear_error():
    with pytest.raises(ValueError, match=r"activation='elu' is not supported by rnnfast's recurrent "
                                         r"kernels; supported: tanh, sigmoid, hard_sigmoid, relu, linear"):
        layers.LSTM(3, activation="elu")


def test_bad_arguments():
    with pytest.raises(ValueError, match="units"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match="Invalid merge mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")
    with pytest.raises(TypeError, match="unexpected keyword"):
        layers.Dense(3, not_an_argument=1)
    lstm = layers.LSTM(2)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, features\)"):
        lstm(np.zeros((2, 3), np.float32))
    lstm(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="was built for 3 input features"):
        lstm(np.zeros((1, 2, 4), np.float32))


SIZED_LAYERS = {
    "SimpleRNN": (lambda n: layers.SimpleRNN(n), "units"),
    "LSTM": (lambda n: layers.LSTM(n), "units"),
    "GRU": (lambda n: layers.GRU(n), "units"),
    "SimpleRNNCell": (lambda n: layers.SimpleRNNCell(n), "units"),
    "LSTMCell": (lambda n: layers.LSTMCell(n), "units"),
    "GRUCell": (lambda n: layers.GRUCell(n), "units"),
    "Dense": (lambda n: layers.Dense(n), "units"),
    "Conv1D": (lambda n: layers.Conv1D(n, 3), "filters"),
    "Conv2D": (lambda n: layers.Conv2D(n, 3), "filters"),
    "Embedding input_dim": (lambda n: layers.Embedding(n, 4), "input_dim"),
    "Embedding output_dim": (lambda n: layers.Embedding(4, n), "output_dim"),
}


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "4", None])
@pytest.mark.parametrize("kind", sorted(SIZED_LAYERS))
def test_sizes_must_be_positive_integers(kind, bad):
    """As Keras refuses units <= 0 (ValueError naming units); rnnfast also
    refuses non-integers, which Keras lets through to a later failure, and
    True (a bool is an int to Python, and Dense(True) was Dense(1))."""
    make, arg = SIZED_LAYERS[kind]
    with pytest.raises(ValueError, match=rf"`?\b{arg}\b`?.*{re.escape(repr(bad))}"):
        make(bad)


def _built_on_one_feature(layer):
    name = type(layer).__name__
    layer.build((1, 1) if name.endswith("Cell") else {
        "Conv1D": (1, 5, 1), "Conv2D": (1, 5, 5, 1), "Embedding": (1, 2)}.get(name, (1, 2, 1)))


@pytest.mark.skipif(_budget.physical_memory() is None, reason="the OS does not tell its memory")
@pytest.mark.parametrize("size", ["memory", 2 ** 62, 10 ** 30])
@pytest.mark.parametrize("kind", sorted(SIZED_LAYERS))
def test_absurd_sizes_fail_at_build_naming_the_bytes(kind, size):
    """A size no machine holds fails when the layer builds, with a
    MemoryError naming the weight and its bytes, before anything is
    allocated (LSTM(2**62) raised NumPy's "Maximum allowed dimension
    exceeded"; LSTM(10**6) would have started a QR of a 10**6 x 4*10**6
    matrix)."""
    mem = _budget.physical_memory()
    n = mem if size == "memory" else size  # its first weight holds >= 4*n bytes
    make, _ = SIZED_LAYERS[kind]
    layer = make(n)
    with pytest.raises(MemoryError, match=r"weight '\w+' of layer '[\w/]+' with shape \(.*\) "
                                          rf"needs (\d+) bytes .* more than this machine's {mem} "
                                          rf"bytes of memory") as e:
        _built_on_one_feature(layer)
    needed = int(re.search(r"needs (\d+) bytes", str(e.value)).group(1))
    assert needed > mem and needed % 4 == 0
    assert not layer.built and not layer.weights


def test_a_layers_weights_count_together_against_memory(monkeypatch):
    """Each of an LSTM(4)'s weights fits in 400 bytes, but the recurrent
    kernel with the kernel does not (192 + 256 bytes)."""
    monkeypatch.setattr(_budget, "physical_memory", lambda: 400)
    layer = layers.LSTM(4)
    with pytest.raises(MemoryError, match=r"weight 'recurrent_kernel' of layer 'lstm\w*/lstm_cell' "
                                          r"with shape \(4, 16\), with the layer's other "
                                          r"weights, needs 448 bytes"):
        layer.build((1, 2, 3))
    monkeypatch.setattr(_budget, "physical_memory", lambda: 512)
    layers.LSTM(4).build((1, 2, 3))  # 192 + 256 + 64 bytes: fits exactly


def test_top_level_aliases():
    assert keras.Sequential is keras.models.Sequential
    assert keras.Input is keras.layers.Input
    assert keras.layers.LSTMCell and keras.layers.RNN
