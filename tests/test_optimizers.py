"""rnnfast.optimizers against the published update rules (Keras 3's formulations).

The references below are written independently in float64 NumPy from the
formulas in the Keras 3 docstrings/papers; the optimizers run in float32.
"""

import json
import math
import re
import tracemalloc

import numpy as np
import pytest

from rnnfast import optimizers
from rnnfast.optimizers import schedules


class Var:
    """The minimal variable the optimizer needs."""

    def __init__(self, value, name="kernel", trainable=True, constraint=None, path=None):
        self.value = np.array(value, dtype=np.float32)
        self.name = name
        self.trainable = trainable
        self.constraint = constraint
        if path is not None:
            self.path = path


RNG = np.random.default_rng(1234)
W0 = [RNG.normal(size=(3, 4)).astype(np.float32), RNG.normal(size=(4,)).astype(np.float32)]
SCALES = [3.0, 0.1, 2.0, 0.05, 1.0, 0.5]          # varying magnitudes exercise amsgrad's max
GRADS = [[(RNG.normal(size=w.shape) * s).astype(np.float32) for w in W0] for s in SCALES]


def make_vars():
    return [Var(W0[0], "dense/kernel", path="dense/kernel"),
            Var(W0[1], "dense/bias", path="dense/bias")]


# ---------------------------------------------------------------- references
def ref_sgd(w, gs, learning_rate=0.01, momentum=0.0, nesterov=False):
    m = np.zeros_like(w)
    for g in gs:
        if momentum:
            m = momentum * m - learning_rate * g
            w = w + (momentum * m - learning_rate * g if nesterov else m)
        else:
            w = w - learning_rate * g
    return w


def ref_adam(w, gs, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
             amsgrad=False, weight_decay=None):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    v_max = np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        if weight_decay:
            w = w - w * weight_decay * learning_rate
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        if amsgrad:
            v_max = np.maximum(v_max, v)
            denom = v_max
        else:
            denom = v
        alpha = learning_rate * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        w = w - alpha * m / (np.sqrt(denom) + epsilon)
    return w


def ref_adamw(w, gs, weight_decay=0.004, **kw):
    return ref_adam(w, gs, weight_decay=weight_decay, **kw)


def ref_rmsprop(w, gs, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                centered=False):
    ms = np.zeros_like(w)
    mg = np.zeros_like(w)
    mom = np.zeros_like(w)
    for g in gs:
        ms = rho * ms + (1 - rho) * g ** 2
        if centered:
            mg = rho * mg + (1 - rho) * g
            step = learning_rate * g / np.sqrt(ms - mg ** 2 + epsilon)
        else:
            step = learning_rate * g / np.sqrt(ms + epsilon)
        if momentum > 0:
            mom = momentum * mom + step
            w = w - mom
        else:
            w = w - step
    return w


