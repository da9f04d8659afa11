"""What compile() was given, resolved per model output (Keras 3's
trainers/compile_utils.py): the losses with their weights and gradients, and
the metrics, with Keras's log names ("loss", "out_loss", "out_accuracy")."""

from __future__ import annotations

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module


def _by_name(spec, names, arg):
    """A dict keyed by output name as a list in output order (None: not given)."""
    unknown = sorted(set(spec) - set(names))
    if unknown:
        raise ValueError(f"{arg}: unknown output name(s) {unknown}; the model's outputs are "
                         f"{names}")
    return [spec.get(name) for name in names]


def _per_output(spec, names, arg):
    """`spec` (one object, a list in output order or a dict keyed by output
    name) as one entry per output; None where an output has none."""
    if isinstance(spec, dict):
        return _by_name(spec, names, arg)
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"{arg}: the model has {len(names)} output(s) {names}, got a list "
                             f"of {len(spec)}")
        return list(spec)
    return [spec] * len(names)


def match_outputs(data, names, arg):
    """Targets (or sample weights) given as one array, a list in output order or
    a dict keyed by output name, as a list in output order (None: not given)."""
    n = len(names)
    if isinstance(data, dict):
        return _by_name(data, names, arg)
    if n == 1:
        if isinstance(data, (list, tuple)) and len(data) == 1 and isinstance(data[0], np.ndarray):
            return [data[0]]
        return [data]
    if isinstance(data, (list, tuple)):
        if len(data) != n:
            raise ValueError(f"{arg}: the model has {n} outputs {names}, got {len(data)} arrays")
        return list(data)
    if data is None:
        return [None] * n
    if arg == "sample_weight":
        return [data] * n
    raise ValueError(f"{arg}: the model has {n} outputs {names}; pass a list or a dict of arrays "
                     f"keyed by output name")


class CompileLoss:
    """The losses of compile(loss=..., loss_weights=...), one per output."""

    def __init__(self, loss, loss_weights, output_names):
        self.output_names = list(output_names)
        self._specs = _per_output(loss, self.output_names, "loss")
        self._losses = [None] * len(self._specs)
        for i, spec in enumerate(self._specs):
            if spec is not None and not (isinstance(spec, str) and spec.lower() in ("crossentropy",
                                                                                   "ce")):
                self._losses[i] = losses_module.get_compile_loss(spec)  # bad names fail here
        if all(s is None for s in self._specs):
            raise ValueError("compile(): loss is None for every output")
        weights = _per_output(loss_weights, self.output_names, "loss_weights")
        self.weights = [1.0 if w is None else float(w) for w in weights]
        self.resolved = False

    @property
    def multi(self):
        return len(self.output_names) > 1

    def active(self):
        return [i for i, s in enumerate(self._specs) if s is not None]

    def resolve(self, y_true, y_pred):
        """Losses that depend on the data's shapes ("crossentropy")."""
        for i in self.active():
            if self._losses[i] is None:
                self._losses[i] = losses_module.get_compile_loss(
                    self._specs[i], np.shape(y_true[i]), np.shape(y_pred[i]))
        self.resolved = True

    def loss_object(self, i):
        return self._losses[i]

    def compute(self, y_true, y_pred, sample_weight, masks, with_grad):
        """(total weighted loss, [unweighted loss per output or None],
        [dloss/dy_pred per output or None])."""
        if not self.resolved:
            self.resolve(y_true, y_pred)
        total = 0.0
        values = [None] * len(y_pred)
        grads = [None] * len(y_pred)
        for i in self.active():
            if y_true[i] is None:
                raise ValueError(f"no target given for output '{self.output_names[i]}', which has "
                                 f"a loss")
            loss = self._losses[i]
            w = self.weights[i]
            try:
                if with_grad:
                    value, grad = loss.value_and_grad(y_true[i], y_pred[i],
                                                      sample_weight=sample_weight[i], mask=masks[i])
                    if w != 1.0:
                        grad = grad * w
                    grads[i] = np.asarray(grad, dtype=y_pred[i].dtype)
                else:
                    value = loss(y_true[i], y_pred[i], sample_weight=sample_weight[i],
                                 mask=masks[i])
            except ValueError as e:
                if "broadcast" not in str(e) and "shape" not in str(e):
                    raise
                where = f"output '{self.output_names[i]}'" if self.multi else "the model's output"
                raise ValueError(f"{where}: the loss {getattr(loss, 'name', loss)!r} cannot "
                                 f"compare targets of shape {np.shape(y_true[i])} with predictions "
                                 f"of shape {np.shape(y_pred[i])} ({e})") from None
            values[i] = float(value)
            total += w * values[i]
        return total, values, grads


