"""keras.utils.timeseries_dataset_from_array: sliding windows over a series,
batched, as an iterable that fit, evaluate and predict take."""

from __future__ import annotations

import math

import numpy as np


class TimeseriesDataset:
    """Batches of windows ``data[start + i * sampling_rate]`` for
    ``i < sequence_length`` (and the target ``targets[start]``), from
    ``timeseries_dataset_from_array``. Iterating yields ``(x, y)`` batches (or
    ``x`` without targets); ``len()`` is the number of batches. With
    ``shuffle`` the windows come in a new order every pass, repeatable from
    ``seed``."""

    def __init__(self, data, targets, starts, sequence_length, sampling_rate, batch_size, shuffle,
                 seed):
        self.data, self.targets = data, targets
        self.starts = starts
        self.offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.RandomState(seed) if shuffle else None

    def __len__(self):
        if self.batch_size is None:
            return len(self.starts)
        return math.ceil(len(self.starts) / self.batch_size)

    @property
    def num_samples(self):
        return len(self.starts)

    def _windows(self, starts):
        x = self.data[starts[:, None] + self.offsets]
        if self.targets is None:
            return x
        return x, self.targets[starts]

    def __iter__(self):
        starts = self.starts
        if self.shuffle:
            starts = starts[self._rng.permutation(len(starts))]
        if self.batch_size is None:  # single windows, unbatched
            for s in starts:
                x = self.data[s + self.offsets]
                yield x if self.targets is None else (x, self.targets[s])
            return
        for i in range(0, len(starts), self.batch_size):
            yield self._windows(starts[i:i + self.batch_size])


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Windows of ``sequence_length`` steps over ``data`` (Keras 3's arguments
    and semantics): window ``k`` starts at ``start_index + k * sequence_stride``
    and takes every ``sampling_rate``-th step; its target is
    ``targets[start_index + k * sequence_stride]`` (align ``targets`` yourself,
    e.g. ``data[:-delay]`` with ``targets = data[delay:]``). Only steps in
    ``[start_index, end_index)`` are used.

    Returns a :class:`TimeseriesDataset`: an iterable of NumPy batches
    ``(x, y)`` (``x`` alone when ``targets`` is None), of shape
    ``(batch, sequence_length, *data.shape[1:])``."""
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError("timeseries_dataset_from_array: data must be an array with a time axis")
    n = len(data)
    for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                        ("sampling_rate", sampling_rate)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{name}` must be higher than 0. Received: {name}={value!r}")
    if sampling_rate >= n:
        raise ValueError(f"`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {n}")
    if sequence_stride >= n:
        raise ValueError(f"`sequence_stride` must be lower than the length of the data. Received: "
                         f"sequence_stride={sequence_stride}, for data of length {n}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size <= 0):
        raise ValueError(f"`batch_size` must be a positive integer or None, got {batch_size!r}")
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: "
                             f"start_index={start_index}")
        if start_index >= n:
            raise ValueError(f"`start_index` must be lower than the length of the data. Received: "
                             f"start_index={start_index}, for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(f"`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index}")
        if end_index >= n:
            raise ValueError(f"`end_index` must be lower than the length of the data. Received: "
                             f"end_index={end_index}, for data of length {n}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    start = start_index or 0
    end = end_index if end_index else n
    if targets is not None:
        targets = np.asarray(targets)
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        count = min(count, len(targets) - start)
    if count <= 0:
        raise ValueError(f"no window of sequence_length={sequence_length} (sampling_rate="
                         f"{sampling_rate}) fits in steps [{start}, {end}) of the data")
    starts = start + np.arange(0, count, sequence_stride)
    return TimeseriesDataset(data, targets, starts, sequence_length, sampling_rate, batch_size,
                             shuffle, seed)
