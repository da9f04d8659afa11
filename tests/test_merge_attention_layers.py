"""The layers functional models need: merges, Dot, Attention,
AdditiveAttention, Reshape, Permute and Lambda. Forward against NumPy written
from the definitions (tests/reference/attention.py), every gradient against
float64 central differences, masks, configs and clear errors."""

import numpy as np
import pytest

from layer_harness import check_accumulates, fd_check
from reference.attention import bahdanau_attention, batch_dot, luong_attention
from rnnfast import layers
from rnnfast.layers import Context

F64 = {"dtype": "float64"}


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- elementwise merges ------------------------------------------------------------

MERGES = {
    "Add": lambda xs: sum(xs),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Multiply": lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0),
    "Average": lambda xs: sum(xs) / len(xs),
    "Maximum": lambda xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    "Minimum": lambda xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
}


@pytest.mark.parametrize("name", sorted(MERGES))
@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(2, 3, 4), (2, 3, 4), (2, 3, 4)],
                                    [(2, 3, 4), (2, 4)], [(2, 3, 4), (2, 1, 4)]],
                         ids=["same", "three", "rank", "ones"])
def test_elementwise_merges(name, shapes):
    if name == "Subtract" and len(shapes) != 2:
        pytest.skip("Subtract takes two inputs")
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    layer = getattr(layers, name)(**F64)
    # Keras aligns a lower rank by inserting axes after the batch axis.
    aligned = [x.reshape(x.shape[:1] + (1,) * (3 - x.ndim) + x.shape[1:]) if
               x.ndim < max(a.ndim for a in xs) else x for x in xs]
    y = fd_check(layer, xs)
    np.testing.assert_allclose(y, MERGES[name](aligned), rtol=1e-12)
    assert tuple(layer.compute_output_shape([(None,) + s[1:] for s in shapes])) == \
        (None,) + y.shape[1:]
    check_accumulates(getattr(layers, name)(**F64), xs)


@pytest.mark.parametrize("name", ["Multiply", "Maximum", "Minimum", "Add"])
def test_merges_with_masks_follow_keras(name):
    """Multiply counts masked entries as 1 (0 where all are masked); Maximum and
    Minimum take the other input where one is masked; the output mask is the OR."""
    a, b = rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2)
    ma = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)
    mb = np.array([[1, 0, 1, 0], [1, 1, 1, 0]], bool)
    layer = getattr(layers, name)(**F64)
    y = layer.call([a, b], mask=[ma, mb])
    A, Bm = ma[..., None], mb[..., None]
    if name == "Multiply":
        want = np.where(A, a, 1) * np.where(Bm, b, 1)
        want = np.where(A | Bm, want, 0)
    elif name == "Add":
        want = a + b
    else:
        op = np.maximum if name == "Maximum" else np.minimum
        bb = np.where(Bm, b, a)
        aa = np.where(A, a, bb)
        want = op(aa, bb)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_array_equal(layer.compute_mask([a, b], [ma, mb]), ma | mb)
    assert layer.compute_mask([a, b], [ma, None]) is None
    fd_check(layer, [a, b], mask=[ma, mb])


def test_merge_errors():
    a, b = layers.Input((3,)), layers.Input((4,))
    with pytest.raises(ValueError, match=r"Layer 'add\w*' \(Add\) cannot be called on inputs of "
                                         r"shape \[\(None, 3\), \(None, 4\)\].*incompatible shapes"):
        layers.Add()([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="called on a list of inputs"):
        layers.Add()(a)


# ---- Concatenate -----------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate(axis):
    shapes = {-1: [(2, 3, 4), (2, 3, 2)], 1: [(2, 3, 4), (2, 5, 4)], 2: [(2, 3, 4), (2, 3, 1)]}
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes[axis])]
    layer = layers.Concatenate(axis=axis, **F64)
    y = fd_check(layer, xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    assert layer.compute_output_shape([(None,) + s[1:] for s in shapes[axis]]) == \
        (None,) + y.shape[1:]


def test_concatenate_masks_and_errors():
    a, b = rand(2, 4, 3), rand(2, 4, 2)
    ma = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    layer = layers.Concatenate()
    # Along the features a missing mask counts as all ones: the OR over them.
    np.testing.assert_array_equal(layer.compute_mask([a, b], [ma, None]), np.ones((2, 4), bool))
    time = layers.Concatenate(axis=1)
    np.testing.assert_array_equal(time.compute_mask([a, a], [ma, None]),
                                  np.concatenate([ma, np.ones((2, 4), bool)], axis=1))
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate()([layers.Input((4, 3)), layers.Input((5, 2))])


# ---- Dot --------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes,axes", [
    ([(3, 4), (3, 4)], -1), ([(2, 5, 4), (2, 6, 4)], 2), ([(2, 5, 4), (2, 4, 6)], (2, 1)),
    ([(2, 5, 4), (2, 4)], (2, 1)), ([(2, 3, 5, 4), (2, 4, 6)], (3, 1)),
], ids=["vectors", "sequences", "matmul", "seq-vec", "rank4"])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot(shapes, axes, normalize):
    xs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    layer = layers.Dot(axes=axes, normalize=normalize, **F64)
    y = fd_check(layer, xs)
    a = axes if isinstance(axes, tuple) else (axes % len(shapes[0]), axes % len(shapes[1]))
    np.testing.assert_allclose(y, batch_dot(xs[0], xs[1], a[0], a[1], normalize), rtol=1e-10,
                               atol=1e-12)
    assert layer.compute_output_shape([(None,) + s[1:] for s in shapes]) == (None,) + y.shape[1:]


