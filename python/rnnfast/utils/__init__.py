"""Utilities with Keras 3's names: reproducibility, label and sequence helpers."""

from __future__ import annotations

import random as _random

import numpy as np

from .. import _rng
from .py_dataset import PyDataset, Sequence
from .timeseries import timeseries_dataset_from_array


def set_random_seed(seed: int) -> None:
    """Seeds every source of randomness rnnfast uses (weights, dropout,
    shuffling), plus Python's ``random`` and NumPy's legacy global state, so
    that a run repeats exactly."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    _random.seed(seed)
    np.random.seed(seed % 2**32)
    _rng.set_global_seed(seed)


def to_categorical(x, num_classes=None):
    """Class indices -> one-hot float32 rows (Keras's ``to_categorical``)."""
    x = np.asarray(x, dtype="int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    x = x.reshape(-1)
    if x.size and x.min() < 0:
        raise ValueError("to_categorical: class indices must be non-negative")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise ValueError(f"to_categorical: index {int(x.max())} >= num_classes={num_classes}")
    out = np.zeros((x.size, num_classes), dtype="float32")
    out[np.arange(x.size), x] = 1.0
    return out.reshape(shape + (num_classes,))


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pads a list of sequences to one length (Keras's ``pad_sequences``)."""
    if padding not in ("pre", "post"):
        raise ValueError(f'padding must be "pre" or "post", got {padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(f'truncating must be "pre" or "post", got {truncating!r}')
    seqs = [np.asarray(s) for s in sequences]
    lengths = [len(s) for s in seqs]
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    feature_shape = ()
    for s in seqs:
        if len(s):
            feature_shape = s.shape[1:]
            break
    out = np.full((len(seqs), maxlen) + feature_shape, value, dtype=dtype)
    for i, s in enumerate(seqs):
        if not len(s) or maxlen == 0:
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, :len(trunc)] = trunc
        else:
            out[i, -len(trunc):] = trunc
    return out


__all__ = ["PyDataset", "Sequence", "pad_sequences", "set_random_seed",
           "timeseries_dataset_from_array", "to_categorical"]
