"""rnnfast.activations: Keras 3 formulas, derivatives (finite differences) and lookup."""

import functools
import math

import numpy as np
import pytest

from rnnfast import activations as A

RNG = np.random.default_rng(1234)


def _sig(x):
    x = np.asarray(x, np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free reference


def _softplus(x):
    x = np.asarray(x, np.float64)
    return np.logaddexp(0.0, x)


_ERF = np.vectorize(math.erf)

# name -> (callable with params, reference formula in float64, params, kinks)
CASES = {
    "tanh": (A.tanh, np.tanh, {}, []),
    "sigmoid": (A.sigmoid, _sig, {}, []),
    "hard_sigmoid": (A.hard_sigmoid, lambda x: np.minimum(np.maximum(x / 6 + 0.5, 0), 1),
                     {}, [-3, 3]),
    "hard_silu": (A.hard_silu, lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, {},
                  [-3, 3]),
    "relu": (A.relu, lambda x: np.maximum(x, 0), {}, [0]),
    "relu_slope": (A.relu, lambda x: np.where(x >= 0, x, 0.1 * x),
                   {"negative_slope": 0.1}, [0]),
    "relu_max": (A.relu, lambda x: np.clip(x, 0, 1.5), {"max_value": 1.5}, [0, 1.5]),
    "relu_max6": (A.relu, lambda x: np.clip(x, 0, 6), {"max_value": 6}, [0, 6]),
    "relu_threshold": (A.relu, lambda x: np.where(x > 0.5, x, 0), {"threshold": 0.5}, [0.5]),
    "relu_neg_threshold": (A.relu, lambda x: np.where(x > -0.5, x, 0), {"threshold": -0.5},
                           [-0.5]),
    "relu_all": (A.relu,
                 lambda x: np.clip(np.where(x > 0.5, x, 0), 0, 2.0)
                 - 0.3 * np.maximum(0.5 - x, 0),
                 {"negative_slope": 0.3, "max_value": 2.0, "threshold": 0.5}, [0.5, 2.0]),
    "relu_slope_threshold": (A.relu, lambda x: np.where(x > -1.0, x, 0)
                             - 0.2 * np.maximum(-1.0 - x, 0),
                             {"negative_slope": 0.2, "threshold": -1.0}, [-1.0]),
    "relu_neg_threshold_max": (A.relu, lambda x: np.clip(np.where(x > -1.0, x, 0), 0, 2.0),
                               {"threshold": -1.0, "max_value": 2.0}, [-1.0, 0, 2.0]),
    "relu6": (A.relu6, lambda x: np.clip(x, 0, 6), {}, [0, 6]),
    "leaky_relu": (A.leaky_relu, lambda x: np.where(x >= 0, x, 0.2 * x), {}, [0]),
    "leaky_relu_05": (A.leaky_relu, lambda x: np.where(x >= 0, x, 0.5 * x),
                      {"negative_slope": 0.5}, [0]),
    "elu": (A.elu, lambda x: np.where(x > 0, x, np.exp(np.minimum(x, 0)) - 1), {}, [0]),
    "elu_alpha": (A.elu, lambda x: np.where(x > 0, x, 0.7 * (np.exp(np.minimum(x, 0)) - 1)),
                  {"alpha": 0.7}, [0]),
    "selu": (A.selu, lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * (np.exp(np.minimum(x, 0)) - 1)), {}, [0]),
    "softplus": (A.softplus, _softplus, {}, []),
    "softsign": (A.softsign, lambda x: x / (np.abs(x) + 1), {}, []),
    "linear": (A.linear, lambda x: x, {}, []),
    "exponential": (A.exponential, np.exp, {}, []),
    "gelu": (A.gelu, lambda x: 0.5 * x * (1 + _ERF(x / np.sqrt(2))), {}, []),
    "gelu_approx": (A.gelu, lambda x: 0.5 * x * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), {"approximate": True}, []),
    "celu": (A.celu, lambda x: np.where(x >= 0, x, np.exp(np.minimum(x, 0)) - 1), {}, []),
    "celu_alpha": (A.celu, lambda x: np.where(x >= 0, x, 2.0 * (np.exp(np.minimum(x, 0) / 2.0)
                                                                 - 1)), {"alpha": 2.0}, []),
    "hard_tanh": (A.hard_tanh, lambda x: np.clip(x, -1, 1), {}, [-1, 1]),
    "hard_shrink": (A.hard_shrink, lambda x: np.where(np.abs(x) > 0.5, x, 0), {},
                    [-0.5, 0.5]),
    "hard_shrink_1": (A.hard_shrink, lambda x: np.where(np.abs(x) > 1, x, 0),
                      {"threshold": 1.0}, [-1, 1]),
    "soft_shrink": (A.soft_shrink, lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0), {},
                    [-0.5, 0.5]),
    "tanh_shrink": (A.tanh_shrink, lambda x: x - np.tanh(x), {}, []),
    "threshold": (A.threshold, lambda x: np.where(x > 0.3, x, -2.0),
                  {"threshold": 0.3, "default_value": -2.0}, [0.3]),
    "log_sigmoid": (A.log_sigmoid, lambda x: -_softplus(-x), {}, []),
    "squareplus": (A.squareplus, lambda x: (x + np.sqrt(x * x + 4)) / 2, {}, []),
    "squareplus_b": (A.squareplus, lambda x: (x + np.sqrt(x * x + 0.5)) / 2, {"b": 0.5}, []),
    "sparse_plus": (A.sparse_plus, lambda x: np.where(
        x <= -1, 0, np.where(x < 1, (x + 1) ** 2 / 4, x)), {}, [-1, 1]),
    "sparse_sigmoid": (A.sparse_sigmoid, lambda x: np.where(
        x <= -1, 0, np.where(x < 1, (x + 1) / 2, 1)), {}, [-1, 1]),
    "silu": (A.silu, lambda x: x * _sig(x), {}, []),
    "mish": (A.mish, lambda x: x * np.tanh(_softplus(x)), {}, []),
}


