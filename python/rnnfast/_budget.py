"""A bound on what building a model may allocate: a loader sets it to what
the file's weights could hold, so that a forged config cannot make it claim
unbounded memory (add_weight checks it)."""

from __future__ import annotations


class BudgetExceeded(ValueError):
    """Raised by add_weight when a loader's allocation budget would be exceeded."""


_remaining = None  # bytes add_weight may still allocate (None: no limit)


def claim(nbytes: int, what: str) -> None:
    global _remaining
    if _remaining is None:
        return
    if nbytes > _remaining:
        raise BudgetExceeded(f"{what} needs {nbytes} bytes")
    _remaining -= nbytes


class allocation_budget:
    """While active, add_weight refuses to allocate more than `nbytes` in all."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)

    def __enter__(self):
        global _remaining
        self._saved = _remaining
        _remaining = self.nbytes
        return self

    def __exit__(self, *exc):
        global _remaining
        _remaining = self._saved
        return False
