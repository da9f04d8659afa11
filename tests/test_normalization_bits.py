"""The normalization kernels give the same bits for the same data wherever its
arrays lie in memory (Eigen's reductions and packet rsqrt once depended on the
alignment, so repeated or threaded calls could differ in the last bit)."""
import numpy as np
import pytest
from rnnfast import _core


def at_offset(a, k):
    """A copy of `a` whose data starts k elements past a 64-byte boundary."""
    buf = np.empty(a.size + 64, a.dtype)
    start = (-buf.ctypes.data % 64) // a.itemsize + k
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


def bits(results):
    return [np.asarray(r).tobytes() for r in results if r is not None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [7, 37, 130])
def test_normalization_results_do_not_depend_on_where_arrays_lie(dtype, C):
    rng = np.random.default_rng(C)
    R = 9
    x, dy = rng.standard_normal((R, C)).astype(dtype), rng.standard_normal((R, C)).astype(dtype)
    g, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    def run(k):
        xs, dys = at_offset(x, k), at_offset(dy, (k * 3) % 16)
        y, m, s = _core.layer_norm_forward(xs, g, b, epsilon=1e-3, return_stats=True)
        lb = _core.layer_norm_backward(xs, m, s, g, dys)
        mean, var = _core.batch_norm_moments(xs)
        bb = _core.batch_norm_backward(xs, mean, var, g, dys, epsilon=1e-3)
        ba = _core.batch_norm_apply(xs, mean, var, g, b, epsilon=1e-3)
        return bits([y, m, s, *lb, mean, var, *bb, ba])
    first = run(0)
    for k in range(1, 16):
        assert run(k) == first, k
