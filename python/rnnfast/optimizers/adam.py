"""Adam and AdamW (Keras 3 ``keras.optimizers.Adam`` / ``AdamW``)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, with the bias correction folded into the step size, as Keras does::

        t = iterations + 1
        alpha = learning_rate * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        m += (g - m) * (1 - beta_1)
        v += (g * g - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                     # amsgrad only; then v_hat replaces v
        w -= m * alpha / (sqrt(v) + epsilon)

    State after the base's: ``momentum`` and ``velocity`` per variable,
    interleaved (m0, v0, m1, v1, ...), then ``velocity_hat`` per variable with amsgrad.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])
        self._velocity_hats = []
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """All variables in one C++ call (rnnfast._core.adam_step), which rounds
        exactly as update_step's NumPy operations; update_step remains for
        anything the fused call does not take."""
        plan = self._fused_plan(trainable_variables)
        if plan is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        values, momentums, velocities, velocity_hats, dtype = plan
        grads = list(grads)
        for g in grads:
            if type(g) is not np.ndarray or g.dtype != dtype:
                return super()._backend_update_step(grads, trainable_variables, learning_rate)
        f = dtype.type
        # The step's constants in the variables' dtype, converted once while
        # beta_1, beta_2 and epsilon stay the same objects (~3 us a step).
        given = (self.beta_1, self.beta_2, self.epsilon, dtype)
        consts = self.__dict__.get("_fused_consts")
        if consts is None or not all(a is b for a, b in zip(consts[0], given)):
            consts = self._fused_consts = (
                given, f(1), f(self.beta_1), f(self.beta_2), float(f(1.0 - float(self.beta_1))),
                float(f(1.0 - float(self.beta_2))), float(f(float(self.epsilon))))
        _, one, beta_1, beta_2, c1, c2, eps = consts
        step = f(self.iterations + 1)
        alpha = (f(learning_rate) * np.sqrt(one - np.power(beta_2, step))
                 / (one - np.power(beta_1, step)))
        _core.adam_step(values, grads, momentums, velocities, velocity_hats,
                        float(alpha), c1, c2, eps)

    def _fused_plan(self, trainable_variables):
        """(values, momentums, velocities, velocity hats, dtype) for the fused
        call, or None where it does not apply. Kept from step to step for the
        same variables: a value array is never rebound and the slots are
        written in place (set_state), so only the variables' identities are
        checked; the cache holds the variables, so their ids stay theirs."""
        cached = self.__dict__.get("_fused_cache")
        if cached is not None:
            held, plan = cached
            if len(held) == len(trainable_variables) and \
                    all(a is b for a, b in zip(held, trainable_variables)) and \
                    all(getattr(v, "_device", None) is None for v in held):
                # (a weight made read-only since: adam_step refuses it whole;
                # one moved to a GPU since: its host array is stale, so re-plan)
                return plan
        held = tuple(trainable_variables)
        plan = None
        if held and all(getattr(v, "_device", None) is None for v in held):
            values = [v.value for v in held]
            dtype = values[0].dtype
            if dtype in (np.float32, np.float64) and all(
                    w.dtype == dtype and w.flags.c_contiguous and w.flags.writeable
                    for w in values):
                idx = [self._get_variable_index(v) for v in held]
                plan = (values, [self._momentums[i] for i in idx],
                        [self._velocities[i] for i in idx],
                        [self._velocity_hats[i] for i in idx] if self.amsgrad else None, dtype)
        self._fused_cache = (held, plan)
        return plan

    def _device_capable(self):
        return type(self) in (Adam, AdamW) and self._plain_update()

    def _device_update_step(self, variables, learning_rate):
        """The fused Adam kernel on the GPU (rnnfast._cuda.adam_update), with
        the scalars rounded exactly as _backend_update_step rounds them."""
        from .. import _device

        groups = {}  # one call per dtype and device
        for v in variables:
            groups.setdefault((v.dtype, v._device.index), []).append(v)
        for (dtype, index), group in groups.items():
            f = dtype.type
            one = f(1)
            step = f(self.iterations + 1)
            alpha = (f(learning_rate) * np.sqrt(one - np.power(f(self.beta_2), step))
                     / (one - np.power(f(self.beta_1), step)))
            idx = [self._get_variable_index(v) for v in group]
            ws, gs = self._device_weights_and_grads(group)
            hosts = [self._momentums[i] for i in idx] + [self._velocities[i] for i in idx]
            if self.amsgrad:
                hosts += [self._velocity_hats[i] for i in idx]
            dev = [self._device_slot(h, index) for h in hosts]
            n = len(group)
            _device._module().adam_update(
                ws, gs, dev[:n], dev[n:2 * n], dev[2 * n:] if self.amsgrad else None,
                float(alpha), float(f(1.0 - float(self.beta_1))),
                float(f(1.0 - float(self.beta_2))), float(f(float(self.epsilon))),
                self._device_decays(group, dtype), float(f(learning_rate)))
            self._device_updated(group, hosts)

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        i = self._get_variable_index(variable)
        m = self._momentums[i]
        v = self._velocities[i]
        beta_1 = float(self.beta_1)
        beta_2 = float(self.beta_2)
        # Scalars in the variable's dtype (float32), as Keras computes them (np.power, not
        # `**`: NumPy's scalar `**` can differ from the ufunc by an ulp).
        f = w.dtype.type
        one = f(1)
        step = f(self.iterations + 1)
        alpha = (f(learning_rate) * np.sqrt(one - np.power(f(beta_2), step))
                 / (one - np.power(f(beta_1), step)))
        t = self._scratch(0, w)
        t2 = self._scratch(1, w)

        np.subtract(gradient, m, out=t)
        np.multiply(t, 1.0 - beta_1, out=t)
        np.add(m, t, out=m)
        np.square(gradient, out=t)
        np.subtract(t, v, out=t)
        np.multiply(t, 1.0 - beta_2, out=t)
        np.add(v, t, out=v)
        if self.amsgrad:
            v_hat = self._velocity_hats[i]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        np.sqrt(v, out=t)
        np.add(t, float(self.epsilon), out=t)
        np.multiply(m, alpha, out=t2)
        np.divide(t2, t, out=t2)
        np.subtract(w, t2, out=w)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay`` defaults to 0.004 and is required):
    before each Adam step, ``w -= w * weight_decay * learning_rate``. Same state as Adam."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, name=name,
                         weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