def test_dot_errors():
    with pytest.raises(ValueError, match=r"axis values 4 \(at axis 2\) != 3"):
        layers.Dot(axes=2)([layers.Input((5, 4)), layers.Input((6, 3))])
    with pytest.raises(TypeError, match="Invalid type for argument `axes`"):
        layers.Dot(axes="x")


# ---- Attention --------------------------------------------------------------------------

ATTENTION_CASES = [
    ({}, {}), ({"use_scale": True}, {}), ({"score_mode": "concat"}, {}),
    ({"score_mode": "concat", "use_scale": True}, {}), ({}, {"use_causal_mask": True}),
    ({"use_scale": True}, {"masks": True}), ({}, {"key": True}),
    ({"score_mode": "concat"}, {"masks": True, "use_causal_mask": True, "key": True}),
]


def attention_inputs(opts, Tq=4, Tv=5, seed=0):
    q, v = rand(2, Tq, 3, seed=seed), rand(2, Tv, 3, seed=seed + 1)
    xs = [q, v] + ([rand(2, Tv, 3, seed=seed + 2)] if opts.get("key") else [])
    mask = None
    if opts.get("masks"):
        mask = [np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)[:, :Tq],
                np.array([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], bool)[:, :Tv]]
        mask += [None] if opts.get("key") else []
    return xs, mask


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
@pytest.mark.parametrize("args,opts", ATTENTION_CASES, ids=[str(i) for i in range(len(ATTENTION_CASES))])
def test_attention(cls, args, opts):
    if cls == "AdditiveAttention" and "score_mode" in args:
        pytest.skip("AdditiveAttention has no score_mode")
    xs, mask = attention_inputs(opts)
    layer = getattr(layers, cls)(**args, **F64)
    layer.maybe_build([x.shape for x in xs])
    for v in layer.weights:  # away from the initial 1s, so the scale matters
        v.value[...] = 0.5 + np.random.default_rng(9).random(v.shape)
    causal = bool(opts.get("use_causal_mask"))
    kwargs = {"use_causal_mask": causal, "return_attention_scores": True}
    out, w = fd_check(layer, xs, mask=mask, kwargs=kwargs)
    qm, vm = (mask[0], mask[1]) if mask else (None, None)
    key = xs[2] if len(xs) == 3 else None
    if cls == "Attention":
        scale = layer.scale.value if layer.scale is not None else None
        cw = layer.concat_score_weight.value if layer.concat_score_weight is not None else 1.0
        want_out, want_w = luong_attention(xs[0], xs[1], key, scale, layer.score_mode, cw, qm, vm,
                                           causal)
    else:
        scale = layer.scale.value if layer.scale is not None else None
        want_out, want_w = bahdanau_attention(xs[0], xs[1], key, scale, qm, vm, causal)
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w, want_w, rtol=1e-10, atol=1e-12)
    # Without the scores, and with the output alone receiving a gradient.
    fd_check(layer, xs, mask=mask, kwargs={"use_causal_mask": causal}, seed=1)
    if mask is not None:
        np.testing.assert_array_equal(layer.compute_mask(xs, mask), mask[0])


