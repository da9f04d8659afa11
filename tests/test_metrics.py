"""rnnfast.metrics: Keras 3 docstring examples, multi-batch weighted
accumulation against NumPy, configs, get() and the "accuracy" resolution."""

import os
import zlib

import numpy as np
import pytest

from rnnfast import _serialization
from rnnfast import metrics

EPS = 1e-7
RNG = np.random.default_rng(99)


@pytest.fixture(autouse=True)
def _seeded_rng(request):
    """Each test draws the same data however the tests are selected
    (RNNFAST_TEST_SEED shifts all seeds, to try other draws)."""
    global RNG
    offset = int(os.environ.get("RNNFAST_TEST_SEED", "0"))
    RNG = np.random.default_rng(zlib.crc32(request.node.name.encode()) + offset)


# --------------------------------------------------------------------------- references

def ref_accuracy(t, p):
    return np.mean(t == p, axis=-1)


def ref_binary_accuracy(t, p, threshold=0.5):
    return np.mean(t == (p > threshold), axis=-1)


def ref_categorical_accuracy(t, p):
    return (np.argmax(t, -1) == np.argmax(p, -1)).astype(float)


def ref_sparse_categorical_accuracy(t, p):
    return (t.reshape(p.shape[:-1]) == np.argmax(p, -1)).astype(float)


def ref_top_k(labels, p, k):
    target = np.take_along_axis(p, labels[..., None], axis=-1)
    return (np.sum(p > target, axis=-1) < k).astype(float)


def ref_top_k_categorical(t, p, k=5):
    return ref_top_k(np.argmax(t, -1), p, k)


def ref_sparse_top_k(t, p, k=5):
    return ref_top_k(t.reshape(p.shape[:-1]).astype(int), p, k)


def ref_mse(t, p):
    return np.mean((t - p) ** 2, -1)


def ref_mae(t, p):
    return np.mean(np.abs(t - p), -1)


def ref_mape(t, p):
    return 100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), -1)


def ref_msle(t, p):
    return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, -1)


def ref_bce(t, p, from_logits=False, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    p = np.clip(p, EPS, 1 - EPS)
    return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), -1)


