"""Numerics checks on the data (``tf.debugging.enable_check_numerics``'s idea).

Keras's ``fit`` has no such option. ``enable_check_numerics()`` makes
``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` methods check every
batch before computing on it, and raise :class:`NumericsError` (a
``ValueError``) naming the call, the epoch (during ``fit``), the batch and
which input (``x``, ``y`` or ``sample_weight``, with its position in a list or
dict) holds NaN or inf. Integer and boolean inputs (token ids, masks) cannot
hold either and are not checked. The switch is process-wide, as
TensorFlow's; ``disable_check_numerics()`` turns it off. Each check is one
pass over the batch (``np.isfinite``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["NumericsError", "enable_check_numerics", "disable_check_numerics",
           "check_numerics_enabled"]

_enabled = False


class NumericsError(ValueError):
    """A batch holds NaN or inf while check_numerics is enabled."""


def enable_check_numerics() -> None:
    """Check every batch of fit, evaluate and predict for NaN and inf."""
    global _enabled
    _enabled = True


def disable_check_numerics() -> None:
    global _enabled
    _enabled = False


def check_numerics_enabled() -> bool:
    return _enabled


def _paths(structure, name):
    """(name with its position, array) for each array of a nested structure."""
    if isinstance(structure, dict):
        for key in structure:
            yield from _paths(structure[key], f"{name}[{key!r}]")
    elif isinstance(structure, (list, tuple)):
        for i, item in enumerate(structure):
            yield from _paths(item, f"{name}[{i}]")
    elif structure is not None:
        yield name, structure


def _describe(a):
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    kinds = " and ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "inf")) if n)
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return f"{kinds} value{'s' if nan + inf > 1 else ''} (the first at index {first} of the batch)"


def check_batch(where: str, x, y=None, sample_weight=None, *, input_names=None) -> None:
    """Raises NumericsError if a float array of the batch holds NaN or inf.
    `where` says which call and batch ("fit: epoch 2, batch 5");
    `input_names` (the model's) label the arrays of a list x."""
    for part, structure in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if isinstance(structure, (list, tuple)) and len(structure) == 1:
            structure = structure[0]  # one input or output: named x, not x[0]
        for name, a in _paths(structure, part):
            if part == "x" and input_names and isinstance(structure, (list, tuple)) and \
                    len(structure) == len(input_names) and name.endswith("]"):
                i = int(name[2:name.index("]")])
                name = f"{name} (input {input_names[i]!r})"
            a = np.asarray(a)
            if a.dtype.kind not in "fc" or np.isfinite(a).all():
                continue
            raise NumericsError(f"check_numerics: {where}: {name} holds {_describe(a)}; "
                                f"rnnfast.debugging.enable_check_numerics() is on")

