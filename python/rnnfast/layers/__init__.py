"""rnnfast.layers: Keras 3's layer names on rnnfast's kernels."""

from __future__ import annotations

from .. import _serialization
from .core import Activation, Dense, Dropout, Flatten, Masking, RepeatVector
from .embedding import Embedding
from .input_layer import Input, InputLayer, KerasTensor
from .layer import Layer, Variable
from .rnn.base import RNN
from .rnn.bidirectional import Bidirectional
from .rnn.gru import GRU, GRUCell
from .rnn.lstm import LSTM, LSTMCell
from .rnn.simple_rnn import SimpleRNN, SimpleRNNCell
from .rnn.time_distributed import TimeDistributed

LAYERS = {cls.__name__: cls for cls in (
    Activation, Bidirectional, Dense, Dropout, Embedding, Flatten, GRU, GRUCell, InputLayer, LSTM,
    LSTMCell, Masking, RepeatVector, RNN, SimpleRNN, SimpleRNNCell, TimeDistributed)}


def serialize(layer) -> dict:
    """A layer as Keras 3 writes it: {"module", "class_name", "config", "registered_name"}."""
    return {"module": "keras.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A layer from its serialized dict (Keras 3 or Keras 2 style)."""
    return _serialization.deserialize_object(config, LAYERS, "layer", custom_objects)


def get(identifier):
    if isinstance(identifier, Layer):
        return identifier
    return deserialize(identifier)


__all__ = sorted(LAYERS) + ["Input", "KerasTensor", "Layer", "Variable", "deserialize", "get",
                            "serialize"]
