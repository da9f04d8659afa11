"""The optimizer's state (Keras 3's order, see optimizer.py): the iteration
count, the learning rate, per-variable slots, scratch buffers, and reading and
writing them. A mixin of Optimizer, split out to keep each part readable."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, List, Sequence

import numpy as np


def _is_real(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Real):
        return True
    return isinstance(x, np.ndarray) and x.size == 1 and np.issubdtype(x.dtype, np.number) \
        and not np.issubdtype(x.dtype, np.complexfloating)


def _value_of(variable: Any) -> np.ndarray:
    value = getattr(variable, "value", None)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(variable, np.ndarray):
        return variable
    raise TypeError(f"expected a variable with a NumPy `value` array, received {variable!r}")


class OptimizerState:
    """State bookkeeping of an Optimizer (attributes set by Optimizer.__init__)."""

    @property
    def iterations(self) -> int:
        """Number of update steps applied (apply calls // gradient_accumulation_steps)."""
        it = int(self._iterations)
        if self.gradient_accumulation_steps:
            return it // self.gradient_accumulation_steps
        return it

    @property
    def variables(self) -> List[np.ndarray]:
        """The optimizer's state arrays (live, not copies), in Keras 3's order."""
        self._device_sync()  # slots updated on the GPU during fit
        out = [self._iterations]
        if isinstance(self._learning_rate, np.ndarray):
            out.append(self._learning_rate)
        out.extend(self._variables)
        return out

    def get_state(self) -> List[np.ndarray]:
        """Copies of ``variables``: what ``set_state`` needs to resume training exactly."""
        return [np.array(v, copy=True) for v in self.variables]

    def set_state(self, state: Sequence[Any]) -> None:
        """Restores ``get_state()``'s list; the optimizer must be built on the same variables."""
        if not self.built:
            raise ValueError(
                "You are calling `set_state()` on an optimizer that has not yet been built. "
                "Call `optimizer.build(trainable_variables)` first.")
        targets = self.variables
        state = list(state)
        if len(state) != len(targets):
            raise ValueError(f"Optimizer '{self.name}' has {len(targets)} state arrays, "
                             f"received {len(state)}.")
        arrays = []
        for i, (target, value) in enumerate(zip(targets, state)):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"Optimizer state array {i} has shape {target.shape}, not "
                                 f"compatible with the received shape {value.shape}.")
            arrays.append(value)
        for target, value in zip(targets, arrays):
            target[...] = value

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Keras's name for ``set_state``."""
        self.set_state(weights)

    def save_own_variables(self, store) -> None:
        """Writes the state as ``store["0"], store["1"], ...`` (Keras's layout)."""
        for i, v in enumerate(self.variables):
            store[str(i)] = np.array(v, copy=True)

    def load_own_variables(self, store) -> None:
        """Reads ``save_own_variables``'s store; warns and skips on a count mismatch, as Keras."""
        targets = self.variables
        if len(store.keys()) != len(targets):
            msg = (f"Skipping variable loading for optimizer '{self.name}', because it has "
                   f"{len(targets)} variables whereas the saved optimizer has "
                   f"{len(store.keys())} variables. ")
            if not self.built:
                msg += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(msg, stacklevel=2)
            return
        self.set_state([store[str(i)] for i in range(len(targets))])

    def build(self, variables) -> None:
        """Creates the state for `variables` (their order fixes the state's layout)."""
        variables = list(variables)
        if self.use_ema:
            self._model_variables_moving_average = self.add_optimizer_variables(
                variables, "average")
        if self.gradient_accumulation_steps:
            self._accumulated_gradients = [
                self.add_variable_from_reference(v, name="gradient_accumulator")
                for v in variables]
        self._trainable_variables_indices = {}
        for i, variable in enumerate(variables):
            self._trainable_variables_indices[self._var_key(variable)] = i
        self._trainable_variables = variables[:]
        self.built = True

    def _var_key(self, variable) -> int:
        return id(variable)

    def _get_variable_index(self, variable) -> int:
        return self._trainable_variables_indices[id(variable)]

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none",
                     name=None) -> np.ndarray:
        """Adds a state array (zeros, ones, a constant, or ``initializer(shape, dtype)``)."""
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        shape = tuple(int(s) for s in shape)
        if isinstance(initializer, str):
            key = initializer.lower()
            if key == "zeros":
                arr = np.zeros(shape, dtype)
            elif key == "ones":
                arr = np.ones(shape, dtype)
            else:
                raise ValueError(f"unknown initializer {initializer!r} for an optimizer "
                                 "variable; use 'zeros', 'ones', a number or a callable")
        elif _is_real(initializer):
            arr = np.full(shape, float(np.asarray(initializer).reshape(())), dtype)
        elif callable(initializer):
            arr = np.array(initializer(shape, dtype=dtype), dtype=dtype).reshape(shape)
        else:
            raise ValueError(f"could not interpret initializer {initializer!r}")
        self._variables.append(arr)
        self._variable_names.append(f"{self.name}/{name or 'variable'}")
        return arr

    def add_variable_from_reference(self, reference_variable, name=None,
                                    initializer="zeros") -> np.ndarray:
        """Adds a state array shaped like `reference_variable` (named after its path)."""
        name = name or "var"
        path = getattr(reference_variable, "path", None)
        if path is not None:
            name = str(path).replace("/", "_") + "_" + name
        else:
            ref_name = getattr(reference_variable, "name", "var")
            name = str(ref_name).replace("/", "_").replace(":", "_") + "_" + name
        value = _value_of(reference_variable)
        return self.add_variable(value.shape, initializer=initializer, dtype=value.dtype,
                                 name=name)

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """One slot per variable; with a list of names, a tuple of lists created interleaved
        (variable by variable), as Keras 3 does."""
        names = [name] if isinstance(name, str) else list(name)
        inits = initializer if isinstance(initializer, (list, tuple)) else \
            [initializer] * len(names)
        if len(inits) != len(names):
            raise ValueError("The number of provided names must match the number of provided "
                             f"initializers. Received name={name!r}, "
                             f"initializer={initializer!r}")
        lists: tuple = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (n, init) in enumerate(zip(names, inits)):
                lists[i].append(self.add_variable_from_reference(variable, n, init))
        return lists[0] if isinstance(name, str) else lists

    def _scratch(self, slot: int, like: np.ndarray) -> np.ndarray:
        """A reusable buffer shaped like `like` (slot k of this dtype; never aliases another)."""
        key = (slot, like.shape, like.dtype)
        view = self._scratch_views.get(key)
        if view is not None:
            return view
        bufs = self._scratch_bufs.setdefault(like.dtype, [])
        while len(bufs) <= slot:
            bufs.append(np.empty(0, like.dtype))
        if bufs[slot].size < like.size:
            need = like.size
            for v in self._trainable_variables:  # size it for every built variable at once
                val = getattr(v, "value", None)
                if isinstance(val, np.ndarray) and val.dtype == like.dtype:
                    need = max(need, val.size)
            bufs[slot] = np.empty(need, like.dtype)
            for k in [k for k in self._scratch_views if k[0] == slot and k[2] == like.dtype]:
                del self._scratch_views[k]
        view = bufs[slot][:like.size].reshape(like.shape)
        self._scratch_views[key] = view
        return view

    def assign(self, variable, value) -> None:
        _value_of(variable)[...] = value

    def assign_add(self, variable, value) -> None:
        arr = _value_of(variable)
        np.add(arr, value, out=arr)

    def assign_sub(self, variable, value) -> None:
        arr = _value_of(variable)
        np.subtract(arr, value, out=arr)
