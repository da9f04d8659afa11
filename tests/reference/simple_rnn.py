"""Reference SimpleRNN (Keras 3 semantics): forward and hand-written BPTT.

    h_s = act(x_s @ W + b + (h_{s-1} * md) @ R)

x_s is the step input times the input-dropout mask; md is the
recurrent-dropout mask (or 1). Masked steps carry h forward unchanged.
"""

import numpy as np

from ._common import (check_shape, f64, gate_masks, grad_or_zeros,
                      initial_state, sequence_mask, step_time)
from .activations import activation as _act, activation_grad as _act_grad


def simple_rnn_forward(x, kernel, recurrent_kernel, bias=None, h0=None,
                       mask=None, go_backwards=False, activation="tanh",
                       input_dropout=None, recurrent_dropout=None):
    """Returns (y [B,T,U] in processing order, h_last [B,U], cache)."""
    x = f64(x)
    B, T, I = x.shape
    W = f64(kernel)
    R = f64(recurrent_kernel)
    U = R.shape[0]
    check_shape(W, (I, U), "kernel")
    check_shape(R, (U, U), "recurrent_kernel")
    b = None if bias is None else f64(bias)
    if b is not None:
        check_shape(b, (U,), "bias")
    h = initial_state(h0, B, U, "h0")
    keep_all = sequence_mask(mask, B, T)
    # G = 1: a [1, B, I] "per-gate" mask is accepted as well as [B, I].
    (m_in,) = gate_masks(input_dropout, 1, B, I, "input_dropout")
    (m_rec,) = gate_masks(recurrent_dropout, 1, B, U, "recurrent_dropout")

    y = np.zeros((B, T, U))
    steps = []
    preacts = []
    for s in range(T):
        t = step_time(s, T, go_backwards)
        xs = x[:, t] * m_in
        hm = h * m_rec  # dropped-out state is used only in the matmul
        a = xs @ W + hm @ R
        if b is not None:
            a = a + b
        h_new = _act(activation, a)
        keep = keep_all[:, t][:, None]
        # Masked rows keep the previous state; their output is that state too.
        h = np.where(keep, h_new, h)
        y[:, s] = h
        steps.append(dict(t=t, keep=keep, xs=xs, hm=hm, a=a, h_new=h_new))
        preacts.append((activation, a))

    cache = dict(cell="simple_rnn", shape=(B, T, I, U), W=W, R=R,
                 has_bias=b is not None, activation=activation,
                 go_backwards=go_backwards, m_in=m_in, m_rec=m_rec,
                 steps=steps, preactivations=preacts)
    return y, h.copy(), cache


def simple_rnn_backward(cache, dy, dh_last):
    """BPTT. Returns dict(dx, dh0, dkernel, drecurrent_kernel, dbias)."""
    B, T, I, U = cache["shape"]
    W, R = cache["W"], cache["R"]
    m_in, m_rec = cache["m_in"], cache["m_rec"]
    act = cache["activation"]
    dy = grad_or_zeros(dy, (B, T, U))
    dh = grad_or_zeros(dh_last, (B, U))  # gradient w.r.t. the running state

    dx = np.zeros((B, T, I))
    dW = np.zeros_like(W)
    dR = np.zeros_like(R)
    db = np.zeros(U)
    for s in reversed(range(T)):
        st = cache["steps"][s]
        # y[:, s] IS the state after step s, so its gradient adds directly.
        dh = dh + dy[:, s]
        keep = st["keep"]
        dh_new = np.where(keep, dh, 0.0)    # reaches the freshly computed state
        dh_carry = np.where(keep, 0.0, dh)  # masked rows: state was copied
        da = dh_new * _act_grad(act, st["a"], st["h_new"])
        dW += st["xs"].T @ da
        dR += st["hm"].T @ da
        db += da.sum(axis=0)
        # dx is stored in original time order (t), not processing order (s).
        dx[:, st["t"]] = (da @ W.T) * m_in
        dh = dh_carry + (da @ R.T) * m_rec
    return dict(dx=dx, dh0=dh, dkernel=dW, drecurrent_kernel=dR,
                dbias=db if cache["has_bias"] else None)
