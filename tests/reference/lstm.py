"""Reference LSTM (Keras 3 formulation): forward and hand-written BPTT.

Gate blocks in order i, f, c, o (block g = columns g*U:(g+1)*U).
    z_g = (x_s * m_in_g) @ W_g + b_g + (h_{s-1} * m_rec_g) @ R_g
    i = ract(z_i), f = ract(z_f), cc = act(z_c), o = ract(z_o)
    c_s = f * c_{s-1} + i * cc
    h_s = o * act(c_s)
Masked steps carry both h and c forward unchanged.
"""

import numpy as np

from ._common import (check_shape, f64, gate_masks, grad_or_zeros,
                      initial_state, sequence_mask, step_time)
from .activations import activation as _act, activation_grad as _act_grad

G = 4


def _blk(g, U):
    return slice(g * U, (g + 1) * U)


def lstm_forward(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None,
                 mask=None, go_backwards=False, activation="tanh",
                 recurrent_activation="sigmoid", input_dropout=None,
                 recurrent_dropout=None):
    """Returns (y [B,T,U] in processing order, (h_last, c_last), cache)."""
    x = f64(x)
    B, T, I = x.shape
    W = f64(kernel)
    R = f64(recurrent_kernel)
    U = R.shape[0]
    check_shape(W, (I, G * U), "kernel")
    check_shape(R, (U, G * U), "recurrent_kernel")
    b = None if bias is None else f64(bias)
    if b is not None:
        check_shape(b, (G * U,), "bias")
    h = initial_state(h0, B, U, "h0")
    c = initial_state(c0, B, U, "c0")
    keep_all = sequence_mask(mask, B, T)
    m_in = gate_masks(input_dropout, G, B, I, "input_dropout")
    m_rec = gate_masks(recurrent_dropout, G, B, U, "recurrent_dropout")
    gate_acts = (recurrent_activation, recurrent_activation, activation,
                 recurrent_activation)

    y = np.zeros((B, T, U))
    steps = []
    preacts = []
    for s in range(T):
        t = step_time(s, T, go_backwards)
        xs = [x[:, t] * m_in[g] for g in range(G)]
        hm = [h * m_rec[g] for g in range(G)]  # only feeds the matmuls
        z = []
        for g in range(G):
            zg = xs[g] @ W[:, _blk(g, U)] + hm[g] @ R[:, _blk(g, U)]
            if b is not None:
                zg = zg + b[_blk(g, U)]
            z.append(zg)
        gates = [_act(gate_acts[g], z[g]) for g in range(G)]
        i, f, cc, o = gates
        c_new = f * c + i * cc
        tc = _act(activation, c_new)
        h_new = o * tc
        keep = keep_all[:, t][:, None]
        steps.append(dict(t=t, keep=keep, xs=xs, hm=hm, z=z, gates=gates,
                          h_prev=h, c_prev=c, c_new=c_new, tc=tc))
        preacts += [(gate_acts[g], z[g]) for g in range(G)]
        preacts.append((activation, c_new))
        h = np.where(keep, h_new, h)
        c = np.where(keep, c_new, c)
        y[:, s] = h

    cache = dict(cell="lstm", shape=(B, T, I, U), W=W, R=R,
                 has_bias=b is not None, activation=activation,
                 recurrent_activation=recurrent_activation,
                 gate_acts=gate_acts, go_backwards=go_backwards,
                 m_in=m_in, m_rec=m_rec, steps=steps, preactivations=preacts)
    return y, (h.copy(), c.copy()), cache


def lstm_backward(cache, dy, dfinal):
    """BPTT. dfinal = (dh_last, dc_last) or None; elements may be None.
    Returns dict(dx, dh0, dc0, dkernel, drecurrent_kernel, dbias)."""
    B, T, I, U = cache["shape"]
    W, R = cache["W"], cache["R"]
    m_in, m_rec = cache["m_in"], cache["m_rec"]
    act = cache["activation"]
    gate_acts = cache["gate_acts"]
    dh_last, dc_last = (None, None) if dfinal is None else dfinal
    dy = grad_or_zeros(dy, (B, T, U))
    dh = grad_or_zeros(dh_last, (B, U))
    dc = grad_or_zeros(dc_last, (B, U))

    dx = np.zeros((B, T, I))
    dW = np.zeros_like(W)
    dR = np.zeros_like(R)
    db = np.zeros(G * U)
    for s in reversed(range(T)):
        st = cache["steps"][s]
        dh = dh + dy[:, s]  # y[:, s] is the state after step s
        keep = st["keep"]
        dh_new, dc_new = np.where(keep, dh, 0.0), np.where(keep, dc, 0.0)
        # Masked rows copied (h, c): their gradient passes straight through.
        dh_carry, dc_carry = np.where(keep, 0.0, dh), np.where(keep, 0.0, dc)

        i, f, cc, o = st["gates"]
        # h = o * act(c): c receives gradient from h as well as from the future.
        do = dh_new * st["tc"]
        dct = dc_new + dh_new * o * _act_grad(act, st["c_new"], st["tc"])
        di = dct * cc
        df = dct * st["c_prev"]
        dcc = dct * i
        dgates = (di, df, dcc, do)
        dz = [dgates[g] * _act_grad(gate_acts[g], st["z"][g], st["gates"][g])
              for g in range(G)]

        dxt = np.zeros((B, I))
        dhp = np.zeros((B, U))
        for g in range(G):
            sl = _blk(g, U)
            dW[:, sl] += st["xs"][g].T @ dz[g]
            dR[:, sl] += st["hm"][g].T @ dz[g]
            db[sl] += dz[g].sum(axis=0)
            # Chain through each gate's own dropout mask.
            dxt += (dz[g] @ W[:, sl].T) * m_in[g]
            dhp += (dz[g] @ R[:, sl].T) * m_rec[g]
        dx[:, st["t"]] = dxt  # original time order
        dh = dh_carry + dhp
        dc = dc_carry + dct * f
    return dict(dx=dx, dh0=dh, dc0=dc, dkernel=dW, drecurrent_kernel=dR,
                dbias=db if cache["has_bias"] else None)