def ref_adagrad(w, gs, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = np.full_like(w, initial_accumulator_value)
    for g in gs:
        acc = acc + g * g
        w = w - learning_rate * g / np.sqrt(acc + epsilon)
    return w


def ref_adadelta(w, gs, learning_rate=0.001, rho=0.95, epsilon=1e-7):
    eg = np.zeros_like(w)
    ed = np.zeros_like(w)
    for g in gs:
        eg = rho * eg + (1 - rho) * g * g
        delta = -np.sqrt(ed + epsilon) / np.sqrt(eg + epsilon) * g
        ed = rho * ed + (1 - rho) * delta * delta
        w = w + learning_rate * delta
    return w


def ref_nadam(w, gs, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    mu_prod = 1.0
    for t, g in enumerate(gs, start=1):
        mu_t = beta_1 * (1 - 0.5 * 0.96 ** t)
        mu_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        mu_prod = mu_prod * mu_t
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        m_hat = mu_next * m / (1 - mu_prod * mu_next) + (1 - mu_t) * g / (1 - mu_prod)
        v_hat = v / (1 - beta_2 ** t)
        w = w - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
    return w


def ref_adamax(w, gs, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = np.zeros_like(w)
    u = np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g))
        w = w - learning_rate / (1 - beta_1 ** t) * m / (u + epsilon)
    return w


def ref_lion(w, gs, learning_rate=0.001, beta_1=0.9, beta_2=0.99):
    m = np.zeros_like(w)
    for g in gs:
        w = w - learning_rate * np.sign(beta_1 * m + (1 - beta_1) * g)
        m = beta_2 * m + (1 - beta_2) * g
    return w


def ref_ftrl(w, gs, learning_rate=0.001, learning_rate_power=-0.5,
             initial_accumulator_value=0.1, l1_regularization_strength=0.0,
             l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
             beta=0.0):
    n = np.full_like(w, initial_accumulator_value)
    z = np.zeros_like(w)
    p = -learning_rate_power
    l1 = l1_regularization_strength
    l2 = l2_regularization_strength + beta / (2 * learning_rate)
    for g in gs:
        g_shrunk = g + 2 * l2_shrinkage_regularization_strength * w
        n_new = n + g * g
        sigma = (n_new ** p - n ** p) / learning_rate
        z = z + g_shrunk - sigma * w
        w = np.where(np.abs(z) <= l1, 0.0,
                     -(z - np.sign(z) * l1) / (n_new ** p / learning_rate + 2 * l2))
        n = n_new
    return w


CASES = [
    ("SGD", ref_sgd, {}),
    ("SGD", ref_sgd, {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", ref_sgd, {"learning_rate": 0.1, "momentum": 0.5, "nesterov": True}),
    ("Adam", ref_adam, {}),
    ("Adam", ref_adam, {"learning_rate": 0.05, "amsgrad": True}),
    ("Adam", ref_adam, {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3,
                        "weight_decay": 0.2}),
    ("AdamW", ref_adamw, {"learning_rate": 0.05}),
    ("AdamW", ref_adamw, {"learning_rate": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("RMSprop", ref_rmsprop, {}),
    ("RMSprop", ref_rmsprop, {"learning_rate": 0.01, "centered": True}),
    ("RMSprop", ref_rmsprop, {"learning_rate": 0.01, "momentum": 0.8}),
    ("RMSprop", ref_rmsprop, {"learning_rate": 0.01, "momentum": 0.8, "centered": True,
                              "rho": 0.7}),
    ("Adagrad", ref_adagrad, {}),
    ("Adagrad", ref_adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 0.5}),
    ("Adadelta", ref_adadelta, {}),
    ("Adadelta", ref_adadelta, {"learning_rate": 1.0, "rho": 0.8, "epsilon": 1e-4}),
    ("Nadam", ref_nadam, {}),
    ("Nadam", ref_nadam, {"learning_rate": 0.05, "beta_1": 0.8}),
    ("Adamax", ref_adamax, {"learning_rate": 0.05}),
    ("Lion", ref_lion, {"learning_rate": 0.01}),
    ("Ftrl", ref_ftrl, {"learning_rate": 0.1}),
    ("Ftrl", ref_ftrl, {"learning_rate": 0.1, "l1_regularization_strength": 0.05,
                        "l2_regularization_strength": 0.1,
                        "l2_shrinkage_regularization_strength": 0.02, "beta": 0.3,
                        "learning_rate_power": -0.7}),
]


def _case_id(case):
    return case[0] + ("-" + "-".join(f"{k}={v}" for k, v in case[2].items()) if case[2] else "")


def _kw_for_optimizer(name, kw):
    kw = dict(kw)
    if name == "Adam" and kw.get("weight_decay") is None:
        kw.pop("weight_decay", None)
    return kw


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_update_rule_matches_reference(case):
    name, ref, kw = case
    opt = getattr(optimizers, name)(**_kw_for_optimizer(name, kw))
    variables = make_vars()
    values_before = [v.value for v in variables]
    for grads in GRADS:
        opt.apply_gradients(zip(grads, variables))
    assert opt.iterations == len(GRADS)
    for i, v in enumerate(variables):
        assert v.value is values_before[i]            # updated in place, never rebound
        assert v.value.dtype == np.float32
        expected = ref(W0[i].astype(np.float64), [g[i].astype(np.float64) for g in GRADS],
                       **kw)
        np.testing.assert_allclose(v.value, expected, rtol=2e-5, atol=2e-6)
        assert np.any(v.value != W0[i])               # the test does move the weights


# ------------------------------------------------------- Keras golden values
# Final weights after six steps, recorded from Keras 3.15.1 (NumPy backend, float32) on the
# inputs of _golden_inputs(); rnnfast reproduced them bit for bit on the recording machine.
# The tolerance leaves room for NumPy's CPU-dependent float32 power/sqrt dispatch only:
# a formulation difference (e.g. Adam's step size computed in float64) exceeds it.
def _golden_inputs():
    w = [(((np.arange(12) * 7 % 11) - 5) / 4).reshape(3, 4).astype(np.float32),
         (((np.arange(4) * 5 % 7) - 3) / 3).astype(np.float32)]
    grads = []
    for t, s in enumerate([2.0, 0.1, 1.5, 0.05, 1.0, 0.5]):
        grads.append([((((np.arange(x.size) * (3 + t) + 2 * t) % 13) - 6) / 5 * s)
                      .reshape(x.shape).astype(np.float32) for x in w])
    return w, grads


KERAS_GOLDEN = [
    ('SGD', {'learning_rate': 0.1, 'momentum': 0.9},
     [-0.0023576021, 0.8985008, -0.06820082, 0.8091302, -1.4987813, 0.29979384, 0.84835464,
      0.34042317, -2.0974884, 1.2398767, 0.7436478, -1.5994937, 0.2476424, 1.0651674, 0.4317992,
      -1.1075364]),
    ('SGD', {'learning_rate': 0.1, 'momentum': 0.5, 'nesterov': True, 'weight_decay': 0.1},
     [-0.72287625, 0.6711679, -0.21518174, 1.033239, -0.5889327, -0.25735182, 0.75892365,
      0.29971945, -1.5174522, 0.8623767, 0.2815039, -1.3646224, -0.4875062, 0.8280813, 0.25555837,
      -0.77126443]),
    ('Adam', {'learning_rate': 0.05},
     [-1.0732521, 0.6106863, -0.45542637, 1.1160767, 0.037921216, -0.5515681, 1.0351492,
      -0.011872925, -1.1746882, 0.8460671, -0.020461798, -1.4835042, -0.8232522, 0.777353,
      0.044573635, -0.80059]),
    ('Adam', {'learning_rate': 0.05, 'amsgrad': True, 'clipnorm': 1.0},
     [-1.0719588, 0.59585077, -0.46706975, 1.1611861, 0.03951425, -0.5800999, 1.0638487,
      0.01936934, -1.1844131, 0.8021738, -0.016643487, -1.5147403, -0.82581776, 0.7621169,
      0.03580319, -0.7656812]),
    ('AdamW', {'learning_rate': 0.05, 'weight_decay': 0.3, 'global_clipnorm': 2.0},
     [-0.97600687, 0.54993296, -0.41979817, 1.0453777, 0.020571321, -0.5048235, 0.9487965,
      0.016206233, -1.0864221, 0.7441152, -0.009754738, -1.3859283, -0.7476798, 0.70215094,
      0.036855966, -0.70512986]),
    ('RMSprop', {'learning_rate': 0.01, 'centered': True, 'momentum': 0.8},
     [-1.1141579, 0.59284204, -0.5242114, 1.1568812, 0.054127716, -0.57409394, 1.0316446,
      -0.014015019, -1.1488264, 0.81688035, 0.0075791627, -1.4832228, -0.86415786, 0.7595087,
      -0.024211418, -0.7597856]),
    ('RMSprop', {'learning_rate': 0.01, 'clipvalue': 0.3},
     [-1.2241464, 0.53007084, -0.5037271, 1.2321597, 0.1962616, -0.7024386, 1.0040213, 0.02799277,
      -1.0469236, 0.7605329, -0.18209708, -1.3311609, -0.9741464, 0.6967375, -0.0037270766,
      -0.68450695]),
    ('Adagrad', {'learning_rate': 0.1},
     [-1.1549704, 0.5860857, -0.42835408, 1.1863936, 0.08276045, -0.6138174, 0.951589, 0.03451281,
      -1.1472412, 0.79954684, -0.032489754, -1.4325417, -0.9049702, 0.75275236, 0.07164596,
      -0.7302731]),
    ('Adadelta', {'learning_rate': 1.0},
     [-1.2487186, 0.501391, -0.49939132, 1.2492564, 0.24714085, -0.7478299, 0.99823976,
      0.0014347247, -1.0024834, 0.7504219, -0.24595514, -1.2541767, -0.99871856, 0.6680577,
      0.00060871063, -0.6674103]),
    ('Nadam', {'learning_rate': 0.05},
     [-1.1795449, 0.56069803, -0.48661873, 1.2012893, 0.13319273, -0.6523023, 0.9767719,
      0.023269437, -1.1034273, 0.78612727, -0.10096005, -1.4004104, -0.9295449, 0.7273647,
      0.01338126, -0.7153774]),
    ('Adamax', {'learning_rate': 0.05},
     [-1.1270515, 0.5904553, -0.48365685, 1.1499469, 0.10037397, -0.60993135, 1.0493008,
      -0.035046544, -1.1217694, 0.83055687, -0.0783872, -1.4187407, -0.8770516, 0.757122,
      0.016343115, -0.76671994]),
    ('Lion', {'learning_rate': 0.01},
     [-1.23, 0.52, -0.49, 1.21, 0.18999997, -0.71000004, 1.0, 0.02, -1.04, 0.78999996, -0.20999998,
      -1.31, -0.98, 0.68666667, 0.01, -0.70666665]),
    ('Ftrl', {'learning_rate': 0.1, 'l1_regularization_strength': 0.05,
     'l2_regularization_strength': 0.1, 'l2_shrinkage_regularization_strength': 0.02, 'beta': 0.3},
     [-0.8662692, 0.35695735, 0.07251427, 0.67581785, 0.040470175, -0.383213, 0.16722716,
      0.041751686, -0.84657323, 0.5805693, 0.05471342, -0.38820875, -0.67602384, 0.4542109,
      0.06944474, -0.43451676]),
    ('Adam', {'learning_rate': 0.05, 'use_ema': True, 'ema_momentum': 0.7,
     'ema_overwrite_frequency': 4, 'gradient_accumulation_steps': 2},
     [-1.1377777, 0.570995, -0.48726195, 1.1502163, 0.109681375, -0.617838, 1.0174621, -0.00286657,
      -1.1125345, 0.8167148, -0.1029275, -1.3978448, -0.8877776, 0.73766166, 0.012738023,
      -0.76645035]),
    ('Nadam', {'learning_rate': ('ExponentialDecay', {'initial_learning_rate': 0.1, 'decay_steps':
     4, 'decay_rate': 0.5})},
     [-1.1139041, 0.60284245, -0.50230914, 1.147613, 0.06392062, -0.5834492, 1.0263903,
      -0.013593541, -1.1562438, 0.8286057, -0.020134248, -1.4706256, -0.86390406, 0.76950914,
      -0.002309151, -0.7690537]),
    ('SGD', {'learning_rate': ('CosineDecay', {'initial_learning_rate': 0.0, 'decay_steps': 4,
     'alpha': 0.1, 'warmup_target': 0.3, 'warmup_steps': 2}), 'momentum': 0.9},
     [-0.73505497, -0.21312663, 0.8590916, 1.450326, -1.5010858, 0.20406994, 0.16236714, 1.9579256,
      -1.083889, -0.5619606, 1.3946638, -1.6485078, -0.48505497, -0.046459936, 1.3590915,
      -0.4663406]),
]


@pytest.mark.parametrize("name, kw, expected", KERAS_GOLDEN,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(KERAS_GOLDEN)])
def test_matches_keras_golden_values(name, kw, expected):
    kw = dict(kw)
    if isinstance(kw.get("learning_rate"), tuple):
        sched_name, sched_kw = kw["learning_rate"]
        kw["learning_rate"] = getattr(schedules, sched_name)(**sched_kw)
    w0, grads = _golden_inputs()
    variables = [Var(w, f"v{i}") for i, w in enumerate(w0)]
    opt = getattr(optimizers, name)(**kw)
    for gs in grads:
        opt.apply_gradients(zip(gs, variables))
    got = np.concatenate([v.value.ravel() for v in variables])
    np.testing.assert_allclose(got, np.array(expected, np.float32), rtol=1e-6, atol=1e-7)


def test_defaults_and_names_match_keras():
    expect = {
        "SGD": ("sgd", 0.01, {"momentum": 0.0, "nesterov": False}),
        "Adam": ("adam", 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
                                 "amsgrad": False}),
        "AdamW": ("adam_w", 0.001, {"weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999,
                                   "epsilon": 1e-7, "amsgrad": False}),
        "RMSprop": ("rm_sprop", 0.001, {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                                       "centered": False}),
        "Adagrad": ("adagrad", 0.001, {"initial_accumulator_value": 0.1, "epsilon": 1e-7}),
        "Adadelta": ("adadelta", 0.001, {"rho": 0.95, "epsilon": 1e-7}),
        "Nadam": ("nadam", 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
        "Adamax": ("adamax", 0.001, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
        "Lion": ("lion", 0.001, {"beta_1": 0.9, "beta_2": 0.99}),
        "Ftrl": ("ftrl", 0.001, {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1,
                                 "beta": 0.0}),
    }
    base_keys = ["name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
                 "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency",
                 "loss_scale_factor", "gradient_accumulation_steps"]
    for cls_name, (name, lr, extra) in expect.items():
        opt = getattr(optimizers, cls_name)()
        config = opt.get_config()
        assert list(config)[:len(base_keys)] == base_keys
        # Keras 3 names optimizers with auto_name: unique snake_case class names
        assert re.fullmatch(name + r"(_\d+)?", config["name"]), config["name"]
        # the learning rate is kept in float32, as Keras keeps it in a float32 variable
        assert config["learning_rate"] == float(np.float32(lr))
        assert isinstance(opt.learning_rate, float) and opt.learning_rate == pytest.approx(lr)
        for key, value in extra.items():
            assert config[key] == value, (cls_name, key)
        json.dumps(config)
    a, b = optimizers.Adagrad(), optimizers.Adagrad()
    assert a.name != b.name
    assert optimizers.Adam(name="mine").name == "mine"


# ------------------------------------------------------------------ clipping
def _sgd_step(opt, grads, variables=None):
    variables = variables or [Var(np.zeros(np.shape(g)), f"v{i}") for i, g in enumerate(grads)]
    opt.apply_gradients(zip(grads, variables))
    return [-v.value for v in variables]        # with lr=1, the applied gradients


def test_clipnorm_per_variable():
    grads = [np.array([3.0, 4.0], np.float32), np.array([0.3, 0.4], np.float32)]
    originals = [g.copy() for g in grads]
    applied = _sgd_step(optimizers.SGD(learning_rate=1.0, clipnorm=1.0), grads)
    np.testing.assert_allclose(applied[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(applied[1], [0.3, 0.4], rtol=1e-6)    # under the norm: as is
    for g, o in zip(grads, originals):
        np.testing.assert_array_equal(g, o)                           # caller's arrays intact


def test_global_clipnorm():
    grads = [np.array([3.0, 4.0], np.float32), np.array([[12.0]], np.float32)]   # norm 13
    applied = _sgd_step(optimizers.SGD(learning_rate=1.0, global_clipnorm=1.3), grads)
    np.testing.assert_allclose(applied[0], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(applied[1], [[1.2]], rtol=1e-6)
    applied = _sgd_step(optimizers.SGD(learning_rate=1.0, global_clipnorm=20.0), grads)
    np.testing.assert_allclose(applied[0], [3.0, 4.0])
    # a non-finite global norm makes every gradient NaN, as in Keras
    with np.errstate(invalid="ignore"):
        applied = _sgd_step(optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0),
                            [np.array([np.inf, 1.0], np.float32), np.ones(2, np.float32)])
    assert np.isnan(applied[1]).all()


def test_clipvalue():
    grads = [np.array([-3.0, 0.2, 7.0], np.float32)]
    applied = _sgd_step(optimizers.SGD(learning_rate=1.0, clipvalue=0.5), grads)
    np.testing.assert_allclose(applied[0], [-0.5, 0.2, 0.5])
    np.testing.assert_array_equal(grads[0], np.array([-3.0, 0.2, 7.0], np.float32))


def test_only_one_clipping_argument():
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


# -------------------------------------------------------------- weight decay
def test_weight_decay_and_exclusions():
    kernel = Var([1.0, -2.0], "kernel")
    bias = Var([1.0, -2.0], "bias")
    other = Var([1.0, -2.0], "other")
    opt = optimizers.SGD(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[other], var_names=["bia"])
    g = np.array([1.0, 1.0], np.float32)
    opt.apply_gradients([(g, kernel), (g, bias), (g, other)])
    decayed = np.array([1.0, -2.0]) * (1 - 0.5 * 0.1) - 0.1 * g
    plain = np.array([1.0, -2.0]) - 0.1 * g
    np.testing.assert_allclose(kernel.value, decayed, rtol=1e-6)
    np.testing.assert_allclose(bias.value, plain, rtol=1e-6)
    np.testing.assert_allclose(other.value, plain, rtol=1e-6)
    # a new call replaces the exclusions (Keras semantics)
    opt.exclude_from_weight_decay(var_names=["kern"])
    before = [v.value.copy() for v in (kernel, bias, other)]
    opt.apply_gradients([(g, kernel), (g, bias), (g, other)])
    np.testing.assert_allclose(kernel.value, before[0] - 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(bias.value, before[1] * 0.95 - 0.1 * g, rtol=1e-6)


def test_adamw_requires_weight_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


# ------------------------------------------------- skipping, constraints, errors
def test_non_trainable_and_none_gradients_are_skipped():
    a, b, c = Var([1.0, 2.0], "a"), Var([1.0, 2.0], "b", trainable=False), Var([1.0, 2.0], "c")
    opt = optimizers.SGD(learning_rate=1.0)
    g = np.ones(2, np.float32)
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['c'\]"):
        opt.apply_gradients([(g, a), (g, b), (None, c)])
    np.testing.assert_array_equal(a.value, [0.0, 1.0])
    np.testing.assert_array_equal(b.value, [1.0, 2.0])
    np.testing.assert_array_equal(c.value, [1.0, 2.0])
    assert opt.iterations == 1
    with pytest.raises(ValueError, match="No gradients provided"):
        opt.apply_gradients([(None, a), (None, c)])
    opt.apply([])                                                  # empty: a no-op
    assert opt.iterations == 1


def test_constraint_applied_after_update():
    v = Var([0.5, 0.2, -0.1], constraint=lambda x: np.clip(x, 0.0, 0.3))
    opt = optimizers.SGD(learning_rate=1.0)
    opt.apply_gradients([(np.array([-0.5, 0.05, -0.3], np.float32), v)])
    # update: [1.0, 0.15, 0.2]; then the constraint
    np.testing.assert_allclose(v.value, [0.3, 0.15, 0.2], rtol=1e-6)


def test_apply_and_build_errors():
    v1, v2 = Var([1.0]), Var([2.0])
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([np.ones(1)])
    opt.build([v1])
    opt.apply([np.ones(1)])                                        # grads follow build's order
    assert opt.iterations == 1
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply_gradients([(np.ones(1), v2)])
    with pytest.raises(ValueError, match="one-to-one"):
        opt.apply([np.ones(1), np.ones(1)])
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones(3)])


def test_gradient_dtype_is_cast():
    v = Var([1.0, 2.0])
    optimizers.SGD(learning_rate=0.5).apply_gradients([(np.array([1.0, 1.0]), v)])  # float64
    assert v.value.dtype == np.float32
    np.testing.assert_array_equal(v.value, [0.5, 1.5])


@pytest.mark.parametrize("make, match", [
    (lambda: optimizers.SGD(learning_rate="fast"), "learning_rate"),
    (lambda: optimizers.SGD(learning_rate=None), "learning_rate"),
    (lambda: optimizers.SGD(momentum=1.5), "momentum"),
    (lambda: optimizers.SGD(momentum=-0.1), "momentum"),
    (lambda: optimizers.Adam(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "ema_momentum"),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5),
     "ema_overwrite_frequency"),
    (lambda: optimizers.Adam(foo=1), "not recognized"),
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), "learning_rate_power"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), "l1_regularization_strength"),
    (lambda: optimizers.Adam(clipnorm="big"), "clipnorm"),
])
def test_invalid_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_decay_argument_warns_and_is_ignored():
    with pytest.warns(UserWarning, match="decay"):
        opt = optimizers.SGD(learning_rate=0.1, decay=0.01)
    assert "decay" not in opt.get_config()


# ----------------------------------------------------------- learning rates
def test_schedules_match_formulas():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    es = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    for step in (0, 1, 9, 10, 25):
        assert e(step) == pytest.approx(0.1 * 0.5 ** (step / 10))
        assert es(step) == pytest.approx(0.1 * 0.5 ** (step // 10))

    pc = schedules.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])
    assert [pc(s) for s in (0, 5, 6, 10, 11, 100)] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.1, 0.1])

    p = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0)
    for step in (0, 3, 10, 20):
        s = min(step, 10)
        assert p(step) == pytest.approx((0.1 - 0.01) * (1 - s / 10) ** 2 + 0.01)
    pcyc = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, cycle=True)
    assert pcyc(0) == pytest.approx(0.1)
    assert pcyc(15) == pytest.approx((0.1 - 0.01) * (1 - 15 / 20) + 0.01)

    it = schedules.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5)
    its = schedules.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True)
    for step in (0, 3, 4, 9):
        assert it(step) == pytest.approx(0.1 / (1 + 0.5 * step / 4))
        assert its(step) == pytest.approx(0.1 / (1 + 0.5 * (step // 4)))

    c = schedules.CosineDecay(0.1, decay_steps=10, alpha=0.2)
    for step in (0, 5, 10, 50):
        s = min(step, 10)
        assert c(step) == pytest.approx(0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi * s / 10))
                                               + 0.2))
    cw = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=4)
    assert [cw(s) for s in (0, 2)] == pytest.approx([0.0, 0.05])
    assert cw(4) == pytest.approx(0.1)
    assert cw(9) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 5 / 10)))
    assert cw(100) == pytest.approx(0.0, abs=1e-12)

    r = schedules.CosineDecayRestarts(0.1, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    # periods: [0, 10), [10, 30), [30, 70) ...
    assert r(0) == pytest.approx(0.1)
    assert r(5) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert r(10) == pytest.approx(0.05)
    assert r(20) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert r(30) == pytest.approx(0.025)
    r1 = schedules.CosineDecayRestarts(0.1, first_decay_steps=10, t_mul=1.0, alpha=0.1)
    assert r1(15) == pytest.approx(0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 0.1))


