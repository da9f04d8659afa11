"""The example tasks (examples/*.py, rnnfast.tasks) in their quick form: each
runs end to end and learns, beating a trivial baseline by a clear margin."""

import importlib.util
import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from rnnfast import tasks
from rnnfast.tasks import addition, attention, char_rnn, classification, forecasting, seq2seq

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def check_output(text, header):
    """The results table is printed last."""
    lines = text.rstrip().splitlines()
    assert lines[-1].startswith("| "), text[-500:]
    table = lines[[i for i, l in enumerate(lines) if not l.startswith("|")][-1] + 1:]
    assert table[0].startswith(header) and table[1].startswith("|---"), table


def check_plot(path, text):
    """A PNG when matplotlib is installed, else a one-line notice and no file."""
    if HAVE_MATPLOTLIB:
        assert path.stat().st_size > 1000 and f"plot saved to {path}" in text
    else:
        assert not path.exists()
        assert f"matplotlib is not installed: skipping the plot {path}" in text


def test_forecasting_quick(tmp_path):
    out, plot = io.StringIO(), tmp_path / "forecasting.png"
    r = forecasting.run(quick=True, verbose=2, out=out, plot=plot)
    naive, naive_10 = r["naive"]["mse"], r["naive_10"]["mse"]
    assert 0.015 < naive < 0.025, r  # the chapter's series: naive MSE about 0.020
    # Four epochs on 2,100 series: the deep RNNs already halve the naive error.
    # (The linear model and SimpleRNN(1) need the full 20 epochs; not checked here.)
    assert r["deep_rnn"]["mse"] < 0.5 * naive, r
    assert r["deep_rnn_dense"]["mse"] < 0.5 * naive, r
    assert r["gru"]["mse"] < naive, r
    assert r["seq2vec_10"]["mse"] < 0.2 * naive_10, r
    assert r["seq2seq_10"]["mse"] < 0.2 * naive_10, r
    # The chapter's convolutional models: Conv1D + GRU on the Y[:, 3::2] targets, and WaveNet.
    assert r["conv_gru_10"]["mse"] < 0.2 * naive_10, r
    assert r["wavenet_10"]["mse"] < 0.2 * naive_10, r
    assert r["conv_gru_10"]["val_mse"] < 0.2 * r["naive_10"]["val_mse"], r
    assert r["wavenet_10"]["val_mse"] < 0.2 * r["naive_10"]["val_mse"], r
    assert all(r[k]["seconds_per_epoch"] > 0 for k in forecasting.build_models())
    text = out.getvalue()
    assert "Epoch 4/4" in text and "66/66 - " in text and "val_last_time_step_mse" in text
    check_plot(plot, text)
    check_output(text, "| model | params | valid MSE | test MSE | published (20 epochs) | s/epoch |")
    assert "| naive: last value | 0 | " in text and "| SimpleRNN(1) | 3 | " in text
    assert "| 10 ahead, seq-to-seq: Conv1D(20, 4, strides 2) + GRU(20, 20) + " in text
    assert "| 10 ahead, seq-to-seq: WaveNet, " in text


def test_char_rnn_quick():
    out = io.StringIO()
    r = char_rnn.run(quick=True, verbose=2, out=out)
    unigram, bigram = r["baselines"]["unigram"], r["baselines"]["bigram"]
    assert 1 < bigram < unigram, r["baselines"]
    assert "gru" not in r  # the quick form trains the LSTM only
    # Held-out text: well below the unigram model, and below the bigram one.
    assert r["lstm"]["perplexity"] < 0.5 * unigram, (r["lstm"]["perplexity"], unigram)
    assert r["lstm"]["perplexity"] < bigram, (r["lstm"]["perplexity"], bigram)
    assert sorted(r["lstm"]["samples"]) == sorted(char_rnn.TEMPERATURES)
    assert all(len(s) == 120 for s in r["lstm"]["samples"].values())
    text = out.getvalue()
    assert "standard library source" in text and "LSTM sample, temperature 0.2" in text
    check_output(text, "| model | params | held-out perplexity | s/epoch |")


