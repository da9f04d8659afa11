"""rnnfast.losses against NumPy formulas written from Keras 3's definitions,
Keras's docstring examples, and central finite differences (float64) for
every gradient."""

import os
import zlib

import numpy as np
import pytest

from rnnfast import losses
from rnnfast import _serialization

EPS = 1e-7
RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded_rng(request):
    """Each test draws the same data however the tests are selected
    (RNNFAST_TEST_SEED shifts all seeds, to try other draws)."""
    global RNG
    offset = int(os.environ.get("RNNFAST_TEST_SEED", "0"))
    RNG = np.random.default_rng(zlib.crc32(request.node.name.encode()) + offset)


# --------------------------------------------------------------------------- references

def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_mse(t, p):
    return np.mean((t - p) ** 2, axis=-1)


def ref_mae(t, p):
    return np.mean(np.abs(t - p), axis=-1)


def ref_mape(t, p):
    return 100.0 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), axis=-1)


def ref_msle(t, p):
    return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2,
                   axis=-1)


def ref_huber(t, p, delta=1.0):
    e = p - t
    v = np.where(np.abs(e) <= delta, 0.5 * e ** 2, delta * np.abs(e) - 0.5 * delta ** 2)
    return np.mean(v, axis=-1)


def ref_log_cosh(t, p):
    return np.mean(np.log(np.cosh(p - t)), axis=-1)


def _pm1(t):
    return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t


def ref_hinge(t, p):
    return np.mean(np.maximum(1 - _pm1(t) * p, 0), axis=-1)


def ref_squared_hinge(t, p):
    return np.mean(np.maximum(1 - _pm1(t) * p, 0) ** 2, axis=-1)


def ref_categorical_hinge(t, p):
    pos = np.sum(t * p, axis=-1)
    neg = np.max((1 - t) * p, axis=-1)
    return np.maximum(neg - pos + 1, 0)


def ref_kld(t, p):
    t = np.clip(t, EPS, 1)
    p = np.clip(p, EPS, 1)
    return np.sum(t * np.log(t / p), axis=-1)


def ref_bce(t, p, from_logits=False, label_smoothing=0.0, axis=-1):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = _sig(p)
    p = np.clip(p, EPS, 1 - EPS)
    return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=axis)


