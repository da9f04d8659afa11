"""Nested structures of arrays or symbolic tensors (lists, tuples, dicts), as
Keras's keras.tree walks them: dicts in sorted key order, None a leaf."""

from __future__ import annotations


def is_nested(x) -> bool:
    return isinstance(x, (list, tuple, dict))


def flatten(x) -> list:
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in flatten(item)]
    return [x]


def pack_sequence_as(structure, flat):
    """The leaves of `flat`, in order, placed into the shape of `structure`."""
    flat = list(flat)
    pos = 0

    def build(s):
        nonlocal pos
        if isinstance(s, dict):
            built = {k: build(s[k]) for k in sorted(s)}
            return {k: built[k] for k in s}
        if isinstance(s, (list, tuple)):
            items = [build(item) for item in s]
            return items if isinstance(s, list) else tuple(items)
        value = flat[pos]
        pos += 1
        return value

    out = build(structure)
    if pos != len(flat):
        raise ValueError(f"structure has {pos} leaves, got {len(flat)} values")
    return out


def map_structure(fn, x):
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    if isinstance(x, list):
        return [map_structure(fn, v) for v in x]
    if isinstance(x, tuple):
        return tuple(map_structure(fn, v) for v in x)
    return fn(x)
