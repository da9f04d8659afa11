"""Merge layers (Keras 3's layers/merging/): Add, Subtract, Multiply, Average,
Maximum, Minimum, Concatenate and Dot, each with a hand-written backward.

Inputs of different ranks are aligned as Keras aligns them (axes of size 1
inserted after the batch axis) and then broadcast; the backward sums a
gradient over the axes an input was broadcast along. Masks follow Keras:
the elementwise merges output the OR of the inputs' masks when all have one,
and Multiply, Maximum and Minimum ignore masked entries."""

from __future__ import annotations

import numpy as np

from .layer import Layer, as_float
from .registry import register


def _check_list(layer, shapes, at_least=1):
    if not isinstance(shapes, (list, tuple)) or not shapes or \
            not isinstance(shapes[0], (list, tuple)):
        raise ValueError(f"A `{type(layer).__name__}` layer should be called on a list of inputs. "
                         f"Received: input_shape={shapes}")
    if len(shapes) < at_least:
        raise ValueError(f"A `{type(layer).__name__}` layer should be called on a list of at "
                         f"least {at_least} inputs. Received {len(shapes)} inputs.")


def _elemwise_shape(shape1, shape2):
    if len(shape1) < len(shape2):
        return _elemwise_shape(shape2, shape1)
    if not shape2:
        return tuple(shape1)
    out = list(shape1[:len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1:
            out.append(i)
        elif i != j:
            raise ValueError(f"Inputs have incompatible shapes. Received shapes {tuple(shape1)} "
                             f"and {tuple(shape2)}")
        else:
            out.append(i)
    return tuple(out)


def _unbroadcast(grad, shape):
    """Sums `grad` down to `shape` (the axes an input was broadcast along)."""
    if grad.shape == tuple(shape):
        return grad
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class _Merge(Layer):
    """Elementwise merges: inputs aligned as Keras aligns them."""

    supports_masking = True
    MIN_INPUTS = 1

    def build(self, input_shape):
        _check_list(self, input_shape, self.MIN_INPUTS)
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape, self.MIN_INPUTS)
        batches = {s[0] for s in input_shape} - {None}
        if len(batches) > 1:
            raise ValueError(f"Cannot merge tensors with different batch sizes. Received tensors "
                             f"with shapes {[tuple(s) for s in input_shape]}")
        out = tuple(input_shape[0][1:])
        for s in input_shape[1:]:
            out = _elemwise_shape(out, tuple(s[1:]))
        return (batches.pop() if batches else None,) + out

    def _aligned(self, inputs):
        xs = [as_float(x, self.compute_dtype) for x in inputs]
        rank = max(x.ndim for x in xs)
        out = []
        for x in xs:
            if x.ndim < rank:  # Keras inserts the missing axes after the batch axis
                x = x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:])
            out.append(x)
        return xs, out

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A `{type(self).__name__}` layer should be called on a list of "
                             f"inputs. Received: inputs of type {type(inputs).__name__}")
        if len(inputs) < self.MIN_INPUTS:
            raise ValueError(f"A `{type(self).__name__}` layer should be called on a list of at "
                             f"least {self.MIN_INPUTS} inputs. Received {len(inputs)} inputs.")

    def forward(self, ctx, inputs, training=False, mask=None):
        self._check_inputs(inputs)
        originals, xs = self._aligned(inputs)
        try:
            np.broadcast_shapes(*[x.shape for x in xs])
        except ValueError:
            raise ValueError(f"{type(self).__name__} '{self.name}' cannot merge inputs of shapes "
                             f"{[x.shape for x in originals]}") from None
        masks = self._expanded_masks(mask, xs)
        y = self._merge(xs, masks)
        if training:
            ctx.saved = ([x.shape for x in originals], xs, masks, y)
        return y

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        shapes, xs, masks, y = ctx.saved
        grads = self._merge_grads(xs, masks, y, np.asarray(grad, xs[0].dtype))
        return [_unbroadcast(g, x.shape).reshape(s) for g, x, s in zip(grads, xs, shapes)]

    def _expanded_masks(self, mask, xs):
        """Per input, its mask broadcast to the input's shape (None: none)."""
        if mask is None or not isinstance(mask, (list, tuple)):
            return None
        if all(m is None for m in mask):
            return None
        out = []
        for m, x in zip(mask, xs):
            if m is None:
                out.append(None)
                continue
            m = np.asarray(m, bool)
            while m.ndim < x.ndim:
                m = m[..., None]
            out.append(np.broadcast_to(m, x.shape))
        return out

    def compute_mask(self, inputs, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or any(m is None for m in mask):
            return None
        out = np.asarray(mask[0], bool)
        for m in mask[1:]:
            out = np.logical_or(out, m)
        return out


@register
class Add(_Merge):
    """Sum of the inputs."""

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y

    def _merge_grads(self, xs, masks, y, grad):
        return [grad] * len(xs)


@register
class Subtract(_Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""

    MIN_INPUTS = 2

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={input_shape}")

    def _check_inputs(self, inputs):
        super()._check_inputs(inputs)
        if len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received {len(inputs)} inputs.")

    def _merge(self, xs, masks):
        return xs[0] - xs[1]

    def _merge_grads(self, xs, masks, y, grad):
        return [grad, -grad]


@register
class Average(_Merge):
    """Mean of the inputs."""

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / y.dtype.type(len(xs))

    def _merge_grads(self, xs, masks, y, grad):
        return [grad / grad.dtype.type(len(xs))] * len(xs)


@register
class Multiply(_Merge):
    """Product of the inputs; masked entries count as 1, and where every input
    is masked the output is 0 (Keras 3)."""

    def _factors(self, xs, masks):
        if masks is None:
            return xs
        return [x if m is None else np.where(m, x, x.dtype.type(1)) for x, m in zip(xs, masks)]

    def _out_mask(self, masks):
        if masks is None or any(m is None for m in masks):
            return None
        out = masks[0]
        for m in masks[1:]:
            out = np.logical_or(out, m)
        return out

    def _merge(self, xs, masks):
        fs = self._factors(xs, masks)
        y = fs[0]
        for f in fs[1:]:
            y = y * f
        out_mask = self._out_mask(masks)
        return y if out_mask is None else np.where(out_mask, y, y.dtype.type(0))

    def _merge_grads(self, xs, masks, y, grad):
        fs = self._factors(xs, masks)
        out_mask = self._out_mask(masks)
        if out_mask is not None:
            grad = np.where(out_mask, grad, grad.dtype.type(0))
        grads = []
        for i in range(len(fs)):
            g = grad
            for j, f in enumerate(fs):
                if j != i:
                    g = g * f
            if masks is not None and masks[i] is not None:
                g = np.where(masks[i], g, g.dtype.type(0))
            grads.append(g)
        return grads


class _Extremum(_Merge):
    """Maximum/Minimum: a masked entry takes the other inputs' value (Keras's
    _apply_merge_op_and_or_mask); the gradient goes to the chosen input."""

    def _select(self, a, b):
        raise NotImplementedError

    def _merge(self, xs, masks):
        return self._trace(xs, masks)[0]

    def _trace(self, xs, masks):
        """The output and, per element, the index of the input it came from."""
        masks = masks or [None] * len(xs)
        shape = np.broadcast_shapes(*[x.shape for x in xs])
        out, out_mask = np.broadcast_to(xs[0], shape), masks[0]
        src = np.zeros(shape, np.intp)
        for k in range(1, len(xs)):
            x, m = np.broadcast_to(xs[k], shape), masks[k]
            src_x = np.full(shape, k, np.intp)
            if m is not None:  # a masked entry takes the output so far
                x, src_x = np.where(m, x, out), np.where(m, src_x, src)
            if out_mask is not None:  # a masked output so far takes this input
                out, src = np.where(out_mask, out, x), np.where(out_mask, src, src_x)
            take = self._select(x, out)  # strict: ties keep the earlier input
            out, src = np.where(take, x, out), np.where(take, src_x, src)
            out_mask = None if m is None or out_mask is None else np.logical_or(out_mask, m)
        return out, src

    def _merge_grads(self, xs, masks, y, grad):
        src = self._trace(xs, masks)[1]
        zero = grad.dtype.type(0)
        return [np.where(src == i, grad, zero) for i in range(len(xs))]


@register
class Maximum(_Extremum):
    """Elementwise maximum of the inputs."""

    def _select(self, x, out):
        return x > out


@register
class Minimum(_Extremum):
    """Elementwise minimum of the inputs."""

    def _select(self, x, out):
        return x < out


@register
class Concatenate(Layer):
    """Concatenation along `axis` (default -1)."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Concatenate: axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        ranks = {len(s) for s in input_shape}
        if len(ranks) != 1:
            raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes except "
                             f"for the concatenation axis. Received: input_shape="
                             f"{[tuple(s) for s in input_shape]}")
        rank = ranks.pop()
        axis = self.axis % rank
        if axis == 0:
            raise ValueError("Concatenate: axis 0 is the batch axis")
        out = list(input_shape[0])
        for d in range(rank):
            if d == axis:
                sizes = [s[d] for s in input_shape]
                out[d] = None if None in sizes else sum(sizes)
                continue
            known = {s[d] for s in input_shape} - {None}
            if len(known) > 1:
                raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes "
                                 f"except for the concatenation axis. Received: input_shape="
                                 f"{[tuple(s) for s in input_shape]}")
            out[d] = known.pop() if known else None
        return tuple(out)

    def forward(self, ctx, inputs, training=False, mask=None):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError("A `Concatenate` layer should be called on a list of inputs.")
        xs = [as_float(x, self.compute_dtype) for x in inputs]
        try:
            y = np.concatenate(xs, axis=self.axis)
        except ValueError as e:
            raise ValueError(f"Concatenate '{self.name}': cannot join inputs of shapes "
                             f"{[x.shape for x in xs]} along axis {self.axis} ({e})") from None
        if training:
            ctx.saved = [x.shape[self.axis] for x in xs]
        return y

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        splits = np.cumsum(ctx.saved)[:-1]
        return [np.ascontiguousarray(g) for g in np.split(grad, splits, axis=self.axis)]

    def compute_mask(self, inputs, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or all(m is None for m in mask):
            return None
        parts = []
        for x, m in zip(inputs, mask):
            x = np.asarray(x)
            if m is None:
                parts.append(np.ones(x.shape, bool))
            else:
                m = np.asarray(m, bool)
                if m.ndim < x.ndim:
                    m = np.broadcast_to(m[..., None], x.shape)
                parts.append(m)
        return np.any(np.concatenate(parts, axis=self.axis), axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _l2_normalize(x, axis, eps=1e-7):
    """Keras's ops.normalize: x * min(rsqrt(sum(x^2)), 1/eps), and what its
    backward needs."""
    square_sum = np.sum(x * x, axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.sqrt(square_sum)
    clamped = inv >= 1.0 / eps
    inv = np.where(clamped, x.dtype.type(1.0 / eps), inv).astype(x.dtype)
    return x * inv, inv, clamped


def _l2_normalize_backward(y, inv, clamped, g, axis):
    dot = np.sum(g * y, axis=axis, keepdims=True)
    return np.where(clamped, g * inv, (g - y * dot) * inv)


@register
class Dot(Layer):
    """Batch dot product of two inputs along `axes` (an int or a pair); with
    `normalize`, each input is L2-normalized along its axis first (cosine
    similarity)."""

    supports_masking = True

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axes, (int, np.integer)):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Invalid type for argument `axes`: it should be a list or an "
                                f"int. Received: axes={axes}")
            if len(axes) != 2:
                raise ValueError(f"Invalid format for argument `axes`: it should contain two "
                                 f"elements. Received: axes={axes}")
            if not all(isinstance(a, (int, np.integer)) for a in axes):
                raise ValueError(f"Invalid format for argument `axes`: list elements should be "
                                 f"integers. Received: axes={axes}")
            axes = [int(a) for a in axes]
        else:
            axes = int(axes)
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes(self, ranks):
        if isinstance(self.axes, int):
            axes = [self.axes % r if self.axes < 0 else self.axes for r in ranks]
        else:
            axes = [a % r if a < 0 else a for a, r in zip(self.axes, ranks)]
        for a, r in zip(axes, ranks):
            if a == 0 or a >= r:
                raise ValueError(f"Dot: axes {self.axes} are invalid for inputs of ranks {ranks} "
                                 f"(axis 0 is the batch axis)")
        return axes

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or \
                not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"A `Dot` layer should be called on a list of 2 inputs. Received: "
                             f"input_shape={input_shape}")
        s1, s2 = list(input_shape[0]), list(input_shape[1])
        if len(s1) < 2 or len(s2) < 2:
            raise ValueError(f"Dot needs inputs of rank >= 2, got shapes {tuple(s1)} and "
                             f"{tuple(s2)}")
        a1, a2 = self._axes([len(s1), len(s2)])
        if s1[a1] is not None and s2[a2] is not None and s1[a1] != s2[a2]:
            raise ValueError(f"Incompatible input shapes: axis values {s1[a1]} (at axis {a1}) != "
                             f"{s2[a2]} (at axis {a2}). Full input shapes: {tuple(s1)}, "
                             f"{tuple(s2)}")
        s1.pop(a1)
        s2.pop(a2)
        s2.pop(0)
        out = s1 + s2
        return tuple(out + [1] if len(out) == 1 else out)

    def _subscripts(self, r1, r2, a1, a2):
        letters = "cdefghijklmnopqrstuvwxyz"
        x = ["b"] + [letters[i] for i in range(r1 - 1)]
        y = ["b"] + [letters[r1 - 1 + i] for i in range(r2 - 1)]
        y[a2] = x[a1] = "a"
        out = [c for c in x if c != "a"] + [c for c in y[1:] if c != "a"]
        return "".join(x), "".join(y), "".join(out)

    def forward(self, ctx, inputs, training=False, mask=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("A `Dot` layer should be called on exactly 2 inputs.")
        x1, x2 = (as_float(x, self.compute_dtype) for x in inputs)
        a1, a2 = self._axes([x1.ndim, x2.ndim])
        if x1.shape[a1] != x2.shape[a2]:
            raise ValueError(f"Dot '{self.name}': axis {a1} of the first input ({x1.shape}) and "
                             f"axis {a2} of the second ({x2.shape}) differ")
        norm = None
        if self.normalize:
            n1, n2 = _l2_normalize(x1, a1), _l2_normalize(x2, a2)
            norm = (n1, n2)
            x1, x2 = n1[0], n2[0]
        sx, sy, so = self._subscripts(x1.ndim, x2.ndim, a1, a2)
        y = np.einsum(f"{sx},{sy}->{so}", x1, x2)
        if training:
            ctx.saved = (x1, x2, (sx, sy, so), norm, (a1, a2), y.shape)
        return y.reshape(y.shape + (1,)) if y.ndim == 1 else y

    def backward(self, ctx, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        x1, x2, (sx, sy, so), norm, (a1, a2), shape = ctx.saved
        g = np.asarray(grad, x1.dtype).reshape(shape)
        d1 = np.einsum(f"{so},{sy}->{sx}", g, x2)
        d2 = np.einsum(f"{so},{sx}->{sy}", g, x1)
        if norm is not None:
            d1 = _l2_normalize_backward(norm[0][0], norm[0][1], norm[0][2], d1, a1)
            d2 = _l2_normalize_backward(norm[1][0], norm[1][1], norm[1][2], d2, a2)
        return [d1, d2]

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


# Keras's functional forms: keras.layers.concatenate([a, b]) and so on.

def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
