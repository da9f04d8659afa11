"""Self-checks for the NumPy reference cells.

1. Every hand-written backward is compared with central finite differences of
   the same reference forward (float64), for several option combinations.
2. Forwards are compared with golden values from Keras's own test-suite.
"""

import numpy as np
import pytest

from finite_differences import numeric_gradient

from . import (gru_backward, gru_forward, kink_distance, lstm_backward,
               lstm_forward, simple_rnn_backward, simple_rnn_forward)

B, T, I, U = 2, 3, 3, 2
EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-8
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}

# Sequence masks (original time order). MASK_LEAD: row 1 is masked at the
# start (so its state stays h0 for two steps), plus a masked step in row 0.
# MASK_FULL: row 0 is masked at every step (output must equal h0 throughout).
MASK_LEAD = np.array([[True, False, True], [False, False, True]])
MASK_FULL = np.array([[False, False, False], [True, False, True]])


# --------------------------------------------------------------------------
# Finite-difference gradient check
# --------------------------------------------------------------------------

def _dropout(rng, kind, G, n):
    """Inverted-dropout style masks (values 0 or 1/keep), fixed across time."""
    if kind is None:
        return None
    shape = (B, n) if kind == "shared" else (G, B, n)
    keep = 0.7
    return (rng.random(shape) < keep) / keep


def _make_case(cell, seed, bias=True, h0=False, c0=False, mask=None,
               go_backwards=False, input_dropout=None, recurrent_dropout=None,
               reset_after=True, scale=1.0, **acts):
    # scale widens x and the kernel so piecewise activations (hard_sigmoid)
    # also get exercised in their flat, clipped regions.
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    arrays = dict(
        x=scale * rng.normal(size=(B, T, I)),
        kernel=scale * rng.normal(size=(I, G * U)),
        recurrent_kernel=rng.normal(size=(U, G * U)),
        # h0/c0 are always gradient-checked; when the case does not pass them
        # the forward uses zeros, which is what the FD perturbs around.
        h0=rng.normal(size=(B, U)) if h0 else np.zeros((B, U)),
    )
    if cell == "lstm":
        arrays["c0"] = rng.normal(size=(B, U)) if c0 else np.zeros((B, U))
    if bias:
        bshape = (2, G * U) if (cell == "gru" and reset_after) else (G * U,)
        arrays["bias"] = rng.normal(size=bshape)
    opts = dict(mask=mask, go_backwards=go_backwards,
                input_dropout=_dropout(rng, input_dropout, G, I),
                recurrent_dropout=_dropout(rng, recurrent_dropout, G, U),
                **acts)
    if cell == "gru":
        opts["reset_after"] = reset_after
    # Fixed random loss weights: L = sum(wy*y) + sum(wh*h_last) [+ sum(wc*c_last)]
    weights = dict(wy=rng.normal(size=(B, T, U)), wh=rng.normal(size=(B, U)),
                   wc=rng.normal(size=(B, U)))
    passed = {"h0": h0, "c0": c0}
    return arrays, opts, weights, passed


def _forward(cell, arrays, opts, passed=None):
    """Run the forward; states not 'passed' are given as None (-> zeros)."""
    kw = dict(arrays)
    if passed is not None:
        for k in ("h0", "c0"):
            if k in kw and not passed[k]:
                kw[k] = None
    fwd = {"simple_rnn": simple_rnn_forward, "lstm": lstm_forward,
           "gru": gru_forward}[cell]
    return fwd(**kw, **opts)


def _loss(cell, out, weights):
    y, final, _ = out
    if cell == "lstm":
        h, c = final
        return (np.sum(weights["wy"] * y) + np.sum(weights["wh"] * h)
                + np.sum(weights["wc"] * c))
    return np.sum(weights["wy"] * y) + np.sum(weights["wh"] * final)


def _numeric_grad(f, a):
    """Central differences of scalar f() w.r.t. array a (perturbed in place)."""
    return numeric_gradient(f, a, EPS)


GRAD_KEY = {"x": "dx", "kernel": "dkernel",
            "recurrent_kernel": "drecurrent_kernel", "bias": "dbias",
            "h0": "dh0", "c0": "dc0"}