def test_char_rnn_on_a_given_text(tmp_path):
    """--text FILE, and the GRU: a periodic text is learned almost perfectly."""
    path = tmp_path / "song.txt"
    path.write_text("la la land, la la lo!\n" * 600, encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(SystemExit):  # --help
        char_rnn.main(["--help"])
    assert char_rnn.main(["--quick", "--text", str(path), "--cell", "gru", "--sample-chars", "30",
                          "--prime", "la", "--verbose", "0"]) == 0
    r = char_rnn.run(quick=True, verbose=0, out=out, text_path=path, cells=("gru",),
                     sample_chars=30, prime="la")
    assert r["source"] == str(path) and r["chars"] == 22 * 600
    assert r["gru"]["perplexity"] < min(1.5, 0.5 * r["baselines"]["unigram"]), r["gru"]
    assert "la" in r["gru"]["samples"][0.2]


def test_stateful_windows_continue_across_batches():
    ids = np.arange(1000, dtype=np.int32)
    X, Y = char_rnn.stateful_windows(ids, batch_size=4, seq_len=10)
    assert X.shape == Y.shape == (96, 10)
    assert np.array_equal(Y, X + 1)  # targets: the next character
    # Row b of batch w + 1 continues row b of batch w.
    assert np.array_equal(X[4:, 0], X[:-4, -1] + 1)
    with pytest.raises(ValueError, match="too short"):
        char_rnn.stateful_windows(ids[:30], batch_size=4, seq_len=10)


def test_classification_quick(tmp_path):
    out, plot = io.StringIO(), tmp_path / "classification.png"
    r = classification.run(quick=True, verbose=2, out=out, plot=plot)
    assert 0.4 < r["majority"] < 0.6 and 0.65 < r["counting"] < 0.85, r
    baseline = max(r["majority"], r["counting"])
    for cell in ("LSTM", "GRU"):
        assert r[cell]["accuracy"] > baseline + 0.15, (cell, r[cell]["accuracy"], baseline)
        assert r[cell]["long_accuracy"] > baseline + 0.15, (cell, r[cell]["long_accuracy"])
    # The vanishing-gradient lesson: SimpleRNN falls far behind.
    assert r["SimpleRNN"]["accuracy"] < r["LSTM"]["accuracy"] - 0.2, r["SimpleRNN"]["accuracy"]
    text = out.getvalue()
    assert "Bidirectional(SimpleRNN(16))" in text and "Epoch 4/4" in text
    check_plot(plot, text)
    check_output(text, "| model | params | test accuracy |")


def test_classification_data():
    X, y, lengths = classification.make_reviews(200, 20, 60, np.random.default_rng(0))
    assert X.shape == (200, 60) and X.dtype == np.int32
    assert np.array_equal((X != 0).sum(axis=1), lengths)
    n_pos, n_neg = len(classification.POSITIVE), len(classification.NEGATIVE)
    positive = np.isin(X, np.arange(1, 1 + n_pos))
    negative = np.isin(X, np.arange(1 + n_pos, 1 + n_pos + n_neg))
    assert np.all(positive.sum(axis=1) + negative.sum(axis=1) == 2)  # two opinion words
    first = np.argmax(positive | negative, axis=1)
    assert np.array_equal(positive[np.arange(200), first], y == 1)  # the first one decides


def test_seq2seq_quick():
    out = io.StringIO()
    r = seq2seq.run(quick=True, verbose=2, out=out)
    assert r["baseline"] < 0.05, r
    assert r["exact_match"] > 0.5 and r["exact_match"] > 10 * r["baseline"], r
    assert r["char_accuracy"] > 0.8, r
    text = out.getvalue()
    assert "Epoch 8/8" in text and "held-out questions:" in text
    check_output(text, "| model | params | character accuracy | exact match | s/epoch |")


def test_addition_quick():
    """The functional encoder-decoder (states into the decoder) learns to add."""
    out = io.StringIO()
    r = addition.run(quick=True, verbose=2, out=out)
    assert r["exact_match"] > 0.5 and r["exact_match"] > 10 * r["baseline"], r
    assert r["char_accuracy"] > 0.8, r
    text = out.getvalue()
    assert "Epoch 8/8" in text and "held-out questions:" in text
    check_output(text, "| model | params | character accuracy | exact match | s/epoch |")
    model = addition.build_model(2, 8)
    assert [l.name for l in model.layers] == ["question", "encoder", "repeat", "decoder", "answer"]


def test_attention_quick():
    """With Attention the reversal is learnt; without it, not (the final state
    cannot hold the whole string)."""
    out = io.StringIO()
    r = attention.run(quick=True, verbose=2, out=out)
    assert r["attention"]["exact_match"] > 0.9, r
    assert r["plain"]["exact_match"] < 0.1 and r["plain"]["digit_accuracy"] < 0.8, r
    check_output(out.getvalue(), "| model | params | digit accuracy | exact match | s/epoch |")
    x, y = attention.make_strings(5, 7, np.random.default_rng(0))
    assert np.array_equal(y, x[:, ::-1])


def test_seq2seq_questions_are_distinct_and_right():
    questions, answers = seq2seq.make_questions(500, 2, np.random.default_rng(0))
    assert len(set(questions)) == 500
    assert all(len(q) == 5 and len(a) == 3 for q, a in zip(questions, answers))
    assert all(eval(q) == int(a) for q, a in zip(questions, answers))  # noqa: S307 (digits, +)
    with pytest.raises(ValueError, match="distinct"):
        seq2seq.make_questions(101, 1, np.random.default_rng(0))


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_demo_task_cli():
    ok = run_cli("-m", "rnnfast", "demo", "--task", "seq2seq", "--epochs", "1", "--train", "300")
    assert ok.returncode == 0, ok.stderr
    assert "2-digit addition, 300 train" in ok.stdout  # the quick form's defaults
    assert ok.stdout.rstrip().splitlines()[-1].startswith("| LSTM(64) -> RepeatVector(3)")
    bad = run_cli("-m", "rnnfast", "demo", "--task", "weather")
    assert bad.returncode == 2 and "--task must be one of forecasting, char_rnn" in bad.stderr
    bad = run_cli("-m", "rnnfast", "demo", "--task=seq2seq", "--epochs", "0")
    assert bad.returncode == 2 and "--epochs must be positive" in bad.stderr


@pytest.mark.parametrize("name", tasks.TASKS)
def test_example_scripts(name):
    script = ROOT / "examples" / f"{name}.py"
    help_ = run_cli(str(script), "--help", timeout=60)
    assert help_.returncode == 0, help_.stderr
    assert "--quick" in help_.stdout and "--epochs" in help_.stdout
    assert tasks.get(name).__name__ == f"rnnfast.tasks.{name}"


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        tasks.get("nope")
