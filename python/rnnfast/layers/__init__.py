"""rnnfast.layers: Keras 3's layer names on rnnfast's kernels.

Every layer class registers itself (``registry.register``); importing its
module here is what makes it known to configs and files."""

from __future__ import annotations

from .attention import AdditiveAttention, Attention
from .convolutional import Conv1D, Conv2D
from .core import Activation, Dense, Dropout, Flatten, Masking, RepeatVector
from .embedding import Embedding
from .input_layer import Input, InputLayer
from .lambda_layer import Lambda
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add,
                      average, concatenate, dot, maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, MaxPooling1D, MaxPooling2D,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D)
from .regularization import SpatialDropout1D
from .reshaping import Cropping1D, Permute, Reshape, UpSampling1D, ZeroPadding1D
from .layer import Context, Layer, Variable
from .node import KerasTensor
from .ops import NotEqual
from .registry import LAYERS, deserialize, register, serialize
from .rnn.base import RNN
from .rnn.bidirectional import Bidirectional
from .rnn.gru import GRU, GRUCell
from .rnn.lstm import LSTM, LSTMCell
from .rnn.simple_rnn import SimpleRNN, SimpleRNNCell
from .rnn.time_distributed import TimeDistributed

# Keras's shorter names for the same classes.
Convolution1D, Convolution2D = Conv1D, Conv2D
MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D



def get(identifier):
    """A layer instance as it is, or one from a serialized config."""
    if isinstance(identifier, Layer):
        return identifier
    return deserialize(identifier)


__all__ = sorted(LAYERS) + ["AvgPool1D", "AvgPool2D", "Context", "Convolution1D", "Convolution2D",
                            "MaxPool1D", "MaxPool2D", "Input", "KerasTensor", "Layer", "Variable", "add", "average",
                            "concatenate", "deserialize", "dot", "get", "maximum", "minimum",
                            "multiply", "register", "serialize", "subtract"]
__all__ += ["GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D"]
