"""Bidirectional wrapper: a forward and a backward copy of a recurrent layer."""

from __future__ import annotations

import numpy as np

from .. import registry
from ..layer import Layer
from ..registry import register

MERGE_MODES = ("sum", "mul", "ave", "concat", None)


@register
class Bidirectional(Layer):
    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `Bidirectional` layer with a layer instance. "
                             f"Received: {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` needs to be a layer instance. Received: "
                             f"{backward_layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode!r}. Merge mode should be "
                             f'one of {{"sum", "mul", "ave", "concat", None}}')
        super().__init__(**kwargs)
        # As Keras: both directions are fresh layers built from the given
        # one's config, so that they carry no state over from it.
        config = registry.serialize(layer)
        config["config"]["name"] = "forward_" + layer.name.removeprefix("forward_")
        self.forward_layer = registry.deserialize(config)
        if backward_layer is None:
            config = registry.serialize(layer)
            config["config"]["go_backwards"] = not layer.go_backwards
            config["config"]["name"] = "backward_" + layer.name.removeprefix("backward_")
            self.backward_layer = registry.deserialize(config)
        else:
            self.backward_layer = backward_layer
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError("Forward layer and backward layer should have different "
                             "`go_backwards` value.")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(f, a) != getattr(b, a):
                raise ValueError(f'Forward layer and backward layer are expected to have the same '
                                 f'value for attribute "{a}"')
        # Keras: with return_sequences, masked steps output zeros.
        for sub in (f, b):
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = sub.return_sequences
        self._layers = [f, b]
        self.merge_mode = merge_mode
        self._initial_weights = weights
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def build(self, sequences_shape):
        self.forward_layer.maybe_build(sequences_shape)
        self.backward_layer.maybe_build(sequences_shape)
        self.built = True
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _n_states(self):
        return self.forward_layer.cell.STATES

    def forward(self, ctx, sequences, initial_state=None, mask=None, training=False):
        f_state = b_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            f_state, b_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer.forward(ctx.child("f"), sequences, initial_state=f_state, mask=mask,
                                       training=training)
        y_rev = self.backward_layer.forward(ctx.child("b"), sequences, initial_state=b_state,
                                            mask=mask, training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        if training:
            ctx.saved = (y, y_rev, y.shape[-1], initial_state is not None)
        if self.merge_mode == "concat":
            output = np.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / y.dtype.type(2)
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if self.return_state:
            return (output if isinstance(output, list) else [output]) + states
        return output

    def backward(self, ctx, grad, need_input_grad=True):
        y, y_rev, units, given_state = ctx.saved
        grads = list(grad) if isinstance(grad, list) else [grad]
        n_out = 2 if self.merge_mode is None else 1
        outs, states = grads[:n_out], grads[n_out:]
        states += [None] * (2 * self._n_states() - len(states))
        g_f = g_b = None
        if self.merge_mode is None:
            g_f, g_b = outs
        elif outs[0] is not None:
            g = np.asarray(outs[0], y.dtype)
            if self.merge_mode == "concat":
                g_f, g_b = g[..., :units], g[..., units:]
            elif self.merge_mode == "sum":
                g_f = g_b = g
            elif self.merge_mode == "ave":
                g_f = g_b = g / g.dtype.type(2)
            else:  # mul
                g_f, g_b = g * y_rev, g * y
        if g_b is not None and self.return_sequences:
            g_b = g_b[:, ::-1]
        n = self._n_states()
        dx = None
        kwarg_grads = []
        for key, sub, g_out, g_states in (("f", self.forward_layer, g_f, states[:n]),
                                          ("b", self.backward_layer, g_b, states[n:])):
            sub_ctx = ctx.child(key)
            if g_out is None and all(s is None for s in g_states):
                kwarg_grads += [None] * n
                continue
            g_out = None if g_out is None else np.ascontiguousarray(g_out)
            sub_grad = [g_out] + list(g_states) if self.return_state else g_out
            d = sub.backward(sub_ctx, sub_grad, need_input_grad=need_input_grad)
            if d is not None:
                dx = d.copy() if dx is None else dx + d  # sub-layers reuse their dx buffers
            if given_state:
                init = sub_ctx.__dict__.pop("kwarg_grads", {}).get("initial_state")
                kwarg_grads += list(init) if isinstance(init, (list, tuple)) else [init]
        if given_state:
            ctx.kwarg_grads = {"initial_state": kwarg_grads}
        ctx.saved = None
        return dx

    def reset_state(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self):
        self.reset_state()

    @property
    def states(self):
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def compute_output_shape(self, sequences_shape):
        out = self.forward_layer.compute_output_shape(sequences_shape)
        state_shapes = []
        if self.return_state:
            out, state_shapes = out[0], list(out[1:])
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (None if out[-1] is None else 2 * out[-1],)
        elif self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + state_shapes * 2
        return out

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            out = [mask, mask] if self.merge_mode is None else mask
        else:
            out = [None, None] if self.merge_mode is None else None
        if self.return_state:
            n = len(self.forward_layer.cell.state_size) if self.forward_layer.cell.STATES > 1 else 1
            return (out if isinstance(out, list) else [out]) + [None] * (2 * n)
        return out

    def get_config(self):
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": registry.serialize(self.forward_layer),
                "backward_layer": registry.serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("build_config", None)
        config["layer"] = registry.deserialize(config["layer"], custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = registry.deserialize(config["backward_layer"],
                                                            custom_objects)
        return cls(**config)