CASES = [
    # --- SimpleRNN ---
    ("simple_rnn", dict(seed=1)),
    ("simple_rnn", dict(seed=2, go_backwards=True, mask=MASK_LEAD, h0=True,
                        activation="relu", input_dropout="shared",
                        recurrent_dropout="shared")),
    ("simple_rnn", dict(seed=3, bias=False, mask=MASK_FULL, h0=True,
                        activation="linear", input_dropout="per_gate",
                        recurrent_dropout="per_gate")),
    ("simple_rnn", dict(seed=4, go_backwards=True, activation="sigmoid",
                        recurrent_dropout="shared")),
    ("simple_rnn", dict(seed=5, mask=MASK_LEAD, activation="hard_sigmoid",
                        h0=True, scale=2.0)),
    # --- LSTM ---
    ("lstm", dict(seed=11)),
    ("lstm", dict(seed=12, go_backwards=True, mask=MASK_LEAD, h0=True, c0=True,
                  recurrent_activation="hard_sigmoid")),
    ("lstm", dict(seed=13, bias=False, mask=MASK_FULL, h0=True,
                  input_dropout="per_gate", recurrent_dropout="per_gate")),
    ("lstm", dict(seed=14, c0=True, activation="linear",
                  input_dropout="shared", recurrent_dropout="shared")),
    ("lstm", dict(seed=15, go_backwards=True, mask=MASK_FULL, h0=True, c0=True,
                  activation="relu", input_dropout="per_gate",
                  recurrent_dropout="shared")),
    # --- GRU ---
    ("gru", dict(seed=21)),
    ("gru", dict(seed=22, reset_after=False)),
    ("gru", dict(seed=23, reset_after=False, go_backwards=True,
                 mask=MASK_LEAD, h0=True, recurrent_dropout="per_gate")),
    ("gru", dict(seed=24, mask=MASK_FULL, h0=True, input_dropout="per_gate",
                 recurrent_dropout="per_gate",
                 recurrent_activation="hard_sigmoid")),
    ("gru", dict(seed=25, reset_after=False, bias=False,
                 input_dropout="shared", recurrent_dropout="shared",
                 activation="relu")),
    ("gru", dict(seed=26, bias=False, go_backwards=True, activation="linear",
                 input_dropout="shared", recurrent_dropout="per_gate")),
    ("gru", dict(seed=27, reset_after=False, mask=MASK_FULL, h0=True,
                 input_dropout="per_gate", recurrent_dropout="per_gate",
                 recurrent_activation="hard_sigmoid", activation="relu")),
]


