"""Which device the recurrent kernels run on: the CPU (``rnnfast._core``) or a
CUDA GPU (``rnnfast._cuda``, built with nvcc; see the README).

As in Keras, a model uses the GPU when one is usable: ``_cuda`` is built, a
device is visible and cuBLAS loads (the ``nvidia-cublas`` wheel of the
``rnnfast[cuda]`` extra, or a system libcublas). ``RNNFAST_DEVICE=cpu`` (or
``gpu``, ``gpu:1``) and the context manager ``rnnfast.device("cpu")`` choose
explicitly. The choice is made when a layer creates its kernel object (once
per call site); ``status()`` says which device is used and why.

On the GPU the recurrent layers run there (dropout masks included); every
other layer runs on the CPU, which the log says once (logger "rnnfast"). Outside fit, inputs and weights are copied in and results out on
each call. During fit (``Residency``), when the optimizer has a fused device
update (SGD, Adam, AdamW without clipping, EMA, gradient accumulation or loss
scaling) and the training is not data-parallel, a recurrent layer's weights
(those without regularizers or constraints) move to the GPU at their first
use and stay there: the backward writes their gradients on the device, the
optimizer updates them and its state there, and only batches, outputs and
input gradients cross the bus. Reading a weight (``get_weights``, ``save``, a
checkpoint, a callback) copies it back; the end of fit copies everything back
and frees the device copies.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import importlib.util
import logging
import os

import numpy as np

_log = logging.getLogger("rnnfast")
_current = contextvars.ContextVar("rnnfast_device", default=None)
_residency = contextvars.ContextVar("rnnfast_residency", default=None)
_probe = None  # cached {"usable", "why", "devices", "cublas"}
_told = False


def parse(name) -> tuple:
    """("cpu", 0) or ("gpu", index) from "cpu", "gpu", "gpu:1", "cuda:0"."""
    text = str(name).strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cuda":
        kind = "gpu"
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N' (also 'cuda:N'), got {name!r}")
    return kind, int(index or 0)


def _cublas_candidates():
    """cuBLAS libraries to try: the nvidia wheels' (no LD_LIBRARY_PATH needed),
    then the system's by name."""
    out = []
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations if spec else None) or []:
        out += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libcublas.so.*")), reverse=True)
        out += sorted(glob.glob(os.path.join(root, "cublas", "lib", "libcublas.so.*")), reverse=True)
    return out + ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]


def _module():
    """The CUDA module the GPU path uses (the tests substitute its host
    emulation, rnnfast._cuda_emulated)."""
    from . import _cuda

    return _cuda


def probe(refresh=False) -> dict:
    """Whether the GPU path is usable here, and why not."""
    global _probe
    if _probe is not None and not refresh:
        return _probe
    result = {"usable": False, "why": "", "devices": [], "cublas": None}
    try:
        _cuda = _module()
    except ImportError as e:
        result["why"] = (f"rnnfast._cuda is not built ({e}); build with nvcc present "
                         f"(RNNFAST_CUDA=ON or AUTO)")
        _probe = result
        return result
    count, why = _cuda.device_count()
    if count == 0:
        result["why"] = f"no CUDA device: {why}"
        _probe = result
        return result
    result["devices"] = [_cuda.device_name(i) for i in range(count)]
    errors = []
    for path in _cublas_candidates():
        ok, err = _cuda.load_cublas(path)
        if ok:
            result["cublas"] = path
            break
        errors.append(err)
    if result["cublas"] is None:
        result["why"] = ("cuBLAS not found: pip install 'rnnfast[cuda]' (nvidia-cublas); tried "
                         + "; ".join(errors[:3]))
    else:
        result["usable"] = True
    _probe = result
    return result


def requested() -> tuple:
    """(kind, index, source): the explicit choice in force, or ("auto", 0, ...)."""
    ctx = _current.get()
    if ctx is not None:
        return ctx + ("rnnfast.device()",)
    env = os.environ.get("RNNFAST_DEVICE", "").strip()
    if env:
        return parse(env) + ("RNNFAST_DEVICE",)
    return ("auto", 0, "default")