def test_schedule_validation():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.CosineDecay(0.1, decay_steps=-1)
    with pytest.raises(ValueError, match="first_decay_steps"):
        schedules.CosineDecayRestarts(0.1, first_decay_steps=0)
    with pytest.raises(ValueError, match="boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)


def test_schedule_is_evaluated_at_the_step_being_applied():
    sched = schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5, 0.25])   # steps 0-1, 2, 3+
    opt = optimizers.SGD(learning_rate=sched)
    v = Var([0.0])
    applied = []
    for _ in range(4):
        assert opt.learning_rate == sched(opt.iterations)
        before = float(v.value[0])
        opt.apply_gradients([(np.ones(1, np.float32), v)])
        applied.append(before - float(v.value[0]))
    assert applied == [1.0, 1.0, 0.5, 0.25]
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    assert len(opt.variables) == 1                       # a schedule holds no state


def test_callable_learning_rate():
    current = {"lr": 0.5}
    opt = optimizers.SGD(learning_rate=lambda: current["lr"])
    v = Var([1.0])
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    current["lr"] = 0.25
    assert opt.learning_rate == 0.25
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    np.testing.assert_allclose(v.value, [0.25])


def test_learning_rate_setter_and_getter():
    opt = optimizers.Adam(learning_rate=0.01)
    v = Var([1.0, 2.0])
    opt.apply_gradients([(np.ones(2, np.float32), v)])
    opt.learning_rate = 0.005
    lr = opt.learning_rate
    assert isinstance(lr, float) and lr == float(np.float32(0.005))
    opt.learning_rate = np.float32(0.002)                # what ReduceLROnPlateau may pass
    assert opt.learning_rate == pytest.approx(0.002)
    assert opt.get_config()["learning_rate"] == pytest.approx(0.002)
    assert opt.variables[1].shape == () and float(opt.variables[1]) == pytest.approx(0.002)
    with pytest.raises(ValueError):
        opt.learning_rate = "slow"
    # replacing the float by a schedule drops it from the state (as Keras untracks it)
    n = len(opt.variables)
    opt.learning_rate = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert len(opt.variables) == n - 1
    assert opt.learning_rate == pytest.approx(0.1 * 0.5 ** (1 / 10))