def ref_cce(t, p, from_logits=False, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        e = np.exp(p - p.max(-1, keepdims=True))
        q = e / e.sum(-1, keepdims=True)
    else:
        q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(t * np.log(q), -1)


def ref_scce(t, p, from_logits=False):
    return ref_cce(np.eye(p.shape[-1])[t.reshape(p.shape[:-1])], p, from_logits)


def ref_kld(t, p):
    t, p = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    return np.sum(t * np.log(t / p), -1)


def ref_hinge(t, p):
    t = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
    return np.mean(np.maximum(1 - t * p, 0), -1)


# --------------------------------------------------------------------------- data

def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def d_exact(shape):
    t = RNG.integers(0, 3, size=shape[:-1] + (1,)).astype(float)
    p = np.where(RNG.random(t.shape) < 0.6, t, RNG.integers(0, 3, size=t.shape))
    return t, p


def d_binary(shape):
    return RNG.integers(0, 2, size=shape).astype(float), RNG.random(shape)


def d_onehot(shape):
    return np.eye(shape[-1])[RNG.integers(0, shape[-1], size=shape[:-1])], RNG.random(shape)


def d_sparse(shape):
    return RNG.integers(0, shape[-1], size=shape[:-1]), RNG.random(shape)


def d_sparse_col(shape):
    return RNG.integers(0, shape[-1], size=shape[:-1] + (1,)), RNG.random(shape)


def d_regression(shape):
    return RNG.normal(size=shape), RNG.normal(size=shape)


def d_positive(shape):
    return RNG.uniform(0.1, 2, size=shape), RNG.uniform(0.1, 2, size=shape)


def d_probs(shape):
    return np.eye(shape[-1])[RNG.integers(0, shape[-1], size=shape[:-1])], \
        _softmax(RNG.normal(size=shape))


def d_soft(shape):
    return _softmax(RNG.normal(size=shape)), _softmax(RNG.normal(size=shape))


def d_logits(shape):
    return RNG.integers(0, 2, size=shape).astype(float), RNG.normal(size=shape)


METRIC_SPECS = [
    ("accuracy", lambda: metrics.Accuracy(), ref_accuracy, d_exact),
    ("binary_accuracy", lambda: metrics.BinaryAccuracy(), ref_binary_accuracy, d_binary),
    ("binary_accuracy_0.3", lambda: metrics.BinaryAccuracy(threshold=0.3),
     lambda t, p: ref_binary_accuracy(t, p, 0.3), d_binary),
    ("categorical_accuracy", lambda: metrics.CategoricalAccuracy(), ref_categorical_accuracy,
     d_onehot),
    ("sparse_categorical_accuracy", lambda: metrics.SparseCategoricalAccuracy(),
     ref_sparse_categorical_accuracy, d_sparse),
    ("sparse_categorical_accuracy_col", lambda: metrics.SparseCategoricalAccuracy(),
     ref_sparse_categorical_accuracy, d_sparse_col),
    ("top_k", lambda: metrics.TopKCategoricalAccuracy(k=2),
     lambda t, p: ref_top_k_categorical(t, p, 2), d_onehot),
    ("top_k_default", lambda: metrics.TopKCategoricalAccuracy(), ref_top_k_categorical,
     d_onehot),
    ("sparse_top_k", lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
     lambda t, p: ref_sparse_top_k(t, p, 2), d_sparse),
    ("mse", lambda: metrics.MeanSquaredError(), ref_mse, d_regression),
    ("mae", lambda: metrics.MeanAbsoluteError(), ref_mae, d_regression),
    ("mape", lambda: metrics.MeanAbsolutePercentageError(), ref_mape, d_positive),
    ("msle", lambda: metrics.MeanSquaredLogarithmicError(), ref_msle, d_positive),
    ("bce", lambda: metrics.BinaryCrossentropy(), ref_bce, d_binary),
    ("bce_logits", lambda: metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
     lambda t, p: ref_bce(t, p, True, 0.1), d_logits),
    ("cce", lambda: metrics.CategoricalCrossentropy(), ref_cce, d_probs),
    ("cce_logits", lambda: metrics.CategoricalCrossentropy(from_logits=True,
                                                           label_smoothing=0.2),
     lambda t, p: ref_cce(t, p, True, 0.2), d_probs),
    ("scce", lambda: metrics.SparseCategoricalCrossentropy(), ref_scce, d_sparse),
    ("scce_logits", lambda: metrics.SparseCategoricalCrossentropy(from_logits=True),
     lambda t, p: ref_scce(t, p, True), d_sparse),
    ("kld", lambda: metrics.KLDivergence(), ref_kld, d_soft),
    ("hinge", lambda: metrics.Hinge(), ref_hinge, d_binary),
    ("wrapped_fn", lambda: metrics.MeanMetricWrapper(ref_mse), ref_mse, d_regression),
]
METRIC_IDS = [s[0] for s in METRIC_SPECS]


def ref_running_mean(batches, ref):
    """Keras's Mean: per-sample values averaged over the axes the weight lacks,
    total += sum(v * w), count += sum(per-sample w) (or B)."""
    total = count = 0.0
    for t, p, sw in batches:
        v = np.asarray(ref(t, p), dtype=float)
        if sw is None:
            v = v.reshape(v.shape[0], -1).mean(axis=1)
            total += v.sum()
            count += v.shape[0]
        elif sw.ndim == 1:
            v = v.reshape(v.shape[0], -1).mean(axis=1)
            total += np.sum(v * sw)
            count += sw.sum()
        else:
            total += np.sum((v * sw).reshape(v.shape[0], -1).mean(axis=1))
            count += np.sum(sw.reshape(sw.shape[0], -1).mean(axis=1))
    return total / count


# --------------------------------------------------------------------------- accumulation

@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)], ids=["BxD", "BxTxD"])
@pytest.mark.parametrize("spec", METRIC_SPECS, ids=METRIC_IDS)
def test_weighted_accumulation_over_batches(spec, shape):
    _, make, ref, data = spec
    m = make()
    assert m.result() == 0.0
    batches = []
    for i in range(4):
        t, p = data(shape)
        v = np.asarray(ref(t, p))
        if i == 0:
            sw = None
        elif i == 1:
            sw = RNG.uniform(0, 2, size=shape[0])
        elif i == 2:
            sw = RNG.uniform(0, 2, size=v.shape)
        else:
            sw = (RNG.random(size=shape[0]) > 0.5).astype(float)
            sw[0] = 1.0
        m.update_state(t, p, sample_weight=sw)
        batches.append((t, p, sw))
        got = m.result()
        assert isinstance(got, float)
        assert got == pytest.approx(ref_running_mean(batches, ref), rel=1e-6, abs=1e-9)
    m.reset_state()
    assert m.result() == 0.0
    t, p, _ = batches[0]
    assert m(t, p) == pytest.approx(ref_running_mean(batches[:1], ref), rel=1e-6)


