"""Package-wide settings (Keras's keras.config): the default float type."""

from __future__ import annotations

_FLOATX = "float32"
SUPPORTED_FLOATX = ("float32", "float64")


def floatx() -> str:
    return _FLOATX


def set_floatx(value: str) -> None:
    """Default dtype of new layers: "float32" (default) or "float64" (for exact checks)."""
    global _FLOATX
    if value not in SUPPORTED_FLOATX:
        raise ValueError(f"floatx must be one of {SUPPORTED_FLOATX}, got {value!r}")
    _FLOATX = value
