"""FTRL-proximal (Keras 3 ``keras.optimizers.Ftrl``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Ftrl"]


class Ftrl(Optimizer):
    """Follow The Regularized Leader, as Keras 3 (p = -learning_rate_power)::

        l2 = l2_regularization_strength + beta / (2 * learning_rate)
        new_accum = accum + g * g
        linear += g + 2 * l2_shrinkage * w - (new_accum ** p - accum ** p) / learning_rate * w
        quadratic = new_accum ** p / learning_rate + 2 * l2
        w = (clip(linear, -l1, l1) - linear) / quadratic
        accum = new_accum

    State after the base's: ``accumulator`` (starting at
    `initial_accumulator_value`) and ``linear`` per variable, interleaved.
    """

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        for arg, value in (("initial_accumulator_value", initial_accumulator_value),
                           ("l1_regularization_strength", l1_regularization_strength),
                           ("l2_regularization_strength", l2_regularization_strength),
                           ("l2_shrinkage_regularization_strength",
                            l2_shrinkage_regularization_strength)):
            if value < 0.0:
                raise ValueError(f"`{arg}` needs to be positive or zero. Received: "
                                 f"{arg}={value}.")
        if learning_rate_power > 0.0:
            raise ValueError("`learning_rate_power` needs to be negative or zero. Received: "
                             f"learning_rate_power={learning_rate_power}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = []
        self._linears = []
        for var in var_list:
            value = var.value
            self._accumulators.append(self.add_variable(
                value.shape, initializer=float(self.initial_accumulator_value),
                dtype=value.dtype, name="accumulator"))
            self._linears.append(self.add_variable_from_reference(var, name="linear"))

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        accum = self._accumulators[i]
        linear = self._linears[i]
        p = -float(self.learning_rate_power)
        l1 = float(self.l1_regularization_strength)
        f = w.dtype.type     # scalars in the variable's dtype, as Keras
        l2 = f(self.l2_regularization_strength) + f(self.beta) / (f(2) * f(learning_rate))
        shrink = float(self.l2_shrinkage_regularization_strength)
        grad_to_use = self._scratch(0, w)
        new_accum = self._scratch(1, w)
        t = self._scratch(2, w)
        t2 = self._scratch(3, w)

        np.multiply(w, 2.0 * shrink, out=grad_to_use)
        np.add(gradient, grad_to_use, out=grad_to_use)
        np.square(gradient, out=new_accum)
        np.add(accum, new_accum, out=new_accum)
        np.power(new_accum, p, out=t)
        np.power(accum, p, out=t2)
        np.subtract(t, t2, out=t2)
        np.divide(t2, learning_rate, out=t2)
        np.multiply(t2, w, out=t2)
        np.subtract(grad_to_use, t2, out=grad_to_use)
        np.add(linear, grad_to_use, out=linear)
        np.divide(t, learning_rate, out=t)
        np.add(t, f(2) * l2, out=t)                                  # quadratic
        np.clip(linear, -l1, l1, out=t2)
        np.subtract(t2, linear, out=t2)
        np.divide(t2, t, out=w)
        accum[...] = new_accum

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        })
        return config
