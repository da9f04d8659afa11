"""GRU (Cho et al. 2014), Keras 3 formulation: gates z, r, h; both reset_after forms."""

from __future__ import annotations

from ... import _core
from ... import activations as activations_module
from ..registry import register
from .base import CellLayer, KernelCell, kernel_activation_name


@register
class GRUCell(KernelCell):
    GATES = 3
    STATES = 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_common(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                          bias_initializer, kernel_regularizer, recurrent_regularizer,
                          bias_regularizer, kernel_constraint, recurrent_constraint,
                          bias_constraint, dropout, recurrent_dropout, seed)
        self.recurrent_activation = activations_module.get(recurrent_activation)
        self._recurrent_activation_name = kernel_activation_name(
            "GRUCell", "recurrent_activation", recurrent_activation)
        self.reset_after = reset_after

    def bias_shape(self):
        # reset_after keeps separate input and recurrent biases (Keras: [2, 3U]).
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def make_kernel(self, go_backwards):
        return _core.GRUKernel(self.units, activation=self._activation_name,
                               recurrent_activation=self._recurrent_activation_name,
                               reset_after=self.reset_after, go_backwards=go_backwards,
                               bf16=self._dtype_policy.is_mixed)

    def get_config(self):
        config = super().get_config()
        config["recurrent_activation"] = activations_module.serialize(self.recurrent_activation)
        config["reset_after"] = self.reset_after
        return config


@register
class GRU(CellLayer):
    """Gated Recurrent Unit layer on rnnfast's fused kernel."""

    CELL = GRUCell
    CELL_NAME = "gru_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True, **kwargs):
        self._from_signature(self, locals())