def test_iterations_and_gradient_accumulation():
    v = Var([0.0, 0.0])
    opt = optimizers.SGD(learning_rate=1.0, gradient_accumulation_steps=2)
    opt.apply_gradients([(np.array([1.0, 2.0], np.float32), v)])
    np.testing.assert_array_equal(v.value, [0.0, 0.0])            # accumulated only
    assert opt.iterations == 0
    opt.apply_gradients([(np.array([3.0, 0.0], np.float32), v)])
    np.testing.assert_array_equal(v.value, [-2.0, -1.0])          # mean of the two
    assert opt.iterations == 1
    assert int(opt.variables[0]) == 2                             # raw count in the state
    np.testing.assert_array_equal(opt.variables[2], [0.0, 0.0])   # accumulator reset
    opt.apply_gradients([(np.array([1.0, 1.0], np.float32), v)])
    np.testing.assert_array_equal(opt.variables[2], [1.0, 1.0])


def test_loss_scale_factor():
    opt = optimizers.SGD(learning_rate=1.0, loss_scale_factor=4.0)
    assert opt.scale_loss(2.0) == 8.0
    v = Var([0.0])
    opt.apply_gradients([(np.array([8.0], np.float32), v)])
    np.testing.assert_array_equal(v.value, [-2.0])


