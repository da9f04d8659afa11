"""The training loop (Keras 3's trainers/trainer.py): compile, fit, evaluate,
predict and the ``*_on_batch`` methods, callbacks and metric bookkeeping.

It knows nothing of how a model computes. A model gives it:
``prepare_inputs(x)``; ``forward(ctx, x, training)``, which leaves the
outputs' masks in ``ctx.output_mask``; ``backward(ctx, grads,
need_input_grad=False)``, which adds into the weights' ``grad``;
``zero_grad()``, ``regularization_penalty(ctx)``, ``trainable_weights`` and
``output_names``. The context is the trainer's own, kept from step to step.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings

import numpy as np

from .. import _device, _tree
from .. import callbacks as callbacks_module
from .. import debugging
from .. import distribution as distribution_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..layers.layer import Context
from . import compile_utils, data_adapters
from .data_adapters import DataError, as_array_structure


def _one_thread(what):
    """Makes a method refuse to run while another thread trains or evaluates
    the same model: the training context, gradients, optimizer state and
    metrics are the model's, so concurrent calls would mix them silently.
    Reentrant in one thread (fit validates with evaluate)."""

    def wrap(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            lock = self.__dict__.get("_step_lock") or \
                self.__dict__.setdefault("_step_lock", threading.RLock())
            if not lock.acquire(blocking=False):
                raise RuntimeError(
                    f"Model '{self.name}': {what}() was called while fit, evaluate, "
                    f"train_on_batch or test_on_batch (or predict on a stateful model) runs on "
                    f"this model in another thread. A model trains and evaluates in one thread "
                    f"at a time (its gradients, optimizer state, metrics and states are its "
                    f"own): use one model per thread. predict, predict_on_batch and model(x) "
                    f"may run from several threads at once.")
            try:
                return method(self, *args, **kwargs)
            finally:
                lock.release()

        return run

    return wrap


class Trainer:
    def _init_trainer(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compile_loss = None
        self._compile_metrics = None
        self._compile_spec = None
        self._train_ctx = Context()
        # Inference contexts, one per thread: a context's kernel objects (and
        # their workspaces, reused from call to call) serve one call at a time.
        self._inference_local = threading.local()
        self._step_lock = threading.RLock()  # see _one_thread

    # ---- compile ----------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        names = self.output_names
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss  # as given, like Keras
        self._compile_loss = None if loss is None else \
            compile_utils.CompileLoss(loss, loss_weights, names)
        active = self._compile_loss.active() if self._compile_loss else []
        self._compile_metrics = compile_utils.CompileMetrics(metrics, weighted_metrics, names, active)
        self._compile_spec = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                              "weighted_metrics": weighted_metrics}
        self.compiled = True

    @property
    def metrics(self):
        return [] if self._compile_metrics is None else self._compile_metrics.metrics

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _check_compiled(self):
        if not self.compiled or self._compile_loss is None:
            raise ValueError("You must call `compile()` with a loss before training or evaluating "
                             "the model.")

    def _logs(self):
        return self._compile_metrics.logs()

    # ---- one batch ------------------------------------------------------------------

    def _flat(self, y_pred):
        return _tree.flatten(y_pred) if self._output_count() > 1 else [y_pred]

    def _targets(self, y, sample_weight):
        if self._output_count() == 1 and (y is None or type(y) is np.ndarray) and \
                (sample_weight is None or type(sample_weight) is np.ndarray):
            return [y], [sample_weight]  # the common case, without the structure matching
        names = self.output_names
        y_true = compile_utils.match_outputs(y, names, "y")
        sw = compile_utils.match_outputs(sample_weight, names, "sample_weight") \
            if sample_weight is not None else [None] * len(names)
        return y_true, sw

    @_one_thread("compute_loss_and_gradients")
    def compute_loss_and_gradients(self, x, y, sample_weight=None):
        """One forward and backward pass: (loss, outputs, output masks,
        per-output losses, [(variable, gradient)]) for the trainable weights,
        regularizers included."""
        ctx = self._train_ctx
        self.zero_grad()
        y_pred = self.forward(ctx, x, training=True)
        preds = self._flat(y_pred)
        masks = self._flat(ctx.output_mask)
        y_true, sw = self._targets(y, sample_weight)
        total, values, grads = self._compile_loss.compute(y_true, preds, sw, masks, with_grad=True)
        trainable = self.trainable_weights
        total += self.regularization_penalty(ctx, trainable)
        self.backward(ctx, grads if len(grads) > 1 else grads[0], need_input_grad=False)
        pairs = []
        for v in trainable:
            if v._device is not None:  # gradient and update on the GPU (rnnfast._device)
                pairs.append((v, _device.ON_DEVICE))
                continue
            g = v.grad
            if g is None:  # a weight that does not reach the loss
                g = np.zeros_like(v.value)
            if v.regularizer is not None:
                g = g + v.regularizer.gradient(v.value)
            pairs.append((v, g))
        return total, (y_true, preds, sw, masks, values), pairs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=False):
        """The compiled loss of `x` against `y`, regularization penalties
        included (an inference forward of `x`; the compiled losses take
        `y_pred` instead when it is given)."""
        self._check_compiled()
        ctx = Context()
        out = self.forward(ctx, self.prepare_inputs(x), training=training)
        preds = self._flat(out if y_pred is None else y_pred)
        y_true, sw = self._targets(y, sample_weight)
        total, _, _ = self._compile_loss.compute(y_true, preds, sw, self._flat(ctx.output_mask),
                                                 with_grad=False)
        return total + self.regularization_penalty(ctx)

    def train_step(self, x, y, sample_weight=None):
        dist = distribution_module.active()
        if dist is not None:
            return self._data_parallel_step(dist, x, y, sample_weight)
        loss_value, batch, pairs = self.compute_loss_and_gradients(x, y, sample_weight)
        self.optimizer.apply([g for _, g in pairs], [v for v, _ in pairs])
        self._update_metrics(loss_value, batch)
        return loss_value

    def _data_parallel_step(self, dist, x, y, sample_weight):
        """This rank's shard of the global batch; the gradients of all shards,
        each weighted by its share of the batch, summed across the ranks (the
        single-process gradient of the whole batch for losses that average
        over the batch)."""
        n = len(_tree.flatten(x)[0])
        if n < distribution_module.size():
            raise ValueError(f"a global batch of {n} samples cannot be split over "
                             f"{distribution_module.size()} ranks: use a batch_size of at least "
                             f"the number of ranks")
        part = dist.shard(n)
        weight = (part.stop - part.start) / n
        x, y, sample_weight = _shard_batch(dist, (x, y, sample_weight))
        if not dist.overlap:
            loss_value, batch, pairs = self.compute_loss_and_gradients(x, y, sample_weight)
            grads = dist.allreduce_gradients([g for _, g in pairs], weight)
            self.optimizer.apply(grads, [v for v, _ in pairs])
        else:
            # The backward hands each layer's finished gradients to the buckets,
            # whose allreduces run while it goes on with the layers below.
            buckets = dist.gradient_buckets(self.trainable_weights, weight)
            self._train_ctx.on_grads_ready = buckets.ready
            try:
                loss_value, batch, pairs = self.compute_loss_and_gradients(x, y, sample_weight)
            except BaseException:
                buckets.close()
                raise
            finally:
                del self._train_ctx.on_grads_ready
            self.optimizer.apply(buckets.finish(), buckets.variables)
        self._update_metrics(loss_value, batch)
        self._dp_samples = getattr(self, "_dp_samples", 0) + (part.stop - part.start)
        return loss_value

    def test_step(self, x, y, sample_weight=None):
        ctx = self._predict_ctx()
        y_pred = self.forward(ctx, x, training=False)
        preds, masks = self._flat(y_pred), self._flat(ctx.output_mask)
        y_true, sw = self._targets(y, sample_weight)
        total, values, _ = self._compile_loss.compute(y_true, preds, sw, masks, with_grad=False)
        total += self.regularization_penalty(ctx)
        self._update_metrics(total, (y_true, preds, sw, masks, values))
        return total

    def predict_step(self, x):
        return self.forward(self._predict_ctx(), x, training=False)

    def _predict_ctx(self):
        """This thread's inference context (made on its first call)."""
        local = self.__dict__.get("_inference_local")
        if local is None:
            local = self.__dict__.setdefault("_inference_local", threading.local())
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = local.ctx = Context()
        return ctx

    def _has_stateful_layers(self):
        def walk(layers):
            return any(getattr(lyr, "stateful", False) or walk(getattr(lyr, "_layers", ()))
                       for lyr in layers)

        return walk(self.layers)

    def _numerics_names(self):
        """The model's input names (check_numerics's messages)."""
        try:
            return list(self.input_names)
        except (AttributeError, TypeError, ValueError):
            return None

    def _update_metrics(self, loss_value, batch):
        y_true, preds, sw, masks, values = batch
        cm = self._compile_metrics
        cm.resolve(y_true, preds, self._compile_loss)
        n = preds[0].shape[0]
        cm.update(y_true, preds, sw, masks, n, loss_value, values)

    # ---- data ---------------------------------------------------------------------------

    def _arrays(self, x, y, sample_weight, class_weight):
        x = self.prepare_inputs(as_array_structure(x, "x", self._input_count()))
        y = as_array_structure(y, "y", self._output_count())
        sample_weight = None if sample_weight is None else \
            as_array_structure(sample_weight, "sample_weight", self._output_count())
        sample_weight = self._class_weights(y, sample_weight, class_weight)
        data_adapters.num_samples([("x", x), ("y", y), ("sample_weight", sample_weight)])
        return x, y, sample_weight

    def _batch(self, batch, class_weight, where):
        """A batch from a generator or dataset, checked: a clear error names it."""
        x, y, sw = batch
        try:
            x, y, sw = self._arrays(x, y, sw, class_weight)
        except (ValueError, TypeError) as e:
            raise DataError(f"{where}: {e}") from None
        return x, y, sw

    def _class_weights(self, y, sample_weight, class_weight):
        if class_weight is None:
            return sample_weight
        if self._output_count() > 1:
            raise ValueError("class_weight is supported for models with one output only")
        yv = np.asarray(y)
        if yv.ndim >= 2 and yv.shape[-1] > 1:
            labels = yv.argmax(axis=-1)
        else:
            labels = yv.reshape(yv.shape[0], -1)[:, 0] if yv.ndim > 1 else yv
        labels = np.rint(labels).astype(np.int64)
        cw = np.ones(labels.shape, np.float32)
        for cls, w in class_weight.items():
            cw[labels == int(cls)] = w
        return cw if sample_weight is None else np.asarray(sample_weight, np.float32) * cw

    # ---- fit / evaluate / predict -----------------------------------------------------------

    @_one_thread("fit")
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        self._check_compiled()
        if x is None:
            raise ValueError("fit() needs data: x (and y), a generator or a PyDataset")
        source = data_adapters.is_batch_source(x)
        if source:
            if validation_split:
                raise ValueError("validation_split is supported for array inputs only; pass "
                                 "validation_data for a generator or dataset")
            adapter = data_adapters.get_adapter(x, y, sample_weight, batch_size, steps_per_epoch,
                                                shuffle, what="generator")
        else:
            if y is None:
                raise ValueError("fit() needs targets y with array inputs")
            x, y, sample_weight = self._arrays(x, y, sample_weight, None)
            if validation_data is None and validation_split:
                x, y, sample_weight, validation_data = _split(x, y, sample_weight,
                                                              validation_split)
            # Class weights weight the training data only (the split comes first).
            sample_weight = self._class_weights(y, sample_weight, class_weight)
            adapter = data_adapters.ArrayDataAdapter(x, y, sample_weight, batch_size or 32,
                                                     shuffle, steps_per_epoch)
        if validation_data is not None and not data_adapters.is_batch_source(validation_data):
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 "val_sample_weight), a generator or a PyDataset")
        verbose = 1 if verbose == "auto" else verbose
        dist = distribution_module.active()
        if dist is not None:
            # Rank 0 shows the progress and writes the files; all start from its weights.
            if not distribution_module.is_main():
                verbose = 0
                callbacks = [c for c in (callbacks or []) if not isinstance(
                    c, (callbacks_module.ModelCheckpoint, callbacks_module.CSVLogger))]
            dist.broadcast_weights(self.weights, self.optimizer)
            adapter.rng = dist.shared_rng()
        cbks = callbacks_module.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                             model=self, verbose=verbose, epochs=epochs,
                                             steps=adapter.num_batches)
        self.stop_training = False
        # On a GPU the recurrent weights and the optimizer's state may stay there until the end.
        residency = _device.begin_residency(self)
        try:
            return self._fit_epochs(cbks, adapter, source, class_weight, initial_epoch, epochs,
                                    validation_data, validation_batch_size, batch_size,
                                    validation_steps, validation_freq, dist)
        except BaseException as e:
            if dist is not None:  # the other ranks would wait in a collective forever
                dist.abort(e)
            raise
        finally:
            _device.end_residency(residency)

    def _fit_epochs(self, cbks, adapter, source, class_weight, initial_epoch, epochs,
                    validation_data, validation_batch_size, batch_size, validation_steps,
                    validation_freq, dist):
        cbks.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._dp_samples = 0
            self.reset_metrics()
            cbks.on_epoch_begin(epoch)
            ran = 0
            for step, batch in enumerate(adapter.epoch()):
                if source:
                    batch = self._batch(batch, class_weight, f"batch {step} of the generator")
                if debugging._enabled:
                    debugging.check_batch(f"fit: epoch {epoch} (Epoch {epoch + 1}/{epochs}), "
                                          f"batch {step}", *batch,
                                          input_names=self._numerics_names())
                cbks.on_train_batch_begin(step)
                self.train_step(*batch)
                ran += 1
                cbks.on_train_batch_end(step, self._logs())
                if dist is not None:  # one rank's stop (TerminateOnNaN) stops them all
                    self.stop_training = dist.any(self.stop_training)
                if self.stop_training:
                    break
            adapter.on_epoch_end()
            if ran == 0:
                warnings.warn("Your input ran out of data; interrupting training. Make sure that "
                              "your dataset or generator can generate at least `steps_per_epoch "
                              "* epochs` batches.", UserWarning, stacklevel=2)
                break
            epoch_logs = self._logs()
            if dist is not None:
                epoch_logs = dist.average_logs(epoch_logs, self._dp_samples)
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val = self._validate(validation_data, validation_batch_size or batch_size,
                                     validation_steps, cbks, epoch)
                epoch_logs.update({"val_" + k: v for k, v in val.items()})
            cbks.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if dist is not None:
                self.stop_training = dist.any(self.stop_training)
            if self.stop_training:
                break
        if getattr(self.optimizer, "use_ema", False):
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbks.on_train_end(logs)
        self.history = next(c for c in cbks.callbacks if isinstance(c, callbacks_module.History))
        return self.history

    def _validate(self, data, batch_size, steps, cbks, epoch):
        where = f"fit: validation after epoch {epoch} (Epoch {epoch + 1})"
        if data_adapters.is_batch_source(data):
            return self.evaluate(data, batch_size=None, steps=steps, verbose=0, return_dict=True,
                                 _callbacks=cbks, _where=where)
        return self.evaluate(*data[:2], sample_weight=data[2] if len(data) == 3 else None,
                             batch_size=batch_size, steps=steps, verbose=0, return_dict=True,
                             _callbacks=cbks, _where=where)

    @_one_thread("evaluate")
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, _callbacks=None,
                 _where="evaluate"):
        self._check_compiled()
        if x is None:
            raise ValueError("evaluate() needs data: x and y, a generator or a PyDataset")
        source = data_adapters.is_batch_source(x)
        if source:
            adapter = data_adapters.get_adapter(x, y, sample_weight, batch_size, steps,
                                                what="generator")
        else:
            if y is None:
                raise ValueError("evaluate() needs targets y with array inputs")
            x, y, sample_weight = self._arrays(x, y, sample_weight, None)
            adapter = data_adapters.ArrayDataAdapter(x, y, sample_weight, batch_size or 32,
                                                     False, steps)
        verbose = 1 if verbose == "auto" else verbose
        cbks = _callbacks or callbacks_module.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=adapter.num_batches)
        self.reset_metrics()
        dist = distribution_module.active()
        samples = 0
        cbks.on_test_begin()
        for step, batch in enumerate(adapter.epoch()):
            if source:
                batch = self._batch(batch, None, f"batch {step} of the generator")
            if debugging._enabled:
                debugging.check_batch(f"{_where}: batch {step}", *batch,
                                      input_names=self._numerics_names())
            cbks.on_test_batch_begin(step)
            mine = None
            if dist is not None:  # this rank's shard; the logs are averaged below
                batch = _shard_batch(dist, batch)
                mine = len(_tree.flatten(batch[0])[0])
                samples += mine
            if mine != 0:  # a batch smaller than the ranks leaves some without samples
                self.test_step(*batch)
            cbks.on_test_batch_end(step, self._logs())
        logs = self._logs()
        if dist is not None:
            logs = dist.average_logs(logs, samples)
        cbks.on_test_end(logs)
        return self._result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        if self._has_stateful_layers():
            return self._predict_stateful(x, batch_size, verbose, steps, callbacks)
        return self._predict(x, batch_size, verbose, steps, callbacks)

    @_one_thread("predict")
    def _predict_stateful(self, *args):
        # Two threads' batches would interleave in the layers' states.
        return self._predict(*args)

    def _predict(self, x, batch_size, verbose, steps, callbacks):
        source = data_adapters.is_batch_source(x)
        if source:
            adapter = data_adapters.get_adapter(x, None, None, batch_size, steps, what="generator")
        else:
            x = self.prepare_inputs(as_array_structure(x, "x", self._input_count()))
            if verbose == 0 and callbacks is None and steps is None and \
                    (batch_size is None or (type(batch_size) is int and batch_size > 0)) and \
                    not debugging._enabled and distribution_module.active() is None:
                # One batch, no callbacks and no progress bar (a streamed step of a
                # stateful model): predict_on_batch's work, without the adapter and
                # callback machinery around it (GRU(64) step: 32 -> 19 us). The
                # loop below would compute the same batch, x[0:n].
                n = x[0].shape[0] if len(x) == 1 and x[0].ndim else \
                    data_adapters.num_samples([("x", x)])
                if n is not None and 0 < n <= (batch_size or 32):
                    return self._predict_batch(x)
            adapter = data_adapters.ArrayDataAdapter(x, None, None, batch_size or 32, False, steps)
        verbose = 1 if verbose == "auto" else verbose
        cbks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                             verbose=verbose, epochs=1, steps=adapter.num_batches)
        outputs = []
        dist = distribution_module.active()
        cbks.on_predict_begin()
        for step, (xb, _, _) in enumerate(adapter.epoch()):
            if source:
                try:
                    xb = self.prepare_inputs(as_array_structure(xb, "x", self._input_count()))
                except (ValueError, TypeError) as e:
                    raise DataError(f"batch {step} of the generator: {e}") from None
            if debugging._enabled:
                debugging.check_batch(f"predict: batch {step}", xb,
                                      input_names=self._numerics_names())
            cbks.on_predict_batch_begin(step)
            if dist is not None:  # each rank predicts its shard; all get the whole batch
                part = dist.shard(len(_tree.flatten(xb)[0]))
                xs = _tree.map_structure(lambda a: a[part], xb)
                mine = [np.array(a, copy=True) for a in self._flat(self.predict_step(xs))] \
                    if part.stop > part.start else None
                pieces = [p for p in dist.allgather(mine) if p is not None]
                flat_y = [np.concatenate(parts) for parts in zip(*pieces)]
                y = flat_y[0] if len(flat_y) == 1 else self.pack_outputs(flat_y)
                outputs.append(flat_y)
                cbks.on_predict_batch_end(step, {"outputs": y})
                continue
            y = self.predict_step(xb)
            outputs.append([np.array(a, copy=True) for a in self._flat(y)])
            cbks.on_predict_batch_end(step, {"outputs": y})
        cbks.on_predict_end()
        if not outputs:
            raise ValueError("predict() got no data")
        flat = [np.concatenate(parts) for parts in zip(*outputs)]
        return flat[0] if len(flat) == 1 else self.pack_outputs(flat)

    @_one_thread("train_on_batch")
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._check_compiled()
        x, y, sample_weight = self._arrays(x, y, sample_weight, class_weight)
        if debugging._enabled:
            debugging.check_batch("train_on_batch", x, y, sample_weight,
                                  input_names=self._numerics_names())
        self.reset_metrics()  # Keras 3: this batch's loss and metrics, not a running mean
        self.train_step(x, y, sample_weight)
        return self._result(self._logs(), return_dict)

    @_one_thread("test_on_batch")
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled()
        x, y, sample_weight = self._arrays(x, y, sample_weight, None)
        if debugging._enabled:
            debugging.check_batch("test_on_batch", x, y, sample_weight,
                                  input_names=self._numerics_names())
        self.reset_metrics()
        self.test_step(x, y, sample_weight)
        return self._result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        x = self.prepare_inputs(x if type(x) is np.ndarray else
                                as_array_structure(x, "x", self._input_count()))
        if debugging._enabled:
            debugging.check_batch("predict_on_batch", x, input_names=self._numerics_names())
        return self._predict_batch(x)

    def _predict_batch(self, x):
        """The outputs of one prepared batch, as arrays of the caller's own."""
        flat = [np.array(a, copy=True) for a in self._flat(self.predict_step(x))]
        return flat[0] if len(flat) == 1 else self.pack_outputs(flat)

    def _result(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    # ---- compile config ----------------------------------------------------------------

    def get_compile_config(self):
        """What compile() was given, serialized (Keras 3's compile_config)."""
        if not self.compiled:
            return None
        spec = self._compile_spec

        def ser(module, obj):
            return _tree.map_structure(
                lambda o: o if isinstance(o, (str, int, float)) or o is None
                else module.serialize(o), obj)

        return {"optimizer": optimizers_module.serialize(self.optimizer),
                "loss": ser(losses_module, spec["loss"]),
                "loss_weights": spec["loss_weights"],
                "metrics": ser(metrics_module, spec["metrics"]),
                "weighted_metrics": ser(metrics_module, spec["weighted_metrics"])}

    def compile_from_config(self, config, custom_objects=None):
        compile_utils.compile_from_config(self, config, custom_objects)


def _shard_batch(dist, batch):
    """(x, y, sample_weight): this rank's contiguous shard of a global batch."""
    x, y, sw = batch
    part = dist.shard(len(_tree.flatten(x)[0]))
    take = (lambda a: None if a is None else a[part])
    return (_tree.map_structure(take, x), None if y is None else _tree.map_structure(take, y),
            None if sw is None else _tree.map_structure(take, sw))


def _split(x, y, sample_weight, validation_split):
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
    n = data_adapters.num_samples([("x", x)])
    split = int(math.floor(n * (1.0 - validation_split)))
    head = slice(0, split)
    tail = slice(split, n)
    val = (data_adapters.slice_structure(x, tail), data_adapters.slice_structure(y, tail))
    if sample_weight is not None:
        val += (data_adapters.slice_structure(sample_weight, tail),)
    return (data_adapters.slice_structure(x, head), data_adapters.slice_structure(y, head),
            data_adapters.slice_structure(sample_weight, head), val)
