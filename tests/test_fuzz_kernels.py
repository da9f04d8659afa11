"""Fuzzing every public entry point of rnnfast._core with hypothesis: random
shapes (zero-size axes included), dtypes, memory layouts (Fortran order,
strided and reversed views, read-only arrays, lists), masks of several dtypes,
NaN and inf. Each call either matches the NumPy references in tests/reference/
or raises a TypeError or ValueError (MemoryError for sizes no machine holds)
whose message names the argument. Inputs are never written to. A crash fails
the run, so the cases run in-process.

Example counts are bounded so that the file runs in about 20 s on two cores
(about 5,200 cases); FUZZ_EXAMPLES=10 multiplies them by ten (such a run passed
in 3.5 minutes)."""

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import reference
from kernel_harness import (GATES, STATES, Case, assert_close, make_arrays, reference_backward,
                            reference_forward)
from reference import conv as ref_conv
from reference import normalization as ref_norm
from reference import pooling as ref_pool
from rnnfast import _core

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))


def fuzz(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.data_too_large])


# Every public name of _core, and where it is fuzzed. A new entry point
# fails test_every_entry_point_is_fuzzed until it is added here.
ENTRY_POINTS = {
    "SimpleRNNKernel": "rnn", "LSTMKernel": "rnn", "GRUKernel": "rnn",
    "conv_forward": "conv", "conv_backward": "conv",
    "pool_forward": "pool", "pool_backward": "pool",
    "layer_norm_forward": "norm", "layer_norm_backward": "norm",
    "batch_norm_moments": "norm", "batch_norm_apply": "norm", "batch_norm_backward": "norm",
    "matmul": "matmul", "adam_step": "adam",
    "set_num_threads": "settings", "get_num_threads": "settings", "set_bf16_enabled": "settings",
    "set_amx_enabled": "settings", "bf16_status": "settings", "build_info": "settings", "gemm_gflops": "settings",
    "fma_peak_gflops": "settings",
    "device_bodies": "device_bodies",
}


def test_every_entry_point_is_fuzzed():
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public == set(ENTRY_POINTS), public ^ set(ENTRY_POINTS)


# ---- layouts ---------------------------------------------------------------------------

LAYOUTS = ["c", "fortran", "strided", "reversed", "readonly"]


def in_layout(a, layout):
    """`a`'s values in another memory layout (or as nested lists)."""
    a = np.asarray(a)
    if layout == "c" or a.ndim == 0:
        return np.ascontiguousarray(a)
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided":  # every other element of a buffer twice as wide
        buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        buf[..., ::2] = a
        return buf[..., ::2]
    if layout == "reversed":  # negative strides on every axis
        return np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[
            (slice(None, None, -1),) * a.ndim]
    if layout == "readonly":
        r = np.array(a)
        r.flags.writeable = False
        return r
    if layout == "list":
        return a.tolist()
    raise ValueError(layout)


