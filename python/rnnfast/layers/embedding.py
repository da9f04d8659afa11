"""Embedding: integer indices -> dense vectors."""

from __future__ import annotations

import numpy as np

from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .layer import Layer
from .registry import register


@register
class Embedding(Layer):
    accepts_integer_inputs = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, quantization_config=None,
                 input_length=None, **kwargs):
        # input_length: Keras 2's argument, accepted (and unused) so that old
        # tutorials run; the sequence length comes from the data.
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {v!r}")
        if lora_rank is not None or quantization_config is not None:
            raise ValueError("Embedding: lora_rank and quantization_config are not supported by "
                             "rnnfast")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers_module.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers_module.get(embeddings_regularizer)
        self.embeddings_constraint = constraints_module.get(embeddings_constraint)
        self.mask_zero = mask_zero
        self.input_length = input_length
        self._initial_weights = weights

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim),
                                          self.embeddings_initializer, "embeddings",
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _indices(self, inputs):
        ids = np.asarray(inputs)
        if not np.issubdtype(ids.dtype, np.integer):
            if ids.size and not np.all(np.equal(np.mod(ids, 1), 0)):
                raise ValueError(f"Embedding '{self.name}' expects integer indices, got non-integer "
                                 f"values of dtype {ids.dtype}")
            ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise ValueError(f"Embedding '{self.name}': index {bad} is outside [0, {self.input_dim}) "
                             f"(input_dim={self.input_dim})")
        return ids

    def forward(self, ctx, inputs, training=False, mask=None):
        ids = self._indices(inputs)
        if training:
            ctx.saved = ids
        return self.embeddings.value[ids]

    def backward(self, ctx, grad, need_input_grad=True):
        if self.trainable:
            ids = ctx.saved
            g = np.zeros_like(self.embeddings.value)
            np.add.at(g, ids.reshape(-1), grad.reshape(-1, self.output_dim))
            self.embeddings.add_grad(g)
        return None  # indices have no gradient

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers_module.serialize(self.embeddings_initializer),
                "embeddings_regularizer": (regularizers_module.serialize(self.embeddings_regularizer)
                                           if self.embeddings_regularizer is not None else None),
                "activity_regularizer": None,
                "embeddings_constraint": (constraints_module.serialize(self.embeddings_constraint)
                                          if self.embeddings_constraint is not None else None),
                "mask_zero": self.mask_zero}
