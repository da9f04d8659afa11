"""Mixed precision (rnnfast.mixed_precision, Keras's keras.mixed_precision).

- The policy API: names and dtypes, the global policy, a layer's dtype
  argument, configs, errors.
- The bf16 kernels (SimpleRNN, LSTM, GRU with bf16=True) against NumPy
  references that round every GEMM operand to bfloat16 (round to nearest
  even) and compute in float64. Tolerances, as max|got - want| over
  max(1, max|want|):
    * 1e-5 where every rounded operand is an input (one step from a given
      state: the kernels' float32 sums are the only difference);
    * 2e-5 for forwards over many steps, the reference fed the kernel's own
      h_{t-1} (its outputs) before rounding, so that both round the same
      values (measured: 1e-7);
    * 1e-3 for the gradients over many steps: the reference's float64 gate
      gradients, rounded to bfloat16, land on the other side of a rounding
      boundary from the kernel's float32 ones now and then (one bfloat16
      step, 2^-8 relative, in a term of a sum; measured: 1e-7 to 1e-4),
      while the float32 kernel is 1e-3 to 1e-2 away from the same
      reference (checked: at least 3x farther).
  And against the float32 kernels: within 3e-2 (forward) and 5e-2
  (gradients) of them.
- The fallback: switched off (set_bf16_enabled(False), RNNFAST_BF16=0) or on
  a build without bf16 code (the x86-64-v3 variant), mixed_bfloat16 runs the
  float32 kernels, bit for bit.
- Training: the demo's two-layer LSTM forecaster for 20 epochs with
  mixed_bfloat16 ends within 2% of float32's loss.
- AMX (where the CPU has AMX-BF16): the reference tests run with tiles on
  and off (AMX_PATHS), on shapes with whole tiles and leftovers; tile state
  in concurrent Python threads and in a forked child.
The bf16-hardware tests skip where the CPU (or the loaded build) has no
AVX512-BF16, the AMX cases where it has no AMX.
"""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnfast
from rnnfast import _core, _loader
from rnnfast import mixed_precision as mp

BF16 = mp.bf16_status()
needs_bf16 = pytest.mark.skipif(not BF16["supported"],
                                reason=f"no bf16 kernels here: {BF16['reason']}")
# Both GEMM paths where the CPU has AMX: tiles on (whole 16 x 16 blocks on
# TDPBF16PS) and off (VDPBF16PS only); elsewhere the "amx" case skips.
AMX_PATHS = [pytest.param(True, id="amx", marks=pytest.mark.skipif(
                 not BF16.get("amx_supported"), reason=f"no AMX here: {BF16.get('amx_reason')}")),
             pytest.param(False, id="vnni")]


@pytest.fixture
def amx_path(request):
    mp.set_amx_enabled(request.param)
    yield request.param
    mp.set_amx_enabled(True)


@pytest.fixture(autouse=True)
def _reset_policy():
    yield
    mp.set_global_policy(None)
    mp.set_bf16_enabled(True)
    mp.set_amx_enabled(True)
    rnnfast.backend.set_floatx("float32")


# ---- the policy API --------------------------------------------------------------------


def test_policy_names_and_dtypes():
    p = mp.DTypePolicy("mixed_bfloat16")
    assert (p.name, p.compute_dtype, p.variable_dtype) == ("mixed_bfloat16", "bfloat16", "float32")
    assert mp.DTypePolicy("float64").compute_dtype == "float64"
    assert mp.DTypePolicy().name == "float32"  # floatx
    assert mp.Policy is mp.DTypePolicy and rnnfast.DTypePolicy is mp.DTypePolicy
    assert p == mp.DTypePolicy("mixed_bfloat16") and p != mp.DTypePolicy("float32")
    assert mp.DTypePolicy.from_config(p.get_config()) == p
    assert "mixed_bfloat16" in repr(p)


