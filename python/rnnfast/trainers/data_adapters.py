"""What fit, evaluate and predict accept as data (Keras 3's data_adapters):
NumPy arrays (or lists/dicts of them), Python generators and other
iterables of batches, and ``keras.utils.PyDataset``. Each adapter yields
``(x, y, sample_weight)`` batches, one epoch at a time."""

from __future__ import annotations

import concurrent.futures
import math
import warnings

import numpy as np

from .. import _rng, _tree


class DataError(ValueError):
    """A batch that is not what the model takes (named by its index)."""


def as_array_structure(data, name, parts=1):
    """`data` as NumPy arrays: one array, or, for a model with `parts` inputs
    (outputs), a list or dict of them."""
    if data is None or type(data) is np.ndarray and data.dtype.kind in "biuf":
        return data
    if isinstance(data, dict):
        return {k: as_array_structure(v, f"{name}[{k!r}]") for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if parts > 1:
            if len(data) != parts:
                raise ValueError(f"{name}: the model has {parts} of them, got a list of "
                                 f"{len(data)}")
            return [as_array_structure(d, f"{name}[{i}]") for i, d in enumerate(data)]
        if len(data) == 1 and isinstance(data[0], np.ndarray):
            data = data[0]
        elif len(data) > 1 and all(isinstance(d, np.ndarray) and d.ndim > 0 for d in data):
            raise ValueError(f"{name}: the model has one of them, got a list of {len(data)} "
                             f"arrays (pass one array)")
    arr = np.asarray(data) if not isinstance(data, (list, tuple)) or _regular(data) else None
    if arr is None or arr.dtype == object:
        raise ValueError(f"{name} could not be converted to a numeric array (ragged sequences? pad "
                         f"them with rnnfast.utils.pad_sequences; several inputs? pass one array "
                         f"per model input)")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} holds {arr.dtype} values, not numbers")
    return arr


def _regular(data):
    shapes = {np.shape(d) for d in data}
    return len(shapes) <= 1


def num_samples(named_structures):
    """The common number of samples of every array; a clear error otherwise."""
    n = None
    first = None
    for name, data in named_structures:
        if data is None:
            continue
        for a in (data,) if type(data) is np.ndarray else \
                data if isinstance(data, list) and all(type(a) is np.ndarray for a in data) \
                else _tree.flatten(data):
            if a is None:
                continue
            if np.ndim(a) == 0:
                raise ValueError(f"{name} must have a batch axis, got a scalar")
            if n is None:
                n, first = a.shape[0], name
            elif a.shape[0] != n:
                raise ValueError(f"Data cardinality is ambiguous: {name} has {a.shape[0]} samples, "
                                 f"but {first} has {n}")
    return n


def slice_structure(data, idx):
    if data is None:
        return None
    return _tree.map_structure(lambda a: None if a is None else a[idx], data)


def unpack_batch(batch, where):
    """(x, y, sample_weight) from a batch given as x, (x,), (x, y) or (x, y, sw)."""
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise DataError(f"{where}: a batch must be a tuple (x,), (x, y) or (x, y, "
                            f"sample_weight); got a tuple of {len(batch)} elements")
        return tuple(batch) + (None,) * (3 - len(batch))
    if isinstance(batch, list) and len(batch) in (2, 3) and not all(
            isinstance(b, np.ndarray) for b in batch):
        return tuple(batch) + (None,) * (3 - len(batch))
    return batch, None, None


class ArrayDataAdapter:
    """Batches sliced from arrays, shuffled each epoch when asked."""

    # The shuffling generator; None: rnnfast's global one. Data-parallel
    # training gives every rank the same one, so that all ranks shuffle alike.
    rng = None

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False, steps=None):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.n = num_samples([("x", x), ("y", y), ("sample_weight", sample_weight)])
        if self.n is None:
            raise ValueError("no data: x is empty")
        self.batch_size = int(batch_size)
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.shuffle = shuffle
        self.num_batches = math.ceil(self.n / self.batch_size)
        if steps is not None:
            self.num_batches = min(self.num_batches, int(steps))

    def epoch(self):
        order = (self.rng or _rng.global_rng()).permutation(self.n) if self.shuffle else None
        for step in range(self.num_batches):
            start = step * self.batch_size
            if order is None:
                idx = slice(start, min(start + self.batch_size, self.n))
            else:
                idx = order[start:start + self.batch_size]
            yield (slice_structure(self.x, idx), slice_structure(self.y, idx),
                   slice_structure(self.sample_weight, idx))

    def on_epoch_end(self):
        pass


