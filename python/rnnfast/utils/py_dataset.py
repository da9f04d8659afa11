"""keras.utils.PyDataset: a dataset of batches defined by __len__ and
__getitem__, which fit, evaluate and predict iterate (trainers/data_adapters)."""

from __future__ import annotations

import itertools


class PyDataset:
    """Base class for datasets of batches (Keras 3's PyDataset).

    Subclasses implement ``__getitem__(index)``, returning a batch ``(x, y)``,
    ``(x, y, sample_weight)`` or ``x``, and ``__len__`` (the number of batches;
    or a ``num_batches`` property returning None for an infinite dataset).
    ``on_epoch_begin`` and ``on_epoch_end`` are called around each epoch.

    ``workers`` > 1 fetches batches ahead in that many threads, keeping up to
    ``max_queue_size`` batches; ``use_multiprocessing`` is accepted for
    compatibility and runs the same threads (rnnfast's kernels already use
    every core, and a child process would copy the dataset).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"PyDataset: workers must be a non-negative integer, got {workers!r}")
        if not isinstance(max_queue_size, int) or max_queue_size <= 0:
            raise ValueError(f"PyDataset: max_queue_size must be a positive integer, got "
                             f"{max_queue_size!r}")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        pass

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self):
        """Number of batches, or None for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (or a "
                                  f"num_batches property)")

    def __iter__(self):
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


# Keras 2's name for the same idea.
Sequence = PyDataset
