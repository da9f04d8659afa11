"""Shared pieces of the Keras and PyTorch converters."""

from __future__ import annotations

import numpy as np


class ConversionError(ValueError):
    """A well-formed model that the other side cannot represent (a layer or
    option rnnfast does not implement, a torch feature without an rnnfast
    counterpart, ...)."""


def require_h5py():
    """h5py, imported on first use (a dependency, but a broken install may lack it)."""
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras model files keep their weights in HDF5, which needs h5py: pip "
                          "install h5py") from None
    return h5py


def require_torch():
    try:
        import torch
    except ImportError:
        raise ImportError("to_torch builds a torch.nn module and needs PyTorch: pip install torch "
                          "(to_torch_state_dict gives the weights as NumPy arrays without it)") \
            from None
    return torch


def float_dtype(dtype, what: str) -> np.dtype:
    """float32 or float64, the types rnnfast computes in."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConversionError(f"{what}: rnnfast computes in float32 or float64, got {dt}")
    return dt


def as_numpy(value, name: str, where: str = "from_torch") -> np.ndarray:
    """A torch tensor (any device; bfloat16 widened, NumPy has none) or an
    array-like as a NumPy float array; ConversionError for non-floats."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise ConversionError(f"{where}: {name} holds {arr.dtype} values, not floats")
    return arr