def ref_cce(t, p, from_logits=False, label_smoothing=0.0, axis=-1):
    t = np.moveaxis(t, axis, -1)
    p = np.moveaxis(p, axis, -1)
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        e = np.exp(p - p.max(axis=-1, keepdims=True))
        q = e / e.sum(axis=-1, keepdims=True)
    else:
        q = np.clip(p / p.sum(axis=-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(t * np.log(q), axis=-1)


def ref_scce(t, p, from_logits=False, ignore_class=None):
    t = np.asarray(t)
    if t.ndim == p.ndim:
        t = t[..., 0]
    valid = np.ones(t.shape, bool) if ignore_class is None else (t != ignore_class)
    onehot = np.eye(p.shape[-1])[np.where(valid, t, 0).astype(int)]
    return np.where(valid, ref_cce(onehot, p, from_logits), 0.0)


# --------------------------------------------------------------------------- data

def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _onehot(shape):
    return np.eye(shape[-1])[RNG.integers(0, shape[-1], size=shape[:-1])]


def _away_from(x, kinks, gap=0.05):
    """Moves values off non-differentiable points so finite differences work."""
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, k + np.where(x >= k, gap, -gap), x)
    return x


def data_regression(shape):
    return RNG.normal(size=shape), RNG.normal(size=shape)


def data_positive(shape):
    return RNG.uniform(0.2, 3.0, size=shape), RNG.uniform(0.2, 3.0, size=shape)


def data_mape(shape):
    t = RNG.uniform(0.5, 2.0, size=shape) * RNG.choice([-1, 1], size=shape)
    p = t + _away_from(RNG.normal(size=shape), [0.0])
    return t, p


def data_huber(shape):
    t = RNG.normal(size=shape)
    return t, t + _away_from(RNG.normal(scale=1.5, size=shape), [-1.0, 1.0])


def data_hinge(shape):
    t = RNG.choice([-1.0, 1.0], size=shape)
    p = _away_from(RNG.normal(size=shape), [-1.0, 1.0])
    return t, p


def data_hinge01(shape):
    t = RNG.choice([0.0, 1.0], size=shape)
    p = _away_from(RNG.normal(size=shape), [-1.0, 1.0])
    return t, p


def data_cat_hinge(shape):
    t = _onehot(shape)
    p = RNG.normal(size=shape)
    return t, p


def data_kld(shape):
    return _softmax(RNG.normal(size=shape)), _softmax(RNG.normal(size=shape))


def data_bce(shape):
    return RNG.integers(0, 2, size=shape).astype(float), RNG.uniform(0.05, 0.95, size=shape)


def data_bce_logits(shape):
    return RNG.uniform(0, 1, size=shape), RNG.normal(scale=2.0, size=shape)


def data_cce(shape):
    return _onehot(shape), _softmax(RNG.normal(size=shape))


def data_cce_unnormalized(shape):
    return _onehot(shape), RNG.uniform(0.1, 1.0, size=shape)


def data_cce_logits(shape):
    return _softmax(RNG.normal(size=shape)), RNG.normal(scale=2.0, size=shape)


def data_scce(shape):
    return RNG.integers(0, shape[-1], size=shape[:-1]), _softmax(RNG.normal(size=shape))


def data_scce_logits(shape):
    return RNG.integers(0, shape[-1], size=shape[:-1] + (1,)), RNG.normal(size=shape)


# (id, class, kwargs, function, reference, data, whether [B, 1] outputs make sense)
SPECS = [
    ("mse", losses.MeanSquaredError, {}, losses.mean_squared_error, ref_mse,
     data_regression, True),
    ("mae", losses.MeanAbsoluteError, {}, losses.mean_absolute_error, ref_mae,
     data_mape, True),
    ("mape", losses.MeanAbsolutePercentageError, {}, losses.mean_absolute_percentage_error,
     ref_mape, data_mape, True),
    ("msle", losses.MeanSquaredLogarithmicError, {}, losses.mean_squared_logarithmic_error,
     ref_msle, data_positive, True),
    ("huber", losses.Huber, {}, losses.huber, ref_huber, data_huber, True),
    ("huber_d2", losses.Huber, {"delta": 2.0}, losses.huber, ref_huber, data_huber, True),
    ("log_cosh", losses.LogCosh, {}, losses.log_cosh, ref_log_cosh, data_regression, True),
    ("hinge", losses.Hinge, {}, losses.hinge, ref_hinge, data_hinge, True),
    ("hinge01", losses.Hinge, {}, losses.hinge, ref_hinge, data_hinge01, True),
    ("squared_hinge", losses.SquaredHinge, {}, losses.squared_hinge, ref_squared_hinge,
     data_hinge01, True),
    ("categorical_hinge", losses.CategoricalHinge, {}, losses.categorical_hinge,
     ref_categorical_hinge, data_cat_hinge, False),
    ("kld", losses.KLDivergence, {}, losses.kl_divergence, ref_kld, data_kld, False),
    ("bce", losses.BinaryCrossentropy, {}, losses.binary_crossentropy, ref_bce, data_bce,
     True),
    ("bce_smooth", losses.BinaryCrossentropy, {"label_smoothing": 0.2},
     losses.binary_crossentropy, ref_bce, data_bce, True),
    ("bce_logits", losses.BinaryCrossentropy, {"from_logits": True},
     losses.binary_crossentropy, ref_bce, data_bce_logits, True),
    ("bce_logits_smooth", losses.BinaryCrossentropy,
     {"from_logits": True, "label_smoothing": 0.1}, losses.binary_crossentropy, ref_bce,
     data_bce_logits, True),
    ("cce", losses.CategoricalCrossentropy, {}, losses.categorical_crossentropy, ref_cce,
     data_cce, False),
    ("cce_unnormalized", losses.CategoricalCrossentropy, {"label_smoothing": 0.1},
     losses.categorical_crossentropy, ref_cce, data_cce_unnormalized, False),
    ("cce_logits", losses.CategoricalCrossentropy, {"from_logits": True},
     losses.categorical_crossentropy, ref_cce, data_cce_logits, False),
    ("cce_logits_smooth", losses.CategoricalCrossentropy,
     {"from_logits": True, "label_smoothing": 0.3}, losses.categorical_crossentropy, ref_cce,
     data_cce_logits, False),
    ("scce", losses.SparseCategoricalCrossentropy, {},
     losses.sparse_categorical_crossentropy, ref_scce, data_scce, False),
    ("scce_logits", losses.SparseCategoricalCrossentropy, {"from_logits": True},
     losses.sparse_categorical_crossentropy, ref_scce, data_scce_logits, False),
]
SPEC_IDS = [s[0] for s in SPECS]
SHAPES = [(5, 1), (4, 3), (3, 4, 3)]


def _cases():
    for spec in SPECS:
        for shape in SHAPES:
            if shape[-1] == 1 and not spec[6]:
                continue
            yield pytest.param(spec, shape, id=f"{spec[0]}-{'x'.join(map(str, shape))}")


CASES = list(_cases())


def _fd_call(loss, t, p, h=1e-6):
    """Central differences of loss.call, element by element:
    J[idx] = d call[idx[:-1]] / d p[idx] (call reduces the last axis)."""
    g = np.zeros_like(p)
    for idx in np.ndindex(*p.shape):
        pp = p.copy()
        pm = p.copy()
        pp[idx] += h
        pm[idx] -= h
        d = (np.asarray(loss.call(t, pp)) - np.asarray(loss.call(t, pm))) / (2 * h)
        g[idx] = d[idx[:-1]]
    return g


def _fd_scalar(f, p, h=1e-6):
    g = np.zeros_like(p)
    for idx in np.ndindex(*p.shape):
        pp = p.copy()
        pm = p.copy()
        pp[idx] += h
        pm[idx] -= h
        g[idx] = (f(pp) - f(pm)) / (2 * h)
    return g


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize("spec,shape", CASES)
def test_call_and_function_match_reference(spec, shape):
    _, cls, kw, fn, ref, data, _ = spec
    t, p = data(shape)
    expected = ref(t, p, **kw)
    loss = cls(**kw)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        got = loss.call(t, p.astype(dtype))
        assert got.dtype == dtype
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(fn(t, p, **kw), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean",
                                       "mean_with_sample_weight", "none", None])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_reductions_and_sample_weights(spec, reduction):
    _, cls, kw, _, ref, data, _ = spec
    loss = cls(reduction=reduction, **kw)
    for shape in ((4, 3), (3, 4, 3)):
        t, p = data(shape)
        v = ref(t, p, **kw)
        B = shape[0]
        for sw in (None, RNG.uniform(0.1, 2, size=B), RNG.uniform(0, 2, size=v.shape)):
            if sw is None:
                w = np.ones_like(v)
            elif sw.ndim < v.ndim:  # [B] against [B, T]: one weight per sample
                w = np.broadcast_to(sw.reshape(sw.shape + (1,) * (v.ndim - sw.ndim)), v.shape)
            else:
                w = sw
            got = loss(t, p, sample_weight=sw)
            if reduction in ("none", None):
                np.testing.assert_allclose(got, v * w, rtol=1e-10)
                continue
            if reduction == "sum":
                expected = np.sum(v * w)
            elif reduction == "mean_with_sample_weight" and sw is not None:
                expected = np.sum(v * w) / np.sum(w)
            else:
                expected = np.sum(v * w) / v.size
            assert isinstance(got, float)
            np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_sample_weight_shapes_like_keras():
    t, p = data_regression((4, 1))
    v = ref_mse(t, p)  # [4]
    loss = losses.MeanSquaredError()
    sw = np.array([1.0, 2.0, 0.0, 0.5])
    expected = np.sum(v * sw) / 4
    for w in (sw, sw[:, None], list(sw)):
        assert loss(t, p, sample_weight=w) == pytest.approx(expected, rel=1e-12)
    # A scalar weight scales the mean.
    assert loss(t, p, sample_weight=3.0) == pytest.approx(3 * np.mean(v), rel=1e-12)
    # [B, T, 1] weights against [B, T] losses.
    t, p = data_regression((2, 3, 4))
    w = RNG.uniform(size=(2, 3, 1))
    assert loss(t, p, sample_weight=w) == pytest.approx(
        np.sum(ref_mse(t, p) * w[..., 0]) / 6, rel=1e-12)
    with pytest.raises(ValueError, match="cannot be matched"):
        loss(t, p, sample_weight=np.ones(5))


