"""Attention, AdditiveAttention and batch dot products written from their
definitions (Keras 3's layers), one query step and one batch row at a time,
in float64: the forward references for rnnfast's vectorised layers."""

import math

import numpy as np


def _attend(score, q, v, k, q_mask, v_mask, causal):
    """(output, weights) with score(b, i, j) the raw score of query i and key j."""
    k = v if k is None else k
    B, Tq, _ = q.shape
    Tv = v.shape[1]
    out = np.zeros((B, Tq, v.shape[2]))
    weights = np.zeros((B, Tq, Tv))
    for b in range(B):
        for i in range(Tq):
            s = np.array([score(q[b, i], k[b, j]) for j in range(Tv)])
            for j in range(Tv):
                if not ((v_mask is None or v_mask[b, j]) and (not causal or j <= i)):
                    s[j] -= 1e9
            e = np.exp(s - s.max())
            w = e / e.sum()
            weights[b, i] = w
            if q_mask is None or q_mask[b, i]:
                out[b, i] = sum(w[j] * v[b, j] for j in range(Tv))
    return out, weights


def luong_attention(q, v, k=None, scale=None, score_mode="dot", concat_weight=1.0,
                    q_mask=None, v_mask=None, causal=False):
    """(output, weights) for query q [B, Tq, D], value v [B, Tv, Dv], key k:
    dot scores q.k (times scale), or concat_weight * sum(tanh(scale * (q + k)))."""
    def score(qi, kj):
        if score_mode == "dot":
            s = sum(a * b for a, b in zip(qi, kj))
            return s if scale is None else s * scale
        a = qi + kj if scale is None else scale * (qi + kj)
        return concat_weight * sum(math.tanh(x) for x in a)

    return _attend(score, q, v, k, q_mask, v_mask, causal)


def bahdanau_attention(q, v, k=None, scale=None, q_mask=None, v_mask=None, causal=False):
    """Additive scores sum_d scale_d * tanh(q_d + k_d) (scale 1 without one)."""
    def score(qi, kj):
        return sum((1.0 if scale is None else scale[d]) * math.tanh(qi[d] + kj[d])
                   for d in range(len(qi)))

    return _attend(score, q, v, k, q_mask, v_mask, causal)


def batch_dot(x, y, ax, ay, normalize=False):
    """out[b, ...x rest..., ...y rest...] = sum_c x[b, .., c, ..] y[b, .., c, ..]."""
    if normalize:
        x = x / np.maximum(np.sqrt(np.sum(x * x, axis=ax, keepdims=True)), 1e-7)
        y = y / np.maximum(np.sqrt(np.sum(y * y, axis=ay, keepdims=True)), 1e-7)
    xr = np.moveaxis(x, ax, -1)
    yr = np.moveaxis(y, ay, 1)
    B = x.shape[0]
    out = np.zeros(xr.shape[:-1] + yr.shape[2:])
    for b in range(B):
        for xi in np.ndindex(xr.shape[1:-1]):
            for yi in np.ndindex(yr.shape[2:]):
                out[(b,) + xi + yi] = sum(xr[(b,) + xi + (c,)] * yr[(b, c) + yi]
                                          for c in range(xr.shape[-1]))
    return out.reshape(B, 1) if out.ndim == 1 else out
