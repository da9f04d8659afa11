"""Chooses and imports the compiled kernels.

The wheel carries one build of the kernels per x86-64 instruction-set level
(``_core_x86_64``, ``_core_x86_64_v3``, ``_core_x86_64_v4``; one ``_core_generic``
elsewhere). The widest level this CPU runs is imported and registered as
``rnnfast._core``. ``RNNFAST_ISA=x86-64-v3`` (for example) forces a level.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

# Widest first.
LEVELS = ("x86-64-v4", "x86-64-v3", "x86-64-v2", "x86-64", "generic")


def module_name(level: str) -> str:
    return "_core_" + level.replace("-", "_")


def available_levels() -> list[str]:
    """Levels whose kernels are installed, widest first."""
    return [lv for lv in LEVELS if importlib.util.find_spec(f"{__package__}.{module_name(lv)}")]


def supported_levels() -> list[str]:
    """Installed levels this CPU runs, widest first."""
    from . import _cpu

    return [lv for lv in available_levels() if _cpu.supports(lv)]


def load_core():
    forced = os.environ.get("RNNFAST_ISA", "").strip()
    supported = supported_levels()
    if forced:
        if forced not in available_levels():
            raise ImportError(
                f"RNNFAST_ISA={forced!r}: no such kernel build; installed: {available_levels()}"
            )
        if forced not in supported:
            raise ImportError(f"RNNFAST_ISA={forced!r}: this CPU does not support it")
        level = forced
    elif supported:
        level = supported[0]
    else:
        raise ImportError(
            f"rnnfast: no kernel build runs on this CPU (installed: {available_levels()})"
        )
    core = importlib.import_module(f"{__package__}.{module_name(level)}")
    sys.modules[f"{__package__}._core"] = core
    return core, level
