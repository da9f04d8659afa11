"""rnnfast: fast CPU training of SimpleRNN, LSTM and GRU behind the Keras API.

``import rnnfast as keras`` gives Keras 3's names (``keras.models.Sequential``,
``keras.layers.LSTM``, ``keras.optimizers.Adam``, ...). The submodules load on
first use, so ``import rnnfast`` stays fast. The compiled kernels are
``rnnfast._core`` (chosen at import for this CPU's instruction set, see
``build_info()``).
"""

__version__ = "0.1.0"

from ._loader import load_core as _load_core

_core, _isa_level = _load_core()


def set_num_threads(n: int) -> None:
    """Sets how many threads the kernels may use (the calling thread included)."""
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many threads the kernels may use."""
    return _core.get_num_threads()


def device(name):
    """Context manager choosing the device of the layers first called inside:
    ``with rnnfast.device("cpu"):`` or ``"gpu"``, ``"gpu:1"`` (``keras.device``)."""
    from . import _device

    return _device.device(name)


def build_info() -> dict:
    """How the running kernels were built and chosen.

    Keys: ``isa_level`` (the variant running), ``available_levels`` (installed),
    ``supported_levels`` (installed and runnable here), ``simd`` (Eigen's
    instruction sets), ``eigen``, ``compiler``, ``num_threads``, ``version``,
    ``bf16`` (whether mixed_bfloat16 layers multiply in bfloat16 here:
    ``mixed_precision.bf16_status()``).
    """
    from . import _loader, mixed_precision

    info = dict(_core.build_info())
    info.update(
        available_levels=_loader.available_levels(),
        supported_levels=_loader.supported_levels(),
        num_threads=get_num_threads(),
        version=__version__,
        bf16=mixed_precision.bf16_status(),
    )
    return info


_SUBMODULES = ("activations", "backend", "callbacks", "constraints", "debugging", "distribution",
               "initializers", "interop", "layers", "losses", "metrics", "mixed_precision",
               "models", "optimizers", "regularizers", "saving", "trainers", "utils")
# Top-level names of Keras 3 and where they live.
_ALIASES = {"Sequential": ("models", "Sequential"), "Model": ("models", "Model"),
            "Input": ("layers", "Input"),
            "Layer": ("layers", "Layer"), "Variable": ("layers", "Variable"),
            "InputLayer": ("layers", "InputLayer"),
            "DTypePolicy": ("mixed_precision", "DTypePolicy")}


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ALIASES:
        module, attr = _ALIASES[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module 'rnnfast' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_ALIASES))


__all__ = ["__version__", "build_info", "get_num_threads", "set_num_threads", *_SUBMODULES,
           *_ALIASES]
