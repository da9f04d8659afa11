"""rnnfast.utils.progbar.Progbar and callbacks.ProgbarLogger print Keras 3's formats.

The expected strings are written out by hand from Keras 3's progbar.py: a bold
count, a green done part and a grey rest of 20 '━', the ETA or elapsed time
in bold, the time per step and the metrics. A fake clock makes the times exact.
"""

import io
import sys

import pytest

from rnnfast import callbacks
from rnnfast.utils import progbar as progbar_mod
from rnnfast.utils.progbar import Progbar

B, G, W, R = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
BAR = "\u2501"


def bar(count, done, width=20):
    """Keras 3's verbose=1 count and bar, styling included."""
    s = f"{B}{count}{R} "
    if done > 0:
        s += f"{G}{BAR * done}{R}"
    return s + f"{W}{BAR * (width - done)}{R}"


class FakeClock:
    """Stands in for the time module: time() returns `now`, then advances it by `step`."""

    def __init__(self, now=100.0, step=0.0):
        self.now = now
        self.step = step

    def time(self):
        t = self.now
        self.now += self.step
        return t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progbar_mod, "time", c)
    # Captured stdout is not a terminal; make sure nothing else makes the
    # display dynamic.
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    return c


def test_verbose1_non_interactive_lines_and_averaging(clock, capsys):
    pb = Progbar(3)
    assert pb._dynamic_display is False
    clock.now = 100.5
    pb.update(1, [("loss", 1.0)])
    clock.now = 100.75
    pb.update(2, [("loss", 0.0)])
    clock.now = 101.0
    pb.update(3, [("loss", 0.25)])
    out = capsys.readouterr().out
    expected = (
        # 0.5 s for step 1; ETA 2 steps * 0.5 s.
        "\n" + bar("1/3", 6) + f" {B}1s{R} 500ms/step - loss: 1.0000"
        # Step 1 is left out of the estimate: 0.25 s/step; the loss is the
        # running average of the values given: (1 + 0) / 2.
        + "\n" + bar("2/3", 13) + f" {B}0s{R} 250ms/step - loss: 0.5000"
        # The final update shows the given value as is, and the elapsed time.
        + "\n" + bar("3/3", 20) + f" {B}1s{R} 250ms/step - loss: 0.2500\n"
    )
    assert out == expected


def test_verbose1_visible_text(clock, capsys):
    pb = Progbar(32)
    clock.now = 100.096
    pb.update(32, [("loss", 0.12344), ("mae", 0.23456)])
    out = capsys.readouterr().out
    visible = progbar_mod._ANSI.sub("", out)
    assert visible == "\n32/32 " + BAR * 20 + " 0s 3ms/step - loss: 0.1234 - mae: 0.2346\n"


def test_verbose2_prints_only_the_final_line(clock, capsys):
    pb = Progbar(3, verbose=2)
    clock.now = 100.5
    pb.update(1, [("loss", 1.0)])
    clock.now = 100.75
    pb.update(2, [("loss", 0.0)])
    assert capsys.readouterr().out == ""
    clock.now = 101.0
    pb.update(3, [("loss", 0.25), ("acc", 0.5)])
    assert capsys.readouterr().out == "3/3 - 1s - 250ms/step - loss: 0.2500 - acc: 0.5000\n"


def test_step_weighted_average_and_stateful_metrics(clock, capsys):
    pb = Progbar(10, stateful_metrics=["acc"])
    clock.now = 101.0
    pb.update(2, [("loss", 1.0), ("acc", 0.1)])   # covers 2 steps
    clock.now = 102.0
    pb.update(6, [("loss", 4.0), ("acc", 0.9)])   # covers 4 steps
    out = capsys.readouterr().out.split("\n")
    # (1*2 + 4*4) / 6 = 3.0; acc is shown as given.
    assert out[-1].endswith(" - loss: 3.0000 - acc: 0.9000")
    assert pb._values["loss"] == [18.0, 6]


def test_stateless_metrics_argument(clock):
    pb = Progbar(10, verbose=0, stateless_metrics=["loss"])
    pb.update(1, [("loss", 1.0), ("acc", 0.2)])
    pb.update(2, [("loss", 3.0), ("acc", 0.4)])
    assert pb._average("loss") == 2.0
    assert pb._average("acc") == 0.4
    with pytest.raises(ValueError):
        Progbar(10, stateful_metrics=["a"], stateless_metrics=["b"])


