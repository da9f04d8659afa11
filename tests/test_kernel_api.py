"""The binding layer: bad arguments raise clear Python exceptions naming the
argument and the expected shape or dtype; conversions are explicit; the cache
contract between forward and backward holds."""

import re

import numpy as np
import pytest

import rnnfast
from kernel_harness import (Case, kernel_backward, kernel_forward, make_arrays, make_kernel,
                            output_grads,
                            reference_forward)
from rnnfast import _core

B, T, I, U = 2, 3, 4, 5


def lstm_args(dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, T, I)).astype(dtype),
            rng.standard_normal((I, 4 * U)).astype(dtype) * 0.3,
            rng.standard_normal((U, 4 * U)).astype(dtype) * 0.3,
            rng.standard_normal(4 * U).astype(dtype) * 0.1)


@pytest.fixture
def lstm():
    return _core.LSTMKernel(U)


def test_import_exposes_version_and_core():
    assert isinstance(rnnfast.__version__, str) and rnnfast.__version__.count(".") == 2
    import rnnfast._core as core  # registered by the loader

    assert core is rnnfast._core
    info = rnnfast.build_info()
    assert info["isa_level"] in info["supported_levels"]
    assert info["isa_level"] == info["supported_levels"][0]


@pytest.mark.parametrize("bad,err,msg", [
    (np.zeros((B, T), np.float32), ValueError, r"x must be a 3-D array \(batch, time, features\), got shape \(2, 3\)"),
    (np.zeros((B, T, I), np.int64), TypeError, r"x has dtype int64, expected float32 or float64"),
    (np.zeros((B, 0, I), np.float32), ValueError, r"at least one .* got shape \(2, 0, 4\)"),
    (np.zeros((0, T, I), np.float32), ValueError, r"at least one"),
    (None, TypeError, r"x must be an array, got None"),
])
def test_bad_x(lstm, bad, err, msg):
    _, k, r, b = lstm_args()
    with pytest.raises(err, match=msg):
        lstm.forward(bad, k, r, b)


def test_bad_weight_shapes_and_dtypes(lstm):
    x, k, r, b = lstm_args()
    with pytest.raises(ValueError, match=r"kernel must have shape \(4, 20\) \(features, 4\*units\), got \(4, 16\)"):
        lstm.forward(x, k[:, :16], r, b)
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(5, 20\)"):
        lstm.forward(x, k, r[:4], b)
    with pytest.raises(ValueError, match=r"bias must have shape \(20,\)"):
        lstm.forward(x, k, r, b[:10])
    with pytest.raises(TypeError, match=r"recurrent_kernel has dtype float64, expected float32 \(the dtype of x\)"):
        lstm.forward(x, k, r.astype(np.float64), b)
    with pytest.raises(TypeError, match=r"bias has dtype float16"):
        lstm.forward(x, k, r, b.astype(np.float16))
    big_endian = k.astype(">f4")
    with pytest.raises(TypeError, match=r"kernel has dtype >f4"):
        lstm.forward(x, big_endian, r, b)


def test_gru_bias_shape_follows_reset_after():
    x = np.zeros((B, T, I))
    k, r = np.zeros((I, 3 * U)), np.zeros((U, 3 * U))
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 15\)"):
        _core.GRUKernel(U).forward(x, k, r, np.zeros(3 * U))
    with pytest.raises(ValueError, match=r"bias must have shape \(15,\)"):
        _core.GRUKernel(U, reset_after=False).forward(x, k, r, np.zeros((2, 3 * U)))