def snapshot(arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(arrays, before):
    for a, b in zip(arrays, before):
        if a is not None:
            np.testing.assert_array_equal(np.asarray(a), b, err_msg="an input was written to")


def works_or_names(call, pattern):
    """A corrupted argument that is only of another size may fit again (a
    wider kernel, more rows): the call works, or its error names one of the
    arguments whose sizes no longer agree."""
    try:
        call()
    except (TypeError, ValueError) as e:
        assert re.search(pattern, str(e)), str(e)


def names_argument(excinfo, name):
    """The error message names the argument (as a word, not inside another name)."""
    msg = str(excinfo.value)
    assert re.search(rf"(^|[^\w]){re.escape(name)}([^\w]|$)", msg), (name, msg)


# ---- recurrent kernels -------------------------------------------------------------------

ALL_ACTS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear"]
MASK_DTYPES = [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.float16, np.float32,
               np.float64]


@st.composite
def rnn_cases(draw):
    cell = draw(st.sampled_from(sorted(GATES)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    G = GATES[cell]
    # float32 within 1e-5 needs smooth, bounded gates (see test_properties.py).
    acts = ALL_ACTS if dtype == np.float64 else ["tanh", "sigmoid"]
    return Case(cell, B=draw(st.integers(1, 5)), T=draw(st.integers(1, 6)),
                I=draw(st.integers(1, 5)), U=draw(st.sampled_from([1, 2, 3, 5, 8, 17])),
                dtype=dtype, activation=draw(st.sampled_from(acts)),
                recurrent_activation=draw(st.sampled_from(acts)),
                go_backwards=draw(st.booleans()), reset_after=draw(st.booleans()),
                bias=draw(st.booleans()), initial_state=draw(st.booleans()),
                mask=draw(st.booleans()), input_dropout=draw(st.sampled_from([0, 1, G])),
                recurrent_dropout=draw(st.sampled_from([0, 1, G])),
                seed=draw(st.integers(0, 2 ** 16)))


def rnn_kernel(case):
    kw = dict(activation=case.activation, go_backwards=case.go_backwards)
    if case.cell == "simple_rnn":
        return _core.SimpleRNNKernel(case.U, **kw)
    kw["recurrent_activation"] = case.recurrent_activation
    if case.cell == "lstm":
        return _core.LSTMKernel(case.U, **kw)
    return _core.GRUKernel(case.U, reset_after=case.reset_after, **kw)


FORWARD_ARGS = ["x", "kernel", "recurrent_kernel", "bias", "h0", "c0", "mask", "input_dropout",
                "recurrent_dropout"]
ARG_NAMES = {"h0": "initial_state", "c0": "initial_state", "input_dropout": "input_dropout_mask",
             "recurrent_dropout": "recurrent_dropout_mask"}


def rnn_forward(case, k, a, **kw):
    state = (a["h0"], a["c0"]) if case.cell == "lstm" and a["h0"] is not None else a["h0"]
    return k.forward(a["x"], a["kernel"], a["recurrent_kernel"], a["bias"], initial_state=state,
                     mask=a["mask"], input_dropout_mask=a["input_dropout"],
                     recurrent_dropout_mask=a["recurrent_dropout"], **kw)


def final_states(case, final):
    return list(final) if case.cell == "lstm" else [final]


@fuzz(480)
@given(case=rnn_cases(), data=st.data())
def test_rnn_kernels_in_any_layout_match_the_reference(case, data):
    """Every array argument in a random layout (forward and backward), masks
    of any number or bool dtype (nonzero = step processed), out= buffers:
    the reference's values, inputs untouched."""
    a = make_arrays(case)
    if a["mask"] is not None:
        mdtype = data.draw(st.sampled_from(MASK_DTYPES), "mask dtype")
        a["mask"] = a["mask"].astype(mdtype)
        if np.dtype(mdtype).kind == "f" and data.draw(st.booleans(), "scaled mask"):
            a["mask"] = (a["mask"] * np.asarray(-2.5, mdtype)).astype(mdtype)  # nonzero, negative
    y_ref, states_ref, cache = reference_forward(case, a)
    given_a = {}
    for name, v in a.items():
        if v is None:
            given_a[name] = None
            continue
        # (A list initial_state is read as the list of states, as Keras passes [h].)
        layouts = LAYOUTS + (["list"] if case.dtype == np.float64 and v.dtype == np.float64
                             and name not in ("h0", "c0") else [])
        given_a[name] = in_layout(v, data.draw(st.sampled_from(layouts), name))
    before = snapshot(given_a.values())
    k = rnn_kernel(case)
    training = data.draw(st.booleans(), "training")
    return_sequences = data.draw(st.booleans(), "return_sequences")
    out = None
    if return_sequences and data.draw(st.booleans(), "out"):
        out = np.full((case.B, case.T, case.U), np.nan, case.dtype)
    y, final = rnn_forward(case, k, given_a, training=training, out=out,
                           return_sequences=return_sequences)
    tol = 1e-5 if case.dtype == np.float32 else 1e-10
    if return_sequences:
        assert y.dtype == case.dtype and y.flags.c_contiguous
        assert out is None or y is out
        assert_close(y, y_ref, tol, "y")
    else:
        assert y is None
    for s, s_ref in zip(final_states(case, final), states_ref):
        assert_close(s, s_ref, tol, "final state")
    assert_unchanged(given_a.values(), before)
    assert k.has_cache == training
    if not training:
        return
    rng = np.random.default_rng(case.seed + 1)
    dy = rng.standard_normal((case.B, case.T, case.U)).astype(case.dtype) \
        if return_sequences or data.draw(st.booleans(), "dy without sequences") else None
    ds = [rng.standard_normal((case.B, case.U)).astype(case.dtype)
          for _ in range(STATES[case.cell])]
    ref = reference_backward(case, cache, dy if dy is not None else np.zeros_like(y_ref), ds)
    g_dy = None if dy is None else in_layout(dy, data.draw(st.sampled_from(LAYOUTS), "dy layout"))
    g_ds = [in_layout(s, data.draw(st.sampled_from(LAYOUTS), "ds layout")) for s in ds]
    compute_dx = data.draw(st.booleans(), "compute_dx")
    before = snapshot([g_dy] + g_ds + [given_a["kernel"], given_a["recurrent_kernel"]])
    dfinal = tuple(g_ds) if case.cell == "lstm" else g_ds[0]
    dx, dinit, dk, dr, db = k.backward(given_a["kernel"], given_a["recurrent_kernel"],
                                       doutputs=g_dy, dfinal_state=dfinal, compute_dx=compute_dx)
    assert_unchanged([g_dy] + g_ds + [given_a["kernel"], given_a["recurrent_kernel"]], before)
    assert not k.has_cache
    if compute_dx:
        assert_close(dx, ref["dx"], tol, "dx")
    else:
        assert dx is None
    dinit = list(dinit) if case.cell == "lstm" else [dinit]
    assert_close(dinit[0], ref["dh0"], tol, "dh0")
    if case.cell == "lstm":
        assert_close(dinit[1], ref["dc0"], tol, "dc0")
    assert_close(dk, ref["dkernel"], tol, "dkernel")
    assert_close(dr, ref["drecurrent_kernel"], tol, "drecurrent_kernel")
    if ref["dbias"] is None:
        assert db is None
    else:
        assert_close(db, ref["dbias"], tol, "dbias")


BAD_DTYPES = [np.int32, np.int64, np.bool_, np.float16, np.complex64, np.complex128, object,
              "U3", ">f8"]


def corrupt(draw, v, name):
    """A wrong version of argument value `v`: another dtype, rank or shape,
    a zero-size axis, or something that is not an array at all."""
    kind = draw(st.sampled_from(["dtype", "rank", "shape", "zero", "object"]), f"{name} corruption")
    if kind == "dtype":
        dt = draw(st.sampled_from(BAD_DTYPES + [np.float32, np.float64]), f"{name} dtype")
        assume(np.dtype(dt) != v.dtype)
        if np.dtype(dt).kind == "U":
            return np.full(v.shape, "abc")
        return v.astype(dt) if np.dtype(dt) != object else v.astype(object)
    if kind == "rank":
        if draw(st.booleans(), f"{name} more"):
            return v[None]
        return v.reshape(-1) if v.ndim > 1 else v.reshape(1, 1, -1)
    if kind == "shape":
        axis = draw(st.integers(0, v.ndim - 1), f"{name} axis")
        shape = list(v.shape)
        shape[axis] += draw(st.sampled_from([-1, 1, 7]), f"{name} delta")
        assume(shape[axis] != v.shape[axis] and shape[axis] >= 0)
        return np.zeros(shape, v.dtype)
    if kind == "zero":
        axis = draw(st.integers(0, v.ndim - 1), f"{name} axis")
        shape = list(v.shape)
        assume(shape[axis] != 0)
        shape[axis] = 0
        return np.zeros(shape, v.dtype)
    return draw(st.sampled_from(["abc", {"a": 1}, object(), [[1.0], [1.0, 2.0]], 3.5]),
                f"{name} object")


@fuzz(600)
@given(case=rnn_cases(), data=st.data())
def test_rnn_forward_refuses_a_bad_argument_by_name(case, data):
    """One argument made wrong (dtype, rank, shape, a zero-size axis, not an
    array): TypeError or ValueError naming it. Zero-size x (B, T or I = 0) is
    refused too. A kernel that refused a call serves the next one."""
    case = case.replace(bias=True, initial_state=True, mask=True,
                        input_dropout=max(case.input_dropout, 1),
                        recurrent_dropout=max(case.recurrent_dropout, 1))
    a = make_arrays(case)
    names = [n for n in FORWARD_ARGS if a[n] is not None]
    name = data.draw(st.sampled_from(names), "argument")
    bad = corrupt(data.draw, a[name], name)
    if name == "mask" and isinstance(bad, np.ndarray):
        # Masks of any number dtype are documented conversions, not errors.
        assume(bad.dtype.kind in "cOUS" or bad.shape != a["mask"].shape)
    if name == "x" and isinstance(bad, np.ndarray) and bad.ndim == 3 and bad.size and \
            bad.dtype in (np.float32, np.float64) and bad.dtype != case.dtype:
        assume(False)  # x sets the dtype: then every other argument is the wrong one
    if name in ("input_dropout", "recurrent_dropout") and isinstance(bad, np.ndarray) and \
            bad.ndim == 3 and bad.shape[0] == 1 and bad.shape[1:] == a[name].shape[-2:]:
        assume(False)  # [1, B, n] is the documented shared form
    given_a = dict(a, **{name: bad})
    k = rnn_kernel(case)
    with pytest.raises((TypeError, ValueError)) as e:
        rnn_forward(case, k, given_a, training=True)
    if name == "x" and isinstance(bad, np.ndarray) and bad.ndim == 3 and bad.shape[2] != case.I \
            and bad.size:
        names_argument(e, "kernel")  # x's features fix the kernel's rows
    elif name == "x" and isinstance(bad, np.ndarray) and bad.ndim == 3 and bad.size and \
            bad.shape[:2] != (case.B, case.T):
        # x fixes B and T; the first argument checked against them is named.
        assert re.search(r"\b(initial_state(\[\d\])?|mask|input_dropout_mask|"
                         r"recurrent_dropout_mask)\b", str(e.value)), str(e.value)
    else:
        names_argument(e, ARG_NAMES.get(name, name))
    assert not k.has_cache
    y, _ = rnn_forward(case, k, a, training=False)
    y_ref, _, _ = reference_forward(case, a)
    assert_close(y, y_ref, 1e-5 if case.dtype == np.float32 else 1e-10, "y after a refusal")


OUT_KINDS = ["readonly", "fortran", "strided", "reversed", "dtype", "shape", "list"]


def bad_out(kind, shape, dtype):
    if kind == "dtype":
        return np.zeros(shape, np.float32 if dtype == np.float64 else np.float64)
    if kind == "shape":
        return np.zeros(shape[:-1] + (shape[-1] + 1,), dtype)
    return in_layout(np.zeros(shape, dtype), kind)


def out_is_usable(out, shape, dtype):
    return isinstance(out, np.ndarray) and out.shape == shape and out.dtype == dtype and \
        out.flags.c_contiguous and out.flags.writeable


@fuzz(240)
@given(case=rnn_cases(), data=st.data())
def test_rnn_out_arguments_must_be_writeable_contiguous_arrays(case, data):
    """out= and the *_out= arguments read-only, Fortran-ordered, strided,
    reversed, of another dtype or shape, or a list: an error naming them, and
    the cache is kept for a correct call."""
    a = make_arrays(case)
    k = rnn_kernel(case)
    shape = (case.B, case.T, case.U)
    kind = data.draw(st.sampled_from(OUT_KINDS), "out kind")
    out = bad_out(kind, shape, case.dtype)
    if out_is_usable(out, shape, case.dtype):  # e.g. Fortran order of a (1, 1, U) array
        return
    with pytest.raises((TypeError, ValueError)) as e:
        rnn_forward(case, k, a, training=True, out=out)
    names_argument(e, "out")
    rnn_forward(case, k, a, training=True)
    G = case.G
    shapes = {"dx_out": (case.B, case.T, case.I), "dkernel_out": (case.I, G * case.U),
              "drecurrent_kernel_out": (case.U, G * case.U),
              "dbias_out": (2, 3 * case.U) if case.cell == "gru" and case.reset_after
              else (G * case.U,)}
    if not case.bias:
        del shapes["dbias_out"]
    name = data.draw(st.sampled_from(sorted(shapes)), "which out")
    kind = data.draw(st.sampled_from(OUT_KINDS), "backward out kind")
    out = bad_out(kind, shapes[name], case.dtype)
    if out_is_usable(out, shapes[name], case.dtype):
        return
    with pytest.raises((TypeError, ValueError)) as e:
        k.backward(a["kernel"], a["recurrent_kernel"], **{name: out})
    names_argument(e, name)
    assert k.has_cache
    k.backward(a["kernel"], a["recurrent_kernel"])


@fuzz(320)
@given(case=rnn_cases(), data=st.data())
def test_rnn_nan_and_inf_propagate_as_in_the_reference(case, data):
    """NaN and +-inf in x, the initial state or a weight: the kernels return
    NaN and inf exactly where the reference does (forward and every
    gradient), and the same finite values elsewhere; nothing hangs."""
    # float64: exact NaN patterns (float32 only rounds differently). Bounded
    # gates: with relu or linear gates an infinite update gate z makes the
    # GRU's z*h + (1-z)*hh (the reference's and Keras's form) NaN where the
    # kernels' equal hh + z*(h - hh) gives +-inf.
    # The same holds for the GRU's candidate: hh = inf with z = 0.
    bounded = st.sampled_from(["sigmoid", "hard_sigmoid", "tanh"])
    case = case.replace(dtype=np.float64, recurrent_activation=data.draw(bounded, "gates"))
    if case.cell == "gru":
        case = case.replace(activation=data.draw(bounded, "gru candidate"))
    where = data.draw(st.sampled_from(["x", "kernel", "recurrent_kernel", "h0"]), "where")
    a = make_arrays(case)
    if a[where] is None:
        where = "x"
    arr = a[where].copy()
    for _ in range(data.draw(st.integers(1, 3), "count")):
        at = tuple(data.draw(st.integers(0, n - 1), "at") for n in arr.shape)
        arr[at] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), "value")
    a[where] = arr
    with np.errstate(all="ignore"):
        y_ref, states_ref, cache = reference_forward(case, a)
        dy = np.random.default_rng(case.seed).standard_normal((case.B, case.T, case.U))
        ds = [np.ones((case.B, case.U)) for _ in range(STATES[case.cell])]
        ref = reference_backward(case, cache, dy, ds)
    k = rnn_kernel(case)
    y, final = rnn_forward(case, k, a, training=True)
    got = {"y": y, **{f"state{i}": s for i, s in enumerate(final_states(case, final))}}
    want = {"y": y_ref, **{f"state{i}": s for i, s in enumerate(states_ref)}}
    dfinal = tuple(ds) if case.cell == "lstm" else ds[0]
    dx, dinit, dk, dr, db = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=dy,
                                       dfinal_state=dfinal)
    got.update(dx=dx, dkernel=dk, drecurrent_kernel=dr, dbias=db,
               dh0=dinit[0] if case.cell == "lstm" else dinit)
    want.update({n: ref[n] for n in ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")})
    for name, w in want.items():
        if w is None:
            assert got[name] is None
        elif name in ("y", "state0", "state1"):
            assert_same_specials(got[name], w, name)
        else:
            assert_gradient_specials(got[name], w, name)



def assert_gradient_specials(got, want, name, rtol=1e-9):
    """Gradients: NaN or inf only where the reference has one, the same
    values where it is finite. Where a factor is exactly 0 (a masked step, a
    zero state) the kernels may give the exact 0 where the reference's chain
    rule multiplies 0 by NaN, so a reference NaN need not be matched element
    by element."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, name
    bad = ~np.isfinite(got) & np.isfinite(want)
    assert not bad.any(), \
        f"{name}: non-finite where the reference is finite at {np.argwhere(bad)[:5]}"
    fin = np.isfinite(want)
    if fin.any():
        scale = max(1.0, float(np.abs(want[fin]).max()))
        np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=rtol * scale,
                                   err_msg=name)


def assert_same_specials(got, want, name, rtol=1e-9):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{name}: +inf")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{name}: -inf")
    fin = np.isfinite(want)
    if fin.any():
        scale = max(1.0, float(np.abs(want[fin]).max()))
        np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=rtol * scale,
                                   err_msg=name)


def test_nan_in_a_masked_step_reaches_only_the_kernel_gradient():
    """NaN or inf in a masked step's input (a padded position holding
    garbage): outputs, states and every gradient but dkernel are those of the
    same sequence with zeros there (dx of that step is 0); dkernel = x^T dG
    multiplies the garbage by the step's zero gate gradient: NaN, as in the
    reference (and in autodiff through Keras's masking)."""
    for cell in sorted(GATES):
        case = Case(cell, B=2, T=4, I=3, U=5, mask=True, seed=3)
        a = make_arrays(case)
        a["mask"][:] = True
        a["mask"][0, 2] = False
        a["x"][0, 2] = [np.nan, np.inf, -np.inf]
        k = rnn_kernel(case)
        y, final = rnn_forward(case, k, a, training=True)
        dx, dinit, dk, dr, db = k.backward(a["kernel"], a["recurrent_kernel"],
                                           doutputs=np.ones_like(y))
        clean = dict(a, x=np.where(np.isfinite(a["x"]), a["x"], 0.0))
        y_ref, states_ref, cache = reference_forward(case, clean)
        ref = reference_backward(case, cache, np.ones_like(y_ref),
                                 [np.zeros((2, 5))] * STATES[cell])
        assert_close(y, y_ref, 1e-10, "y")
        for s, s_ref in zip(final_states(case, final), states_ref):
            assert_close(s, s_ref, 1e-10, "state")
        assert (dx[0, 2] == 0).all()
        assert_close(dx, ref["dx"], 1e-10, "dx")
        assert_close(final_states(case, dinit)[0], ref["dh0"], 1e-10, "dh0")
        assert_close(db, ref["dbias"], 1e-10, "dbias")
        assert np.isnan(dk).all() and np.isfinite(dr).all(), cell
        # The same NaN at a step that is not masked reaches every gradient.
        a["mask"][0, 2] = True
        k = rnn_kernel(case)
        y, _ = rnn_forward(case, k, a, training=True)
        grads = k.backward(a["kernel"], a["recurrent_kernel"], doutputs=np.ones_like(y))
        assert np.isnan(y[0, 2:]).all() and np.isfinite(y[1]).all()
        assert all(np.isnan(g).any() for g in grads[2:]), cell


@given(units=st.one_of(st.integers(-3, 0), st.integers(2 ** 28 + 1, 2 ** 63 - 1),
                       st.sampled_from([1.5, "4", None, 2 ** 28 + 1, 2 ** 40, 2 ** 62,
                                        2 ** 63 - 1])),
       cls=st.sampled_from(["SimpleRNNKernel", "LSTMKernel", "GRUKernel"]))
@fuzz(80)
def test_rnn_constructor_refuses_bad_units(units, cls):
    """Non-positive units, and units above 2**28: found by this file, 2**62
    made 4*units wrap to 0, so that a (features, 0) kernel and a (2**62, 0)
    recurrent kernel passed the shape checks."""
    with pytest.raises((TypeError, ValueError)) as e:
        getattr(_core, cls)(units)
    if isinstance(units, int):
        names_argument(e, "units")
        if units > 0:
            assert "at most 2**28" in str(e.value)


@pytest.mark.parametrize("cls", ["SimpleRNNKernel", "LSTMKernel", "GRUKernel"])
def test_rnn_workspace_overflow_is_refused_before_copying(cls):
    """A broadcast x (no memory of its own) claiming 2**60 rows, steps or
    features: its workspace's byte count overflows. Refused, naming x and
    units, before x is copied (the copy alone would take 2**62 bytes)."""
    G = GATES[{"SimpleRNNKernel": "simple_rnn", "LSTMKernel": "lstm", "GRUKernel": "gru"}[cls]]
    k = getattr(_core, cls)(4)
    w, r = np.zeros((1, 4 * G), np.float32), np.zeros((4, 4 * G), np.float32)
    for shape in [(2 ** 30, 2 ** 30, 1), (1, 2 ** 60, 1), (2 ** 60, 1, 1), (1, 1, 2 ** 60)]:
        x = np.broadcast_to(np.float32(1.0), shape)
        with pytest.raises(ValueError, match=r"x of shape .* with units=4 needs a workspace of "
                                             r"more than 2\*\*62 bytes"):
            k.forward(x, w, r)
    y, _ = k.forward(np.ones((2, 3, 1), np.float32), w, r)  # the object still works
    assert y.shape == (2, 3, 4) and not y.any()


# ---- convolution -------------------------------------------------------------------------

CONV_ACTS = ["linear", "relu", "tanh", "sigmoid", "hard_sigmoid"]


@st.composite
def conv_cases(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    one_d = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    c = dict(dtype=dtype, N=draw(st.integers(1, 3)), H=1 if one_d else draw(st.integers(1, 4)),
             W=draw(st.integers(1, 7)), groups=groups, C=groups * draw(st.integers(1, 3)),
             F=groups * draw(st.integers(1, 3)), KH=1 if one_d else draw(st.integers(1, 3)),
             KW=draw(st.integers(1, 3)),
             strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
             dilation=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
             padding=((0, 0) if one_d else (draw(st.integers(0, 3)), draw(st.integers(0, 3))),
                      (draw(st.integers(0, 3)), draw(st.integers(0, 3)))),
             activation=draw(st.sampled_from(CONV_ACTS if dtype == np.float64 else
                                             ["linear", "tanh", "sigmoid"])),
             bias=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))
    return c


def conv_arrays(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["N"], c["H"], c["W"], c["C"])).astype(c["dtype"])
    k = (rng.standard_normal((c["KH"], c["KW"], c["C"] // c["groups"], c["F"])) * 0.5).astype(
        c["dtype"])
    b = rng.standard_normal(c["F"]).astype(c["dtype"]) if c["bias"] else None
    return x, k, b


def conv_fits(c):
    spans = [(c["KH"] - 1) * c["dilation"][0] + 1, (c["KW"] - 1) * c["dilation"][1] + 1]
    padded = [c["H"] + sum(c["padding"][0]), c["W"] + sum(c["padding"][1])]
    return all(s <= p for s, p in zip(spans, padded))


def conv_geometry_kw(c):
    return dict(strides=c["strides"], dilation=c["dilation"], padding=c["padding"],
                groups=c["groups"])


def conv_reference(c, x, k, b, dy=None):
    """The reference on the explicitly zero-padded input ('valid'), with the
    activation applied after it; dx cropped back."""
    (t, bo), (le, ri) = c["padding"]
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (t, bo), (le, ri), (0, 0)))
    kw = dict(strides=c["strides"], padding="valid", dilation_rate=c["dilation"],
              groups=c["groups"])
    pre = ref_conv.conv_forward(xp, k, b, **kw)
    y = reference.activation(c["activation"], pre)
    if dy is None:
        return y
    dpre = np.asarray(dy, np.float64) * reference.activation_grad(c["activation"], pre, y)
    dxp, dk, db = ref_conv.conv_backward(xp, k, dpre, **kw)
    return y, dxp[:, t:t + c["H"], le:le + c["W"]], dk, db


@fuzz(240)
@given(c=conv_cases(), data=st.data())
def test_conv_matches_the_reference_in_any_layout(c, data):
    x, k, b = conv_arrays(c)
    gx, gk = (in_layout(v, data.draw(st.sampled_from(LAYOUTS), "layout")) for v in (x, k))
    gb = None if b is None else in_layout(b, data.draw(st.sampled_from(LAYOUTS), "bias layout"))
    if not conv_fits(c):
        with pytest.raises(ValueError, match="kernel_size .* is larger than the padded input"):
            _core.conv_forward(gx, gk, gb, activation=c["activation"], **conv_geometry_kw(c))
        return
    before = snapshot([gx, gk, gb])
    y = _core.conv_forward(gx, gk, gb, activation=c["activation"], **conv_geometry_kw(c))
    dy = np.random.default_rng(c["seed"] + 1).standard_normal(y.shape).astype(c["dtype"])
    y_ref, dx_ref, dk_ref, db_ref = conv_reference(c, x, k, b, dy)
    tol = 1e-5 if c["dtype"] == np.float32 else 1e-10
    assert y.dtype == c["dtype"]
    assert_close(y, y_ref, tol, "y")
    compute_dx, compute_dbias = data.draw(st.booleans(), "dx"), data.draw(st.booleans(), "dbias")
    gy = in_layout(y, data.draw(st.sampled_from(LAYOUTS), "y layout"))
    gdy = in_layout(dy, data.draw(st.sampled_from(LAYOUTS), "dy layout"))
    dx, dk, db = _core.conv_backward(gx, gk, gdy, gy, activation=c["activation"],
                                     compute_dx=compute_dx, compute_dbias=compute_dbias,
                                     **conv_geometry_kw(c))
    assert_unchanged([gx, gk, gb, gdy], before + [dy])
    assert_close(dk, dk_ref, tol, "dkernel")
    if compute_dx:
        assert_close(dx, dx_ref, tol, "dx")
    else:
        assert dx is None
    if compute_dbias:
        assert_close(db, db_ref, tol, "dbias")
    else:
        assert db is None


@fuzz(240)
@given(c=conv_cases(), data=st.data())
def test_conv_refuses_bad_arguments_by_name(c, data):
    """Zero-size axes, other dtypes or ranks of x, kernel, bias, dy and y;
    strides, dilations, paddings and groups out of range (2**62 and 2**63-1
    overflowed the size arithmetic before: silently wrong outputs)."""
    x, k, b = conv_arrays(dict(c, bias=True))
    assume(conv_fits(c))
    geo = conv_geometry_kw(c)
    what = data.draw(st.sampled_from(["x", "kernel", "bias", "dy", "y", "strides", "dilation",
                                      "padding", "groups", "activation"]), "what")
    y = _core.conv_forward(x, k, b, activation="tanh", **geo)
    args = dict(x=x, kernel=k, bias=b, dy=np.ones_like(y), y=y)
    if what in args:
        args[what] = corrupt(data.draw, args[what], what)
        if what == "x" and isinstance(args["x"], np.ndarray) and args["x"].ndim == 4 and \
                args["x"].size and args["x"].dtype in (np.float32, np.float64):
            assume(args["x"].dtype == c["dtype"])  # x sets the dtype of the rest
            assume(args["x"].shape[3] != c["C"])  # a valid other size is no error
    elif what == "activation":
        geo = dict(geo)
        # ("" means linear.)
        bad_act = data.draw(st.sampled_from(["swish", "TANH", "relu6"]), "activation")
    else:
        value = data.draw(st.sampled_from([0, -1, 2 ** 40 + 1, 2 ** 62, 2 ** 63 - 1]), what)
        geo = dict(geo)
        if what == "padding":
            geo["padding"] = ((0, 0), (value, 0)) if value != 0 else ((0, 0), (-2, 0))
        elif what == "groups":
            geo["groups"] = value if value <= 0 else c["C"] + 1
        else:
            geo[what] = (1, value)
    act = bad_act if what == "activation" else "tanh"
    calls = {"bias": ["forward"], "dy": ["backward"], "y": ["backward"]}.get(
        what, ["forward", "backward"])  # the backward takes no bias
    orig = dict(x=x, kernel=k, bias=b, dy=np.ones_like(y), y=y).get(what)
    bad = args.get(what)
    for call in calls:
        def run():
            if call == "forward":
                _core.conv_forward(args["x"], args["kernel"], args["bias"], activation=act, **geo)
            else:
                _core.conv_backward(args["x"], args["kernel"], args["dy"], args["y"],
                                    activation=act, **geo)
        if isinstance(bad, np.ndarray) and bad.ndim == orig.ndim and bad.dtype == orig.dtype \
                and bad.size:
            works_or_names(run, r"\b(x|kernel|bias|dy|y)\b|larger than the padded input|"
                                r"multiples of groups")
            continue
        with pytest.raises((TypeError, ValueError)) as e:
            run()
        names_argument(e, what)


def test_conv_overflowing_geometry_is_refused():
    """Found by this file: a dilation of 2**62 wrapped the dilated span to 1
    and returned wrong numbers; padding 2**63-1 wrapped the padded width."""
    x, k = np.ones((1, 1, 5, 2), np.float32), np.ones((1, 5, 2, 3), np.float32)
    for kw, name in [(dict(dilation=(1, 2 ** 62)), "dilation"),
                     (dict(padding=((0, 0), (2 ** 63 - 1, 2 ** 63 - 1))), "padding"),
                     (dict(strides=(1, 2 ** 63 - 1)), "strides")]:
        for call in (lambda: _core.conv_forward(x, k, **kw),
                     lambda: _core.conv_backward(x, k, np.ones((1, 1, 1, 3), np.float32), **kw)):
            with pytest.raises(ValueError, match=rf"{name} must be .* at most 2\*\*40"):
                call()
    # The largest accepted geometry still computes: a window all padding,
    # then one 2**40 further on the input's first two cells.
    y = _core.conv_forward(x, k[:, :2], np.full(3, 0.5, np.float32),
                           padding=((0, 0), (2 ** 40, 0)), strides=(1, 2 ** 40))
    np.testing.assert_array_equal(y, np.array([[[[0.5] * 3, [4.5] * 3]]], np.float32))


def test_conv_one_row_input_with_top_padding():
    """Found by this file: a one-row input whose single output row lies in
    the top padding ran the 1-D tap-by-tap path, which read row 0 instead of
    the padding's zeros (strides 2, padding top 1)."""
    x = np.full((1, 1, 6, 8), 5.0)
    k = np.full((1, 2, 8, 3), 2.0)
    for dilation in ((1, 1), (1, 2)):
        kw = dict(strides=(2, 1), dilation=dilation, padding=((1, 0), (0, 0)))
        y = _core.conv_forward(x, k, np.ones(3), **kw)
        np.testing.assert_array_equal(y, np.ones_like(y))
        dx, dk, db = _core.conv_backward(x, k, np.ones_like(y), **kw)
        assert not dx.any() and not dk.any() and (db == y.shape[2]).all()


@fuzz(160)
@given(c=conv_cases(), data=st.data())
def test_conv_nan_and_inf_propagate_as_in_the_reference(c, data):
    c = dict(c, dtype=np.float64)
    target = data.draw(st.sampled_from(["x", "kernel"]), "where")
    if target == "kernel":
        # The kernels skip taps on padding; the reference here multiplies
        # explicit zeros, 0 * NaN.
        c["padding"] = ((0, 0), (0, 0))
    assume(conv_fits(c))
    x, k, b = conv_arrays(c)
    arr = x if target == "x" else k
    at = tuple(data.draw(st.integers(0, n - 1), "at") for n in arr.shape)
    arr[at] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), "value")
    y = _core.conv_forward(x, k, b, activation=c["activation"], **conv_geometry_kw(c))
    dy = np.random.default_rng(c["seed"]).standard_normal(y.shape)
    with np.errstate(all="ignore"):
        y_ref, dx_ref, dk_ref, db_ref = conv_reference(c, x, k, b, dy)
    assert_same_specials(y, y_ref, "y")
    dx, dk, db = _core.conv_backward(x, k, dy, y, activation=c["activation"],
                                     **conv_geometry_kw(c))
    for name, g, w in (("dx", dx, dx_ref), ("dkernel", dk, dk_ref), ("dbias", db, db_ref)):
        assert_gradient_specials(g, w, name)