def test_mask_in_mean_metric_wrapper():
    t, p = d_sparse((3, 5, 4))
    mask = RNG.random((3, 5)) > 0.3
    mask[:, 0] = True
    v = ref_sparse_categorical_accuracy(t, p)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(t, p, mask=mask)
    assert m.result() == pytest.approx(v[mask].mean())
    sw = np.array([1.0, 2.0, 0.5])
    m.reset_state()
    m.update_state(t, p, sample_weight=sw, mask=mask)
    w = sw[:, None] * mask
    assert m.result() == pytest.approx(np.sum(v * w) / np.sum(w))


def test_mean_and_sum():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    m.reset_state()
    m.update_state(2.0)
    m.update_state(5.0, sample_weight=3)
    assert m.result() == pytest.approx((2 + 15) / 4)
    m.reset_state()
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]), sample_weight=[1.0, 3.0])
    assert m.result() == pytest.approx((2 * 1 + 6 * 3) / 4)
    assert m.total == pytest.approx(20.0) and m.count == pytest.approx(4.0)
    s = metrics.Sum()
    s.update_state([1, 3, 5, 7])
    assert s.result() == 16.0
    s.reset_state()
    s.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    s.update_state(np.ones((2, 3)))
    assert s.result() == 4.0 + 6.0
    assert metrics.Sum().result() == 0.0 and metrics.Mean().result() == 0.0


def test_mean_of_python_numbers_matches_the_array_path():
    # Python floats and ints take a shortcut (the training loop's loss per
    # batch); NumPy scalars take the general path: both must agree exactly.
    rng = np.random.default_rng(3)
    fast, general = metrics.Mean(), metrics.Mean()
    for v, w in zip(rng.standard_normal(50) * 10, rng.integers(1, 64, 50)):
        fast.update_state(float(v), sample_weight=int(w))
        general.update_state(np.float64(v), sample_weight=np.int64(w))
    fast.update_state(3)
    general.update_state(np.int64(3))
    assert fast.total == general.total and fast.count == general.count
    assert fast.result() == general.result()


def test_root_mean_squared_error():
    m = metrics.RootMeanSquaredError()
    assert m.result() == 0.0
    batches = []
    for sw in (None, RNG.uniform(size=4)):
        t, p = d_regression((4, 3))
        m.update_state(t, p, sample_weight=sw)
        batches.append((t, p, sw))
    assert m.result() == pytest.approx(np.sqrt(ref_running_mean(batches, ref_mse)))
    m.reset_state()
    m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    assert m.result() == pytest.approx(0.5)


def test_top_k_ties_count_as_in():
    p = np.array([[0.5, 0.5, 0.5, 0.1], [0.1, 0.9, 0.2, 0.3]])
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(np.array([2, 0]), p, k=1), [1.0, 0.0])
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(np.array([[2], [3]]), p, k=2),
        [[1.0], [1.0]])
    np.testing.assert_array_equal(
        metrics.top_k_categorical_accuracy(np.eye(4)[[3, 0]], p, k=10), [1.0, 1.0])


# --------------------------------------------------------------------------- Keras examples

