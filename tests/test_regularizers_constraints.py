"""rnnfast.regularizers and rnnfast.constraints against Keras 3 formulas."""

import json

import numpy as np
import pytest

from rnnfast import constraints as C
from rnnfast import regularizers as R

RNG = np.random.default_rng(7)


def _finite_difference(f, w, h=1e-6):
    g = np.empty_like(w)
    for idx in np.ndindex(*w.shape):
        e = np.zeros_like(w)
        e[idx] = h
        g[idx] = (f(w + e) - f(w - e)) / (2 * h)
    return g


# ---------------------------------------------------------------- regularizers

def _away_from_zero(shape):
    w = RNG.standard_normal(shape)
    return np.where(np.abs(w) < 1e-2, 0.5, w)


@pytest.mark.parametrize("reg,formula", [
    (R.L1(0.1), lambda w: 0.1 * np.abs(w).sum()),
    (R.L2(0.2), lambda w: 0.2 * np.square(w).sum()),
    (R.L1L2(l1=0.1, l2=0.3), lambda w: 0.1 * np.abs(w).sum() + 0.3 * np.square(w).sum()),
    (R.L1L2(l2=0.3), lambda w: 0.3 * np.square(w).sum()),
    (R.L1(), lambda w: 0.01 * np.abs(w).sum()),
    (R.L2(), lambda w: 0.01 * np.square(w).sum()),
    (R.L1L2(), lambda w: 0.0),
], ids=lambda v: repr(v) if isinstance(v, R.Regularizer) else "")
def test_penalty_and_gradient(reg, formula):
    w = _away_from_zero((4, 5))
    p = reg(w)
    assert isinstance(p, float)
    assert p == pytest.approx(formula(w), rel=1e-12, abs=1e-15)
    g = reg.gradient(w)
    assert g.shape == w.shape and g.dtype == w.dtype
    np.testing.assert_allclose(g, _finite_difference(reg, w), rtol=1e-6, atol=1e-9)
    # float32 weights: float32 gradient, same penalty up to rounding.
    w32 = w.astype(np.float32)
    assert reg.gradient(w32).dtype == np.float32
    assert reg(w32) == pytest.approx(formula(w32.astype(np.float64)), rel=1e-6)


def test_gradient_formulas():
    w = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(R.L1(0.5).gradient(w), [-0.5, 0.0, 0.5])
    np.testing.assert_array_equal(R.L2(0.5).gradient(w), [-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(R.L1L2(0.5, 0.5).gradient(w), [-2.5, 0.0, 3.5])
    np.testing.assert_array_equal(R.Regularizer().gradient(w), [0, 0, 0])
    assert R.Regularizer()(w) == 0.0


def _orthogonal_penalty(w, factor, mode):
    v = w if mode == "rows" else w.T
    n = v / np.linalg.norm(v, axis=1, keepdims=True)
    p = n @ n.T * (1 - np.eye(len(n)))
    size = len(n)
    return factor * 0.5 * np.abs(p).sum() / (size * (size - 1) / 2)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer(mode):
    w = RNG.standard_normal((4, 6))
    reg = R.OrthogonalRegularizer(factor=0.3, mode=mode)
    assert reg(w) == pytest.approx(_orthogonal_penalty(w, 0.3, mode), rel=1e-12)
    np.testing.assert_allclose(reg.gradient(w), _finite_difference(reg, w), rtol=1e-5,
                               atol=1e-9)
    q = np.linalg.qr(RNG.standard_normal((6, 6)))[0]
    assert reg(q) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="rank 2"):
        reg(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="mode"):
        R.OrthogonalRegularizer(mode="diagonal")


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan"), float("inf"), -float("inf"), "0.1",
                                 [0.1], np.bool_(True)])
def test_argument_validation(bad):
    for make in (lambda v: R.L1(v), lambda v: R.L2(v), lambda v: R.L1L2(l1=v),
                 lambda v: R.L1L2(l2=v), lambda v: R.OrthogonalRegularizer(factor=v)):
        with pytest.raises(ValueError, match="expected a non-negative float"):
            make(bad)


def test_valid_arguments():
    assert R.L1(None).l1 == 0.01 and R.L2(None).l2 == 0.01
    assert R.L1L2(None, None).get_config() == {"l1": 0.0, "l2": 0.0}
    assert R.L2(np.float32(0.5)).l2 == 0.5 and R.L1(np.int32(1)).l1 == 1.0
    assert R.validate_float_arg(0, "x") == 0.0 and isinstance(R.validate_float_arg(1, "x"),
                                                              float)


@pytest.mark.parametrize("reg,config", [
    (R.L1(0.1), {"l1": 0.1}), (R.L2(0.2), {"l2": 0.2}),
    (R.L1L2(l1=0.1, l2=0.2), {"l1": 0.1, "l2": 0.2}),
    (R.OrthogonalRegularizer(factor=0.1, mode="columns"), {"factor": 0.1, "mode": "columns"}),
], ids=lambda v: type(v).__name__)
def test_regularizer_serialization(reg, config):
    assert reg.get_config() == config
    s = R.serialize(reg)
    assert s == {"module": "keras.regularizers", "class_name": type(reg).__name__,
                 "config": config, "registered_name": None}
    again = R.deserialize(json.loads(json.dumps(s)))
    assert type(again) is type(reg) and again.get_config() == config
    assert R.get(s).get_config() == config
    assert type(reg).from_config(reg.get_config()).get_config() == config