def test_ema():
    v = Var([0.0])
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5)
    g = np.array([-1.0], np.float32)
    expected_avg = None
    for step in range(3):
        opt.apply_gradients([(g, v)])
        value = float(v.value[0])
        expected_avg = value if expected_avg is None else 0.5 * expected_avg + 0.5 * value
        np.testing.assert_allclose(opt.variables[2], [expected_avg])   # iteration, lr, average
    assert float(v.value[0]) == 3.0
    opt.finalize_variable_values([v])
    np.testing.assert_allclose(v.value, [expected_avg])               # 1 -> 1.5 -> 2.25

    w = Var([0.0])
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5,
                         ema_overwrite_frequency=2)
    opt.apply_gradients([(g, w)])
    opt.apply_gradients([(g, w)])          # average 1.5 overwrites the weights at step 2
    np.testing.assert_allclose(w.value, [1.5])


# -------------------------------------------------------------- serialization
@pytest.mark.parametrize("identifier, cls", [
    ("sgd", "SGD"), ("SGD", "SGD"), ("adam", "Adam"), ("Adam", "Adam"), ("ADAMW", "AdamW"),
    ("adamw", "AdamW"), ("rmsprop", "RMSprop"), ("RMSProp", "RMSprop"),
    ("adagrad", "Adagrad"), ("adadelta", "Adadelta"), ("nadam", "Nadam"),
    ("adamax", "Adamax"), ("ftrl", "Ftrl"), ("lion", "Lion"),
])
def test_get_by_name(identifier, cls):
    opt = optimizers.get(identifier)
    assert type(opt) is getattr(optimizers, cls)