KERAS_EXAMPLES = [
    (metrics.Accuracy, [([[1], [2], [3], [4]], [[0], [2], [3], [4]], None)], 0.75),
    (metrics.Accuracy, [([[1], [2], [3], [4]], [[0], [2], [3], [4]], [1, 1, 0, 0])], 0.5),
    (metrics.BinaryAccuracy, [([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], None)], 0.75),
    (metrics.BinaryAccuracy,
     [([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], [1, 0, 0, 1])], 0.5),
    (metrics.CategoricalAccuracy,
     [([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], None)], 0.5),
    (metrics.CategoricalAccuracy,
     [([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3])], 0.3),
    (metrics.SparseCategoricalAccuracy,
     [([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], None)], 0.5),
    (metrics.SparseCategoricalAccuracy,
     [([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], [0.7, 0.3])], 0.3),
    (lambda: metrics.TopKCategoricalAccuracy(k=1),
     [([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3])], 0.3),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=1),
     [([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], None)], 0.5),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=1),
     [([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], [0.7, 0.3])], 0.3),
    (metrics.MeanSquaredError, [([[0, 1], [0, 0]], [[1, 1], [0, 0]], None)], 0.25),
    (metrics.MeanAbsoluteError, [([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])], 0.5),
    (metrics.MeanAbsolutePercentageError,
     [([[0, 1], [0, 0]], [[1, 1], [0, 0]], None)], 250000000.0),
    (metrics.MeanAbsolutePercentageError,
     [([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])], 500000000.0),
    (metrics.MeanSquaredLogarithmicError,
     [([[0, 1], [0, 0]], [[1, 1], [0, 0]], None)], 0.12011322),
    (metrics.MeanSquaredLogarithmicError,
     [([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])], 0.24022643),
    (metrics.LogCoshError, [([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])], 0.21689045),
    (metrics.RootMeanSquaredError, [([[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0])], 0.70710677),
    (metrics.BinaryCrossentropy, [([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], None)],
     0.81492424),
    (metrics.BinaryCrossentropy, [([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], [1, 0])],
     0.9162905),
    (metrics.CategoricalCrossentropy,
     [([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], None)], 1.1769392),
    (metrics.CategoricalCrossentropy,
     [([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], [0.3, 0.7])], 1.6271976),
    (metrics.SparseCategoricalCrossentropy,
     [([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], [0.3, 0.7])], 1.6271976),
]


@pytest.mark.parametrize("make,updates,expected", KERAS_EXAMPLES)
def test_keras_docstring_examples(make, updates, expected):
    m = make()
    for t, p, sw in updates:
        m.update_state(np.array(t), np.array(p),
                       sample_weight=None if sw is None else np.array(sw))
    assert m.result() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- get / config

GET_NAMES = {
    "accuracy": (metrics.Accuracy, "accuracy"),
    "Accuracy": (metrics.Accuracy, "accuracy"),
    "binary_accuracy": (metrics.BinaryAccuracy, "binary_accuracy"),
    "categorical_accuracy": (metrics.CategoricalAccuracy, "categorical_accuracy"),
    "sparse_categorical_accuracy": (metrics.SparseCategoricalAccuracy,
                                    "sparse_categorical_accuracy"),
    "top_k_categorical_accuracy": (metrics.TopKCategoricalAccuracy,
                                   "top_k_categorical_accuracy"),
    "sparse_top_k_categorical_accuracy": (metrics.SparseTopKCategoricalAccuracy,
                                          "sparse_top_k_categorical_accuracy"),
    "mse": (metrics.MeanSquaredError, "mean_squared_error"),
    "MSE": (metrics.MeanSquaredError, "mean_squared_error"),
    "mean_squared_error": (metrics.MeanSquaredError, "mean_squared_error"),
    "mae": (metrics.MeanAbsoluteError, "mean_absolute_error"),
    "mean_absolute_error": (metrics.MeanAbsoluteError, "mean_absolute_error"),
    "mape": (metrics.MeanAbsolutePercentageError, "mean_absolute_percentage_error"),
    "msle": (metrics.MeanSquaredLogarithmicError, "mean_squared_logarithmic_error"),
    "root_mean_squared_error": (metrics.RootMeanSquaredError, "root_mean_squared_error"),
    "RootMeanSquaredError": (metrics.RootMeanSquaredError, "root_mean_squared_error"),
    "bce": (metrics.BinaryCrossentropy, "binary_crossentropy"),
    "binary_crossentropy": (metrics.BinaryCrossentropy, "binary_crossentropy"),
    "categorical_crossentropy": (metrics.CategoricalCrossentropy, "categorical_crossentropy"),
    "sparse_categorical_crossentropy": (metrics.SparseCategoricalCrossentropy,
                                        "sparse_categorical_crossentropy"),
    "kl_divergence": (metrics.KLDivergence, "kl_divergence"),
    "hinge": (metrics.Hinge, "hinge"),
    "log_cosh_error": (metrics.LogCoshError, "logcosh"),
    "mean": (metrics.Mean, "mean"),
    "sum": (metrics.Sum, "sum"),
    # Names Keras 3 knows only as functions: wrapped, named as given.
    "kld": (metrics.MeanMetricWrapper, "kld"),
    "huber": (metrics.MeanMetricWrapper, "huber"),
    "logcosh": (metrics.MeanMetricWrapper, "logcosh"),
}