class GeneratorDataAdapter:
    """Batches from a Python generator or iterable. An iterable that is not an
    iterator (a list of batches, a timeseries dataset) restarts every epoch;
    a generator continues where the previous epoch stopped, ``steps`` batches
    an epoch (all it has, without ``steps``)."""

    def __init__(self, data, steps=None, what="generator"):
        self.data = data
        self.steps = None if steps is None else int(steps)
        self.what = what
        self.restartable = not hasattr(data, "__next__")
        self._iterator = None
        self.exhausted = False
        n = None
        if self.restartable and hasattr(data, "__len__"):
            try:
                n = len(data)
            except TypeError:
                n = None
        self.num_batches = self.steps if self.steps is not None else n

    def epoch(self):
        if self.restartable or self._iterator is None:
            self._iterator = iter(self.data)
        step = 0
        while self.steps is None or step < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                if self.steps is not None or step == 0:
                    self.exhausted = True
                return
            yield unpack_batch(batch, f"batch {step} of the {self.what}")
            step += 1

    def on_epoch_end(self):
        pass


class PyDatasetAdapter:
    """Batches from a ``keras.utils.PyDataset``: indices 0..len-1 (shuffled
    when fit asks), ``on_epoch_begin``/``on_epoch_end`` called around each
    epoch. With ``workers > 1`` batches are fetched ahead by a thread pool."""

    rng = None  # as ArrayDataAdapter.rng

    def __init__(self, dataset, steps=None, shuffle=False):
        self.dataset = dataset
        self.shuffle = shuffle
        self.n = dataset.num_batches
        if self.n is None and steps is None:
            raise ValueError("an infinite PyDataset (num_batches None) needs steps_per_epoch")
        self.num_batches = self.n if steps is None else int(steps) if self.n is None else \
            min(int(steps), self.n)
        self.exhausted = False

    def epoch(self):
        begin = getattr(self.dataset, "on_epoch_begin", None)
        if begin is not None:
            begin()
        indices = list(range(self.num_batches))
        if self.shuffle and self.n is not None:
            indices = list((self.rng or _rng.global_rng()).permutation(self.num_batches))
        workers = int(getattr(self.dataset, "workers", 1) or 1)
        where = "batch {} of the PyDataset"
        if workers > 1:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                ahead = max(1, int(getattr(self.dataset, "max_queue_size", 10) or 10))
                futures = [pool.submit(self.dataset.__getitem__, int(i)) for i in indices[:ahead]]
                for k, i in enumerate(indices):
                    batch = futures[k].result()
                    if k + ahead < len(indices):
                        futures.append(pool.submit(self.dataset.__getitem__, int(indices[k + ahead])))
                    yield unpack_batch(batch, where.format(int(i)))
        else:
            for i in indices:
                yield unpack_batch(self.dataset[int(i)], where.format(int(i)))

    def on_epoch_end(self):
        end = getattr(self.dataset, "on_epoch_end", None)
        if end is not None:
            end()


def is_batch_source(x) -> bool:
    """Whether fit/evaluate/predict got batches (a generator, a PyDataset or an
    iterable of batches) rather than arrays."""
    if type(x) is np.ndarray:  # the common case, before the import below
        return False
    from ..utils.py_dataset import PyDataset

    if isinstance(x, PyDataset):
        return True
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(x, "__array__"):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__")


def get_adapter(x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                what="data"):
    from ..utils.py_dataset import PyDataset

    if isinstance(x, PyDataset):
        _no_extra(y, sample_weight, batch_size, "a PyDataset")
        return PyDatasetAdapter(x, steps=steps, shuffle=shuffle)
    if is_batch_source(x):
        _no_extra(y, sample_weight, batch_size, "a generator or dataset")
        return GeneratorDataAdapter(x, steps=steps, what=what)
    return ArrayDataAdapter(x, y, sample_weight, batch_size=32 if batch_size is None else batch_size,
                            shuffle=shuffle, steps=steps)


def _no_extra(y, sample_weight, batch_size, kind):
    if y is not None:
        raise ValueError(f"y must not be given when x is {kind}: the batches carry the targets")
    if sample_weight is not None:
        raise ValueError(f"sample_weight must not be given when x is {kind}: the batches carry "
                         f"the sample weights")
    if batch_size is not None:
        warnings.warn(f"batch_size is ignored when x is {kind}: the batches have their own size",
                      UserWarning, stacklevel=4)
