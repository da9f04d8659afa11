"""rnnfast.callbacks against Keras 3's semantics, driven by a fake model through
a hand-written epoch loop (the same hook order as Keras 3's fit)."""

import math
import os

import numpy as np
import pytest

from rnnfast import callbacks as cbks


class FakeOptimizer:
    def __init__(self, learning_rate=1.0):
        self._lr = learning_rate
        self.iterations = 0

    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        self._lr = float(value)


class FakeModel:
    """The model interface callbacks rely on. Its weights are set to the epoch
    index at the start of each epoch, so restored weights name their epoch."""

    def __init__(self, learning_rate=1.0):
        self.stop_training = False
        self.weights = [np.zeros(2), np.zeros((2, 2))]
        self.optimizer = FakeOptimizer(learning_rate)
        self.saves = []

    def get_weights(self):
        return list(self.weights)  # the arrays themselves: callbacks must copy

    def set_weights(self, weights):
        self.weights = [np.asarray(w) for w in weights]

    def save(self, filepath, overwrite=True):
        self.saves.append(("save", filepath, overwrite))
        with open(filepath, "w") as f:
            f.write("model")

    def save_weights(self, filepath, overwrite=True):
        self.saves.append(("save_weights", filepath, overwrite))
        with open(filepath, "w") as f:
            f.write("weights")


def fit(model, callbacks, epoch_logs, steps=2, batch_logs=None):
    """Runs epochs until stop_training, like Keras 3's fit; returns the History."""
    cl = cbks.CallbackList(callbacks, add_history=True, model=model, verbose=0,
                           epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    cl.on_train_begin()
    logs = None
    for epoch, logs in enumerate(epoch_logs):
        for w in model.weights:
            w[...] = epoch  # updated in place, as a training step would
        cl.on_epoch_begin(epoch)
        for b in range(steps):
            cl.on_train_batch_begin(b)
            blogs = batch_logs(epoch, b) if batch_logs else {"loss": logs.get("loss", 0.0)}
            cl.on_train_batch_end(b, blogs)
        cl.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    cl.on_train_end(logs)
    return model.history


def losses(*values, key="val_loss"):
    return [{key: v} for v in values]


# ------------------------------------------------------------------ EarlyStopping
def test_early_stopping_patience():
    model = FakeModel()
    es = cbks.EarlyStopping(patience=2)
    h = fit(model, [es], losses(1.0, 0.9, 0.95, 0.96, 0.97, 0.5))
    assert h.epoch == [0, 1, 2, 3]          # two epochs without improvement after 0.9
    assert es.stopped_epoch == 3 and es.best == 0.9 and es.best_epoch == 1
    assert model.stop_training


def test_early_stopping_patience_zero_never_stops_at_epoch_0():
    model = FakeModel()
    h = fit(model, [cbks.EarlyStopping(monitor="loss")], losses(1.0, 2.0, 0.5, key="loss"))
    assert h.epoch == [0, 1]


def test_early_stopping_min_delta():
    model = FakeModel()
    h = fit(model, [cbks.EarlyStopping(min_delta=0.1, patience=1)], losses(1.0, 0.95, 0.9))
    assert h.epoch == [0, 1]                 # 0.05 better is not better enough
    h = fit(model, [cbks.EarlyStopping(min_delta=-0.1, patience=1)], losses(1.0, 0.95, 0.9))
    assert h.epoch == [0, 1]                 # the sign of min_delta is ignored
    h = fit(model, [cbks.EarlyStopping(patience=1)], losses(1.0, 0.95, 0.9))
    assert h.epoch == [0, 1, 2]


def test_early_stopping_modes():
    acc = losses(0.5, 0.6, 0.55, 0.7, key="val_accuracy")
    # auto: accuracy goes up
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="val_accuracy")], acc)
    assert h.epoch == [0, 1, 2]
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="val_accuracy", mode="max")], acc)
    assert h.epoch == [0, 1, 2]
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="val_accuracy", mode="min")], acc)
    assert h.epoch == [0, 1]
    # auto: loss goes down
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="loss")], losses(1.0, 1.1, key="loss"))
    assert h.epoch == [0, 1]


