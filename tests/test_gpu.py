"""The CUDA module (rnnfast._cuda) and device selection.

Without a GPU: the module (built whenever nvcc is present) imports and says
why no device is usable, device names parse, and an explicit GPU choice that
cannot be honoured is a clear error. The CUDA module's own code built on a
host emulation of the runtime and cuBLAS (rnnfast._cuda_emulated, with the
C++ tests) runs every kernel against the CPU kernels: the orchestration
(GEMM shapes, leading dimensions, buffers, step order, reorderings) is
checked on every machine. With a GPU (``pytest -m gpu``; skipped when none
is visible): the same comparisons on the device, to 1e-5 in float32, and
fit on the GPU equal to fit on the CPU."""

import numpy as np
import pytest

import rnnfast
from rnnfast import _core, _device

GPU = _device.probe()["usable"]
gpu = pytest.mark.skipif(not GPU, reason="no usable CUDA device: " + _device.probe()["why"])


def test_device_names_parse_and_bad_ones_are_clear():
    assert _device.parse("cpu") == ("cpu", 0)
    assert _device.parse("GPU:1") == ("gpu", 1)
    assert _device.parse("cuda:0") == ("gpu", 0)
    for bad in ("tpu", "gpu:x", "cpu:1", ""):
        with pytest.raises(ValueError, match="device must be"):
            _device.parse(bad)


def test_context_manager_and_environment(monkeypatch):
    monkeypatch.delenv("RNNFAST_DEVICE", raising=False)
    with rnnfast.device("cpu"):
        assert _device.current()[0] == "cpu"
        assert "rnnfast.device()" in _device.current()[2]
    monkeypatch.setenv("RNNFAST_DEVICE", "cpu")
    assert _device.current() == ("cpu", 0, "cpu chosen by RNNFAST_DEVICE")
    assert _device.status()["device"] == "cpu"


@pytest.mark.skipif(GPU, reason="checks the behaviour without a usable GPU")
def test_without_a_gpu_layers_run_on_cpu_and_an_explicit_gpu_is_an_error(monkeypatch):
    monkeypatch.delenv("RNNFAST_DEVICE", raising=False)
    st = _device.status()
    assert st["device"] == "cpu" and st["why"]
    layer = rnnfast.layers.LSTM(3)
    x = np.zeros((2, 4, 2), "float32")
    layer(x)  # auto: the CPU
    with rnnfast.device("gpu"):
        with pytest.raises(RuntimeError, match="GPU path is not usable"):
            rnnfast.layers.GRU(3)(x)


def test_cuda_module_imports_and_reports_no_device_cleanly():
    cuda = pytest.importorskip("rnnfast._cuda", reason="rnnfast._cuda not built (no nvcc)")
    n, why = cuda.device_count()
    assert n >= 0 and (n > 0 or why)
    ok, err = cuda.load_cublas("/nonexistent/libcublas.so")
    assert not ok and "nonexistent" in err
    with pytest.raises(ValueError, match="gates must be"):
        cuda.RecurrentKernel(2, 4)
    with pytest.raises(ValueError, match="unknown activation"):
        cuda.RecurrentKernel(4, 4, activation="gelu")


# ---- on a GPU -------------------------------------------------------------------------

CELLS = {"simple_rnn": (1, lambda u, **kw: _core.SimpleRNNKernel(u, **kw)),
         "lstm": (4, lambda u, **kw: _core.LSTMKernel(u, **kw)),
         "gru": (3, lambda u, **kw: _core.GRUKernel(u, **kw)),
         "gru_before": (3, lambda u, **kw: _core.GRUKernel(u, reset_after=False, **kw))}


def cuda_module(name):
    """rnnfast._cuda on a real device, or its code on the host emulation."""
    if name == "gpu":
        if not GPU:
            pytest.skip("no usable CUDA device: " + _device.probe()["why"])
        from rnnfast import _cuda
        return _cuda
    mod = pytest.importorskip("rnnfast._cuda_emulated",
                              reason="the emulated CUDA module is built with the C++ tests")
    ok, why = mod.load_cublas("emulated")
    assert ok, why
    return mod


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opts", [dict(), dict(go_backwards=True), dict(mask=True),
                                  dict(state=True), dict(bias=False), dict(seqs=False),
                                  dict(acts=True), dict(reuse=True), dict(dropout=True)])
