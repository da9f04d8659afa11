"""LSTM (Hochreiter 1997), Keras 3 formulation: gates i, f, c, o."""

from __future__ import annotations

import numpy as np

from ... import _core
from ... import activations as activations_module
from ... import initializers as initializers_module
from ..registry import register
from .base import CellLayer, KernelCell, kernel_activation_name


@register
class LSTMCell(KernelCell):
    GATES = 4
    STATES = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_common(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                          bias_initializer, kernel_regularizer, recurrent_regularizer,
                          bias_regularizer, kernel_constraint, recurrent_constraint,
                          bias_constraint, dropout, recurrent_dropout, seed)
        self.recurrent_activation = activations_module.get(recurrent_activation)
        self._recurrent_activation_name = kernel_activation_name(
            "LSTMCell", "recurrent_activation", recurrent_activation)
        self.unit_forget_bias = unit_forget_bias

    def bias_initial_value(self, shape):
        if not self.unit_forget_bias:
            return super().bias_initial_value(shape)
        # Keras: the forget gate's bias starts at 1 (Jozefowicz et al.).
        U = self.units
        init = initializers_module.get(self.bias_initializer)
        dt = self.compute_dtype
        return np.concatenate([init((U,), dtype=dt.name), np.ones(U, dt), init((2 * U,), dtype=dt.name)])

    def make_kernel(self, go_backwards):
        return _core.LSTMKernel(self.units, activation=self._activation_name,
                                recurrent_activation=self._recurrent_activation_name,
                                go_backwards=go_backwards, bf16=self._dtype_policy.is_mixed)

    def get_config(self):
        config = super().get_config()
        config["recurrent_activation"] = activations_module.serialize(self.recurrent_activation)
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


@register
class LSTM(CellLayer):
    """Long Short-Term Memory layer on rnnfast's fused kernel."""

    CELL = LSTMCell
    CELL_NAME = "lstm_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False, **kwargs):
        self._from_signature(self, locals())
