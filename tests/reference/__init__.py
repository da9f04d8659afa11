"""Independent NumPy (float64) reference implementations of SimpleRNN, LSTM
and GRU (Keras 3 semantics), with hand-written backward passes, used as
ground truth by the C++ RNN library's tests."""

from .activations import ACTIVATIONS, activation, activation_grad, kink_distance
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .simple_rnn import simple_rnn_backward, simple_rnn_forward

__all__ = [
    "ACTIVATIONS", "activation", "activation_grad", "kink_distance",
    "simple_rnn_forward", "simple_rnn_backward",
    "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
]
