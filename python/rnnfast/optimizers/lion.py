"""Lion (Keras 3 ``keras.optimizers.Lion``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Lion"]


class Lion(Optimizer):
    """Lion (evolved sign momentum)::

        w -= learning_rate * sign(beta_1 * m + (1 - beta_1) * g)
        m = beta_2 * m + (1 - beta_2) * g

    State after the base's: ``momentum`` per variable.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                             f"optimizer degenerates to SignSGD. Received: beta_1={beta_1}.")

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        m = self._momentums[self._get_variable_index(variable)]
        f = w.dtype.type     # betas and 1 - betas in the variable's dtype, as Keras
        beta_1 = f(self.beta_1)
        beta_2 = f(self.beta_2)
        one = f(1)
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)
        np.multiply(m, beta_1, out=t)
        np.multiply(gradient, one - beta_1, out=t2)
        np.add(t, t2, out=t)
        np.sign(t, out=t)
        np.multiply(t, learning_rate, out=t)
        np.subtract(w, t, out=w)
        np.multiply(m, beta_2, out=m)
        np.multiply(gradient, one - beta_2, out=t)
        np.add(m, t, out=m)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