def test_masks_follow_apply_mask():
    t, p = data_regression((3, 4, 2))
    v = ref_mse(t, p)
    mask = RNG.uniform(size=(3, 4)) > 0.4
    mask[0, 0] = True
    sw = np.array([0.5, 1.0, 2.0])
    w = sw[:, None] * mask
    cases = {
        "sum_over_batch_size": np.sum(v * w) / mask.sum(),
        "mean": np.sum(v * w) / mask.sum(),
        "sum": np.sum(v * w),
        "mean_with_sample_weight": np.sum(v * w) / np.sum(w),
    }
    for reduction, expected in cases.items():
        loss = losses.MeanSquaredError(reduction=reduction)
        assert loss(t, p, sample_weight=sw, mask=mask) == pytest.approx(expected, rel=1e-12)
        value, _ = loss.value_and_grad(t, p, sample_weight=sw, mask=mask)
        assert value == pytest.approx(expected, rel=1e-12)
    # Without weights the default is the mean over the unmasked entries.
    assert losses.MeanSquaredError()(t, p, mask=mask) == pytest.approx(v[mask].mean())
    none = losses.MeanSquaredError(reduction="none")(t, p, mask=mask)
    np.testing.assert_allclose(none, v * mask)
    # Everything masked: 0 and a zero gradient (Keras's divide_no_nan).
    value, grad = losses.MeanSquaredError().value_and_grad(t, p, mask=np.zeros((3, 4), bool))
    assert value == 0.0 and not grad.any()