def test_global_policy_and_layers():
    import rnnfast as keras

    assert keras.mixed_precision.global_policy().name == "float32"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    assert keras.mixed_precision.global_policy() == mp.DTypePolicy("mixed_bfloat16")
    lstm, dense = keras.layers.LSTM(8), keras.layers.Dense(3)
    for layer in (lstm, lstm.cell, dense):
        assert layer.dtype_policy.name == "mixed_bfloat16"
        assert layer.variable_dtype == "float32" and layer.dtype == "float32"
        assert layer.compute_dtype == np.float32  # NumPy arrays stay float32
    # An explicit dtype wins over the global policy.
    assert keras.layers.GRU(4, dtype="float32").dtype_policy.name == "float32"
    keras.mixed_precision.set_global_policy(mp.DTypePolicy("float64"))
    assert keras.layers.SimpleRNN(4).compute_dtype == np.float64
    keras.mixed_precision.set_global_policy(None)
    keras.backend.set_floatx("float64")
    assert keras.mixed_precision.global_policy().name == "float64"
    keras.backend.set_floatx("float32")
    # keras.config's names for the same functions.
    assert mp.set_dtype_policy is mp.set_global_policy and mp.dtype_policy is mp.global_policy


@pytest.mark.parametrize("dtype", ["mixed_bfloat16", mp.DTypePolicy("mixed_bfloat16"),
                                   {"module": "keras", "class_name": "DTypePolicy",
                                    "config": {"name": "mixed_bfloat16"}, "registered_name": None}],
                         ids=["name", "policy", "dict"])
def test_layer_dtype_argument(dtype):
    for cls in (rnnfast.layers.LSTM, rnnfast.layers.GRU, rnnfast.layers.SimpleRNN):
        layer = cls(5, dtype=dtype)
        assert layer.dtype_policy.name == "mixed_bfloat16" == layer.cell.dtype_policy.name
        layer.build((None, 3, 2))
        assert layer.cell.kernel.value.dtype == np.float32
        assert layer.cell.make_kernel(False).bf16
    assert not rnnfast.layers.LSTM(5).cell.make_kernel(False).bf16


def test_config_round_trip():
    layer = rnnfast.layers.LSTM(6, dtype="mixed_bfloat16", return_sequences=True)
    config = layer.get_config()
    assert config["dtype"] == {"module": "keras", "class_name": "DTypePolicy",
                               "config": {"name": "mixed_bfloat16"}, "registered_name": None}
    again = rnnfast.layers.LSTM.from_config(json.loads(json.dumps(config)))
    assert again.dtype_policy.name == "mixed_bfloat16" and again.return_sequences
    model = rnnfast.models.Sequential([rnnfast.Input((4, 2)), layer, rnnfast.layers.GRU(3)])
    clone = rnnfast.models.model_from_json(model.to_json())
    assert [lay.dtype_policy.name for lay in clone.layers] == ["mixed_bfloat16", "float32"]


def test_unknown_policy_names_the_argument():
    with pytest.raises(ValueError, match=r"dtype='mixed_float16' is not a dtype policy"):
        rnnfast.layers.LSTM(4, dtype="mixed_float16")
    with pytest.raises(ValueError, match=r"policy='bf16'.*'mixed_bfloat16'"):
        mp.set_global_policy("bf16")
    with pytest.raises(ValueError, match=r"name='float16'"):
        mp.DTypePolicy("float16")
    assert mp.global_policy().name == "float32"  # unchanged by the failed call


def test_build_info_reports_the_path():
    info = rnnfast.build_info()["bf16"]
    assert set(info) >= {"supported", "enabled", "path", "reason"}
    want = "amx_bf16" if info["amx_enabled"] else "avx512_bf16" if info["enabled"] else "float32"
    assert info["path"] == want
    assert info["amx_enabled"] <= info["amx_supported"] <= info["supported"]
    mp.set_bf16_enabled(False)
    assert mp.bf16_status() == dict(info, enabled=False, amx_enabled=False, path="float32")


# ---- NumPy references --------------------------------------------------------------------