# ---- pooling -----------------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    one_d = draw(st.booleans())
    return dict(dtype=draw(st.sampled_from([np.float64, np.float32])), N=draw(st.integers(1, 3)),
                H=1 if one_d else draw(st.integers(1, 4)), W=draw(st.integers(1, 7)),
                C=draw(st.integers(1, 4)),
                pool=(1 if one_d else draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                strides=(1 if one_d else draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=draw(st.sampled_from(["valid", "same"])),
                mode=draw(st.sampled_from(["max", "average"])),
                seed=draw(st.integers(0, 2 ** 16)))


def explicit_padding(c):
    """Keras's 'valid'/'same' as the kernel's ((top, bottom), (left, right))."""
    pads = []
    for n, p, s in zip((c["H"], c["W"]), c["pool"], c["strides"]):
        if c["padding"] == "valid":
            pads.append((0, 0))
        else:
            out, before = ref_conv.conv_geometry(n, p, s, 1, "same")
            total = max((out - 1) * s + p - n, 0)
            pads.append((before, total - before))
    return tuple(pads)


def pool_kw(c):
    return dict(pool_size=c["pool"], strides=c["strides"], padding=explicit_padding(c),
                mode=c["mode"])


@fuzz(240)
@given(c=pool_cases(), data=st.data())
def test_pool_matches_the_reference_in_any_layout(c, data):
    x = np.random.default_rng(c["seed"]).standard_normal(
        (c["N"], c["H"], c["W"], c["C"])).astype(c["dtype"])
    gx = in_layout(x, data.draw(st.sampled_from(LAYOUTS), "layout"))
    if c["padding"] == "valid" and (c["pool"][0] > c["H"] or c["pool"][1] > c["W"]):
        with pytest.raises(ValueError, match="pool_size .* is larger than the padded input"):
            _core.pool_forward(gx, **pool_kw(c))
        return
    before = snapshot([gx])
    y, argmax = _core.pool_forward(gx, return_argmax=True, **pool_kw(c))
    ref_kw = dict(pool_size=c["pool"], strides=c["strides"], padding=c["padding"],
                  mode=c["mode"])
    y_ref = ref_pool.pool_forward(x, **ref_kw)
    tol = 1e-6 if c["dtype"] == np.float32 else 1e-12
    assert_close(y, y_ref, tol, "y")
    assert (argmax is None) == (c["mode"] == "average")
    dy = np.random.default_rng(c["seed"] + 1).standard_normal(y.shape).astype(c["dtype"])
    gdy = in_layout(dy, data.draw(st.sampled_from(LAYOUTS), "dy layout"))
    garg = None if argmax is None else in_layout(argmax, data.draw(st.sampled_from(LAYOUTS),
                                                                   "argmax layout"))
    dx = _core.pool_backward(gdy, input_shape=x.shape, argmax=garg, **pool_kw(c))
    assert_unchanged([gx, gdy], before + [dy])
    assert_close(dx, ref_pool.pool_backward(x, dy, **ref_kw), tol, "dx")


@fuzz(160)
@given(c=pool_cases(), data=st.data())
def test_pool_refuses_bad_arguments_by_name(c, data):
    assume(c["padding"] == "same")
    x = np.ones((c["N"], c["H"], c["W"], c["C"]), c["dtype"])
    y, argmax = _core.pool_forward(x, return_argmax=True, **dict(pool_kw(c), mode="max"))
    what = data.draw(st.sampled_from(["x", "dy", "argmax", "pool_size", "strides", "padding",
                                      "input_shape", "mode"]), "what")
    kw = dict(pool_kw(c), mode="max")
    args = dict(x=x, dy=np.ones_like(y), argmax=argmax, input_shape=list(x.shape))
    if what in ("x", "dy", "argmax"):
        args[what] = corrupt(data.draw, args[what], what)
        if isinstance(args[what], np.ndarray) and args[what].size and args[what].ndim == 4 and \
                args[what].dtype == args[what].dtype:
            if what == "x":
                assume(args[what].dtype not in (np.float32, np.float64))
            if what == "argmax":
                assume(args[what].dtype != np.int32 or args[what].shape != argmax.shape)
    elif what == "input_shape":
        args[what] = data.draw(st.sampled_from([[0] + list(x.shape[1:]), list(x.shape[:3]),
                                                [-1] + list(x.shape[1:]),
                                                [1, 2 ** 62, 2 ** 62, 1]]), what)
    elif what == "mode":
        kw["mode"] = data.draw(st.sampled_from(["min", "avg", "MAX", ""]), what)
    else:
        value = data.draw(st.sampled_from([0, -1, 2 ** 40 + 1, 2 ** 63 - 1]), what)
        if what == "padding":
            kw[what] = ((0, 0), (value or c["pool"][1], 0))  # padding must be < pool_size
        else:
            kw[what] = (1, value)
    for call in ("forward", "backward"):
        if call == "forward" and what in ("dy", "argmax", "input_shape"):
            continue
        if call == "backward" and what == "x":
            continue
        with pytest.raises((TypeError, ValueError)) as e:
            if call == "forward":
                _core.pool_forward(args["x"], **kw)
            else:
                _core.pool_backward(args["dy"], input_shape=args["input_shape"],
                                    argmax=args["argmax"], **kw)
        msg = str(e.value)
        if what == "input_shape":
            assert re.search(r"\b(x|dy)\b", msg), msg  # the input's shape, or dy against it
        elif what in ("pool_size", "strides", "padding") and "larger than the padded" in msg:
            continue
        elif what == "x" and call == "forward" and "dy" in msg:
            continue
        else:
            names_argument(e, what)


def test_pool_nan_propagates_like_numpy():
    """A NaN in a window: the max and the average of that window are NaN
    (np.max propagates NaN, as XLA's and torch's max pooling do), wherever the
    NaN sits in the window; windows without it are unaffected."""
    for dtype in (np.float32, np.float64):
        for pos in range(4):
            x = np.arange(8, dtype=dtype).reshape(1, 1, 8, 1)
            x[0, 0, pos, 0] = np.nan
            for mode in ("max", "average"):
                y = _core.pool_forward(x, pool_size=(1, 4), strides=(1, 4), mode=mode)
                assert np.isnan(y[0, 0, 0, 0]), (dtype, pos, mode, y.ravel())
                assert y[0, 0, 1, 0] == (7 if mode == "max" else 5.5)
            # The gradient goes to the (first) NaN cell, as torch sends it.
            x[0, 0, (pos + 2) % 4, 0] = np.nan
            y, argmax = _core.pool_forward(x, pool_size=(1, 4), strides=(1, 4),
                                           return_argmax=True)
            assert argmax[0, 0, 0, 0] == min(pos, (pos + 2) % 4)
            dx = _core.pool_backward(np.ones_like(y), input_shape=x.shape, pool_size=(1, 4),
                                     strides=(1, 4), argmax=argmax)
            assert dx[0, 0, min(pos, (pos + 2) % 4), 0] == 1 and dx.sum() == 2
            x[0, 0, :4, 0] = [1, 2, 3, 4]
            x[0, 0, pos, 0] = np.inf
            y = _core.pool_forward(x, pool_size=(1, 4), strides=(1, 4), mode="max")
            assert y[0, 0, 0, 0] == np.inf


# ---- normalization -----------------------------------------------------------------------

@st.composite
def norm_cases(draw):
    return dict(dtype=draw(st.sampled_from([np.float64, np.float32])), R=draw(st.integers(1, 9)),
                C=draw(st.integers(1, 9)), gamma=draw(st.booleans()), beta=draw(st.booleans()),
                epsilon=draw(st.sampled_from([1e-3, 1e-5, 0.5])),
                seed=draw(st.integers(0, 2 ** 16)))


def norm_arrays(c):
    rng = np.random.default_rng(c["seed"])
    x = (rng.standard_normal((c["R"], c["C"])) * 2 + 0.5).astype(c["dtype"])
    gamma = rng.standard_normal(c["C"]).astype(c["dtype"]) if c["gamma"] else None
    beta = rng.standard_normal(c["C"]).astype(c["dtype"]) if c["beta"] else None
    dy = rng.standard_normal((c["R"], c["C"])).astype(c["dtype"])
    return x, gamma, beta, dy


def lay(data, a, what):
    return None if a is None else in_layout(a, data.draw(st.sampled_from(LAYOUTS), what))


@fuzz(240)
@given(c=norm_cases(), data=st.data())
def test_layer_norm_matches_the_reference_in_any_layout(c, data):
    x, gamma, beta, dy = norm_arrays(c)
    gx, gg, gb, gdy = (lay(data, a, n)
                       for a, n in ((x, "x"), (gamma, "g"), (beta, "b"), (dy, "dy")))
    before = snapshot([gx, gg, gb, gdy])
    y, mean, rstd = _core.layer_norm_forward(gx, gg, gb, epsilon=c["epsilon"], return_stats=True)
    tol = 1e-5 if c["dtype"] == np.float32 else 1e-10
    assert_close(y, ref_norm.layer_norm_forward(x, gamma, beta, epsilon=c["epsilon"]), tol, "y")
    np.testing.assert_array_equal(
        _core.layer_norm_forward(gx, gg, gb, epsilon=c["epsilon"]), y)
    flags = {n: data.draw(st.booleans(), n) for n in ("compute_dx", "compute_dgamma",
                                                      "compute_dbeta")}
    got = _core.layer_norm_backward(gx, lay(data, mean, "mean"), lay(data, rstd, "rstd"), gg, gdy,
                                    **flags)
    want = ref_norm.layer_norm_backward(x, dy, gamma, epsilon=c["epsilon"])
    for g, w, flag in zip(got, want, flags):
        if flags[flag]:
            assert_close(g, w, tol * 10, flag)
        else:
            assert g is None
    assert_unchanged([gx, gg, gb, gdy], before)


@fuzz(240)
@given(c=norm_cases(), data=st.data())
def test_batch_norm_matches_the_reference_in_any_layout(c, data):
    x, gamma, beta, dy = norm_arrays(c)
    gx, gg, gb, gdy = (lay(data, a, n)
                       for a, n in ((x, "x"), (gamma, "g"), (beta, "b"), (dy, "dy")))
    before = snapshot([gx, gg, gb, gdy])
    tol = 1e-5 if c["dtype"] == np.float32 else 1e-10
    mean, var = _core.batch_norm_moments(gx)
    ref_mean, ref_var = ref_norm.batch_norm_moments(x)
    assert_close(mean, ref_mean, tol, "mean")
    assert_close(var, ref_var, tol, "variance")
    gm, gv = lay(data, mean, "mean"), lay(data, var, "var")
    y = _core.batch_norm_apply(gx, gm, gv, gg, gb, epsilon=c["epsilon"])
    y_ref, _, _ = ref_norm.batch_norm_forward(x, gamma, beta, moving_mean=mean.astype(np.float64),
                                              moving_variance=var.astype(np.float64),
                                              epsilon=c["epsilon"])
    assert_close(y, y_ref, tol, "y")
    flags = {n: data.draw(st.booleans(), n) for n in ("compute_dx", "compute_dgamma",
                                                      "compute_dbeta")}
    g_gamma = gg if gg is not None else np.ones(c["C"], c["dtype"])
    got = _core.batch_norm_backward(gx, gm, gv, g_gamma, gdy, epsilon=c["epsilon"], **flags)
    want = ref_norm.batch_norm_backward(x, dy, gamma, epsilon=c["epsilon"], training=True)
    for g, w, flag in zip(got, want, flags):
        if flags[flag]:
            assert_close(g, w, tol * 100, flag)  # the dx formula cancels digits at R = 1..2
        else:
            assert g is None
    assert_unchanged([gx, gg, gb, gdy], before)


NORM_CALLS = {
    "layer_norm_forward": (lambda a: _core.layer_norm_forward(a["x"], a["gamma"], a["beta"],
                                                              epsilon=a["epsilon"]),
                           ["x", "gamma", "beta", "epsilon"]),
    "layer_norm_backward": (lambda a: _core.layer_norm_backward(a["x"], a["mean"], a["rstd"],
                                                                a["gamma"], a["dy"]),
                            ["x", "mean", "rstd", "gamma", "dy"]),
    "batch_norm_moments": (lambda a: _core.batch_norm_moments(a["x"]), ["x"]),
    "batch_norm_apply": (lambda a: _core.batch_norm_apply(a["x"], a["mean"], a["variance"],
                                                          a["gamma"], a["beta"],
                                                          epsilon=a["epsilon"]),
                         ["x", "mean", "variance", "gamma", "beta", "epsilon"]),
    "batch_norm_backward": (lambda a: _core.batch_norm_backward(a["x"], a["mean"], a["variance"],
                                                                a["gamma"], a["dy"],
                                                                epsilon=a["epsilon"]),
                            ["x", "mean", "variance", "gamma", "dy", "epsilon"]),
}


@fuzz(400)
@given(c=norm_cases(), call=st.sampled_from(sorted(NORM_CALLS)), data=st.data())
def test_normalization_refuses_bad_arguments_by_name(c, call, data):
    """Zero rows or columns, other dtypes, ranks or shapes, and epsilon <= 0,
    NaN or inf: an error naming the argument."""
    x, gamma, beta, dy = norm_arrays(dict(c, gamma=True, beta=True))
    _, mean, rstd = _core.layer_norm_forward(x, epsilon=1e-3, return_stats=True)
    bmean, bvar = _core.batch_norm_moments(x)
    a = dict(x=x, gamma=gamma, beta=beta, dy=dy, epsilon=1e-3,
             mean=mean if call.startswith("layer") else bmean, rstd=rstd, variance=bvar)
    fn, names = NORM_CALLS[call]
    fn(a)  # as given, it works
    name = data.draw(st.sampled_from(names), "argument")
    if name == "epsilon":
        a["epsilon"] = data.draw(st.sampled_from([0.0, -1e-3, float("nan"), float("inf"),
                                                  -float("inf")]), "epsilon")
        if a["epsilon"] == float("inf"):
            with np.errstate(all="ignore"):
                try:
                    fn(a)  # inf may be accepted (every output 0); it must not crash
                except ValueError as e:
                    assert "epsilon" in str(e)
            return
    else:
        a[name] = corrupt(data.draw, a[name], name)
        if name != "x" and isinstance(a[name], np.ndarray) and a[name].ndim == 1 and \
                a[name].dtype == c["dtype"] and a[name].shape == a["x"].shape[1:]:
            assume(False)  # still valid
        if name == "x" and isinstance(a[name], np.ndarray) and a[name].ndim == 2 and \
                a[name].size and a[name].dtype in (np.float32, np.float64):
            assume(a[name].dtype == c["dtype"])  # x sets the dtype of the rest
            works_or_names(lambda: fn(a), r"\b(x|mean|rstd|variance|gamma|beta|dy)\b")
            return
    with pytest.raises((TypeError, ValueError)) as e:
        fn(a)
    names_argument(e, name)


@fuzz(160)
@given(c=norm_cases(), data=st.data())
def test_normalization_nan_and_inf_propagate_as_in_the_reference(c, data):
    c = dict(c, dtype=np.float64, gamma=True, beta=True)
    x, gamma, beta, dy = norm_arrays(c)
    at = (data.draw(st.integers(0, c["R"] - 1), "row"),
          data.draw(st.integers(0, c["C"] - 1), "col"))
    x[at] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), "value")
    with np.errstate(all="ignore"):
        y, mean, rstd = _core.layer_norm_forward(x, gamma, beta, epsilon=c["epsilon"],
                                                 return_stats=True)
        assert_same_specials(y, ref_norm.layer_norm_forward(x, gamma, beta, epsilon=c["epsilon"]),
                             "layer norm y")
        got = _core.layer_norm_backward(x, mean, rstd, gamma, dy)
        want = ref_norm.layer_norm_backward(x, dy, gamma, epsilon=c["epsilon"])
        for g, w, n in zip(got, want, ("dx", "dgamma", "dbeta")):
            assert_gradient_specials(g, w, "layer norm " + n)
        bmean, bvar = _core.batch_norm_moments(x)
        rm, rv = ref_norm.batch_norm_moments(x)
        assert_same_specials(bmean, rm, "mean")
        assert_same_specials(bvar, rv, "variance")
        y = _core.batch_norm_apply(x, bmean, bvar, gamma, beta, epsilon=c["epsilon"])
        y_ref, _, _ = ref_norm.batch_norm_forward(x, gamma, beta, moving_mean=rm,
                                                  moving_variance=rv, epsilon=c["epsilon"])
        assert_same_specials(y, y_ref, "batch norm y")
        got = _core.batch_norm_backward(x, bmean, bvar, gamma, dy, epsilon=c["epsilon"])
        want = ref_norm.batch_norm_backward(x, dy, gamma, epsilon=c["epsilon"], training=True)
        for g, w, n in zip(got, want, ("dx", "dgamma", "dbeta")):
            assert_gradient_specials(g, w, "batch norm " + n)


