"""Mixed precision, with Keras 3's names (``keras.mixed_precision``).

``set_global_policy("mixed_bfloat16")``, or a layer's ``dtype="mixed_bfloat16"``,
makes the recurrent layers (SimpleRNN, LSTM, GRU, and RNN over their cells)
multiply in bfloat16: the operands of every GEMM (x @ W, h @ R, and in the
backward dG @ R^T, dG @ W^T, x^T dG, h^T dG) are rounded to bfloat16 and their
products summed in float32, on AVX512-BF16 (VDPBF16PS), and on AMX tiles
(TDPBF16PS) where the CPU has AMX-BF16 (Sapphire Rapids and later Xeons; the
smallest products stay on VDPBF16PS; ``set_amx_enabled(False)`` or
``RNNFAST_AMX=0`` keeps all of them there). Weights stay float32
(the master copy the optimizer updates), and so do the states, the gate math,
the gradients and the layer outputs.

Where the CPU lacks AVX512-BF16 (or the kernels are an x86-64-v3 or older
build), the same policy runs the float32 kernels: ``bf16_status()`` (also in
``rnnfast.build_info()["bf16"]``) says which path runs, and
``set_bf16_enabled(False)`` or ``RNNFAST_BF16=0`` in the environment turns the
bf16 path off.

Differences from Keras: layer outputs are float32 (NumPy has no bfloat16;
Keras's mixed layers return bfloat16 tensors), so ``layer.compute_dtype`` is
float32 while ``layer.dtype_policy.compute_dtype`` says ``"bfloat16"``. Other
layers (Dense, convolutions, ...) compute in float32 under the policy. No loss
scaling is needed or offered for bfloat16 (``mixed_float16`` and the pure
``bfloat16``/``float16`` policies are not supported).
"""

from __future__ import annotations

import numpy as np

from . import _config

#: Policy names rnnfast accepts.
SUPPORTED_POLICIES = ("float32", "float64", "mixed_bfloat16")
_KERAS_ONLY = ("mixed_float16", "bfloat16", "float16", "int8", "float8")


def _check_name(name, arg: str) -> str:
    if isinstance(name, str) and name in SUPPORTED_POLICIES:
        return name
    hint = ""
    if name in _KERAS_ONLY:
        hint = (" (rnnfast's layers keep float32 weights and outputs; 'mixed_bfloat16' "
                "multiplies in bfloat16)")
    raise ValueError(f"{arg}={name!r} is not a dtype policy rnnfast supports; expected one of "
                     f"{', '.join(repr(p) for p in SUPPORTED_POLICIES)}{hint}")


class DTypePolicy:
    """A layer's dtype policy (Keras's ``keras.DTypePolicy``).

    ``name``: ``"float32"``, ``"float64"`` or ``"mixed_bfloat16"``;
    ``compute_dtype`` (``"bfloat16"`` for the mixed policy: the dtype its GEMMs
    multiply in) and ``variable_dtype`` (the weights', always float32 or
    float64). ``DTypePolicy()`` is the floatx policy.
    """

    def __init__(self, name=None):
        if name is None:
            name = _config.floatx()
        self._name = _check_name(name, "name")

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return "bfloat16" if self._name == "mixed_bfloat16" else self._name

    @property
    def variable_dtype(self) -> str:
        return "float32" if self._name == "mixed_bfloat16" else self._name

    @property
    def is_mixed(self) -> bool:
        return self._name == "mixed_bfloat16"

    @property
    def quantization_mode(self):
        return None

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other._name == self._name

    def __hash__(self):
        return hash(("DTypePolicy", self._name))

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


#: Keras 2's name, kept by Keras 3.
Policy = DTypePolicy

_GLOBAL_POLICY: DTypePolicy | None = None


def get(identifier, arg: str = "dtype") -> DTypePolicy:
    """A policy from a name, a policy object, a serialized policy (the dict a
    Keras config holds) or None (the global policy); ``arg`` names the
    argument in errors."""
    if identifier is None:
        return global_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):  # {"class_name": "DTypePolicy", "config": {"name": ...}}
        config = identifier.get("config") or {}
        name = config.get("name") if isinstance(config, dict) else None
        return DTypePolicy(_check_name(name, arg))
    name = identifier
    if not isinstance(identifier, str):
        if isinstance(getattr(identifier, "name", None), str):
            name = identifier.name  # a Keras policy, a NumPy dtype
        else:
            try:
                name = np.dtype(identifier).name  # np.float32, ...
            except TypeError:
                pass
    return DTypePolicy(_check_name(name, arg))


def serialize(policy: DTypePolicy) -> dict:
    """The dict Keras 3 writes for a layer's dtype."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(),
            "registered_name": None}


def set_global_policy(policy) -> None:
    """Policy of the layers created from now on that are given no dtype:
    a name, a ``DTypePolicy``, or None (back to the floatx policy)."""
    global _GLOBAL_POLICY
    _GLOBAL_POLICY = None if policy is None else get(policy, "policy")


def global_policy() -> DTypePolicy:
    """The global policy: the last one set, else ``DTypePolicy(floatx())``."""
    return _GLOBAL_POLICY if _GLOBAL_POLICY is not None else DTypePolicy(_config.floatx())


# keras.config's names for the same.
set_dtype_policy = set_global_policy
dtype_policy = global_policy


def bf16_status() -> dict:
    """Whether mixed_bfloat16 layers multiply in bfloat16 here.

    ``supported``: these kernels have the bf16 GEMMs and the CPU has
    AVX512-BF16 (``reason`` says why not); ``enabled``: supported and not
    switched off; ``amx_supported``, ``amx_enabled`` and ``amx_reason`` the
    same for AMX tiles; ``path``: ``"amx_bf16"``, ``"avx512_bf16"`` or
    ``"float32"`` (the float32 kernels run for mixed_bfloat16 layers)."""
    from . import _core

    status = getattr(_core, "bf16_status", None)
    if status is None:  # kernels built before mixed precision
        return {"supported": False, "enabled": False, "path": "float32",
                "reason": "these kernels predate the bf16 GEMMs", "amx_supported": False,
                "amx_enabled": False, "amx_reason": "these kernels predate the bf16 GEMMs"}
    return dict(status())


def set_bf16_enabled(enabled: bool) -> None:
    """Turns the bf16 GEMMs on or off for the forwards that follow (off:
    mixed_bfloat16 layers run the float32 kernels). ``RNNFAST_BF16=0`` in
    the environment starts them off."""
    from . import _core

    setter = getattr(_core, "set_bf16_enabled", None)
    if setter is not None:
        setter(bool(enabled))


def set_amx_enabled(enabled: bool) -> None:
    """Turns AMX tiles on or off for the bf16 GEMMs of the forwards that
    follow (off: they run on VDPBF16PS only). ``RNNFAST_AMX=0`` in the
    environment starts them off. No effect where ``bf16_status()`` reports
    ``amx_supported`` false."""
    from . import _core

    setter = getattr(_core, "set_amx_enabled", None)
    if setter is not None:
        setter(bool(enabled))


__all__ = ["DTypePolicy", "Policy", "SUPPORTED_POLICIES", "bf16_status", "dtype_policy",
           "global_policy", "set_amx_enabled", "set_bf16_enabled", "set_dtype_policy",
           "set_global_policy"]