def test_bad_states(lstm):
    x, k, r, b = lstm_args()
    h = np.zeros((B, U), np.float32)
    with pytest.raises(TypeError, match=r"initial_state must be a pair \(h, c\)"):
        lstm.forward(x, k, r, b, initial_state=h)
    with pytest.raises(ValueError, match=r"initial_state must hold 2 arrays"):
        lstm.forward(x, k, r, b, initial_state=[h, h, h])
    with pytest.raises(ValueError, match=r"initial_state\[1\] must have shape \(2, 5\)"):
        lstm.forward(x, k, r, b, initial_state=(h, np.zeros((B, U + 1), np.float32)))
    gru = _core.GRUKernel(U)
    with pytest.raises(ValueError, match=r"initial_state must have shape \(2, 5\) \(batch, units\), got \(5,\)"):
        gru.forward(x, np.zeros((I, 3 * U), np.float32), np.zeros((U, 3 * U), np.float32),
                    initial_state=np.zeros(U, np.float32))


def test_mask_checks_and_dtypes(lstm):
    x, k, r, b = lstm_args()
    m = np.array([[1, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\) \(batch, time\), got \(3, 2\)"):
        lstm.forward(x, k, r, b, mask=m.T)
    with pytest.raises(TypeError, match=r"mask has dtype <U1"):
        lstm.forward(x, k, r, b, mask=np.array([["a"] * T] * B))
    y_bool, _ = lstm.forward(x, k, r, b, mask=m.astype(bool))
    for other in (m, m.astype(np.float32), m.astype(np.uint8)):
        y, _ = lstm.forward(x, k, r, b, mask=other)
        np.testing.assert_array_equal(y, y_bool)


def test_dropout_mask_shapes(lstm):
    x, k, r, b = lstm_args()
    with pytest.raises(ValueError, match=r"input_dropout_mask must have shape \(2, 4\) or \(4, 2, 4\), got \(3, 2, 4\)"):
        lstm.forward(x, k, r, b, input_dropout_mask=np.ones((3, B, I), np.float32))
    with pytest.raises(ValueError, match=r"recurrent_dropout_mask must have shape \(2, 5\)"):
        lstm.forward(x, k, r, b, recurrent_dropout_mask=np.ones((B, U + 1), np.float32))
    # [1, B, I] is the shared form.
    m = np.full((B, I), 2.0, np.float32)
    y1, _ = lstm.forward(x, k, r, b, input_dropout_mask=m)
    y2, _ = lstm.forward(x, k, r, b, input_dropout_mask=m[None])
    np.testing.assert_array_equal(y1, y2)


def test_out_buffer(lstm):
    x, k, r, b = lstm_args()
    out = np.empty((B, T, U), np.float32)
    y, _ = lstm.forward(x, k, r, b, out=out)
    assert y is out
    np.testing.assert_array_equal(out, lstm.forward(x, k, r, b)[0])
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 5\) \(output\), got \(2, 3, 4\)"):
        lstm.forward(x, k, r, b, out=np.empty((B, T, U - 1), np.float32))
    with pytest.raises(TypeError, match=r"out has dtype float64, expected float32"):
        lstm.forward(x, k, r, b, out=np.empty((B, T, U)))
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        lstm.forward(x, k, r, b, out=np.empty((U, T, B), np.float32).transpose(2, 1, 0))
    ro = np.empty((B, T, U), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"out must be writeable"):
        lstm.forward(x, k, r, b, out=ro)
    with pytest.raises(TypeError, match=r"out must be a numpy.ndarray or None"):
        lstm.forward(x, k, r, b, out=[[0.0]])


def test_out_must_not_overlap_inputs():
    k = _core.SimpleRNNKernel(3)
    x = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match=r"out must not share memory with x"):
        k.forward(x, np.eye(3), np.eye(3), out=x)


def test_non_contiguous_and_list_inputs_are_converted():
    case = Case("gru", B=3, T=4, I=5, U=6, initial_state=True, seed=2)
    a = make_arrays(case)
    y_ref, _ = kernel_forward(case, make_kernel(case), a, training=False)
    b = dict(a)
    b["x"] = np.asfortranarray(a["x"])
    b["kernel"] = np.repeat(a["kernel"], 2, axis=1)[:, ::2]  # a strided view
    assert not b["kernel"].flags.c_contiguous
    b["recurrent_kernel"] = a["recurrent_kernel"].tolist()  # Python floats -> float64
    y, _ = kernel_forward(case, make_kernel(case), b, training=False)
    np.testing.assert_array_equal(y, y_ref)


