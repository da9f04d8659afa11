"""Adam's fused C++ step (rnnfast._core.adam_step, one call for all weights)
matches the per-array NumPy update bit for bit, and checks its arguments."""

import numpy as np
import pytest

from rnnfast import _core, optimizers


class Var:
    def __init__(self, value):
        self.value = value
        self.name = self.path = f"v{id(self)}"
        self.trainable = True
        self.constraint = None


def run(per_array: bool, amsgrad: bool, dtype, weight_decay=None, nan=False):
    rng = np.random.default_rng(0)
    shapes = [(7, 12), (12,), (3, 5, 4), (300, 900)]  # the last one splits over threads
    variables = [Var(rng.standard_normal(s).astype(dtype)) for s in shapes]
    cls = optimizers.AdamW if weight_decay else optimizers.Adam
    kwargs = {"weight_decay": weight_decay} if weight_decay else {}
    opt = cls(learning_rate=0.01, amsgrad=amsgrad, **kwargs)
    if per_array:  # the NumPy path: the base class's loop over update_step
        opt._backend_update_step = lambda g, v, lr: optimizers.Optimizer._backend_update_step(
            opt, g, v, lr)
    for step in range(5):
        grads = [rng.standard_normal(v.value.shape).astype(dtype) * (step + 1) for v in variables]
        if nan and step == 2:  # a NaN in the vectorised part of the loop and one in its tail
            grads[3].reshape(-1)[17] = np.nan
            grads[0].reshape(-1)[-1] = np.nan
        opt.apply(grads, variables)
    return [v.value for v in variables], opt.get_state()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [None, 0.004])
def test_fused_adam_is_bit_identical(dtype, amsgrad, weight_decay):
    fused_w, fused_s = run(False, amsgrad, dtype, weight_decay)
    numpy_w, numpy_s = run(True, amsgrad, dtype, weight_decay)
    for a, b in zip(fused_w + fused_s, numpy_w + numpy_s):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_propagates_nan_as_numpy_does(amsgrad):
    fused_w, fused_s = run(False, amsgrad, np.float32, nan=True)
    numpy_w, numpy_s = run(True, amsgrad, np.float32, nan=True)
    assert np.isnan(fused_w[3].reshape(-1)[17]) and np.isnan(fused_w[0].reshape(-1)[-1])
    for a, b in zip(fused_w + fused_s, numpy_w + numpy_s):
        np.testing.assert_array_equal(a, b)  # NaN where NumPy has NaN, equal elsewhere


def test_adam_step_argument_checks():
    w = [np.zeros(3, np.float32)]
    g = [np.zeros(3, np.float32)]
    with pytest.raises(ValueError, match="same length"):
        _core.adam_step(w, g, [], [], None, 0.1, 0.1, 0.001, 1e-7)
    with pytest.raises(ValueError, match=r"ms\[0\] has 4 elements, expected 3"):
        _core.adam_step(w, g, [np.zeros(4, np.float32)], [np.zeros(3, np.float32)], None,
                        0.1, 0.1, 0.001, 1e-7)
    with pytest.raises(TypeError, match=r"grads\[0\] must have dtype float32"):
        _core.adam_step(w, [np.zeros(3)], [np.zeros(3, np.float32)], [np.zeros(3, np.float32)],
                        None, 0.1, 0.1, 0.001, 1e-7)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"weights\[0\] must be writeable"):
        _core.adam_step([ro], g, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], None,
                        0.1, 0.1, 0.001, 1e-7)
