"""Symbolic tensors and graph nodes (Keras 3's KerasTensor and ops/node.py).

Calling a layer on symbolic tensors (what ``rnnfast.Input`` returns) runs no
math: it builds the layer for the inputs' shapes, works out the outputs'
shapes, and records a :class:`Node`, one per call, so that a layer called at
several places has several nodes and one set of weights. A functional model
(``models/functional.py``) walks the nodes from its outputs back to its
inputs.
"""

from __future__ import annotations

import numpy as np

from .. import _tree
from .._budget import BudgetExceeded


class KerasTensor:
    """A symbolic tensor: shape (batch axis first, None where unknown), dtype,
    and the node that produced it (``_keras_history``: layer, node index,
    output index)."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(shape)
        self.dtype = str(np.dtype(dtype))
        self.name = name
        self._keras_history = None

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def node(self):
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic: it has no values until a model built from it "
                        f"runs on data (keras.Model(inputs, outputs), then predict or fit)")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic and has no truth value")

    # Keras lets symbolic tensors be combined with operators; here they map to
    # the merge layers, so that the graph keeps a hand-written backward.
    def __add__(self, other):
        return _merge("Add", self, other)

    def __sub__(self, other):
        return _merge("Subtract", self, other)

    def __mul__(self, other):
        return _merge("Multiply", self, other)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return _merge("Subtract", other, self)

    __hash__ = object.__hash__


def _merge(kind, a, b):
    if not (isinstance(a, KerasTensor) and isinstance(b, KerasTensor)):
        raise TypeError(f"symbolic tensors combine only with other symbolic tensors here "
                        f"(got {type(a).__name__} and {type(b).__name__}); use a layer, e.g. "
                        f"keras.layers.Lambda, for constants")
    from . import registry

    return registry.LAYERS[kind]()([a, b])


class Node:
    """One call of a layer on symbolic tensors: the layer, its inputs
    (``inputs`` in the structure it was called with), its keyword arguments
    (tensors among them, such as an RNN's ``initial_state``) and its outputs."""

    def __init__(self, layer, inputs, kwargs, outputs):
        self.layer = layer
        self.inputs = inputs
        self.kwargs = dict(kwargs)
        self.output_structure = outputs
        self.outputs = _tree.flatten(outputs)
        self.input_tensors = [t for t in _tree.flatten(inputs) if isinstance(t, KerasTensor)]
        self.kwarg_tensors = [t for k in sorted(self.kwargs) for t in _tree.flatten(self.kwargs[k])
                              if isinstance(t, KerasTensor)]
        layer._inbound_nodes.append(self)
        self.index = len(layer._inbound_nodes) - 1
        for i, t in enumerate(self.outputs):
            t._keras_history = (layer, self.index, i)
        self.is_input = not self.input_tensors and not self.kwarg_tensors

    @property
    def all_input_tensors(self):
        return self.input_tensors + self.kwarg_tensors

    @property
    def parent_nodes(self):
        return [t.node for t in self.all_input_tensors]

    def __repr__(self):
        return f"<Node layer={self.layer.name}, index={self.index}>"


def any_symbolic(inputs, kwargs) -> bool:
    return any(isinstance(t, KerasTensor) for t in _tree.flatten(inputs)) or \
        any(isinstance(t, KerasTensor) for v in kwargs.values() for t in _tree.flatten(v))


def _shape_of(x):
    return x.shape if isinstance(x, KerasTensor) else x


def _describe(shapes):
    if isinstance(shapes, (list, tuple)) and shapes and not isinstance(shapes[0], (int, type(None))):
        return "[" + ", ".join(_describe(s) for s in shapes) + "]"
    if isinstance(shapes, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in shapes.items()) + "}"
    return str(tuple(shapes)) if isinstance(shapes, (list, tuple)) else repr(shapes)


def symbolic_call(layer, inputs, kwargs):
    """Records `layer` called on symbolic `inputs`; returns its symbolic outputs."""
    for t in _tree.flatten(inputs):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}) was called on a mix "
                            f"of symbolic tensors and {type(t).__name__}; in a functional model "
                            f"every input must come from keras.Input or another layer")
    for t in _tree.flatten(inputs) + [x for v in kwargs.values() for x in _tree.flatten(v)]:
        if isinstance(t, KerasTensor) and t._keras_history is None:
            raise ValueError(f"Layer '{layer.name}': {t!r} was not produced by keras.Input or a "
                             f"layer call")
    shapes = _tree.map_structure(_shape_of, inputs)
    spec_kwargs = {k: _tree.map_structure(_shape_of, v) for k, v in kwargs.items()
                   if k not in ("training", "mask")}
    try:
        layer.maybe_build(shapes)
        out_shapes = layer.compute_output_spec(shapes, **spec_kwargs)
    except BudgetExceeded:
        raise  # a loader's memory bound, reported as such
    except (ValueError, TypeError, IndexError, KeyError) as e:
        extra = "".join(f", {k}={_describe(v)}" for k, v in spec_kwargs.items()
                        if any(isinstance(t, KerasTensor) for t in _tree.flatten(kwargs[k])))
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) cannot be called on "
                         f"inputs of shape {_describe(shapes)}{extra}: {e}") from e
    dtype = getattr(layer, "output_dtype", None) or layer.compute_dtype.name
    if isinstance(out_shapes, list):
        outputs = [KerasTensor(s, dtype, name=f"{layer.name}_{i}") for i, s in enumerate(out_shapes)]
    else:
        outputs = KerasTensor(out_shapes, dtype, name=layer.name)
    Node(layer, inputs, kwargs, outputs)
    return outputs


def own_node_index(node, own_nodes):
    """A node's index among its layer's nodes that belong to one model (what
    Keras writes in configs, so that calls from other models do not count)."""
    return sum(1 for n in node.layer._inbound_nodes[:node.index] if n in own_nodes)
