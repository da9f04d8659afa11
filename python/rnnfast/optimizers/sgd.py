"""SGD with optional (Nesterov) momentum (Keras 3 ``keras.optimizers.SGD``)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _is_real

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent, with momentum when ``momentum > 0``::

        velocity = momentum * velocity - learning_rate * g
        w = w + velocity                                    # nesterov=False
        w = w + momentum * velocity - learning_rate * g     # nesterov=True

    and ``w = w - learning_rate * g`` without momentum.

    State after the base's: ``momentum`` per variable (only when momentum != 0).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
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
        if not _is_real(momentum) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = momentum
        self.nesterov = nesterov

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _device_capable(self):
        return type(self) is SGD and self._plain_update()

    def _device_update_step(self, variables, learning_rate):
        """The fused SGD kernel on the GPU (rnnfast._cuda.sgd_update)."""
        from .. import _device

        groups = {}  # one call per dtype and device
        for v in variables:
            groups.setdefault((v.dtype, v._device.index), []).append(v)
        for (dtype, index), group in groups.items():
            f = dtype.type
            ws, gs = self._device_weights_and_grads(group)
            hosts = []
            if self.momentum != 0:
                hosts = [self.momentums[self._get_variable_index(v)] for v in group]
            dev = [self._device_slot(h, index) for h in hosts]
            _device._module().sgd_update(ws, gs, dev if hosts else None,
                                         float(f(learning_rate)), float(f(float(self.momentum))),
                                         bool(self.nesterov), self._device_decays(group, dtype))
            self._device_updated(group, hosts)

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        t = self._scratch(0, w)
        np.multiply(gradient, learning_rate, out=t)                  # lr * g
        if self.momentum != 0:
            momentum = float(self.momentum)
            m = self.momentums[self._get_variable_index(variable)]
            np.multiply(m, momentum, out=m)
            np.subtract(m, t, out=m)                                 # m = momentum*m - lr*g
            if self.nesterov:
                t2 = self._scratch(1, w)
                np.multiply(m, momentum, out=t2)
                np.subtract(t2, t, out=t2)
                np.add(w, t2, out=w)                                 # w += momentum*m - lr*g
            else:
                np.add(w, m, out=w)
        else:
            np.subtract(w, t, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
