"""The shared checks of a layer with a hand-written backward (what Keras's
run_layer_test is for a library with autodiff): central finite differences in
float64 of every weight gradient and every input gradient, for layers with
one or several inputs and outputs, and the caller-owned, accumulating
protocol (two calls with two contexts, then both backwards, give the sum)."""

from __future__ import annotations

import numpy as np

from finite_differences import numeric_gradient  # noqa: F401 (re-exported)
from rnnfast.layers import Context

def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _weighted_sum(ws, y):
    return float(sum(np.sum(w * np.asarray(v)) for w, v in zip(ws, _as_list(y)) if w is not None))


def fd_check(layer, x, mask=None, seed=0, check_input=True, rtol=1e-6, atol=1e-8, kwargs=None,
             skip_outputs=(), check_kwargs=()):
    """Checks layer.backward's input and weight gradients against central
    differences of L = sum_k sum(w_k * output_k) (inference forward). `x` is
    one array or a list; `kwargs` extra call arguments (arrays named in
    `check_kwargs` are checked too, e.g. initial_state); outputs listed in
    `skip_outputs` get no gradient (None), as a graph passes for an unused
    output. Returns the layer's outputs."""
    kwargs = dict(kwargs or {})
    rng = np.random.default_rng(seed)
    ctx = Context()
    layer.maybe_build(np.shape(x) if not isinstance(x, list) else [np.shape(a) for a in x])
    y = layer.forward(ctx, x, training=True, mask=mask, **kwargs)
    ws = [None if i in skip_outputs else rng.standard_normal(np.shape(v))
          for i, v in enumerate(_as_list(y))]
    for v in layer.weights:
        v.grad = None
    grad = ws if isinstance(y, list) else ws[0]
    dx = layer.backward(ctx, grad, need_input_grad=check_input)
    grads = {v.path: (None if v.grad is None else np.array(v.grad)) for v in layer.weights}
    kw_grads = getattr(ctx, "kwarg_grads", {})

    def loss():
        return _weighted_sum(ws, layer.forward(Context(), x, training=False, mask=mask, **kwargs))

    assert layer.weights or check_input or check_kwargs
    for v in layer.trainable_weights:
        assert grads[v.path] is not None, f"{v.path}: backward left no gradient"
        np.testing.assert_allclose(grads[v.path], numeric_gradient(loss, v.value), rtol=rtol,
                                   atol=atol, err_msg=v.path)
    if check_input:
        for i, (d, a) in enumerate(zip(_as_list(dx), _as_list(x))):
            if np.issubdtype(np.asarray(a).dtype, np.floating):
                np.testing.assert_allclose(d, numeric_gradient(loss, a), rtol=rtol, atol=atol,
                                           err_msg=f"dx[{i}]")
    for name in check_kwargs:
        for i, (d, a) in enumerate(zip(_as_list(kw_grads[name]), _as_list(kwargs[name]))):
            np.testing.assert_allclose(d, numeric_gradient(loss, a), rtol=rtol, atol=atol,
                                       err_msg=f"{name}[{i}]")
    return y


def check_accumulates(layer, x, kwargs=None, seed=0):
    """Two calls with their own contexts, then both backwards: the weight
    gradients are the sum of each call's alone (a layer shared in a graph)."""
    kwargs = dict(kwargs or {})
    rng = np.random.default_rng(seed)
    layer.maybe_build(np.shape(x) if not isinstance(x, list) else [np.shape(a) for a in x])
    alone = []
    outs_w = None
    for _ in range(2):
        ctx = Context()
        y = layer.forward(ctx, x, training=True, **kwargs)
        if outs_w is None:
            outs_w = [[rng.standard_normal(np.shape(v)) for v in _as_list(y)] for _ in range(2)]
        w = outs_w[len(alone)]
        for v in layer.weights:
            v.grad = None
        layer.backward(ctx, w if isinstance(y, list) else w[0])
        alone.append([np.array(v.grad) for v in layer.trainable_weights])
    for v in layer.weights:
        v.grad = None
    ctxs = [Context(), Context()]
    ys = [layer.forward(c, x, training=True, **kwargs) for c in ctxs]
    for c, w, y in zip(ctxs, outs_w, ys):
        layer.backward(c, w if isinstance(y, list) else w[0])
    for v, a, b in zip(layer.trainable_weights, *alone):
        np.testing.assert_allclose(v.grad, a + b, rtol=1e-10, atol=1e-12, err_msg=v.path)