def test_mse_training_fast_path_matches_the_general_path():
    # value_and_grad's unweighted, unmasked case skips the wrapper: the mean of
    # the squared float64 differences (np.mean's own sum and division) and
    # 2 (p - t) / n in the predictions' dtype, as the general path gives.
    rng = np.random.default_rng(3)
    loss = losses.MeanSquaredError()
    for shape in [(32, 1), (7,), (4, 9, 3)]:
        t = rng.standard_normal(shape)
        for dtype in (np.float32, np.float64):
            p = rng.standard_normal(shape).astype(dtype)
            value, grad = loss.value_and_grad(t, p)
            diff = p.astype(np.float64) - t
            assert value == float(np.mean(np.square(diff)))
            ref_value, ref_grad = losses.Loss.value_and_grad(loss, t, p)
            # (the general path computes float32 predictions' losses in float32)
            rtol = 1e-6 if dtype == np.float32 else 1e-12
            assert value == pytest.approx(ref_value, rel=rtol)
            assert grad.dtype == dtype
            np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * 1e-3)


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("spec,shape", CASES)
def test_grad_matches_finite_differences(spec, shape):
    _, cls, kw, fn, _, data, _ = spec
    shape = shape[:-1][:2] + shape[-1:]  # keep them small
    t, p = data(shape)
    loss = cls(**kw)
    g = loss.grad(t, p)
    assert g.shape == p.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, _fd_call(loss, t, p), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fn.gradient(t, p, **kw), g, rtol=1e-12, atol=1e-14)
    g32 = loss.grad(t, p.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum",
                                       "mean_with_sample_weight", "none"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_value_and_grad_matches_finite_differences(spec, reduction):
    _, cls, kw, _, _, data, _ = spec
    t, p = data((2, 3, 3))
    loss = cls(reduction=reduction, **kw)
    mask = np.array([[True, False, True], [True, True, False]])
    for sw, m in ((None, None), (np.array([0.3, 1.7]), None), (None, mask),
                  (RNG.uniform(0.1, 1, size=(2, 3)), mask)):
        def f(x):
            out = loss(t, x, sample_weight=sw, mask=m)
            return float(np.sum(out))
        value, grad = loss.value_and_grad(t, p, sample_weight=sw, mask=m)
        assert value == pytest.approx(f(p), rel=1e-12)
        assert grad.shape == p.shape and grad.dtype == p.dtype
        np.testing.assert_allclose(grad, _fd_scalar(f, p), rtol=1e-5, atol=1e-8)
        value32, grad32 = loss.value_and_grad(t, p.astype(np.float32), sample_weight=sw,
                                              mask=m)
        assert grad32.dtype == np.float32
        assert value32 == pytest.approx(value, rel=1e-4, abs=1e-5)
        np.testing.assert_allclose(grad32, grad, rtol=1e-3, atol=1e-5)


def test_gradient_is_zero_where_keras_clips():
    t = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[0.0, 1.0, 1.0, 0.5]])
    g = losses.BinaryCrossentropy().grad(t, p)
    assert g[0, 0] == 0 and g[0, 1] == 0 and g[0, 2] == 0 and g[0, 3] != 0
    assert np.isfinite(losses.BinaryCrossentropy().call(t, p)).all()
    # Categorical: a clipped probability only acts through the normalization
    # p / sum(p); inside the clipped region finite differences agree.
    t = np.array([[0.0, 0.5, 0.5]])
    p = np.array([[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(losses.CategoricalCrossentropy().grad(t, p), [[0.5, -0.5, 0.5]])
    p = np.array([[0.5, 0.5, -1e-3]])
    np.testing.assert_allclose(losses.CategoricalCrossentropy().grad(t, p),
                               _fd_call(losses.CategoricalCrossentropy(), t, p), rtol=1e-6)
    # MSLE below epsilon, KLD above 1.
    g = losses.MeanSquaredLogarithmicError().grad(np.ones((1, 2)), np.array([[-0.5, 0.5]]))
    assert g[0, 0] == 0 and g[0, 1] != 0
    g = losses.KLDivergence().grad(np.full((1, 2), 0.5), np.array([[1.5, 0.5]]))
    assert g[0, 0] == 0 and g[0, 1] != 0


def test_extreme_logits_are_finite():
    t = np.array([[0.0, 1.0, 1.0, 0.0]])
    p = np.array([[-800.0, 800.0, -800.0, 800.0]])
    v = losses.binary_crossentropy(t, p, from_logits=True)
    np.testing.assert_allclose(v, [(0 + 0 + 800 + 800) / 4])
    g = losses.BinaryCrossentropy(from_logits=True).grad(t, p)
    np.testing.assert_allclose(g, [[0, 0, -0.25, 0.25]])
    v = losses.categorical_crossentropy([[0.0, 1.0]], [[1000.0, 0.0]], from_logits=True)
    np.testing.assert_allclose(v, [1000.0])


# --------------------------------------------------------------------------- shapes, dtypes

def test_y_true_rank_handling_like_keras():
    y_pred = RNG.normal(size=(5, 1))
    y_true = RNG.normal(size=5)
    loss = losses.MeanSquaredError()
    # [B] labels against [B, 1] outputs are expanded: per-sample losses [B].
    np.testing.assert_allclose(loss.call(y_true, y_pred), (y_true - y_pred[:, 0]) ** 2)
    np.testing.assert_allclose(loss.grad(y_true, y_pred), 2 * (y_pred - y_true[:, None]))
    # [B, T, 1] outputs with [B, T] targets are squeezed: the loss is the mean over T.
    y_pred = RNG.normal(size=(2, 4, 1))
    y_true = RNG.normal(size=(2, 4))
    v = loss.call(y_true, y_pred)
    np.testing.assert_allclose(v, np.mean((y_true - y_pred[..., 0]) ** 2, axis=-1))
    value, grad = loss.value_and_grad(y_true, y_pred, sample_weight=[1.0, 3.0])
    assert grad.shape == (2, 4, 1)
    np.testing.assert_allclose(
        grad, _fd_scalar(lambda x: loss(y_true, x, sample_weight=[1.0, 3.0]), y_pred),
        rtol=1e-6, atol=1e-9)
    # [B, T, 1] targets with [B, T] outputs.
    t3, p2 = y_true[..., None], y_pred[..., 0]
    np.testing.assert_allclose(loss.call(t3, p2), v)
    # Integer and float64 labels with float32 predictions.
    y_pred = RNG.uniform(0.1, 0.9, size=(6, 1)).astype(np.float32)
    labels = RNG.integers(0, 2, size=6)
    bce = losses.BinaryCrossentropy()
    expected = ref_bce(labels[:, None].astype(float), y_pred.astype(float))
    np.testing.assert_allclose(bce.call(labels, y_pred), expected, rtol=1e-5)
    assert bce(labels.astype(np.float64), y_pred) == pytest.approx(expected.mean(), rel=1e-5)
    _, g = bce.value_and_grad(labels, y_pred)
    assert g.dtype == np.float32 and g.shape == (6, 1)
    # Python lists work too.
    assert losses.MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]]) == pytest.approx(0.5)