# ---- matmul ------------------------------------------------------------------------------

def exact_product(a, b):
    """op(a) @ op(b) in float64 by broadcasting: IEEE semantics for NaN and
    inf (0 * inf = NaN), no BLAS shortcuts."""
    with np.errstate(all="ignore"):
        return (np.asarray(a, np.float64)[:, :, None] * np.asarray(b, np.float64)[None]).sum(1)


@fuzz(480)
@given(dtype=st.sampled_from([np.float64, np.float32]),
       M=st.one_of(st.integers(0, 6), st.sampled_from([17, 70])),
       K=st.one_of(st.integers(0, 6), st.sampled_from([33, 90])),
       N=st.one_of(st.integers(0, 6), st.sampled_from([19, 65])),
       trans_a=st.booleans(), trans_b=st.booleans(), data=st.data())
def test_matmul_matches_numpy_in_any_layout(dtype, M, K, N, trans_a, trans_b, data):
    """Zero-size M, K or N work (K = 0 gives zeros); every layout; out= and
    accumulate; NaN and inf as IEEE arithmetic gives them."""
    rng = np.random.default_rng(M * 10000 + K * 100 + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    if data.draw(st.booleans(), "specials") and a.size:
        a.reshape(-1)[data.draw(st.integers(0, a.size - 1), "at")] = \
            data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), "value")
    ga = in_layout(a.T.copy() if trans_a else a, data.draw(st.sampled_from(LAYOUTS), "a layout"))
    gb = in_layout(b.T.copy() if trans_b else b, data.draw(st.sampled_from(LAYOUTS), "b layout"))
    before = snapshot([ga, gb])
    want = exact_product(a, b)
    out_kind = data.draw(st.sampled_from([None, "fresh", "accumulate"]), "out")
    out = None if out_kind is None else np.full((M, N), 0.5, dtype)
    got = _core.matmul(ga, gb, trans_a=trans_a, trans_b=trans_b, out=out,
                       accumulate=out_kind == "accumulate")
    if out_kind == "accumulate":
        with np.errstate(all="ignore"):
            want = want + 0.5
    assert got.shape == (M, N) and got.dtype == dtype
    assert out is None or got is out
    assert_unchanged([ga, gb], before)
    assert_same_specials(got, want, "matmul", rtol=1e-4 if dtype == np.float32 else 1e-12)


