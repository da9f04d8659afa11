"""Functional models' configs in Keras 3's format: every layer with its
``inbound_nodes`` (each call's arguments, symbolic tensors written as
``{"class_name": "__keras_tensor__", "config": {"keras_history": [layer,
node, output]}}``), and the model's ``input_layers``/``output_layers``.
Reading also takes Keras 2's list form of inbound nodes. Nothing is executed:
layers come from the registry, tensors from the nodes already rebuilt."""

from __future__ import annotations

from .. import _tree
from ..layers import registry
from ..layers.node import KerasTensor, own_node_index


class _NotReady(Exception):
    """A node refers to a call that has not been rebuilt yet."""


def _tensor_config(t, own):
    layer, _, index = t._keras_history
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(t.shape), "dtype": t.dtype,
                       "keras_history": [layer.name, own_node_index(t.node, own), index]}}


def _serialize_value(value, own):
    if isinstance(value, KerasTensor):
        return _tensor_config(value, own)
    if isinstance(value, (list, tuple)):
        return [_serialize_value(v, own) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_value(v, own) for k, v in value.items()}
    return value


def get_config(model):
    own = model._node_set
    layers = []
    for layer in model._operations:
        config = registry.serialize(layer)
        config["name"] = layer.name
        nodes = [n for n in layer._inbound_nodes if n in own and not n.is_input]
        config["inbound_nodes"] = [
            {"args": [_serialize_value(n.inputs, own)],
             "kwargs": {k: _serialize_value(v, own) for k, v in n.kwargs.items()
                        if k != "training"}} for n in nodes]
        layers.append(config)

    def ref(t):
        layer = t._keras_history[0]
        # Keras counts a functional model's own construction as its node 0 here
        # (not in inbound_nodes): its first call is node 1.
        offset = 1 if type(layer).__name__ == "Functional" else 0
        return [layer.name, own_node_index(t.node, own) + offset, t._keras_history[2]]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _tree.map_structure(ref, model._inputs_struct),
            "output_layers": _tree.map_structure(ref, model._outputs_struct)}


def _lookup(created, name, node_index, tensor_index):
    layer = created.get(name)
    if layer is None:
        raise ValueError(f"the config refers to a layer {name!r} it does not define")
    nodes = [n for n in layer._inbound_nodes if not n.is_input] \
        if not _is_input_layer(layer) else layer._inbound_nodes
    if not isinstance(node_index, int) or node_index < 0:
        raise ValueError(f"invalid node index {node_index!r} for layer {name!r}")
    if node_index >= len(nodes):
        raise _NotReady(name)
    outputs = nodes[node_index].outputs
    if not isinstance(tensor_index, int) or not 0 <= tensor_index < len(outputs):
        raise ValueError(f"layer {name!r} has no output {tensor_index!r}")
    return outputs[tensor_index]


def _is_input_layer(layer):
    return type(layer).__name__ == "InputLayer"


def _revive(value, created):
    """Configs of call arguments back to values, symbolic tensors looked up."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            if not isinstance(history, list) or len(history) != 3:
                raise ValueError(f"a symbolic tensor in the config has no valid keras_history: "
                                 f"{value!r}")
            return _lookup(created, *history)
        if value.get("class_name") == "__tuple__":
            return [_revive(v, created) for v in (value.get("config") or {}).get("value", [])]
        return {k: _revive(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v, created) for v in value]
    return value


def _node_call(layer, data, created):
    if isinstance(data, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
        inputs, kwargs = [], {}
        for entry in data:
            if not isinstance(entry, list) or len(entry) not in (3, 4):
                raise ValueError(f"layer '{layer.name}': unreadable inbound node {entry!r}")
            inputs.append(_lookup(created, entry[0], entry[1], entry[2]))
            if len(entry) == 4 and isinstance(entry[3], dict):
                kwargs.update(_revive(entry[3], created))
        args = [inputs[0] if len(inputs) == 1 else inputs]
    elif isinstance(data, dict):
        args = _revive(data.get("args", []), created)
        kwargs = _revive(data.get("kwargs", {}), created)
        if not isinstance(args, list) or not args or not isinstance(kwargs, dict):
            raise ValueError(f"layer '{layer.name}': unreadable inbound node {data!r}")
    else:
        raise ValueError(f"layer '{layer.name}': unreadable inbound node {data!r}")
    kwargs.pop("training", None)
    if kwargs.get("mask", 0) is None:
        del kwargs["mask"]
    layer(*args, **kwargs)


def _as_lists(value):
    """A config with tuples as lists (Keras's in-memory configs hold tuples)."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def from_config(cls, config, custom_objects=None):
    if isinstance(config, dict):
        config = {k: (_as_lists(v) if k in ("input_layers", "output_layers") else v)
                  for k, v in config.items()}
        if isinstance(config.get("layers"), (list, tuple)):
            config["layers"] = [
                {k: (_as_lists(v) if k == "inbound_nodes" else v) for k, v in layer.items()}
                if isinstance(layer, dict) else layer for layer in config["layers"]]
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("a functional model's config lists its layers")
    for key in ("input_layers", "output_layers"):
        if key not in config:
            raise ValueError(f"a functional model's config has no {key}")
    created, pending, order = {}, {}, []
    for layer_data in config["layers"]:
        if not isinstance(layer_data, dict):
            raise ValueError(f"not a layer config: {layer_data!r}")
        layer = registry.deserialize(layer_data, custom_objects)
        name = layer_data.get("name") or layer.name
        if name in created:
            raise ValueError(f"the config defines the layer {name!r} twice")
        created[name] = layer
        nodes = layer_data.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"layer {name!r}: inbound_nodes is not a list")
        pending[name] = list(nodes)
        order.append(name)
    while any(pending.values()):
        progressed = False
        for name in order:
            queue = pending[name]
            while queue:
                try:
                    _node_call(created[name], queue[0], created)
                except _NotReady:
                    break
                queue.pop(0)
                progressed = True
        if not progressed:
            stuck = [n for n in order if pending[n]]
            raise ValueError(f"invalid functional model config: the calls of layer(s) {stuck} "
                             f"refer to calls that never happen (a loop or a missing layer)")

    def tensor(ref):
        if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str):
            name, node_index, tensor_index = ref
            if type(created.get(name)).__name__ == "Functional" and isinstance(node_index, int):
                node_index -= 1  # see get_config: Keras's offset for nested models
            return _lookup(created, name, node_index, tensor_index)
        if isinstance(ref, dict):
            return {k: tensor(v) for k, v in ref.items()}
        if isinstance(ref, list):
            return [tensor(v) for v in ref]
        raise ValueError(f"unreadable input/output reference {ref!r}")

    try:
        inputs = tensor(config["input_layers"])
        outputs = tensor(config["output_layers"])
    except _NotReady as e:
        raise ValueError(f"the model's inputs or outputs refer to a call of layer {e} that the "
                         f"config does not make") from None
    # Keras writes one input/output as a one-element list in some versions.
    return cls(inputs=inputs, outputs=outputs, name=config.get("name"),
               trainable=config.get("trainable", True))