def test_early_stopping_auto_mode_uses_model_metric_direction():
    class Metric:
        def __init__(self, name, direction):
            self.name, self._direction = name, direction

    class Container:  # like Keras's CompileMetrics
        def __init__(self, metrics):
            self.metrics = metrics

    model = FakeModel()
    model.metrics = [Container([Metric("score", "up")])]
    h = fit(model, [cbks.EarlyStopping(monitor="val_score")],
            losses(1.0, 2.0, 1.5, key="val_score"))
    assert h.epoch == [0, 1, 2]


def test_early_stopping_auto_mode_unknown_metric_raises():
    with pytest.raises(ValueError, match="automatically determine"):
        fit(FakeModel(), [cbks.EarlyStopping(monitor="val_foo")], losses(1.0, key="val_foo"))


def test_early_stopping_warnings():
    with pytest.warns(UserWarning, match="EarlyStopping mode sideways is unknown"):
        es = cbks.EarlyStopping(mode="sideways")
    assert es.mode == "auto"
    with pytest.warns(UserWarning, match=r"conditioned on metric `val_loss` which is not "
                                         r"available. Available metrics are: loss"):
        h = fit(FakeModel(), [cbks.EarlyStopping()], losses(1.0, 2.0, key="loss"))
    assert h.epoch == [0, 1]                 # nothing to monitor: never stops


def test_early_stopping_baseline():
    # Never beating the baseline: the wait counter is not reset by improvements.
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="loss", baseline=0.5, patience=2)],
            losses(1.0, 0.9, 0.95, 0.97, 0.99, key="loss"))
    assert h.epoch == [0, 1, 2]
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="loss", patience=2)],
            losses(1.0, 0.9, 0.95, 0.97, 0.99, key="loss"))
    assert h.epoch == [0, 1, 2, 3]
    # Beating it resets the wait.
    h = fit(FakeModel(), [cbks.EarlyStopping(monitor="loss", baseline=0.95, patience=2)],
            losses(1.0, 0.9, 0.95, 0.97, 0.99, key="loss"))
    assert h.epoch == [0, 1, 2, 3]


def test_early_stopping_restore_best_weights(capsys):
    model = FakeModel()
    es = cbks.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    h = fit(model, [es], losses(1.0, 0.5, 0.7, 0.8, 0.1))
    assert h.epoch == [0, 1, 2, 3]
    assert all(np.all(w == 1) for w in model.weights)  # epoch 1 (the best), copied
    assert capsys.readouterr().out == (
        "Epoch 4: early stopping\n"
        "Restoring model weights from the end of the best epoch: 2.\n")


def test_early_stopping_restores_at_train_end_without_stopping(capsys):
    model = FakeModel()
    es = cbks.EarlyStopping(patience=5, restore_best_weights=True)
    fit(model, [es], losses(1.0, 0.5, 0.7))
    assert es.stopped_epoch == 0
    assert all(np.all(w == 1) for w in model.weights)
    assert capsys.readouterr().out == ""     # verbose=0
    # Without restore_best_weights the last weights stay.
    model = FakeModel()
    fit(model, [cbks.EarlyStopping(patience=5)], losses(1.0, 0.5, 0.7))
    assert all(np.all(w == 2) for w in model.weights)


def test_early_stopping_start_from_epoch():
    vals = losses(1.0, 2.0, 3.0, 4.0, 5.0)
    assert fit(FakeModel(), [cbks.EarlyStopping()], vals).epoch == [0, 1]
    es = cbks.EarlyStopping(start_from_epoch=2, restore_best_weights=True)
    model = FakeModel()
    assert fit(model, [es], vals).epoch == [0, 1, 2, 3]
    assert es.best == 3.0 and es.best_epoch == 2
    assert all(np.all(w == 2) for w in model.weights)


def test_early_stopping_is_reusable():
    es = cbks.EarlyStopping(patience=1)
    assert fit(FakeModel(), [es], losses(1.0, 2.0, 3.0)).epoch == [0, 1]
    assert fit(FakeModel(), [es], losses(5.0, 4.0, 3.0)).epoch == [0, 1, 2]
    assert es.stopped_epoch == 0 and es.best == 3.0