def test_value_formats(clock, capsys):
    pb = Progbar(1)
    clock.now = 100.0
    pb.update(1, [("small", 0.0005), ("zero", 0.0), ("neg", -0.5), ("int", 3)])
    line = capsys.readouterr().out
    assert " - small: 5.0000e-04 - zero: 0.0000e+00 - neg: -0.5000 - int: 3.0000\n" in line
    # The one-line form compares signed values: negatives go scientific.
    pb = Progbar(1, verbose=2)
    pb.update(1, [("neg", -0.5), ("big", 1234.5)])
    assert capsys.readouterr().out.endswith(" - neg: -5.0000e-01 - big: 1234.5000\n")


def test_time_and_eta_formats():
    pb = Progbar(1, verbose=0)
    assert pb._format_time(2.4, "step") == " 2s/step"
    assert pb._format_time(0, "step") == " 0s/step"
    assert pb._format_time(0.0123, "step") == " 12ms/step"
    assert pb._format_time(5e-5, "sample") == " 50us/sample"
    assert Progbar._format_eta(3700) == "1:01:40"
    assert Progbar._format_eta(125) == "2:05"
    assert Progbar._format_eta(59.9) == "59s"


def test_eta_in_minutes_and_padding_when_dynamic(clock, capsys):
    pb = Progbar(100)
    pb._dynamic_display = True
    clock.now = 102.0
    pb.update(1)                    # 2 s/step: ETA 198 s
    clock.now = 102.5
    pb.update(2)                    # then 0.5 s/step: ETA 49 s
    clock.now = 103.0
    pb.update(100)                  # 1 s / 99 steps after the first
    out = capsys.readouterr().out
    first = bar("  1/100", 0) + f" {B}3:18{R} 2s/step"
    second = bar("  2/100", 0) + f" {B}49s{R} 500ms/step"
    third = bar("100/100", 20) + f" {B}3s{R} 10ms/step"
    w1, w2, w3 = (len(progbar_mod._ANSI.sub("", s)) for s in (first, second, third))
    assert (w1, w2, w3) == (41, 43, 41)
    # Each redraw backs over the previous line, returns to column 0, and pads
    # with spaces what the previous line had beyond the new one.
    assert out == ("\r" + first
                   + "\b" * w1 + "\r" + second
                   + "\b" * w2 + "\r" + third + " " * (w2 - w3) + "\n")


def test_interval_throttles_redraws_but_values_accumulate(clock, capsys):
    pb = Progbar(10, interval=1.0)
    clock.now = 100.5
    pb.update(1, [("loss", 1.0)])
    clock.now = 100.6              # under a second since the last draw
    pb.update(2, [("loss", 3.0)])
    assert capsys.readouterr().out.count("\n") == 1
    clock.now = 102.0
    pb.update(3, [("loss", 5.0)])
    assert capsys.readouterr().out.endswith(" - loss: 3.0000")


def test_unknown_target_and_add(clock, capsys):
    pb = Progbar(None)
    clock.now = 101.0
    pb.add(2, [("loss", 2.0)])
    clock.now = 102.0
    pb.add(2, [("loss", 4.0)])
    out = capsys.readouterr().out
    # Both updates cover 2 steps: (2*2 + 4*2) / 4.
    assert out.split("\n")[-1] == f"      4/Unknown {B}2s{R} 500ms/step - loss: 3.0000"
    assert pb._seen_so_far == 4


def test_verbose0_is_silent(clock, capsys):
    pb = Progbar(2, verbose=0)
    pb.update(1, [("loss", 1.0)])
    pb.update(2, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


def test_writes_to_current_stdout(clock, monkeypatch):
    pb = Progbar(1, verbose=2)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)  # swapped after the bar was made
    pb.update(1)
    assert buf.getvalue() == "1/1 - 0s - 0s/step\n"


# ----------------------------------------------------------------- ProgbarLogger
def _fit(cbks, epochs, steps, verbose, batch_losses, epoch_logs, validate=False):
    """A hand-written fit loop driving a CallbackList like Keras 3's trainer."""
    cl = callbacks.CallbackList(cbks, add_history=True, add_progbar=verbose != 0,
                                verbose=verbose, epochs=epochs, steps=steps)
    cl.on_train_begin()
    for epoch in range(epochs):
        cl.on_epoch_begin(epoch)
        for b in range(steps):
            cl.on_train_batch_begin(b)
            cl.on_train_batch_end(b, {"loss": batch_losses[b]})
        logs = dict(epoch_logs[epoch])
        if validate:
            cl.on_test_begin()
            cl.on_test_batch_begin(0)
            cl.on_test_batch_end(0, {"loss": 9.0})
            cl.on_test_end({"loss": 9.0})
        cl.on_epoch_end(epoch, logs)
    cl.on_train_end(logs)
    return cl


