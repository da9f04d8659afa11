"""Adamax (Keras 3 ``keras.optimizers.Adamax``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm)::

        m += (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        w -= learning_rate * m / ((1 - beta_1 ** (iterations + 1)) * (u + epsilon))

    State after the base's: ``momentum`` and ``norm`` per variable, interleaved.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ["momentum", "norm"])

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        m = self._m[i]
        u = self._u[i]
        beta_1 = float(self.beta_1)
        f = w.dtype.type     # the power in the variable's dtype, as Keras
        beta_1_power = np.power(f(beta_1), f(self.iterations + 1))
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)

        np.subtract(gradient, m, out=t)
        np.multiply(t, 1.0 - beta_1, out=t)
        np.add(m, t, out=m)
        np.multiply(u, float(self.beta_2), out=u)
        np.abs(gradient, out=t)
        np.maximum(u, t, out=u)
        np.add(u, float(self.epsilon), out=t)
        np.multiply(t, f(1) - beta_1_power, out=t)
        np.multiply(m, learning_rate, out=t2)
        np.divide(t2, t, out=t2)
        np.subtract(w, t2, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