def _case_id(case):
    cell, kw = case
    return cell + "-" + "-".join(f"{k}={v if not isinstance(v, np.ndarray) else 'mask'}"
                                 for k, v in kw.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_backward_matches_finite_differences(case):
    cell, kw = case
    arrays, opts, weights, passed = _make_case(cell, **kw)

    out = _forward(cell, arrays, opts, passed)
    y, final, cache = out
    h_last = final[0] if cell == "lstm" else final
    np.testing.assert_array_equal(h_last, y[:, -1])
    # Passing zeros explicitly must be identical to passing None.
    np.testing.assert_array_equal(_forward(cell, arrays, opts)[0], y)
    for a in y, h_last:
        assert a.dtype == np.float64

    # Never take finite differences across a relu / hard_sigmoid kink.
    for name, pre in cache["preactivations"]:
        assert kink_distance(name, pre) > 1e-4, (name, kink_distance(name, pre))

    if cell == "lstm":
        grads = lstm_backward(cache, weights["wy"], (weights["wh"], weights["wc"]))
    elif cell == "gru":
        grads = gru_backward(cache, weights["wy"], weights["wh"])
    else:
        grads = simple_rnn_backward(cache, weights["wy"], weights["wh"])

    expected_keys = {"dx", "dh0", "dkernel", "drecurrent_kernel", "dbias"}
    if cell == "lstm":
        expected_keys.add("dc0")
    assert set(grads) == expected_keys
    if "bias" not in arrays:
        assert grads["dbias"] is None

    def f():
        return _loss(cell, _forward(cell, arrays, opts), weights)

    for name, a in arrays.items():
        num = _numeric_grad(f, a)
        ana = grads[GRAD_KEY[name]]
        assert ana.shape == a.shape and ana.dtype == np.float64, name
        np.testing.assert_allclose(ana, num, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{cell} {GRAD_KEY[name]}")


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_backward_none_means_zero(cell):
    arrays, opts, weights, passed = _make_case(cell, seed=7, mask=MASK_LEAD)
    cache = _forward(cell, arrays, opts, passed)[2]
    zeros_y, zeros_h = np.zeros((B, T, U)), np.zeros((B, U))
    bwd = {"simple_rnn": simple_rnn_backward, "lstm": lstm_backward,
           "gru": gru_backward}[cell]
    if cell == "lstm":
        pairs = [((None, (weights["wh"], None)),
                  (zeros_y, (weights["wh"], zeros_h))),
                 ((weights["wy"], None), (weights["wy"], (zeros_h, zeros_h))),
                 ((None, (None, weights["wc"])),
                  (zeros_y, (zeros_h, weights["wc"])))]
    else:
        pairs = [((None, weights["wh"]), (zeros_y, weights["wh"])),
                 ((weights["wy"], None), (weights["wy"], zeros_h))]
    for got_args, ref_args in pairs:
        got, ref = bwd(cache, *got_args), bwd(cache, *ref_args)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_masked_row_outputs_carried_state(cell):
    # Row 0 of MASK_FULL is masked everywhere: every output is h0.
    arrays, opts, _, passed = _make_case(cell, seed=8, h0=True, c0=True,
                                         mask=MASK_FULL)
    y, final, _ = _forward(cell, arrays, opts, passed)
    for s in range(T):
        np.testing.assert_array_equal(y[0, s], arrays["h0"][0])
    if cell == "lstm":
        np.testing.assert_array_equal(final[1][0], arrays["c0"][0])


# --------------------------------------------------------------------------
# Golden values from Keras's test-suite (constant initialisers: kernel 0.01,
# recurrent kernel 0.02, bias 0.03; float32 inputs). Values are y[:, -1]
# unless a full sequence is listed.
# --------------------------------------------------------------------------

GOLD_ATOL = 1e-5


def _const_weights(I_, U_, G):
    return np.full((I_, G * U_), 0.01), np.full((U_, G * U_), 0.02)


def _lstm_bias(U_, unit_forget_bias=True):
    f = 1.0 if unit_forget_bias else 0.03
    return np.concatenate([np.full(U_, 0.03), np.full(U_, f),
                           np.full(2 * U_, 0.03)])


def _rows(values, U_):
    return np.repeat(np.asarray(values, dtype=np.float64)[:, None], U_, axis=1)


X72 = np.arange(72, dtype=np.float32).reshape(3, 6, 4)
X24a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
X24b = np.arange(24, dtype=np.float32).reshape(2, 4, 3)


@pytest.mark.parametrize("kw,expected", [
    (dict(bias="ufb"), [0.6288687, 0.86899155, 0.9460773]),
    (dict(bias="ufb", go_backwards=True), [0.35622165, 0.74789524, 0.8872726]),
    (dict(bias="const"), [0.57019705, 0.8661914, 0.9459622]),
    (dict(bias=None), [0.54986924, 0.86226785, 0.9443936]),
])
def test_golden_lstm(kw, expected):
    W, R = _const_weights(4, 3, 4)
    bias = {"ufb": _lstm_bias(3), "const": _lstm_bias(3, False), None: None}[kw["bias"]]
    y, _, _ = lstm_forward(X72, W, R, bias=bias,
                           go_backwards=kw.get("go_backwards", False))
    np.testing.assert_allclose(y[:, -1], _rows(expected, 3), atol=GOLD_ATOL, rtol=0)


@pytest.mark.parametrize("kw,expected", [
    (dict(), [0.5217289, 0.6371659, 0.39384964]),
    (dict(go_backwards=True), [0.24406259, 0.611516, 0.3928808]),
    (dict(reset_after=False), [0.51447755, 0.6426879, 0.40208298]),
    (dict(no_bias=True), [0.49988455, 0.64701194, 0.4103359]),
])
def test_golden_gru(kw, expected):
    W, R = _const_weights(4, 3, 3)
    reset_after = kw.get("reset_after", True)
    bias = np.full((2, 9) if reset_after else (9,), 0.03)
    if kw.get("no_bias"):
        bias = None
    y, _, _ = gru_forward(X72, W, R, bias=bias, reset_after=reset_after,
                          go_backwards=kw.get("go_backwards", False))
    np.testing.assert_allclose(y[:, -1], _rows(expected, 3), atol=GOLD_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards,expected", [
    (False, [0.405432, 0.73605347]),
    (True, [0.11144729, 0.5528889]),
])
def test_golden_simple_rnn(go_backwards, expected):
    W, R = _const_weights(4, 4, 1)
    y, _, _ = simple_rnn_forward(X24a, W, R, bias=np.full(4, 0.03),
                                 go_backwards=go_backwards)
    np.testing.assert_allclose(y[:, -1], _rows(expected, 4), atol=GOLD_ATOL, rtol=0)


def test_golden_lstm_masking():
    W, R = _const_weights(3, 2, 4)
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    y, _, _ = lstm_forward(X24b, W, R, bias=_lstm_bias(2), mask=mask)
    expected = np.stack([_rows([0.0158891, 0.05552048, 0.11755939, 0.11755939], 2),
                         _rows([0.14185596, 0.28556206, 0.28556206, 0.28556206], 2)])
    np.testing.assert_allclose(y, expected, atol=GOLD_ATOL, rtol=0)

    mask_b = np.array([[False, True, True, True], [False, False, True, True]])
    y, _, _ = lstm_forward(X24b, W, R, bias=_lstm_bias(2), mask=mask_b,
                           go_backwards=True)
    np.testing.assert_allclose(y[:, -1], _rows([0.15341201, 0.3844719], 2),
                               atol=GOLD_ATOL, rtol=0)


def test_golden_gru_masking():
    W, R = _const_weights(3, 2, 3)
    bias = np.full((2, 6), 0.03)
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    y, _, _ = gru_forward(X24b, W, R, bias=bias, mask=mask)
    expected = np.stack([_rows([0.03606692, 0.09497581, 0.09497581, 0.19393763], 2),
                         _rows([0.16051409] * 3 + [0.30818558], 2)])
    np.testing.assert_allclose(y, expected, atol=GOLD_ATOL, rtol=0)

    y, _, _ = gru_forward(X24b, W, R, bias=bias, mask=mask, go_backwards=True)
    np.testing.assert_allclose(y[:, -1], _rows([0.11669192, 0.28380975], 2),
                               atol=GOLD_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards,expected", [
    (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
    (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]]),
])
def test_golden_gru_initial_state(go_backwards, expected):
    W, R = _const_weights(3, 2, 3)
    h0 = np.arange(4, dtype=np.float32).reshape(2, 2)
    y, _, _ = gru_forward(X24b, W, R, bias=np.full((2, 6), 0.03), h0=h0,
                          go_backwards=go_backwards)
    np.testing.assert_allclose(y[:, -1], expected, atol=GOLD_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards,expected", [
    (False, [0.33621645, 0.6262637]),
    (True, [0.07344437, 0.43043602]),
])
def test_golden_simple_rnn_initial_state(go_backwards, expected):
    W, R = _const_weights(3, 4, 1)
    h0 = np.arange(8, dtype=np.float32).reshape(2, 4)
    y, _, _ = simple_rnn_forward(X24b, W, R, bias=np.full(4, 0.03), h0=h0,
                                 go_backwards=go_backwards)
    np.testing.assert_allclose(y[:, -1], _rows(expected, 4), atol=GOLD_ATOL, rtol=0)


def test_golden_simple_rnn_masking():
    W, R = _const_weights(3, 2, 1)
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    y, _, _ = simple_rnn_forward(X24b, W, R, bias=np.full(2, 0.03), mask=mask)
    expected = np.stack([_rows([0.0599281, 0.15122814, 0.15122814, 0.32394567], 2),
                         _rows([0.3969304] * 3 + [0.608085], 2)])
    np.testing.assert_allclose(y, expected, atol=GOLD_ATOL, rtol=0)


@pytest.mark.parametrize("go_backwards,expected", [
    (False, [[0.20574439, 0.3558822], [0.64930826, 0.66276]]),
    (True, [[0.13281618, 0.2790356], [0.5839337, 0.5992567]]),
])
def test_golden_lstm_initial_state(go_backwards, expected):
    W, R = _const_weights(3, 2, 4)
    s0 = np.arange(4, dtype=np.float32).reshape(2, 2)
    y, _, _ = lstm_forward(X24b, W, R, bias=_lstm_bias(2), h0=s0, c0=s0,
                           go_backwards=go_backwards)
    np.testing.assert_allclose(y[:, -1], expected, atol=GOLD_ATOL, rtol=0)