def bf16(a):
    """float32 values rounded to bfloat16 (nearest even; subnormals to zero), as float64."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    r = np.where((a.view(np.uint32) & 0x7F800000) == 0, np.float32(0) * a, r)
    return r.astype(np.float64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference(cell, x, W, R, b, h0, c0, y_kernel, dy, dh_last, dc_last=None, rnd=bf16):
    """Forward and backward of one cell (Keras 3 forms, tanh/sigmoid; GRU
    reset_after) in float64, every GEMM operand passed through rnd. The
    state entering step t is the kernel's output y_kernel[:, t-1] (h0 at
    t = 0), as the kernel rounds it. Returns (y, grads)."""
    B, T, I = x.shape
    U = R.shape[0]
    G = R.shape[1] // U
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    Wr, Rr = rnd(W), rnd(R)
    b_in = f64(b[0] if cell == "gru" else b)
    b_rec = f64(b[1]) if cell == "gru" else np.zeros(G * U)
    h_in = [f64(h0)] + [f64(y_kernel[:, t]) for t in range(T - 1)]  # float32 values
    c = f64(c0) if c0 is not None else np.zeros((B, U))
    ys, cache = [], []
    for t in range(T):
        hp = h_in[t]
        zx = rnd(x[:, t]) @ Wr + b_in
        zr = rnd(hp.astype(np.float32)) @ Rr + b_rec
        if cell == "lstm":
            z = zx + zr
            i, f, o = sigmoid(z[:, :U]), sigmoid(z[:, U:2 * U]), sigmoid(z[:, 3 * U:])
            cc = np.tanh(z[:, 2 * U:3 * U])
            c_prev, c = c, f * c + i * cc
            h = o * np.tanh(c)
            cache.append((hp, i, f, cc, o, c_prev, c))
        elif cell == "gru":
            zg = sigmoid(zx[:, :U] + zr[:, :U])
            r = sigmoid(zx[:, U:2 * U] + zr[:, U:2 * U])
            hh = np.tanh(zx[:, 2 * U:] + r * zr[:, 2 * U:])
            h = zg * hp + (1 - zg) * hh
            cache.append((hp, zg, r, hh, zr[:, 2 * U:]))
        else:
            h = np.tanh(zx + zr)
            cache.append((hp, h))
        ys.append(h)
    y = np.stack(ys, 1)
    dW, dR = np.zeros((I, G * U)), np.zeros((U, G * U))
    db = np.zeros((2, G * U)) if cell == "gru" else np.zeros(G * U)
    dx = np.zeros((B, T, I))
    dh_next = f64(dh_last)
    dc_next = f64(dc_last) if dc_last is not None else np.zeros((B, U))
    for t in reversed(range(T)):
        dh = f64(dy[:, t]) + dh_next
        if cell == "lstm":
            hp, i, f, cc, o, c_prev, c = cache[t]
            tc = np.tanh(c)
            dc = dc_next + dh * o * (1 - tc ** 2)
            dz = np.concatenate([dc * cc * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - cc ** 2), dh * tc * o * (1 - o)], 1)
            dc_next = dc * f
            dzx = dzr = dz
            direct = 0.0
        elif cell == "gru":
            hp, zg, r, hh, rh = cache[t]
            dzz = dh * (hp - hh) * zg * (1 - zg)
            dhh = dh * (1 - zg) * (1 - hh ** 2)
            dr = dhh * rh * r * (1 - r)
            dzx = np.concatenate([dzz, dr, dhh], 1)
            dzr = np.concatenate([dzz, dr, dhh * r], 1)
            direct = dh * zg
        else:
            hp, h = cache[t]
            dzx = dzr = dh * (1 - h ** 2)
            direct = 0.0
        r16 = lambda a: rnd(a.astype(np.float32))  # noqa: E731
        dW += rnd(x[:, t]).T @ r16(dzx)
        dR += r16(hp).T @ r16(dzr)
        if cell == "gru":
            db[0] += dzx.sum(0)
            db[1] += dzr.sum(0)
        else:
            db += dzx.sum(0)
        dx[:, t] = r16(dzx) @ Wr.T
        if cell == "gru":  # as the kernel: the z and r gates, then the h gate, each rounded
            dh_next = r16(dzr[:, :2 * U]) @ Rr[:, :2 * U].T + r16(dzr[:, 2 * U:]) @ Rr[:, 2 * U:].T
        else:
            dh_next = r16(dzr) @ Rr.T
        dh_next = dh_next + direct
    grads = {"dx": dx, "dh0": dh_next, "dkernel": dW, "drecurrent_kernel": dR, "dbias": db}
    if cell == "lstm":
        grads["dc0"] = dc_next
    return y, grads


def make_case(cell, B, T, I, U, seed=0):
    rng = np.random.default_rng(seed)
    G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    f = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)  # noqa: E731
    return dict(
        x=rng.standard_normal((B, T, I)).astype(np.float32),
        W=f(I, G * U) * np.float32(np.sqrt(3.0 / I)), R=f(U, G * U) * np.float32(np.sqrt(1.5 / U)),
        b=f(2, G * U) * np.float32(0.5) if cell == "gru" else f(G * U) * np.float32(0.5),
        h0=f(B, U) * np.float32(0.8), c0=f(B, U) * np.float32(0.8) if cell == "lstm" else None,
        dy=rng.standard_normal((B, T, U)).astype(np.float32),
        dh=rng.standard_normal((B, U)).astype(np.float32),
        dc=rng.standard_normal((B, U)).astype(np.float32) if cell == "lstm" else None)


def run_kernel(cell, c, bf16_on, core=None, activation="tanh", go_backwards=False):
    core = core or _core
    U = c["R"].shape[0]
    if cell == "lstm":
        k = core.LSTMKernel(U, bf16=bf16_on, go_backwards=go_backwards)
        init, dfinal = (c["h0"], c["c0"]), (c["dh"], c["dc"])
    elif cell == "gru":
        k = core.GRUKernel(U, bf16=bf16_on, go_backwards=go_backwards)
        init, dfinal = c["h0"], c["dh"]
    else:
        k = core.SimpleRNNKernel(U, activation=activation, bf16=bf16_on, go_backwards=go_backwards)
        init, dfinal = c["h0"], c["dh"]
    y, _ = k.forward(c["x"], c["W"], c["R"], c["b"], initial_state=init, training=True)
    dx, dinit, dk, dr, db = k.backward(c["W"], c["R"], doutputs=c["dy"], dfinal_state=dfinal)
    g = {"dx": dx, "dkernel": dk, "drecurrent_kernel": dr, "dbias": db}
    if cell == "lstm":
        g["dh0"], g["dc0"] = dinit
    else:
        g["dh0"] = dinit
    return y, g


def err(got, want):
    want = np.asarray(want, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - want).max()) / max(1.0, float(np.abs(want).max()))


# ---- bf16 kernels against the references --------------------------------------------------


# Whole AMX tiles from (32, 64, 96) on; (37, 50, 83) leaves rows, pairs and
# columns past the tiles; I = 600 takes two slices of 256 pairs.
@needs_bf16
@pytest.mark.parametrize("amx_path", AMX_PATHS, indirect=True)
@pytest.mark.parametrize("shape", [(7, 33, 77), (4, 16, 64), (6, 130, 150), (32, 64, 96),
                                   (37, 50, 83), (48, 600, 70)], ids=str)
def test_single_step_exact_operands(shape, amx_path):
    """SimpleRNN(linear), one step from a given state: y = x W + h0 R + b and
    every gradient is one GEMM of given arrays: only float32 sums differ."""
    B, I, U = shape
    c = make_case("simple_rnn", B, 1, I, U, seed=U)
    k = _core.SimpleRNNKernel(U, activation="linear", bf16=True)
    y, h = k.forward(c["x"], c["W"], c["R"], c["b"], initial_state=c["h0"], training=True)
    dx, dh0, dk, dr, db = k.backward(c["W"], c["R"], doutputs=c["dy"], dfinal_state=c["dh"])
    x, dg = c["x"][:, 0], c["dy"][:, 0] + c["dh"]
    assert err(y[:, 0], bf16(x) @ bf16(c["W"]) + bf16(c["h0"]) @ bf16(c["R"]) + c["b"]) < 1e-5
    assert err(dk, bf16(x).T @ bf16(dg)) < 1e-5
    assert err(dr, bf16(c["h0"]).T @ bf16(dg)) < 1e-5
    assert err(dx[:, 0], bf16(dg) @ bf16(c["W"]).T) < 1e-5
    assert err(dh0, bf16(dg) @ bf16(c["R"]).T) < 1e-5
    assert err(db, dg.astype(np.float64).sum(0)) < 1e-5
    # The float32 kernel differs by bfloat16's rounding.
    k32 = _core.SimpleRNNKernel(U, activation="linear")
    y32, _ = k32.forward(c["x"], c["W"], c["R"], c["b"], initial_state=c["h0"])
    assert 1e-4 < err(y, y32) < 3e-2


# (cell, B, T, I, U): two threads split the batch's rows (small weights,
# B >= 8) or the units in panels of 64 (U = 260, 300: 192 + 68, 128 + 172
# units, a partial panel); odd sizes pad pairs (T*B odd, I odd, U odd).
# U up to 64 runs every gate in one product (W1's first layer: I = 1, U = 20).
SEQ_CASES = [("lstm", 8, 6, 24, 150), ("lstm", 3, 5, 7, 33), ("lstm", 4, 3, 64, 260),
             ("gru", 8, 6, 24, 150), ("gru", 5, 3, 9, 21), ("gru", 4, 3, 64, 300),
             ("simple_rnn", 6, 7, 40, 200), ("lstm", 32, 5, 1, 20), ("gru", 16, 4, 20, 63),
             ("simple_rnn", 10, 4, 3, 40), ("lstm", 16, 5, 24, 64)]


# Cases whose products have whole AMX tiles (B >= 16 rows, I and U >= 32):
# T*B = 640 rows take the weight gradients' K past one 256-pair slice; B = 37
# and U = 83 leave rows and columns to VDPBF16PS.
AMX_CASES = [("lstm", 32, 6, 64, 96), ("gru", 37, 5, 50, 83), ("simple_rnn", 16, 40, 600, 70),
             ("lstm", 48, 4, 128, 160)]


@needs_bf16
@pytest.mark.parametrize("amx_path", AMX_PATHS, indirect=True)
@pytest.mark.parametrize("case", SEQ_CASES + AMX_CASES, ids=lambda c: "-".join(map(str, c)))
def test_bf16_kernels_match_rounded_reference(case, amx_path):
    cell, B, T, I, U = case
    c = make_case(cell, B, T, I, U, seed=B * T + U)
    y, g = run_kernel(cell, c, True)
    y_ref, g_ref = reference(cell, c["x"], c["W"], c["R"], c["b"], c["h0"], c["c0"], y, c["dy"],
                             c["dh"], c["dc"])
    assert err(y, y_ref) < 2e-5
    y32, g32 = run_kernel(cell, c, False)
    assert err(y32, y_ref) > 10 * err(y, y_ref)  # the reference's rounding is the kernel's
    assert err(y, y32) < 3e-2
    for key, want in g_ref.items():
        assert err(g[key], want) < 1e-3, key
        assert err(g[key], g32[key]) < 5e-2, key
    for key in ("dkernel", "drecurrent_kernel"):
        assert err(g32[key], g_ref[key]) > 3 * err(g[key], g_ref[key]), key


@needs_bf16
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", [("lstm", 1, 12, 24, 150), ("gru", 1, 12, 9, 130),
                                  ("simple_rnn", 1, 12, 40, 200), ("lstm", 1, 3, 7, 70)],
                         ids=lambda c: "-".join(map(str, c)))
def test_bf16_one_row_inference_matches_rounded_reference(case, threads):
    """A one-row inference forward (batch-1 serving) in bf16, whose input
    projection runs step by step (float32 one-row forwards project before the
    loop), against the bf16-rounded reference."""
    import rnnfast

    cell, B, T, I, U = case
    c = make_case(cell, B, T, I, U, seed=T + U)
    before = rnnfast.get_num_threads()
    rnnfast.set_num_threads(threads)
    try:
        if cell == "lstm":
            k, init = _core.LSTMKernel(U, bf16=True), (c["h0"], c["c0"])
        elif cell == "gru":
            k, init = _core.GRUKernel(U, bf16=True), c["h0"]
        else:
            k, init = _core.SimpleRNNKernel(U, bf16=True), c["h0"]
        y, _ = k.forward(c["x"], c["W"], c["R"], c["b"], initial_state=init, training=False)
    finally:
        rnnfast.set_num_threads(before)
    y_ref, _ = reference(cell, c["x"], c["W"], c["R"], c["b"], c["h0"], c["c0"], y, c["dy"],
                         c["dh"], c["dc"])
    assert err(y, y_ref) < 2e-5


@needs_bf16
@pytest.mark.parametrize("U", [96, 20, 64])
@pytest.mark.parametrize("cell,opts", [
    ("lstm", dict(mask=True, go_backwards=True)),
    ("lstm", dict(dropout=4, recurrent_dropout=4)),   # per-gate masks: projection before the loop
    ("gru", dict(dropout=1, recurrent_dropout=1, reset_after=False)),
    ("gru", dict(recurrent_dropout=3, reset_after=True, inference=True)),
    ("simple_rnn", dict(mask=True, return_sequences=False)),
])
def test_bf16_kernel_options_close_to_float32(cell, opts, U):
    """Masks, dropout masks, go_backwards, reset_before, inference: the bf16
    path stays within bfloat16's rounding of the float32 kernel (U = 20, 64:
    the gates' joint products, where the sources allow; at 64 per-gate
    recurrent masks read the input side's pack of dG at a panel offset)."""
    B, T, I = 9, 7, 20
    G = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    W = (rng.uniform(-1, 1, (I, G * U)) * np.sqrt(3 / I)).astype(np.float32)
    R = (rng.uniform(-1, 1, (U, G * U)) * np.sqrt(1.5 / U)).astype(np.float32)
    reset_after = opts.get("reset_after", True)
    b = rng.uniform(-0.5, 0.5, (2, G * U) if cell == "gru" and reset_after else G * U).astype(np.float32)
    mask = rng.random((B, T)) > 0.3 if opts.get("mask") else None

    def drop(n, width):
        if not n:
            return None
        m = ((rng.random((n, B, width)) > 0.3) / 0.7).astype(np.float32)
        return m if n > 1 else m[0]

    din, drec = drop(opts.get("dropout", 0), I), drop(opts.get("recurrent_dropout", 0), U)
    seqs, training = opts.get("return_sequences", True), not opts.get("inference", False)
    dy = rng.standard_normal((B, T, U)).astype(np.float32) if seqs else None
    dh = rng.standard_normal((B, U)).astype(np.float32)
    out = {}
    for on in (False, True):
        kw = dict(bf16=on, go_backwards=opts.get("go_backwards", False))
        if cell == "lstm":
            k = _core.LSTMKernel(U, **kw)
        elif cell == "gru":
            k = _core.GRUKernel(U, reset_after=reset_after, **kw)
        else:
            k = _core.SimpleRNNKernel(U, **kw)
        y, final = k.forward(x, W, R, b, mask=mask, input_dropout_mask=din,
                             recurrent_dropout_mask=drec, training=training,
                             return_sequences=seqs)
        h = final[0] if cell == "lstm" else final
        res = {"y": y, "h": h}
        if training:
            dfinal = (dh, np.zeros_like(dh)) if cell == "lstm" else dh
            dx, _, dk, dr, db = k.backward(W, R, doutputs=dy, dfinal_state=dfinal)
            res.update(dx=dx, dk=dk, dr=dr, db=db)
        out[on] = res
    for key, want in out[False].items():
        if want is None:
            continue
        e = err(out[True][key], want)
        assert 0 < e < (3e-2 if key in ("y", "h") else 5e-2), (key, e)