def test_cache_contract(lstm):
    x, k, r, b = lstm_args()
    with pytest.raises(RuntimeError, match=r"needs the cache of a forward\(\.\.\., training=True\)"):
        lstm.backward(k, r)
    lstm.forward(x, k, r, b, training=True)
    assert lstm.has_cache
    lstm.backward(k, r, doutputs=np.ones((B, T, U), np.float32))
    assert not lstm.has_cache
    with pytest.raises(RuntimeError, match=r"each training forward serves one backward"):
        lstm.backward(k, r)
    # An inference forward of the same dtype reuses the workspace.
    lstm.forward(x, k, r, b, training=True)
    lstm.forward(x, k, r, b, training=False)
    with pytest.raises(RuntimeError):
        lstm.backward(k, r)
    # ... one of the other dtype does not.
    lstm.forward(x, k, r, b, training=True)
    lstm.forward(*lstm_args(np.float64))
    assert lstm.has_cache
    lstm.backward(k, r)


def test_backward_argument_checks(lstm):
    x, k, r, b = lstm_args()
    lstm.forward(x, k, r, b, training=True)
    with pytest.raises(ValueError, match=r"kernel must have shape \(4, 20\)"):
        lstm.backward(k[:, :10], r)
    with pytest.raises(ValueError, match=r"doutputs must have shape \(2, 3, 5\)"):
        lstm.backward(k, r, doutputs=np.ones((B, T, U + 1), np.float32))
    with pytest.raises(TypeError, match=r"doutputs has dtype float64, expected float32"):
        lstm.backward(k, r, doutputs=np.ones((B, T, U)))
    with pytest.raises(TypeError, match=r"dfinal_state must be a pair"):
        lstm.backward(k, r, dfinal_state=np.ones((B, U), np.float32))
    with pytest.raises(ValueError, match=r"dbias_out must have shape \(20,\)"):
        lstm.backward(k, r, dbias_out=np.empty(3, np.float32))
    # A failed check leaves the cache for a correct call.
    dx = np.empty((B, T, I), np.float32)
    got = lstm.backward(k, r, doutputs=np.ones((B, T, U), np.float32), dx_out=dx)
    assert got[0] is dx


def test_backward_without_bias_returns_none():
    k = _core.SimpleRNNKernel(2)
    x = np.ones((1, 2, 2))
    k.forward(x, np.eye(2), np.eye(2), training=True)
    dx, dh0, dk, dr, db = k.backward(np.eye(2), np.eye(2), doutputs=np.ones((1, 2, 2)))
    assert db is None and dx.shape == (1, 2, 2) and dh0.shape == (1, 2)


@pytest.mark.parametrize("factory,msg", [
    (lambda: _core.LSTMKernel(0), r"units must be a positive integer, got 0"),
    (lambda: _core.GRUKernel(-3), r"units must be a positive integer, got -3"),
    (lambda: _core.SimpleRNNKernel(4, activation="swish"),
     r"unknown activation 'swish': expected one of 'tanh', 'sigmoid', 'hard_sigmoid', 'relu', 'linear'"),
    (lambda: _core.LSTMKernel(4, recurrent_activation="softmax"), r"unknown activation 'softmax'"),
])
def test_bad_constructor_arguments(factory, msg):
    with pytest.raises(ValueError, match=msg):
        factory()


def test_threads_setting():
    n = rnnfast.get_num_threads()
    try:
        rnnfast.set_num_threads(1)
        assert rnnfast.get_num_threads() == 1
        with pytest.raises(ValueError, match=r"n must be a positive integer, got 0"):
            rnnfast.set_num_threads(0)
    finally:
        rnnfast.set_num_threads(n)


def test_nan_inputs_propagate_without_crashing():
    case = Case("lstm", B=2, T=3, I=2, U=3)
    a = make_arrays(case)
    a["x"][1, 1, 0] = np.nan
    y, _ = kernel_forward(case, make_kernel(case), a, training=False)
    assert np.isnan(y[1, 1:]).all() and np.isfinite(y[0]).all() and np.isfinite(y[1, 0]).all()


