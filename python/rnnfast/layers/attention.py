"""Attention (Luong, dot-product) and AdditiveAttention (Bahdanau), as Keras 3
defines them (layers/attention/), with hand-written backward passes.

Inputs ``[query (B, Tq, D), value (B, Tv, Dv)]`` or ``[query, value, key
(B, Tv, D)]``; scores (B, Tq, Tv) -> softmax over Tv (masked positions get
score - 1e9, so no weight) -> dropout while training -> weighted sum of the
values; the output is zero where the query mask is False. Call arguments:
``mask=[query_mask, value_mask]``, ``return_attention_scores``,
``use_causal_mask`` (position i attends to j <= i).
"""

from __future__ import annotations

import numpy as np

from .. import _rng
from ..utils.blas import on_one_blas_thread
from .layer import Layer, as_float
from .registry import register

_MASK_OFFSET = 1.0e9


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@register
class Attention(Layer):
    """Dot-product attention (Keras's Attention). ``score_mode="dot"``: scores
    = query . key (times a learned scalar ``scale`` with use_scale);
    ``"concat"``: scores = concat_score_weight * sum(tanh(scale * (query +
    key)))."""

    supports_masking = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"Invalid value for argument score_mode. Expected one of {{'dot', "
                             f"'concat'}}. Received: score_mode={score_mode}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.scale = None
        self.concat_score_weight = None

    # ---- shapes ----------------------------------------------------------------------

    def _validate(self, shapes):
        name = type(self).__name__
        if not isinstance(shapes, (list, tuple)) or not shapes or \
                not isinstance(shapes[0], (list, tuple)):
            raise ValueError(f"{name} layer must be called on a list of inputs, namely [query, "
                             f"value] or [query, value, key].")
        if not 2 <= len(shapes) <= 3:
            raise ValueError(f"{name} layer accepts inputs list of length 2 or 3, namely [query, "
                             f"value] or [query, value, key]. Received length: {len(shapes)}.")
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) == 3 else v
        if any(len(s) != 3 for s in (q, v, k)):
            raise ValueError(f"{name} expects query, value and key of shape (batch, time, dim); "
                             f"got {[tuple(s) for s in shapes]}")
        if q[-1] is not None and k[-1] is not None and q[-1] != k[-1]:
            raise ValueError(f"{name}: query and key must have the same last dimension, got "
                             f"{tuple(q)} and {tuple(k)}")
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(f"{name}: value and key must have the same number of steps, got "
                             f"{tuple(v)} and {tuple(k)}")
        return q, v, k

    def build(self, input_shape):
        self._validate(input_shape)
        if self.use_scale:
            self.scale = self.add_weight((), "ones", "scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", "concat_score_weight")
        self.built = True

    def compute_output_shape(self, input_shape):
        q, v, _ = self._validate(input_shape)
        return (q[0], q[1], v[-1])

    def compute_output_spec(self, input_shape, return_attention_scores=False, **kwargs):
        q, v, k = self._validate(input_shape)
        out = (q[0], q[1], v[-1])
        return [out, (q[0], q[1], k[1])] if return_attention_scores else out

    # ---- scores --------------------------------------------------------------------------

    def _scores(self, q, k):
        """(scores, what the scores' backward needs)."""
        if self.score_mode == "dot":
            raw = q @ np.swapaxes(k, -1, -2)
            if self.scale is None:
                return raw, raw
            return raw * self.scale.value, raw
        summed = q[:, :, None, :] + k[:, None, :, :]
        a = summed if self.scale is None else self.scale.value * summed
        t = np.tanh(a)
        total = t.sum(axis=-1)
        return self.concat_score_weight.value * total, (summed, t, total)

    def _scores_backward(self, q, k, saved, ds):
        """(dq, dk) from dL/dscores; adds into the score weights' gradients."""
        if self.score_mode == "dot":
            raw = saved
            if self.scale is not None:
                if self.trainable:
                    self.scale.add_grad(np.asarray(np.sum(ds * raw), ds.dtype))
                ds = ds * self.scale.value
            return ds @ k, np.swapaxes(ds, -1, -2) @ q
        summed, t, total = saved
        w = self.concat_score_weight.value
        if self.trainable:
            self.concat_score_weight.add_grad(np.asarray(np.sum(ds * total), ds.dtype))
        da = (ds * w)[..., None] * (1 - t * t)
        if self.scale is not None:
            if self.trainable:
                self.scale.add_grad(np.asarray(np.sum(da * summed), ds.dtype))
            da = da * self.scale.value
        return da.sum(axis=2), da.sum(axis=1)

    # ---- forward / backward -------------------------------------------------------------

    # NumPy's products on one BLAS thread: its spinning workers would take a
    # core from the recurrent kernels for ~0.1 s after each (utils/blas.py).
    @on_one_blas_thread
    def forward(self, ctx, inputs, mask=None, training=False, return_attention_scores=False,
                use_causal_mask=False):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{type(self).__name__} layer must be called on a list of inputs, "
                             f"namely [query, value] or [query, value, key].")
        xs = [as_float(x, self.compute_dtype) for x in inputs]
        self._validate([x.shape for x in xs])
        q, v = xs[0], xs[1]
        k = xs[2] if len(xs) == 3 else v
        q_mask = v_mask = None
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"{type(self).__name__} layer mask must be a list, namely "
                                 f"[query_mask, value_mask].")
            q_mask, v_mask = mask[0], mask[1]
        scores, saved = self._scores(q, k)
        keep = None
        if v_mask is not None:
            keep = np.asarray(v_mask, bool)[:, None, :]
        if use_causal_mask:
            Tq, Tv = scores.shape[-2:]
            causal = np.arange(Tq)[:, None] >= np.arange(Tv)[None, :]
            keep = causal[None] if keep is None else keep & causal[None]
        if keep is not None:
            scores = np.where(keep, scores, scores - scores.dtype.type(_MASK_OFFSET))
        weights = _softmax(scores)
        drop = None
        if training and self.dropout > 0:
            rng = self._rng or _rng.global_rng()
            drop = (rng.random(weights.shape) >= self.dropout).astype(weights.dtype) / \
                weights.dtype.type(1.0 - self.dropout)
            weights_d = weights * drop
        else:
            weights_d = weights
        out = weights_d @ v
        qm = None
        if q_mask is not None:
            qm = np.asarray(q_mask, bool)[..., None]
            out = np.where(qm, out, out.dtype.type(0))
        if training:
            ctx.saved = (xs, saved, weights, drop, weights_d, qm, len(xs) == 3)
        return [out, weights_d] if return_attention_scores else out

    @on_one_blas_thread
    def backward(self, ctx, grad, need_input_grad=True):
        xs, saved, weights, drop, weights_d, qm, has_key = ctx.saved
        q, v = xs[0], xs[1]
        k = xs[2] if has_key else v
        if isinstance(grad, list):
            d_out, d_scores_out = grad
        else:
            d_out, d_scores_out = grad, None
        dw = np.zeros_like(weights_d) if d_scores_out is None else \
            np.asarray(d_scores_out, weights.dtype).copy()
        dv = np.zeros_like(v)
        if d_out is not None:
            d_out = np.asarray(d_out, v.dtype)
            if qm is not None:
                d_out = np.where(qm, d_out, d_out.dtype.type(0))
            dw += d_out @ np.swapaxes(v, -1, -2)
            dv = np.swapaxes(weights_d, -1, -2) @ d_out
        if drop is not None:
            dw = dw * drop
        ds = weights * (dw - np.sum(dw * weights, axis=-1, keepdims=True))
        dq, dk = self._scores_backward(q, k, saved, ds)
        if not need_input_grad:
            return None
        if has_key:
            return [dq, dv, dk]
        return [dq, dv + dk]

    def compute_mask(self, inputs, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return np.asarray(mask[0], bool)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}


@register
class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: scores = sum(scale * tanh(query + key)),
    ``scale`` a learned vector of the query's size (with use_scale)."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        q, _, _ = self._validate(input_shape)
        if q[-1] is None:
            raise ValueError("AdditiveAttention: the query's last dimension must be known")
        if self.use_scale:
            self.scale = self.add_weight((q[-1],), "glorot_uniform", "scale")
        self.built = True

    def _scores(self, q, k):
        summed = q[:, :, None, :] + k[:, None, :, :]
        t = np.tanh(summed)
        scaled = t if self.scale is None else self.scale.value * t
        return scaled.sum(axis=-1), t

    def _scores_backward(self, q, k, saved, ds):
        t = saved
        if self.scale is not None:
            if self.trainable:
                self.scale.add_grad(np.einsum("bij,bijd->d", ds, t))
            da = ds[..., None] * self.scale.value * (1 - t * t)
        else:
            da = ds[..., None] * (1 - t * t)
        return da.sum(axis=2), da.sum(axis=1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
