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
                                  dict(acts=True), dict(reuse=True), dict(dropout=True),
                                  dict(gate_dropout=True), dict(rec_dropout=True),
                                  dict(rec_dropout="shared", go_backwards=True, mask=True)])
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
    if opts.get("gate_dropout"):  # one input mask per gate (Keras once recurrent_dropout is on)
        kw["input_dropout_mask"] = ((rng.random((G, B, I)) > 0.3) / 0.7).astype(dtype)
    if opts.get("rec_dropout"):  # per-gate input and recurrent masks, or one shared of each
        n = G if opts["rec_dropout"] is True else 1
        kw["input_dropout_mask"] = ((rng.random((n, B, I)) > 0.3) / 0.7).astype(dtype)
        kw["recurrent_dropout_mask"] = ((rng.random((n, B, U)) > 0.4) / 0.6).astype(dtype)
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
    with pytest.raises(ValueError, match=r"input_dropout_mask must have shape \(batch, n\), "
                                         r"\(1, batch, n\) or \(4, batch, n\)"):
        k.forward(x, W, R, input_dropout_mask=np.ones((3, 2, 4), "float32"))
    with pytest.raises(ValueError, match=r"recurrent_dropout_mask must have shape \(4, 2, 3\)"):
        k.forward(x, W, R, recurrent_dropout_mask=np.ones((4, 2, 4), "float32"))
    with pytest.raises(ValueError, match="kernel must have shape"):
        k.forward(x, np.zeros((3, 12), "float32"), R)
    with pytest.raises(TypeError, match="pair"):
        k.forward(x, W, R, initial_state=np.zeros((2, 3), "float32"))
    with pytest.raises(TypeError, match="mask must hold"):
        k.forward(x, W, R, mask=np.array([["a"] * 5] * 2))
    with pytest.raises(RuntimeError, match="training=True"):
        cu.RecurrentKernel(1, 3).backward()
    # Sizes whose arithmetic would overflow, as the CPU kernels refuse them.
    for units in (0, -1):
        with pytest.raises(ValueError, match="units must be a positive integer"):
            cu.RecurrentKernel(4, units)
    for units in (2 ** 28 + 1, 2 ** 62):
        with pytest.raises(ValueError, match=r"units must be at most 2\*\*28"):
            cu.RecurrentKernel(4, units)
    with pytest.raises(ValueError, match=r"x of shape \(1073741824, 1073741824, 1\) with units=3 "
                                         r"needs more than 2\*\*62 bytes"):
        k.forward(np.broadcast_to(np.float32(0.0), (2 ** 30, 2 ** 30, 1)), W[:1], R)


# ---- CUDA graphs, device-resident weights and the fused updates (emulated) ---------------

