"""Adadelta (Keras 3 ``keras.optimizers.Adadelta``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, scaled by the learning rate as Keras does::

        accumulated_grad = rho * accumulated_grad + (1 - rho) * g * g
        delta = -sqrt(accumulated_delta + epsilon) * g / sqrt(accumulated_grad + epsilon)
        accumulated_delta = rho * accumulated_delta + (1 - rho) * delta * delta
        w += learning_rate * delta

    State after the base's: ``accumulated_grad`` and ``accumulated_delta_var`` per
    variable, interleaved.
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulated_grads, self._accumulated_delta_vars = self.add_optimizer_variables(
            var_list, ["accumulated_grad", "accumulated_delta_var"])

    def update_step(self, grad, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        rho = float(self.rho)
        eps = float(self.epsilon)
        acc_grad = self._accumulated_grads[i]
        acc_delta = self._accumulated_delta_vars[i]
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)

        np.multiply(acc_grad, rho, out=acc_grad)
        np.square(grad, out=t)
        np.multiply(t, 1.0 - rho, out=t)
        np.add(acc_grad, t, out=acc_grad)
        np.add(acc_delta, eps, out=t)
        np.sqrt(t, out=t)
        np.multiply(t, grad, out=t)
        np.add(acc_grad, eps, out=t2)
        np.sqrt(t2, out=t2)
        np.divide(t, t2, out=t)
        np.negative(t, out=t)                                      # delta
        np.multiply(acc_delta, rho, out=acc_delta)
        np.square(t, out=t2)
        np.multiply(t2, 1.0 - rho, out=t2)
        np.add(acc_delta, t2, out=acc_delta)
        np.multiply(t, learning_rate, out=t)
        np.add(w, t, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
