"""rnnfast.initializers: shapes, dtypes, statistics, seeding and serialization."""

import json
import math

import numpy as np
import pytest

from rnnfast import _rng
from rnnfast import initializers as I

TRUNC = 0.87962566103423978  # stddev of a standard normal truncated to [-2, 2]

ALL_CLASSES = [I.Zeros, I.Ones, I.Constant, I.RandomNormal, I.RandomUniform,
               I.TruncatedNormal, I.VarianceScaling, I.GlorotUniform, I.GlorotNormal,
               I.HeUniform, I.HeNormal, I.LecunUniform, I.LecunNormal, I.Orthogonal,
               I.Identity]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [None, "float32", "float64", np.float64])
def test_shape_and_dtype(cls, dtype):
    init = cls()
    values = init((5, 3), dtype=dtype)
    assert isinstance(values, np.ndarray)
    assert values.shape == (5, 3)
    assert values.dtype == (np.float32 if dtype in (None, "float32") else np.float64)
    assert np.all(np.isfinite(values))


def test_default_dtype_follows_floatx():
    _config = pytest.importorskip("rnnfast._config")
    before = _config.floatx()
    try:
        _config.set_floatx("float64")
        assert I.GlorotUniform()((2, 2)).dtype == np.float64
        assert I.Zeros()((2,)).dtype == np.float64
    finally:
        _config.set_floatx(before)
    assert I.GlorotUniform()((2, 2)).dtype == np.dtype(before)