def test_properties():
    k = _core.GRUKernel(7, activation="relu", recurrent_activation="hard_sigmoid",
                        reset_after=False, go_backwards=True)
    assert (k.units, k.gates, k.activation, k.recurrent_activation, k.reset_after,
            k.go_backwards, k.has_cache) == (7, 3, "relu", "hard_sigmoid", False, True, False)


@pytest.mark.parametrize("case", [
    Case("gru", B=4, T=5, I=3, U=8, mask=True, recurrent_dropout=3, seed=4),
    # Packed panels with the input projected step by step: inference keeps two
    # steps' gates in a ring, training keeps all of them.
    Case("simple_rnn", B=8, T=5, I=20, U=150, mask=True, seed=5),
    Case("lstm", B=8, T=5, I=20, U=150, go_backwards=True, recurrent_dropout=1, seed=6),
    Case("gru", B=8, T=5, I=20, U=150, mask=True, seed=7),
    Case("gru", B=8, T=5, I=20, U=150, reset_after=False, recurrent_dropout=3, seed=8),
    # Small kernels, enough rows: the inference forward's members split rows
    # (no barrier per step), the training forward's split units.
    Case("simple_rnn", B=32, T=6, I=24, U=70, mask=True, recurrent_dropout=1, seed=9),
    Case("lstm", B=32, T=6, I=24, U=70, go_backwards=True, initial_state=True, seed=10),
    Case("lstm", B=9, T=6, I=3, U=20, mask=True, recurrent_dropout=1, seed=11),
    Case("gru", B=32, T=6, I=24, U=70, mask=True, initial_state=True, seed=12),
    Case("gru", B=17, T=6, I=24, U=70, reset_after=False, recurrent_dropout=3, seed=13),
], ids=lambda c: f"{c.cell}-B{c.B}-U{c.U}")
def test_inference_matches_training_forward(case):
    a = make_arrays(case)
    y_inf, s_inf = kernel_forward(case, make_kernel(case), a, training=False)
    y_tr, s_tr = kernel_forward(case, make_kernel(case), a, training=True)
    np.testing.assert_array_equal(y_inf, y_tr)
    y_ref, _, _ = reference_forward(case, a)
    np.testing.assert_allclose(y_inf, y_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [
    Case("gru", B=4, T=5, I=3, U=8, mask=True, recurrent_dropout=3, seed=4),
    Case("lstm", B=8, T=5, I=20, U=150, go_backwards=True, recurrent_dropout=1, seed=6),
    Case("simple_rnn", B=32, T=6, I=24, U=70, mask=True, recurrent_dropout=1, seed=9),
    Case("lstm", B=9, T=6, I=3, U=20, mask=True, initial_state=True, seed=11),
    Case("gru", B=17, T=6, I=24, U=70, reset_after=False, recurrent_dropout=3, seed=13),
], ids=lambda c: f"{c.cell}-B{c.B}-U{c.U}")
@pytest.mark.parametrize("threads", [1, 2])
def test_without_return_sequences_only_the_final_state(case, threads):
    # return_sequences=False writes no outputs: the final states (and, after a
    # training forward, the gradients) are those of the full forward.
    a = make_arrays(case)
    old = rnnfast.get_num_threads()
    rnnfast.set_num_threads(threads)
    try:
        for training in (False, True):
            y_full, s_full = kernel_forward(case, make_kernel(case), a, training=training)
            k = make_kernel(case)
            y, s = kernel_forward(case, k, a, training=training, return_sequences=False)
            assert y is None
            for got, want in zip(s, s_full):
                np.testing.assert_array_equal(got, want)
        _, want_states, _ = reference_forward(case, a)
        for got_s, want_s in zip(s, want_states):
            np.testing.assert_allclose(got_s, want_s, rtol=1e-10, atol=1e-10)
        dstates = [np.random.default_rng(3).standard_normal(st.shape).astype(st.dtype) for st in s]
        got = kernel_backward(case, k, a, None, dstates)
        k_full = make_kernel(case)
        kernel_forward(case, k_full, a, training=True)
        want = kernel_backward(case, k_full, a, None, dstates)
        for name in ("dx", "dkernel", "drecurrent_kernel", "dbias"):
            np.testing.assert_array_equal(got[name], want[name])
    finally:
        rnnfast.set_num_threads(old)


