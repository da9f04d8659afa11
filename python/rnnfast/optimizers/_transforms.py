"""What an Optimizer does to gradients and weights around the update step
(Keras 3's semantics): weight decay, clipping by value, norm and global norm,
and the exponential moving average of the weights. A mixin of Optimizer."""

from __future__ import annotations

import re
from typing import List

import numpy as np

from ._state import _value_of


class GradientTransforms:
    """Weight decay, clipping and EMA of an Optimizer (attributes set by Optimizer.__init__)."""

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Excludes variables from weight decay: those in `var_list`, and those whose name
        contains a match of any regular expression in `var_names` (e.g. ``["bias"]``).
        Each call replaces the previous exclusions."""
        self._exclude_from_weight_decay = set(id(v) for v in var_list) if var_list else set()
        if var_names:
            self._exclude_from_weight_decay_pattern = re.compile(
                "|".join(sorted(set(var_names))))
        else:
            self._exclude_from_weight_decay_pattern = None
        self._exclude_from_weight_decay_cache = {}

    def _use_weight_decay(self, variable) -> bool:
        key = id(variable)
        cached = self._exclude_from_weight_decay_cache.get(key)
        if cached is not None:
            return cached
        use = key not in self._exclude_from_weight_decay
        pattern = self._exclude_from_weight_decay_pattern
        if use and pattern is not None and \
                pattern.search(str(getattr(variable, "name", ""))) is not None:
            use = False
        self._exclude_from_weight_decay_cache[key] = use
        return use

    def _apply_weight_decay(self, variables, learning_rate: float) -> None:
        wd = self.weight_decay
        if wd is None or wd == 0:
            return
        wd = float(wd)
        for variable in variables:
            if self._use_weight_decay(variable):
                value = variable.value
                t = self._scratch(0, value)
                np.multiply(value, wd, out=t)          # var - var * wd * lr, in the var's dtype
                np.multiply(t, learning_rate, out=t)
                np.subtract(value, t, out=value)

    def _clip_gradients(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return self._clip_by_global_norm(grads, float(self.global_clipnorm))
        if self.clipvalue and self.clipvalue > 0:
            v = float(self.clipvalue)
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def _clip_by_norm(self, g: np.ndarray) -> np.ndarray:
        # Keras: g * clipnorm / max(l2norm, clipnorm), in the gradient's dtype; a new array
        # (the caller's gradient is never modified).
        f = g.dtype.type
        clipnorm = f(self.clipnorm)
        norm = np.sqrt(self._sum_of_squares(g))
        out = np.multiply(g, clipnorm)
        if np.ndim(out) == 0:  # a scalar weight's gradient (NumPy gives a scalar, not an array)
            return np.asarray(out / max(norm, clipnorm), dtype=g.dtype)
        np.divide(out, max(norm, clipnorm), out=out)
        return out

    def _sum_of_squares(self, g: np.ndarray):
        """sum(g * g) in g's dtype, reduced as NumPy does (a scratch buffer holds g * g)."""
        t = self._scratch(0, g)
        np.square(g, out=t)
        return np.sum(t)

    def _clip_by_global_norm(self, grads: List[np.ndarray], clip_norm: float):
        # Keras: scale = clip_norm * min(1 / norm, 1 / clip_norm) + (norm - norm) in the
        # gradients' dtype, so a non-finite norm turns every gradient into NaN.
        f = grads[0].dtype.type
        total = np.sum(np.array([self._sum_of_squares(g) for g in grads], dtype=f))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            norm = np.sqrt(total)
            c = f(clip_norm)
            scale = c * min(f(1) / norm, f(1) / c) + (norm - norm)
        if scale == 1:
            return grads                  # multiplying by one changes nothing
        return [g * scale for g in grads]

    def _update_model_variables_moving_average(self, trainable_variables) -> None:
        first = self.iterations == 0
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            value = _value_of(var)
            f = value.dtype.type         # momentum and 1 - momentum in the variable's dtype
            momentum = f(0) if first else f(self.ema_momentum)
            t = self._scratch(0, value)
            np.multiply(average, momentum, out=average)
            np.multiply(value, f(1) - momentum, out=t)
            np.add(average, t, out=average)

    def _overwrite_model_variables_with_average_value(self, trainable_variables) -> None:
        averages = self._model_variables_moving_average
        if len(trainable_variables) != len(averages):
            raise ValueError(
                f"The length of model variables ({len(trainable_variables)}) to override does "
                "not match the length of model variables stored in the optimizer "
                f"({len(averages)}). Please check if the optimizer was called on your model.")
        for var, average in zip(trainable_variables, averages):
            _value_of(var)[...] = average

    def finalize_variable_values(self, var_list) -> None:
        """With ``use_ema``, overwrites the variables with their moving averages."""
        if self.use_ema:
            self._overwrite_model_variables_with_average_value(list(var_list))