@needs_bf16
def test_mixed_layer_trains_on_bf16_kernels():
    """A mixed_bfloat16 LSTM layer's forward equals the bf16 kernel's, and
    differs from the float32 layer's by bfloat16 rounding."""
    x = np.random.default_rng(0).standard_normal((4, 6, 10)).astype(np.float32)
    mixed = rnnfast.layers.LSTM(70, dtype="mixed_bfloat16", return_sequences=True)
    plain = rnnfast.layers.LSTM(70, return_sequences=True)
    ym = mixed(x)
    plain.build(x.shape)
    plain.set_weights(mixed.get_weights())
    y32 = plain(x)
    assert ym.dtype == np.float32  # outputs stay float32 (Keras would give bfloat16)
    k = _core.LSTMKernel(70, bf16=True)
    want, _ = k.forward(x, *[w for w in mixed.get_weights()])
    np.testing.assert_array_equal(ym, want)
    assert 0 < err(ym, y32) < 3e-2


# ---- the fallback --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_switched_off_runs_float32_kernels(cell):
    c = make_case(cell, 5, 4, 12, 80, seed=5)
    mp.set_bf16_enabled(False)
    assert mp.bf16_status()["path"] == "float32"
    y, g = run_kernel(cell, c, True)
    y32, g32 = run_kernel(cell, c, False)
    np.testing.assert_array_equal(y, y32)
    for key in g32:
        np.testing.assert_array_equal(g[key], g32[key], err_msg=key)
    mp.set_bf16_enabled(True)
    if BF16["supported"]:
        y16, _ = run_kernel(cell, c, True)
        assert not np.array_equal(y16, y32)