def test_device_kernels_match_cpu(where, cell, dtype, opts):
    _cuda = cuda_module(where)
    G, make = CELLS[cell]
    B, T, I, U = 5, 7, 3, 6
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    W = (rng.standard_normal((I, G * U)) * 0.4).astype(dtype)
    R = (rng.standard_normal((U, G * U)) * 0.4).astype(dtype)
    bshape = (2, G * U) if cell == "gru" else (G * U,)
    b = None if opts.get("bias") is False else rng.standard_normal(bshape).astype(dtype)
    states = 2 if cell == "lstm" else 1
    init = None
    if opts.get("state"):
        init = [rng.standard_normal((B, U)).astype(dtype) for _ in range(states)]
        init = tuple(init) if states == 2 else init[0]
    mask = (rng.random((B, T)) > 0.3) if opts.get("mask") else None
    gb = opts.get("go_backwards", False)
    seqs = opts.get("seqs", True)
    akw = {}
    if opts.get("acts"):
        akw = dict(activation="relu")
        if cell != "simple_rnn":
            akw["recurrent_activation"] = "hard_sigmoid"
    cpu = make(U, go_backwards=gb, **akw)
    dev = _cuda.RecurrentKernel(G, U, go_backwards=gb, reset_after=cell != "gru_before", **akw)
    kw = dict(initial_state=init, mask=mask, training=True, return_sequences=seqs)
    if opts.get("dropout"):  # one shared input mask, scaled as the layers draw it
        kw["input_dropout_mask"] = ((rng.random((B, I)) > 0.3) / 0.7).astype(dtype)
    if opts.get("reuse"):  # a larger call first: buffers reused at a smaller size
        dev.forward(np.ones((B + 2, T + 3, I), dtype), W, R, b, training=True)
        dev.backward()
    yc, fc = cpu.forward(x, W, R, b, **kw)
    yg, fg = dev.forward(x, W, R, b, **kw)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    if seqs:
        np.testing.assert_allclose(yg, yc, **tol)
    for a, c in zip(np.atleast_1d(fg) if states == 1 else fg, np.atleast_1d(fc) if states == 1 else fc):
        np.testing.assert_allclose(a, c, **tol)
    dy = rng.standard_normal((B, T, U)).astype(dtype) if seqs else None
    dh = rng.standard_normal((B, U)).astype(dtype)
    dfinal = (dh, rng.standard_normal((B, U)).astype(dtype)) if states == 2 else dh
    gc = cpu.backward(W, R, doutputs=dy, dfinal_state=dfinal)
    gg = dev.backward(doutputs=dy, dfinal_state=dfinal)
    for name, a, c in zip(("dx", "dinit", "dkernel", "drecurrent_kernel", "dbias"), gg, gc):
        if c is None:
            assert a is None, name
            continue
        for ai, ci in zip(a if isinstance(a, tuple) else [a], c if isinstance(c, tuple) else [c]):
            np.testing.assert_allclose(ai, ci, err_msg=name, **tol)


@pytest.mark.gpu
@gpu
def test_fit_on_gpu_equals_fit_on_cpu():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 20, 3)).astype("float32")
    y = rng.standard_normal((32, 1)).astype("float32")

    def train(device):
        rnnfast.utils.set_random_seed(0)
        with rnnfast.device(device):
            model = rnnfast.Sequential([rnnfast.Input((20, 3)),
                                        rnnfast.layers.LSTM(8, return_sequences=True),
                                        rnnfast.layers.GRU(8), rnnfast.layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            hist = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
        return hist.history["loss"], model.get_weights()

    loss_c, w_c = train("cpu")
    loss_g, w_g = train("gpu")
    np.testing.assert_allclose(loss_g, loss_c, rtol=1e-4)
    for a, b in zip(w_g, w_c):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_device_kernel_argument_errors():
    cu = cuda_module("emulated")
    k = cu.RecurrentKernel(4, 3)
    x = np.zeros((2, 5, 4), "float32")
    W, R = np.zeros((4, 12), "float32"), np.zeros((3, 12), "float32")
    with pytest.raises(ValueError, match="per-gate input dropout"):
        k.forward(x, W, R, input_dropout_mask=np.ones((4, 2, 4), "float32"))
    with pytest.raises(ValueError, match="kernel must have shape"):
        k.forward(x, np.zeros((3, 12), "float32"), R)
    with pytest.raises(TypeError, match="pair"):
        k.forward(x, W, R, initial_state=np.zeros((2, 3), "float32"))
    with pytest.raises(TypeError, match="mask must hold"):
        k.forward(x, W, R, mask=np.array([["a"] * 5] * 2))
    with pytest.raises(RuntimeError, match="training=True"):
        cu.RecurrentKernel(1, 3).backward()