def test_return_sequences_false_rejects_out(lstm):
    x, k, r, b = lstm_args()
    with pytest.raises(ValueError, match="out was given but return_sequences is False"):
        lstm.forward(x, k, r, b, out=np.empty((B, T, U), np.float32), return_sequences=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3, 4), (700, 64, 92), (3, 300, 900)])
def test_matmul_matches_numpy(dtype, shape):
    """The dense layers' products run on rnnfast's threads (not NumPy's BLAS)."""
    M, K, N = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    ref = a.astype(np.float64) @ b
    for got in (_core.matmul(a, b), _core.matmul(np.ascontiguousarray(a.T), b, trans_a=True),
                _core.matmul(a, np.ascontiguousarray(b.T), trans_b=True)):
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    out = np.ones((M, N), dtype)
    _core.matmul(a, b, out=out, accumulate=True)
    np.testing.assert_allclose(out, ref + 1, rtol=tol, atol=tol * np.abs(ref).max())


def test_matmul_argument_checks():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"b must have shape \(3, 4\)|b must have shape \(3, 5\)"):
        _core.matmul(a, np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="b has dtype float64, expected float32"):
        _core.matmul(a, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="a must be a 2-D array"):
        _core.matmul(np.zeros(3, np.float32), a)


@pytest.mark.parametrize("case", [
    Case("lstm", B=3, T=4, I=5, U=6, mask=True, seed=1),                        # streamed weight grads
    Case("gru", B=8, T=5, I=20, U=150, input_dropout=1, seed=2),               # packed panels
    Case("simple_rnn", B=4, T=3, I=100, U=900, go_backwards=True, seed=3),     # GEMMs after the loop
    Case("gru", B=4, T=3, I=100, U=400, reset_after=False, recurrent_dropout=3, seed=4),
], ids=lambda c: f"{c.cell}-U{c.U}")
def test_backward_without_dx_gives_the_same_weight_gradients(case):
    """compute_dx=False (a model's first layer) skips dL/dx and changes nothing else.

    Bit for bit, so on one thread: with two, a kernel call that sees the host
    contended falls back to one thread for a while, and a different split sums
    in a different order (1e-13 apart in float64)."""
    from kernel_harness import output_grads

    a = make_arrays(case)
    dy, ds = output_grads(case)
    dfinal = tuple(ds) if case.cell == "lstm" else ds[0]
    results = []
    saved = rnnfast.get_num_threads()
    rnnfast.set_num_threads(1)
    try:
        for compute_dx in (True, False):
            k = make_kernel(case)
            kernel_forward(case, k, a, training=True)
            results.append(k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy,
                                      dfinal_state=dfinal, compute_dx=compute_dx))
    finally:
        rnnfast.set_num_threads(saved)
    (dx, dinit, *weights), (no_dx, dinit2, *weights2) = results
    assert dx is not None and dx.shape == a["x"].shape and no_dx is None
    for w, w2 in zip(list(weights) + [dinit], list(weights2) + [dinit2]):
        if w is None:
            assert w2 is None
        else:
            np.testing.assert_array_equal(np.asarray(w), np.asarray(w2))


def test_backward_rejects_dx_out_without_compute_dx(lstm):
    x, k, r, b = lstm_args()
    lstm.forward(x, k, r, b, training=True)
    with pytest.raises(ValueError, match="dx_out was given but compute_dx is False"):
        lstm.backward(k, r, dx_out=np.empty_like(x), compute_dx=False)


# ---- overlapping output arrays (refused: they gave silently wrong gradients) ----

