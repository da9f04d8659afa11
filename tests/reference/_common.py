"""Small helpers shared by the three reference cells (input normalisation)."""

import numpy as np


def f64(a):
    return np.asarray(a, dtype=np.float64)


def step_time(s, T, go_backwards):
    """Original time index consumed at processing step ``s``."""
    return T - 1 - s if go_backwards else s


def sequence_mask(mask, B, T):
    """Return a bool [B, T] array (original time order); None means all True."""
    if mask is None:
        return np.ones((B, T), dtype=bool)
    m = np.asarray(mask).astype(bool)
    if m.shape != (B, T):
        raise ValueError(f"mask must have shape {(B, T)}, got {m.shape}")
    return m


def gate_masks(mask, G, B, n, what):
    """Expand a dropout mask to a list of G float64 [B, n] masks.

    None -> all ones; [B, n] -> the same mask for every gate block;
    [G, B, n] -> one mask per gate block, in gate order.
    """
    if mask is None:
        return [np.ones((B, n)) for _ in range(G)]
    m = f64(mask)
    if m.shape == (B, n):
        return [m for _ in range(G)]
    if m.shape == (G, B, n):
        return [m[g] for g in range(G)]
    raise ValueError(f"{what} must have shape {(B, n)} or {(G, B, n)}, got {m.shape}")


def initial_state(state, B, U, what):
    if state is None:
        return np.zeros((B, U))
    s = f64(state)
    if s.shape != (B, U):
        raise ValueError(f"{what} must have shape {(B, U)}, got {s.shape}")
    return s


def check_shape(a, shape, what):
    if a.shape != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, got {a.shape}")


def grad_or_zeros(g, shape):
    """Incoming gradient, with None meaning zeros. Always a fresh float64 array."""
    if g is None:
        return np.zeros(shape)
    g = np.array(g, dtype=np.float64)  # copy: we accumulate into it
    check_shape(g, shape, "incoming gradient")
    return g