def test_regularizer_get():
    assert R.get(None) is None
    assert type(R.get("l1")) is R.L1 and R.get("l1").l1 == 0.01
    assert type(R.get("l2")) is R.L2 and R.get("L2").l2 == 0.01
    assert type(R.get("l1l2")) is R.L1L2 and R.get("L1L2").get_config() == {"l1": 0.0,
                                                                            "l2": 0.0}
    assert type(R.get("orthogonal_regularizer")) is R.OrthogonalRegularizer
    reg = R.L2(0.3)
    assert R.get(reg) is reg
    assert type(R.get(R.L1)) is R.L1

    def custom(w):
        return 0.0

    assert R.get(custom) is custom
    # Keras 3 has no "l1_l2" string (its L1L2 string is "l1l2").
    with pytest.raises(ValueError, match="l1l2"):
        R.get("l1_l2")
    with pytest.raises(ValueError):
        R.get("typo")
    assert R.l1_l2 is R.L1L2 and R.l1 is R.L1 and R.l2 is R.L2
    assert R.l1_l2(l1=0.1).get_config() == {"l1": 0.1, "l2": 0.0}


# ---------------------------------------------------------------- constraints

EPS = 1e-7


def _norm(w, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.sum(w * w, axis=axis, keepdims=True))


AXES = [0, 1, -1, [0, 1], (0, 2)]


@pytest.mark.parametrize("axis", AXES)
def test_max_norm(axis):
    w = RNG.standard_normal((4, 5, 3)) * 2
    out = C.MaxNorm(max_value=1.5, axis=axis)(w)
    n = _norm(w, axis)
    np.testing.assert_allclose(out, w * np.clip(n, 0, 1.5) / (EPS + n), rtol=1e-12)
    assert np.all(_norm(out, axis) <= 1.5 + 1e-9)


@pytest.mark.parametrize("axis", AXES)
def test_unit_norm(axis):
    w = RNG.standard_normal((4, 5, 3))
    out = C.UnitNorm(axis=axis)(w)
    np.testing.assert_allclose(out, w / (EPS + _norm(w, axis)), rtol=1e-12)
    np.testing.assert_allclose(_norm(out, axis), 1.0, rtol=1e-6)


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("rate", [1.0, 0.3])
def test_min_max_norm(axis, rate):
    w = RNG.standard_normal((4, 5, 3)) * RNG.uniform(0.05, 3, size=(1, 5, 1))
    out = C.MinMaxNorm(min_value=0.5, max_value=1.2, rate=rate, axis=axis)(w)
    n = _norm(w, axis)
    desired = rate * np.clip(n, 0.5, 1.2) + (1 - rate) * n
    np.testing.assert_allclose(out, w * desired / (EPS + n), rtol=1e-12)


def test_nonneg_and_dtypes():
    w = np.array([[-1.0, 2.0], [0.5, -0.1]], np.float32)
    out = C.NonNeg()(w)
    np.testing.assert_array_equal(out, [[0, 2], [0.5, 0]])
    assert out.dtype == np.float32
    for c in (C.MaxNorm(), C.UnitNorm(), C.MinMaxNorm(), C.NonNeg()):
        assert c(w).dtype == np.float32 and c(w).shape == w.shape
    np.testing.assert_array_equal(C.Constraint()(w), w)
    # A zero vector stays zero (epsilon in the division).
    np.testing.assert_array_equal(C.UnitNorm()(np.zeros((3, 2))), np.zeros((3, 2)))


def test_max_norm_keeps_small_vectors():
    w = np.array([[0.3, 3.0], [0.4, 4.0]])
    out = C.MaxNorm(max_value=2)(w)
    np.testing.assert_allclose(out[:, 0], w[:, 0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out[:, 1]), 2.0, rtol=1e-6)


@pytest.mark.parametrize("con,config", [
    (C.MaxNorm(max_value=3, axis=1), {"max_value": 3, "axis": 1}),
    (C.MaxNorm(), {"max_value": 2, "axis": 0}),
    (C.MinMaxNorm(0.1, 2.0, 0.5, [0, 1]),
     {"min_value": 0.1, "max_value": 2.0, "rate": 0.5, "axis": [0, 1]}),
    (C.MinMaxNorm(), {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}),
    (C.NonNeg(), {}),
    (C.UnitNorm(axis=-1), {"axis": -1}),
], ids=lambda v: type(v).__name__)
def test_constraint_serialization(con, config):
    assert con.get_config() == config
    s = C.serialize(con)
    assert s == {"module": "keras.constraints", "class_name": type(con).__name__,
                 "config": config, "registered_name": None}
    again = C.deserialize(json.loads(json.dumps(s)))
    assert type(again) is type(con) and again.get_config() == config
    assert C.get(s).get_config() == config
    assert type(con).from_config(config).get_config() == config


def test_constraint_get():
    assert C.get(None) is None
    for name, cls in [("max_norm", C.MaxNorm), ("MaxNorm", C.MaxNorm),
                      ("min_max_norm", C.MinMaxNorm), ("non_neg", C.NonNeg),
                      ("NonNeg", C.NonNeg), ("unit_norm", C.UnitNorm)]:
        assert type(C.get(name)) is cls
    c = C.UnitNorm()
    assert C.get(c) is c
    assert type(C.get(C.NonNeg)) is C.NonNeg
    assert C.max_norm is C.MaxNorm and C.min_max_norm is C.MinMaxNorm
    assert C.non_neg is C.NonNeg and C.unit_norm is C.UnitNorm
    with pytest.raises(ValueError, match="typo"):
        C.get("typo")
    with pytest.raises(ValueError):
        C.get(3)