def _inputs(kinks, n=(6, 7), spread=4.0, margin=1e-3):
    x = RNG.uniform(-spread, spread, size=n)
    for k in kinks:  # keep finite differences away from the kinks
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin) * 2
    return x


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_match_formula(case, dtype):
    fn, ref, params, _ = CASES[case]
    x = np.concatenate([_inputs([]).ravel() * 2, [0.0, -9.0, 9.0, 3.0, -3.0]]).astype(dtype)
    y = fn(x, **params)
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=tol * 5, atol=tol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_finite_differences(case):
    fn, _, params, kinks = CASES[case]
    x = _inputs(kinks)
    y = fn(x, **params)
    dy = RNG.standard_normal(x.shape)
    dx = fn.backward(x, y, dy, **params)
    assert dx.shape == x.shape and dx.dtype == np.float64
    h = 1e-6
    numeric = dy * (fn(x + h, **params) - fn(x - h, **params)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    # y may be left out: it is recomputed from x.
    np.testing.assert_allclose(fn.backward(x, None, dy, **params), dx)


@pytest.mark.parametrize("case", ["tanh", "sigmoid", "relu", "hard_sigmoid", "gelu"])
def test_backward_keeps_float32(case):
    fn, _, params, _ = CASES[case]
    x = _inputs([0, 3, -3]).astype(np.float32)
    dy = np.ones_like(x)
    assert fn.backward(x, fn(x), dy).dtype == np.float32


def test_kinks_get_zero_derivative_convention():
    x = np.array([0.0, -3.0, 3.0, 6.0])
    dy = np.ones_like(x)
    np.testing.assert_array_equal(A.relu.backward(x, None, dy), [0, 0, 1, 1])
    np.testing.assert_array_equal(A.hard_sigmoid.backward(x, None, dy), [1 / 6, 0, 0, 0])
    np.testing.assert_array_equal(A.relu6.backward(x, None, dy), [0, 0, 1, 0])


def _softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1, (1, 2)])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_values_and_backward(name, axis):
    fn = getattr(A, name)
    x = RNG.standard_normal((3, 4, 5)) * 3
    y = fn(x, axis=axis)
    ref = _softmax_ref(x, axis)
    np.testing.assert_allclose(y, ref if name == "softmax" else np.log(ref), rtol=1e-12,
                               atol=1e-14)
    dy = RNG.standard_normal(x.shape)
    dx = fn.backward(x, y, dy, axis=axis)
    # Full directional check: sum(dy * J e_k) for every input entry e_k.
    numeric = np.empty_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = np.sum(dy * (fn(x + e, axis=axis) - fn(x - e, axis=axis))) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)
    # The output alone suffices.
    np.testing.assert_allclose(fn.backward(None, y, dy, axis=axis), dx)


def test_softmax_is_stable_and_float32():
    x = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    y = A.softmax(x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(A.log_softmax(x)))


def test_no_overflow_for_large_inputs():
    x = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    for fn in (A.sigmoid, A.softplus, A.silu, A.mish, A.elu, A.selu, A.gelu, A.softsign,
               A.celu, A.log_sigmoid, A.tanh_shrink, A.squareplus):
        y = fn(x)
        assert np.all(np.isfinite(y)), fn.__name__
        assert np.all(np.isfinite(fn.backward(x, y, np.ones_like(x)))), fn.__name__
    np.testing.assert_allclose(A.softplus(x)[3:], x[3:])
    assert A.exponential(np.array([1e4]))[0] == np.inf  # like Keras, without a warning