@fuzz(240)
@given(what=st.sampled_from(["a", "b", "out"]), data=st.data())
def test_matmul_refuses_bad_arguments_by_name(what, data):
    a, b = np.ones((3, 4)), np.ones((4, 5))
    args = dict(a=a, b=b, out=np.zeros((3, 5)))
    if what == "out":
        kind = data.draw(st.sampled_from(OUT_KINDS), "out kind")
        args["out"] = bad_out(kind, (3, 5), np.float64)
    else:
        args[what] = corrupt(data.draw, args[what], what)
        bad = args[what]
        if isinstance(bad, np.ndarray) and bad.ndim == 2 and bad.dtype == np.float64 and \
                bad.shape[0] == 0:
            assume(what == "b" or bad.shape[1] != 4)  # an empty a is a valid product
    with pytest.raises((TypeError, ValueError)) as e:
        _core.matmul(args["a"], args["b"], out=args["out"])
    msg = str(e.value)
    if what in ("a", "b") and isinstance(args[what], np.ndarray) and args[what].ndim == 2 and \
            args[what].dtype == np.float64:
        assert re.search(r"\b(a|b|out)\b", msg), msg  # the sizes no longer fit each other
    elif what == "a" and isinstance(args["a"], np.ndarray) and args["a"].ndim == 2 and \
            args["a"].dtype == np.float32:
        names_argument(e, "b")  # a sets the dtype
    else:
        names_argument(e, what)