# ---------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_filename_formatting(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "sub" / "ckpt-{epoch:02d}-{val_loss:.2f}.rnnfast")
    fit(model, [cbks.ModelCheckpoint(path)], losses(0.5, 0.25))
    names = [os.path.basename(p) for _, p, _ in model.saves]
    assert names == ["ckpt-01-0.50.rnnfast", "ckpt-02-0.25.rnnfast"]
    assert all(kind == "save" and overwrite for kind, _, overwrite in model.saves)
    assert sorted(os.listdir(tmp_path / "sub")) == names   # the folder was made


def test_model_checkpoint_save_best_only(tmp_path, capsys):
    model = FakeModel()
    path = str(tmp_path / "best.rnnfast")
    fit(model, [cbks.ModelCheckpoint(path, save_best_only=True, verbose=1)],
        losses(1.0, 0.5, 0.7, 0.4))
    assert len(model.saves) == 3                            # epochs 1, 2 and 4
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from inf to 1.00000, saving model to {path}\n"
        f"\nEpoch 2: val_loss improved from 1.00000 to 0.50000, saving model to {path}\n"
        "\nEpoch 3: val_loss did not improve from 0.50000\n"
        f"\nEpoch 4: val_loss improved from 0.50000 to 0.40000, saving model to {path}\n")


def test_model_checkpoint_mode_max_and_threshold(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "e{epoch}.bin")
    fit(model, [cbks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True,
                                     initial_value_threshold=0.6)],
        losses(0.5, 0.7, 0.65, 0.8, key="val_accuracy"))
    assert [os.path.basename(p) for _, p, _ in model.saves] == ["e2.bin", "e4.bin"]
    model = FakeModel()
    fit(model, [cbks.ModelCheckpoint(path, monitor="val_accuracy", mode="min",
                                     save_best_only=True)],
        losses(0.5, 0.7, 0.4, key="val_accuracy"))
    assert [os.path.basename(p) for _, p, _ in model.saves] == ["e1.bin", "e3.bin"]


def test_model_checkpoint_save_weights_only_any_suffix(tmp_path, capsys):
    model = FakeModel()
    path = str(tmp_path / "w.npz")   # Keras would insist on .weights.h5
    fit(model, [cbks.ModelCheckpoint(path, save_weights_only=True, verbose=1)],
        losses(1.0, 2.0))
    assert [k for k, _, _ in model.saves] == ["save_weights", "save_weights"]
    assert capsys.readouterr().out == (f"\nEpoch 1: saving model to {path}\n"
                                       f"\nEpoch 2: saving model to {path}\n")


def test_model_checkpoint_save_freq_batches(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "b-{epoch}-{batch}.bin")
    fit(model, [cbks.ModelCheckpoint(path, save_freq=2)], losses(1.0, 1.0), steps=3)
    # Counted across epochs: batches 2 | 1+1 | 3 of 3-batch epochs.
    assert [os.path.basename(p) for _, p, _ in model.saves] == ["b-1-2.bin", "b-2-1.bin",
                                                                "b-2-3.bin"]
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        cbks.ModelCheckpoint(path, save_freq="batch")


def test_model_checkpoint_missing_monitor_warns_and_saves(tmp_path):
    model = FakeModel()
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        fit(model, [cbks.ModelCheckpoint(str(tmp_path / "m"), save_best_only=True)],
            losses(1.0, key="loss"))
    assert len(model.saves) == 1


def test_model_checkpoint_format_errors(tmp_path):
    cb = cbks.ModelCheckpoint(str(tmp_path / "{nope}.bin"))
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        fit(FakeModel(), [cb], losses(1.0))
    with pytest.raises(IOError, match="non-directory filepath"):
        fit(FakeModel(), [cbks.ModelCheckpoint(str(tmp_path))], losses(1.0))