def _sparsemax_ref(v):
    # Brute force over supports: the projection onto the simplex (1-D).
    z = np.sort(v)[::-1]
    for k in range(len(v), 0, -1):
        tau = (z[:k].sum() - 1) / k
        if z[k - 1] > tau:
            return np.maximum(v - tau, 0)
    raise AssertionError


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_sparsemax(axis):
    x = RNG.standard_normal((4, 5, 6)) * 2
    y = A.sparsemax(x, axis=axis)
    ref = np.apply_along_axis(_sparsemax_ref, axis, x)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)
    assert np.any(y == 0)
    assert A.sparsemax(x.astype(np.float32), axis=axis).dtype == np.float32
    dy = RNG.standard_normal(x.shape)
    dx = A.sparsemax.backward(x, y, dy, axis=axis)
    numeric = np.empty_like(x)
    h = 1e-7
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = np.sum(dy * (A.sparsemax(x + e, axis=axis)
                                    - A.sparsemax(x - e, axis=axis))) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axis", [-1, 0])
def test_glu(axis):
    x = RNG.standard_normal((4, 6))
    y = A.glu(x, axis=axis)
    a, b = np.split(x, 2, axis=axis)
    np.testing.assert_allclose(y, a * _sig(b), rtol=1e-12)
    dy = RNG.standard_normal(y.shape)
    dx = A.glu.backward(x, y, dy, axis=axis)
    assert dx.shape == x.shape
    numeric = np.empty_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        numeric[idx] = np.sum(dy * (A.glu(x + e, axis=axis) - A.glu(x - e, axis=axis))) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="divisible by 2"):
        A.glu(np.ones((2, 3)))


def test_crelu():
    x = RNG.standard_normal((3, 4))
    y = A.crelu(x, axis=0)
    np.testing.assert_array_equal(y, np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], 0))
    dy = RNG.standard_normal(y.shape)
    dx = A.crelu.backward(x, y, dy, axis=0)
    np.testing.assert_allclose(dx, dy[:3] * (x > 0) - dy[3:] * (x < 0))


def test_int_and_list_inputs_become_float32():
    assert A.relu([1, -2, 3]).dtype == np.float32
    assert A.tanh(np.arange(3)).dtype == np.float32


def test_linear_returns_input_unmodified():
    x = np.arange(3.0)
    assert A.linear(x) is x


def test_aliases():
    assert A.swish is A.silu
    assert A.hard_swish is A.hard_silu


# ---------------------------------------------------------------- lookup & serialization

def test_get_names_and_none():
    assert A.get(None) is A.linear
    for name in A.ACTIVATION_NAMES:
        assert callable(A.get(name))
        assert hasattr(A.get(name), "backward")
    assert A.get("swish") is A.silu
    assert A.get("hard_swish") is A.hard_silu
    assert A.get("tanh") is A.tanh
    assert set(A.ACTIVATION_NAMES) >= {
        "tanh", "sigmoid", "hard_sigmoid", "relu", "relu6", "leaky_relu", "elu", "selu",
        "softplus", "softsign", "softmax", "log_softmax", "linear", "exponential", "gelu",
        "silu", "swish", "mish", "hard_silu", "hard_swish",
        # Keras 3.13 additions
        "celu", "glu", "hard_shrink", "hard_tanh", "log_sigmoid", "soft_shrink", "sparse_plus",
        "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink", "threshold"}


def test_get_callable_returned_as_is():
    def my_act(x):
        return x * 2

    assert A.get(my_act) is my_act
    assert A.get_backward(my_act) is None


def test_unknown_name_errors():
    with pytest.raises(ValueError, match="'nope'.*tanh"):
        A.get("nope")
    with pytest.raises(ValueError):
        A.deserialize("nope")
    with pytest.raises(ValueError):
        A.get(42)


@pytest.mark.parametrize("name", sorted(A.ACTIVATION_NAMES))
def test_serialize_round_trip(name):
    fn = A.get(name)
    s = A.serialize(fn)
    assert s == fn.__name__  # Keras 3: built-ins serialize to their name
    assert A.deserialize(s) is fn
    assert A.get(s) is fn


def test_serialize_names():
    assert A.serialize(A.swish) == "silu"
    assert A.serialize(A.tanh) == "tanh"
    assert A.serialize(None) is None


def test_deserialize_dict_forms():
    # Keras 3 function dicts and legacy {"class_name": name} dicts.
    d = {"module": "keras.activations", "class_name": "function", "config": "relu",
         "registered_name": "function"}
    assert A.get(d) is A.relu
    assert A.deserialize({"class_name": "sigmoid", "config": {}}) is A.sigmoid


def test_custom_function_serialization():
    def my_act(x):
        return x

    s = A.serialize(my_act)
    assert s["class_name"] == "function" and s["config"] == "my_act"
    assert A.deserialize(s, custom_objects={"my_act": my_act}) is my_act
    with pytest.raises(ValueError):
        A.serialize(lambda x: x)


def test_get_backward():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    dy = np.ones_like(x)
    assert A.get_backward("tanh") is A.tanh.backward
    bw = A.get_backward(functools.partial(A.relu, max_value=1.0))
    np.testing.assert_array_equal(bw(x, None, dy), [0, 0, 1, 0])
    bw = A.get_backward(functools.partial(A.leaky_relu, negative_slope=0.5))
    np.testing.assert_array_equal(bw(x, None, dy), [0.5, 0.5, 1, 1])