def test_get_instances_dicts_and_errors():
    opt = optimizers.Adam()
    assert optimizers.get(opt) is opt
    assert optimizers.get(None) is None
    got = optimizers.get({"class_name": "rmsprop", "config": {"learning_rate": 0.5,
                                                              "centered": True}})
    assert isinstance(got, optimizers.RMSprop) and got.centered
    assert got.learning_rate == 0.5
    with pytest.raises(ValueError, match="'adamq'"):
        optimizers.get("adamq")
    with pytest.raises(ValueError, match="'Bogus'"):
        optimizers.deserialize({"class_name": "Bogus", "config": {}})
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(42)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.get({"class_name": "Adam", "config": {"bogus_arg": 1}})


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
                                 "Nadam", "Adamax", "Ftrl", "Lion"])
def test_serialize_round_trip(cls):
    kwargs = {"learning_rate": 0.05, "clipnorm": 2.0, "name": "opt"}
    if cls == "SGD":
        kwargs.update(momentum=0.9, nesterov=True)
    opt = getattr(optimizers, cls)(**kwargs)
    data = optimizers.serialize(opt)
    assert data["module"] == "keras.optimizers" and data["class_name"] == cls
    assert data["registered_name"] is None
    data = json.loads(json.dumps(data))
    again = optimizers.deserialize(data)
    assert type(again) is type(opt)
    assert again.get_config() == opt.get_config()
    assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config()