def test_sparse_label_shapes_and_ignore_class():
    p = _softmax(RNG.normal(size=(2, 3, 4)))
    labels = np.array([[0, 3, 1], [2, 2, -1]])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    v = loss.call(labels, p)
    expected = ref_scce(labels, p, ignore_class=-1)
    np.testing.assert_allclose(v, expected)
    assert v[1, 2] == 0
    # The ignored entry is masked out of the mean, like Keras's mask on the result.
    assert loss(labels, p) == pytest.approx(expected.sum() / 5)
    assert loss(labels[..., None], p) == pytest.approx(expected.sum() / 5)
    user_mask = np.array([[True, True, False], [True, True, True]])
    assert loss(labels, p, mask=user_mask) == pytest.approx(
        (expected * user_mask).sum() / 4)
    value, grad = loss.value_and_grad(labels, p, mask=user_mask)
    assert not grad[1, 2].any() and not grad[0, 2].any()
    np.testing.assert_allclose(
        grad, _fd_scalar(lambda x: loss(labels, x, mask=user_mask), p), rtol=1e-5,
        atol=1e-8)
    # Float labels (Keras casts labels to the loss dtype) and out-of-range labels.
    np.testing.assert_allclose(loss.call(labels.astype(np.float32), p), expected)
    with pytest.raises(ValueError, match="outside the valid range"):
        losses.sparse_categorical_crossentropy(np.array([4, 0]), p[0, :2])