def _kernel_case(rng, G, B, T, I, U, dtype, bias_shape):
    x = rng.standard_normal((B, T, I)).astype(dtype)
    W = (rng.standard_normal((I, G * U)) * 0.4).astype(dtype)
    R = (rng.standard_normal((U, G * U)) * 0.4).astype(dtype)
    b = rng.standard_normal(bias_shape).astype(dtype)
    return x, W, R, b


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mode", ["graphs", "capture_fails", "graphs_off"])
def test_graph_replays_see_fresh_data(where, cell, mode, monkeypatch):
    """Calls with the same shapes replay a captured graph: each call's new
    inputs, weights and gradients must reach it (no host data baked in)."""
    if mode == "capture_fails":
        if where == "gpu":
            pytest.skip("the failing capture is emulated")
        monkeypatch.setenv("RNNFAST_EMULATE_NO_CAPTURE", "1")
    monkeypatch.delenv("RNNFAST_CUDA_GRAPHS", raising=False)  # gpu_check.sh also runs with 0
    if mode == "graphs_off":
        monkeypatch.setenv("RNNFAST_CUDA_GRAPHS", "0")
    cu = cuda_module(where)
    tol = dict(rtol=1e-12, atol=1e-12) if where == "emulated" else dict(rtol=1e-9, atol=1e-11)
    G, make = CELLS[cell]
    B, T, I, U = 3, 5, 4, 5
    rng = np.random.default_rng(3)
    bshape = (2, G * U) if cell == "gru" else (G * U,)
    dev = cu.RecurrentKernel(G, U, reset_after=cell != "gru_before")
    cpu = make(U)
    calls = 5
    for _ in range(calls):
        x, W, R, b = _kernel_case(rng, G, B, T, I, U, "float64", bshape)
        mask = rng.random((B, T)) > 0.2
        yc, _ = cpu.forward(x, W, R, b, mask=mask, training=True)
        yg, _ = dev.forward(x, W, R, b, mask=mask, training=True)
        np.testing.assert_allclose(yg, yc, **tol)
        dy = rng.standard_normal((B, T, U))
        gc = cpu.backward(W, R, doutputs=dy)
        gg = dev.backward(doutputs=dy)
        for name, a, c in zip(("dx", "dinit", "dkernel", "drecurrent_kernel", "dbias"), gg, gc):
            for ai, ci in zip(a if isinstance(a, tuple) else [a], c if isinstance(c, tuple) else [c]):
                np.testing.assert_allclose(ai, ci, err_msg=name, **tol)
    stats = dev.graph_stats()
    if mode == "graphs":  # forward and backward: a warm-up, a capture, then replays
        assert stats == {"captures": 2, "replays": 2 * (calls - 2), "fallbacks": 0}
    elif mode == "capture_fails":
        assert stats["captures"] == 0 and stats["replays"] == 0 and stats["fallbacks"] >= 1
    else:
        assert stats == {"captures": 0, "replays": 0, "fallbacks": 0}


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
def test_graphs_follow_shape_changes(where, monkeypatch):
    """A new batch size is a new graph; returning to an old one replays it."""
    monkeypatch.delenv("RNNFAST_CUDA_GRAPHS", raising=False)
    cu = cuda_module(where)
    rng = np.random.default_rng(4)
    dev, cpu = cu.RecurrentKernel(4, 3), _core.LSTMKernel(3)
    for B in (4, 4, 4, 2, 2, 2, 4, 2):
        x, W, R, b = _kernel_case(rng, 4, B, 6, 2, 3, "float32", (12,))
        yc, _ = cpu.forward(x, W, R, b)
        yg, _ = dev.forward(x, W, R, b)
        np.testing.assert_allclose(yg, yc, rtol=1e-5, atol=1e-6)
    # B=4: warm-up, capture, 2 replays; B=2: warm-up, capture, 2 replays.
    assert dev.graph_stats() == {"captures": 2, "replays": 4, "fallbacks": 0}


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_device_weights_and_accumulated_gradients(where, cell, dtype):
    """Weights given as device arrays are used in place; gradients written into
    device arrays are overwritten, or summed over calls with accumulate."""
    cu = cuda_module(where)
    G, make = CELLS[cell]
    B, T, I, U = 4, 6, 3, 5
    rng = np.random.default_rng(5)
    bshape = (2, G * U) if cell == "gru" else (G * U,)
    x, W, R, b = _kernel_case(rng, G, B, T, I, U, dtype, bshape)
    dW, dR, db = (cu.DeviceArray(a.shape, dtype) for a in (W, R, b))
    for d, a in ((dW, W), (dR, R), (db, b)):
        d.upload(a)
    np.testing.assert_array_equal(dW.download(), W)
    gk = [cu.DeviceArray(a.shape, dtype) for a in (W, R, b)]
    dev = cu.RecurrentKernel(G, U, reset_after=cell != "gru_before")
    cpu = make(U)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-11)
    total = None
    for call in range(3):
        x = rng.standard_normal((B, T, I)).astype(dtype)
        dy = rng.standard_normal((B, T, U)).astype(dtype)
        yc, _ = cpu.forward(x, W, R, b, training=True)
        yg, _ = dev.forward(x, dW, dR, db, training=True)
        np.testing.assert_allclose(yg, yc, **tol)
        gc = cpu.backward(W, R, doutputs=dy)
        gg = dev.backward(doutputs=dy, dkernel_out=gk[0], drecurrent_kernel_out=gk[1],
                          dbias_out=gk[2], accumulate=call > 0)
        assert gg[2] is None and gg[3] is None and gg[4] is None  # left on the device
        np.testing.assert_allclose(gg[0], gc[0], **tol)
        total = list(gc[2:]) if total is None else [t + c for t, c in zip(total, gc[2:])]
        for name, d, c in zip(("dkernel", "drecurrent_kernel", "dbias"), gk, total):
            np.testing.assert_allclose(d.download(), c, err_msg=name, **tol)


