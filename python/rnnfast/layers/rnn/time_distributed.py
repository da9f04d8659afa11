"""TimeDistributed: applies a layer to every time step of [batch, time, ...] inputs."""

from __future__ import annotations

import numpy as np

from .. import registry
from ..layer import Layer
from ..registry import register


@register
class TimeDistributed(Layer):
    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a layer instance. "
                             f"Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer
        self._layers = [layer]

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"`TimeDistributed` requires inputs of at least rank 3 (batch, time, "
                             f"...), got {input_shape}")
        self.layer._path_prefix = self.name + "/"
        self.layer.maybe_build((None,) + tuple(input_shape[2:]))
        self.built = True

    def forward(self, ctx, inputs, training=False, mask=None):
        x = np.asarray(inputs)
        B, T = x.shape[:2]
        y = self.layer.forward(ctx.child("inner"), x.reshape((B * T,) + x.shape[2:]),
                               training=training)
        if training:
            ctx.saved = x.shape
        return y.reshape((B, T) + y.shape[1:])

    def backward(self, ctx, grad, need_input_grad=True):
        shape = ctx.saved
        B, T = shape[:2]
        g = grad.reshape((B * T,) + grad.shape[2:])
        dx = self.layer.backward(ctx.child("inner"), g, need_input_grad=need_input_grad)
        return None if dx is None else dx.reshape(shape)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def get_config(self):
        return {**super().get_config(), "layer": registry.serialize(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("build_config", None)
        config["layer"] = registry.deserialize(config["layer"], custom_objects)
        return cls(**config)
