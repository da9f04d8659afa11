"""Nadam (Keras 3 ``keras.optimizers.Nadam``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer

__all__ = ["Nadam"]


class Nadam(Optimizer):
    """Adam with Nesterov momentum and Dozat's momentum schedule, as Keras 3::

        t = iterations + 1
        u_t = beta_1 * (1 - 0.5 * 0.96 ** t);  u_t1 = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product *= u_t                    # once per step, shared by all variables
        m += (g - m) * (1 - beta_1);  v += (g * g - v) * (1 - beta_2)
        m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
        v_hat = v / (1 - beta_2 ** t)
        w -= learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    State after the base's: ``momentum`` and ``velocity`` per variable,
    interleaved, then ``u_product`` (0-d, starts at 1).
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
        var_list = list(var_list)
        dtype = var_list[0].value.dtype if var_list else np.float32
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])
        self._u_product = self.add_variable((), initializer="ones", dtype=dtype,
                                            name="u_product")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        f = self._u_product.dtype.type
        step = f(self.iterations + 1)
        self._u_product[...] = (f(self._u_product) * f(self.beta_1)
                                * (f(1) - f(0.5) * np.power(f(0.96), step)))
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        m = self._momentums[i]
        v = self._velocities[i]
        # Scalars in the variable's dtype (float32), as Keras computes them.
        f = w.dtype.type
        one = f(1)
        beta_1 = f(self.beta_1)
        beta_2 = f(self.beta_2)
        step = f(self.iterations + 1)
        decay = f(0.96)
        u_t = beta_1 * (one - f(0.5) * np.power(decay, step))
        u_t_1 = beta_1 * (one - f(0.5) * np.power(decay, step + one))
        u_product_t = f(self._u_product)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = np.power(beta_2, step)
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)

        np.subtract(gradient, m, out=t)
        np.multiply(t, one - beta_1, out=t)
        np.add(m, t, out=m)
        np.square(gradient, out=t)
        np.subtract(t, v, out=t)
        np.multiply(t, one - beta_2, out=t)
        np.add(v, t, out=v)
        np.multiply(m, u_t_1, out=t)
        np.divide(t, 1.0 - u_product_t_1, out=t)
        np.multiply(gradient, 1.0 - u_t, out=t2)
        np.divide(t2, 1.0 - u_product_t, out=t2)
        np.add(t, t2, out=t)                                       # m_hat
        np.divide(v, 1.0 - beta_2_power, out=t2)
        np.sqrt(t2, out=t2)
        np.add(t2, float(self.epsilon), out=t2)
        np.multiply(t, f(learning_rate), out=t)
        np.divide(t, t2, out=t)
        np.subtract(w, t, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
