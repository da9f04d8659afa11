"""A few of keras.backend's functions that tutorials call."""

from __future__ import annotations

from ._config import floatx, set_floatx
from ._naming import clear_session


def backend() -> str:
    return "rnnfast"


def epsilon() -> float:
    return 1e-7


def image_data_format() -> str:
    return "channels_last"


__all__ = ["backend", "clear_session", "epsilon", "floatx", "image_data_format", "set_floatx"]
