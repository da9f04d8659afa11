"""Sequential models: Keras 3's API (compile, fit, evaluate, predict, ...) on
rnnfast's layers.

A training step runs each layer's forward (recurrent layers: one C++ call for
the whole sequence), the loss and its gradient, each layer's backward in
reverse (again one C++ call per recurrent layer), the regularizers'
gradients, and the optimizer. Nothing in Python runs per time step.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np

from . import _rng
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .layers import InputLayer, KerasTensor, Layer, deserialize as deserialize_layer
from .layers import serialize as serialize_layer
from .layers.layer import dtype_policy, normalize_shape, reset_names, unique_name
from .layers.rnn.base import RNN


def _as_array(data, name):
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray) and \
            len({d.shape for d in data}) > 1:
        raise ValueError(f"{name}: Sequential models take one input array; got a list of arrays "
                         f"with shapes {[d.shape for d in data]}")
    arr = np.asarray(data)
    if arr.dtype == object:
        raise ValueError(f"{name} could not be converted to a numeric array (ragged sequences? pad "
                         f"them with rnnfast.utils.pad_sequences)")
    return arr


def _num_samples(*arrays):
    n = None
    for name, a in arrays:
        if a is None:
            continue
        if a.ndim == 0:
            raise ValueError(f"{name} must have a batch axis, got a scalar")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous: {name} has {a.shape[0]} samples, "
                             f"expected {n} (the other inputs' count)")
    return n


def _atomic_write(path, write):
    """Writes through a temporary file beside `path` and renames it into place,
    so that an interrupted save never leaves a half-written file there."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Sequential(Layer):
    """A linear stack of layers (Keras 3's Sequential)."""

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name or unique_name("sequential"))
        self._stack: list[Layer] = []
        self._input_layer: InputLayer | None = None
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compile_metrics = []
        self._metric_specs = []
        self._loss_tracker = None
        self._loss_weight = 1.0
        for layer in layers or []:
            self.add(layer)

    # ---- structure ------------------------------------------------------------------

    def add(self, layer, rebuild=True):
        if isinstance(layer, KerasTensor):
            layer = layer._input_layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of `keras.Layer` can be added to a Sequential model. "
                            f"Received: {layer!r} (of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("Sequential: an Input/InputLayer must come first, and only once")
            self._input_layer = layer
        else:
            if any(l.name == layer.name for l in self._stack):
                raise ValueError(f"All layers added to a Sequential model should have unique names. "
                                 f"Name '{layer.name}' is already the name of a layer in this model. "
                                 f"Update the `name` argument to pass a unique name.")
            if not self._stack and self._input_layer is None and layer._batch_input_shape is not None:
                self._input_layer = InputLayer(batch_shape=layer._batch_input_shape)
            self._stack.append(layer)
        self.built = False
        self._layers = list(self._stack)
        if rebuild and self._input_layer is not None:
            self.build(self._input_layer.batch_shape)

    def pop(self, rebuild=True):
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        self._layers = list(self._stack)
        self.built = False
        if rebuild and self._input_layer is not None and self._stack:
            self.build(self._input_layer.batch_shape)
        return layer

    @property
    def layers(self) -> list:
        return list(self._stack)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self._stack[index]
        for layer in self._stack:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._stack]}.")

    def build(self, input_shape=None):
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Sequential.build() needs an input_shape (or an Input first layer)")
            input_shape = self._input_layer.batch_shape
        shape = normalize_shape(input_shape)
        if self._input_layer is None:
            self._input_layer = InputLayer(batch_shape=shape)
        self._build_shape = shape
        for layer in self._stack:
            layer.maybe_build(shape)
            shape = layer.compute_output_shape(shape)
            if isinstance(shape, list):
                raise ValueError(f"Layer '{layer.name}' has several outputs (return_state=True?): "
                                 f"Sequential models need one output per layer")
        self.built = True

    @property
    def input_shape(self):
        return None if self._input_layer is None else self._input_layer.batch_shape

    @property
    def output_shape(self):
        shape = self.input_shape
        if shape is None:
            raise AttributeError("The model has no defined input shape yet")
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def compute_output_shape(self, input_shape):
        shape = normalize_shape(input_shape)
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    # ---- forward / backward ---------------------------------------------------------

    def _prepare_inputs(self, x):
        """Inputs in the first layer's float type, converted once per call rather
        than per batch (integer token ids stay integers for an Embedding)."""
        first = self._stack[0] if self._stack else None
        dtype = first.compute_dtype if first is not None else np.dtype(np.float32)
        if x.dtype == dtype:
            return x
        if np.issubdtype(x.dtype, np.integer) and type(first).__name__ == "Embedding":
            return x
        return x.astype(dtype)

    def _forward(self, x, training):
        if not self._stack:
            raise ValueError("The model has no layers")
        if not self.built:
            self.build(x.shape if self._input_layer is None else self._input_layer.batch_shape)
        mask = None
        self._outputs = []
        for layer in self._stack:
            y = layer.forward(x, training=training, mask=mask)
            if isinstance(y, list):
                raise ValueError(f"Layer '{layer.name}' returned several outputs: Sequential models "
                                 f"need one output per layer (return_state must be False)")
            mask = layer.compute_mask(x, mask)
            # Outputs kept for activity regularizers (their penalty counts in
            # training and evaluation alike, as in Keras).
            self._outputs.append(y if layer.activity_regularizer is not None else None)
            x = y
        return x, mask

    def call(self, inputs, training=False, mask=None):
        y, _ = self._forward(self._prepare_inputs(np.asarray(inputs)), training)
        return y

    def backward(self, grad, need_input_grad=True):
        """Gradients of every layer's weights from dL/doutput; returns dL/dinput, or
        None with need_input_grad=False, which lets a first recurrent layer skip its
        input gradient (about a ninth of a one-layer model's training FLOPs)."""
        last = len(self._stack) - 1
        for i, (layer, out) in enumerate(zip(reversed(self._stack), reversed(self._outputs))):
            if out is not None:
                grad = grad + layer.activity_gradient(out)
            if i == last and not need_input_grad and isinstance(layer, (RNN, Sequential)):
                return layer.backward(grad, need_input_grad=False)
            grad = layer.backward(grad)
        return grad

    def __call__(self, inputs, training=False, mask=None):
        return self.call(inputs, training=training)

    def _regularization(self):
        """(penalty, [(variable, gradient)]) of the weight and activity regularizers."""
        penalty = 0.0
        for layer, out in zip(self._stack, getattr(self, "_outputs", [])):
            if out is not None:
                penalty += layer.activity_penalty(out)
        for v in self.trainable_weights:
            if v.regularizer is not None:
                penalty += float(v.regularizer(v.value))
        return penalty

    # ---- compile / train ----------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss  # as given, like Keras; resolved on the first batch
        self._loss_obj = None
        if loss is not None and not (isinstance(loss, str) and loss.lower() in ("crossentropy", "ce")):
            self._loss_obj = losses_module.get_compile_loss(loss)  # bad names fail here
        if isinstance(loss_weights, (list, tuple)):
            if len(loss_weights) != 1:
                raise ValueError(f"loss_weights: a Sequential model has one output, got "
                                 f"{len(loss_weights)} weights")
            loss_weights = loss_weights[0]
        if isinstance(loss_weights, dict):
            raise ValueError("loss_weights: a Sequential model has one output; pass a number")
        self._loss_weight = 1.0 if loss_weights is None else float(loss_weights)
        self._metric_specs = [(m, False) for m in self._as_list(metrics, "metrics")]
        self._metric_specs += [(m, True) for m in self._as_list(weighted_metrics, "weighted_metrics")]
        self._compile_metrics = None  # resolved on the first batch ("accuracy" needs shapes)
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True

    @staticmethod
    def _as_list(metrics, arg):
        if metrics is None:
            return []
        if isinstance(metrics, dict):
            raise ValueError(f"{arg}: a Sequential model has one output; pass a list")
        if not isinstance(metrics, (list, tuple)):
            return [metrics]
        return list(metrics)

    def _resolve(self, y_true, y_pred):
        """Loss and metrics that depend on the data's shapes ("crossentropy",
        "accuracy"), resolved on the first batch as Keras does."""
        if self._loss_obj is None:
            self._loss_obj = losses_module.get_compile_loss(self.loss, np.shape(y_true),
                                                           np.shape(y_pred))
        if self._compile_metrics is None:
            self._compile_metrics = [
                (metrics_module.get_compile_metric(spec, np.shape(y_true), np.shape(y_pred),
                                                   loss=self._loss_obj), weighted)
                for spec, weighted in self._metric_specs]

    @property
    def metrics(self):
        out = [] if self._loss_tracker is None else [self._loss_tracker]
        return out + [m for m, _ in (self._compile_metrics or [])]

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _check_compiled(self):
        if not self.compiled or self.loss is None:
            raise ValueError("You must call `compile()` with a loss before training or evaluating "
                             "the model.")

    def _logs(self):
        return {m.name: float(m.result()) for m in self.metrics}

    def _update_metrics(self, y, y_pred, sample_weight, mask, batch_size, loss_value):
        self._loss_tracker.update_state(loss_value, sample_weight=batch_size)
        for m, weighted in self._compile_metrics:
            sw = sample_weight if weighted else None
            if mask is not None:
                sw = mask.astype(np.float32) if sw is None else sw * mask
            m.update_state(y, y_pred, sample_weight=sw)

    def _compute_gradients(self, x, y, sample_weight=None):
        """One forward and backward pass: (loss, y_pred, output mask, [(variable,
        gradient)]) for the trainable variables, regularizers included."""
        y_pred, mask = self._forward(x, training=True)
        self._resolve(y, y_pred)
        loss_value, grad = self._loss_obj.value_and_grad(y, y_pred, sample_weight=sample_weight,
                                                         mask=mask)
        if self._loss_weight != 1.0:
            loss_value *= self._loss_weight
            grad = grad * self._loss_weight
        loss_value = float(loss_value) + self._regularization()
        for v in self.weights:
            v.grad = None
        self.backward(np.asarray(grad, dtype=y_pred.dtype), need_input_grad=False)
        pairs = []
        for v in self.trainable_weights:
            g = v.grad
            if g is None:  # a layer that does not reach the loss (not in a Sequential stack)
                g = np.zeros_like(v.value)
            if v.regularizer is not None:
                g = g + v.regularizer.gradient(v.value)
            pairs.append((v, g))
        return loss_value, y_pred, mask, pairs

    def _train_step(self, x, y, sample_weight):
        loss_value, y_pred, mask, pairs = self._compute_gradients(x, y, sample_weight)
        self.optimizer.apply([g for _, g in pairs], [v for v, _ in pairs])
        self._update_metrics(y, y_pred, sample_weight, mask, x.shape[0], loss_value)
        return loss_value

    def _test_step(self, x, y, sample_weight):
        y_pred, mask = self._forward(x, training=False)
        self._resolve(y, y_pred)
        loss_value = self._loss_obj(y, y_pred, sample_weight=sample_weight, mask=mask)
        loss_value = float(loss_value) * self._loss_weight + self._regularization()
        self._update_metrics(y, y_pred, sample_weight, mask, x.shape[0], loss_value)

    def _sample_weights(self, y, sample_weight, class_weight):
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float32)
        if class_weight is None:
            return sample_weight
        yv = np.asarray(y)
        if yv.ndim >= 2 and yv.shape[-1] > 1:
            labels = yv.argmax(axis=-1)
        else:
            labels = yv.reshape(yv.shape[0], -1)[:, 0] if yv.ndim > 1 else yv
        labels = np.rint(labels).astype(np.int64)
        cw = np.ones(labels.shape, np.float32)
        for cls, w in class_weight.items():
            cw[labels == int(cls)] = w
        return cw if sample_weight is None else sample_weight * cw

    def _batches(self, n, batch_size, shuffle):
        order = _rng.global_rng().permutation(n) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                yield slice(start, min(start + batch_size, n))
            else:
                yield order[start:start + batch_size]

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        self._check_compiled()
        x = _as_array(x, "x")
        y = _as_array(y, "y")
        if x is None or y is None:
            raise ValueError("fit() needs x and y arrays")
        sample_weight = self._sample_weights(y, sample_weight, class_weight)
        n = _num_samples(("x", x), ("y", y), ("sample_weight", sample_weight))
        x = self._prepare_inputs(x)
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            split = int(math.floor(n * (1.0 - validation_split)))
            validation_data = (x[split:], y[split:]) + (
                () if sample_weight is None else (sample_weight[split:],))
            x, y = x[:split], y[:split]
            sample_weight = None if sample_weight is None else sample_weight[:split]
            n = split
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 "val_sample_weight)")
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        steps = steps_per_epoch or math.ceil(n / batch_size)
        verbose = 1 if verbose == "auto" else verbose
        cbks = callbacks_module.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                             model=self, verbose=verbose, epochs=epochs,
                                             steps=steps)
        self.stop_training = False
        self._outputs = []
        cbks.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbks.on_epoch_begin(epoch)
            for step, idx in enumerate(self._batches(n, batch_size, shuffle)):
                if steps_per_epoch is not None and step >= steps_per_epoch:
                    break
                cbks.on_train_batch_begin(step)
                sw = None if sample_weight is None else sample_weight[idx]
                self._train_step(x[idx], y[idx], sw)
                logs = self._logs()
                cbks.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = self._logs()
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val = self.evaluate(*validation_data[:2],
                                    sample_weight=validation_data[2] if len(validation_data) == 3 else None,
                                    batch_size=validation_batch_size or batch_size, verbose=0,
                                    return_dict=True, _callbacks=cbks)
                epoch_logs.update({"val_" + k: v for k, v in val.items()})
            cbks.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        if getattr(self.optimizer, "use_ema", False):
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbks.on_train_end(logs)
        self.history = next(c for c in cbks.callbacks if isinstance(c, callbacks_module.History))
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, _callbacks=None):
        self._check_compiled()
        x = _as_array(x, "x")
        y = _as_array(y, "y")
        if x is None or y is None:
            raise ValueError("evaluate() needs x and y arrays")
        sample_weight = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        n = _num_samples(("x", x), ("y", y), ("sample_weight", sample_weight))
        x = self._prepare_inputs(x)
        batch_size = 32 if batch_size is None else int(batch_size)
        verbose = 1 if verbose == "auto" else verbose
        nsteps = math.ceil(n / batch_size)
        cbks = _callbacks or callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=nsteps)
        self.reset_metrics()
        cbks.on_test_begin()
        for step, idx in enumerate(self._batches(n, batch_size, False)):
            if steps is not None and step >= steps:
                break
            cbks.on_test_batch_begin(step)
            sw = None if sample_weight is None else sample_weight[idx]
            self._test_step(x[idx], y[idx], sw)
            cbks.on_test_batch_end(step, self._logs())
        logs = self._logs()
        cbks.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        x = _as_array(x, "x")
        if x is None:
            raise ValueError("predict() needs an x array")
        x = self._prepare_inputs(x)
        n = x.shape[0]
        batch_size = 32 if batch_size is None else int(batch_size)
        verbose = 1 if verbose == "auto" else verbose
        cbks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                             verbose=verbose, epochs=1,
                                             steps=math.ceil(n / batch_size))
        outputs = []
        cbks.on_predict_begin()
        for step, idx in enumerate(self._batches(n, batch_size, False)):
            if steps is not None and step >= steps:
                break
            cbks.on_predict_batch_begin(step)
            y, _ = self._forward(x[idx], training=False)
            outputs.append(np.array(y, copy=True))
            cbks.on_predict_batch_end(step, {"outputs": y})
        cbks.on_predict_end()
        if not outputs:
            raise ValueError("predict() got no data")
        return np.concatenate(outputs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._check_compiled()
        x, y = _as_array(x, "x"), _as_array(y, "y")
        sample_weight = self._sample_weights(y, sample_weight, class_weight)
        _num_samples(("x", x), ("y", y), ("sample_weight", sample_weight))
        self._train_step(self._prepare_inputs(x), y, sample_weight)
        return self._batch_result(return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled()
        x, y = _as_array(x, "x"), _as_array(y, "y")
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        _num_samples(("x", x), ("y", y), ("sample_weight", sw))
        self.reset_metrics()
        self._test_step(self._prepare_inputs(x), y, sw)
        return self._batch_result(return_dict)

    def predict_on_batch(self, x):
        y, _ = self._forward(self._prepare_inputs(_as_array(x, "x")), training=False)
        return np.array(y, copy=True)

    def _batch_result(self, return_dict):
        logs = self._logs()
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def reset_states(self):
        for layer in self._stack:
            if hasattr(layer, "reset_state") and getattr(layer, "stateful", False):
                layer.reset_state()

    # ---- saving ------------------------------------------------------------------------

    def save(self, filepath, overwrite=True, include_optimizer=True, **kwargs):
        """Architecture, weights, compile settings and optimizer state in one
        file, written atomically (rnnfast.saving describes the format)."""
        from . import saving

        saving.save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        """Writes the weights to one uncompressed NumPy .npz (no pickle), atomically."""
        from . import saving

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False")
        saving.write_atomically(filepath, saving._npz_bytes(
            (f"w{i:04d}", v.value) for i, v in enumerate(self.weights)))

    def load_weights(self, filepath):
        from . import saving

        if not os.path.exists(filepath):
            raise FileNotFoundError(f"No weights file at {os.fspath(filepath)!r}")
        with open(filepath, "rb") as f:
            data = f.read()
        weights = saving.read_npz(data, os.fspath(filepath), expected=len(self.weights))
        self.set_weights([a for _, a in weights])

    def get_compile_config(self):
        """What compile() was given, serialized (Keras 3's compile_config)."""
        if not self.compiled:
            return None

        def ser(module, obj):
            return obj if isinstance(obj, str) or obj is None else module.serialize(obj)

        return {"optimizer": optimizers_module.serialize(self.optimizer),
                "loss": ser(losses_module, self.loss),
                "metrics": [ser(metrics_module, m) for m, w in self._metric_specs if not w],
                "weighted_metrics": [ser(metrics_module, m) for m, w in self._metric_specs if w],
                "loss_weights": None if self._loss_weight == 1.0 else self._loss_weight}

    def compile_from_config(self, config, custom_objects=None):
        custom_objects = dict(custom_objects or {})

        def resolve(identifier, module, kind):
            if isinstance(identifier, str):
                if identifier in custom_objects:
                    return custom_objects[identifier]
                if identifier.lower() in ("accuracy", "acc", "crossentropy", "ce"):
                    return identifier
                try:
                    module.get(identifier)
                except ValueError:
                    raise ValueError(f"the model was compiled with the {kind} {identifier!r}, which "
                                     f"rnnfast does not know: pass custom_objects="
                                     f"{{{identifier!r}: ...}} or compile=False") from None
                return identifier
            return module.deserialize(identifier, custom_objects=custom_objects)

        self.compile(
            optimizer=optimizers_module.deserialize(config["optimizer"], custom_objects=custom_objects),
            loss=resolve(config["loss"], losses_module, "loss") if config.get("loss") else None,
            metrics=[resolve(m, metrics_module, "metric") for m in config.get("metrics") or []],
            weighted_metrics=[resolve(m, metrics_module, "metric")
                              for m in config.get("weighted_metrics") or []],
            loss_weights=config.get("loss_weights"))

    # ---- weights, summary, config ------------------------------------------------------

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        print_fn = print_fn or print
        width = line_length or 78
        cols = [int(width * 0.44), int(width * 0.33)]
        cols.append(width - cols[0] - cols[1] - 4)
        rows = []
        shape = self.input_shape
        for layer in self._stack:
            name = f"{layer.name} ({type(layer).__name__})"
            if shape is not None:
                shape = layer.compute_output_shape(shape)
                out = str(tuple(shape)) if not isinstance(shape, list) else str(shape)
            else:
                out = "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            rows.append((name, out, params))

        def line(left, mid, right, fill):
            return left + mid.join(fill * (c + 2) for c in cols) + right

        def row(cells, sep="│", align=("<", "<", ">")):
            parts = [f" {c:{a}{w}} " for c, a, w in zip(cells, align, cols)]
            return sep + sep.join(parts) + sep

        lines = [f'Model: "{self.name}"', line("┏", "┳", "┓", "━"),
                 row(("Layer (type)", "Output Shape", "Param #"), "┃"), line("┡", "╇", "┩", "━")]
        for i, r in enumerate(rows):
            lines.append(row(r))
            lines.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
        if not rows:
            lines.append(line("└", "┴", "┘", "─"))

        def size(n):
            b = 4 * n
            for unit in ("B", "KB", "MB", "GB"):
                if b < 1024 or unit == "GB":
                    return f"{b:.2f} {unit}"
                b /= 1024

        total = sum(v.value.size for v in self.weights) if self.built else 0
        trainable = sum(v.value.size for v in self.trainable_weights) if self.built else 0
        lines += [f" Total params: {total:,} ({size(total)})",
                  f" Trainable params: {trainable:,} ({size(trainable)})",
                  f" Non-trainable params: {total - trainable:,} ({size(total - trainable)})"]
        for text in lines:
            print_fn(text)

    def get_config(self):
        layers = []
        if self._input_layer is not None:
            layers.append(serialize_layer(self._input_layer))
        layers += [serialize_layer(l) for l in self._stack]
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": dtype_policy(self.compute_dtype.name),
                  "layers": layers}
        if getattr(self, "_build_shape", None) is not None:
            config["build_input_shape"] = list(self._build_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(deserialize_layer(layer_config, custom_objects), rebuild=False)
        shape = config.get("build_input_shape")
        if model._input_layer is not None:
            model.build()
        elif shape is not None:
            model.build(shape)
        return model

    def to_json(self, **kwargs):
        import json

        return json.dumps({"module": "keras", "class_name": "Sequential", "config": self.get_config(),
                           "registered_name": None}, **kwargs)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Reads a model written by model.save (rnnfast.saving describes the format)."""
    from . import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def model_from_json(json_string, custom_objects=None):
    import json

    data = json.loads(json_string)
    if data.get("class_name") != "Sequential":
        raise ValueError(f"rnnfast builds Sequential models; got class_name={data.get('class_name')!r}")
    return Sequential.from_config(data["config"], custom_objects)


def clear_session():
    """Resets automatic layer names (Keras's keras.backend.clear_session)."""
    reset_names()


__all__ = ["Sequential", "clear_session", "load_model", "model_from_json"]