def current() -> tuple:
    """(kind, index, why) of the device new kernel objects use now."""
    kind, index, source = requested()
    if kind == "cpu":
        return "cpu", 0, f"cpu chosen by {source}"
    p = probe()
    if kind == "gpu":
        if not p["usable"]:
            raise RuntimeError(f"gpu:{index} chosen by {source}, but the GPU path is not usable: "
                               f"{p['why']}")
        if index >= len(p["devices"]):
            raise RuntimeError(f"gpu:{index} chosen by {source}, but only {len(p['devices'])} "
                               f"device(s) are visible")
        return "gpu", index, f"gpu:{index} chosen by {source}"
    if p["usable"]:
        return "gpu", 0, f"gpu:0 ({p['devices'][0]}): a CUDA device is visible"
    return "cpu", 0, f"cpu: {p['why']}"


@contextlib.contextmanager
def device(name):
    """``with rnnfast.device("cpu"):`` (or "gpu", "gpu:1"): layers first called
    inside use that device (Keras's ``keras.device``)."""
    token = _current.set(parse(name))
    try:
        yield
    finally:
        _current.reset(token)


def status() -> dict:
    """{"device", "why", "gpus", "cublas"}: what new kernels use, and why."""
    p = probe()
    try:
        kind, index, why = current()
    except RuntimeError as e:  # an explicit GPU choice that cannot be honoured
        kind, index, why = "unusable", 0, str(e)
    return {"device": kind if kind != "gpu" else f"gpu:{index}", "why": why, "gpus": p["devices"],
            "cublas": p["cublas"]}


class GPUKernel:
    """A recurrent cell's kernel on the GPU, with the CPU kernel objects'
    forward/backward signature (rnnfast._core.LSTMKernel and friends)."""

    def __init__(self, gates, units, activation, recurrent_activation, go_backwards, reset_after,
                 index):
        self.index = index
        self._k = _module().RecurrentKernel(gates, units, activation=activation,
                                            recurrent_activation=recurrent_activation,
                                            go_backwards=go_backwards, reset_after=reset_after,
                                            device=index)

    def forward(self, x, kernel, recurrent_kernel, bias=None, *, initial_state=None, mask=None,
                input_dropout_mask=None, recurrent_dropout_mask=None, training=False, out=None,
                return_sequences=True):
        y, final = self._k.forward(x, kernel, recurrent_kernel, bias, initial_state=initial_state,
                                   mask=mask, input_dropout_mask=input_dropout_mask,
                                   recurrent_dropout_mask=recurrent_dropout_mask,
                                   training=training,
                                   return_sequences=return_sequences)
        if out is not None and y is not None:
            out[...] = y
            y = out
        return y, final

    def backward(self, kernel, recurrent_kernel, *, doutputs=None, dfinal_state=None, dx_out=None,
                 dkernel_out=None, drecurrent_kernel_out=None, dbias_out=None, compute_dx=True,
                 device_grads=None, accumulate=False):
        """device_grads: [dkernel, drecurrent_kernel(, dbias)] device arrays
        that receive the weight gradients on the GPU (added in with
        accumulate); the host outputs are then left alone."""
        dev = dict(zip(("dkernel_out", "drecurrent_kernel_out", "dbias_out"), device_grads or ()))
        dx, dinit, dk, dr, db = self._k.backward(doutputs=doutputs, dfinal_state=dfinal_state,
                                                 compute_dx=compute_dx, accumulate=accumulate,
                                                 **dev)
        for dst, src in ((dx_out, dx), (dkernel_out, dk), (drecurrent_kernel_out, dr),
                         (dbias_out, db)):
            if dst is not None and src is not None:
                dst[...] = src
        pick = (lambda dst, src: src if dst is None else dst)
        return (pick(dx_out, dx), dinit, pick(dkernel_out, dk), pick(drecurrent_kernel_out, dr),
                pick(dbias_out, db))


def make_recurrent_kernel(cell, go_backwards):
    """(kernel object, device string) for a recurrent cell: the GPU's when the
    GPU is in use, else the CPU's."""
    global _told
    kind, index, _ = current()
    if kind == "gpu":
        if not _told:  # one informational line per process
            _log.info("rnnfast: recurrent layers run on gpu:%d; all other layers run on the CPU",
                      index)
            _told = True
        gates = cell.recurrent_kernel.shape[1] // cell.units
        return GPUKernel(gates, cell.units, cell._activation_name,
                         getattr(cell, "_recurrent_activation_name", "sigmoid"), go_backwards,
                         getattr(cell, "reset_after", True), index), f"gpu:{index}"
    return cell.make_kernel(go_backwards), "cpu"


