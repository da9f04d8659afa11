"""Moving models between Keras, PyTorch and rnnfast.

Keras (``h5py`` needed for the weights: ``pip install "rnnfast[keras]"``):

- ``from_keras(path_or_model, *, compile=True)``: a Keras 3 ``.keras`` file, a
  legacy Keras 2 ``.h5`` file (``model.save("x.h5")``) or a live Keras
  ``Sequential`` -> an rnnfast ``Sequential`` with the same weights.
- ``to_keras(model, path, *, include_optimizer=True)``: writes a ``.keras``
  file that ``keras.models.load_model`` reads.

A compiled model's loss, metrics, optimizer settings and optimizer state move
with it through ``.keras`` files, in both directions.

PyTorch (``torch`` needed only by ``to_torch``):

- ``from_torch(module_or_state_dict, *, return_sequences=True, nonlinearity=None,
  dtype=None, prefix=None)``: ``torch.nn.RNN``/``LSTM``/``GRU`` (or its
  ``state_dict()``) -> an rnnfast ``Sequential`` computing the same outputs.
- ``to_torch(model_or_layers, *, batch_first=True, ignore_training_options=False)``
  and ``to_torch_state_dict(...)``: back to one torch module (or its state dict
  as NumPy arrays plus the constructor's arguments, without torch).
- ``from_torch`` also takes a ``torch.nn.Conv1d``/``Conv2d``/``LayerNorm``/
  ``BatchNorm1d``/``BatchNorm2d`` and returns the rnnfast layer computing the
  same (``from_torch_layer(module, data_format="channels_first")`` to choose
  the input layout); ``to_torch(layer)`` goes back for one such layer.
  ``torch_state_dict(layer)`` / ``load_torch_state_dict(layer, state_dict)``
  move those layers' weights in torch's names and layouts without torch.

Files are data only: JSON and HDF5/NumPy arrays. Nothing in a file is executed
(no pickle; Keras ``Lambda`` layers and custom objects are refused), and every
array's declared shape is checked against the model before it is read.
Broken files raise ``rnnfast.saving.FormatError``; valid models that rnnfast
(or torch) cannot represent raise ``ConversionError``. Both are ValueErrors.
"""

from __future__ import annotations

from ._common import ConversionError
from ._keras_format import from_keras, to_keras
from ._torch_layers import from_torch_layer, load_torch_state_dict, torch_state_dict
from ._torch_rnn import from_torch, to_torch, to_torch_state_dict
from .._io import FormatError

__all__ = ["ConversionError", "FormatError", "from_keras", "from_torch", "from_torch_layer",
           "load_torch_state_dict", "to_keras", "to_torch", "to_torch_state_dict", "torch_state_dict"]