def test_device_array_and_argument_errors():
    cu = cuda_module("emulated")
    with pytest.raises(TypeError, match="float32 or float64"):
        cu.DeviceArray((2, 3), "int32")
    a = cu.DeviceArray((2, 3), "float32")
    assert a.shape == (2, 3) and a.dtype == np.float32 and a.nbytes == 24
    np.testing.assert_array_equal(a.download(), np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\) float32"):
        a.upload(np.zeros((3, 2), "float32"))
    with pytest.raises(TypeError, match="expected a float32 array"):
        a.upload(np.zeros((2, 3), "float64"))
    k = cu.RecurrentKernel(4, 3)
    x = np.zeros((2, 5, 4), "float32")
    W, R = cu.DeviceArray((4, 12), "float32"), cu.DeviceArray((3, 12), "float32")
    with pytest.raises(TypeError, match="all be device arrays or all host"):
        k.forward(x, W, np.zeros((3, 12), "float32"))
    with pytest.raises(ValueError, match=r"kernel must be a device array of shape \(4, 12\) float64"):
        k.forward(x.astype("float64"), W, R)
    k.forward(x, W, R, training=True)
    with pytest.raises(TypeError, match="given together"):
        k.backward(dkernel_out=cu.DeviceArray((4, 12), "float32"))
    with pytest.raises(ValueError, match="same length"):
        cu.sgd_update([W], [], None, 0.1, 0.0, False, [0.0])
    with pytest.raises(ValueError, match="its gradient or slot"):
        cu.sgd_update([W], [R], None, 0.1, 0.0, False, [0.0])


OPTIMIZERS = {
    "adam": lambda: rnnfast.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: rnnfast.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: rnnfast.optimizers.AdamW(0.01, weight_decay=0.05),
    "sgd": lambda: rnnfast.optimizers.SGD(0.05),
    "sgd_momentum": lambda: rnnfast.optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov_decay": lambda: rnnfast.optimizers.SGD(0.05, momentum=0.8, nesterov=True,
                                                         weight_decay=0.01),
}


