"""Functional models: a graph of layer calls from Inputs to outputs (Keras 3's
models/functional.py), and rnnfast's one forward/backward engine.

Forward runs the nodes in topological order, each with its own context (kept
from step to step, so kernels' workspaces are reused), passing masks along
the edges. Backward runs them in reverse, summing the gradients of a tensor
that feeds several nodes, and calls a node's backward only when something
upstream needs it: a first recurrent layer is asked for no input gradient.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _tree
from ..layers.layer import Context
from ..layers.node import KerasTensor
from ..layers.registry import register
from . import graph
from .model import Model


class _Step:
    """One node as the engine runs it: tensors are integer slots."""

    __slots__ = ("layer", "inputs", "kwargs", "outs", "multi", "in_slots", "all_in_slots",
                 "weighted", "kw_tensors", "nested")

    def __init__(self, node, slot_of):
        self.layer = node.layer
        self.inputs = _tree.map_structure(lambda t: slot_of[id(t)], node.inputs)
        kwargs = {k: v for k, v in node.kwargs.items() if k != "training"}
        if kwargs.get("mask", 0) is None:
            del kwargs["mask"]
        self.kwargs = {k: _tree.map_structure(
            lambda t: _Slot(slot_of[id(t)]) if isinstance(t, KerasTensor) else t, v)
            for k, v in kwargs.items()}
        self.outs = [slot_of[id(t)] for t in node.outputs]
        self.multi = isinstance(node.output_structure, (list, tuple))
        self.in_slots = _tree.flatten(self.inputs)
        self.all_in_slots = self.in_slots + [s.slot for s in _tree.flatten(list(self.kwargs.values()))
                                             if isinstance(s, _Slot)]
        self.weighted = bool(node.layer.weights)
        self.kw_tensors = len(self.all_in_slots) > len(self.in_slots)
        self.nested = isinstance(node.layer, Functional)


class PreparedInputs(list):
    """Inputs already checked and converted by prepare_inputs (not again)."""


class _Slot:
    __slots__ = ("slot",)

    def __init__(self, slot):
        self.slot = slot


def _gather(structure, values):
    """The values of an inputs structure, whose leaves are all slots."""
    if isinstance(structure, int):
        return values[structure]
    if isinstance(structure, (list, tuple)):
        return [_gather(s, values) for s in structure]
    if isinstance(structure, dict):
        return {k: _gather(v, values) for k, v in structure.items()}
    return structure


def _gather_kwargs(kwargs, values):
    """Keyword arguments with their tensors (slots) looked up; constants, ints
    included, stay as they are."""
    def get(v):
        if isinstance(v, _Slot):
            return values[v.slot]
        if isinstance(v, (list, tuple)):
            return [get(x) for x in v]
        if isinstance(v, dict):
            return {k: get(x) for k, x in v.items()}
        return v
    return {k: get(v) for k, v in kwargs.items()}


def _scatter(structure, grads, into, wanted, kw=False):
    """Adds the gradients `grads` (in `structure`'s shape) into the slots. In
    keyword arguments (kw) only _Slot leaves are tensors; other leaves are
    constants."""
    if grads is None:
        return
    if isinstance(structure, _Slot) or (not kw and isinstance(structure, int)):
        slot = structure.slot if isinstance(structure, _Slot) else structure
        if wanted[slot]:
            into[slot] = grads if into[slot] is None else into[slot] + grads
        return
    if isinstance(structure, dict):
        for k, s in structure.items():
            _scatter(s, grads.get(k) if isinstance(grads, dict) else None, into, wanted, kw)
        return
    if isinstance(structure, (list, tuple)):
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"a backward returned {type(grads).__name__} for a list of inputs")
        for s, g in zip(structure, grads):
            _scatter(s, g, into, wanted, kw)


@register
class Functional(Model):
    """A model defined by keras.Model(inputs, outputs)."""

    KERAS_MODULE = "keras.src.models.functional"

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unexpected keyword argument(s) {sorted(kwargs)}")
        super().__init__(name=name, trainable=trainable)
        self._init_graph(inputs, outputs)

    # ---- the graph ------------------------------------------------------------------

    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        if isinstance(outputs, list) and len(outputs) == 1:
            outputs = outputs[0]  # Keras unpacks a single output
        flat_in = graph.check_inputs(inputs, self.name)
        flat_out = graph.check_outputs(outputs, self.name)
        nodes, layers = graph.map_graph(flat_in, flat_out, self.name)
        if any(layer is self for layer in layers):
            raise ValueError(f"Model '{self.name}' cannot contain itself")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._flat_inputs, self._flat_outputs = flat_in, flat_out
        self._nodes = nodes
        self._node_set = set(nodes) | {t.node for t in flat_in}
        self._operations = layers  # Keras's ops (NotEqual) included, for configs
        self._layers = [lyr for lyr in layers if not getattr(lyr, "IS_OPERATION", False)]
        slot_of = {}
        for t in flat_in:
            slot_of[id(t)] = len(slot_of)
        for node in nodes:
            for t in node.outputs:
                slot_of.setdefault(id(t), len(slot_of))
        self._num_slots = len(slot_of)
        self._input_slots = [slot_of[id(t)] for t in flat_in]
        self._output_slots = [slot_of[id(t)] for t in flat_out]
        self._steps = [_Step(node, slot_of) for node in nodes]
        self._single_output = not isinstance(outputs, (list, dict))
        self._plans = {}
        self._owners = None  # every layer is built by now: the weights are fixed
        self._output_names = self._names(outputs, flat_out)
        self._input_names = self._names(inputs, flat_in)
        # Per input: (name, rank, [(axis, known size)], dtype to convert to).
        self._input_specs = [(name, len(t.shape),
                              [(a, d) for a, d in enumerate(t.shape) if a and d is not None],
                              self._input_cast(t))
                             for name, t in zip(self._input_names, flat_in)]
        # A declared Input's known sizes are checked, as Keras checks them; a shape
        # inferred from the first data (Sequential without an Input) fixes the rank only.
        self._check_shapes = getattr(self, "_check_shapes", True)
        self.built = True

    @staticmethod
    def _names(structure, flat):
        if isinstance(structure, dict):
            return sorted(structure)
        names = []
        for t in flat:
            name = t._keras_history[0].name
            names.append(name if name not in names else f"{name}_{names.count(name)}")
        return names

    def _input_cast(self, tensor):
        """The dtype an input is converted to once per batch (None: integers
        that pass through to an Embedding)."""
        declared = np.dtype(tensor.dtype)
        if declared.kind in "iu":
            return None
        consumers = {n.layer.compute_dtype for n in self._nodes
                     if any(t is tensor for t in n.all_input_tensors)}
        return consumers.pop() if len(consumers) == 1 else declared

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._flat_inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._flat_outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def inputs(self):
        return list(self._flat_inputs)

    @property
    def outputs(self):
        return list(self._flat_outputs)

    @property
    def input_names(self):
        return list(self._input_names)

    @property
    def output_names(self):
        return list(self._output_names)

    def _weight_owners(self):
        """(variable, the layers that own it, outermost first) for every weight,
        in weights order; fixed once the graph is built."""
        owners = getattr(self, "_owners", None)
        if owners is None:
            owners = []

            def walk(layer, chain):
                chain = chain + (layer,)
                owners.extend((v, chain) for v in layer._variables)
                for sub in layer._layers:
                    walk(sub, chain)

            walk(self, ())
            self._owners = owners
        return owners

    @property
    def trainable_weights(self) -> list:
        # The weights whose owners are all trainable: what Layer.trainable_weights
        # gives, without its recursion on every training step.
        return [v for v, chain in self._weight_owners()
                if v.trainable and all(layer.trainable for layer in chain)]

    def zero_grad(self):
        for v, _ in self._weight_owners():
            v.grad = None

    def _input_count(self):
        return len(self._flat_inputs)

    def _output_count(self):
        return len(self._flat_outputs)

    def pack_outputs(self, flat):
        return _tree.pack_sequence_as(self._outputs_struct, list(flat))

    # ---- running it -------------------------------------------------------------------

    def prepare_inputs(self, inputs):
        """The model's inputs, in its input order, as arrays of the right types;
        a clear error when their number, rank or feature size is wrong."""
        if type(inputs) is PreparedInputs:
            return inputs
        n = len(self._flat_inputs)
        if n == 1 and type(inputs) is np.ndarray:
            flat = [inputs]
        elif isinstance(inputs, dict):
            missing = [k for k in self._input_names if k not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}': missing input(s) {missing}; got a dict "
                                 f"with keys {sorted(inputs)}")
            extra = sorted(set(inputs) - set(self._input_names))
            if extra:
                warnings.warn(f"Model '{self.name}': input(s) {extra} match no model input and "
                              f"are ignored (inputs: {self._input_names})", UserWarning,
                              stacklevel=3)
            flat = [inputs[k] for k in self._input_names]
        elif n > 1:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != n:
                got = f"{len(inputs)} arrays" if isinstance(inputs, (list, tuple)) else \
                    f"one {type(inputs).__name__}"
                raise ValueError(f"Model '{self.name}' takes {n} inputs {self._input_names}, as a "
                                 f"list or a dict; got {got}")
            flat = list(inputs)
        else:
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and \
                    isinstance(inputs[0], np.ndarray):
                inputs = inputs[0]
            flat = [inputs]
        out = PreparedInputs()
        for x, spec in zip(flat, self._input_specs):
            name, rank, known, cast = spec
            x = np.asarray(x)
            if x.dtype.kind not in "biuf":
                raise ValueError(f"Model '{self.name}': input '{name}' holds {x.dtype} values, "
                                 f"not numbers")
            shape = x.shape
            if len(shape) != rank or (self._check_shapes and known and
                                      any(shape[axis] != size for axis, size in known)):
                raise ValueError(f"Model '{self.name}': input '{name}' expects arrays of shape "
                                 f"{self._flat_inputs[len(out)].shape}, got {shape}")
            if cast is not None and x.dtype != cast:
                x = x.astype(cast)
            out.append(x)
        return out

    def forward(self, ctx, inputs, training=False, mask=None):
        xs = inputs if type(inputs) is PreparedInputs else self.prepare_inputs(inputs)
        values = [None] * self._num_slots
        masks = [None] * self._num_slots
        for slot, x in zip(self._input_slots, xs):
            values[slot] = x
        if mask is not None:
            for slot, m in zip(self._input_slots, _tree.flatten(mask)):
                masks[slot] = m
        contexts = ctx.__dict__.get("nodes")
        if contexts is None or ctx.__dict__.get("graph") is not self._steps:
            contexts = ctx.nodes = [Context() for _ in self._steps]
            ctx.graph = self._steps  # a rebuilt graph (Sequential.add) gets new contexts
        activity = []
        for step, c in zip(self._steps, contexts):
            inputs_ = step.inputs
            if type(inputs_) is int:  # the common case: one input tensor
                x, m = values[inputs_], masks[inputs_]
            else:
                x, m = _gather(inputs_, values), _gather(inputs_, masks)
                if isinstance(m, list) and all(v is None for v in m):
                    m = None
            layer = step.layer
            if step.kwargs:
                kwargs = _gather_kwargs(step.kwargs, values)
                if "mask" in kwargs:
                    m = kwargs.pop("mask")
                    call_mask = m
                else:
                    # Keras passes the incoming mask only to a call with one tensor
                    # argument: an RNN given initial_state tensors runs unmasked, while
                    # its outputs still carry the sequences' mask.
                    call_mask = None if step.kw_tensors else m
                y = layer.forward(c, x, training=training, mask=call_mask, **kwargs)
            else:
                y = layer.forward(c, x, training=training, mask=m)
            if step.nested:  # a model inside: its outputs' masks come from its own graph
                out_mask = c.output_mask
            else:
                out_mask = layer.compute_mask(x, m)
            if step.multi:
                if isinstance(y, dict):  # a nested model with dict outputs
                    y = _tree.flatten(y)
                    out_mask = _tree.flatten(out_mask)
                if not isinstance(out_mask, (list, tuple)):
                    # One mask goes with the first output only, as Keras pairs them.
                    out_mask = [out_mask] + [None] * (len(step.outs) - 1)
                for slot, value, mk in zip(step.outs, y, out_mask):
                    values[slot], masks[slot] = value, mk
            else:
                slot = step.outs[0]
                values[slot], masks[slot] = y, out_mask
            if layer.activity_regularizer is not None:
                activity.append((step, [values[s] for s in step.outs]))
        ctx.activity = activity
        if self._single_output:
            slot = self._output_slots[0]
            ctx.output_mask = masks[slot]
            return values[slot]
        ctx.output_mask = _tree.pack_sequence_as(self._outputs_struct,
                                                 [masks[s] for s in self._output_slots])
        return _tree.pack_sequence_as(self._outputs_struct, [values[s] for s in self._output_slots])

    def _grad_plan(self, need_input_grad):
        """(per slot: whether its gradient is needed, because something upstream
        has trainable weights or it is an input whose gradient was asked; per
        step: whether its inputs need a gradient). Cached per trainable flags."""
        key = (need_input_grad,) + tuple(s.layer.trainable for s in self._steps)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        wanted = [False] * self._num_slots
        for slot in self._input_slots:
            wanted[slot] = need_input_grad
        need_in = []
        for step in self._steps:
            upstream = any(wanted[s] for s in step.all_in_slots)
            need_in.append(any(wanted[s] for s in step.in_slots))
            need = (step.weighted and step.layer.trainable) or upstream
            for s in step.outs:
                wanted[s] = need
        plan = self._plans[key] = (wanted, need_in)
        return plan

    def _ready_plan(self):
        """Per step index i: the weights whose gradients are complete once the
        backward has passed step i, i.e. i is the earliest step (in forward
        order) of a layer that owns them, so a shared layer's weights wait for
        its last-run step. Weights no step owns come with step 0, the last."""
        plan = self._plans.get("ready")
        if plan is not None:
            return plan
        first = {}
        for i, step in enumerate(self._steps):
            for v in step.layer.weights:
                first.setdefault(id(v), i)
        plan = [[] for _ in range(max(1, len(self._steps)))]
        for v, _ in self._weight_owners():
            i = first.get(id(v), 0)
            if all(w is not v for w in plan[i]):
                plan[i].append(v)
        self._plans["ready"] = plan
        return plan

    def backward(self, ctx, grads, need_input_grad=True):
        grads_in = [None] * self._num_slots
        if self._single_output and not isinstance(grads, (list, dict)):
            grads_in[self._output_slots[0]] = grads
        else:
            for slot, g in zip(self._output_slots, _tree.flatten(grads)):
                if g is not None:
                    grads_in[slot] = g if grads_in[slot] is None else grads_in[slot] + g
        for step, outs in ctx.activity:
            for slot, value in zip(step.outs, outs):
                g = step.layer.activity_gradient(value)
                grads_in[slot] = g if grads_in[slot] is None else grads_in[slot] + g
        wanted, needs_in = self._grad_plan(need_input_grad)
        contexts = ctx.nodes
        # A data-parallel step's hook: called after every step with the weights
        # whose gradients that step completed (maybe none), so that their
        # allreduce overlaps the backward of the steps below.
        ready = ctx.__dict__.get("on_grads_ready")
        release = self._ready_plan() if ready is not None else None
        for i in range(len(self._steps) - 1, -1, -1):
            if release is not None and i + 1 < len(self._steps):
                ready(release[i + 1])
            step = self._steps[i]
            if step.multi:
                g = [grads_in[s] for s in step.outs]
                if all(v is None for v in g):
                    continue
            else:
                g = grads_in[step.outs[0]]
                if g is None:
                    continue
            if not wanted[step.outs[0]]:
                continue
            need_in = needs_in[i]
            c = contexts[i]
            dx = step.layer.backward(c, g, need_input_grad=need_in)
            if need_in:
                inputs_ = step.inputs
                if type(inputs_) is int:
                    if dx is not None:
                        prev = grads_in[inputs_]
                        grads_in[inputs_] = dx if prev is None else prev + dx
                else:
                    _scatter(inputs_, dx, grads_in, wanted)
            if step.kwargs:
                kw_grads = c.__dict__.pop("kwarg_grads", None)
                if kw_grads:
                    for k, kg in kw_grads.items():
                        if k in step.kwargs:
                            _scatter(step.kwargs[k], kg, grads_in, wanted, kw=True)
        if release is not None:
            ready(release[0])
        if not need_input_grad:
            return None
        return _tree.pack_sequence_as(self._inputs_struct,
                                      [grads_in[s] for s in self._input_slots])

    def activity_penalty_of(self, ctx) -> float:
        penalty = 0.0
        for step, outs in getattr(ctx, "activity", ()):
            penalty += sum(step.layer.activity_penalty(v) for v in outs)
        for step, c in zip(self._steps, ctx.__dict__.get("nodes", ())):
            if step.nested:  # the penalties inside a nested model (its backward adds theirs)
                penalty += step.layer.activity_penalty_of(c)
        return penalty

    # ---- as a layer inside another model ------------------------------------------------

    def compute_output_spec(self, input_shape, **kwargs):
        shapes = _tree.flatten(input_shape) if len(self._flat_inputs) > 1 else [input_shape]
        if len(shapes) != len(self._flat_inputs):
            raise ValueError(f"model '{self.name}' takes {len(self._flat_inputs)} inputs, got "
                             f"{len(shapes)}")
        for s, t in zip(shapes, self._flat_inputs):
            if len(s) != len(t.shape) or (t.shape[-1] is not None and s[-1] != t.shape[-1]):
                raise ValueError(f"model '{self.name}' expects an input of shape {t.shape}, got "
                                 f"{tuple(s)}")
        out = [t.shape for t in self._flat_outputs]
        return out if len(out) > 1 else out[0]

    def compute_mask(self, inputs, mask=None):
        return None

    # ---- config -----------------------------------------------------------------------

    def get_config(self):
        from . import functional_config

        return functional_config.get_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import functional_config

        return functional_config.from_config(cls, config, custom_objects)


Model._functional_class = Functional
