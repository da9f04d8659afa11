"""Adagrad (Keras 3 ``keras.optimizers.Adagrad``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad::

        accumulator += g * g
        w -= learning_rate * g / sqrt(accumulator + epsilon)

    State after the base's: ``accumulator`` per variable (starting at
    `initial_accumulator_value`).
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializer=float(self.initial_accumulator_value))

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        accumulator = self._accumulators[self._get_variable_index(variable)]
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)
        np.square(gradient, out=t)
        np.add(accumulator, t, out=accumulator)
        np.add(accumulator, float(self.epsilon), out=t)
        np.sqrt(t, out=t)
        np.multiply(gradient, learning_rate, out=t2)
        np.divide(t2, t, out=t2)
        np.subtract(w, t2, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value,
                       "epsilon": self.epsilon})
        return config