def test_attention_weights_and_config():
    att = layers.Attention(use_scale=True, score_mode="concat")
    att.maybe_build([(None, 4, 3), (None, 5, 3)])
    assert [v.name for v in att.weights] == ["scale", "concat_score_weight"]
    assert [v.shape for v in att.weights] == [(), ()]
    add = layers.AdditiveAttention()
    add.maybe_build([(None, 4, 3), (None, 5, 3)])
    assert [(v.name, v.shape) for v in add.weights] == [("scale", (3,))]
    config = add.get_config()
    assert "score_mode" not in config and config["use_scale"] is True
    assert type(add).from_config(config).get_config() == config
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="general")
    with pytest.raises(ValueError, match="list of length 2 or 3"):
        layers.Attention()([layers.Input((4, 3))] * 4)
    with pytest.raises(ValueError, match="same last dimension"):
        layers.Attention()([layers.Input((4, 3)), layers.Input((5, 2))])


def test_attention_dropout_uses_the_forward_mask():
    layer = layers.Attention(dropout=0.5, seed=3, **F64)
    xs, _ = attention_inputs({"key": True})
    layer.maybe_build([x.shape for x in xs])
    ctx = Context()
    out, w = layer.forward(ctx, xs, training=True, return_attention_scores=True)
    assert np.any(w == 0) and np.allclose(out, w @ xs[1])
    g = rand(*out.shape, seed=5)
    dq, dv, dk = layer.backward(ctx, [g, None])
    np.testing.assert_allclose(dv, np.swapaxes(w, -1, -2) @ g, rtol=1e-12)
    # Inference: no dropout.
    np.testing.assert_allclose(layer.call(xs), luong_attention(xs[0], xs[1], xs[2])[0], rtol=1e-10)


# ---- Reshape, Permute, Lambda ---------------------------------------------------------------

@pytest.mark.parametrize("target", [(6, 2), (-1,), (3, -1, 2)])
def test_reshape(target):
    x = rand(2, 3, 4)
    layer = layers.Reshape(target, **F64)
    y = fd_check(layer, x)
    np.testing.assert_array_equal(y, x.reshape((2,) + tuple(12 // int(np.prod(
        [d for d in target if d != -1])) if d == -1 else d for d in target)))
    assert layer.compute_output_shape((None, 3, 4)) == (None,) + y.shape[1:]
    assert layer.compute_output_shape((None, None, 4))[0] is None


def test_reshape_and_permute_errors():
    with pytest.raises(ValueError, match=r"\(Reshape\) cannot be called on inputs of shape "
                                         r"\(None, 3, 4\): total size of the new array must be "
                                         r"unchanged"):
        layers.Reshape((5,))(layers.Input((3, 4)))
    with pytest.raises(ValueError, match="at most one -1"):
        layers.Reshape((-1, -1))
    with pytest.raises(ValueError, match="Invalid permutation"):
        layers.Permute((1, 3))
    with pytest.raises(ValueError, match="expects inputs of rank 3"):
        layers.Permute((2, 1))(layers.Input((3, 4, 5)))


@pytest.mark.parametrize("dims", [(2, 1), (1, 2), (3, 1, 2)])
def test_permute(dims):
    x = rand(2, 3, 4) if len(dims) == 2 else rand(2, 3, 4, 5)
    layer = layers.Permute(dims, **F64)
    y = fd_check(layer, x)
    np.testing.assert_array_equal(y, np.transpose(x, (0,) + dims))


def double(x):
    return 2.0 * x


double.backward = lambda x, y, g: 2.0 * g


def test_lambda_forward_shape_inference_and_gradient():
    layer = layers.Lambda(double, **F64)
    y = fd_check(layer, rand(2, 3, 4))
    np.testing.assert_allclose(y, 2 * rand(2, 3, 4))
    assert layer.compute_output_shape((None, None, 4)) == (None, None, 4)
    summed = layers.Lambda(lambda x: x.sum(axis=1))
    assert summed.compute_output_shape((None, None, 4)) == (None, 4)
    assert layers.Lambda(lambda x: x, output_shape=(7,)).compute_output_shape((None, 3)) == \
        (None, 7)


def test_lambda_without_gradient_is_a_clear_error():
    layer = layers.Lambda(lambda x: x ** 2, **F64)
    ctx = Context()
    y = layer.forward(ctx, rand(2, 3), training=True)
    with pytest.raises(ValueError, match="has no gradient: rnnfast has no autodiff"):
        layer.backward(ctx, np.ones_like(y))
    assert layer.backward(ctx, np.ones_like(y), need_input_grad=False) is None


def test_lambda_config_by_name_only():
    layer = layers.Lambda(double)
    config = layer.get_config()
    assert config["function"]["config"] == "double"
    with pytest.raises(ValueError, match="pass it in custom_objects"):
        layers.Lambda.from_config(dict(config))
    again = layers.Lambda.from_config(dict(config), custom_objects={"double": double})
    assert again.function is double
    with pytest.raises(ValueError, match="anonymous"):
        layers.Lambda(lambda x: x).get_config()
