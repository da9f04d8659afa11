"""Reference GRU (Keras 3 formulation, both reset_after variants):
forward and hand-written BPTT.

Gate blocks in order z, r, h (block g = columns g*U:(g+1)*U).

reset_after=True (bias [2, 3U]: row 0 input bias, row 1 recurrent bias):
    x_g   = (x_s * m_in_g) @ W_g + b_in_g
    rec_g = (h_{s-1} * m_rec_g) @ R_g + b_rec_g
    z = ract(x_z + rec_z);  r = ract(x_r + rec_r)
    hh = act(x_h + r * rec_h)          # reset applied AFTER the matmul
reset_after=False (bias [3U], input side only):
    z = ract(x_z + (h_{s-1} * m_rec_z) @ R_z)
    r = ract(x_r + (h_{s-1} * m_rec_r) @ R_r)
    hh = act(x_h + (r * (h_{s-1} * m_rec_h)) @ R_h)   # reset BEFORE matmul
both:
    h_s = z * h_{s-1} + (1 - z) * hh   (h_{s-1} unmasked by dropout)
Masked steps carry h forward unchanged.
"""

import numpy as np

from ._common import (check_shape, f64, gate_masks, grad_or_zeros,
                      initial_state, sequence_mask, step_time)
from .activations import activation as _act, activation_grad as _act_grad

G = 3
Z, RG, H = 0, 1, 2  # gate block indices


def _blk(g, U):
    return slice(g * U, (g + 1) * U)


def gru_forward(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None,
                go_backwards=False, activation="tanh",
                recurrent_activation="sigmoid", reset_after=True,
                input_dropout=None, recurrent_dropout=None):
    """Returns (y [B,T,U] in processing order, h_last [B,U], cache)."""
    x = f64(x)
    B, T, I = x.shape
    W = f64(kernel)
    R = f64(recurrent_kernel)
    U = R.shape[0]
    check_shape(W, (I, G * U), "kernel")
    check_shape(R, (U, G * U), "recurrent_kernel")
    b = None if bias is None else f64(bias)
    if b is not None:
        check_shape(b, (2, G * U) if reset_after else (G * U,), "bias")
    # Split the bias into input-side and recurrent-side parts (zeros if absent)
    # so the step code below has a single shape to deal with.
    if b is None:
        b_in, b_rec = np.zeros(G * U), np.zeros(G * U)
    elif reset_after:
        b_in, b_rec = b[0], b[1]
    else:
        b_in, b_rec = b, None
    h = initial_state(h0, B, U, "h0")
    keep_all = sequence_mask(mask, B, T)
    m_in = gate_masks(input_dropout, G, B, I, "input_dropout")
    m_rec = gate_masks(recurrent_dropout, G, B, U, "recurrent_dropout")

    y = np.zeros((B, T, U))
    steps = []
    preacts = []
    for s in range(T):
        t = step_time(s, T, go_backwards)
        xs = [x[:, t] * m_in[g] for g in range(G)]
        hm = [h * m_rec[g] for g in range(G)]  # only feeds the matmuls
        xg = [xs[g] @ W[:, _blk(g, U)] + b_in[_blk(g, U)] for g in range(G)]
        st = dict(t=t, xs=xs, hm=hm, h_prev=h)
        if reset_after:
            rec = [hm[g] @ R[:, _blk(g, U)] + b_rec[_blk(g, U)]
                   for g in range(G)]
            a_z = xg[Z] + rec[Z]
            a_r = xg[RG] + rec[RG]
            zg = _act(recurrent_activation, a_z)
            rg = _act(recurrent_activation, a_r)
            a_h = xg[H] + rg * rec[H]
            st["rec"] = rec
        else:
            a_z = xg[Z] + hm[Z] @ R[:, _blk(Z, U)]
            a_r = xg[RG] + hm[RG] @ R[:, _blk(RG, U)]
            zg = _act(recurrent_activation, a_z)
            rg = _act(recurrent_activation, a_r)
            rh = rg * hm[H]
            a_h = xg[H] + rh @ R[:, _blk(H, U)]
            st["rh"] = rh
        hh = _act(activation, a_h)
        h_new = zg * h + (1.0 - zg) * hh
        keep = keep_all[:, t][:, None]
        st.update(keep=keep, a_z=a_z, a_r=a_r, a_h=a_h, z=zg, r=rg, hh=hh)
        steps.append(st)
        preacts += [(recurrent_activation, a_z), (recurrent_activation, a_r),
                    (activation, a_h)]
        h = np.where(keep, h_new, h)
        y[:, s] = h

    cache = dict(cell="gru", shape=(B, T, I, U), W=W, R=R,
                 has_bias=b is not None, reset_after=reset_after,
                 activation=activation,
                 recurrent_activation=recurrent_activation,
                 go_backwards=go_backwards, m_in=m_in, m_rec=m_rec,
                 steps=steps, preactivations=preacts)
    return y, h.copy(), cache


