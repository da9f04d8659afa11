"""A bound on what building a model may allocate: a loader sets it to what
the file's weights could hold, so that a forged config cannot make it claim
unbounded memory (add_weight checks it, and a stateful RNN's build checks
its states).

The bound belongs to the thread (a context variable) that runs the loader:
models built meanwhile in other threads are not limited by it."""

from __future__ import annotations

import contextvars
import functools
import os

# A stateful layer's states are zeros that the file does not hold: they may
# take this much beyond the weights' budget (a batch of 1024 rows of 2048
# units), so that genuine stateful models load, but no more.
STATE_ALLOWANCE = 16 * 1024 * 1024


class BudgetExceeded(ValueError):
    """Raised by add_weight when a loader's allocation budget would be exceeded."""


class _Budget:
    __slots__ = ("remaining", "states")

    def __init__(self, nbytes, states):
        self.remaining = nbytes  # bytes add_weight may still allocate
        self.states = states  # bytes states may take before drawing on `remaining`


_current = contextvars.ContextVar("rnnfast_allocation_budget", default=None)


def claim(nbytes: int, what: str) -> None:
    budget = _current.get()
    if budget is None:
        return
    if nbytes > budget.remaining:
        raise BudgetExceeded(f"{what} needs {nbytes} bytes")
    budget.remaining -= nbytes


@functools.lru_cache(maxsize=None)
def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not tell."""
    try:
        n = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return n if n > 0 else None


def check_fits_memory(nbytes: int, what: str) -> None:
    """MemoryError naming the size when `nbytes` exceed the machine's physical
    memory: an absurd size (LSTM(10**6)) fails at once and clearly, instead of
    in an initializer's allocation, or after the OS overcommitted it and
    killed the process on first touch."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise MemoryError(f"{what} needs {nbytes} bytes ({nbytes / 2 ** 30:.4g} GiB), more than "
                          f"this machine's {total} bytes of memory")


def claim_states(nbytes: int, what: str) -> None:
    """A stateful layer's states: from STATE_ALLOWANCE first, then the budget."""
    budget = _current.get()
    if budget is None:
        return
    if nbytes > budget.states + budget.remaining:
        raise BudgetExceeded(f"{what} needs {nbytes} bytes")
    from_states = min(nbytes, budget.states)
    budget.states -= from_states
    budget.remaining -= nbytes - from_states


class allocation_budget:
    """While active (in this thread), add_weight refuses to allocate more
    than `nbytes` in all, and states more than STATE_ALLOWANCE beyond it."""

    def __init__(self, nbytes: int, states: int = STATE_ALLOWANCE):
        self.nbytes = int(nbytes)
        self.states = int(states)

    def __enter__(self):
        self._token = _current.set(_Budget(self.nbytes, self.states))
        return self

    def __exit__(self, *exc):
        _current.reset(self._token)
        return False