def test_array_conversion_lets_interrupts_through():
    """An array-like whose conversion fails names the argument (TypeError); a
    KeyboardInterrupt during the conversion stays a KeyboardInterrupt (it was
    turned into a TypeError, losing the user's Ctrl-C)."""
    class Raises:
        def __init__(self, exc):
            self.exc = exc

        def __array__(self, *args, **kwargs):
            raise self.exc

    b = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match=r"\ba must be an array-like"):
        _core.matmul(Raises(ValueError("no")), b)
    with pytest.raises(KeyboardInterrupt):
        _core.matmul(Raises(KeyboardInterrupt()), b)
    with pytest.raises(SystemExit):
        _core.matmul(Raises(SystemExit(3)), b)


# ---- adam_step ---------------------------------------------------------------------------

def adam_reference(ws, gs, ms, vs, vhats, alpha, c1, c2, eps):
    """The documented update, in NumPy, in the arrays' own dtype."""
    out = []
    with np.errstate(all="ignore"):
        for i, (w, g, m, v) in enumerate(zip(ws, gs, ms, vs)):
            w, m, v = w.copy(), m.copy(), v.copy()
            t = w.dtype.type
            m += (g - m) * t(c1)
            v += (g * g - v) * t(c2)
            vh = None
            if vhats is not None:
                vh = np.maximum(vhats[i], v)
                denom = np.sqrt(vh) + t(eps)
            else:
                denom = np.sqrt(v) + t(eps)
            w -= m * t(alpha) / denom
            out.append((w, m, v, vh))
    return out