def gru_backward(cache, dy, dh_last):
    """BPTT. Returns dict(dx, dh0, dkernel, drecurrent_kernel, dbias);
    dbias has the bias's shape ([2, 3U] or [3U]) or is None."""
    B, T, I, U = cache["shape"]
    W, R = cache["W"], cache["R"]
    m_in, m_rec = cache["m_in"], cache["m_rec"]
    act, ract = cache["activation"], cache["recurrent_activation"]
    reset_after = cache["reset_after"]
    dy = grad_or_zeros(dy, (B, T, U))
    dh = grad_or_zeros(dh_last, (B, U))

    dx = np.zeros((B, T, I))
    dW = np.zeros_like(W)
    dR = np.zeros_like(R)
    db_in = np.zeros(G * U)
    db_rec = np.zeros(G * U)
    for s in reversed(range(T)):
        st = cache["steps"][s]
        dh = dh + dy[:, s]  # y[:, s] is the state after step s
        keep = st["keep"]
        dh_new = np.where(keep, dh, 0.0)
        dh_carry = np.where(keep, 0.0, dh)  # masked rows: state was copied

        zg, rg, hh, h_prev = st["z"], st["r"], st["hh"], st["h_prev"]
        # h = z * h_prev + (1 - z) * hh
        dz = dh_new * h_prev - dh_new * hh  # autodiff's order (inf - inf where dh is inf)
        dhh = dh_new * (1.0 - zg)
        dhp = dh_new * zg  # direct (undropped) use of h_prev
        da_h = dhh * _act_grad(act, st["a_h"], hh)

        # dxg[g]: gradient w.r.t. the input projection of block g;
        # dhm[g]: gradient w.r.t. the dropped-out state h_prev * m_rec_g.
        dhm = [None] * G
        if reset_after:
            # a_h = x_h + r * rec_h, and rec_h includes its recurrent bias.
            dr = da_h * st["rec"][H]
            drec_h = da_h * rg
            da_z = dz * _act_grad(ract, st["a_z"], zg)
            da_r = dr * _act_grad(ract, st["a_r"], rg)
            dxg = [da_z, da_r, da_h]
            drec = [da_z, da_r, drec_h]
            for g in range(G):
                sl = _blk(g, U)
                dR[:, sl] += st["hm"][g].T @ drec[g]
                db_rec[sl] += drec[g].sum(axis=0)
                dhm[g] = drec[g] @ R[:, sl].T
        else:
            # a_h = x_h + (r * hm_h) @ R_h
            slh = _blk(H, U)
            dR[:, slh] += st["rh"].T @ da_h
            drh = da_h @ R[:, slh].T
            dr = drh * st["hm"][H]
            dhm[H] = drh * rg
            da_z = dz * _act_grad(ract, st["a_z"], zg)
            da_r = dr * _act_grad(ract, st["a_r"], rg)
            for g, da in ((Z, da_z), (RG, da_r)):
                sl = _blk(g, U)
                dR[:, sl] += st["hm"][g].T @ da
                dhm[g] = da @ R[:, sl].T
            dxg = [da_z, da_r, da_h]

        dxt = np.zeros((B, I))
        for g in range(G):
            sl = _blk(g, U)
            dW[:, sl] += st["xs"][g].T @ dxg[g]
            db_in[sl] += dxg[g].sum(axis=0)
            dxt += (dxg[g] @ W[:, sl].T) * m_in[g]
            dhp = dhp + dhm[g] * m_rec[g]
        dx[:, st["t"]] = dxt  # original time order
        dh = dh_carry + dhp

    if not cache["has_bias"]:
        dbias = None
    elif reset_after:
        dbias = np.stack([db_in, db_rec])
    else:
        dbias = db_in
    return dict(dx=dx, dh0=dh, dkernel=dW, drecurrent_kernel=dR, dbias=dbias)
