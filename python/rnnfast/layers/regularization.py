"""SpatialDropout1D (Keras 3's layers/regularization/spatial_dropout.py):
dropout of whole channels of a sequence."""

from __future__ import annotations

import numbers

import numpy as np

from .core import Dropout
from .registry import register


@register
class SpatialDropout1D(Dropout):
    """While training, zeroes whole feature maps of [batch, steps, channels]
    inputs: one draw per (sample, channel), kept with probability 1 - rate
    and scaled by 1/(1-rate), the same for every step (noise shape
    (batch, 1, channels)). The identity at inference. Passes a mask on, as
    Keras's Dropout does.

    Its arguments and config are Keras's exactly: rate, seed, name, dtype
    (Keras's spatial dropouts take no trainable or noise_shape). rate=1 is
    allowed, as in Keras, and zeroes everything. Masks come from the layer's
    own generator when it has a seed, else from rnnfast's global one
    (``rnnfast.utils.set_random_seed``), as for Dropout."""

    def __init__(self, rate, seed=None, name=None, dtype=None):
        if (not isinstance(rate, numbers.Real) or isinstance(rate, bool)
                or not 0 <= rate <= 1):
            raise ValueError(f"SpatialDropout1D: invalid value received for argument `rate`. "
                             f"Expected a float value between 0 and 1. Received: rate={rate!r}")
        # Dropout with one draw per (sample, channel), shared by all steps.
        super().__init__(rate, noise_shape=(None, 1, None), seed=seed, name=name, dtype=dtype)

    def _check_rank(self, shape):
        if len(shape) != 3:
            raise ValueError(f"SpatialDropout1D '{self.name}' expects inputs of rank 3 "
                             f"(batch, steps, channels), got shape {tuple(shape)}")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape)

    def forward(self, ctx, inputs, training=False, mask=None):
        self._check_rank(np.shape(inputs))
        return super().forward(ctx, inputs, training=training, mask=mask)

    def get_config(self):
        # Keras's BaseSpatialDropout.get_config: these four keys, dtype as a plain string.
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("build_config", None)
        # Keras 2 wrote Dropout's keys for its spatial dropouts too; the noise shape is
        # fixed by the class and a weightless layer's trainable flag changes nothing.
        config.pop("trainable", None)
        config.pop("noise_shape", None)
        return cls(**config)
