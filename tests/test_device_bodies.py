"""The CUDA kernels' per-element bodies (src/cuda/device_cells.h), run on the
host over the device kernels' (row, unit) grid through
rnnfast._core.device_bodies, inside the step loop the CUDA code runs (input
projection for all steps, per step a recurrent product then the pointwise
body; backward per step the pointwise body, then dh_prev = dgates @ R^T +
the carried part, weight gradients summed). Checked against the NumPy
references on every machine, GPU or not."""

import numpy as np
import pytest

from rnnfast import _core
from reference.gru import gru_backward, gru_forward
from reference.lstm import lstm_backward, lstm_forward
from reference.simple_rnn import simple_rnn_backward, simple_rnn_forward

dev = _core.device_bodies
B, T, I, U = 3, 5, 4, 6


def problem(G, seed, bias_shape=None, masked=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I))
    W = rng.standard_normal((I, G * U)) * 0.5
    R = rng.standard_normal((U, G * U)) * 0.5
    b = rng.standard_normal(bias_shape or (G * U,)) * 0.5
    h0 = rng.standard_normal((B, U)) * 0.5
    mask = (rng.random((B, T)) > 0.3).astype(np.uint8) if masked else None
    dy = rng.standard_normal((B, T, U))
    dh_last = rng.standard_normal((B, U))
    return x, W, R, b, h0, mask, dy, dh_last