@pytest.mark.parametrize("where", [pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_device_updates_match_the_cpu_optimizers(where, name, dtype):
    """rnnfast._cuda.adam_update / sgd_update against the optimizers' own
    (NumPy / C++) steps, for several steps with state carried over."""
    cu = cuda_module(where)
    rng = np.random.default_rng(6)
    shapes = [(3, 8), (8,)]
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    from rnnfast.layers.layer import Variable

    cpu_vars = [Variable(v, f"w{i}", dtype=dtype) for i, v in enumerate(values)]
    dev_vars = [Variable(v, f"w{i}", dtype=dtype) for i, v in enumerate(values)]
    opt_c, opt_d = OPTIMIZERS[name](), OPTIMIZERS[name]()
    assert opt_d._device_capable()
    opt_d.build(dev_vars)
    opt_d.built = True
    saved = _device._module
    _device._module = lambda: cu
    try:
        for v in dev_vars:
            v._device = _device.DeviceCopy(v._value, 0)
        for step in range(4):
            grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
            if step == 2:
                grads[1] = None  # no gradient this step: zero on the device, skipped on the CPU?
            cpu_grads = [g if g is not None else np.zeros(s, dtype) for g, s in zip(grads, shapes)]
            opt_c.apply(cpu_grads, cpu_vars)
            for v, g in zip(dev_vars, grads):
                v.grad = None
                if g is not None:
                    v.add_grad(g)
            opt_d.apply([_device.ON_DEVICE] * len(dev_vars), dev_vars)
            for vc, vd in zip(cpu_vars, dev_vars):
                assert vd._device.host_stale  # updated on the device only
                np.testing.assert_allclose(vd.value, vc.value, rtol=1e-6 if dtype == "float32"
                                           else 1e-13, atol=1e-7 if dtype == "float32" else 1e-14)
        for a, c in zip(opt_d.variables, opt_c.variables):  # slots copied back
            np.testing.assert_allclose(a, c, rtol=1e-5 if dtype == "float32" else 1e-12,
                                       atol=1e-7 if dtype == "float32" else 1e-14)
        opt_d._device_release()
    finally:
        _device._module = saved
        for v in dev_vars:
            v._device = None


@pytest.fixture(params=[pytest.param("gpu", marks=pytest.mark.gpu), "emulated"])
def emulated_gpu(request, monkeypatch):
    """The GPU path of the layers and the trainer: on a real device, or on
    rnnfast._cuda_emulated. Gives the tolerance of the comparisons with the
    CPU in float64 (the emulation computes as the CPU does)."""
    if request.param == "gpu":
        cuda_module("gpu")  # skips without one
        monkeypatch.delenv("RNNFAST_DEVICE", raising=False)
        return {"rtol": 1e-7, "atol": 1e-9}
    mod = cuda_module("emulated")
    monkeypatch.setattr(_device, "_module", lambda: mod)
    monkeypatch.setattr(_device, "_probe", {"usable": True, "why": "", "cublas": "emulated",
                                            "devices": ["host emulation"]})
    monkeypatch.delenv("RNNFAST_DEVICE", raising=False)
    assert mod
    return dict(rtol=1e-10, atol=1e-12)


class _Watch(rnnfast.callbacks.Callback):
    """Records, after each batch, which weights live on the device and whether
    their host copies are behind (updated on the device only)."""

    def __init__(self, set_weights_at=None):
        super().__init__()
        self.seen = []
        self.set_weights_at = set_weights_at

    def on_train_batch_end(self, batch, logs=None):
        ws = self.model.trainable_weights
        self.seen.append([(v.path, v._device is not None and v._device.host_stale) for v in ws])
        if batch == self.set_weights_at:  # a write from a callback reaches the device copy
            self.model.set_weights([w * 0.5 for w in self.model.get_weights()])


def _fit_both(build, optimizer, x, y, dtype="float64", epochs=2, watch=None):
    out = {}
    for device in ("cpu", "gpu"):
        rnnfast.utils.set_random_seed(0)
        with rnnfast.device(device):
            model = build()
            model.compile(optimizer=optimizer(), loss="mse")
            cb = _Watch(watch)
            hist = model.fit(x, y, epochs=epochs, batch_size=4, shuffle=True, verbose=0,
                             callbacks=[cb])
        out[device] = (hist.history["loss"], model.get_weights(), model.optimizer.get_state(),
                       cb.seen, model)
    return out


@pytest.mark.parametrize("opt", ["adam", "sgd_momentum", "adamw"])
def test_fit_on_emulated_gpu_keeps_weights_there_and_equals_cpu(emulated_gpu, opt):
    rnnfast.backend.set_floatx("float64")
    try:
        rng = np.random.default_rng(7)
        x = rng.standard_normal((10, 6, 3))
        y = rng.standard_normal((10, 2))

        def build():
            return rnnfast.Sequential([
                rnnfast.Input((6, 3)),
                rnnfast.layers.LSTM(5, return_sequences=True, dropout=0.1,
                                    recurrent_dropout=0.2),  # per-gate masks on the device
                rnnfast.layers.GRU(4, kernel_regularizer="l2"),  # stays on the host
                rnnfast.layers.Dense(2)])

        out = _fit_both(build, OPTIMIZERS[opt], x, y)
    finally:
        rnnfast.backend.set_floatx("float32")
    loss_c, w_c, s_c, _, _ = out["cpu"]
    loss_g, w_g, s_g, seen, model = out["gpu"]
    np.testing.assert_allclose(loss_g, loss_c, rtol=emulated_gpu["rtol"])
    for a, c in zip(w_g, w_c):
        np.testing.assert_allclose(a, c, **emulated_gpu)
    for a, c in zip(s_g, s_c):
        np.testing.assert_allclose(a, c, **emulated_gpu)
    # During fit: the LSTM's three weights were updated on the device only; the
    # GRU (a regularizer) and the Dense layer on the host.
    for step in seen:
        stale = dict(step)
        lstm = [p for p in stale if p.startswith("lstm")]
        assert len(lstm) == 3 and all(stale[p] for p in lstm), step
        assert not any(stale[p] for p in stale if not p.startswith("lstm")), step
    # After fit: nothing left on the device.
    assert all(v._device is None for v in model.weights)
    assert not model.optimizer.__dict__.get("_device_slots")


def test_fit_on_emulated_gpu_shared_layer_and_mid_fit_writes(emulated_gpu):
    """A layer called twice adds both gradients on the device; set_weights from
    a callback mid-fit reaches the device copies; a checkpoint-style read of
    the optimizer state mid-fit changes nothing."""
    rnnfast.backend.set_floatx("float64")
    try:
        rng = np.random.default_rng(8)
        x1, x2 = rng.standard_normal((8, 5, 3)), rng.standard_normal((8, 5, 3))
        y = rng.standard_normal((8, 4))

        def build():
            a, b = rnnfast.Input((5, 3)), rnnfast.Input((5, 3))
            shared = rnnfast.layers.GRU(4, reset_after=False)
            z = rnnfast.layers.Add()([shared(a), shared(b)])
            return rnnfast.Model([a, b], rnnfast.layers.Dense(4)(z))

        out = {}
        for device in ("cpu", "gpu"):
            rnnfast.utils.set_random_seed(0)
            with rnnfast.device(device):
                model = build()
                model.compile(optimizer=rnnfast.optimizers.Adam(0.02), loss="mse")
                cb = _Watch(set_weights_at=1)
                reads = rnnfast.callbacks.LambdaCallback(
                    on_batch_end=lambda b, logs: model.optimizer.get_state())
                model.fit([x1, x2], y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                          callbacks=[cb, reads])
            out[device] = (model.get_weights(), cb.seen)
    finally:
        rnnfast.backend.set_floatx("float32")
    for a, c in zip(out["gpu"][0], out["cpu"][0]):
        np.testing.assert_allclose(a, c, **emulated_gpu)
    assert any(stale for step in out["gpu"][1] for _, stale in step)


def test_device_weights_outlive_their_python_references():
    """The backward reads the forward's device weights in place: the kernel
    object keeps them alive even when the caller dropped them."""
    import gc

    cu = cuda_module("emulated")
    rng = np.random.default_rng(9)
    x, W, R, b = _kernel_case(rng, 4, 3, 5, 2, 4, "float64", (16,))
    dev, cpu = cu.RecurrentKernel(4, 4), _core.LSTMKernel(4)

    def forward():
        arrays = [cu.DeviceArray(a.shape, "float64") for a in (W, R, b)]
        for d, a in zip(arrays, (W, R, b)):
            d.upload(a)
        return dev.forward(x, *arrays, training=True)

    yg, _ = forward()
    gc.collect()
    junk = [cu.DeviceArray(a.shape, "float64") for a in (W, R, b) for _ in range(2)]
    for j in junk:  # would reuse the weights' memory, were it freed
        j.upload(np.full(j.shape, 7.0))
    yc, _ = cpu.forward(x, W, R, b, training=True)
    dy = rng.standard_normal(yc.shape)
    gc_, gg = cpu.backward(W, R, doutputs=dy), dev.backward(doutputs=dy)
    for a, c in zip(gg, gc_):
        for ai, ci in zip(a if isinstance(a, tuple) else [a], c if isinstance(c, tuple) else [c]):
            np.testing.assert_allclose(ai, ci, rtol=1e-12, atol=1e-12)


def test_device_updates_group_weights_by_device(emulated_gpu):
    """Weights on two devices (emulated: one host memory) update in one call
    each, with their slots on their own device."""
    if _device.probe()["cublas"] != "emulated":
        pytest.skip("needs two devices: run on the emulation")
    from rnnfast.layers.layer import Variable

    cu = _device._module()
    rng = np.random.default_rng(10)
    vals = [rng.standard_normal((4, 3)), rng.standard_normal((3,))]
    cpu_vars = [Variable(v, f"w{i}", dtype="float64") for i, v in enumerate(vals)]
    dev_vars = [Variable(v, f"w{i}", dtype="float64") for i, v in enumerate(vals)]
    opt_c, opt_d = rnnfast.optimizers.Adam(0.05), rnnfast.optimizers.Adam(0.05)
    for i, v in enumerate(dev_vars):
        v._device = _device.DeviceCopy(v._value, i)  # gpu:0 and gpu:1
    try:
        for _ in range(3):
            grads = [rng.standard_normal(v.shape) for v in vals]
            opt_c.apply(grads, cpu_vars)
            for v, g in zip(dev_vars, grads):
                v.grad = None
                v.add_grad(g)
            opt_d.apply([_device.ON_DEVICE] * 2, dev_vars)
        slots = opt_d.__dict__["_device_slots"]
        assert sorted(c.index for _, c in slots.values()) == [0, 0, 1, 1]
        for vc, vd in zip(cpu_vars, dev_vars):
            np.testing.assert_allclose(vd.value, vc.value, rtol=1e-13, atol=1e-14)
        assert cu is not None
    finally:
        opt_d._device_release()
        for v in dev_vars:
            v._device = None


def test_custom_train_step_keeps_gradients_on_the_host(emulated_gpu):
    """A model overriding train_step sees host gradients: no residency."""
    seen = []

    class Custom(rnnfast.Sequential):
        def train_step(self, x, y, sample_weight=None):
            loss, batch, pairs = self.compute_loss_and_gradients(x, y, sample_weight)
            seen.append(all(isinstance(g, np.ndarray) for _, g in pairs))
            self.optimizer.apply([g for _, g in pairs], [v for v, _ in pairs])
            return loss

    with rnnfast.device("gpu"):
        model = Custom([rnnfast.Input((4, 2)), rnnfast.layers.LSTM(3), rnnfast.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(np.ones((4, 4, 2), "float32"), np.ones((4, 1), "float32"), epochs=1,
                  batch_size=2, verbose=0)
    assert seen == [True, True]