# -------------------------------------------------------------- ReduceLROnPlateau
def test_reduce_lr_factor_and_patience(capsys):
    model = FakeModel(learning_rate=1.0)
    cb = cbks.ReduceLROnPlateau(factor=0.5, patience=2, verbose=1)
    h = fit(model, [cb], losses(1.0, 1.0, 1.0, 1.0, 1.0))
    assert model.optimizer.learning_rate == 0.25
    # The logged rate is the one used during the epoch (read before reducing).
    assert h.history["learning_rate"] == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert capsys.readouterr().out == (
        "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.5.\n"
        "\nEpoch 5: ReduceLROnPlateau reducing learning rate to 0.25.\n")


def test_reduce_lr_improvement_resets_wait():
    model = FakeModel()
    fit(model, [cbks.ReduceLROnPlateau(factor=0.5, patience=2)],
        losses(1.0, 1.0, 0.5, 0.5, 0.4))
    assert model.optimizer.learning_rate == 1.0
    # A change under min_delta is no improvement.
    model = FakeModel()
    fit(model, [cbks.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.2)],
        losses(1.0, 0.9, 0.85))
    assert model.optimizer.learning_rate == 0.5


def test_reduce_lr_cooldown():
    model = FakeModel()
    h = fit(model, [cbks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)],
            losses(*[1.0] * 6))
    assert h.history["learning_rate"] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert model.optimizer.learning_rate == 0.125
    model = FakeModel()
    fit(model, [cbks.ReduceLROnPlateau(factor=0.5, patience=1)], losses(*[1.0] * 6))
    assert model.optimizer.learning_rate == 0.5 ** 5


def test_reduce_lr_min_lr():
    model = FakeModel()
    fit(model, [cbks.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05)],
        losses(*[1.0] * 5))
    assert model.optimizer.learning_rate == 0.05


def test_reduce_lr_auto_mode_acc_and_errors():
    model = FakeModel()
    fit(model, [cbks.ReduceLROnPlateau(monitor="val_acc", factor=0.5, patience=1)],
        losses(0.5, 0.6, 0.7, key="val_acc"))
    assert model.optimizer.learning_rate == 1.0      # "acc" in the name: max mode
    with pytest.raises(ValueError, match="factor >= 1.0"):
        cbks.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="Learning rate reduction mode up is unknown"):
        cb = cbks.ReduceLROnPlateau(mode="up")
    assert cb.mode == "auto"
    with pytest.warns(UserWarning, match="Learning rate reduction is conditioned on metric "
                                         "`val_loss` which is not available"):
        fit(FakeModel(), [cbks.ReduceLROnPlateau()], losses(1.0, key="loss"))


# ---------------------------------------------------------- LearningRateScheduler
def test_lr_scheduler_two_argument_schedule(capsys):
    model = FakeModel(learning_rate=1.0)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5

    h = fit(model, [cbks.LearningRateScheduler(schedule, verbose=1)], losses(1.0, 1.0, 1.0))
    assert seen == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert h.history["learning_rate"] == [0.5, 0.25, 0.125]
    assert capsys.readouterr().out.startswith(
        "\nEpoch 1: LearningRateScheduler setting learning rate to 0.5.\n"
        "\nEpoch 2: LearningRateScheduler setting learning rate to 0.25.\n")


def test_lr_scheduler_one_argument_schedule_and_numpy_floats():
    model = FakeModel()
    fit(model, [cbks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], losses(1, 1))
    assert model.optimizer.learning_rate == pytest.approx(0.05)
    model = FakeModel()
    fit(model, [cbks.LearningRateScheduler(lambda e, lr: np.float32(0.25))], losses(1))
    assert model.optimizer.learning_rate == 0.25


def test_lr_scheduler_rejects_non_float():
    with pytest.raises(ValueError, match="should be a float"):
        fit(FakeModel(), [cbks.LearningRateScheduler(lambda epoch: 1)], losses(1.0))


# ------------------------------------------------------------------ TerminateOnNaN
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float32("nan")])
def test_terminate_on_nan(bad, capsys):
    model = FakeModel()
    h = fit(model, [cbks.TerminateOnNaN()], losses(1.0, 1.0, 1.0, key="loss"),
            batch_logs=lambda e, b: {"loss": bad if (e, b) == (1, 1) else 0.5})
    assert model.stop_training
    assert h.epoch == [0, 1]                  # stops after the current epoch
    assert capsys.readouterr().out == "Batch 1: Invalid loss, terminating training\n"