# ---- weights kept on the GPU during fit -----------------------------------------------

#: The gradient the trainer passes to the optimizer for a weight whose
#: gradient is on the device.
ON_DEVICE = type("OnDevice", (), {"__repr__": lambda self: "<gradient on the device>"})()


class DeviceCopy:
    """An array's copy on the GPU (a weight's ``Variable._device``, or an
    optimizer slot's), with a gradient buffer for weights.

    ``host_stale``: the device holds newer values (an update ran there).
    ``device_stale``: the host array was handed out since the last upload
    and may have been written, so the next device use uploads it first."""

    def __init__(self, host, index, with_grad=True):
        mod = _module()
        self.index = index
        self.value = mod.DeviceArray(host.shape, host.dtype, index)
        self.value.upload(host)
        self.grad = mod.DeviceArray(host.shape, host.dtype, index) if with_grad else None
        self.grad_live = False  # grad holds this step's contributions
        self.host_stale = False
        self.device_stale = False

    def to_host(self, host):
        if self.host_stale:
            host[...] = self.value.download()
            self.host_stale = False
        self.device_stale = True  # the reader may write into the array

    def device_value(self, host):
        if self.device_stale:
            self.value.upload(host)
            self.device_stale = False
        return self.value

    def add_host_grad(self, g):
        """A gradient computed on the host (a CPU path), added on the device."""
        g = np.ascontiguousarray(g, dtype=self.value.dtype)
        if self.grad_live:
            g = self.grad.download() + g
        self.grad.upload(g)
        self.grad_live = True

    def grad_for_update(self):
        if not self.grad_live:  # no contribution this step: a zero gradient, as on the CPU
            self.grad.zero()
        return self.grad


class Residency:
    """The weights kept on the GPU during one ``fit``. A recurrent cell's
    weights move there at their first use by a GPU kernel (all of a cell's
    weights or none), and ``end`` copies them, and the optimizer's slots,
    back and frees the device copies."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.variables = []

    @staticmethod
    def _eligible(v):
        return v.trainable and v.regularizer is None and v.constraint is None

    def weights(self, params, index):
        """Device arrays for the cell weights `params` (made resident now if
        needed), or None when they stay on the host."""
        for v in params:
            d = v._device
            if (d is not None and d.index != index) or (d is None and not self._eligible(v)):
                return None
        for v in params:
            if v._device is None:
                v._device = DeviceCopy(v._value, index)
                self.variables.append(v)
        return [v._device.device_value(v._value) for v in params]

    def end(self):
        try:
            for v in self.variables:
                if v._device is not None:
                    v._device.to_host(v._value)
        finally:
            for v in self.variables:
                v._device = None
            self.variables = []
            self.optimizer._device_release()


def begin_residency(model):
    """A Residency for `model`'s fit, or None when its weights stay on the
    host (no usable GPU in use, data-parallel training, or an optimizer
    without a fused device update)."""
    from . import distribution

    from .trainers.trainer import Trainer

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or distribution.active() is not None:
        return None
    # A custom step sees the gradients: they must be arrays on the host.
    for name in ("train_step", "compute_loss_and_gradients"):
        if getattr(type(model), name, None) is not getattr(Trainer, name):
            return None
    if not getattr(optimizer, "_device_capable", lambda: False)():
        return None
    try:
        if current()[0] != "gpu":
            return None
    except RuntimeError:  # an explicit GPU that is not usable: the layers say so
        return None
    res = Residency(optimizer)
    res.token = _residency.set(res)
    return res


def end_residency(res):
    if res is None:
        return
    _residency.reset(res.token)
    res.end()


def resident_weights(params, kernel):
    """Device arrays for a GPU kernel's weights during a fit that keeps them
    on the device; None otherwise."""
    res = _residency.get()
    if res is None or not isinstance(kernel, GPUKernel):
        return None
    return res.weights(params, kernel.index)
