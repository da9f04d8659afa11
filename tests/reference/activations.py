"""Activation functions (Keras 3 definitions) and their derivatives, float64.

Derivatives are expressed with both the pre-activation ``x`` and the output
``y`` available, because the smooth ones are cheapest (and most exact) in
terms of ``y`` while the piecewise-linear ones must look at ``x``.
"""

import numpy as np

ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")


def activation(name, x):
    """Apply the activation called ``name`` elementwise to ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        # 1 / (1 + exp(-x)), written so exp never overflows (the test config
        # turns RuntimeWarnings into errors): exp(-|x|) is always <= 1.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
    if name == "hard_sigmoid":
        # Keras 3 definition: relu6(x + 3) / 6 (slope 1/6, NOT the old 0.2).
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "linear":
        return x.copy()
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name, x, y):
    """Elementwise d activation(x) / dx, given the input ``x`` and output ``y``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if name == "tanh":
        return 1.0 - y * y
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "hard_sigmoid":
        # Flat (zero slope) in the clipped regions; the kinks themselves get 0.
        return np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0)
    if name == "relu":
        # Convention: derivative 0 at exactly x == 0.
        return np.where(x > 0.0, 1.0, 0.0)
    if name == "linear":
        return np.ones_like(x)
    raise ValueError(f"unknown activation {name!r}")


def kink_distance(name, x):
    """Smallest distance of any entry of ``x`` to a non-differentiable point of
    the activation (inf for smooth activations). Used by tests so that finite
    differences are never taken across a kink."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or name in ("tanh", "sigmoid", "linear"):
        return np.inf
    if name == "relu":
        return float(np.min(np.abs(x)))
    if name == "hard_sigmoid":
        return float(np.min(np.minimum(np.abs(x - 3.0), np.abs(x + 3.0))))
    raise ValueError(f"unknown activation {name!r}")
