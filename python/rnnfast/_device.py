"""Which device the recurrent kernels run on: the CPU (``rnnfast._core``) or a
CUDA GPU (``rnnfast._cuda``, built with nvcc; see the README).

As in Keras, a model uses the GPU when one is usable: ``_cuda`` is built, a
device is visible and cuBLAS loads (the ``nvidia-cublas`` wheel of the
``rnnfast[cuda]`` extra, or a system libcublas). ``RNNFAST_DEVICE=cpu`` (or
``gpu``, ``gpu:1``) and the context manager ``rnnfast.device("cpu")`` choose
explicitly. The choice is made when a layer creates its kernel object (once
per call site); ``status()`` says which device is used and why.

On the GPU the recurrent layers run there (inputs and weights are copied in
and results out on each call); a cell with recurrent_dropout, and every other
layer, runs on the CPU, which the log says once (logger "rnnfast").
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import importlib.util
import logging
import os

_log = logging.getLogger("rnnfast")
_current = contextvars.ContextVar("rnnfast_device", default=None)
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


def probe(refresh=False) -> dict:
    """Whether the GPU path is usable here, and why not."""
    global _probe
    if _probe is not None and not refresh:
        return _probe
    result = {"usable": False, "why": "", "devices": [], "cublas": None}
    try:
        from . import _cuda
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
        from . import _cuda

        self._k = _cuda.RecurrentKernel(gates, units, activation=activation,
                                        recurrent_activation=recurrent_activation,
                                        go_backwards=go_backwards, reset_after=reset_after,
                                        device=index)

    def forward(self, x, kernel, recurrent_kernel, bias=None, *, initial_state=None, mask=None,
                input_dropout_mask=None, recurrent_dropout_mask=None, training=False, out=None,
                return_sequences=True):
        if recurrent_dropout_mask is not None:
            raise ValueError("recurrent dropout masks are not supported by the GPU kernels")
        y, final = self._k.forward(x, kernel, recurrent_kernel, bias, initial_state=initial_state,
                                   mask=mask, input_dropout_mask=input_dropout_mask,
                                   training=training,
                                   return_sequences=return_sequences)
        if out is not None and y is not None:
            out[...] = y
            y = out
        return y, final

    def backward(self, kernel, recurrent_kernel, *, doutputs=None, dfinal_state=None, dx_out=None,
                 dkernel_out=None, drecurrent_kernel_out=None, dbias_out=None, compute_dx=True):
        dx, dinit, dk, dr, db = self._k.backward(doutputs=doutputs, dfinal_state=dfinal_state,
                                                 compute_dx=compute_dx)
        for dst, src in ((dx_out, dx), (dkernel_out, dk), (drecurrent_kernel_out, dr),
                         (dbias_out, db)):
            if dst is not None and src is not None:
                dst[...] = src
        pick = (lambda dst, src: src if dst is None else dst)
        return (pick(dx_out, dx), dinit, pick(dkernel_out, dk), pick(drecurrent_kernel_out, dr),
                pick(dbias_out, db))


def make_recurrent_kernel(cell, go_backwards):
    """(kernel object, device string) for a recurrent cell: the GPU's when the
    GPU is in use and the cell has no recurrent dropout, else the CPU's."""
    global _told
    kind, index, _ = current()
    if kind == "gpu":
        if not _told:  # one informational line per process
            _log.info("rnnfast: recurrent layers run on gpu:%d; those with recurrent_dropout, "
                      "and all other layers, run on the CPU", index)
            _told = True
        if cell.recurrent_dropout == 0:  # input dropout alone is one shared mask
            gates = cell.recurrent_kernel.shape[1] // cell.units
            return GPUKernel(gates, cell.units, cell._activation_name,
                             getattr(cell, "_recurrent_activation_name", "sigmoid"), go_backwards,
                             getattr(cell, "reset_after", True), index), f"gpu:{index}"
    return cell.make_kernel(go_backwards), "cpu"