@pytest.mark.parametrize("identifier", sorted(GET_NAMES))
def test_get_names(identifier):
    cls, name = GET_NAMES[identifier]
    m = metrics.get(identifier)
    assert type(m) is cls and m.name == name


def test_get_other_identifiers_and_errors():
    assert metrics.get(None) is None
    inst = metrics.BinaryAccuracy(threshold=0.7)
    assert metrics.get(inst) is inst
    assert isinstance(metrics.get(metrics.CategoricalAccuracy), metrics.CategoricalAccuracy)
    got = metrics.get({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}})
    assert isinstance(got, metrics.CategoricalCrossentropy) and got.from_logits

    def my_metric(y_true, y_pred):
        return np.mean(np.abs(y_true - y_pred), axis=-1)

    wrapped = metrics.get(my_metric)
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "my_metric"
    wrapped.update_state([[0.0, 2.0]], [[1.0, 1.0]])
    assert wrapped.result() == 1.0
    for bad in ("no_such_metric", "acc"):
        with pytest.raises(ValueError, match=bad):
            metrics.get(bad)
    with pytest.raises(ValueError):
        metrics.get(3.5)
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=1.0)


ALL_METRICS = [
    metrics.Mean(name="m"), metrics.Sum(), metrics.MeanSquaredError(),
    metrics.MeanAbsoluteError(), metrics.MeanAbsolutePercentageError(),
    metrics.MeanSquaredLogarithmicError(), metrics.RootMeanSquaredError(),
    metrics.LogCoshError(), metrics.Hinge(), metrics.SquaredHinge(),
    metrics.CategoricalHinge(), metrics.KLDivergence(), metrics.Accuracy(name="acc"),
    metrics.BinaryAccuracy(threshold=0.3), metrics.CategoricalAccuracy(),
    metrics.SparseCategoricalAccuracy(), metrics.TopKCategoricalAccuracy(k=3),
    metrics.SparseTopKCategoricalAccuracy(k=2),
    metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    metrics.CategoricalCrossentropy(label_smoothing=0.2, axis=-1),
    metrics.SparseCategoricalCrossentropy(from_logits=True),
    metrics.MeanMetricWrapper(metrics.binary_accuracy, name="ba", threshold=0.8),
]


@pytest.mark.parametrize("metric", ALL_METRICS, ids=lambda m: type(m).__name__)
def test_serialize_round_trip(metric):
    config = metrics.serialize(metric)
    assert config["module"] == "keras.metrics"
    assert config["class_name"] == type(metric).__name__
    assert config["config"]["name"] == metric.name and config["config"]["dtype"] == "float32"
    back = metrics.deserialize(config)
    assert type(back) is type(metric) and back.get_config() == metric.get_config()
    assert metrics.get(config).get_config() == metric.get_config()


