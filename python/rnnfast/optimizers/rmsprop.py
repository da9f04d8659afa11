"""RMSprop (Keras 3 ``keras.optimizers.RMSprop``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with (plain) momentum::

        velocity = rho * velocity + (1 - rho) * g * g
        average_grad = rho * average_grad + (1 - rho) * g            # centered only
        denominator = velocity - average_grad ** 2 + epsilon         # centered
        denominator = velocity + epsilon                             # otherwise
        increment = learning_rate * g / sqrt(denominator)
        momentum_slot = momentum * momentum_slot + increment; w -= momentum_slot   # momentum > 0
        w -= increment                                                             # otherwise

    State after the base's: ``velocity`` per variable, then ``momentum`` per
    variable (momentum > 0), then ``average_gradient`` per variable (centered).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
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
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = []
        if self.momentum > 0:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._average_gradients = []
        if self.centered:
            self._average_gradients = self.add_optimizer_variables(var_list,
                                                                   "average_gradient")

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        rho = float(self.rho)
        eps = float(self.epsilon)
        velocity = self._velocities[i]
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)

        np.multiply(velocity, rho, out=velocity)
        np.square(gradient, out=t)
        np.multiply(t, 1.0 - rho, out=t)
        np.add(velocity, t, out=velocity)
        if self.centered:
            average_grad = self._average_gradients[i]
            np.multiply(average_grad, rho, out=average_grad)
            np.multiply(gradient, 1.0 - rho, out=t)
            np.add(average_grad, t, out=average_grad)
            np.square(average_grad, out=t)
            np.subtract(velocity, t, out=t)
            np.add(t, eps, out=t)
        else:
            np.add(velocity, eps, out=t)
        np.sqrt(t, out=t)
        np.multiply(gradient, learning_rate, out=t2)
        np.divide(t2, t, out=t2)                                   # increment
        if self.momentum > 0:
            momentum = self._momentums[i]
            np.multiply(momentum, float(self.momentum), out=momentum)
            np.add(momentum, t2, out=momentum)
            np.subtract(w, momentum, out=w)
        else:
            np.subtract(w, t2, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config
