"""Graph analysis for functional models (Keras 3's ops/function.py map_graph):
the nodes between a model's inputs and outputs in execution order, the
layers in Keras's order, and the checks that refuse a malformed graph."""

from __future__ import annotations

import collections

from .. import _tree
from ..layers.node import KerasTensor


def _symbolic(structure, what, model_name, hint):
    """The symbolic tensors of `structure`, flattened; a clear error otherwise."""
    flat = _tree.flatten(structure)
    if not flat:
        raise ValueError(f"Model '{model_name}': {what}s is empty")
    for i, t in enumerate(flat):
        if not isinstance(t, KerasTensor) or t._keras_history is None:
            raise ValueError(f"Model '{model_name}': {what} {i} is {t!r}, not a symbolic tensor"
                             f"{hint}")
    return flat


def check_inputs(inputs, model_name):
    flat = _symbolic(inputs, "input", model_name, "; a functional model's inputs must come "
                                                  "from keras.Input(...)")
    for i, t in enumerate(flat):
        if not t.node.is_input:
            raise ValueError(f"Model '{model_name}': input {i} ({t!r}) is the output of layer "
                             f"'{t._keras_history[0].name}', not a keras.Input(...); rnnfast builds "
                             f"models from their Input tensors")
    if len({id(t) for t in flat}) != len(flat):
        raise ValueError(f"Model '{model_name}': the same Input is listed twice in inputs")
    return flat


def check_outputs(outputs, model_name):
    return _symbolic(outputs, "output", model_name, " produced by a layer")


def _build_map(outputs):
    """Nodes from the inputs to `outputs` (depth-first, topological), and each
    layer's first traversal index (Keras's deterministic tie-break)."""
    finished, in_progress, ordered, layer_index = set(), set(), [], {}

    def visit(tensor):
        node = tensor.node
        if node in finished:
            return
        if node in in_progress:
            raise ValueError(f"the graph has a cycle through layer '{node.layer.name}'")
        layer_index.setdefault(node.layer, len(layer_index))
        in_progress.add(node)
        if not node.is_input:
            for t in node.all_input_tensors:
                visit(t)
        finished.add(node)
        in_progress.discard(node)
        ordered.append(node)

    for t in outputs:
        visit(t)
    return ordered, layer_index


def map_graph(flat_inputs, flat_outputs, model_name):
    """(nodes to run, in execution order; layers in Keras's model.layers order)."""
    ordered, layer_index = _build_map(flat_outputs)
    in_graph = set(ordered)
    node_depth, layer_depth = {}, {}
    for node in reversed(ordered):
        depth = node_depth.setdefault(node, 0)
        depth = max(depth, layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth
        node_depth[node] = depth
        for parent in node.parent_nodes:
            if parent in in_graph:
                node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for t in flat_inputs:  # inputs that reach no output still belong to the model
        layer = t._keras_history[0]
        if layer not in layer_depth:
            layer_depth[layer] = 0
            layer_index[layer] = -1
            node_depth[t.node] = 0
    # Every tensor a node needs must come from the declared inputs.
    computable = {id(t) for t in flat_inputs}
    nodes = sorted(node_depth, key=lambda n: -node_depth[n])
    for node in nodes:
        if node.is_input:
            if id(node.outputs[0]) not in computable:
                used_by = [n.layer.name for n in nodes if not n.is_input and
                           any(t is node.outputs[0] for t in n.all_input_tensors)]
                raise ValueError(
                    f"Model '{model_name}': graph disconnected: the outputs depend on Input "
                    f"'{node.layer.name}' (used by layer(s) {used_by}), which is not among the "
                    f"model's inputs {[t._keras_history[0].name for t in flat_inputs]}")
            continue
        computable.update(id(t) for t in node.outputs)
    for t in flat_outputs:
        if id(t) not in computable:
            raise ValueError(f"Model '{model_name}': output {t!r} cannot be computed from the "
                             f"inputs")
    by_depth = collections.defaultdict(list)
    for layer, depth in layer_depth.items():
        by_depth[depth].append(layer)
    layers = []
    for depth in sorted(by_depth, reverse=True):
        layers += sorted(by_depth[depth], key=lambda lyr: layer_index[lyr])
    names = [layer.name for layer in layers]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"Model '{model_name}': the name \"{name}\" is used "
                             f"{names.count(name)} times in the model; all layer names should be "
                             f"unique")
    run = [n for n in nodes if not n.is_input]
    return run, layers