def test_terminate_on_nan_ignores_finite_and_can_raise():
    model = FakeModel()
    h = fit(model, [cbks.TerminateOnNaN()], losses(1.0, 1.0, key="loss"))
    assert h.epoch == [0, 1] and not model.stop_training
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        fit(FakeModel(), [cbks.TerminateOnNaN(raise_error=True)], losses(1.0, key="loss"),
            batch_logs=lambda e, b: {"loss": math.nan})


# ----------------------------------------------------------------------- CSVLogger
def read(path):
    with open(path, newline="") as f:
        return f.read()


def test_csv_logger_exact_contents(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": 0.5, "accuracy": 0.25}, {"loss": 0.25, "accuracy": np.float32(0.5)}]
    fit(FakeModel(), [cbks.CSVLogger(path)], logs)
    # Sorted keys; no val_ key in the first epoch -> NA val_ columns, as Keras.
    assert read(path) == ("epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                          "0,0.25,0.5,NA,NA\r\n"
                          "1,0.5,0.25,NA,NA\r\n")


def test_csv_logger_with_validation_separator_and_arrays(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"val_loss": 0.75, "loss": 1.0, "vec": np.array([1, 2])}]
    fit(FakeModel(), [cbks.CSVLogger(str(path), separator=";")], logs)
    assert read(path) == 'epoch;loss;val_loss;vec\r\n0;1.0;0.75;"""[1, 2]"""\r\n'


def test_csv_logger_append_flush_and_close(tmp_path):
    path = tmp_path / "log.csv"
    seen = []
    logger = cbks.CSVLogger(path, append=True)   # the file does not exist yet
    peek = cbks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(read(path)))
    fit(FakeModel(), [logger, peek], losses(1.0, 0.5))
    assert seen[0] == "epoch,val_loss\r\n0,1.0\r\n"      # flushed after each epoch
    assert logger.csv_file.closed
    fit(FakeModel(), [cbks.CSVLogger(path, append=True)], losses(0.25))
    assert read(path) == "epoch,val_loss\r\n0,1.0\r\n1,0.5\r\n0,0.25\r\n"
    fit(FakeModel(), [cbks.CSVLogger(path)], losses(0.125))   # overwrite
    assert read(path) == "epoch,val_loss\r\n0,0.125\r\n"


# ------------------------------------------------------------------- History, etc.
def test_history():
    model = FakeModel()
    h = fit(model, [], [{"loss": np.float32(0.5), "val_loss": 0.75},
                        {"loss": 0.25, "val_loss": 0.5}])
    assert isinstance(h, cbks.History) and model.history is h
    assert h.history == {"loss": [0.5, 0.25], "val_loss": [0.75, 0.5]}
    assert all(type(v) is float for v in h.history["loss"])
    assert h.epoch == [0, 1]
    assert h.params == {"verbose": 0, "epochs": 2, "steps": 2}
    # A History passed in is used, not duplicated; epoch restarts on train begin.
    cl = cbks.CallbackList([h], add_history=True, model=model)
    assert cl.callbacks == [h]
    cl.on_train_begin()
    assert h.epoch == []


def test_lambda_callback():
    events = []
    cb = cbks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: events.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch, logs["val_loss"])),
        on_train_begin=lambda logs: events.append(("train_begin",)),
        on_train_end=lambda logs: events.append(("train_end",)),
        on_train_batch_begin=lambda batch, logs: events.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: events.append(("batch_end", batch)),
        on_test_end=lambda logs: events.append(("test_end", logs)),
    )
    fit(FakeModel(), [cb], losses(1.0), steps=1)
    assert events == [("train_begin",), ("epoch_begin", 0), ("batch_begin", 0),
                      ("batch_end", 0), ("epoch_end", 0, 1.0), ("train_end",)]
    cb.on_test_end({"loss": 1.0})
    assert events[-1] == ("test_end", {"loss": 1.0})
    # Hooks not given stay the base class's no-ops.
    assert cbks.LambdaCallback().on_epoch_end(0, {}) is None


