"""Central finite differences: the one loop every gradient check uses."""

import numpy as np

EPS = 1e-6


def numeric_gradient(f, arr, eps=EPS):
    """Central differences of the scalar f() with respect to `arr`, which is
    perturbed in place (and restored); float64 results."""
    g = np.zeros(arr.shape)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    assert flat.size == 0 or np.shares_memory(flat, arr), "arr must be contiguous"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g