def test_configs_use_keras_keys():
    assert metrics.Accuracy().get_config() == {"name": "accuracy", "dtype": "float32"}
    assert metrics.BinaryAccuracy().get_config() == {
        "name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}
    assert metrics.TopKCategoricalAccuracy().get_config() == {
        "name": "top_k_categorical_accuracy", "dtype": "float32", "k": 5}
    assert metrics.BinaryCrossentropy().get_config() == {
        "name": "binary_crossentropy", "dtype": "float32", "from_logits": False,
        "label_smoothing": 0}
    config = metrics.MeanMetricWrapper(metrics.binary_accuracy, threshold=0.8).get_config()
    assert config["fn"]["config"] == "binary_accuracy" and config["threshold"] == 0.8


def test_custom_function_round_trip():
    def _my_acc(y_true, y_pred):
        return np.mean(np.equal(y_true, np.round(y_pred)), axis=-1)

    _serialization.register_custom_object("_my_acc", _my_acc)
    m = metrics.MeanMetricWrapper(_my_acc)
    back = metrics.MeanMetricWrapper.from_config(m.get_config())
    assert back._fn is _my_acc and back.name == "_my_acc"
    assert metrics.get("_my_acc")._fn is _my_acc


def test_directions():
    assert metrics.Accuracy()._direction == "up"
    assert metrics.SparseTopKCategoricalAccuracy()._direction == "up"
    assert metrics.MeanSquaredError()._direction == "down"
    assert metrics.RootMeanSquaredError()._direction == "down"
    assert metrics.get("kld")._direction == "down"
    assert metrics.Mean()._direction is None


def test_loss_functions_reexported():
    from rnnfast import losses
    for name in ("mse", "mae", "mape", "msle", "kld", "logcosh", "mean_squared_error",
                 "binary_crossentropy", "categorical_crossentropy",
                 "sparse_categorical_crossentropy", "hinge", "huber"):
        assert getattr(metrics, name) is getattr(losses, name)


# --------------------------------------------------------------------------- accuracy rule

@pytest.mark.parametrize("y_true_shape,y_pred_shape,cls", [
    ((32, 1), (32, 1), metrics.BinaryAccuracy),
    ((32,), (32, 1), metrics.BinaryAccuracy),
    ((32, 10, 1), (32, 10, 1), metrics.BinaryAccuracy),
    ((32,), (32, 10), metrics.SparseCategoricalAccuracy),
    ((32, 1), (32, 10), metrics.SparseCategoricalAccuracy),
    ((32, 20), (32, 20, 10), metrics.SparseCategoricalAccuracy),
    ((32, 20, 1), (32, 20, 10), metrics.SparseCategoricalAccuracy),
    ((32, 10), (32, 10), metrics.CategoricalAccuracy),
    ((32, 20, 10), (32, 20, 10), metrics.CategoricalAccuracy),
])
def test_resolve_accuracy(y_true_shape, y_pred_shape, cls):
    m = metrics.resolve_accuracy("categorical_crossentropy", y_true_shape, y_pred_shape)
    assert type(m) is cls and m.name == "accuracy"
    m = metrics.resolve_accuracy(None, y_true_shape, y_pred_shape, name="acc")
    assert type(m) is cls and m.name == "acc"


def test_resolve_accuracy_uses_loss_only_without_label_shape():
    from rnnfast import losses
    cases = [("binary_crossentropy", metrics.BinaryAccuracy),
             (losses.BinaryCrossentropy(), metrics.BinaryAccuracy),
             ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
             (losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics.SparseCategoricalAccuracy),
             ("SparseCategoricalCrossentropy", metrics.SparseCategoricalAccuracy),
             ("categorical_crossentropy", metrics.CategoricalAccuracy),
             ("mse", metrics.CategoricalAccuracy)]
    for loss, cls in cases:
        assert type(metrics.resolve_accuracy(loss, None, (8, 5))) is cls
    # The shapes win when known (Keras 3 looks at shapes only).
    assert type(metrics.resolve_accuracy("binary_crossentropy", (8, 5), (8, 5))) is \
        metrics.CategoricalAccuracy


def test_get_compile_metric_names():
    m = metrics.get_compile_metric("acc", (8,), (8, 4))
    assert type(m) is metrics.SparseCategoricalAccuracy and m.name == "acc"
    m = metrics.get_compile_metric("Accuracy", (8, 1), (8, 1))
    assert type(m) is metrics.BinaryAccuracy and m.name == "Accuracy"
    assert metrics.get_compile_metric("mse").name == "mse"
    assert metrics.get_compile_metric(metrics.MeanAbsoluteError()).name == "mean_absolute_error"
    # The Accuracy class itself is the exact-match metric.
    assert type(metrics.get_compile_metric(metrics.Accuracy())) is metrics.Accuracy