@fuzz(320)
@given(dtype=st.sampled_from([np.float64, np.float32]),
       sizes=st.lists(st.one_of(st.integers(0, 9), st.sampled_from([31, 100])), max_size=5),
       amsgrad=st.booleans(), special=st.booleans(), data=st.data())
def test_adam_step_matches_numpy_bit_for_bit(dtype, sizes, amsgrad, special, data):
    rng = np.random.default_rng(len(sizes) * 7 + sum(sizes))
    shapes = [(n,) if i % 2 else (1, n) for i, n in enumerate(sizes)]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ms = [rng.standard_normal(s).astype(dtype) * 0.1 for s in shapes]
    vs = [np.abs(rng.standard_normal(s)).astype(dtype) * 0.1 for s in shapes]
    vhats = [np.abs(rng.standard_normal(s)).astype(dtype) * 0.1 for s in shapes] if amsgrad \
        else None
    if special and any(g.size for g in gs):
        g = next(g for g in gs if g.size)
        g.reshape(-1)[0] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), "value")
    # Gradients are only read: any layout.
    ggs = [in_layout(g, data.draw(st.sampled_from(["c", "readonly"]), "grad layout")) for g in gs]
    args = (0.01, 0.1, 0.001, 1e-7)
    want = adam_reference(ws, gs, ms, vs, vhats, *args)
    _core.adam_step(ws, ggs, ms, vs, vhats, *args)
    for i, (w, m, v, vh) in enumerate(want):
        np.testing.assert_array_equal(ws[i], w)
        np.testing.assert_array_equal(ms[i], m)
        np.testing.assert_array_equal(vs[i], v)
        if vh is not None:
            np.testing.assert_array_equal(vhats[i], vh)


