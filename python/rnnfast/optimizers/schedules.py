"""Learning rate schedules (Keras 3 ``keras.optimizers.schedules``).

A schedule is called with the optimizer's step count (the index of the step
about to be applied, starting at 0) and returns the learning rate as a float.
The built-in schedules compute in float32, as Keras does (its schedules work in
the dtype of ``initial_learning_rate``, float32), so their values match Keras's
bit for bit where the float32 operations do.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

from .. import _serialization

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]

_MODULE = "keras.optimizers.schedules"


_F = np.float32
_ONE = _F(1)


def _step(step) -> np.float32:
    return _F(np.asarray(step).reshape(()))


def _check_decay_steps(arg: str, value) -> None:
    if value <= 0:
        raise ValueError(f"Argument `{arg}` must be > 0. Received: {arg}={value}")


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` (and ``get_config`` to be saved)."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self) -> dict:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (integer division when
    `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_decay_steps("decay_steps", decay_steps)

    def __call__(self, step):
        p = _step(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(_F(self.initial_learning_rate) * np.power(_F(self.decay_rate), p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after ``boundaries[-1]``."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        s = float(np.asarray(step).reshape(()))
        for boundary, value in zip(self.boundaries, self.values):
            if s <= boundary:
                return float(_F(value))
        return float(_F(self.values[-1]))

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``; with
    `cycle`, decay_steps grows to the first multiple of itself not below step."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _check_decay_steps("decay_steps", decay_steps)

    def __call__(self, step):
        s = _step(step)
        decay_steps = _F(self.decay_steps)
        if self.cycle:
            multiplier = _ONE if s == 0 else np.ceil(s / decay_steps)
            decay_steps = decay_steps * multiplier
        else:
            s = min(s, decay_steps)
        p = s / decay_steps
        initial = _F(self.initial_learning_rate)
        end = _F(self.end_learning_rate)
        return float((initial - end) * np.power(_ONE - p, _F(self.power)) + end)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floor of the ratio
    when `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_decay_steps("decay_steps", decay_steps)

    def __call__(self, step):
        p = _step(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(_F(self.initial_learning_rate) / (_ONE + _F(self.decay_rate) * p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup.

    Without `warmup_target`: ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps))
    + alpha)`` with ``s = min(step, decay_steps)``. With it: a linear ramp from
    `initial_learning_rate` to `warmup_target` over `warmup_steps`, then the cosine decay of
    `warmup_target` over `decay_steps`."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _check_decay_steps("decay_steps", decay_steps)

    def _decay(self, s, decay_steps, decay_from):
        cosine = _F(0.5) * (_ONE + np.cos(_F(math.pi) * (s / decay_steps)))
        decayed = _F(1 - self.alpha) * cosine + _F(self.alpha)
        return float(decay_from * decayed)

    def __call__(self, step):
        s = _step(step)
        initial = _F(self.initial_learning_rate)
        decay_steps = _F(self.decay_steps)
        if self.warmup_target is None:
            return self._decay(min(s, decay_steps), decay_steps, initial)
        target = _F(self.warmup_target)
        warmup_steps = _F(self.warmup_steps)
        s = min(s, decay_steps + warmup_steps)
        if s < warmup_steps:
            return float((target - initial) * (s / warmup_steps) + initial)
        return self._decay(s - warmup_steps, decay_steps, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods of ``first_decay_steps * t_mul ** i``
    steps, the i-th starting at ``initial_learning_rate * m_mul ** i``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _check_decay_steps("first_decay_steps", first_decay_steps)

    def __call__(self, step):
        t_mul = _F(self._t_mul)
        m_mul = _F(self._m_mul)
        alpha = _F(self.alpha)
        fraction = _step(step) / _F(self.first_decay_steps)
        if t_mul == 1:
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(np.log(_ONE - fraction * (_ONE - t_mul)) / np.log(t_mul))
            sum_r = (_ONE - np.power(t_mul, i_restart)) / (_ONE - t_mul)
            fraction = (fraction - sum_r) / np.power(t_mul, i_restart)
        cosine = _F(0.5) * np.power(m_mul, i_restart) * (_ONE + np.cos(_F(math.pi) * fraction))
        return float(_F(self.initial_learning_rate) * ((_ONE - alpha) * cosine + alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {cls.__name__: cls for cls in (
    LearningRateSchedule, ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
    InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(learning_rate_schedule) -> Any:
    """The Keras 3 dict of a schedule: ``{"module": "keras.optimizers.schedules",
    "class_name": ..., "config": ..., "registered_name": None}``."""
    return _serialization.serialize_object(learning_rate_schedule, _MODULE)


def deserialize(config, custom_objects: Optional[Mapping[str, Any]] = None):
    """A schedule from ``serialize``'s dict (or a ``{"class_name", "config"}`` dict)."""
    return _serialization.deserialize_object(config, _SCHEDULES, "learning rate schedule",
                                             custom_objects=custom_objects)