class CompileMetrics:
    """The metrics of compile(metrics=..., weighted_metrics=...), resolved per
    output on the first batch ("accuracy" needs the shapes), with the loss
    trackers. Log names follow Keras: "loss"; with several outputs also
    "<output>_loss" and "<output>_<metric>"."""

    def __init__(self, metrics, weighted_metrics, output_names, loss_outputs):
        self.output_names = list(output_names)
        self._specs = [(self._as_lists(metrics, "metrics")),
                       (self._as_lists(weighted_metrics, "weighted_metrics"))]
        self.loss_tracker = metrics_module.Mean(name="loss")
        # With several losses, each output that has one logs it, unweighted.
        self._output_loss_trackers = []
        if len(loss_outputs) > 1:
            self._output_loss_trackers = [(i, metrics_module.Mean(name=f"{self.output_names[i]}_loss"))
                                          for i in loss_outputs]
        self._metrics = None  # [(output index, metric, weighted)]

    def _as_lists(self, spec, arg):
        n = len(self.output_names)
        if spec is None:
            return [[] for _ in range(n)]
        if isinstance(spec, dict):
            per = _per_output(spec, self.output_names, arg)
        elif n == 1:
            per = [spec]
        elif isinstance(spec, (list, tuple)) and len(spec) == n:
            per = list(spec)  # one entry (a metric or a list of them) per output, as Keras 3
        else:
            got = f"a list of {len(spec)}" if isinstance(spec, (list, tuple)) else repr(spec)
            raise ValueError(f"{arg}: the model has {n} outputs {self.output_names}; pass a dict "
                             f"keyed by output name, or a list with one entry (a metric or a list "
                             f"of metrics) per output; got {got}")
        out = []
        for s in per:
            if s is None:
                out.append([])
            elif isinstance(s, (list, tuple)):
                out.append(list(s))
            else:
                out.append([s])
        return out

    def specs(self):
        """[(output index, spec, weighted)] in compile order."""
        return [(i, s, weighted) for weighted, lists in enumerate(self._specs)
                for i, specs in enumerate(lists) for s in specs]

    def resolve(self, y_true, y_pred, loss):
        if self._metrics is not None:
            return
        multi = len(self.output_names) > 1
        out = []
        taken = {}  # Keras's unique log names: mae, mae_1; a repeated weighted one: weighted_mae
        for i, spec, weighted in self.specs():
            m = metrics_module.get_compile_metric(spec, np.shape(y_true[i]), np.shape(y_pred[i]),
                                                  loss=loss.loss_object(i))
            if any(m is other for _, other, _ in out):
                m = metrics_module.deserialize(metrics_module.serialize(m))
            prefix = f"{self.output_names[i]}_" if multi else ""
            name = prefix + m.name
            if name in taken and weighted:
                name = f"{prefix}weighted_{m.name}"
            if name in taken:
                taken[name] += 1
                name = f"{name}_{taken[name] - 1}"
            else:
                taken[name] = 1
            m.name = name
            out.append((i, m, bool(weighted)))
        if multi:
            out.sort(key=lambda item: item[1].name)  # Keras lists them by name
        self._metrics = out

    @property
    def metrics(self):
        return [self.loss_tracker] + [t for _, t in self._output_loss_trackers] + \
            [m for _, m, _ in (self._metrics or [])]

    def reset(self):
        for m in self.metrics:
            m.reset_state()

    def update(self, y_true, y_pred, sample_weight, masks, batch_size, loss_value, output_losses):
        self.loss_tracker.update_state(loss_value, sample_weight=batch_size)
        for i, tracker in self._output_loss_trackers:
            tracker.update_state(output_losses[i], sample_weight=batch_size)
        for i, m, weighted in self._metrics:
            if y_true[i] is None:
                continue
            sw = sample_weight[i] if weighted else None
            mask = masks[i]
            if mask is not None:
                sw = mask.astype(np.float32) if sw is None else sw * mask
            m.update_state(y_true[i], y_pred[i], sample_weight=sw)

    def logs(self):
        return {m.name: float(m.result()) for m in self.metrics}

    def result_names(self):
        return [m.name for m in self.metrics]


def compile_from_config(model, config, custom_objects=None):
    """compile() as a saved compile_config says (Keras 3's compile_from_config);
    names rnnfast does not know raise a clear error."""
    from .. import optimizers as optimizers_module

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
        if isinstance(identifier, dict) and "class_name" in identifier:
            return module.deserialize(identifier, custom_objects=custom_objects)
        return identifier

    def resolve_all(spec, module, kind):
        if spec is None:
            return None
        if isinstance(spec, dict) and "class_name" not in spec:
            return {k: resolve_all(v, module, kind) for k, v in spec.items()}
        if isinstance(spec, (list, tuple)):
            return [resolve_all(v, module, kind) for v in spec]
        return resolve(spec, module, kind)

    model.compile(
        optimizer=optimizers_module.deserialize(config["optimizer"], custom_objects=custom_objects),
        loss=resolve_all(config.get("loss"), losses_module, "loss"),
        loss_weights=config.get("loss_weights"),
        metrics=resolve_all(config.get("metrics"), metrics_module, "metric"),
        weighted_metrics=resolve_all(config.get("weighted_metrics"), metrics_module, "metric"))