def test_non_default_axis():
    t = _onehot((2, 4, 3)).transpose(0, 2, 1)  # classes on axis 1
    p = _softmax(RNG.normal(size=(2, 4, 3))).transpose(0, 2, 1)
    loss = losses.CategoricalCrossentropy(axis=1)
    np.testing.assert_allclose(loss.call(t, p), ref_cce(t, p, axis=1))
    f = lambda x: loss(t, x, sample_weight=np.array([1.0, 2.0]))  # noqa: E731
    _, g = loss.value_and_grad(t, p, sample_weight=np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, _fd_scalar(f, p), rtol=1e-5, atol=1e-8)
    bce = losses.BinaryCrossentropy(axis=1)
    t, p = data_bce((2, 3, 4))
    np.testing.assert_allclose(bce.call(t, p), ref_bce(t, p, axis=1))
    _, g = bce.value_and_grad(t, p)
    np.testing.assert_allclose(g, _fd_scalar(lambda x: bce(t, x), p), rtol=1e-5, atol=1e-8)


def test_categorical_crossentropy_warns_on_single_class():
    with pytest.warns(SyntaxWarning, match="binary_crossentropy"):
        losses.categorical_crossentropy(np.ones((2, 1)), np.ones((2, 1)))


# --------------------------------------------------------------------------- Keras examples

def test_keras_docstring_examples():
    # BinaryCrossentropy(from_logits=True)
    y_true = np.array([[0, 1], [0, 0]])
    y_pred = np.array([[-18.6, 0.51], [2.94, -12.8]])
    bce = losses.BinaryCrossentropy(from_logits=True)
    assert bce(np.array([0, 1, 0, 0]), np.array([-18.6, 0.51, 2.94, -12.8])) == \
        pytest.approx(0.8654, abs=1e-4)
    assert bce(y_true, y_pred) == pytest.approx(0.8654, abs=1e-4)
    assert bce(y_true, y_pred, sample_weight=[0.8, 0.2]) == pytest.approx(0.243, abs=1e-3)
    assert losses.BinaryCrossentropy(from_logits=True, reduction="sum")(y_true, y_pred) == \
        pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(
        losses.BinaryCrossentropy(from_logits=True, reduction=None)(y_true, y_pred),
        [0.235, 1.496], atol=1e-3)
    np.testing.assert_allclose(
        losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]),
        [0.916, 0.714], atol=1e-3)
    # CategoricalCrossentropy / SparseCategoricalCrossentropy
    y_true = np.array([[0, 1, 0], [0, 0, 1]])
    y_pred = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    for loss_cls, labels in ((losses.CategoricalCrossentropy, y_true),
                             (losses.SparseCategoricalCrossentropy, [1, 2])):
        assert loss_cls()(labels, y_pred) == pytest.approx(1.177, abs=1e-3)
        assert loss_cls()(labels, y_pred, sample_weight=np.array([0.3, 0.7])) == \
            pytest.approx(0.814, abs=1e-3)
        assert loss_cls(reduction="sum")(labels, y_pred) == pytest.approx(2.354, abs=1e-3)
        np.testing.assert_allclose(loss_cls(reduction=None)(labels, y_pred),
                                   [0.0513, 2.303], atol=1e-3)
    # Huber and LogCosh.
    assert losses.Huber()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]) == \
        pytest.approx(0.155, abs=1e-6)
    assert losses.LogCosh()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]) == \
        pytest.approx(0.108, abs=1e-3)
    # KL divergence: y_true clipped to [eps, 1] too.
    t = RNG.integers(0, 2, size=(2, 3)).astype(np.float32)
    p = RNG.random(size=(2, 3))
    np.testing.assert_allclose(
        losses.kl_divergence(t, p),
        np.sum(np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1)), -1))


# --------------------------------------------------------------------------- wrapper

def _plain_mse(y_true, y_pred):
    return np.mean((y_true - y_pred) ** 2, axis=-1)


def _elementwise_sq(y_true, y_pred):
    return (y_true - y_pred) ** 2


def test_wrapper_numerical_gradient_matches_exact():
    t, p = data_regression((3, 4, 5))
    wrapped = losses.LossFunctionWrapper(_plain_mse)
    assert wrapped.name == "_plain_mse"
    exact = losses.MeanSquaredError()
    np.testing.assert_allclose(wrapped.grad(t, p), exact.grad(t, p), rtol=1e-7, atol=1e-10)
    v1, g1 = wrapped.value_and_grad(t, p, sample_weight=np.arange(1.0, 4.0))
    v2, g2 = exact.value_and_grad(t, p, sample_weight=np.arange(1.0, 4.0))
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-10)
    # Crossentropy with kwargs, against the exact gradient.
    t, p = data_cce_logits((4, 3))
    wrapped = losses.LossFunctionWrapper(lambda a, b, **kw: ref_cce(a, b, **kw),
                                         from_logits=True, label_smoothing=0.1)
    np.testing.assert_allclose(
        wrapped.grad(t, p),
        losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1).grad(t, p),
        rtol=1e-6, atol=1e-9)
    # Elementwise (unreduced) losses work too.
    t, p = data_regression((2, 3))
    g = losses.LossFunctionWrapper(_elementwise_sq).grad(t, p)
    np.testing.assert_allclose(g, 2 * (p - t), rtol=1e-7, atol=1e-10)
    v, g = losses.LossFunctionWrapper(_elementwise_sq).value_and_grad(t, p)
    np.testing.assert_allclose(g, 2 * (p - t) / p.size, rtol=1e-7, atol=1e-10)
    # float32 predictions get a float32 gradient.
    assert losses.LossFunctionWrapper(_plain_mse).grad(t, p.astype(np.float32)).dtype == \
        np.float32