def test_schedule_inside_optimizer_config():
    sched = schedules.CosineDecay(0.1, decay_steps=100, alpha=0.1, warmup_target=0.2,
                                  warmup_steps=5)
    opt = optimizers.Adam(learning_rate=sched)
    config = opt.get_config()
    assert config["learning_rate"] == {
        "module": "keras.optimizers.schedules", "class_name": "CosineDecay",
        "config": {"initial_learning_rate": 0.1, "decay_steps": 100, "alpha": 0.1,
                   "name": "CosineDecay", "warmup_target": 0.2, "warmup_steps": 5},
        "registered_name": None}
    again = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))
    assert isinstance(again._learning_rate, schedules.CosineDecay)
    assert again.get_config() == config
    assert optimizers.Adam.from_config(config).get_config() == config


@pytest.mark.parametrize("sched", [
    schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    schedules.PolynomialDecay(0.1, 10, 0.001, power=0.5, cycle=True),
    schedules.InverseTimeDecay(0.1, 10, 0.5),
    schedules.CosineDecay(0.1, 10),
    schedules.CosineDecayRestarts(0.1, 10, t_mul=1.5, m_mul=0.9, alpha=0.01),
], ids=lambda s: type(s).__name__)
def test_schedule_serialize_round_trip(sched):
    data = json.loads(json.dumps(schedules.serialize(sched)))
    again = schedules.deserialize(data)
    assert type(again) is type(sched) and again.get_config() == sched.get_config()
    for step in (0, 7, 33):
        assert again(step) == sched(step)


def test_custom_schedule_and_keras2_config():
    class Halving(schedules.LearningRateSchedule):
        def __init__(self, lr):
            self.lr = lr

        def __call__(self, step):
            return self.lr / 2 ** step

        def get_config(self):
            return {"lr": self.lr}

    opt = optimizers.SGD(learning_rate=Halving(1.0))
    data = optimizers.serialize(opt)
    with pytest.raises(ValueError, match="Halving"):
        optimizers.deserialize(data)
    again = optimizers.deserialize(data, custom_objects={"Halving": Halving})
    assert again.learning_rate == 1.0
    # a Keras 2 config (no module, legacy keys) still loads
    old = {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.002,
                                            "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                                            "epsilon": 1e-07, "amsgrad": False,
                                            "is_legacy_optimizer": False,
                                            "jit_compile": True}}
    adam = optimizers.deserialize(old)
    assert isinstance(adam, optimizers.Adam) and adam.learning_rate == pytest.approx(0.002)


# ---------------------------------------------------------------------- state
STATE_CASES = [
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", {"amsgrad": True}),
    ("AdamW", {"use_ema": True}),
    ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("Adagrad", {}),
    ("Adadelta", {}),
    ("Nadam", {"gradient_accumulation_steps": 2}),
    ("Adamax", {}),
    ("Ftrl", {"l1_regularization_strength": 0.01}),
    ("Lion", {"learning_rate": schedules.ExponentialDecay(0.01, 3, 0.5)}),
]