OVERLAP_CASES = [Case(c, B=3, T=4, I=5, U=6, initial_state=True, seed=3)
                 for c in ("simple_rnn", "lstm", "gru")]


def _backward_outputs(case, buf, offsets):
    """Views of one buffer for dx/dkernel/drecurrent_kernel/dbias_out, each at
    its element offset (None: let the kernel allocate it)."""
    shapes = {"dx_out": (case.B, case.T, case.I), "dkernel_out": (case.I, case.G * case.U),
              "drecurrent_kernel_out": (case.U, case.G * case.U)}
    shapes["dbias_out"] = (2, 3 * case.U) if case.cell == "gru" else (case.G * case.U,)
    return {name: buf[o:o + int(np.prod(shapes[name]))].reshape(shapes[name])
            for name, o in offsets.items()}


def _overlap_run(case):
    a = make_arrays(case)
    dy, ds = output_grads(case)
    k = make_kernel(case)
    kernel_forward(case, k, a, training=True)
    dfinal = tuple(ds) if case.cell == "lstm" else ds[0]
    return k, a, dy, dfinal


@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: c.cell)
@pytest.mark.parametrize("first,second", [
    ("dkernel_out", "drecurrent_kernel_out"), ("dx_out", "dkernel_out"),
    ("dx_out", "dbias_out"), ("drecurrent_kernel_out", "dbias_out")])
def test_backward_refuses_overlapping_outputs(case, first, second):
    k, a, dy, dfinal = _overlap_run(case)
    want = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dfinal_state=dfinal)
    kernel_forward(case, k, a, training=True)
    buf = np.zeros(4096)
    outs = _backward_outputs(case, buf, {first: 0, second: 7})  # partly overlapping views
    with pytest.raises(ValueError, match=rf"{second} must not share memory with {first}"):
        k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dfinal_state=dfinal, **outs)
    # Refused before the kernel ran: the cache is still there for a proper call.
    assert k.has_cache
    got = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dfinal_state=dfinal)
    for g, w in zip(got[2:], want[2:]):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: c.cell)
def test_backward_accepts_disjoint_views_of_one_buffer(case):
    k, a, dy, dfinal = _overlap_run(case)
    want = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dfinal_state=dfinal)
    kernel_forward(case, k, a, training=True)
    buf = np.full(4096, np.nan)
    sizes = [case.B * case.T * case.I, case.I * case.G * case.U, case.U * case.G * case.U]
    offsets = np.cumsum([0] + sizes)  # back to back, no gap
    outs = _backward_outputs(case, buf, dict(zip(
        ("dx_out", "dkernel_out", "drecurrent_kernel_out", "dbias_out"), offsets.tolist())))
    got = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dfinal_state=dfinal, **outs)
    assert got[0] is outs["dx_out"] and got[2] is outs["dkernel_out"]
    for i in (0, 2, 3, 4):
        np.testing.assert_array_equal(got[i], want[i])


def test_backward_refuses_one_array_for_two_outputs():
    # SimpleRNN with I == U: kernel and recurrent kernel gradients have one shape.
    case = Case("simple_rnn", B=2, T=3, I=4, U=4, seed=1)
    k, a, dy, dfinal = _overlap_run(case)
    same = np.empty((4, 4))
    with pytest.raises(ValueError, match="drecurrent_kernel_out must not share memory with "
                                         "dkernel_out"):
        k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy, dkernel_out=same,
                   drecurrent_kernel_out=same)


