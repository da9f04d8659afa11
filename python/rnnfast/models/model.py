"""Model: the base of Functional and Sequential (Keras 3's models/model.py).

A Model is a Layer (it can be called inside another model) with the training
loop mixed in (``trainers/trainer.py``). ``keras.Model(inputs, outputs)``
returns a Functional model, as in Keras."""

from __future__ import annotations

import os

import numpy as np

from .. import _io, _tree
from ..layers.layer import Layer
from ..trainers.trainer import Trainer


class Model(Trainer, Layer):
    """A trainable graph of layers. ``Model(inputs, outputs, name=...)``."""

    KERAS_MODULE = "keras"
    #: The graph model class (set by functional.py, which builds on this one).
    _functional_class = None

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            return Model._functional_class.__new__(Model._functional_class)
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, **kwargs):
        if not isinstance(self, Model._functional_class):
            raise NotImplementedError(
                f"{type(self).__name__}: subclassed models (a call() written in Python) are not "
                f"supported yet, because rnnfast has no autodiff to derive their backward; build "
                f"the model with keras.Model(inputs, outputs) or keras.Sequential([...])")
        if args or kwargs:
            raise TypeError(f"Model: unexpected argument(s) {list(args) + sorted(kwargs)}")
        Layer.__init__(self, trainable=trainable, name=name)
        self._init_trainer()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A functional model from its config (Keras's Model.from_config)."""
        from . import functional_config

        return functional_config.from_config(Model._functional_class if cls is Model else cls,
                                             config, custom_objects)

    # ---- running ---------------------------------------------------------------------

    def call(self, inputs, training=False, mask=None, **kwargs):
        """model(x) on data. Inference runs in this thread's context, as
        predict_on_batch does, so that its kernel objects and workspaces are
        made once and reused (a new context per call remade them, and the
        fresh workspaces' page faults made W1's model(x) take 0.75 ms against
        predict_on_batch's 0.39). The outputs are copies, as predict_on_batch's:
        nothing returned is memory that the context keeps. A training call gets
        a fresh context, which keeps its caches only while the caller holds it."""
        if training:
            return super().call(inputs, training=True, mask=mask, **kwargs)
        y = self.forward(self._predict_ctx(), inputs, training=False, mask=mask, **kwargs)
        if type(y) is np.ndarray:
            return np.array(y, copy=True)
        return _tree.map_structure(lambda a: np.array(a, copy=True), y)

    # ---- structure -------------------------------------------------------------------

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            if name is not None:
                raise ValueError("get_layer: pass either name or index, not both")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"get_layer: index {index} is out of range; the model has "
                                 f"{len(layers)} layers")
            return layers[index]
        if name is None:
            raise ValueError("get_layer: pass a name or an index")
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in layers]}.")

    def reset_states(self):
        for layer in self.layers:
            if hasattr(layer, "reset_state") and getattr(layer, "stateful", False):
                layer.reset_state()
            elif isinstance(layer, Model):
                layer.reset_states()

    def regularization_penalty(self, ctx, trainable_weights=None) -> float:
        """The activity regularizers' penalty of the forward kept in `ctx`, plus
        the weight regularizers' (what compile's loss adds)."""
        penalty = self.activity_penalty_of(ctx)
        for v in self.trainable_weights if trainable_weights is None else trainable_weights:
            if v.regularizer is not None:
                penalty += float(v.regularizer(v.value))
        return penalty

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        from ..utils import summary

        summary.print_summary(self, line_length=line_length, print_fn=print_fn,
                              show_trainable=show_trainable)

    # ---- saving ---------------------------------------------------------------------

    def save(self, filepath, overwrite=True, include_optimizer=True, **kwargs):
        """Writes the model to one file, atomically. A ``.keras`` name gets Keras
        3's format (``keras.models.load_model`` reads it); any other name gets
        rnnfast's own (``rnnfast.saving``), which also restores the random state
        so that training resumes bit for bit."""
        from .. import saving

        saving.save_model(self, filepath, overwrite=overwrite,
                          include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Writes the weights to one uncompressed NumPy .npz (no pickle), atomically."""
        from .. import saving

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        _io.write_bytes_atomically(filepath, saving.npz_bytes(
            (f"w{i:04d}", v.value) for i, v in enumerate(self.weights)))

    def load_weights(self, filepath):
        from .. import saving

        if not os.path.exists(filepath):
            raise FileNotFoundError(f"No weights file at {os.fspath(filepath)!r}")
        with open(filepath, "rb") as f:
            data = f.read()
        weights = saving.read_npz(data, os.fspath(filepath), expected=len(self.weights))
        self.set_weights([a for _, a in weights])

    def to_json(self, **kwargs):
        import json

        from ..layers import registry

        return json.dumps(registry.serialize(self), **kwargs)