@pytest.mark.parametrize("cls, kw", STATE_CASES, ids=[c for c, _ in STATE_CASES])
def test_state_restores_training_bit_for_bit(cls, kw):
    a_vars = make_vars()
    a = getattr(optimizers, cls)(**kw)
    for grads in GRADS[:3]:
        a.apply_gradients(zip(grads, a_vars))
    state = a.get_state()

    b_vars = make_vars()
    for src, dst in zip(a_vars, b_vars):
        dst.value[...] = src.value
    b = getattr(optimizers, cls)(**kw)
    b.build(b_vars)
    b.set_state(state)
    assert b.iterations == a.iterations
    for grads in GRADS[3:]:
        a.apply_gradients(zip(grads, a_vars))
        b.apply_gradients(zip(grads, b_vars))
    for va, vb in zip(a_vars, b_vars):
        assert va.value.tobytes() == vb.value.tobytes()
    for sa, sb in zip(a.get_state(), b.get_state()):
        assert sa.dtype == sb.dtype and sa.tobytes() == sb.tobytes()


def test_state_layout():
    variables = make_vars()
    opt = optimizers.Adam(amsgrad=True)
    opt.apply_gradients(zip(GRADS[0], variables))
    state = opt.get_state()
    shapes = [s.shape for s in state]
    # iteration, learning_rate, (momentum, velocity) per variable, then velocity_hat's
    assert shapes == [(), (), (3, 4), (3, 4), (4,), (4,), (3, 4), (4,)]
    assert state[0].dtype == np.int64 and int(state[0]) == 1
    assert state[1].dtype == np.float32 and float(state[1]) == pytest.approx(0.001)
    np.testing.assert_allclose(state[2], 0.1 * GRADS[0][0], rtol=1e-6)   # first momentum
    assert state[3].min() >= 0                                           # a velocity
    assert opt._variable_names[0] == opt.name + "/dense_kernel_momentum"
    # Nadam keeps its momentum-schedule product last
    nadam = optimizers.Nadam()
    nadam.apply_gradients(zip(GRADS[0], make_vars()))
    u = nadam.get_state()[-1]
    assert u.shape == () and float(u) == pytest.approx(0.9 * (1 - 0.5 * 0.96))
    # get_state returns copies; variables are the live arrays
    state[2][...] = 123.0
    assert not np.any(opt.variables[2] == 123.0)


def test_set_state_errors_and_store_round_trip():
    opt = optimizers.SGD(momentum=0.5)
    with pytest.raises(ValueError, match="not yet been built"):
        opt.set_state([])
    variables = make_vars()
    opt.apply_gradients(zip(GRADS[0], variables))
    state = opt.get_state()
    with pytest.raises(ValueError, match="4 state arrays"):
        opt.set_state(state[:-1])
    with pytest.raises(ValueError, match="shape"):
        opt.set_state(state[:-1] + [np.zeros(5)])
    store = {}
    opt.save_own_variables(store)
    assert sorted(store) == ["0", "1", "2", "3"]
    other = optimizers.SGD(momentum=0.5)
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        other.load_own_variables(store)
    other.build(make_vars())
    other.load_own_variables(store)
    for x, y in zip(other.get_state(), state):
        np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------- performance
@pytest.mark.parametrize("cls, kw", [("Adam", {}), ("RMSprop", {"centered": True,
                                                                  "momentum": 0.9}),
                                     ("SGD", {"momentum": 0.9, "nesterov": True}),
                                     ("Nadam", {}), ("Adadelta", {}), ("AdamW", {})])
def test_steps_allocate_no_full_size_temporaries(cls, kw):
    v = Var(np.ones((256, 1024), np.float32))        # 1 MiB
    g = np.full(v.value.shape, 0.01, np.float32)
    opt = getattr(optimizers, cls)(**kw)
    opt.apply_gradients([(g, v)])                    # builds slots and scratch buffers
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(3):
            opt.apply_gradients([(g, v)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < v.value.nbytes // 8, peak


def test_keras_style_custom_optimizer_subclass():
    class HeavyBall(optimizers.Optimizer):
        def __init__(self, learning_rate=0.1, beta=0.5, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.beta = beta

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self.velocities = self.add_optimizer_variables(var_list, "velocity")

        def update_step(self, gradient, variable, learning_rate):
            v = self.velocities[self._get_variable_index(variable)]
            self.assign(v, self.beta * v + gradient)
            self.assign_sub(variable, learning_rate * v)

        def get_config(self):
            config = super().get_config()
            config["beta"] = self.beta
            return config

    opt = HeavyBall(learning_rate=0.5)
    assert opt.name.startswith("heavy_ball")
    w = Var([1.0, 1.0])
    for _ in range(2):
        opt.apply_gradients([(np.array([1.0, -1.0], np.float32), w)])
    np.testing.assert_allclose(w.value, [1.0 - 0.5 - 0.75, 1.0 + 0.5 + 0.75])
    assert [s.shape for s in opt.get_state()] == [(), (), (2,)]
    again = optimizers.deserialize(optimizers.serialize(opt),
                                   custom_objects={"HeavyBall": HeavyBall})
    assert isinstance(again, HeavyBall) and again.beta == 0.5
