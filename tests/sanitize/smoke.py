"""Python smoke test for the sanitizer job (.ci/sanitize).

Runs the compiled kernels through their Python bindings and one small model
end to end (fit, predict, save, load), on an rnnfast whose extension was built
with -fsanitize=address,undefined. Small on purpose: it is there to put every
binding and kernel family under AddressSanitizer and UBSan, not to check
numerics (the pytest suite does that). A sanitizer finding aborts the process;
anything else that goes wrong raises.

    python tests/sanitize/smoke.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import numpy as np

import rnnfast
from rnnfast import _core

rng = np.random.default_rng(0)


def rand(*shape, dtype=np.float64, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def finite(*arrays):
    for a in arrays:
        if a is not None:
            assert np.all(np.isfinite(a)), "non-finite result"


def run_cell(make, gates, dtype, B=3, T=5, I=4, U=7, **opts):
    """Forward (training) and backward of one kernel with the given options."""
    kernel = make()
    bias_shape = opts.pop("bias_shape", lambda U: (gates * U,))
    x = rand(B, T, I, dtype=dtype)
    W = rand(I, gates * U, dtype=dtype)
    R = rand(U, gates * U, dtype=dtype)
    b = None if bias_shape is None else rand(*bias_shape(U), dtype=dtype)
    kw = {}
    lstm = gates == 4

    def new_state():  # [B, U], a pair for LSTM
        h = rand(B, U, dtype=dtype)
        return (h, rand(B, U, dtype=dtype)) if lstm else h

    if opts.get("initial_state"):
        kw["initial_state"] = new_state()
    if opts.get("mask"):
        m = np.ones((B, T), np.uint8)
        m[0, 0] = m[1, 2] = m[2, T - 1] = 0
        kw["mask"] = m.astype(bool)
    if opts.get("dropout") == "shared":
        kw["input_dropout_mask"] = (rng.random((B, I)) > 0.3).astype(dtype) / 0.7
        kw["recurrent_dropout_mask"] = (rng.random((B, U)) > 0.3).astype(dtype) / 0.7
    elif opts.get("dropout") == "per_gate":
        kw["input_dropout_mask"] = (rng.random((gates, B, I)) > 0.3).astype(dtype)
        kw["recurrent_dropout_mask"] = (rng.random((gates, B, U)) > 0.3).astype(dtype)
    seqs = opts.get("return_sequences", True)
    out = np.empty((B, T, U), dtype) if opts.get("out") and seqs else None
    y, state = kernel.forward(x, W, R, b, training=True, out=out, return_sequences=seqs, **kw)
    finite(y, *(state if lstm else (state,)))
    dy = rand(B, T, U, dtype=dtype) if seqs else None
    dstate = new_state()
    bw = {}
    if opts.get("out"):
        bw = dict(dx_out=np.empty_like(x), dkernel_out=np.empty_like(W),
                  drecurrent_kernel_out=np.empty_like(R))
        if b is not None:
            bw["dbias_out"] = np.empty_like(b)
    grads = kernel.backward(W, R, doutputs=dy, dfinal_state=dstate,
                            compute_dx=not opts.get("no_dx"), **bw)
    dx, dh0, dW, dR, db = grads
    finite(dx, dW, dR, db, *(dh0 if lstm else (dh0,)))
    # Inference forward (no cache), and a non-contiguous input that gets copied.
    kernel.forward(x[:, ::-1], W, R, b, training=False, **kw)
    kernel.forward(np.asfortranarray(x), W, R, b, training=False)


def kernels():
    # name, constructor, gates, bias shape for U units
    cells = [
        ("SimpleRNN", lambda **k: _core.SimpleRNNKernel(units=7, **k), 1, lambda U: (U,)),
        ("LSTM", lambda **k: _core.LSTMKernel(units=7, **k), 4, lambda U: (4 * U,)),
        ("GRU", lambda **k: _core.GRUKernel(units=7, reset_after=True, **k), 3,
         lambda U: (2, 3 * U)),
        ("GRU reset_after=False", lambda **k: _core.GRUKernel(units=7, reset_after=False, **k), 3,
         lambda U: (3 * U,)),
    ]
    variants = [
        {},
        {"initial_state": True, "mask": True},
        {"dropout": "shared", "out": True},
        {"dropout": "per_gate", "bias_shape": None, "no_dx": True},
        {"return_sequences": False, "initial_state": True},
        {"go_backwards": True, "mask": True},
    ]
    n = 0
    for dtype in (np.float32, np.float64):
        for name, ctor, gates, bias_shape in cells:
            for v in variants:
                v = dict(v)
                v.setdefault("bias_shape", bias_shape)
                args = {"go_backwards": True} if v.pop("go_backwards", False) else {}
                run_cell(lambda: ctor(**args), gates, dtype, **v)
                n += 1
            # Other activations, and sizes on either side of a SIMD packet.
            for U in (1, 8, 9, 17):
                v = {"bias_shape": bias_shape}
                ctor_u = {
                    "SimpleRNN": lambda: _core.SimpleRNNKernel(units=U, activation="relu"),
                    "LSTM": lambda: _core.LSTMKernel(units=U, activation="linear",
                                                     recurrent_activation="hard_sigmoid"),
                    "GRU": lambda: _core.GRUKernel(units=U, reset_after=True),
                    "GRU reset_after=False": lambda: _core.GRUKernel(units=U, reset_after=False),
                }[name]
                run_cell(ctor_u, gates, dtype, B=2, T=3, I=5, U=U, **v)
                n += 1
    # A batch big enough to split over the pool's threads.
    rnnfast.set_num_threads(2)
    for dtype in (np.float32, np.float64):
        run_cell(lambda: _core.LSTMKernel(units=33), 4, dtype, B=64, T=6, I=9, U=33)
        run_cell(lambda: _core.GRUKernel(units=33, reset_after=True), 3, dtype, B=64, T=6, I=9,
                 U=33, bias_shape=lambda U: (2, 3 * U))
        n += 2
    return n


def ops():
    for dtype in (np.float32, np.float64):
        x = rand(2, 1, 11, 5, dtype=dtype)
        k = rand(1, 3, 5, 6, dtype=dtype)
        b = rand(6, dtype=dtype)
        for pad, dil, stride, act in (((0, 0), 1, 1, "linear"), ((4, 0), 2, 1, "relu"),
                                      ((1, 1), 1, 2, "tanh")):
            kw = dict(strides=(1, stride), dilation=(1, dil), padding=((0, 0), pad), activation=act)
            y = _core.conv_forward(x, k, b, **kw)
            finite(y, *_core.conv_backward(x, k, rand(*y.shape, dtype=dtype), y, **kw))
        x2 = rand(2, 6, 7, 4, dtype=dtype)
        k2 = rand(3, 2, 2, 6, dtype=dtype)
        y2 = _core.conv_forward(x2, k2, None, strides=(2, 1), padding=((1, 1), (0, 1)), groups=2)
        finite(*_core.conv_backward(x2, k2, rand(*y2.shape, dtype=dtype), strides=(2, 1),
                                    padding=((1, 1), (0, 1)), groups=2, compute_dbias=False))
        for mode in ("max", "average"):
            kw = dict(pool_size=(2, 3), strides=(2, 2), padding=((0, 1), (1, 1)), mode=mode)
            if mode == "max":
                y, arg = _core.pool_forward(x2, return_argmax=True, **kw)
                dx = _core.pool_backward(rand(*y.shape, dtype=dtype), input_shape=x2.shape,
                                         argmax=arg, **kw)
            else:
                y = _core.pool_forward(x2, **kw)
                dx = _core.pool_backward(rand(*y.shape, dtype=dtype), input_shape=x2.shape, **kw)
            finite(y, dx)
        r = rand(10, 13, dtype=dtype)
        g, be = rand(13, dtype=dtype), rand(13, dtype=dtype)
        y, mean, rstd = _core.layer_norm_forward(r, g, be, epsilon=1e-3, return_stats=True)
        finite(y, *_core.layer_norm_backward(r, mean, rstd, g, rand(10, 13, dtype=dtype)))
        mean, var = _core.batch_norm_moments(r)
        finite(_core.batch_norm_apply(r, mean, var, g, be, epsilon=1e-3))
        finite(*_core.batch_norm_backward(r, mean, var, g, rand(10, 13, dtype=dtype), epsilon=1e-3))
        a, bm = rand(7, 9, dtype=dtype), rand(9, 5, dtype=dtype)
        np.testing.assert_allclose(_core.matmul(a, bm), a @ bm, rtol=1e-4, atol=1e-5)
        out = np.zeros((9, 9), dtype)
        _core.matmul(a, a, trans_a=True, out=out, accumulate=True)
    ws = [rand(5, 3, dtype=np.float32), rand(17, dtype=np.float32)]
    gs = [rand(5, 3, dtype=np.float32), rand(17, dtype=np.float32)]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    _core.adam_step(ws, gs, ms, vs, None, 1e-3, 0.1, 0.001, 1e-7)
    finite(*ws)


def bad_arguments():
    """Refusals and empty axes go through the argument checks, not past them."""
    lstm = _core.LSTMKernel(units=4)
    x = rand(2, 3, 5, dtype=np.float32)
    W, R = rand(5, 16, dtype=np.float32), rand(4, 16, dtype=np.float32)
    for args in ((x, W[:4], R), (x, W, R[:, :8]), (x.astype(np.float64), W, R),
                 (x[0], W, R), (np.zeros((2, 0, 5), np.float32), W, R),
                 (np.zeros((0, 3, 5), np.float32), W, R),
                 (np.zeros((2, 3, 0), np.float32), W[:0], R)):
        try:
            lstm.forward(*args, training=True)
            lstm.backward(W, R, doutputs=np.ones((len(args[0]), args[0].shape[1], 4), np.float32))
        except (ValueError, TypeError, RuntimeError):
            pass
    try:  # an output array of the wrong shape
        lstm.forward(x, W, R, out=np.empty((2, 3, 5), np.float32))
    except ValueError:
        pass
    try:  # backward without a training forward
        _core.LSTMKernel(units=4).backward(W, R, doutputs=rand(2, 3, 4, dtype=np.float32))
    except (ValueError, RuntimeError):
        pass


def model(tmp):
    keras = rnnfast
    keras.utils.set_random_seed(1)
    x = rand(24, 8, 3, dtype=np.float32)
    y = x.sum(axis=(1, 2))[:, None]
    m = keras.models.Sequential([
        keras.layers.Input(shape=(8, 3)),
        keras.layers.Conv1D(4, 3, padding="causal", activation="relu"),
        keras.layers.LSTM(6, return_sequences=True, dropout=0.1, recurrent_dropout=0.1),
        keras.layers.GRU(5, return_sequences=True),
        keras.layers.SimpleRNN(4),
        keras.layers.Dense(1),
    ])
    m.compile(loss="mse", optimizer="adam")
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    p = m.predict(x, verbose=0)
    finite(p)
    for name in ("m.keras", "m.rnnfast", "w.npz"):
        path = os.path.join(tmp, name)
        if name == "w.npz":
            m.save_weights(path)
            m.load_weights(path)
            got = m.predict(x, verbose=0)
        else:
            m.save(path)
            got = keras.models.load_model(path).predict(x, verbose=0)
        np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)
    # Separate models in several Python threads (the pool's concurrent-caller path).
    errors = []

    def work(seed):
        try:
            mm = keras.models.Sequential([keras.layers.Input(shape=(8, 3)), keras.layers.GRU(6),
                                          keras.layers.Dense(1)])
            mm.compile(loss="mse", optimizer="sgd")
            mm.train_on_batch(x, y)
            finite(mm.predict(x, verbose=0))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main():
    expect = os.environ.get("RNNFAST_SMOKE_EXPECT_DIR")
    if expect:  # the sanitized build, not an installed rnnfast
        for mod in (rnnfast, _core):
            path = os.path.realpath(mod.__file__)
            assert path.startswith(os.path.realpath(expect)), f"{mod.__name__} from {path}"
    print("rnnfast", rnnfast.__version__, _core.build_info())
    n = kernels()
    ops()
    bad_arguments()
    with tempfile.TemporaryDirectory() as tmp:
        model(tmp)
    print(f"sanitizer smoke test passed ({n} kernel runs, ops, model fit/predict/save/load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