@fuzz(240)
@given(which=st.sampled_from(["weights", "grads", "ms", "vs", "vhats"]),
       kind=st.sampled_from(["readonly", "fortran", "strided", "reversed", "dtype", "shape",
                             "int", "list", "length"]), data=st.data())
def test_adam_step_refuses_bad_arrays_by_name(which, kind, data):
    rng = np.random.default_rng(0)
    lists = {n: [rng.standard_normal((3, 4)), rng.standard_normal(5)]
             for n in ("weights", "grads", "ms", "vs", "vhats")}
    i = data.draw(st.integers(0, 1), "index")
    arr = lists[which][i]
    if kind == "length":
        lists[which] = lists[which][:1]
    elif kind == "dtype":
        lists[which][i] = arr.astype(np.float32)
    elif kind == "shape":
        lists[which][i] = np.zeros(arr.size + 1)
    elif kind == "int":
        lists[which][i] = arr.astype(np.int64)
    else:
        lists[which][i] = in_layout(arr, kind)
        if which == "grads" and kind in ("readonly", "fortran", "strided", "reversed", "list"):
            assume(False)  # gradients are only read: accepted (copied if need be)
        if isinstance(lists[which][i], np.ndarray) and lists[which][i].flags.c_contiguous and \
                lists[which][i].flags.writeable:
            assume(False)  # a 1-D reversed copy, say, is still a plain array
    before = snapshot([a for n in lists for a in lists[n]])
    with pytest.raises((TypeError, ValueError)) as e:
        _core.adam_step(lists["weights"], lists["grads"], lists["ms"], lists["vs"],
                        lists["vhats"], 0.01, 0.1, 0.001, 1e-7)
    msg = str(e.value)
    assert "adam_step" in msg
    if kind in ("dtype", "shape"):  # the weights set them: either side may be named
        assert re.search(rf"\b(weights|grads|ms|vs|vhats)\[{i}\]", msg), msg
    elif kind != "length":
        assert re.search(rf"\b{which}(\[{i}\])?", msg), msg
    # Refused before anything was written.
    assert_unchanged([a for n in lists for a in lists[n]], before)


# ---- settings and helpers ----------------------------------------------------------------

@given(n=st.one_of(st.integers(-2 ** 40, 0), st.integers(2 ** 31, 2 ** 63 - 1),
                   st.sampled_from([1.5, "2", None])))
@fuzz(120)
def test_set_num_threads_refuses_bad_counts(n):
    saved = _core.get_num_threads()
    try:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            _core.set_num_threads(n)
        assert _core.get_num_threads() == saved
    finally:
        _core.set_num_threads(saved)


def test_thread_counts_and_info_entry_points():
    saved = _core.get_num_threads()
    try:
        for n in (1, 2, 3, 64):
            _core.set_num_threads(n)
            assert 1 <= _core.get_num_threads() <= max(n, 1)
            x = np.ones((4, 3, 2))
            y, _ = _core.SimpleRNNKernel(2).forward(x, np.eye(2), np.eye(2))
            assert np.isfinite(y).all()
    finally:
        _core.set_num_threads(saved)
    info = _core.build_info()
    assert {"isa_level", "simd", "eigen", "compiler"} <= set(info)
    status = _core.bf16_status()
    assert {"supported", "enabled", "path"} <= set(status)
    was = status["enabled"]
    try:
        _core.set_bf16_enabled(False)
        assert not _core.bf16_status()["enabled"]
        _core.set_bf16_enabled(True)
        assert _core.bf16_status()["enabled"] == status["supported"]
    finally:
        _core.set_bf16_enabled(was)
    try:
        _core.set_amx_enabled(False)
        assert not _core.bf16_status()["amx_enabled"]
        assert _core.bf16_status()["path"] == ("avx512_bf16" if was else "float32")
        _core.set_amx_enabled(True)
        assert _core.bf16_status()["amx_enabled"] == (status["amx_supported"] and was)
    finally:
        _core.set_amx_enabled(True)
    with pytest.raises(TypeError):
        _core.set_amx_enabled("yes please")
    with pytest.raises(TypeError):
        _core.set_bf16_enabled("yes")


@given(m=st.sampled_from([0, -1, 1, 2 ** 40, 2 ** 62]), n=st.sampled_from([0, 1, 2 ** 40]),
       k=st.sampled_from([-5, 1, 2 ** 40]), threads=st.sampled_from([0, 1, -3]),
       repeats=st.sampled_from([0, 1]))
@fuzz(160)
def test_gemm_gflops_refuses_bad_sizes(m, n, k, threads, repeats):
    """Found by this file: 2**40-sized products overflowed to empty buffers and
    the GEMM read past them (a segfault)."""
    if min(m, n, k, threads, repeats) > 0 and m * n <= 64 and m * k <= 64 and k * n <= 64:
        assert _core.gemm_gflops(m, n, k, threads=threads, repeats=repeats) > 0
        return
    assume(not (min(m, n, k, threads, repeats) > 0 and max(m * k, k * n, m * n) <= 2 ** 40))
    with pytest.raises(ValueError, match="must be positive|at most 2\\*\\*40"):
        _core.gemm_gflops(m, n, k, threads=threads, repeats=repeats)


@given(threads=st.sampled_from([0, -1, 1, 2, 1000]), repeats=st.sampled_from([0, -2, 1]))
@fuzz(40)
def test_fma_peak_gflops_refuses_bad_arguments(threads, repeats):
    """More threads than the pool has run on the members it gives (each counted once)."""
    if threads > 0 and repeats > 0:
        peak = _core.fma_peak_gflops(threads=threads, repeats=repeats)
        assert np.isfinite(peak) and peak > 0
        return
    name = "threads" if threads <= 0 else "repeats"
    with pytest.raises(ValueError, match=f"{name} must be positive, got {threads if threads <= 0 else repeats}"):
        _core.fma_peak_gflops(threads=threads, repeats=repeats)


DEVICE_BODIES = {
    "simple_rnn_forward": (1, ["gates", "h_prev"]), "simple_rnn_backward": (1, ["gates", "dh"]),
    "lstm_forward": (4, ["gates", "h_prev", "c_prev"]),
    "lstm_backward": (4, ["gates", "c", "c_prev", "dh", "dcell"]),
    "gru_forward": (3, ["xg", "rg", "h_prev"]), "gru_backward": (3, ["xg", "rg", "h_prev", "dh"]),
    "gru_before_forward1": (3, ["xg", "rzg", "h_prev"]),
    "gru_before_forward2": (3, ["xg", "hg", "h_prev"]),
    "gru_before_backward1": (3, ["xg", "h_prev", "dh"]),
    "gru_before_backward2": (3, ["xg", "h_prev", "drh", "dgates", "dh_carry"]),
}


@fuzz(240)
@given(fn=st.sampled_from(sorted(DEVICE_BODIES)), B=st.integers(0, 4), U=st.integers(0, 4),
       data=st.data())
def test_device_bodies_check_their_shapes(fn, B, U, data):
    """Test support (float64, forcecast): each array of the right or a wrong
    shape, or of another rank; a mismatch raises instead of reading out of
    bounds. Sizes are checked against the first array's."""
    G, names = DEVICE_BODIES[fn]
    widths = {"gates": G * U, "xg": 3 * U, "rg": 3 * U, "rzg": 2 * U, "dgates": 3 * U}
    arrays, broken = [], False
    for name in names:
        shape = (B, widths.get(name, U))
        if data.draw(st.booleans(), f"break {name}"):
            shape = data.draw(st.sampled_from([(B + 1, shape[1]), (B, shape[1] + 1), (B,),
                                               (B, shape[1], 1)]), f"{name} shape")
            broken = True
        arrays.append(np.random.default_rng(0).uniform(-1, 1, shape))
    try:
        out = getattr(_core.device_bodies, fn)(*arrays)
    except (ValueError, IndexError):
        assert broken
        return
    # Finite and repeatable: outputs a phase leaves to another are zeros (they
    # were uninitialized memory, found by this file).
    again = getattr(_core.device_bodies, fn)(*arrays)
    for o, o2 in zip(out, again):
        assert np.isfinite(o).all()
        np.testing.assert_array_equal(o, o2)