def test_wrapper_uses_gradient_attribute():
    calls = []

    def my_loss(y_true, y_pred, scale=1.0):
        return scale * np.sum(y_pred ** 2, axis=-1)

    def my_grad(y_true, y_pred, scale=1.0):
        calls.append(1)
        return 2 * scale * y_pred

    my_loss.gradient = my_grad
    wrapped = losses.LossFunctionWrapper(my_loss, scale=3.0)
    t, p = data_regression((2, 4))
    np.testing.assert_allclose(wrapped.grad(t, p), 6 * p)
    assert calls
    assert losses.get(my_loss).grad(t, p).shape == p.shape


def test_custom_loss_subclass_gets_numerical_gradient():
    class MyLoss(losses.Loss):
        def call(self, y_true, y_pred):
            return np.mean(np.abs(y_true - y_pred) ** 3, axis=-1)

    loss = MyLoss()
    assert loss.name == "my_loss" and loss.reduction == "sum_over_batch_size"
    t, p = data_regression((3, 2, 4))
    value, grad = loss.value_and_grad(t, p)
    assert value == pytest.approx(np.mean(np.abs(t - p) ** 3))
    np.testing.assert_allclose(grad, 3 * np.abs(p - t) * (p - t) / p.size, rtol=1e-6,
                               atol=1e-9)


def test_numerical_gradient_rejects_unrelated_shapes():
    with pytest.raises(ValueError, match="cannot differentiate"):
        losses.numerical_gradient(lambda t, p: np.zeros(7), np.zeros((2, 3)), np.zeros((2, 3)))


# --------------------------------------------------------------------------- get / config

FUNCTION_NAMES = {
    "mse": ("mean_squared_error", losses.MeanSquaredError),
    "MSE": ("mean_squared_error", losses.MeanSquaredError),
    "mean_squared_error": ("mean_squared_error", losses.MeanSquaredError),
    "mae": ("mean_absolute_error", losses.MeanAbsoluteError),
    "mape": ("mean_absolute_percentage_error", losses.MeanAbsolutePercentageError),
    "msle": ("mean_squared_logarithmic_error", losses.MeanSquaredLogarithmicError),
    "huber": ("huber", losses.Huber),
    "log_cosh": ("log_cosh", losses.LogCosh),
    "logcosh": ("log_cosh", losses.LogCosh),
    "kld": ("kl_divergence", losses.KLDivergence),
    "kullback_leibler_divergence": ("kl_divergence", losses.KLDivergence),
    "hinge": ("hinge", losses.Hinge),
    "squared_hinge": ("squared_hinge", losses.SquaredHinge),
    "categorical_hinge": ("categorical_hinge", losses.CategoricalHinge),
    "bce": ("binary_crossentropy", losses.BinaryCrossentropy),
    "binary_crossentropy": ("binary_crossentropy", losses.BinaryCrossentropy),
    "categorical_crossentropy": ("categorical_crossentropy", losses.CategoricalCrossentropy),
    "sparse_categorical_crossentropy": ("sparse_categorical_crossentropy",
                                        losses.SparseCategoricalCrossentropy),
}


@pytest.mark.parametrize("identifier", sorted(FUNCTION_NAMES))
def test_get_function_names(identifier):
    name, cls = FUNCTION_NAMES[identifier]
    loss = losses.get(identifier)
    assert type(loss) is cls and loss.name == name
    assert loss.reduction == "sum_over_batch_size"


def test_aliases():
    assert losses.mse is losses.mean_squared_error
    assert losses.mae is losses.mean_absolute_error
    assert losses.mape is losses.mean_absolute_percentage_error
    assert losses.msle is losses.mean_squared_logarithmic_error
    assert losses.kld is losses.kullback_leibler_divergence is losses.kl_divergence
    assert losses.logcosh is losses.log_cosh