@pytest.mark.parametrize("name", ["kernel", "doutputs", "dfinal_state[1]"])
def test_backward_refuses_outputs_overlapping_inputs(name):
    case = OVERLAP_CASES[1]  # lstm
    k, a, dy, dfinal = _overlap_run(case)
    given = {"kernel": a["kernel"], "doutputs": dy, "dfinal_state[1]": dfinal[1]}[name]
    # The input and drecurrent_kernel_out in one buffer, sharing one element.
    n, m = given.size, case.U * 4 * case.U
    buf = np.zeros(n + m - 1)
    buf[:n] = given.reshape(-1)
    view = buf[:n].reshape(given.shape)
    out = buf[n - 1:].reshape(case.U, 4 * case.U)
    kw = {"doutputs": dy, "dfinal_state": dfinal}
    kernel = a["kernel"]
    if name == "kernel":
        kernel = view
    elif name == "doutputs":
        kw["doutputs"] = view
    else:
        kw["dfinal_state"] = (dfinal[0], view)
    with pytest.raises(ValueError, match="drecurrent_kernel_out must not share memory with "
                                         + re.escape(name)):
        k.backward(kernel, a["recurrent_kernel"], drecurrent_kernel_out=out, **kw)


def test_forward_out_must_not_overlap_the_cell_state():
    k = _core.LSTMKernel(3)
    x = np.zeros((2, 4, 3))
    states = np.zeros((2 * 4 * 3 + 6,))
    out = states[:24].reshape(2, 4, 3)
    c0 = states[20:26].reshape(2, 3)
    with pytest.raises(ValueError, match=r"out must not share memory with initial_state\[1\]"):
        k.forward(x, np.zeros((3, 12)), np.zeros((3, 12)), initial_state=(np.zeros((2, 3)), c0),
                  out=out)


def _adam_arrays(n=3, size=5):
    rng = np.random.default_rng(0)
    return ([rng.standard_normal(size) for _ in range(n)], [rng.standard_normal(size) for _ in range(n)],
            [np.zeros(size) for _ in range(n)], [np.zeros(size) for _ in range(n)])


@pytest.mark.parametrize("alias", ["w0-m0", "m1-v2", "same-weight", "grad-w1", "vhat-v0"])
def test_adam_step_refuses_overlapping_arrays(alias):
    ws, gs, ms, vs = _adam_arrays()
    vhats = [np.zeros(5) for _ in ws]
    buf = np.zeros(12)
    if alias == "w0-m0":
        ws[0], ms[0] = buf[:5], buf[4:9]
        match = r"(ms\[0\].*weights\[0\]|weights\[0\].*ms\[0\])"
    elif alias == "m1-v2":
        ms[1], vs[2] = buf[:5], buf[2:7]
        match = r"(vs\[2\].*ms\[1\]|ms\[1\].*vs\[2\])"
    elif alias == "same-weight":
        ws[2] = ws[0]
        match = r"weights\[(0|2)\] must not share memory with weights\[(0|2)\]"
    elif alias == "grad-w1":
        gs[1] = ws[1]
        match = r"(grads\[1\].*weights\[1\]|weights\[1\].*grads\[1\])"
    else:
        vhats[0] = vs[0]
        match = r"(vhats\[0\].*vs\[0\]|vs\[0\].*vhats\[0\])"
    with pytest.raises(ValueError, match="adam_step: " + match):
        _core.adam_step(ws, gs, ms, vs, vhats, 0.1, 0.1, 0.001, 1e-7)


def test_adam_step_accepts_disjoint_views_and_shared_gradients():
    ws, gs, ms, vs = _adam_arrays()
    ref = [w.copy() for w in ws]
    _core.adam_step(ref, gs, [m.copy() for m in ms], [v.copy() for v in vs], None,
                    0.1, 0.1, 0.001, 1e-7)
    buf = np.zeros(15)
    for i in range(3):  # the weights back to back in one buffer
        buf[5 * i:5 * i + 5] = ws[i]
    views = [buf[5 * i:5 * i + 5] for i in range(3)]
    _core.adam_step(views, gs, ms, vs, None, 0.1, 0.1, 0.001, 1e-7)
    for v, r in zip(views, ref):
        np.testing.assert_array_equal(v, r)
    # Gradients are only read: two weights may take the same gradient array.
    ws, gs, ms, vs = _adam_arrays()
    _core.adam_step(ws, [gs[0], gs[0], gs[2]], ms, vs, None, 0.1, 0.1, 0.001, 1e-7)
