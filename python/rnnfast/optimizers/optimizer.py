"""The optimizer base class, with Keras 3's semantics (``keras.optimizers.Optimizer``).

An optimizer updates model variables in place. For the optimizer a variable is
any object with ``value`` (a NumPy array, updated in place and never rebound),
``name`` and ``trainable``, and optionally ``constraint`` (array -> array,
applied after each update) and ``path`` (a unique string).

The optimizer's own state is a list of NumPy arrays (``variables``), in the
order Keras 3 tracks its variables:

* ``iteration`` (0-d int64), the number of ``apply`` calls that updated;
* ``learning_rate`` (0-d float32), only while the learning rate is a float
  (a schedule or a callable holds no state);
* with ``use_ema``: one moving average per built variable;
* with ``gradient_accumulation_steps``: one accumulator per built variable;
* then the slots the subclass creates in ``build`` (see each optimizer).

Per-variable slots follow the order of the variables given to ``build``.
``get_state()`` copies that list and ``set_state()`` restores it, so an
optimizer rebuilt on the same variables resumes training bit for bit.

Subclasses implement ``build(var_list)`` (calling ``super().build`` first and
creating slots with ``add_variable_from_reference``/``add_optimizer_variables``)
and ``update_step(gradient, variable, learning_rate)``, which updates
``variable.value`` in place. Built-in optimizers do their arithmetic with NumPy
ufuncs writing into ``out=`` buffers (slots, the variable itself, or scratch
buffers reused from step to step), so a step allocates no full-size arrays
unless clipping or loss scaling is on.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, List

import numpy as np

from .. import _serialization
from .._device import ON_DEVICE as _ON_DEVICE
from .._naming import auto_name
from . import schedules as _schedules
from ._state import OptimizerState, _is_real, _value_of
from ._transforms import GradientTransforms

__all__ = ["Optimizer"]



class Optimizer(OptimizerState, GradientTransforms):
    """Base class of the optimizers (Keras 3 ``keras.optimizers.Optimizer``).

    Args:
        learning_rate: a float, a ``schedules.LearningRateSchedule`` (evaluated
            at ``iterations`` before each update), or a callable taking no
            arguments that returns the learning rate.
        weight_decay: if set, decoupled weight decay: before each update every
            variable (but those excluded with ``exclude_from_weight_decay``)
            becomes ``var - var * weight_decay * learning_rate``.
        clipnorm: clips each gradient so that its L2 norm is at most this.
        clipvalue: clips each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scales all gradients so that their joint L2 norm is at
            most this. At most one of the three clipping arguments may be set.
        use_ema: keeps an exponential moving average of the variables:
            ``average = ema_momentum * average + (1 - ema_momentum) * var``
            (the first step copies the variables).
        ema_momentum: the EMA's momentum, in [0, 1].
        ema_overwrite_frequency: with ``use_ema``, every this many iterations
            the variables are overwritten with their averages; None: only
            ``finalize_variable_values`` does.
        loss_scale_factor: gradients are divided by this before use
            (``scale_loss`` multiplies a loss by it).
        gradient_accumulation_steps: an int >= 2: gradients are summed and the
            variables updated every this many steps with their mean.
        name: the optimizer's name (unique snake_case class name by default).
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          stacklevel=2)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")

        if name is None:
            name = auto_name(type(self).__name__)
        self.name = name
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm
        self.clipvalue = clipvalue
        self.use_ema = use_ema
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps

        if gradient_accumulation_steps:
            if (not isinstance(gradient_accumulation_steps, numbers.Integral)
                    or isinstance(gradient_accumulation_steps, bool)
                    or not gradient_accumulation_steps >= 2):
                raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. "
                                 f"Received: gradient_accumulation_steps="
                                 f"{gradient_accumulation_steps}")
        if use_ema:
            if not _is_real(ema_momentum) or ema_momentum > 1 or ema_momentum < 0:
                raise ValueError("`ema_momentum` must be in the range [0, 1]. "
                                 f"Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (
                    not isinstance(ema_overwrite_frequency, numbers.Integral)
                    or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                                 f"Received: ema_overwrite_frequency={ema_overwrite_frequency}")
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency

        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        for arg, val in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                         ("global_clipnorm", global_clipnorm), ("weight_decay", weight_decay),
                         ("loss_scale_factor", loss_scale_factor)):
            if val is not None and not _is_real(val):
                raise ValueError(f"Argument `{arg}` must be a float or None. Received: "
                                 f"{arg}={val!r}")

        self.built = False
        self._variables: List[np.ndarray] = []       # slots, in creation order
        self._variable_names: List[str] = []
        self._trainable_variables: list = []
        self._trainable_variables_indices: Dict[int, int] = {}
        self._iterations = np.zeros((), dtype=np.int64)
        self._scratch_bufs: Dict[Any, List[np.ndarray]] = {}
        self._scratch_views: Dict[Any, np.ndarray] = {}
        self._exclude_from_weight_decay: set = set()
        self._exclude_from_weight_decay_pattern = None
        self._exclude_from_weight_decay_cache: Dict[int, bool] = {}

        if isinstance(learning_rate, _schedules.LearningRateSchedule) or callable(learning_rate):
            self._learning_rate = learning_rate
        else:
            if not _is_real(learning_rate):
                raise ValueError(
                    "Argument `learning_rate` should be float, or an instance of "
                    "LearningRateSchedule, or a callable (that takes in the current iteration "
                    "value and returns the corresponding learning rate value). "
                    f"Received instead: learning_rate={learning_rate!r}")
            self._learning_rate = np.array(float(learning_rate), dtype=np.float32)

    # ---------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> float:
        """The learning rate used by the next step (a schedule is evaluated at ``iterations``)."""
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, learning_rate) -> None:
        if isinstance(learning_rate, _schedules.LearningRateSchedule) or (
                callable(learning_rate) and not isinstance(learning_rate, np.ndarray)):
            self._learning_rate = learning_rate
            return
        if isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument.")
        if not _is_real(learning_rate):
            raise ValueError("The learning rate must be a float, a LearningRateSchedule or a "
                             f"callable. Received: learning_rate={learning_rate!r}")
        value = float(np.asarray(learning_rate).reshape(()))
        if isinstance(self._learning_rate, np.ndarray):
            self._learning_rate[...] = value
        else:  # was a callable: becomes a float again (tracked at index 1 of the state)
            self._learning_rate = np.array(value, dtype=np.float32)

    def _get_current_learning_rate(self) -> float:
        lr = self._learning_rate
        if isinstance(lr, np.ndarray):
            return float(lr)
        if isinstance(lr, _schedules.LearningRateSchedule):
            return float(np.asarray(lr(int(self._iterations))).reshape(()))
        return float(np.asarray(lr()).reshape(()))

    # Keras-style helpers for subclasses' update_step (variables or state arrays).

    # ------------------------------------------------------------- updating
    def scale_loss(self, loss):
        """Multiplies `loss` by ``loss_scale_factor`` when it is set."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    def apply_gradients(self, grads_and_vars) -> int:
        """Applies ``[(gradient, variable), ...]``; returns ``iterations``."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self.iterations
        grads, variables = zip(*pairs)
        self.apply(list(grads), list(variables))
        return self.iterations

    def apply(self, grads, trainable_variables=None) -> None:
        """Updates variables from their gradients (one to one).

        Without `trainable_variables`, the gradients follow the variables the
        optimizer was built with. The first call builds the optimizer on
        `trainable_variables`. Gradients that are None (a warning, as Keras)
        and variables with ``trainable=False`` are skipped."""
        grads = list(grads)
        if len(grads) == 0:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built on a list of variables. Call `optimizer.build(trainable_variables)` "
                    "first.")
            if len(grads) != len(self._trainable_variables):
                raise ValueError(
                    "When passing `grads` as a list of gradient tensors, the gradients must "
                    f"match `optimizer.variables` one-to-one. Received a list of {len(grads)} "
                    f"gradients, but the optimizer is tracking "
                    f"{len(self._trainable_variables)} trainable variables.")
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(f"Received {len(grads)} gradients for "
                                 f"{len(trainable_variables)} variables.")
            if not self.built:
                self.build(trainable_variables)
                self.built = True
            known = self._trainable_variables_indices
            for v in trainable_variables:
                if id(v) not in known:
                    raise ValueError(
                        f"Unknown variable: {getattr(v, 'name', v)!r}. This optimizer can only "
                        "be called for the variables it was originally built with. When "
                        "working with a new set of variables, you should recreate a new "
                        "optimizer instance.")

        kept_grads: List[np.ndarray] = []
        kept_vars: list = []
        device_vars: list = []  # weights whose value and gradient are on the GPU
        missing: List[str] = []
        constrained: list = []
        for g, v in zip(grads, trainable_variables):
            if not getattr(v, "trainable", True):
                continue
            if g is None:
                missing.append(str(getattr(v, "name", v)))
                continue
            if g is _ON_DEVICE:
                device_vars.append(v)
                continue
            # The training step's case without _as_gradient's calls: a host
            # Variable (its array read without `value`'s device check) and a
            # gradient array of its dtype and shape.
            value = getattr(v, "_value", None)
            if type(g) is not np.ndarray or type(value) is not np.ndarray or \
                    getattr(v, "_device", None) is not None or g.dtype != value.dtype or \
                    g.shape != value.shape:
                g = self._as_gradient(g, v)
            kept_grads.append(g)
            kept_vars.append(v)
            if getattr(v, "constraint", None) is not None:
                constrained.append(v)
        if missing:
            if not kept_grads and not device_vars:
                raise ValueError("No gradients provided for any variable.")
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing "
                          "the loss. If using `model.compile()`, did you forget to provide a "
                          "`loss` argument?", stacklevel=2)
        if not kept_grads and not device_vars:
            return
        if device_vars and not self._device_capable():
            raise ValueError(f"{type(self).__name__} has no device update for gradients on the "
                             f"GPU with this configuration")

        scale = self.loss_scale_factor
        if scale is not None:
            kept_grads = [g / scale for g in kept_grads]

        self._device_vars = device_vars
        try:
            self._backend_apply_gradients(kept_grads, kept_vars)
        finally:
            self._device_vars = []

        for v in constrained:
            value = v.value
            value[...] = v.constraint(value)

    @staticmethod
    def _as_gradient(g, variable) -> np.ndarray:
        value = _value_of(variable)
        g = np.asarray(g)
        if g.dtype != value.dtype:
            g = g.astype(value.dtype)
        if g.shape != value.shape:
            raise ValueError(f"Gradient of shape {g.shape} does not match variable "
                             f"{getattr(variable, 'name', '?')!r} of shape {value.shape}.")
        return g

    def _backend_apply_gradients(self, grads: List[np.ndarray], trainable_variables) -> None:
        steps = self.gradient_accumulation_steps
        if steps:
            acc = [self._accumulated_gradients[self._get_variable_index(v)]
                   for v in trainable_variables]
            if (int(self._iterations) + 1) % steps == 0:
                for g, a in zip(grads, acc):
                    np.add(a, g, out=a)
                    np.divide(a, steps, out=a)
                lr = self.learning_rate
                grads = self._clip_gradients(acc)
                self._apply_weight_decay(trainable_variables, lr)
                self._backend_update_step(grads, trainable_variables, lr)
                for a in self._accumulated_gradients:
                    a.fill(0)
            else:
                for g, a in zip(grads, acc):
                    np.add(a, g, out=a)
        else:
            lr = self.learning_rate
            grads = self._clip_gradients(grads)
            self._apply_weight_decay(trainable_variables, lr)
            self._backend_update_step(grads, trainable_variables, lr)
            device_vars = getattr(self, "_device_vars", None)
            if device_vars:
                self._device_update_step(device_vars, lr)

        if self.use_ema:
            self._update_model_variables_moving_average(self._trainable_variables)
            freq = self.ema_overwrite_frequency
            if freq and (self.iterations + 1) % freq == 0:
                self._overwrite_model_variables_with_average_value(self._trainable_variables)
        self._iterations[()] = int(self._iterations) + 1  # in place (a ufunc call costs ~1 us)

    def _backend_update_step(self, grads, trainable_variables, learning_rate: float) -> None:
        for g, v in zip(grads, trainable_variables):
            self.update_step(g, v, learning_rate)

    def update_step(self, gradient: np.ndarray, variable, learning_rate: float) -> None:
        """Updates ``variable.value`` in place from `gradient` (subclasses implement it)."""
        raise NotImplementedError

    # ------------------------------------------- weights kept on the GPU (rnnfast._device)
    def _device_capable(self) -> bool:
        """Whether this optimizer can update weights on the GPU (a fused
        kernel of rnnfast._cuda); subclasses with one say when."""
        return False

    def _plain_update(self) -> bool:
        """No clipping, EMA, gradient accumulation or loss scaling: what the
        fused device updates implement."""
        return not (self.clipnorm or self.clipvalue or self.global_clipnorm or self.use_ema
                    or self.gradient_accumulation_steps or self.loss_scale_factor is not None)

    def _device_update_step(self, variables, learning_rate: float) -> None:
        """Updates weights whose value and gradient are on the GPU (``Variable._device``)."""
        raise NotImplementedError

    def _device_slot(self, host: np.ndarray, index: int):
        """The device copy of one of this optimizer's slot arrays (made on first use)."""
        from .. import _device

        slots = self.__dict__.setdefault("_device_slots", {})
        entry = slots.get(id(host))
        if entry is None:
            entry = slots[id(host)] = (host, _device.DeviceCopy(host, index, with_grad=False))
        return entry[1].device_value(host)

    def _device_updated(self, variables, slot_arrays) -> None:
        """After a device update: the host copies of these are out of date."""
        for v in variables:
            v._device.host_stale = True
        slots = self.__dict__.get("_device_slots", {})
        for host in slot_arrays:
            slots[id(host)][1].host_stale = True

    def _device_sync(self) -> None:
        """Copies slots updated on the GPU back into the state arrays (which
        may then be written, so the device copies refresh before next use)."""
        for host, copy in self.__dict__.get("_device_slots", {}).values():
            copy.to_host(host)

    def _device_release(self) -> None:
        self._device_sync()
        self.__dict__.pop("_device_slots", None)

    def _device_weights_and_grads(self, variables):
        ws = [v._device.device_value(v._value) for v in variables]
        gs = [v._device.grad_for_update() for v in variables]
        return ws, gs

    def _device_decays(self, variables, dtype):
        wd = self.weight_decay
        if wd is None or wd == 0:
            return [0.0] * len(variables)
        return [float(dtype.type(float(wd))) if self._use_weight_decay(v) else 0.0
                for v in variables]

    # --------------------------------------------------------------- config
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            learning_rate: Any = _schedules.serialize(lr)
        elif isinstance(lr, np.ndarray):
            learning_rate = float(lr)
        else:
            learning_rate = _serialization.serialize_object(lr, "builtins")
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Builds the optimizer from ``get_config()`` (a schedule dict is deserialized)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"],
                                                             custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