def test_constant_values():
    np.testing.assert_array_equal(I.Zeros()((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(I.Ones()((4,)), np.ones(4))
    np.testing.assert_array_equal(I.Constant(2.5)((2, 2)), np.full((2, 2), 2.5))
    np.testing.assert_array_equal(I.Constant()((3,)), np.zeros(3))
    # Broadcasting of an array value, and integer dtypes for constant initializers.
    np.testing.assert_array_equal(I.Constant(np.arange(3.0))((2, 3)), [[0, 1, 2]] * 2)
    assert I.Ones()((2,), dtype="int32").dtype == np.int32


def test_identity():
    np.testing.assert_array_equal(I.Identity()((3, 3)), np.eye(3))
    np.testing.assert_array_equal(I.Identity(gain=2.0)((2, 4)), 2.0 * np.eye(2, 4))
    np.testing.assert_array_equal(I.Identity()((4, 2)), np.eye(4, 2))
    with pytest.raises(ValueError, match="2D"):
        I.Identity()((2, 2, 2))


@pytest.mark.parametrize("shape,fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((3, 5), (3, 5)), ((3, 4, 5), (12, 15)),
    ((2, 3, 4, 5), (24, 30))])
def test_compute_fans(shape, fans):
    assert I.compute_fans(shape) == fans


def test_random_normal_statistics():
    v = I.RandomNormal(mean=1.0, stddev=2.0, seed=0)((400, 500), dtype="float64")
    assert abs(v.mean() - 1.0) < 0.02
    assert abs(v.std() - 2.0) < 0.02
    d = I.RandomNormal()((300, 300))
    assert abs(d.std() - 0.05) < 0.002


def test_random_uniform_statistics():
    v = I.RandomUniform(minval=-1.0, maxval=3.0, seed=0)((400, 500), dtype="float64")
    assert v.min() >= -1.0 and v.max() < 3.0
    assert v.min() < -0.999 and v.max() > 2.999
    assert abs(v.mean() - 1.0) < 0.02
    assert abs(v.std() - 4 / math.sqrt(12)) < 0.01
    d = I.RandomUniform()((300, 300))
    assert d.min() >= -0.05 and d.max() <= 0.05


def test_truncated_normal_statistics():
    v = I.TruncatedNormal(mean=0.5, stddev=2.0, seed=0)((400, 500), dtype="float64")
    assert v.min() >= 0.5 - 4.0 and v.max() <= 0.5 + 4.0
    assert v.min() < 0.5 - 3.9 and v.max() > 0.5 + 3.9  # reaches the bounds
    assert abs(v.mean() - 0.5) < 0.02
    assert abs(v.std() - 2.0 * TRUNC) < 0.02


@pytest.mark.parametrize("shape", [(200, 300), (3, 4, 40, 50)])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_statistics(shape, mode, distribution):
    scale = 3.0
    v = I.VarianceScaling(scale=scale, mode=mode, distribution=distribution, seed=1)(
        shape, dtype="float64")
    fan_in, fan_out = I.compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    std = math.sqrt(scale / n)
    assert abs(v.mean()) < 0.02 * std
    assert abs(v.std() - std) < 0.02 * std
    if distribution == "uniform":
        limit = math.sqrt(3 * scale / n)
        assert np.abs(v).max() <= limit and np.abs(v).max() > 0.999 * limit
    elif distribution == "truncated_normal":
        assert np.abs(v).max() <= 2 * std / TRUNC


@pytest.mark.parametrize("cls,limit_or_std", [
    (I.GlorotUniform, lambda fi, fo: ("uniform", math.sqrt(6 / (fi + fo)))),
    (I.GlorotNormal, lambda fi, fo: ("normal", math.sqrt(2 / (fi + fo)))),
    (I.HeUniform, lambda fi, fo: ("uniform", math.sqrt(6 / fi))),
    (I.HeNormal, lambda fi, fo: ("normal", math.sqrt(2 / fi))),
    (I.LecunUniform, lambda fi, fo: ("uniform", math.sqrt(3 / fi))),
    (I.LecunNormal, lambda fi, fo: ("normal", math.sqrt(1 / fi))),
], ids=lambda c: getattr(c, "__name__", ""))
def test_named_variance_scaling(cls, limit_or_std):
    shape = (120, 500)
    v = cls(seed=2)(shape, dtype="float64")
    kind, value = limit_or_std(*shape)
    if kind == "uniform":
        assert np.abs(v).max() <= value and np.abs(v).max() > 0.999 * value
        assert abs(v.std() - value / math.sqrt(3)) < 0.01 * value
    else:
        assert abs(v.std() - value) < 0.02 * value
        assert np.abs(v).max() <= 2 * value / TRUNC


@pytest.mark.parametrize("shape", [(10, 4), (4, 10), (6, 6), (3, 4, 5), (2, 2, 9), (1, 7)])
@pytest.mark.parametrize("gain", [1.0, 1.7])
def test_orthogonal(shape, gain):
    v = I.Orthogonal(gain=gain, seed=5)(shape, dtype="float64")
    assert v.shape == shape
    m = v.reshape(-1, shape[-1]) / gain
    rows, cols = m.shape
    if rows >= cols:  # orthonormal columns
        np.testing.assert_allclose(m.T @ m, np.eye(cols), atol=1e-12)
    else:  # orthonormal rows
        np.testing.assert_allclose(m @ m.T, np.eye(rows), atol=1e-12)
    assert I.Orthogonal()(shape).dtype == np.float32


def test_orthogonal_qr_runs_on_one_blas_thread(monkeypatch):
    """NumPy's BLAS workers spin for ~0.1 s after a threaded call, taking a
    core from the kernels (utils/blas.py): the QR runs on one BLAS thread, and
    the limit is lifted afterwards."""
    import threadpoolctl

    def blas():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    if not before or max(before) == 1:
        pytest.skip("NumPy's BLAS runs on one thread here anyway")
    seen, real_qr = [], np.linalg.qr

    def qr(a, *args, **kwargs):
        seen.append(blas())
        return real_qr(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "qr", qr)
    v = I.Orthogonal(seed=1)((64, 256), dtype="float64")
    assert seen == [[1] * len(before)]
    assert blas() == before
    np.testing.assert_allclose(v @ v.T, np.eye(64), atol=1e-12)


def test_orthogonal_needs_rank_2():
    with pytest.raises(ValueError, match="two-dimensional"):
        I.Orthogonal()((5,))


def test_orthogonal_is_uniformly_signed():
    # Sign correction by diag(R): the draw is Haar, so no bias in the diagonal.
    diag = np.array([np.diag(I.Orthogonal()((4, 4))) for _ in range(400)])
    assert abs(diag.mean()) < 0.1


SEEDABLE = [I.RandomNormal, I.RandomUniform, I.TruncatedNormal, I.VarianceScaling,
            I.GlorotUniform, I.GlorotNormal, I.HeUniform, I.HeNormal, I.LecunUniform,
            I.LecunNormal, I.Orthogonal]


@pytest.mark.parametrize("cls", SEEDABLE, ids=lambda c: c.__name__)
def test_seeding(cls):
    seeded = cls(seed=42)
    a, b = seeded((6, 5)), seeded((6, 5))
    np.testing.assert_array_equal(a, b)  # an integer seed repeats on every call
    np.testing.assert_array_equal(a, cls(seed=42)((6, 5)))  # and across instances
    assert not np.array_equal(a, cls(seed=43)((6, 5)))
    # The float64 draw is the same one, before rounding.
    np.testing.assert_allclose(seeded((6, 5), dtype="float64"), a, rtol=1e-6, atol=1e-7)

    unseeded = cls()
    assert not np.array_equal(unseeded((6, 5)), unseeded((6, 5)))

    _rng.set_global_seed(123)
    c = cls()((6, 5))
    d = cls()((6, 5))
    _rng.set_global_seed(123)
    np.testing.assert_array_equal(cls()((6, 5)), c)
    np.testing.assert_array_equal(cls()((6, 5)), d)


def test_generator_seed_advances():
    init = I.RandomNormal(seed=np.random.default_rng(0))
    assert not np.array_equal(init((3,)), init((3,)))
    assert init.get_config()["seed"] is None


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`scale` must be positive"):
        I.VarianceScaling(scale=-1.0)
    with pytest.raises(ValueError, match="Invalid `mode` argument"):
        I.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match="Invalid `distribution` argument"):
        I.VarianceScaling(distribution="gamma")
    assert I.VarianceScaling(distribution="Normal").distribution == "truncated_normal"
    with pytest.raises(ValueError, match="seed"):
        I.RandomNormal(seed="abc")
    with pytest.raises(ValueError, match="floating"):
        I.RandomNormal()((2,), dtype="int32")
    with pytest.raises(ValueError):
        I.Zeros()((2, None))
    with pytest.raises(NotImplementedError):
        I.Initializer()((2,))


# ---------------------------------------------------------------- configs & lookup

CONFIGURED = [
    (I.Zeros(), {}),
    (I.Ones(), {}),
    (I.Constant(value=0.7), {"value": 0.7}),
    (I.Identity(gain=3.0), {"gain": 3.0}),
    (I.RandomNormal(mean=0.1, stddev=0.2, seed=3), {"seed": 3, "mean": 0.1, "stddev": 0.2}),
    (I.RandomUniform(minval=-1, maxval=2, seed=None),
     {"seed": None, "minval": -1, "maxval": 2}),
    (I.TruncatedNormal(stddev=0.3, seed=4), {"seed": 4, "mean": 0.0, "stddev": 0.3}),
    (I.VarianceScaling(scale=2.0, mode="fan_out", distribution="uniform", seed=5),
     {"seed": 5, "scale": 2.0, "mode": "fan_out", "distribution": "uniform",
      "input_axes": None, "output_axes": None}),
    (I.GlorotUniform(seed=6), {"seed": 6, "input_axes": None, "output_axes": None}),
    (I.GlorotNormal(), {"seed": None, "input_axes": None, "output_axes": None}),
    (I.HeNormal(seed=7), {"seed": 7, "input_axes": None, "output_axes": None}),
    (I.HeUniform(), {"seed": None, "input_axes": None, "output_axes": None}),
    (I.LecunNormal(), {"seed": None, "input_axes": None, "output_axes": None}),
    (I.LecunUniform(seed=8), {"seed": 8, "input_axes": None, "output_axes": None}),
    (I.Orthogonal(gain=0.5, seed=9), {"seed": 9, "gain": 0.5}),
    # Keras 3.15: fans from explicit axes.
    (I.GlorotUniform(input_axes=[0, 1], output_axes=[2]),
     {"seed": None, "input_axes": [0, 1], "output_axes": [2]}),
]


def test_fans_from_axes():
    assert I.compute_fans((3, 4, 5), input_axes=[0, 1], output_axes=[2]) == (12, 5)
    assert I.compute_fans((3, 4, 5), input_axes=[0], output_axes=[1, 2]) == (3, 20)
    limit = np.sqrt(6.0 / (12 + 5))
    w = I.GlorotUniform(seed=0, input_axes=[0, 1], output_axes=[2])((3, 4, 5))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit


@pytest.mark.parametrize("init,config", CONFIGURED, ids=lambda v: type(v).__name__)
def test_config_round_trip(init, config):
    assert init.get_config() == config
    clone = type(init).from_config(init.get_config())
    assert type(clone) is type(init) and clone.get_config() == config

    s = I.serialize(init)
    assert s == {"module": "keras.initializers", "class_name": type(init).__name__,
                 "config": config, "registered_name": None}
    s = json.loads(json.dumps(s))
    again = I.deserialize(s)
    assert type(again) is type(init) and again.get_config() == config
    assert type(I.get(s)) is type(init)
    # Keras 2 style dict (no module).
    assert type(I.get({"class_name": type(init).__name__, "config": config})) is type(init)
    if config.get("seed") is not None:
        np.testing.assert_array_equal(again((3, 4)), init((3, 4)))


def test_constant_array_config():
    init = I.Constant(np.array([1.0, 2.0], np.float32))
    config = json.loads(json.dumps(init.get_config()))
    np.testing.assert_array_equal(I.Constant.from_config(config)((3, 2)), [[1, 2]] * 3)
    assert I.Constant(np.float32(2.0)).get_config() == {"value": 2.0}


@pytest.mark.parametrize("name,cls", [
    ("glorot_uniform", I.GlorotUniform), ("GlorotUniform", I.GlorotUniform),
    ("glorot_normal", I.GlorotNormal), ("he_normal", I.HeNormal), ("he_uniform", I.HeUniform),
    ("lecun_normal", I.LecunNormal), ("lecun_uniform", I.LecunUniform),
    ("orthogonal", I.Orthogonal), ("Orthogonal", I.Orthogonal),
    ("OrthogonalInitializer", I.Orthogonal), ("zeros", I.Zeros), ("zero", I.Zeros),
    ("ones", I.Ones), ("one", I.Ones), ("constant", I.Constant), ("identity", I.Identity),
    ("IdentityInitializer", I.Identity), ("random_normal", I.RandomNormal),
    ("normal", I.RandomNormal), ("random_uniform", I.RandomUniform),
    ("uniform", I.RandomUniform), ("truncated_normal", I.TruncatedNormal),
    ("variance_scaling", I.VarianceScaling), ("VarianceScaling", I.VarianceScaling),
])
def test_get_by_name(name, cls):
    obj = I.get(name)
    assert type(obj) is cls
    assert obj.get_config() == cls().get_config()  # default arguments


def test_module_aliases():
    assert I.glorot_uniform is I.GlorotUniform and I.orthogonal is I.Orthogonal
    assert I.zeros is I.Zeros and I.ones is I.Ones and I.constant is I.Constant
    assert I.OrthogonalInitializer is I.Orthogonal and I.IdentityInitializer is I.Identity
    assert I.he_normal is I.HeNormal and I.variance_scaling is I.VarianceScaling


def test_get_other_identifiers():
    assert I.get(None) is None
    inst = I.HeNormal()
    assert I.get(inst) is inst
    assert type(I.get(I.Ones)) is I.Ones

    def my_init(shape, dtype=None):
        return np.full(shape, 3.0, dtype=dtype or "float32")

    assert I.get(my_init) is my_init
    assert I.serialize(my_init) == "my_init"

    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    fn = I.get(arr)
    np.testing.assert_array_equal(fn((2, 3)), arr)
    assert fn((2, 3), dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="Expected `shape` to be"):
        fn((3, 2))

    with pytest.raises(ValueError, match="typo"):
        I.get("typo")
    with pytest.raises(ValueError):
        I.get(12)