def test_progbar_logger_verbose1_fit(clock, capsys):
    clock.step = 0.25  # every clock reading advances 0.25 s
    _fit([], epochs=2, steps=2, verbose=1, batch_losses=[1.0, 0.5],
         epoch_logs=[{"loss": 0.75, "val_loss": 0.5}] * 2, validate=True)
    out = capsys.readouterr().out
    # Progbar made at 100.0 (first epoch); batch ends at +0.25, +0.5; the
    # final update at +0.75: (0.75 - 0.25) / 1 s per step after step 1.
    epoch = (
        "\n" + bar("1/2", 10) + f" {B}0s{R} 250ms/step - loss: 1.0000"
        + "\n" + bar("2/2", 20) + f" {B}0s{R} 250ms/step - loss: 0.7500"
        + "\n" + bar("2/2", 20) + f" {B}1s{R} 500ms/step - loss: 0.7500 - val_loss: 0.5000\n"
    )
    # Second batch update is not final (finalize=False): ETA form, running average.
    assert out == "Epoch 1/2\n" + epoch + "Epoch 2/2\n" + epoch


def test_progbar_logger_verbose2_fit_one_line_per_epoch(clock, capsys):
    clock.step = 0.25
    cl = _fit([], epochs=2, steps=2, verbose=2, batch_losses=[1.0, 0.5],
              epoch_logs=[{"loss": 0.75, "val_loss": 0.5}, {"loss": 0.5, "val_loss": 0.25}],
              validate=True)
    out = capsys.readouterr().out
    # verbose=2 skips the batch updates: the bar is made at 100.0 and finalized
    # at 100.25, 2 steps: 125 ms/step.
    assert out == ("Epoch 1/2\n2/2 - 0s - 125ms/step - loss: 0.7500 - val_loss: 0.5000\n"
                   "Epoch 2/2\n2/2 - 0s - 125ms/step - loss: 0.5000 - val_loss: 0.2500\n")
    assert isinstance(cl._progbar, callbacks.ProgbarLogger)


def test_progbar_logger_single_epoch_has_no_header_and_sorted_metrics(clock, capsys):
    clock.step = 0.25
    _fit([], epochs=1, steps=2, verbose=2, batch_losses=[1.0, 0.5],
         epoch_logs=[{"loss": 0.75, "accuracy": 0.5, "val_loss": 0.5, "val_accuracy": 0.25}])
    # Keras 3 sorts the logs: accuracy before loss.
    assert capsys.readouterr().out == (
        "2/2 - 0s - 125ms/step - accuracy: 0.5000 - loss: 0.7500 - val_accuracy: 0.2500"
        " - val_loss: 0.5000\n")


def test_progbar_logger_unknown_steps_learns_target(clock, capsys):
    clock.step = 0.25
    logger = callbacks.ProgbarLogger()
    logger.set_params({"verbose": 2, "epochs": 1, "steps": None})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for b in range(3):
        logger.on_train_batch_end(b, {"loss": 1.0})
    logger.on_epoch_end(0, {"loss": 1.0})
    assert logger.target == 3
    assert capsys.readouterr().out.startswith("3/3 - ")


def test_progbar_logger_evaluate_and_predict(clock, capsys):
    clock.step = 0.25
    cl = callbacks.CallbackList(None, add_progbar=True, verbose=1, epochs=1, steps=2)
    cl.on_test_begin()
    cl.on_test_batch_end(0, {"loss": 2.0})
    cl.on_test_batch_end(1, {"loss": 1.0})
    cl.on_test_end({"loss": 1.5})
    out = capsys.readouterr().out
    assert out.endswith("\n" + bar("2/2", 20) + f" {B}1s{R} 500ms/step - loss: 1.5000\n")
    assert out.count("\n") == 4

    cl = callbacks.CallbackList(None, add_progbar=True, verbose=1, epochs=1, steps=2)
    cl.on_predict_begin()
    cl.on_predict_batch_end(0, {"outputs": [1.0, 2.0]})
    cl.on_predict_batch_end(1, {"outputs": [1.0, 2.0]})
    cl.on_predict_end()
    out = capsys.readouterr().out
    assert out.endswith("\n" + bar("2/2", 20) + f" {B}1s{R} 500ms/step\n")
    assert "outputs" not in out


def test_progbar_logger_verbose_auto_and_zero(clock, capsys):
    logger = callbacks.ProgbarLogger()
    logger.set_params({"verbose": "auto", "epochs": 3, "steps": 4})
    assert (logger.verbose, logger.epochs, logger.target) == (1, 3, 4)
    cl = callbacks.CallbackList(None, add_progbar=False, verbose=0, epochs=2, steps=2)
    assert cl._progbar is None
    _fit([], epochs=2, steps=2, verbose=0, batch_losses=[1.0, 1.0], epoch_logs=[{}, {}])
    assert capsys.readouterr().out == ""