def test_get_other_identifiers():
    assert losses.get(None) is None
    huber = losses.get("Huber")
    assert isinstance(huber, losses.Huber) and huber.name == "huber_loss"
    inst = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(inst) is inst
    assert isinstance(losses.get(losses.Hinge), losses.Hinge)
    cfg = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    got = losses.get(cfg)
    assert isinstance(got, losses.CategoricalCrossentropy) and got.from_logits
    fn_cfg = {"module": "keras.losses", "class_name": "function", "config": "mean_squared_error",
              "registered_name": "function"}
    assert isinstance(losses.get(fn_cfg), losses.MeanSquaredError)
    wrapped = losses.get(_plain_mse)
    assert isinstance(wrapped, losses.LossFunctionWrapper) and wrapped.name == "_plain_mse"
    assert wrapped.fn is _plain_mse
    for bad in ("no_such_loss", "accuracy"):
        with pytest.raises(ValueError, match=bad):
            losses.get(bad)
    with pytest.raises(ValueError):
        losses.get(42)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="average")


ALL_INSTANCES = [
    losses.MeanSquaredError(), losses.MeanAbsoluteError(reduction="sum"),
    losses.MeanAbsolutePercentageError(name="m"), losses.MeanSquaredLogarithmicError(),
    losses.Huber(delta=0.5), losses.LogCosh(reduction=None), losses.Hinge(),
    losses.SquaredHinge(), losses.CategoricalHinge(), losses.KLDivergence(),
    losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, axis=-1),
    losses.CategoricalCrossentropy(label_smoothing=0.2),
    losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    losses.LossFunctionWrapper(losses.huber, delta=2.0),
]


@pytest.mark.parametrize("loss", ALL_INSTANCES, ids=lambda l: type(l).__name__)
def test_serialize_round_trip(loss):
    config = losses.serialize(loss)
    assert set(config) == {"module", "class_name", "config", "registered_name"}
    assert config["class_name"] == type(loss).__name__
    back = losses.deserialize(config)
    assert type(back) is type(loss)
    assert back.get_config() == loss.get_config()
    assert losses.get(config).get_config() == loss.get_config()
    t, p = data_regression((2, 3)) if not isinstance(
        loss, losses.SparseCategoricalCrossentropy) else data_scce((2, 3))
    if isinstance(loss, (losses.BinaryCrossentropy, losses.CategoricalCrossentropy,
                         losses.KLDivergence)):
        t, p = data_cce((2, 3))
    np.testing.assert_allclose(back(t, p), loss(t, p))


def test_configs_use_keras_keys():
    assert losses.MeanSquaredError().get_config() == {
        "name": "mean_squared_error", "reduction": "sum_over_batch_size"}
    assert losses.BinaryCrossentropy().get_config() == {
        "name": "binary_crossentropy", "reduction": "sum_over_batch_size",
        "from_logits": False, "label_smoothing": 0.0, "axis": -1}
    assert losses.SparseCategoricalCrossentropy().get_config() == {
        "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
        "from_logits": False, "ignore_class": None}
    config = losses.LossFunctionWrapper(losses.huber, delta=2.0).get_config()
    assert config["fn"] == {"module": "keras.losses", "class_name": "function",
                            "config": "huber", "registered_name": "function"}
    assert config["delta"] == 2.0 and config["name"] == "huber"
    assert losses.serialize(losses.mse) == {
        "module": "keras.losses", "class_name": "function", "config": "mean_squared_error",
        "registered_name": "function"}
    assert losses.deserialize(losses.serialize(losses.mse)) is losses.mean_squared_error
    assert losses.deserialize("mse") is losses.mean_squared_error


def test_custom_function_round_trip():
    _serialization.register_custom_object("_plain_mse", _plain_mse)
    loss = losses.LossFunctionWrapper(_plain_mse, reduction="sum")
    back = losses.LossFunctionWrapper.from_config(loss.get_config())
    assert back.fn is _plain_mse and back.reduction == "sum"
    assert losses.get("_plain_mse").fn is _plain_mse


def test_get_compile_loss():
    assert losses.get_compile_loss("mse").name == "mse"
    assert losses.get_compile_loss("MeanSquaredError").name == "mean_squared_error"
    for y_true, y_pred, fn in (((8, 1), (8, 1), losses.binary_crossentropy),
                               ((8,), (8, 5), losses.sparse_categorical_crossentropy),
                               ((8, 1), (8, 5), losses.sparse_categorical_crossentropy),
                               ((8, 5), (8, 5), losses.categorical_crossentropy),
                               ((8, 7), (8, 7, 5), losses.sparse_categorical_crossentropy)):
        loss = losses.get_compile_loss("crossentropy", y_true, y_pred)
        assert loss.fn is fn and loss.name == "crossentropy"
    assert losses.get_compile_loss("ce", (4, 3), (4, 3)).name == "ce"
