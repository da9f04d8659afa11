"""The built-in demo learns: its test MSE beats the naive last-value baseline."""

import io
import subprocess
import sys

import pytest

from rnnfast import demo


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_demo_beats_naive_baseline(cell):
    out = io.StringIO()
    res = demo.run(cell=cell, epochs=3, units=20, seed=1, verbose=2, out=out)
    assert res["test_mse"] < 0.6 * res["naive_mse"], res
    text = out.getvalue()
    assert "naive last value" in text and "seconds per epoch" in text
    assert "Epoch 3/3" in text and "219/219 - " in text and "val_loss" in text


def test_cli():
    ok = subprocess.run([sys.executable, "-m", "rnnfast", "demo", "--epochs", "1", "--units", "4",
                         "--cell", "gru"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "| naive last value |" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "rnnfast", "demo", "--epochs", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "must be positive" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "rnnfast", "train"], capture_output=True,
                             text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'train'" in unknown.stderr