SUBPROCESS = """
import json, numpy as np, rnnfast
from rnnfast import mixed_precision as mp
layer = rnnfast.layers.GRU(70, dtype="mixed_bfloat16")
plain = rnnfast.layers.GRU(70)
x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
layer.build(x.shape); plain.build(x.shape); plain.set_weights(layer.get_weights())
print(json.dumps({"status": mp.bf16_status(), "isa": rnnfast.build_info()["isa_level"],
                  "same": bool(np.array_equal(layer(x), plain(x)))}))
"""


def _run(env_extra):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([sys.executable, "-c", SUBPROCESS], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_environment_variable_switches_bf16_off():
    res = _run({"RNNFAST_BF16": "0"})
    assert not res["status"]["enabled"] and res["status"]["path"] == "float32"
    assert res["same"]  # the mixed layer ran the float32 kernels


@pytest.mark.parametrize("level", [lv for lv in _loader.supported_levels() if lv != "x86-64-v4"])
def test_variants_without_bf16_code_fall_back(level):
    core = importlib.import_module(f"rnnfast.{_loader.module_name(level)}")
    status = core.bf16_status()
    assert not status["supported"] and "x86-64-v4" in status["reason"]
    c = make_case("lstm", 4, 3, 10, 70, seed=1)
    y, g = run_kernel("lstm", c, True, core=core)
    y32, g32 = run_kernel("lstm", c, False, core=core)
    np.testing.assert_array_equal(y, y32)
    np.testing.assert_array_equal(g["dkernel"], g32["dkernel"])
    res = _run({"RNNFAST_ISA": level})
    assert res["isa"] == level and res["status"]["path"] == "float32" and res["same"]


@needs_bf16
@pytest.mark.skipif("x86-64-v4" not in _loader.supported_levels(), reason="no x86-64-v4 build")
def test_v4_variant_has_bf16():
    core = importlib.import_module(f"rnnfast.{_loader.module_name('x86-64-v4')}")
    assert core.bf16_status()["supported"]


# ---- training --------------------------------------------------------------------------------


def _train_demo(policy, epochs=20, n_train=3000):
    import rnnfast as keras
    from rnnfast.demo import generate_time_series

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(42)
    series = generate_time_series(n_train + 1000, 51, np.random.default_rng(42))
    x, y = series[:n_train, :50], series[:n_train, -1]
    model = keras.models.Sequential([
        keras.layers.LSTM(20, return_sequences=True, input_shape=[None, 1]),
        keras.layers.LSTM(20),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer="adam")
    hist = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    keras.mixed_precision.set_global_policy(None)
    val = float(model.evaluate(series[n_train:, :50], series[n_train:, -1], verbose=0))
    return hist.history["loss"], val, model


@needs_bf16
def test_demo_lstm_loss_within_2_percent_of_float32():
    loss32, val32, _ = _train_demo("float32")
    loss16, val16, model = _train_demo("mixed_bfloat16")
    assert model.layers[0].cell.make_kernel(False).bf16
    assert loss16[-1] < 0.1 * loss16[0]  # it learned
    assert abs(loss16[-1] - loss32[-1]) <= 0.02 * loss32[-1], (loss16[-1], loss32[-1])
    assert abs(val16 - val32) <= 0.02 * val32, (val16, val32)
    assert loss16 != loss32  # the bf16 GEMMs ran


# ---- AMX tile state across Python threads and fork ---------------------------------------------

needs_amx = pytest.mark.skipif(not BF16.get("amx_supported"),
                               reason=f"no AMX here: {BF16.get('amx_reason')}")
AMX_CASE = ("lstm", 32, 6, 64, 96)


def _amx_result():
    y, g = run_kernel(AMX_CASE[0], make_case(*AMX_CASE, seed=3), True)
    return np.concatenate([y.ravel(), g["dkernel"].ravel(), g["drecurrent_kernel"].ravel()])


@needs_amx
def test_amx_runs_in_concurrent_python_threads():
    """Tile configuration is per OS thread: two Python threads running AMX
    products at once each get the single-threaded result, bit for bit."""
    import threading

    saved = _core.get_num_threads()
    _core.set_num_threads(1)
    try:
        want = _amx_result()
        mp.set_amx_enabled(False)
        assert not np.array_equal(_amx_result(), want)  # AMX, not VDPBF16PS, gave `want`
        mp.set_amx_enabled(True)
        got, errors = [], []

        def work():
            try:
                for _ in range(5):
                    got.append(_amx_result())
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        assert not errors and len(got) == 10
        for r in got:
            np.testing.assert_array_equal(r, want)
    finally:
        _core.set_num_threads(saved)


def _amx_child(q):
    _core.set_num_threads(1)
    q.put((mp.bf16_status()["path"], _amx_result()))


@needs_amx
def test_amx_runs_in_a_forked_child():
    """Linux grants the tile state per process; a child forked after the
    parent ran AMX inherits the grant and computes the same numbers."""
    import multiprocessing
    import warnings

    saved = _core.get_num_threads()
    _core.set_num_threads(1)
    try:
        want = _amx_result()
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        with warnings.catch_warnings():
            # Python >= 3.12 and JAX (when another test imported it) warn
            # about fork() in a threaded process; the child touches neither.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            p = ctx.Process(target=_amx_child, args=(q,))
            p.start()
        path, got = q.get(timeout=120)
        p.join(timeout=60)
        assert p.exitcode == 0
        assert path == "amx_bf16"
        np.testing.assert_array_equal(got, want)
    finally:
        _core.set_num_threads(saved)


@pytest.mark.parametrize("amx_path", AMX_PATHS, indirect=True)
def test_gemm_gflops_times_the_bf16_gemm(amx_path):
    if not BF16["supported"]:
        with pytest.raises(ValueError, match="bf16=True"):
            _core.gemm_gflops(64, 64, 64, bf16=True)
        return
    assert _core.gemm_gflops(96, 200, 130, threads=2, repeats=1, bf16=True) > 0
    mp.set_bf16_enabled(False)
    with pytest.raises(ValueError, match="bf16=True.*switched off"):
        _core.gemm_gflops(64, 64, 64, bf16=True)
    with pytest.raises(ValueError, match="must be positive"):
        _core.gemm_gflops(0, 64, 64, bf16=True)