def step_mask(mask, t):
    return None if mask is None else mask[:, t]


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("masked", [False, True])
def test_simple_rnn_bodies(act, masked):
    x, W, R, b, h0, mask, dy, dh_last = problem(1, 0, masked=masked)
    xp = x @ W + b  # [B, T, U]: the input projection of all steps, one GEMM
    h, cache, ys = h0, [], []
    for t in range(T):
        g, h_new = dev.simple_rnn_forward(xp[:, t] + h @ R, h, step_mask(mask, t), act)
        cache.append((g, h))
        h = h_new
        ys.append(h)
    y_ref, h_ref, c = simple_rnn_forward(x, W, R, b, h0=h0, mask=mask, activation=act)
    np.testing.assert_allclose(np.stack(ys, 1), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-12)
    ref = simple_rnn_backward(c, dy, dh_last)
    dh, dW, dR, db, dx = dh_last.copy(), np.zeros_like(W), np.zeros_like(R), np.zeros_like(b), np.zeros_like(x)
    for t in reversed(range(T)):
        g, h_prev = cache[t]
        dg, carry = dev.simple_rnn_backward(g, dh + dy[:, t], step_mask(mask, t), act)
        dW += x[:, t].T @ dg
        dR += h_prev.T @ dg
        db += dg.sum(0)
        dx[:, t] = dg @ W.T
        dh = dg @ R.T + carry
    for got, key in ((dx, "dx"), (dh, "dh0"), (dW, "dkernel"), (dR, "drecurrent_kernel"), (db, "dbias")):
        np.testing.assert_allclose(got, ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("masked", [False, True])
def test_lstm_bodies(acts, masked):
    act, rec = acts
    x, W, R, b, h0, mask, dy, dh_last = problem(4, 1, masked=masked)
    c0 = np.random.default_rng(5).standard_normal((B, U)) * 0.5
    xp = x @ W + b
    h, c, cache, ys = h0, c0, [], []
    for t in range(T):
        g, h_new, c_new = dev.lstm_forward(xp[:, t] + h @ R, h, c, step_mask(mask, t), act, rec)
        cache.append((g, h, c, c_new))
        h, c = h_new, c_new
        ys.append(h)
    y_ref, (h_ref, c_ref), cc = lstm_forward(x, W, R, b, h0=h0, c0=c0, mask=mask, activation=act,
                                             recurrent_activation=rec)
    np.testing.assert_allclose(np.stack(ys, 1), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, c_ref, rtol=1e-12, atol=1e-12)
    dc_last = np.random.default_rng(6).standard_normal((B, U))
    ref = lstm_backward(cc, dy, (dh_last, dc_last))
    dh, dc = dh_last.copy(), dc_last.copy()
    dW, dR, db, dx = np.zeros_like(W), np.zeros_like(R), np.zeros_like(b), np.zeros_like(x)
    for t in reversed(range(T)):
        g, h_prev, c_prev, c_t = cache[t]
        dg, dc, carry = dev.lstm_backward(g, c_t, c_prev, dh + dy[:, t], dc, step_mask(mask, t),
                                          act, rec)
        dW += x[:, t].T @ dg
        dR += h_prev.T @ dg
        db += dg.sum(0)
        dx[:, t] = dg @ W.T
        dh = dg @ R.T + carry
    for got, key in ((dx, "dx"), (dh, "dh0"), (dc, "dc0"), (dW, "dkernel"),
                     (dR, "drecurrent_kernel"), (db, "dbias")):
        np.testing.assert_allclose(got, ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("masked", [False, True])
def test_gru_reset_after_bodies(masked):
    x, W, R, b, h0, mask, dy, dh_last = problem(3, 2, bias_shape=(2, 3 * U), masked=masked)
    xp = x @ W + b[0]
    h, cache, ys = h0, [], []
    for t in range(T):
        rg = h @ R + b[1]
        xg, h_new = dev.gru_forward(xp[:, t], rg, h, step_mask(mask, t))
        cache.append((xg, rg, h))
        h = h_new
        ys.append(h)
    y_ref, h_ref, cc = gru_forward(x, W, R, b, h0=h0, mask=mask, reset_after=True)
    np.testing.assert_allclose(np.stack(ys, 1), y_ref, rtol=1e-12, atol=1e-12)
    ref = gru_backward(cc, dy, dh_last)
    dh = dh_last.copy()
    dW, dR, db, dx = np.zeros_like(W), np.zeros_like(R), np.zeros_like(b), np.zeros_like(x)
    for t in reversed(range(T)):
        xg, rg, h_prev = cache[t]
        dxg, drg, carry = dev.gru_backward(xg, rg, h_prev, dh + dy[:, t], step_mask(mask, t))
        dW += x[:, t].T @ dxg
        dR += h_prev.T @ drg
        db[0] += dxg.sum(0)
        db[1] += drg.sum(0)
        dx[:, t] = dxg @ W.T
        dh = drg @ R.T + carry
    for got, key in ((dx, "dx"), (dh, "dh0"), (dW, "dkernel"), (dR, "drecurrent_kernel"), (db, "dbias")):
        np.testing.assert_allclose(got, ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("masked", [False, True])
def test_gru_reset_before_bodies(masked):
    x, W, R, b, h0, mask, dy, dh_last = problem(3, 3, masked=masked)
    xp = x @ W + b
    h, cache, ys = h0, [], []
    for t in range(T):
        xg, rh = dev.gru_before_forward1(xp[:, t], h @ R[:, :2 * U], h)
        xg, h_new = dev.gru_before_forward2(xg, rh @ R[:, 2 * U:], h, step_mask(mask, t))
        cache.append((xg, rh, h))
        h = h_new
        ys.append(h)
    y_ref, h_ref, cc = gru_forward(x, W, R, b, h0=h0, mask=mask, reset_after=False)
    np.testing.assert_allclose(np.stack(ys, 1), y_ref, rtol=1e-12, atol=1e-12)
    ref = gru_backward(cc, dy, dh_last)
    dh = dh_last.copy()
    dW, dR, db, dx = np.zeros_like(W), np.zeros_like(R), np.zeros_like(b), np.zeros_like(x)
    for t in reversed(range(T)):
        xg, rh, h_prev = cache[t]
        m = step_mask(mask, t)
        dg, dhg, carry = dev.gru_before_backward1(xg, h_prev, dh + dy[:, t], m)
        drh = dhg @ R[:, 2 * U:].T
        dg, carry = dev.gru_before_backward2(xg, h_prev, drh, dg, carry, m)
        dW += x[:, t].T @ dg
        dR[:, :2 * U] += h_prev.T @ dg[:, :2 * U]
        dR[:, 2 * U:] += rh.T @ dhg
        db += dg.sum(0)
        dx[:, t] = dg @ W.T
        dh = dg[:, :2 * U] @ R[:, :2 * U].T + carry
    for got, key in ((dx, "dx"), (dh, "dh0"), (dW, "dkernel"), (dR, "drecurrent_kernel"), (db, "dbias")):
        np.testing.assert_allclose(got, ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="h_prev must have shape"):
        dev.lstm_forward(np.zeros((2, 8)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="mask must have shape"):
        dev.simple_rnn_forward(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(3))
