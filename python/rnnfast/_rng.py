"""The package's random state: one NumPy Generator that
``rnnfast.utils.set_random_seed`` resets, so that runs are reproducible.

Initializers, dropout masks and shuffling draw from ``global_rng()`` unless
they were given a seed of their own (then ``seeded_rng(seed)``)."""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def global_rng() -> np.random.Generator:
    return _rng


def set_global_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def seeded_rng(seed) -> np.random.Generator:
    """A generator for an object with its own seed (None: the global one)."""
    return _rng if seed is None else np.random.default_rng(seed)