HOOKS = {
    "on_batch_begin": (3,), "on_batch_end": (3,),
    "on_epoch_begin": (1,), "on_epoch_end": (1,),
    "on_train_batch_begin": (2,), "on_train_batch_end": (2,),
    "on_test_batch_begin": (4,), "on_test_batch_end": (4,),
    "on_predict_batch_begin": (5,), "on_predict_batch_end": (5,),
    "on_train_begin": (), "on_train_end": (),
    "on_test_begin": (), "on_test_end": (),
    "on_predict_begin": (), "on_predict_end": (),
}


class Recorder(cbks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name in HOOKS:
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append((name, args, kwargs))
        return object.__getattribute__(self, name)


def test_callback_list_forwards_every_hook_in_order():
    a, b = Recorder(), Recorder()
    model = FakeModel()
    cl = cbks.CallbackList([a, [b]], model=model, verbose=1, epochs=3, steps=7)
    assert cl.callbacks == [a, b]                 # nested lists flattened
    assert a.model is model and b.params == {"verbose": 1, "epochs": 3, "steps": 7}
    for name, args in HOOKS.items():
        getattr(cl, name)(*args, {"z": np.float64(1.5), "a": 2})
    for rec in (a, b):
        assert [c[0] for c in rec.calls] == list(HOOKS)
        for (name, args, kwargs), expected_args in zip(rec.calls, HOOKS.values()):
            got = kwargs.get("logs", args[-1] if len(args) > len(expected_args) else None)
            assert args[:len(expected_args)] == expected_args, name
            if name == "on_predict_batch_end":    # predictions pass untouched
                assert got == {"z": np.float64(1.5), "a": 2}
            else:                                 # sorted, Python floats
                assert list(got) == ["a", "z"] and type(got["a"]) is float, name


def test_base_callback_aliases_and_defaults():
    class Old(cbks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_begin(self, batch, logs=None):
            self.seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            self.seen.append(("end", batch, logs))

    old = Old()
    assert old.model is None and old.params is None
    cl = cbks.CallbackList([old])
    cl.on_train_batch_begin(0)
    cl.on_train_batch_end(0, {"loss": 1})
    cl.on_test_batch_end(0, {"loss": 1})          # not a train batch: no alias
    assert old.seen == [("begin", 0), ("end", 0, {"loss": 1.0})]
    base = cbks.Callback()
    for name, args in HOOKS.items():
        assert getattr(base, name)(*args) is None


def test_callback_list_defaults_append_and_logs_cleanup():
    model = FakeModel()
    cl = cbks.CallbackList(None, add_history=True, add_progbar=True, model=model,
                           verbose=2, epochs=1, steps=1)
    kinds = [type(c) for c in cl.callbacks]
    assert kinds == [cbks.History, cbks.ProgbarLogger]
    assert model.history is cl._history and cl._progbar.verbose == 2
    progbar = cbks.ProgbarLogger()
    cl2 = cbks.CallbackList([progbar], add_progbar=True)
    assert cl2.callbacks == [progbar]
    rec = Recorder()
    cl.append(rec)
    assert rec.model is model and rec.params == {"verbose": 2, "epochs": 1, "steps": 1}
    assert list(cl)[-1] is rec
    assert cbks._pythonify_logs({"b": {"c": np.int64(3)}, "a": np.array([1.0, 2.0]),
                                 "s": "x"}) == {"a": pytest.approx([1.0, 2.0]),
                                                "c": 3.0, "s": "x"}


def test_callbacks_share_mutated_logs_in_list_order():
    """What one callback adds to the epoch logs reaches those after it (Keras
    3's History records learning_rate from ReduceLROnPlateau this way)."""
    model = FakeModel(learning_rate=0.5)
    h = fit(model, [cbks.LearningRateScheduler(lambda e, lr: lr)], losses(1.0))
    assert h.history["learning_rate"] == [0.5]


def test_public_names():
    assert set(cbks.__all__) == {
        "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
        "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN",
        "CSVLogger", "LambdaCallback"}
    for name in cbks.__all__:
        assert issubclass(getattr(cbks, name), cbks.Callback)
