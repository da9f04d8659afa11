"""rnnfast.models: Model (functional), Sequential, and loading them back.

``model.py`` holds the Model base, ``functional.py`` the graph engine (the one
forward/backward path), ``sequential.py`` the list-built graph, and
``functional_config.py`` the Keras-format configs of functional models."""

from __future__ import annotations

from .._naming import clear_session
from .functional import Functional
from .model import Model
from .sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Reads a model file: rnnfast's own, a Keras 3 ``.keras`` or a legacy Keras
    ``.h5`` (told apart by content)."""
    from .. import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def save_model(model, filepath, overwrite=True, include_optimizer=True, **kwargs):
    model.save(filepath, overwrite=overwrite, include_optimizer=include_optimizer)


def model_from_json(json_string, custom_objects=None):
    import json

    from ..layers import registry

    data = json.loads(json_string)
    if data.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise ValueError(f"model_from_json reads Sequential and functional models; got "
                         f"class_name={data.get('class_name')!r}")
    if data["class_name"] == "Model":
        data = dict(data, class_name="Functional")
    return registry.deserialize(data, custom_objects)


__all__ = ["Functional", "Model", "Sequential", "clear_session", "load_model", "model_from_json",
           "save_model"]
